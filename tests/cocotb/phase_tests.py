"""cocotb tests of ``PhaseErrorUnit`` and ``SpiDac``, each built alone (test_phase_cocotb.py).

Every test drives the block cycle by cycle and compares all its outputs, every cycle, with the
golden model (:mod:`tbqkd.hdl.golden_phase`) stepped with the same inputs; the SPI pins are also
decoded live by a DAC model coroutine (:class:`tbqkd.sim.dac.SpiDacDecoder`) that checks the
datasheet timing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from tbqkd.hdl.golden_phase import (
    AD5686_FRAME_BITS,
    DAC8568_FRAME_BITS,
    DAC8568_SUFFIX_BITS,
    PhaseErrorModel,
    SpiDacModel,
    WindowMode,
    ad5686_prefix,
    dac8568_prefix,
)
from tbqkd.hdl.records import PHASE_WINDOW, SLOT_BITS
from tbqkd.sim.dac import AD5686, DAC8568, DacTiming, SpiDacDecoder

CLOCK_NS = 4
SLOT_MOD = 1 << SLOT_BITS


def params(var: str) -> dict:
    return json.loads(os.environ.get(var, "{}"))


async def reset(dut, inputs: dict[str, int]) -> None:
    """Start the clock (once), hold reset for 3 cycles with ``inputs`` applied."""
    if not getattr(dut, "_clock_started", False):
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        dut._clock_started = True
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    for name, value in inputs.items():
        getattr(dut, name).value = value
    await ClockCycles(dut.clk, 3)


async def lockstep(dut, model, cycles: list[dict[str, int]]) -> list:
    """Apply one full input dict per cycle (releasing reset with the first); after each edge
    compare every output with ``model.step`` of that cycle's inputs. Returns the model outputs.
    """
    prev, outs = None, []
    outputs: dict[str, object] = {}
    ports = {name: getattr(dut, name) for name in cycles[0]} if cycles else {}
    driven: dict[str, int] = {}
    for inputs in [*cycles, None]:
        await RisingEdge(dut.clk)
        if inputs is not None:
            dut.rst.value = 0
            for name, value in inputs.items():
                if driven.get(name) != value:       # writes through VPI are the slow part
                    ports[name].value = value
                    driven[name] = value
        await ReadOnly()
        if prev is not None:
            want = asdict(model.step(**prev))
            for name, value in want.items():
                if name == "win_tdata" and not want["win_tvalid"]:
                    continue
                if name not in outputs:
                    outputs[name] = getattr(dut, name)
                got = int(outputs[name].value)
                assert got == value, (f"cycle {len(outs)}: {name} = {got:#x}, model {value:#x}"
                                      f" (inputs {prev})")
            outs.append(want)
        prev = inputs
    return outs


# -- PhaseErrorUnit ----------------------------------------------------------------------------

PHASE_IDLE = {"x_valid": 0, "x_bob_bit": 0, "x_alice_bit": 0, "mid_valid": 0, "mid_minus": 0,
              "slot": 0, "mode": 0, "window_slots": 1, "window_events": 1, "four_state": 0,
              "enable": 0, "irq_ack": 0, "win_tready": 1}


def random_phase_cycles(rng: np.random.Generator, n: int, *, slot0: int, slot_rate: float,
                        x_rate: float, mid_rate: float, ready_rate: float, ack_rate: float,
                        **config: int) -> list[dict[str, int]]:
    slot = (slot0 + np.cumsum(rng.random(n) < slot_rate)) % SLOT_MOD
    cols = {
        "slot": slot, "x_valid": rng.random(n) < x_rate, "x_bob_bit": rng.random(n) < 0.2,
        "x_alice_bit": rng.random(n) < 0.3, "mid_valid": rng.random(n) < mid_rate,
        "mid_minus": rng.random(n) < 0.3, "win_tready": rng.random(n) < ready_rate,
        "irq_ack": rng.random(n) < ack_rate,
    }
    base = {**PHASE_IDLE, "enable": 1, **config}
    return [{**base, **{k: int(v[i]) for k, v in cols.items()}} for i in range(n)]


async def phase_started(dut) -> PhaseErrorModel:
    await reset(dut, PHASE_IDLE)
    return PhaseErrorModel(**params("TBQKD_PHASE_PARAMS"))


def totals(cycles: list[dict[str, int]]) -> list[int]:
    """Every enabled event, by counter (three-state errors unless the cycle is four-state)."""
    t = [0, 0, 0, 0]
    for c in cycles:
        if not c["enable"]:
            continue
        err = c["x_bob_bit"] ^ c["x_alice_bit"] if c["four_state"] else c["x_bob_bit"]
        t[0] += c["x_valid"]
        t[1] += c["x_valid"] & err
        t[2] += c["mid_valid"] & (1 - c["mid_minus"])
        t[3] += c["mid_valid"] & c["mid_minus"]
    return t


@cocotb.test(timeout_time=30, timeout_unit="ms")
async def test_phase_random_vs_model(dut):
    """Seeded random streams in both modes and conventions, random TREADY and acks."""
    rng = np.random.default_rng(2026)
    model = await phase_started(dut)
    segments = [
        dict(slot0=SLOT_MOD - 2000, slot_rate=0.3, x_rate=0.15, mid_rate=0.2, ready_rate=0.5,
             ack_rate=0.05, mode=WindowMode.SLOTS, window_slots=60),
        dict(slot0=100, slot_rate=0.3, x_rate=0.3, mid_rate=0.3, ready_rate=0.7,
             ack_rate=0.05, mode=WindowMode.EVENTS, window_events=25, four_state=1),
        dict(slot0=5000, slot_rate=1.0, x_rate=0.5, mid_rate=0.5, ready_rate=0.1,
             ack_rate=0.3, mode=WindowMode.EVENTS, window_events=2),      # overruns the FIFO
        dict(slot0=9000, slot_rate=0.5, x_rate=0.2, mid_rate=0.2, ready_rate=0.9,
             ack_rate=0.05, mode=WindowMode.SLOTS, window_slots=7, four_state=1),
    ]
    fields = ("x_sifted", "x_errors", "mid_plus", "mid_minus")
    for seg in segments:
        cycles = random_phase_cycles(rng, 3000, **seg)
        closed_before = len(model.closed)
        await lockstep(dut, model, cycles)
        # nothing counted twice or lost: this segment's windows + the open one = its events
        windows = model.closed[closed_before:] + ([model.detected] if model.detected else [])
        counted = [sum(r[f] for r in windows) + c
                   for f, c in zip(fields, model.counts, strict=True)]
        assert counted == totals(cycles)
        assert len(model.closed) - closed_before > 10
        await lockstep(dut, model, [{**cycles[-1], "enable": 0}] * 3)   # clears the window
    assert model.dropped > 50 and len(model.sent) > 300
    assert [r["index"] for r in model.closed] == list(range(len(model.closed)))


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_phase_window_boundaries_slots(dut):
    """Slot mode: events in the boundary cycle (and later cycles of that slot) open the next
    window; the end slot wraps past 2^48."""
    model = await phase_started(dut)
    start = SLOT_MOD - 6
    base = {**PHASE_IDLE, "enable": 1, "window_slots": 4}
    cycles = []
    for i in range(40):                                  # each slot lasts 3 cycles
        cycles.append({**base, "slot": (start + i // 3) % SLOT_MOD})
    # window 0 = slots start .. start+3 = cycles 0..11; boundary cycle 12 (slot start+4)
    cycles[11].update(x_valid=1, x_bob_bit=1)            # last cycle of window 0: error
    cycles[12].update(x_valid=1, mid_valid=1, mid_minus=1)   # boundary cycle: window 1
    cycles[13].update(mid_valid=1)                      # same slot, later cycle: window 1
    cycles[23].update(x_valid=1)                        # last cycle of window 1
    cycles[24].update(x_valid=1, x_bob_bit=1)            # boundary: window 2
    await lockstep(dut, model, cycles)
    assert model.closed[:2] == [
        {"index": 0, "x_sifted": 1, "x_errors": 1, "mid_plus": 0, "mid_minus": 0,
         "end_slot": (start + 4) % SLOT_MOD},
        {"index": 1, "x_sifted": 2, "x_errors": 0, "mid_plus": 1, "mid_minus": 1,
         "end_slot": (start + 8) % SLOT_MOD},
    ]
    assert model.closed[2]["x_errors"] == 1 and model.closed[1]["end_slot"] == 2  # wrapped


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_phase_window_boundaries_events(dut):
    """Event mode: the N-th event's cycle (with its middle click) closes the window; windows
    of one event close back to back every cycle."""
    model = await phase_started(dut)
    base = {**PHASE_IDLE, "enable": 1, "mode": WindowMode.EVENTS, "window_events": 3}
    cycles = [{**base, "slot": 50 + i} for i in range(30)]
    for i in (2, 4):
        cycles[i].update(x_valid=1)
    cycles[6].update(x_valid=1, x_bob_bit=1, mid_valid=1, mid_minus=1)   # 3rd: closes
    cycles[7].update(mid_valid=1, mid_minus=0)                            # next window
    # a new length applies from the next window: the open one (1 middle click) still needs
    # 3 X events; after it, windows of one event close back to back
    back_to_back = [{**base, "window_events": 1, "slot": 80 + i, "x_valid": 1,
                     "x_bob_bit": i % 2} for i in range(12)]
    await lockstep(dut, model, cycles + back_to_back + [{**base, "slot": 92}])
    assert model.closed[0] == {"index": 0, "x_sifted": 3, "x_errors": 1, "mid_plus": 0,
                               "mid_minus": 1, "end_slot": 56}
    assert model.closed[1] == {"index": 1, "x_sifted": 3, "x_errors": 1, "mid_plus": 1,
                               "mid_minus": 0, "end_slot": 82}
    assert [r["x_errors"] for r in model.closed[2:]] == [i % 2 for i in range(3, 12)]
    assert [r["end_slot"] for r in model.closed[2:]] == list(range(83, 92))


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_phase_four_state(dut):
    """The same X events, three-state then four-state: errors follow the convention."""
    model = await phase_started(dut)
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)] * 5          # (bob, alice)
    cycles = []
    for four_state in (0, 1):
        base = {**PHASE_IDLE, "enable": 1, "mode": WindowMode.EVENTS, "window_events": 20,
                "four_state": four_state}
        cycles += [{**base, "slot": i, "x_valid": 1, "x_bob_bit": b, "x_alice_bit": a}
                   for i, (b, a) in enumerate(pairs)]
    cycles += [{**cycles[-1], "x_valid": 0}] * 4
    outs = await lockstep(dut, model, cycles)
    assert [r["x_errors"] for r in model.closed] == [10, 10]
    assert [r["x_sifted"] for r in model.closed] == [20, 20]
    errors_3 = sum(b for b, _ in pairs)
    errors_4 = sum(b != a for b, a in pairs)
    assert errors_3 == errors_4 == 10
    # a stream where the conventions differ: Bob 1 with Alice 1 is correct in four-state only
    cycles = [{**PHASE_IDLE, "mode": WindowMode.EVENTS, "window_events": 4}]   # restart
    cycles += [{**PHASE_IDLE, "enable": 1, "mode": WindowMode.EVENTS, "window_events": 4,
                "four_state": fs, "slot": 200 + i, "x_valid": 1, "x_bob_bit": 1,
                "x_alice_bit": 1} for fs in (0, 1) for i in range(4)]
    await lockstep(dut, model, [*cycles, {**cycles[-1], "x_valid": 0}])
    assert [r["x_errors"] for r in model.closed[2:]] == [4, 0]
    assert outs[-1]["win_tvalid"] == 0


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_phase_snapshot_irq_ack(dut):
    """irq is a level held until irq_ack; a close in the ack's cycle wins; snapshots hold."""
    model = await phase_started(dut)
    base = {**PHASE_IDLE, "enable": 1, "mode": WindowMode.EVENTS, "window_events": 2}
    cycles = [{**base, "slot": i} for i in range(40)]
    cycles[3].update(x_valid=1)
    cycles[5].update(x_valid=1, mid_valid=1)            # completes window 0: closes at 6
    cycles[15].update(irq_ack=1)
    cycles[20].update(x_valid=1)
    cycles[25].update(x_valid=1, x_bob_bit=1)            # completes window 1
    cycles[26].update(irq_ack=1)                        # ... which closes with an ack
    cycles[30].update(irq_ack=1)
    outs = await lockstep(dut, model, cycles)
    irq = [o["irq"] for o in outs]
    assert irq[:6] == [0] * 6 and all(irq[6:15]) and not any(irq[15:26])
    assert all(irq[26:30]) and not any(irq[30:])
    assert all(o["snap_index"] == 0 and o["snap_x_sifted"] == 2 and o["snap_mid_plus"] == 1
               and o["snap_end_slot"] == 5 for o in outs[6:26])
    assert outs[-1]["snap_index"] == 1 and outs[-1]["snap_x_errors"] == 1
    assert outs[-1]["snap_end_slot"] == 25
    # Disabled: nothing counts and no window closes, the snapshot stays.
    cycles = [{**PHASE_IDLE, "slot": 100 + i, "x_valid": 1, "mode": WindowMode.EVENTS}
              for i in range(20)]
    outs = await lockstep(dut, model, cycles)
    assert len(model.closed) == 2 and outs[-1]["snap_index"] == 1


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_phase_backpressure_drops(dut):
    """TREADY low: the FIFO keeps the newest records, drops are counted exactly, counting goes
    on; then the stream drains in order with TLAST on every record."""
    model = await phase_started(dut)
    depth = model.fifo_depth
    base = {**PHASE_IDLE, "enable": 1, "mode": WindowMode.SLOTS, "window_slots": 3,
            "win_tready": 0}
    n_windows = 20
    cycles = [{**base, "slot": i, "x_valid": 1, "x_bob_bit": int(i % 5 == 0)}
              for i in range(3 * n_windows + 2)]
    outs = await lockstep(dut, model, cycles)
    assert len(model.closed) == n_windows
    assert outs[-1]["win_dropped"] == n_windows - 1 - depth
    assert outs[-1]["snap_index"] == n_windows - 1          # the snapshot never waits
    assert int(dut.win_tlast.value) == 1
    drain = [{**cycles[-1], "x_valid": 0, "enable": 0, "win_tready": 1}] * (depth + 4)
    await lockstep(dut, model, drain)
    assert [r["index"] for r in model.sent] == [0, *range(n_windows - depth, n_windows)]
    assert all(r["x_sifted"] == 3 for r in model.sent)
    assert int(dut.win_tvalid.value) == 0
    # a record decodes with the shared layout
    assert PHASE_WINDOW.unpack(PHASE_WINDOW.pack(**model.sent[-1])) == model.sent[-1]


