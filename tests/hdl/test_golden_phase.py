"""The golden models of the phase error unit and the SPI DAC master, and the SPI DAC decoder."""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.hdl.golden_phase import (
    AD5686_FRAME_BITS,
    COUNT_MAX,
    DAC8568_FRAME_BITS,
    DAC8568_SUFFIX_BITS,
    PhaseErrorModel,
    SpiDacModel,
    WindowMode,
    ad5686_prefix,
    dac8568_prefix,
    frame_word,
)
from tbqkd.hdl.records import PHASE_WINDOW, SLOT_BITS
from tbqkd.sim.dac import AD5686, DAC8568, SpiDacDecoder, SpiTimingError

FIELDS = ("x_sifted", "x_errors", "mid_plus", "mid_minus")


def run_phase(model: PhaseErrorModel, cycles: list[dict]) -> list:
    return [model.step(**c) for c in cycles]


def slot_stream(n: int, start: int = 0) -> list[dict]:
    return [{"slot": (start + i) % (1 << SLOT_BITS)} for i in range(n)]


# -- phase error unit -------------------------------------------------------------------------

def test_slot_window_hand_worked():
    """Window of 4 slots from slot 10: events of slots 10..13 in window 0; slot 14 starts 1."""
    model = PhaseErrorModel()
    cycles = slot_stream(12, start=10)
    cycles[0].update(x_valid=1, x_bob_bit=0)                  # slot 10: correct
    cycles[2].update(x_valid=1, x_bob_bit=1, mid_valid=1, mid_minus=1)   # slot 12: error
    cycles[3].update(mid_valid=1, mid_minus=0)                # slot 13: last slot of window 0
    cycles[4].update(x_valid=1, x_bob_bit=1)                  # slot 14: boundary -> window 1
    for c in cycles:
        c.update(window_slots=4)
    outs = run_phase(model, cycles)
    # detected in the boundary cycle 4, closed (snapshot, irq, FIFO) at the next edge
    assert [o.irq for o in outs[:6]] == [0, 0, 0, 0, 0, 1]
    assert model.closed[0] == {"index": 0, "x_sifted": 2, "x_errors": 1, "mid_plus": 1,
                               "mid_minus": 1, "end_slot": 14}
    assert model.closed[1] == {"index": 1, "x_sifted": 1, "x_errors": 1, "mid_plus": 0,
                               "mid_minus": 0, "end_slot": 18}
    assert outs[5].snap_end_slot == 14 and outs[5].snap_x_sifted == 2
    # the record reaches the stream one cycle after the close
    assert outs[5].win_tvalid == 0 and outs[6].win_tvalid == 1
    assert PHASE_WINDOW.unpack(outs[6].win_tdata) == model.closed[0]


def test_event_window_boundary_includes_its_cycle():
    """Event mode: the N-th X event and a middle click in its cycle close the window."""
    model = PhaseErrorModel()
    cycles = slot_stream(8)
    for c in cycles:
        c.update(mode=WindowMode.EVENTS, window_events=2)
    cycles[1].update(x_valid=1)
    cycles[3].update(x_valid=1, x_bob_bit=1, mid_valid=1, mid_minus=0)   # 2nd event: closes
    cycles[4].update(mid_valid=1, mid_minus=1)                            # next window
    cycles[5].update(x_valid=1)
    cycles[6].update(x_valid=1, x_bob_bit=1)
    run_phase(model, cycles)
    assert model.closed == [
        {"index": 0, "x_sifted": 2, "x_errors": 1, "mid_plus": 1, "mid_minus": 0,
         "end_slot": 3},
        {"index": 1, "x_sifted": 2, "x_errors": 1, "mid_plus": 0, "mid_minus": 1,
         "end_slot": 6},
    ]


@pytest.mark.parametrize("four_state", [0, 1])
def test_error_conventions(four_state):
    """Three-state: Bob's 1 is an error whatever Alice says; four-state: bob != alice."""
    model = PhaseErrorModel()
    pairs = [(b, a) for b in (0, 1) for a in (0, 1)]
    cycles = [{"slot": i, "x_valid": 1, "x_bob_bit": b, "x_alice_bit": a,
               "mode": WindowMode.EVENTS, "window_events": 4, "four_state": four_state}
              for i, (b, a) in enumerate(pairs)]
    run_phase(model, [*cycles, {**cycles[-1], "x_valid": 0}])
    want = sum(b != a for b, a in pairs) if four_state else sum(b for b, _ in pairs)
    assert model.closed[0]["x_errors"] == want
    assert want == 2 and model.closed[0]["x_sifted"] == 4


