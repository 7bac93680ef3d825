"""cocotb tests of the Classifier block, run by test_classifier_cocotb.py under Verilator.

Every test drives events one per cycle (with seeded idle gaps), records what leaves on
``o_valid``, and compares it record by record with :class:`ClassifierModel`; counters and the
lock-monitor registers are compared once the pipeline has drained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from tbqkd.hdl.golden_classifier import (
    CLASSIFIER_LATENCY,
    LOCK_OFFSET_BITS,
    ClassifiedEvents,
    ClassifierConfig,
    ClassifierModel,
)
from tbqkd.hdl.records import EVENT, PHASE_BITS, Bin, Role

N_CHANNELS = int(os.environ.get("TBQKD_CLASSIFIER_CHANNELS", "5"))
CLOCK_NS = 4
P = 13_167                      # ps: a slot of the reference experiment's 75.947 MHz clock
SLOT_MASK = (1 << 48) - 1
DRAIN = CLASSIFIER_LATENCY + 6  # cycles until every counter and lock register has settled
PULSES = ("align", "clear_counters", "clear_lost_lock")


def default_config(**overrides) -> ClassifierConfig:
    """Z, X+, X−, reference, monitor (channels 0..4), windows of the reference experiment."""
    n = N_CHANNELS
    roles = [Role.Z, Role.X_PLUS, Role.X_MINUS, Role.REFERENCE, Role.MONITOR]
    values = dict(n_channels=n, slot_period=P, role=[int(roles[ch % 5]) for ch in range(n)],
                  delay=[0] * n, early_start=[1000] * n, early_width=[2000] * n,
                  late_start=[7500] * n, late_width=[2000] * n, middle_start=[4300] * n,
                  middle_width=[2000] * n, ref_phase=6000, ref_window_log2=2,
                  lock_threshold=200)
    values.update(overrides)
    return ClassifierConfig(**values)


@dataclass
class Stimulus:
    """Events in input order, idle cycles before each, and pulses given before event ``i``.

    ``pulses[i]``: names of control pulses asserted in the cycle of event ``i`` (``on_event``)
    or in an idle cycle just before it (when ``gap[i] > 0`` and not ``on_event``).
    """

    slot: list[int]
    phase: list[int]
    channel: list[int]
    gap: list[int] = field(default_factory=list)
    pulses: dict[int, list[str]] = field(default_factory=dict)
    on_event: bool = True

    def __post_init__(self) -> None:
        if not self.gap:
            self.gap = [0] * len(self.slot)
        if not len(self.slot) == len(self.phase) == len(self.channel) == len(self.gap):
            raise ValueError("slot, phase, channel and gap differ in length")

    def expected(self, model: ClassifierModel) -> ClassifiedEvents:
        """Run the model over the stimulus, applying the pulses between the same events."""
        cuts = sorted({0, len(self.slot), *self.pulses})
        parts = []
        for lo, hi in zip(cuts, cuts[1:] + [None], strict=False):
            for name in self.pulses.get(lo, ()):
                getattr(model, name)()
            if hi is None:
                break
            part = model.run(self.slot[lo:hi], self.phase[lo:hi], self.channel[lo:hi])
            part.index += lo                 # positions in the whole stimulus
            parts.append(part)
        return ClassifiedEvents.concatenate(parts)


class ClassifierTestbench:
    def __init__(self, dut, config: ClassifierConfig, *, seed: int = 1) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.config = config
        self.records: list[tuple[int, ...]] = []
        self.record_ps: list[int] = []      # sim time of each record (sampled after its edge)
        self.presented_ps: list[int] = []   # sim time each event of the last drive() was set
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.o_valid.value):
                self.record_ps.append(int(get_sim_time("ps")))
                event = EVENT.unpack(int(dut.o_event.value))
                self.records.append((event["slot"], event["phase"], event["channel"],
                                     event["bin"], event["basis"], event["bit"],
                                     int(dut.o_key.value), int(dut.mid_valid.value),
                                     int(dut.mid_minus.value)))
            elif int(dut.mid_valid.value):
                raise AssertionError("mid_valid without o_valid")

    # --- setup ---------------------------------------------------------------------------
    def apply(self, config: ClassifierConfig) -> None:
        """Drive every configuration input (quasi-static: do it while no event is in flight)."""
        dut = self.dut
        self.config = config
        dut.slot_period.value = config.slot_period
        dut.ref_phase.value = config.ref_phase
        dut.ref_window_log2.value = config.ref_window_log2
        dut.lock_threshold.value = config.lock_threshold
        for name, bits in (("role", 3), ("delay", PHASE_BITS), ("early_start", PHASE_BITS),
                           ("early_width", PHASE_BITS), ("late_start", PHASE_BITS),
                           ("late_width", PHASE_BITS), ("middle_start", PHASE_BITS),
                           ("middle_width", PHASE_BITS)):
            packed = 0
            for ch, v in enumerate(getattr(config, name)):
                packed |= (v & ((1 << bits) - 1)) << (ch * bits)
            getattr(dut, name).value = packed

    async def reset(self, cycles: int = 3) -> None:
        dut = self.dut
        dut.rst.value = 1
        self.idle()
        for name in PULSES:
            getattr(dut, name).value = 0
        await ClockCycles(dut.clk, cycles)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 1)
        self.records.clear()
        self.record_ps.clear()

    def idle(self) -> None:
        self.dut.valid.value = 0
        self.dut.slot.value = 0
        self.dut.phase.value = 0
        self.dut.channel.value = 0

    # --- traffic -------------------------------------------------------------------------
    async def drive(self, stim: Stimulus) -> None:
        """Present the stimulus; returns after its last event has been clocked in."""
        dut = self.dut
        self.presented_ps = []
        await RisingEdge(dut.clk)
        for i in range(len(stim.slot)):
            pulses = stim.pulses.get(i, ())
            early_pulse = bool(pulses) and not stim.on_event and stim.gap[i] > 0
            for g in range(stim.gap[i]):
                self.idle()
                for name in PULSES:
                    getattr(dut, name).value = int(early_pulse and g == stim.gap[i] - 1
                                                   and name in pulses)
                await RisingEdge(dut.clk)
            for name in PULSES:
                getattr(dut, name).value = int(name in pulses and not early_pulse)
            dut.valid.value = 1
            dut.slot.value = stim.slot[i]
            dut.phase.value = stim.phase[i]
            dut.channel.value = stim.channel[i]
            self.presented_ps.append(int(get_sim_time("ps")))
            await RisingEdge(dut.clk)
        self.idle()
        for name in PULSES:
            getattr(dut, name).value = 0
        # pulses after the last event
        if len(stim.slot) in stim.pulses:
            for name in stim.pulses[len(stim.slot)]:
                getattr(dut, name).value = 1
            await RisingEdge(dut.clk)
            for name in PULSES:
                getattr(dut, name).value = 0

    async def pulse(self, *names: str) -> None:
        for name in names:
            getattr(self.dut, name).value = 1
        await RisingEdge(self.dut.clk)
        for name in names:
            getattr(self.dut, name).value = 0

    async def drain(self) -> None:
        await ClockCycles(self.dut.clk, DRAIN)

    async def run(self, stim: Stimulus, model: ClassifierModel) -> ClassifiedEvents:
        """Drive, drain, and check records, counters and lock registers against the model."""
        self.records.clear()
        self.record_ps.clear()
        want = stim.expected(model)
        await self.drive(stim)
        await self.drain()
        assert_records_equal(self.records, want.rows())
        latency = np.array(self.record_ps) - np.array(self.presented_ps)[want.index]
        assert np.all(latency == CLASSIFIER_LATENCY * CLOCK_NS * 1000), \
            f"latency {sorted(set((latency // (CLOCK_NS * 1000)).tolist()))} cycles"
        await self.check_state(model)
        return want

    # --- state ---------------------------------------------------------------------------
    def counters(self, name: str) -> list[int]:
        value = int(getattr(self.dut, name).value)
        return [(value >> (64 * ch)) & ((1 << 64) - 1) for ch in range(self.config.n_channels)]

    def lock_offset(self) -> int:
        value = int(self.dut.lock_offset.value)
        return value - (1 << LOCK_OFFSET_BITS) if value >> (LOCK_OFFSET_BITS - 1) else value

    async def check_state(self, model: ClassifierModel) -> None:
        await ReadOnly()
        dut = self.dut
        for name in ("early", "late", "middle", "outside"):
            assert self.counters(name) == getattr(model, name).tolist(), \
                f"{name}: {self.counters(name)} != {getattr(model, name).tolist()}"
        got = {"bad_channel": int(dut.bad_channel.value), "bad_phase": int(dut.bad_phase.value),
               "slot_base": int(dut.slot_base.value), "aligned": int(dut.aligned.value),
               "lock_offset": self.lock_offset(), "lock_spread": int(dut.lock_spread.value),
               "lock_windows": int(dut.lock_windows.value), "lost_lock": int(dut.lost_lock.value),
               "lock_violations": int(dut.lock_violations.value)}
        want = {name: int(getattr(model, name)) for name in got}
        assert got == want, f"state {got} != model {want}"
        await RisingEdge(dut.clk)


def assert_records_equal(got: list[tuple[int, ...]], want: list[tuple[int, ...]]) -> None:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"record {i}: got {g}, want {w} " \
                       f"(slot, phase, channel, bin, basis, bit, key, mid_valid, mid_minus)"
    assert len(got) == len(want), f"{len(got)} records, want {len(want)}"


async def started(dut, config: ClassifierConfig | None = None, *, seed: int = 1):
    tb = ClassifierTestbench(dut, config or default_config(), seed=seed)
    tb.apply(tb.config)
    await tb.reset()
    return tb, ClassifierModel(tb.config)


def random_stimulus(rng: np.random.Generator, n: int, config: ClassifierConfig, *,
                    max_gap: int = 2, slot_start: int | None = None) -> Stimulus:
    """Random events: mostly valid phases, a few bad phases and bad channels."""
    start = int(rng.integers(0, 1 << 48)) if slot_start is None else slot_start
    slot = (start + np.cumsum(rng.integers(0, 3, n))) & SLOT_MASK
    phase = rng.integers(0, config.slot_period, n)
    bad = rng.random(n) < 0.01
    phase[bad] = rng.integers(config.slot_period, 1 << PHASE_BITS, bad.sum())
    channel = rng.integers(0, config.n_channels, n)
    channel[rng.random(n) < 0.01] = rng.integers(config.n_channels, 256)
    gap = rng.integers(0, max_gap + 1, n) * (rng.random(n) < 0.5)
    return Stimulus(slot.tolist(), phase.tolist(), channel.tolist(), gap.tolist())


def random_windows(rng: np.random.Generator, config: ClassifierConfig) -> ClassifierConfig:
    n, period = config.n_channels, config.slot_period
    values = {}
    for name in ("early", "late", "middle"):
        values[f"{name}_start"] = rng.integers(0, period, n).tolist()
        values[f"{name}_width"] = rng.integers(0, period // 3, n).tolist()
    values["delay"] = rng.integers(-period + 1, period, n).tolist()
    return replace(config, **values)


# --- tests -------------------------------------------------------------------------------------

@cocotb.test(timeout_time=40, timeout_unit="ms")
async def test_random_events_match_model(dut):
    """Seeded random events on every role (incl. OFF), random windows, delays and pulses."""
    tb, model = await started(dut, seed=3)
    rng = tb.rng
    for round_ in range(3):
        config = random_windows(rng, tb.config)
        roles = list(config.role)
        if round_ == 1:
            roles[int(rng.integers(0, config.n_channels))] = Role.OFF
        if round_ == 2:
            roles[int(rng.integers(0, config.n_channels))] = 6    # unused code: like MONITOR
        config = replace(config, role=[int(r) for r in roles],
                         ref_phase=int(rng.integers(0, config.slot_period)),
                         ref_window_log2=int(rng.integers(0, 5)),
                         lock_threshold=int(rng.integers(0, config.slot_period // 2)))
        tb.apply(config)
        model.config = config
        await ClockCycles(dut.clk, 2)
        stim = random_stimulus(rng, 2500, config)
        for i in rng.integers(1, 2500, 6).tolist():
            stim.pulses.setdefault(i, []).append(str(rng.choice(PULSES)))
        stim.on_event = round_ != 1
        want = await tb.run(stim, model)
        assert len(want) > 1500
        bins = np.bincount(want.bin, minlength=4)
        assert bins.min() > 0, f"every bin exercised: {bins}"
        assert want.key.sum() > 0 and want.mid_valid.sum() > 0


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_window_edges(dut):
    """start−1, start, start+width−1, start+width for every window of every channel."""
    tb, model = await started(dut)
    slot, phase, channel = [], [], []
    for ch in range(tb.config.n_channels):
        for name in ("early", "late", "middle"):
            start = getattr(tb.config, f"{name}_start")[ch]
            width = getattr(tb.config, f"{name}_width")[ch]
            for p in (start - 1, start, start + width - 1, start + width):
                slot.append(100)
                phase.append(p)
                channel.append(ch)
    want = await tb.run(Stimulus(slot, phase, channel), model)
    codes = {"early": Bin.EARLY, "late": Bin.LATE, "middle": Bin.MIDDLE}
    bins = want.bin.reshape(tb.config.n_channels, 3, 4)
    for k, name in enumerate(codes):
        assert np.all(bins[:, k, 1:3] == codes[name]), name
        assert np.all(bins[:, k, [0, 3]] != codes[name]), name


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_phase_wrap_through_delay(dut):
    """Positive and negative delays move events across the slot boundary (slot ∓ 1)."""
    n = N_CHANNELS
    config = default_config(delay=[(P - 1) if ch % 2 == 0 else -(P - 1) for ch in range(n)])
    config = config.with_channel(1, delay=-5).with_channel(0, delay=5)
    tb, model = await started(dut, config)
    phases = [0, 1, 4, 5, 6, P - 6, P - 5, P - 4, P - 1]
    slot, phase, channel = [], [], []
    for ch in range(n):
        for p in phases:
            slot.append(1000)
            phase.append(p)
            channel.append(ch)
    want = await tb.run(Stimulus(slot, phase, channel), model)
    rows = {(int(c), int(p_in)): (int(s), int(p)) for c, p_in, s, p in
            zip(want.channel, np.array(phase)[want.index], want.slot, want.phase, strict=True)}
    assert rows[(0, 4)] == (999, P - 1) and rows[(0, 5)] == (1000, 0)
    assert rows[(1, P - 6)] == (1000, P - 1) and rows[(1, P - 5)] == (1001, 0)
    assert rows[(2, 0)] == (999, 1) and rows[(2, P - 1)] == (1000, 0)
    assert rows[(3, 0)] == (1000, P - 1) and rows[(3, 1)] == (1001, 0)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_slot_counter_wrap(dut):
    """Slots near 2**48: the delay wrap and slot − slot_base wrap modulo 2**48."""
    config = default_config().with_channel(0, delay=100).with_channel(1, delay=-100)
    tb, model = await started(dut, config)
    top = SLOT_MASK
    stim = Stimulus(slot=[top, top, 0, top - 1, 0, 1, top, 3],
                    phase=[P - 50, 1000, 50, 6000, 6000, 6000, 6000, 5000],
                    channel=[1, 0, 0, 3, 0, 3, 4, 2], pulses={3: ["align"]})
    want = await tb.run(stim, model)
    assert want.slot.tolist() == [0, top, top, 0, 2, 3, 1, 5]
    assert int(dut.slot_base.value) == top - 1


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_overlapping_windows(dut):
    """Priority early > late > middle where windows overlap."""
    n = N_CHANNELS
    config = default_config(early_start=[3000] * n, early_width=[2000] * n,
                            late_start=[4000] * n, late_width=[2000] * n,
                            middle_start=[4000] * n, middle_width=[3000] * n)
    tb, model = await started(dut, config)
    phases = [2999, 3000, 4500, 4999, 5000, 5999, 6000, 6999, 7000]
    stim = Stimulus([7] * len(phases) * n, phases * n,
                    [ch for ch in range(n) for _ in phases])
    want = await tb.run(stim, model)
    e, lt, mid, none = Bin.EARLY, Bin.LATE, Bin.MIDDLE, Bin.NONE
    assert want.bin[:len(phases)].tolist() == [none, e, e, e, lt, lt, mid, mid, none]


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_align_then_offsets(dut):
    """align arms; the next reference event is slot 0; re-align; the pulse's own cycle counts."""
    tb, model = await started(dut)
    stim = Stimulus(slot=[500, 501, 502, 503, 504, 600, 601, 602, 700, 701],
                    phase=[1000, 6000, 6000, 8000, 6010, 5990, 1000, 6000, 6000, 1000],
                    channel=[0, 3, 0, 3, 0, 3, 0, 3, 3, 0],
                    gap=[0, 0, 3, 0, 0, 4, 0, 0, 0, 0],
                    pulses={2: ["align"], 7: ["align"]})
    want = await tb.run(stim, model)
    # before the first align slot_base is 0; event 3 (reference) is the first after the pulse
    assert want.slot.tolist()[:3] == [500, 501, 502]
    assert want.slot.tolist()[3:7] == [0, 1, 97, 98]
    assert want.slot.tolist()[7:] == [0, 98, 99]   # pulse on event 7 (a reference event)
    assert int(dut.aligned.value) == 1 and int(dut.slot_base.value) == 602
    await tb.pulse("align")
    await ClockCycles(dut.clk, DRAIN)
    model.align()
    await tb.check_state(model)
    assert int(dut.aligned.value) == 0


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_lock_threshold_edges(dut):
    """|offset| == threshold is no violation, threshold + 1 is; sticky until clear_lost_lock."""
    config = default_config(ref_phase=P - 40, lock_threshold=50, ref_window_log2=4)
    tb, model = await started(dut, config)
    ref = 3
    ok = [P - 90, P - 40, 10, 9, P - 89]           # offsets −50, 0, +50, +49, −49
    stim = Stimulus([0] * len(ok), ok, [ref] * len(ok))
    await tb.run(stim, model)
    assert int(dut.lost_lock.value) == 0 and int(dut.lock_violations.value) == 0
    stim = Stimulus([1, 1, 1], [11, 5000, P - 91], [ref, 0, ref])  # +51, −51: violations
    await tb.run(stim, model)
    assert int(dut.lost_lock.value) == 1 and int(dut.lock_violations.value) == 2
    await tb.pulse("clear_lost_lock")
    model.clear_lost_lock()
    await tb.drain()
    await tb.check_state(model)
    assert int(dut.lost_lock.value) == 0
    # a violation presented in the same cycle as the clear pulse still sets the flag
    stim = Stimulus([2], [P - 91], [ref], pulses={0: ["clear_lost_lock"]})
    await tb.run(stim, model)
    assert int(dut.lost_lock.value) == 1 and int(dut.lock_violations.value) == 3


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_spread_and_mean_over_window(dut):
    """Windows of 2**k reference events: floor mean, max − min, count; window size changes."""
    config = default_config(ref_phase=6000, ref_window_log2=3, lock_threshold=1000)
    tb, model = await started(dut, config, seed=7)
    offsets = [-7, 3, -100, 250, 0, -1, 1, -3]        # sum 143 → 17; spread 350
    stim = Stimulus([0] * 8, [6000 + o for o in offsets], [3] * 8, gap=[0, 1, 0, 2, 0, 0, 3, 0])
    await tb.run(stim, model)
    assert (tb.lock_offset(), int(dut.lock_spread.value)) == (143 >> 3, 350)
    assert int(dut.lock_windows.value) == 1
    negative = [-5, -6, -7, -1, 0, -2, -3, -1]       # sum −25 → floor(−25/8) = −4
    await tb.run(Stimulus([1] * 8, [6000 + o for o in negative], [3] * 8), model)
    assert (tb.lock_offset(), int(dut.lock_spread.value)) == (-4, 7)
    # random references interleaved with other channels, then a window size change
    for log2 in (0, 2, 5):
        partial = Stimulus([2] * 3, [6000, 6001, 6003], [3] * 3)
        await tb.run(partial, model)
        config = replace(config, ref_window_log2=log2)
        tb.apply(config)
        model.config = config
        n = 300
        channel = np.where(tb.rng.random(n) < 0.6, 3, tb.rng.integers(0, N_CHANNELS, n))
        phase = np.where(channel == 3, 6000 + tb.rng.integers(-900, 900, n),
                         tb.rng.integers(0, P, n))
        await tb.run(Stimulus([5] * n, phase.tolist(), channel.tolist()), model)
        assert model.lock_windows > 0
    # A clear empties the open window: its extremes do not reach the next window's spread.
    config = replace(config, ref_window_log2=3)
    tb.apply(config)
    model.config = config

    async def clear():
        await tb.pulse("clear_counters")
        model.clear_counters()
        await tb.drain()

    await clear()                                     # start from an empty window
    await tb.run(Stimulus([6] * 2, [6000 + 800, 6000 - 800], [3] * 2), model)   # wide, partial
    await clear()
    small = [1, -2, 0, 3, -1, 2, 0, 1]                # sum 4 → 0; spread 5
    await tb.run(Stimulus([7] * 8, [6000 + o for o in small], [3] * 8), model)
    assert (tb.lock_offset(), int(dut.lock_spread.value)) == (0, 5)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_reset_in_the_middle_of_traffic(dut):
    """Events in flight at reset are lost, nothing else; everything restarts from zero."""
    tb, model = await started(dut, seed=5)
    rng = tb.rng
    stim = random_stimulus(rng, 400, tb.config, max_gap=0)
    stim.pulses = {0: ["align"]}
    stop = 300                      # the reset is asserted in the cycle of event `stop`
    first = Stimulus(stim.slot[:stop], stim.phase[:stop], stim.channel[:stop],
                     pulses={0: ["align"]})
    await tb.drive(first)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ReadOnly()
    got_before = list(tb.records)
    # the events presented at least LATENCY cycles before the reset made it out
    want_before = first.expected(ClassifierModel(tb.config))
    survivors = sum(1 for i in want_before.index if i < stop - CLASSIFIER_LATENCY + 1)
    assert_records_equal(got_before, want_before.rows()[:survivors])
    await RisingEdge(dut.clk)
    await tb.drain()
    assert tb.records == got_before, "events in flight at reset must not come out"
    model.reset()
    await tb.check_state(model)
    rest = Stimulus(stim.slot[stop:], stim.phase[stop:], stim.channel[stop:],
                    pulses={50: ["align"]})
    await tb.run(rest, model)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_clear_counters(dut):
    """clear_counters zeroes the counters; events in its own cycle and later are counted."""
    tb, model = await started(dut, seed=9)
    stim = random_stimulus(tb.rng, 600, tb.config, max_gap=1)
    stim.pulses = {200: ["clear_counters"], 450: ["clear_counters"]}
    await tb.run(stim, model)
    assert sum(tb.counters("early")) > 0
    await tb.pulse("clear_counters")
    model.clear_counters()
    await tb.drain()
    await tb.check_state(model)
    for name in ("early", "late", "middle", "outside"):
        assert tb.counters(name) == [0] * N_CHANNELS
    assert int(dut.lock_windows.value) == 0 and int(dut.bad_channel.value) == 0
    # back-to-back events on one counter (the shared adder's read-after-write hazard), with
    # clears on consecutive events, on an event after an idle cycle and on an idle cycle
    burst = Stimulus([1] * 40, [1500] * 30 + [8000] * 10, [0] * 40,
                     gap=[0] * 20 + [1] + [0] * 4 + [2] + [0] * 14,
                     pulses={10: ["clear_counters"], 11: ["clear_counters"],
                             20: ["clear_counters"], 25: ["clear_counters"]},
                     on_event=True)
    await tb.run(burst, model)
    assert tb.counters("early")[0] == 5 and tb.counters("late")[0] == 10
    burst.on_event = False            # now the pulses of events 20 and 25 fall on idle cycles
    await tb.run(burst, model)
    assert tb.counters("early")[0] == 5 and tb.counters("late")[0] == 10
