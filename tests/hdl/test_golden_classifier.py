"""The classifier's golden model: hand-worked examples and properties (no Amaranth)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tbqkd.hdl.golden_classifier import (
    ClassifiedEvents,
    ClassifierConfig,
    ClassifierModel,
    wrap_offset,
)
from tbqkd.hdl.records import Basis, Bin, Role

P = 13_167          # ps: one slot of the reference experiment's 75.947 MHz clock
SLOT_MASK = (1 << 48) - 1
ROLES = [Role.Z, Role.X_PLUS, Role.X_MINUS, Role.MONITOR, Role.REFERENCE, Role.OFF]


def config(**overrides) -> ClassifierConfig:
    n = len(overrides.get("role", ROLES))
    values = dict(n_channels=n, slot_period=P, role=[int(r) for r in ROLES],
                  delay=[0] * n, early_start=[1000] * n, early_width=[2000] * n,
                  late_start=[7500] * n, late_width=[2000] * n, middle_start=[4300] * n,
                  middle_width=[2000] * n, ref_phase=6000, ref_window_log2=2,
                  lock_threshold=100)
    values.update(overrides)
    return ClassifierConfig(**values)


def reference_rows(cfg: ClassifierConfig, events, state: dict) -> list[tuple[int, ...]]:
    """A plain per-event restatement of the specification, independent of the model's code."""
    rows = []
    for slot, phase, ch in events:
        if ch >= cfg.n_channels or cfg.role[ch] == Role.OFF:
            continue
        role = cfg.role[ch]
        p = phase - cfg.delay[ch]
        if p < 0:
            p, slot = p + cfg.slot_period, slot - 1
        elif p >= cfg.slot_period:
            p, slot = p - cfg.slot_period, slot + 1
        p %= 1 << 24
        slot %= 1 << 48
        b = Bin.NONE
        for name, code in (("middle", Bin.MIDDLE), ("late", Bin.LATE), ("early", Bin.EARLY)):
            start, width = getattr(cfg, f"{name}_start")[ch], getattr(cfg, f"{name}_width")[ch]
            if start <= p < start + width:
                b = code
        if role == Role.Z:
            basis, bit, key = Basis.Z, int(b == Bin.LATE), b in (Bin.EARLY, Bin.LATE)
        elif role in (Role.X_PLUS, Role.X_MINUS):
            basis, bit, key = Basis.X, int(role == Role.X_MINUS), b == Bin.MIDDLE
        else:
            basis, bit, key = Basis.Z, 0, False
        if role == Role.REFERENCE and state["armed"]:
            state["armed"], state["base"] = False, slot
        mid = role in (Role.X_PLUS, Role.X_MINUS) and b == Bin.MIDDLE
        rows.append(((slot - state["base"]) % (1 << 48), p, ch, int(b), int(basis), bit,
                     int(key), int(mid), int(mid and role == Role.X_MINUS)))
    return rows


def run_one(model: ClassifierModel, slot: int, phase: int, channel: int) -> ClassifiedEvents:
    return model.run([slot], [phase], [channel])