@pytest.mark.parametrize("mode", [WindowMode.SLOTS, WindowMode.EVENTS])
def test_windows_partition_the_events(mode):
    """Random stream: window counts plus the open window's add up to every event, exactly."""
    rng = np.random.default_rng(5)
    n = 20_000
    slot = np.cumsum(rng.random(n) < 0.3) + (1 << SLOT_BITS) - 3000    # wraps past 2^48
    x = rng.random(n) < 0.2
    bob = rng.integers(0, 2, n)
    mid = rng.random(n) < 0.3
    minus = rng.integers(0, 2, n)
    model = PhaseErrorModel()
    for i in range(n):
        model.step(slot=int(slot[i]) % (1 << SLOT_BITS), x_valid=int(x[i]),
                   x_bob_bit=int(bob[i]), mid_valid=int(mid[i]), mid_minus=int(minus[i]),
                   mode=mode, window_slots=97, window_events=61, win_tready=1)
    totals = [int(x.sum()), int((x & (bob == 1)).sum()), int((mid & (minus == 0)).sum()),
              int((mid & (minus == 1)).sum())]
    windows = model.closed + ([model.detected] if model.detected else [])
    counted = [sum(r[f] for r in windows) + c for f, c in zip(FIELDS, model.counts,
                                                                strict=True)]
    assert counted == totals
    assert [r["index"] for r in model.closed] == list(range(len(model.closed)))
    assert len(model.closed) > 50 and model.dropped == 0
    assert model.sent == model.closed[:len(model.sent)] and len(model.sent) >= len(
        model.closed) - 1
    if mode == WindowMode.SLOTS:
        ends = np.array([r["end_slot"] for r in model.closed], dtype=np.int64)
        assert np.all(np.diff(ends) % (1 << SLOT_BITS) == 97)   # across the 2^48 wrap too
    else:
        assert all(r["x_sifted"] == 61 for r in model.closed)


def test_slot_jump_past_end_closes_one_cycle_later():
    """Idle skipping: a jump past the end closes the window in the next cycle, once."""
    model = PhaseErrorModel()
    model.step(slot=0, window_slots=10, x_valid=1)
    model.step(slot=1000, window_slots=10, x_valid=1)     # jumped past slot 10: not yet
    assert model.closed == []
    model.step(slot=1001, window_slots=10)
    model.step(slot=1002, window_slots=10)
    assert model.closed == [{"index": 0, "x_sifted": 2, "x_errors": 0, "mid_plus": 0,
                             "mid_minus": 0, "end_slot": 1001}]
    assert model.end_slot == 1011


def test_irq_ack_and_close_wins():
    model = PhaseErrorModel()
    common = {"mode": WindowMode.EVENTS, "window_events": 1}
    assert model.step(slot=0, x_valid=1, **common).irq == 0   # detected
    assert model.step(slot=1, **common).irq == 1             # closed
    assert model.step(slot=2, **common).irq == 1             # level: stays until acked
    assert model.step(slot=3, irq_ack=1, x_valid=1, **common).irq == 0
    out = model.step(slot=4, irq_ack=1, **common)            # close beats ack
    assert out.irq == 1 and out.snap_index == 1


def test_backpressure_keeps_newest_and_counts_drops():
    model = PhaseErrorModel(fifo_depth=4)
    for i in range(13):          # 12 one-event windows, stream never drained
        model.step(slot=i, x_valid=int(i < 12), mode=WindowMode.EVENTS, window_events=1,
                   win_tready=0)
    # the output register holds window 0 (it may not change until taken), FIFO the newest 4
    assert model.dropped == 12 - 1 - 4
    for i in range(12, 20):
        model.step(slot=i, mode=WindowMode.EVENTS, win_tready=1)
    assert [r["index"] for r in model.sent] == [0, 8, 9, 10, 11]


def test_disable_clears_and_restarts_window():
    model = PhaseErrorModel()
    base = {"window_slots": 5}
    for s in range(3):
        model.step(slot=s, x_valid=1, **base)
    model.step(slot=3, enable=0, x_valid=1, **base)          # dropped: disabled
    assert model.counts == [0, 0, 0, 0]
    for s in range(4, 11):
        model.step(slot=s, x_valid=int(s < 9), **base)       # window [4, 9)
    assert model.closed == [{"index": 0, "x_sifted": 5, "x_errors": 0, "mid_plus": 0,
                             "mid_minus": 0, "end_slot": 9}]