# -- SpiDac ------------------------------------------------------------------------------------

DAC8568_CONFIG = {"frame_bits": DAC8568_FRAME_BITS, "suffix_bits": DAC8568_SUFFIX_BITS,
                  "prefix": dac8568_prefix(0), "suffix": 0b0000}
AD5686_CONFIG = {"frame_bits": AD5686_FRAME_BITS, "suffix_bits": 0,
                 "prefix": ad5686_prefix(0b0001), "suffix": 0}
DAC_IDLE = {"write": 0, "value": 0, "clock_div": 3, "cpol": 1, **DAC8568_CONFIG}


class DacMonitor:
    """The DAC: samples the pins every cycle and decodes them with ``decoder``."""

    def __init__(self, dut, timing: DacTiming, strict: bool = True) -> None:
        self.decoder = SpiDacDecoder(timing, clock_ns=CLOCK_NS, strict=strict)
        self._dut = dut
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        dut = self._dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            self.decoder.sample(int(dut.sclk.value), int(dut.mosi.value),
                                int(dut.sync_n.value))

    def use(self, timing: DacTiming, strict: bool = True) -> SpiDacDecoder:
        """Swap in a fresh decoder (between frames) for another DAC's framing."""
        self.decoder = SpiDacDecoder(timing, clock_ns=CLOCK_NS, strict=strict,
                                     _pins=self.decoder._pins)
        return self.decoder