def test_bins_key_values_and_roles():
    model = ClassifierModel(config())
    # channel 0 (Z): early → bit 0, late → bit 1, middle not key, outside dropped
    for phase, want_bin, want_bit, want_key in ((1000, Bin.EARLY, 0, 1), (8000, Bin.LATE, 1, 1),
                                                (5000, Bin.MIDDLE, 0, 0),
                                                (12000, Bin.NONE, 0, 0)):
        out = run_one(model, 10, phase, 0)
        assert (out.bin[0], out.basis[0], out.bit[0], out.key[0]) == \
            (want_bin, Basis.Z, want_bit, want_key)
    assert (model.early[0], model.late[0], model.middle[0], model.outside[0]) == (1, 1, 1, 1)
    # X+ and X−: the middle bin is key with the detector's bit; side peaks are not key
    for ch, bit in ((1, 0), (2, 1)):
        out = run_one(model, 10, 5000, ch)
        assert (out.bin[0], out.basis[0], out.bit[0], out.key[0]) == (Bin.MIDDLE, Basis.X, bit, 1)
        assert (out.mid_valid[0], out.mid_minus[0]) == (1, bit)
        side = run_one(model, 10, 1500, ch)
        assert (side.bin[0], side.key[0], side.mid_valid[0]) == (Bin.EARLY, 0, 0)
    # monitor: classified and counted, never key
    out = run_one(model, 10, 5000, 3)
    assert (out.bin[0], out.key[0], out.mid_valid[0]) == (Bin.MIDDLE, 0, 0)
    assert model.middle[3] == 1
    # OFF: nothing out, nothing counted
    assert len(run_one(model, 10, 5000, 5)) == 0
    assert model.early[5] + model.late[5] + model.middle[5] + model.outside[5] == 0


@pytest.mark.parametrize("name,code", [("early", Bin.EARLY), ("late", Bin.LATE),
                                       ("middle", Bin.MIDDLE)])
def test_window_edges_to_the_picosecond(name, code):
    cfg = config()
    start, width = getattr(cfg, f"{name}_start")[0], getattr(cfg, f"{name}_width")[0]
    out = ClassifierModel(cfg).run([0] * 4, [start - 1, start, start + width - 1, start + width],
                                   [0] * 4)
    assert out.bin[1] == out.bin[2] == code
    assert out.bin[0] != code and out.bin[3] != code


def test_zero_width_turns_a_window_off():
    cfg = config(early_width=[0] * 6)
    out = ClassifierModel(cfg).run([0], [1000], [0])
    assert out.bin[0] == Bin.NONE


def test_overlapping_windows_priority_early_late_middle():
    # all three windows cover [4000, 5000); late and middle cover [5000, 6000)
    cfg = config(early_start=[3000] * 6, early_width=[2000] * 6, late_start=[4000] * 6,
                 late_width=[2000] * 6, middle_start=[4000] * 6, middle_width=[3000] * 6)
    out = ClassifierModel(cfg).run([0] * 4, [4500, 5500, 6500, 7000], [0] * 4)
    assert out.bin.tolist() == [Bin.EARLY, Bin.LATE, Bin.MIDDLE, Bin.NONE]


def test_delay_wraps_phase_into_neighbouring_slot():
    cfg = config(delay=[300, -300, 0, 0, 0, 0])
    model = ClassifierModel(cfg)
    # positive delay pulls phase 100 below zero: previous slot, phase P − 200
    out = model.run([50, 50, 50, 0], [100, P - 100, 300, 200], [0, 1, 0, 0])
    assert out.slot.tolist() == [49, 51, 50, SLOT_MASK]
    assert out.phase.tolist() == [P - 200, 200, 0, P - 100]


def test_slot_base_alignment_and_wrap():
    model = ClassifierModel(config())
    out = model.run([5, 7], [6000, 6000], [0, 4])
    assert out.slot.tolist() == [5, 7] and not model.aligned
    model.align()
    out = model.run([SLOT_MASK - 1, SLOT_MASK - 2, SLOT_MASK - 1, 2, SLOT_MASK - 5],
                    [6000] * 5, [0, 4, 0, 0, 4])
    # the first reference event sets slot 0; later reference events change nothing
    assert out.slot.tolist() == [SLOT_MASK - 1, 0, 1, 5, SLOT_MASK - 2]
    assert model.slot_base == SLOT_MASK - 2 and model.aligned
    model.align()
    assert not model.aligned
    out = model.run([100], [6000], [0])
    assert out.slot.tolist() == [103] and not model.aligned


def test_wrap_offset_range_and_boundary():
    raw = np.arange(-P + 1, P)
    off = wrap_offset(raw, P)
    assert off.min() > -P / 2 and off.max() <= P / 2
    assert np.all((off - raw) % P == 0)
    even = wrap_offset(np.array([5000, -5000, 5001, -5001]), 10_000)
    assert even.tolist() == [5000, 5000, -4999, 4999]


