"""The transmitter's golden model: hand-worked examples and properties."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tbqkd.hdl.golden_sifter import Announcement, SiftedKey
from tbqkd.hdl.golden_transmitter import (
    POOL_BITS,
    Answer,
    StatesRecord,
    TransmitterModel,
    TxConfig,
    random_states,
)
from tbqkd.hdl.tx_records import STATE_PINS, TX_STREAMS, TxState, state_code
from tbqkd.hdl.tx_registers import RING_DEPTH, TX_COUNTERS, transmitter_regmap

# Bits, oldest first: slot 0: r = 00, v = 1 -> X; slot 1: r = 10 (1), v = 1 -> |l>;
# slot 2: r = 11 (3), v = 0 -> |e>  (n = 2 basis bits, X iff r < 1).
WORD = sum(1 << i for i, b in enumerate([0, 0, 1, 1, 0, 1, 1, 1, 0]) if b)
SMALL = TxConfig(basis_bits=2, x_threshold=1)


def test_hand_worked_states():
    assert WORD == 236
    assert random_states([WORD], SMALL, 3) == [TxState.PLUS, TxState.L, TxState.E]
    assert random_states([WORD], SMALL.with_(four_state=1), 3) == \
        [TxState.MINUS, TxState.L, TxState.E]
    # 64 bits pay for 21 slots of 3 bits, and no more
    assert len(random_states([WORD], SMALL, 100)) == 21


def test_first_slot_underruns_then_bits_are_used_in_order():
    model = TransmitterModel(8)
    cfg = SMALL.with_(run=1)
    out = model.step(cfg, rnd_valid=1, rnd_data=WORD)      # beat arrives after slot 0 decided
    assert out.rnd_ready == 1
    model.run(cfg, 30)
    assert model.sent[:4] == [None, TxState.PLUS, TxState.L, TxState.E]
    assert model.sent[1:22] == random_states([WORD], SMALL, 21)
    assert model.sent[22:] == [None] * 9
    assert model.counters["random_underruns"] == 10 and model.counters["random_words"] == 1


def test_pin_timing_pattern_mode():
    """k = 4, delay 1, width 2: pins high in the 2nd and 3rd clock of each slot, one cycle
    after the decision (registered); the reference at the first clock of slots 0 mod 3."""
    model = TransmitterModel(8)
    pattern = [TxState.E, TxState.MINUS]
    cfg = TxConfig(run=1, pattern_mode=1, pattern=pattern[0] | pattern[1] << 2,
                   pattern_length=2, slot_divider=4, mod_delay=1, mod_width=2, ref_divider=3)
    outs = model.run(cfg, 1 + 4 * 6)
    assert outs[0].mod_early == 0 and outs[0].slot == 0          # reset state
    for slot in range(6):
        cycles = outs[1 + 4 * slot: 5 + 4 * slot]
        pins = STATE_PINS[pattern[slot % 2]]
        assert [(o.mod_early, o.mod_late, o.mod_phase) for o in cycles] == \
            [(0, 0, 0), pins, pins, (0, 0, 0)]
        assert [o.reference for o in cycles] == [int(slot % 3 == 0), 0, 0, 0]
        assert all(o.slot == slot + 1 for o in cycles)


def test_width_is_cut_at_the_slot_end_and_run_gates_everything():
    model = TransmitterModel(8)
    cfg = TxConfig(run=1, pattern_mode=1, pattern=TxState.L, pattern_length=1,
                   slot_divider=3, mod_delay=2, mod_width=100, ref_divider=0)
    outs = model.run(cfg, 10)
    assert [o.mod_late for o in outs] == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert not any(o.reference for o in outs)
    outs = model.run(cfg.with_(run=0), 5)
    assert model.slot == 4 and not any(o.mod_late for o in outs[1:])


def test_ring_edges_vacuum_and_restart():
    model = TransmitterModel(8)
    cfg = TxConfig(run=1, pattern_mode=1)
    model.run(cfg, 20)
    stop = cfg.with_(run=0)
    s = model.slot
    for i, slot in enumerate([s - 8, s - 1, s - 9, s, s + 3]):
        model.step(stop, announce=Announcement(i, slot, 0))
    assert [a.seq for a in model.answers] == [0, 1]
    assert model.counters["err_out_of_ring"] == 3 and model.protocol_error
    model.step(stop, clear_error=1)
    assert not model.protocol_error
    # default pattern e, l, +, +: slot s-8 = 12 -> e (sifted bit 0), s-1 = 19 -> +
    assert model.answers == [Answer(0, s - 8, 0, 0), Answer(1, s - 1, 1, 0)]
    assert model.sifted == [SiftedKey(s - 8, 0)]
    model.step(stop, restart=1)
    model.step(stop, announce=Announcement(9, 3, 0))
    assert model.counters["err_out_of_ring"] == 4 and model.slot == 0
    # vacuum slots (random mode without bits) are never answered
    model.run(TxConfig(run=1), 5)
    model.step(stop, announce=Announcement(10, 2, 0))
    assert model.counters["err_vacuum"] == 1 and len(model.answers) == 2


def test_sifting_keeps_only_z_z():
    model = TransmitterModel(16)
    pattern = [TxState.E, TxState.L, TxState.PLUS, TxState.MINUS]
    cfg = TxConfig(run=1, pattern_mode=1, pattern=sum(p << 2 * i for i, p in enumerate(pattern)))
    model.run(cfg, 4)
    stop = cfg.with_(run=0)
    seq = 0
    for slot in range(4):
        for basis in (0, 1):
            model.step(stop, announce=Announcement(seq, slot, basis))
            seq += 1
    assert model.sifted == [SiftedKey(0, 0), SiftedKey(1, 1)]
    assert [(a.basis, a.x_bit) for a in model.answers] == \
        [(0, 0)] * 4 + [(1, 0)] * 2 + [(1, 1)] * 2


@pytest.mark.parametrize("four_state", [0, 1])
def test_default_basis_probability(four_state):
    rng = np.random.default_rng(11)
    words = [int(w) for w in rng.integers(0, 1 << 64, 6000, dtype=np.uint64)]
    states = np.array(random_states(words, TxConfig(four_state=four_state), 100_000))
    assert len(states) == 6000 * 64 // 17
    p_z = np.mean(states < 2)
    assert abs(p_z - 0.8) < 0.01
    assert abs(np.mean(states == TxState.E) - np.mean(states == TxState.L)) < 0.02
    if four_state:
        assert abs(np.mean(states == TxState.MINUS) - 0.1) < 0.01
    else:
        assert not np.any(states == TxState.MINUS)


def test_random_buffer_never_overflows_nor_reuses_bits():
    rng = np.random.default_rng(3)
    model = TransmitterModel(8)
    cfg = TxConfig(run=1, basis_bits=5, slot_divider=2)
    used = 0
    for _ in range(3000):
        valid = int(rng.random() < 0.03)
        before = model.counters["random_underruns"]
        model.step(cfg, rnd_valid=valid, rnd_data=int(rng.integers(0, 1 << 62)))
        assert 0 <= model.random_bits <= POOL_BITS
        used = 6 * sum(model.counters[k] for k in TX_COUNTERS if k.startswith("states_"))
        assert used + model.random_bits == 64 * model.counters["random_words"]
        assert model.counters["random_underruns"] >= before
    assert model.counters["random_underruns"] > 100 and used > 1000


def test_validation():
    with pytest.raises(ValueError):
        TransmitterModel(100)
    model = TransmitterModel(8)
    with pytest.raises(ValueError):
        model.step(TxConfig(), rnd_valid=1, rnd_data=1 << 64)
    with pytest.raises(ValueError):
        model.step(TxConfig(), announce=Announcement(0, 1 << 48, 0))
    with pytest.raises(IndexError):
        model.session_state(0)


def test_register_table_and_streams():
    regs = transmitter_regmap()
    assert regs["RING_DEPTH"].reset == RING_DEPTH
    assert regs["X_THRESHOLD"].reset / (1 << regs["BASIS_BITS"].reset) == pytest.approx(0.2,
                                                                                       abs=1e-4)
    for name in TX_COUNTERS:
        assert regs[name.upper()].width == 64
    assert regs.hash != transmitter_regmap(1024).hash
    assert [p.prefix for p in TX_STREAMS] == ["s_axis_random", "s_axis_announce",
                                              "m_axis_answer", "m_axis_sifted", "m_axis_states"]


def test_model_modules_do_not_import_amaranth():
    code = ("import sys, tbqkd.hdl.golden_transmitter, tbqkd.hdl.tx_registers, "
            "tbqkd.hdl.tx_records; assert 'amaranth' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_state_stream_groups_of_16():
    """Records of 16 consecutive slots; a pause of the stream or a restart drops the partial
    group, so the next record starts where the stream resumed."""
    model = TransmitterModel(64)
    cfg = TxConfig(run=1, pattern_mode=1, state_stream=1)          # e, l, +, + repeated
    model.run(cfg, 40)
    codes = tuple(state_code(s) for s in [0, 1, 2, 2] * 4)
    assert model.state_records == [StatesRecord(0, codes), StatesRecord(16, codes)]
    model.run(cfg.with_(state_stream=0), 3)                          # slots 40..42
    model.run(cfg, 16)                                               # slots 43..58
    assert model.state_records[2] == StatesRecord(43, codes[3:] + codes[:3])
    model.step(cfg, restart=1)
    model.run(cfg.with_(pattern_mode=0), 16)                         # no random bits: vacuum
    assert model.state_records[3] == StatesRecord(0, (0,) * 16)
    assert state_code(None) == 0 and state_code(TxState.MINUS) == 7