def dac_model() -> SpiDacModel:
    return SpiDacModel(**params("TBQKD_DAC_PARAMS"))


def writes_at(base: dict, n: int, writes: dict[int, int]) -> list[dict[str, int]]:
    return [{**base, "write": int(i in writes), "value": writes.get(i, 0)} for i in range(n)]


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_dac_safe_value_after_reset(dut):
    """After reset the safe value is written once; a reset in mid-frame aborts that frame (the
    DAC ignores it: too short) and writes the safe value again."""
    await reset(dut, DAC_IDLE)
    mon = DacMonitor(dut, DAC8568, strict=False)
    model = dac_model()
    outs = await lockstep(dut, model, [DAC_IDLE] * 1500)
    assert mon.decoder.values == [model.safe_value] and model.writes == 1
    assert sum(o["done"] for o in outs) == 1 and outs[-1]["busy"] == 0
    first_low = next(i for i, o in enumerate(outs) if not o["sync_n"])
    assert first_low == model.sync_high_cycles and all(o["busy"] for o in outs[:first_low])
    # a user write, then reset in the middle of it
    await lockstep(dut, model, writes_at(DAC_IDLE, 100, {0: 0x1234}))
    await reset(dut, DAC_IDLE)
    model = dac_model()
    await lockstep(dut, model, [DAC_IDLE] * 500)
    assert mon.decoder.values == [0x8000, 0x8000]
    # the aborted frame is too short for the DAC (it ignores it); the reset may also cut the
    # SCLK phase it lands in short, which is harmless for an aborted frame
    rules = [v.rule for v in mon.decoder.violations]
    assert "frame_length" in rules and set(rules) <= {"frame_length", "t2", "t3"}
    assert int(dut.writes.value) == 1