def test_zero_lengths_act_as_one_and_counts_saturate():
    model = PhaseErrorModel()
    for s in range(5):
        model.step(slot=s, window_slots=0)
    assert [r["end_slot"] for r in model.closed] == [1, 2, 3]
    model = PhaseErrorModel()
    model.running, model.counts = 1, [COUNT_MAX - 1, 0, 0, 0]
    model.end_slot = 100
    for s in range(3):
        model.step(slot=s, x_valid=1, window_slots=100)
    assert model.counts[0] == COUNT_MAX and model.counts[1] == 0


# -- SPI DAC master and decoder ---------------------------------------------------------------

def run_dac(model: SpiDacModel, cycles: int, writes: dict[int, int], **config) -> dict:
    pins = {k: np.zeros(cycles, np.uint8) for k in ("sclk", "mosi", "sync_n", "busy", "done")}
    for i in range(cycles):
        out = model.step(write=int(i in writes), value=writes.get(i, 0), **config)
        for k in pins:
            pins[k][i] = getattr(out, k)
    return pins


FRAMINGS = {
    "dac8568": (DAC8568, {"frame_bits": DAC8568_FRAME_BITS, "suffix_bits": DAC8568_SUFFIX_BITS,
                          "prefix": dac8568_prefix(2), "suffix": 0b1010}),
    "ad5686": (AD5686, {"frame_bits": AD5686_FRAME_BITS, "prefix": ad5686_prefix(0b0001)}),
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
@pytest.mark.parametrize("clock_div", [3, 4, 7])
@pytest.mark.parametrize("cpol", [0, 1])
def test_dac_model_frames_decode(framing, clock_div, cpol):
    timing, config = FRAMINGS[framing]
    model = SpiDacModel()
    writes = {400: 0x1234, 1000: 0xFFFF, 1600: 0x0000}
    pins = run_dac(model, 2400, writes, clock_div=clock_div, cpol=cpol, **config)
    dec = SpiDacDecoder(timing, clock_ns=4.0, strict=True)
    dec.feed(pins["sclk"], pins["mosi"], pins["sync_n"])
    assert dec.values == [0x8000, 0x1234, 0xFFFF, 0x0000]     # safe value first
    assert dec.violations == []
    fb = config["frame_bits"]
    for f in dec.frames:
        assert f.word == frame_word(f.value, **{k: config[k] for k in config if k != "cpol"})
        assert f.end_cycle - f.start_cycle == (2 * fb + 2) * clock_div
    assert dec.frames[1].prefix == config["prefix"]
    assert int(pins["done"].sum()) == 4 == model.writes
    assert pins["sclk"][-1] == cpol and pins["sync_n"][-1] == 1


def test_dac_queued_write_latest_wins():
    model = SpiDacModel()
    config = dict(FRAMINGS["ad5686"][1], clock_div=3)
    writes = {40: 0x1111, 50: 0x2222, 100: 0x3333, 140: 0x4444}   # while the safe write runs
    pins = run_dac(model, 1000, writes, **config)
    dec = SpiDacDecoder(AD5686, strict=True)
    dec.feed(pins["sclk"], pins["mosi"], pins["sync_n"])
    assert dec.values == [0x8000, 0x4444]
    assert dec.frames[0].start_cycle == model.sync_high_cycles   # SYNC high after reset
    # SYNC high between the frames: sync_high_cycles + 1
    assert dec.frames[1].start_cycle - dec.frames[0].end_cycle == model.sync_high_cycles + 1
    assert pins["busy"][dec.frames[0].end_cycle:dec.frames[1].start_cycle].all()


def test_dac_write_before_safe_write_replaces_it():
    """The safe value is a queued write: a host write in the SYNC high time after reset wins."""
    model = SpiDacModel()
    pins = run_dac(model, 600, {3: 0x0123}, **FRAMINGS["ad5686"][1], clock_div=3)
    dec = SpiDacDecoder(AD5686, strict=True)
    dec.feed(pins["sclk"], pins["mosi"], pins["sync_n"])
    assert dec.values == [0x0123] and model.writes == 1


@pytest.mark.parametrize("seed", range(6))
def test_dac_wait_skips_exactly_what_steps_do(seed):
    """``wait`` (the model backend's fast-forward) leaves the model in the state the same
    cycles of ``step`` reach: random writes, configuration changes and dividers."""
    rng = np.random.default_rng(seed)
    stepped, waited = SpiDacModel(), SpiDacModel()
    config = dict(FRAMINGS["ad5686"][1], clock_div=3, cpol=0)
    cycle = 0
    while cycle < 20_000:
        if rng.random() < 0.02:
            config = dict(FRAMINGS[str(rng.choice(list(FRAMINGS)))][1],
                          clock_div=int(rng.integers(0, 9)), cpol=int(rng.integers(0, 2)))
        write = int(rng.random() < 0.5)
        value = int(rng.integers(0, 1 << 16))
        stepped.step(write=write, value=value, **config)
        waited.step(write=write, value=value, **config)
        cycle += 1
        span = int(rng.integers(1, 200))
        for _ in range(span):
            stepped.step(**config)
        done = 0
        while done < span:
            skipped = waited.wait(span - done)
            if not skipped:
                waited.step(**config)
                skipped = 1
            done += skipped
        cycle += span
        assert vars(waited) == vars(stepped), f"cycle {cycle}"
    assert stepped.writes > 10


def test_dac_rejects_bad_framing():
    model = SpiDacModel()
    pins = run_dac(model, 300, {}, frame_bits=33, clock_div=3)
    assert model.rejected == 1 and model.writes == 0 and pins["sync_n"].all()
    pins = run_dac(model, 300, {0: 5}, frame_bits=24, suffix_bits=9, clock_div=3)
    assert model.rejected == 2 and pins["sync_n"].all()


def test_decoder_flags_fast_clock():
    """clock_div 1 at 250 MHz: 8 ns SCLK period breaks t1 (20 ns) and the data setup t5."""
    model = SpiDacModel()
    pins = run_dac(model, 300, {}, clock_div=1, **FRAMINGS["dac8568"][1])
    dec = SpiDacDecoder(DAC8568)
    dec.feed(pins["sclk"], pins["mosi"], pins["sync_n"])
    rules = {v.rule for v in dec.violations}
    assert {"t1", "t4", "t5", "t6"} <= rules
    assert dec.values == [0x8000]          # still decodable: the timing is only flagged
    with pytest.raises(SpiTimingError, match="t4"):
        SpiDacDecoder(DAC8568, strict=True).feed(pins["sclk"], pins["mosi"], pins["sync_n"])


def test_decoder_short_frame_and_sync_high():
    """A frame cut short is not latched; frames too close together break t8."""
    dec = SpiDacDecoder(AD5686, clock_ns=10.0)

    def frame(bits, gap):
        seq = [(1, 0, 1)] * gap
        for b in bits:
            seq += [(1, b, 0), (1, b, 0), (0, b, 0), (0, b, 0)]
        return seq + [(1, 0, 0), (1, 0, 1)]

    word = [int(c) for c in f"{0x3_1ABCD:024b}"]
    seq = frame(word, 5) + frame(word[:20], 5) + frame(word, 1)
    for s in seq:
        dec.sample(*s)
    assert dec.values == [0xABCD, 0xABCD]
    assert [v.rule for v in dec.violations] == ["frame_length", "t8"]
    assert dec.violations[0].measured == 20
    assert dec.frames[0].prefix == 0x31


def test_decoder_chunking_matches_sampling():
    model = SpiDacModel()
    pins = run_dac(model, 3000, {700: 0xBEEF, 1500: 0x0F0F}, clock_div=5,
                   **FRAMINGS["dac8568"][1])
    whole = SpiDacDecoder(DAC8568)
    whole.feed(pins["sclk"], pins["mosi"], pins["sync_n"])
    chunked = SpiDacDecoder(DAC8568)
    for lo in range(0, 3000, 77):
        chunked.feed(pins["sclk"][lo:lo + 77], pins["mosi"][lo:lo + 77],
                     pins["sync_n"][lo:lo + 77])
    single = SpiDacDecoder(DAC8568)
    for i in range(3000):
        single.sample(pins["sclk"][i], pins["mosi"][i], pins["sync_n"][i])
    assert whole.frames == chunked.frames == single.frames
    assert whole.values == [0x8000, 0xBEEF, 0x0F0F]


def test_prefix_helpers_validate():
    assert dac8568_prefix(0) == 0x030 and dac8568_prefix(15, control=1) == 0x01F
    assert ad5686_prefix(0b1111) == 0x3F
    with pytest.raises(ValueError):
        dac8568_prefix(9)
    with pytest.raises(ValueError):
        ad5686_prefix(0)