def test_lock_monitor_mean_spread_threshold():
    cfg = config(ref_phase=6000, ref_window_log2=2, lock_threshold=100)
    model = ClassifierModel(cfg)
    model.run([0] * 3, [6000 - 7, 6000 + 100, 6000 - 100], [4] * 3)
    assert model.lock_windows == 0 and not model.lost_lock      # |offset| == threshold is ok
    model.run([0], [6000 + 2], [4])
    # offsets −7, 100, −100, 2: sum −5 → floor(−5/4) = −2; spread 200
    assert (model.lock_windows, model.lock_offset, model.lock_spread) == (1, -2, 200)
    model.run([0], [6000 - 101], [4])
    assert model.lost_lock and model.lock_violations == 1
    model.clear_lost_lock()
    assert not model.lost_lock and model.lock_violations == 1


def test_lock_offset_wraps_at_the_slot_boundary():
    cfg = config(ref_phase=P - 10, ref_window_log2=1, lock_threshold=30)
    model = ClassifierModel(cfg)
    model.run([0, 1], [5, P - 30], [4, 4])     # offsets +15 (next slot's start), −20
    assert (model.lock_offset, model.lock_spread, model.lost_lock) == (-3, 35, False)


def test_bad_input_is_counted():
    model = ClassifierModel(config())
    out = model.run([0, 0, 0], [1000, P, 1000], [0, 0, 9])
    assert len(out) == 2 and model.bad_channel == 1 and model.bad_phase == 1
    with pytest.raises(ValueError):
        model.run([0], [1 << 24], [0])
    with pytest.raises(ValueError):
        config(delay=[1 << 23] * 6)


def test_clear_counters():
    model = ClassifierModel(config(ref_window_log2=3))
    model.run([0] * 4, [1000, 8000, 6000, 6000], [0, 0, 4, 9])
    model.clear_counters()
    assert model.early.sum() == model.late.sum() == model.bad_channel == 0
    model.run([0] * 8, [6000] * 8, [4] * 8)       # a whole window after the clear
    assert model.lock_windows == 1 and model.middle[4] == 8


events_strategy = st.lists(st.tuples(st.integers(0, SLOT_MASK), st.integers(0, P - 1),
                                     st.integers(0, 6)), max_size=60)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(events=events_strategy, cuts=st.lists(st.integers(0, 60), max_size=4),
       delays=st.lists(st.integers(-P + 1, P - 1), min_size=6, max_size=6),
       log2=st.integers(0, 3))
def test_batches_and_reference_agree(events, cuts, delays, log2):
    """Any split into batches gives the records and state of the per-event restatement."""
    cfg = config(delay=delays, ref_window_log2=log2, lock_threshold=500)
    model = ClassifierModel(cfg)
    model.align()
    state = {"armed": True, "base": 0}
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        batch = events[lo:hi]
        parts.append(model.run(*(np.array([e[i] for e in batch], dtype=np.int64)
                                 for i in range(3))))
    got = ClassifiedEvents.concatenate(parts).rows()
    assert got == reference_rows(cfg, events, state)
    refs = [e for e in events if e[2] == 4]
    offsets = []
    for _slot, phase, _ in refs:
        p = (phase - delays[4]) % P
        offsets.append(int(wrap_offset(np.array([p - cfg.ref_phase]), P)[0]))
    size = 1 << log2
    assert model.lock_windows == len(offsets) // size
    if len(offsets) >= size:
        last = offsets[(len(offsets) // size - 1) * size:(len(offsets) // size) * size]
        assert model.lock_offset == sum(last) // size
        assert model.lock_spread == max(last) - min(last)
    assert model.lock_violations == sum(abs(o) > 500 for o in offsets)
    assert model.outside.sum() + model.early.sum() + model.late.sum() + \
        model.middle.sum() == len(got)