@cocotb.test(timeout_time=30, timeout_unit="ms")
async def test_dac_framings_and_dividers(dut):
    """Both framings, several clock_div and both SCLK idle levels: the DAC reads back every
    value with the right command bits and no timing violation."""
    rng = np.random.default_rng(7)
    await reset(dut, DAC_IDLE)
    mon = DacMonitor(dut, DAC8568)
    model = dac_model()
    await lockstep(dut, model, [DAC_IDLE] * 400)              # the safe write
    for timing, config in ((DAC8568, DAC8568_CONFIG), (AD5686, AD5686_CONFIG)):
        for clock_div in (3, 4, 6):
            for cpol in (0, 1):
                dec = mon.use(timing)
                base = {**DAC_IDLE, **config, "clock_div": clock_div, "cpol": cpol}
                frame_cycles = (2 * config["frame_bits"] + 2) * clock_div + 30
                values = [int(v) for v in rng.integers(0, 1 << 16, 3)]
                writes = {2 + k * frame_cycles: v for k, v in enumerate(values)}
                await lockstep(dut, model, writes_at(base, 3 * frame_cycles + 10, writes))
                assert dec.values == values, (timing.name, clock_div, cpol)
                assert {f.prefix for f in dec.frames} == {config["prefix"]}
                assert all(f.end_cycle - f.start_cycle
                           == (2 * config["frame_bits"] + 2) * clock_div for f in dec.frames)
    assert int(dut.writes.value) == 1 + 2 * 3 * 2 * 3


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_dac_queued_write_while_busy(dut):
    """Writes while a frame runs (and in the SYNC high time after it) are queued; the latest
    value wins and goes out right after."""
    await reset(dut, DAC_IDLE)
    mon = DacMonitor(dut, DAC8568)
    model = dac_model()
    await lockstep(dut, model, [DAC_IDLE] * 400)
    frame = (2 * 32 + 2) * 3
    writes = {0: 0x1111, 10: 0x2222, 50: 0x3333, 60: 0x4444,         # 2..4 during frame 1
              2 * frame + 40: 0x5555}                                  # in frame 2's SYNC gap
    outs = await lockstep(dut, model, writes_at(DAC_IDLE, 4 * frame, writes))
    assert mon.decoder.values == [0x8000, 0x1111, 0x4444, 0x5555]
    assert all(o["busy"] for o in outs[:frame * 3])
    gaps = [b.start_cycle - a.end_cycle for a, b in zip(mon.decoder.frames[1:],
                                                          mon.decoder.frames[2:], strict=False)]
    assert gaps == [model.sync_high_cycles + 1] * 2
    # a write with a framing the DAC cannot take is refused and counted, nothing is sent
    bad = {**DAC_IDLE, "frame_bits": 40}
    await lockstep(dut, model, writes_at(bad, 50, {1: 0x7777}))
    assert int(dut.rejected.value) == 1 and mon.decoder.values[-1] == 0x5555


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_dac_timing_limits(dut):
    """At 250 MHz, clock_div 3 meets every DAC8568 and AD5686 minimum (strict decoders); the
    decoder does catch clock_div 1 and 2, which break t1 (and more)."""
    await reset(dut, DAC_IDLE)
    mon = DacMonitor(dut, DAC8568)
    model = dac_model()
    await lockstep(dut, model, [DAC_IDLE] * 400)
    for timing, config in ((DAC8568, DAC8568_CONFIG), (AD5686, AD5686_CONFIG)):
        dec = mon.use(timing)
        base = {**DAC_IDLE, **config, "clock_div": 3}
        await lockstep(dut, model, writes_at(base, 500, {2: 0xA5A5, 250: 0x5A5A}))
        assert dec.values == [0xA5A5, 0x5A5A] and dec.violations == []
    for clock_div, broken in ((1, {"t1", "t2", "t3", "t4", "t5", "t6"}),
                              (2, {"t1", "t2", "t3"})):
        dec = mon.use(DAC8568, strict=False)
        base = {**DAC_IDLE, **DAC8568_CONFIG, "clock_div": clock_div}
        await lockstep(dut, model, writes_at(base, 300, {2: 0x0F0F}))
        assert dec.values == [0x0F0F]
        assert {v.rule for v in dec.violations} == broken, clock_div


@cocotb.test(timeout_time=30, timeout_unit="ms")
async def test_dac_random_vs_model(dut):
    """Seeded random writes, framings (some invalid), dividers and idle levels vs the model."""
    rng = np.random.default_rng(99)
    await reset(dut, DAC_IDLE)
    model = dac_model()
    cycles = []
    for _ in range(12):
        config = dict(DAC8568_CONFIG if rng.random() < 0.5 else AD5686_CONFIG)
        if rng.random() < 0.2:
            config["frame_bits"] = int(rng.choice([0, 15, 33, 63]))
        base = {**DAC_IDLE, **config, "clock_div": int(rng.integers(0, 5)),
                "cpol": int(rng.integers(0, 2)), "prefix": int(rng.integers(0, 1 << 16)),
                "suffix": int(rng.integers(0, 1 << 16))}
        n = 800
        w = rng.random(n) < 0.01
        v = rng.integers(0, 1 << 16, n)
        cycles += [{**base, "write": int(w[i]), "value": int(v[i])} for i in range(n)]
    await lockstep(dut, model, cycles)
    assert model.writes > 20 and model.rejected > 0
