"""The phase-histogram golden model on its own: hand-worked examples, cycle numbers of the
snapshot protocol, saturation, and the vectorised ``run`` against ``step`` cycle by cycle."""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.hdl.golden_histogram import (
    SETTLE_CYCLES,
    HistogramModel,
    SpareState,
)


def after_reset(n_channels: int = 2, bins: int = 4, count_bits: int = 32) -> HistogramModel:
    model = HistogramModel(n_channels, bins, count_bits)
    for _ in range(model.words):
        model.step()
    assert not model.clearing
    return model


def test_hand_worked_example():
    m = HistogramModel(3, 4)
    assert m.clearing and m.initialising
    m.step(True, 0, 10)                           # during the reset-time clear: skipped
    for _ in range(m.words - 1):
        m.step()
    assert not m.clearing and m.skipped == 1
    # offset 100, shift 2: bins of 4 ps from 100 ps; 116 ps is the first outside.
    for channel, phase in ((0, 100), (0, 103), (0, 104), (1, 115), (1, 116), (1, 99), (3, 100)):
        m.step(True, channel, phase, offset=100, shift=2)
    assert m.outside == 2 and m.bad_channel == 1
    assert m.accumulating.tolist() == [[2, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    m.step(True, 0, 100, offset=100, shift=2, swap=True)     # in the snapshot (same cycle)
    m.step(True, 0, 100, offset=100, shift=2)                # in the new bank
    assert m.snapshot.tolist() == [[3, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert m.accumulating.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_bin_edges():
    m = after_reset(1, 1024)
    assert m.bin_of(500, 500, 3) == 0
    assert m.bin_of(499, 500, 3) is None
    assert m.bin_of(500 + (1024 << 3) - 1, 500, 3) == 1023
    assert m.bin_of(500 + (1024 << 3), 500, 3) is None
    assert m.bin_of((1 << 24) - 1, 0, 31) == 0
    assert m.bin_of(7, 0, 0) == 7


def test_saturation_never_wraps():
    m = after_reset(1, 4, count_bits=2)
    for _ in range(10):
        m.step(True, 0, 1)
    assert m.accumulating[0, 1] == 3


def test_swap_settle_release_cycle_numbers():
    m = after_reset(2, 64)
    m.step(swap=True)                                  # executes at once: the spare is clean
    assert m.spare_state == SpareState.SNAPSHOT and not m.swap_pending
    m.step(release=True)                               # settling: the release is held
    assert m.clearing and m.spare_state == SpareState.SNAPSHOT
    valid_at = None
    for k in range(1, 2 * SETTLE_CYCLES):
        if m.snapshot_valid and valid_at is None:
            valid_at = k
        m.step()
    # snapshot_valid for exactly one cycle (SETTLE_CYCLES after the swap), then the clear.
    assert valid_at == SETTLE_CYCLES - 1 and m.swaps == 1
    assert m.spare_state == SpareState.CLEARING
    m.step(swap=True)
    m.step(swap=True)                                  # merged with the pending one
    assert m.swap_pending and m.clearing
    while m.spare_state == SpareState.CLEARING:
        m.step()
    assert m.swap_pending                              # executes in the first clean cycle
    m.step()
    assert not m.swap_pending and m.spare_state == SpareState.SNAPSHOT
    for _ in range(SETTLE_CYCLES):
        m.step()
    assert m.swaps == 2
    m.step(swap=True)                                  # snapshot held: waits for the host
    for _ in range(50):
        m.step()
    assert m.swap_pending and m.swaps == 2
    m.step(release=True)
    for _ in range(m.words + 1 + SETTLE_CYCLES):
        m.step()
    assert m.swaps == 3 and not m.swap_pending


def test_release_without_snapshot_is_ignored():
    m = after_reset()
    m.step(release=True)
    assert not m.clearing and m.spare_state == SpareState.CLEAN


def test_events_are_conserved():
    """Every accepted event is binned (in some snapshot or the accumulating bank), outside,
    on a bad channel, or skipped by the reset-time clear."""
    rng = np.random.default_rng(4)
    m = HistogramModel(3, 16, count_bits=32)
    accepted = binned = 0
    for t in range(3000):
        valid, enable = bool(rng.random() < 0.8), bool(rng.random() < 0.9)
        accepted += valid and enable
        acc = m.accumulating_bank
        m.step(valid, int(rng.integers(0, 4)), int(rng.integers(0, 200)), enable=enable,
               offset=20, shift=3, swap=t % 400 == 0, release=t % 400 == 300)
        if m.accumulating_bank != acc:
            binned += int(m.snapshot.sum())
    binned += int(m.accumulating.sum())
    assert m.outside > 0 and m.bad_channel > 0 and m.skipped > 0 and m.swaps >= 5
    assert binned + m.outside + m.bad_channel + m.skipped == accepted


def _random_control(rng, cycles, words):
    swaps = np.sort(rng.choice(cycles, 12, replace=False))
    releases = np.sort(rng.choice(cycles, 12, replace=False))
    return swaps, releases


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_run_equals_step(seed):
    rng = np.random.default_rng(seed)
    n_channels, bins, count_bits = 3, 8, 3
    cycles = 2000
    event_cycle = np.flatnonzero(rng.random(cycles) < 0.7)
    channel = rng.integers(0, 4, event_cycle.size)
    phase = rng.integers(0, 90, event_cycle.size)
    swaps, releases = _random_control(rng, cycles, n_channels * bins)
    fast = HistogramModel(n_channels, bins, count_bits)
    result = fast.run(cycles, event_cycle, channel, phase, offset=10, shift=3,
                      swaps_at=swaps, releases_at=releases)
    slow = HistogramModel(n_channels, bins, count_bits)
    snapshots, swap_cycles = [], []
    events = dict(zip(event_cycle.tolist(), zip(channel.tolist(), phase.tolist(),
                                                 strict=True), strict=True))
    for t in range(cycles):
        ch, ph = events.get(t, (0, 0))
        acc = slow.accumulating_bank
        slow.step(t in events, ch, ph, offset=10, shift=3, swap=t in set(swaps.tolist()),
                  release=t in set(releases.tolist()))
        if slow.accumulating_bank != acc:
            swap_cycles.append(t)
            snapshots.append(slow.snapshot)
    assert result.swap_cycles == swap_cycles and len(swap_cycles) >= 3
    for a, b in zip(result.snapshots, snapshots, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(fast.accumulating, slow.accumulating)
    assert np.array_equal(fast.snapshot, slow.snapshot)
    assert (fast.outside, fast.bad_channel, fast.skipped, fast.swaps, fast.status()) == \
        (slow.outside, slow.bad_channel, slow.skipped, slow.swaps, slow.status())
    top = (1 << count_bits) - 1                                     # saturation exercised
    assert any((s == top).any() for s in [*snapshots, slow.accumulating])


def test_run_bins_and_saturates_long_streams():
    n = 4096 * 49
    phase = np.arange(n) % 4096                   # 4 ps bins: 4 events per bin per period
    for count_bits, want in ((32, 49 * 4), (7, 127)):
        m = after_reset(1, 1024, count_bits)
        m.run(n, np.arange(n), np.zeros(n, dtype=np.int64), phase, offset=0, shift=2)
        assert m.accumulating[0].tolist() == [want] * 1024


def test_bad_parameters_and_inputs():
    for args in ((0, 16, 32), (2, 12, 32), (2, 1, 32), (2, 16, 0), (2, 16, 65)):
        with pytest.raises(ValueError):
            HistogramModel(*args)
    m = after_reset()
    with pytest.raises(ValueError, match="phase"):
        m.step(True, 0, 1 << 24)
    with pytest.raises(ValueError, match="shift"):
        m.step(True, 0, 0, shift=32)
    with pytest.raises(ValueError, match="channel"):
        m.step(True, 2, 0)                           # 2 channels: a 1-bit channel port
    with pytest.raises(ValueError, match="increasing"):
        m.run(10, np.array([3, 3]), np.array([0, 0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="increasing"):
        m.run(10, np.array([10]), np.array([0]), np.array([0]))
