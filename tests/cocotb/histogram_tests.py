"""cocotb tests of ``PhaseHistogram`` alone, run by test_histogram_cocotb.py under Verilator.

The block's parameters come from ``TBQKD_HISTOGRAM_PARAMS`` (JSON). :class:`HistogramBench`
drives a per-cycle :class:`Stimulus` and steps :class:`HistogramModel` in lock-step: every
cycle it compares the status outputs and the event counters (at their documented latencies)
with the model, and whenever a snapshot becomes valid it can read the whole snapshot through
the read port *while the traffic goes on*, compare it word for word with the model, and
release it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from tbqkd.hdl.golden_histogram import (
    COUNTER_LATENCY,
    READ_LATENCY,
    SETTLE_CYCLES,
    WRITE_LATENCY,
    HistogramModel,
    channel_bits,
)

CLOCK_NS = 4


def load_params() -> dict[str, int]:
    return json.loads(os.environ["TBQKD_HISTOGRAM_PARAMS"])


@dataclass
class Stimulus:
    """One value per cycle of every input (and ``rst``)."""

    valid: np.ndarray
    channel: np.ndarray
    phase: np.ndarray
    enable: np.ndarray
    offset: np.ndarray
    shift: np.ndarray
    swap: np.ndarray
    release: np.ndarray
    rst: np.ndarray

    @classmethod
    def idle(cls, cycles: int, *, offset: int = 0, shift: int = 0) -> Stimulus:
        zeros = np.zeros(cycles, dtype=np.int64)
        return cls(valid=zeros.copy(), channel=zeros.copy(), phase=zeros.copy(),
                   enable=np.ones(cycles, dtype=np.int64), offset=np.full(cycles, offset),
                   shift=np.full(cycles, shift), swap=zeros.copy(), release=zeros.copy(),
                   rst=zeros.copy())

    def __len__(self) -> int:
        return len(self.valid)

    def __add__(self, other: Stimulus) -> Stimulus:
        return Stimulus(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                           for f in fields(self)})

    def events(self, at: np.ndarray, channel: np.ndarray, phase: np.ndarray) -> Stimulus:
        """Put events at cycles ``at`` (in place; returns self)."""
        self.valid[at] = 1
        self.channel[at] = channel
        self.phase[at] = phase
        return self


INPUTS = ("valid", "channel", "phase", "enable", "offset", "shift", "swap", "release")
STATUS = ("clearing", "swap_pending", "snapshot_valid", "swaps")


class HistogramBench:
    """Drives the block and checks it against the model, cycle by cycle."""

    def __init__(self, dut, *, seed: int = 1) -> None:
        self.dut = dut
        self.params = load_params()
        self.model = HistogramModel(**self.params)
        self.n_channels = self.params["n_channels"]
        self.bins = self.params["bins"]
        self.words = self.n_channels * self.bins
        self.rng = np.random.default_rng(seed)
        self.snapshots: list[np.ndarray] = []     # every snapshot read and checked
        self._ports = {name: self._port(name) for name in INPUTS + ("read_addr", "rst")}
        self._last: dict[str, int] = {}
        self._sweep: int | None = None               # next address of a snapshot read sweep
        self._pending: list[tuple[int, int]] = []    # (model cycle the data shows, address)
        self._got = np.zeros(self.words, dtype=np.uint64)
        self._release_next = False
        self._history: list[tuple[int, int]] = []   # (outside, bad_channel) after each step
        Clock(dut.clk, CLOCK_NS, unit="ns").start()

    def _port(self, name: str):
        try:
            return getattr(self.dut, name)
        except AttributeError:               # a Verilog keyword: escaped identifier
            return self.dut._id(f"\\{name} ", extended=False)

    def _set(self, name: str, value: int) -> None:
        if self._last.get(name) != value:
            self._ports[name].value = value
            self._last[name] = value

    async def reset(self, cycles: int = 3) -> None:
        """Hold reset ``cycles`` cycles with idle inputs, then wait out the reset-time clear."""
        stim = Stimulus.idle(cycles)
        stim.rst[:] = 1
        await self.run(stim, check=False)
        await self.run(Stimulus.idle(self.words + 2))
        assert not self.model.clearing

    async def run(self, stim: Stimulus, *, read_snapshots: bool = False,
                  check: bool = True) -> list[dict[str, int]]:
        """Drive ``stim``, checking status and counters every cycle (unless ``check`` is
        false); with ``read_snapshots``, read every snapshot that becomes valid, compare it
        with the model and release it. A read sweep that started continues across calls.
        Returns the status outputs of every cycle."""
        dut, model = self.dut, self.model
        columns = [getattr(stim, name).tolist() for name in INPUTS]
        rst_column = stim.rst.tolist()
        trace = []
        for t in range(len(stim)):
            await RisingEdge(dut.clk)
            values = dict(zip(INPUTS, (c[t] for c in columns), strict=True))
            rst = rst_column[t]
            if self._release_next:
                values["release"] = 1
                self._release_next = False
            if self._sweep is not None:
                self._set("read_addr", self._sweep)
                self._pending.append((model.cycle + READ_LATENCY, self._sweep))
                self._sweep = self._sweep + 1 if self._sweep + 1 < self.words else None
            for name, value in values.items():
                self._set(name, value)
            self._set("rst", rst)
            await ReadOnly()
            trace.append(self._check_status(t, check))
            if self._pending and self._pending[0][0] == model.cycle:
                _, addr = self._pending.pop(0)
                self._got[addr] = int(dut.read_data.value)
                if not self._pending and self._sweep is None:
                    self._compare_snapshot(self._got)
                    self._release_next = True
            if rst:
                model.reset()
                model.cycle += 1
                self._history = []
                self._sweep, self._pending, self._release_next = None, [], False
            else:
                model.step(**values)
                self._history.append((model.outside, model.bad_channel))
                if read_snapshots and self._sweep is None and not self._pending \
                        and model.snapshot_valid and not self._release_next \
                        and not values["release"]:
                    self._sweep = 0
                    self._got = np.zeros(self.words, dtype=np.uint64)
        return trace

    def _check_status(self, t: int, check: bool) -> dict[str, int]:
        dut, model = self.dut, self.model
        got = {name: int(getattr(dut, name).value) for name in STATUS}
        if not check:
            return got
        want = model.status()
        assert got == want, f"cycle {t} (model cycle {model.cycle}): status {got}, model {want}"
        k = len(self._history) - COUNTER_LATENCY
        outside, bad = self._history[k] if k >= 0 else (0, 0)
        got_c = (int(dut.outside.value), int(dut.bad_channel.value), int(dut.skipped.value))
        want_c = (outside, bad, model.skipped)
        assert got_c == want_c, \
            f"cycle {t}: (outside, bad_channel, skipped) {got_c}, model {want_c}"
        return got

    def _compare_snapshot(self, got: np.ndarray) -> None:
        want = self.model.snapshot.ravel()
        assert self.model.snapshot_valid
        if not np.array_equal(got, want):
            diff = np.flatnonzero(got != want)
            first = [(a // self.bins, a % self.bins, int(got[a]), int(want[a]))
                     for a in diff[:6]]
            raise AssertionError(f"snapshot {len(self.snapshots)}: {diff.size} words differ; "
                                 f"first (channel, bin, got, want): {first}")
        self.snapshots.append(got.reshape(self.n_channels, self.bins))

    async def drain(self, *, read_snapshots: bool = True) -> None:
        """Idle until nothing is in flight and no snapshot is held or pending."""
        await self.run(Stimulus.idle(WRITE_LATENCY + 2), read_snapshots=read_snapshots)
        while self.model.swap_pending or self.model.clearing or self.model.snapshot_valid:
            await self.run(Stimulus.idle(256), read_snapshots=read_snapshots)

    async def collect_rest(self) -> np.ndarray:
        """Swap once more and read the snapshot: everything counted since the last swap."""
        await self.drain()
        before = len(self.snapshots)
        want = self.model.accumulating
        stim = Stimulus.idle(SETTLE_CYCLES + self.words + READ_LATENCY + 4)
        stim.swap[0] = 1
        await self.run(stim, read_snapshots=True)
        assert len(self.snapshots) == before + 1, "the final snapshot was not read"
        assert np.array_equal(self.snapshots[-1], want)
        return self.snapshots[-1]

    # -- stimulus helpers ----------------------------------------------------------------------

    def random_traffic(self, cycles: int, *, density: float, offset: int, shift: int,
                       hot_bins: int = 8, bad_channels: bool = True) -> Stimulus:
        """Seeded events: some phases in a few hot bins (many hazards), the rest anywhere,
        including around and beyond both histogram edges."""
        stim = Stimulus.idle(cycles, offset=offset, shift=shift)
        at = np.flatnonzero(self.rng.random(cycles) < density)
        n = at.size
        top = 1 << channel_bits(self.n_channels)
        channels = self.rng.integers(0, top if bad_channels else self.n_channels, n)
        span = self.bins << shift
        hot = offset + (self.rng.integers(0, self.bins, hot_bins) << shift)
        phase = np.where(self.rng.random(n) < 0.5, self.rng.choice(hot, n),
                         self.rng.integers(max(0, offset - span // 8),
                                           min((1 << 24) - 1, offset + span + span // 8), n))
        return stim.events(at, channels, np.clip(phase, 0, (1 << 24) - 1))


async def started(dut, seed: int = 1) -> HistogramBench:
    tb = HistogramBench(dut, seed=seed)
    await tb.reset()
    return tb


def total_binned(snapshots: list[np.ndarray]) -> int:
    return int(sum(int(s.sum()) for s in snapshots))


# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_random_events_match_model(dut):
    """Random seeded traffic with swaps mid-stream: every snapshot, read during traffic, and
    the final rest equal the model; counters match cycle by cycle."""
    tb = await started(dut, seed=7)
    shift = 3 if tb.bins > 256 else 5
    stim = tb.random_traffic(3 * tb.words + 3000, density=0.8, offset=12_345, shift=shift)
    for at in (500, tb.words + 900, 2 * tb.words + 2100):
        stim.swap[at] = 1
    await tb.run(stim, read_snapshots=True)
    assert len(tb.snapshots) >= 2, "swaps did not produce snapshots"
    await tb.collect_rest()
    m = tb.model
    binned = total_binned(tb.snapshots)
    accepted = int(stim.valid.sum())
    assert binned + m.outside + m.bad_channel + m.skipped == accepted, "events lost"
    assert m.outside > 100 and binned > 1000 and m.swaps == len(tb.snapshots)
    if tb.n_channels & (tb.n_channels - 1):
        assert m.bad_channel > 0


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_same_bin_at_every_hazard_distance(dut):
    """Runs of back-to-back events on one bin, and pairs/trains at distances 1..9, with
    another bin's events interleaved; also the same address in both banks across a swap."""
    tb = await started(dut, seed=2)
    pieces = []
    stim = Stimulus.idle(40)
    stim.events(np.arange(2, 32), 1 % tb.n_channels, 0)          # 30 back to back
    pieces.append(stim)
    for distance in range(1, 10):
        stim = Stimulus.idle(8 * distance + 20)
        at = np.arange(4, 4 + 6 * distance, distance)
        stim.events(at, 0, 5)
        others = np.setdiff1d(np.arange(4, 4 + 6 * distance), at)
        stim.events(others, 0, 6)                                   # neighbour bin between
        pieces.append(stim)
    swap = Stimulus.idle(30)
    swap.events(np.arange(0, 20), 0, 7)
    swap.swap[10] = 1                                               # same word, other bank
    pieces.append(swap)
    stim = pieces[0]
    for p in pieces[1:]:
        stim = stim + p
    await tb.run(stim, read_snapshots=True)
    await tb.collect_rest()
    first, rest = tb.snapshots[0], tb.snapshots[1]
    assert first[1 % tb.n_channels, 0] == 30
    assert first[0, 5] == sum(6 for _ in range(1, 10))
    assert first[0, 7] == 11 and rest[0, 7] == 9


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_saturation(dut):
    """Counts stop at 2**count_bits − 1, back to back and at hazard distances 2..4 with another
    bin's events in the gaps (built with small counts so the top is reachable)."""
    tb = await started(dut, seed=3)
    count_bits = tb.params["count_bits"]
    assert count_bits <= 12, "build the saturation variant with small counts"
    top = (1 << count_bits) - 1
    channel = 1 % tb.n_channels
    stim = Stimulus.idle(top + 60)
    stim.events(np.arange(0, top + 40), 0, 0)                       # back to back, past top
    for distance in (2, 3, 4):
        piece = Stimulus.idle((top + 10) * distance + 20)
        span = np.arange((top + 10) * distance)
        on = span[span % distance == 0]
        piece.events(on, channel, distance)
        piece.events(np.setdiff1d(span, on), channel, 10 + distance)
        stim = stim + piece
    await tb.run(stim)
    rest = await tb.collect_rest()
    assert rest[0, 0] == top
    for distance in (2, 3, 4):
        assert rest[channel, distance] == top
        gaps = (top + 10) * (distance - 1)
        assert rest[channel, 10 + distance] == min(top, gaps)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_offset_shift_edges(dut):
    """phase == offset is bin 0; offset − 1 is outside; the last bin's last picosecond is in,
    one more is outside; shift 0 and the largest shifts; offset 0 and the top phase."""
    tb = await started(dut, seed=4)
    top_phase = (1 << 24) - 1
    cases = []   # (offset, shift, phase, expected bin or None)
    for offset, shift in ((1000, 0), (1000, 4), (0, 0), (77, 13), (top_phase - 5, 0),
                          (0, 31), (5, 24)):
        span = tb.bins << shift
        for phase in (offset, offset - 1, offset + span - 1, offset + span, offset + 1,
                      offset + (1 << shift), offset + (1 << shift) - 1, 0, top_phase):
            if 0 <= phase <= top_phase:
                cases.append((offset, shift, phase, tb.model.bin_of(phase, offset, shift)))
    stim = Stimulus.idle(len(cases) * 2 + 10)
    for i, (offset, shift, phase, _) in enumerate(cases):
        stim.valid[2 * i], stim.channel[2 * i], stim.phase[2 * i] = 1, i % tb.n_channels, phase
        stim.offset[2 * i], stim.shift[2 * i] = offset, shift
        # settings change every cycle: the event must use the settings of its own cycle
        stim.offset[2 * i + 1], stim.shift[2 * i + 1] = top_phase - offset, 31 - shift
    await tb.run(stim)
    rest = await tb.collect_rest()
    assert tb.model.outside == sum(1 for c in cases if c[3] is None) > 5
    want = np.zeros_like(rest)
    for i, (*_, index) in enumerate(cases):
        if index is not None:
            want[i % tb.n_channels, index] += 1
    assert np.array_equal(rest, want)
    assert want[:, tb.bins - 1].sum() >= 3 and want[:, 0].sum() >= 5


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_snapshot_during_traffic(dut):
    """An event every cycle; swap at an exact cycle: the snapshot holds exactly the events up
    to and including the swap cycle, the next snapshot exactly the rest."""
    tb = await started(dut, seed=5)
    cycles = 2000
    stim = Stimulus.idle(cycles, shift=2)
    at = np.arange(cycles)
    channel = tb.rng.integers(0, tb.n_channels, cycles)
    phase = tb.rng.integers(0, 16, cycles) << 2
    stim.events(at, channel, phase)
    swap_at = 1234
    stim.swap[swap_at] = 1
    await tb.run(stim + Stimulus.idle(tb.words + 40), read_snapshots=True)
    first = tb.snapshots[0]
    rest = await tb.collect_rest()
    before = np.zeros((tb.n_channels, tb.bins), dtype=np.uint64)
    np.add.at(before, (channel[: swap_at + 1], phase[: swap_at + 1] >> 2), 1)
    after = np.zeros_like(before)
    np.add.at(after, (channel[swap_at + 1:], phase[swap_at + 1:] >> 2), 1)
    assert np.array_equal(first, before) and np.array_equal(rest, after)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_swap_while_clearing(dut):
    """A swap during the reset-time clear or a spare clear is held (swap_pending) and executes
    when the clear ends; repeated swaps merge; a release during settling is held; a swap while
    the snapshot is not released waits for release + clear. Status checked every cycle against
    the model and, here, against hand-worked cycle numbers too."""
    tb = HistogramBench(dut, seed=6)
    n = tb.words
    stim = Stimulus.idle(3)
    stim.rst[:] = 1
    await tb.run(stim, check=False)
    stim = Stimulus.idle(n + 40)
    stim.swap[10] = 1                                   # during the reset-time clear
    stim.events(np.arange(0, 30), 0, 3)                 # skipped: the clear is running
    trace = await tb.run(stim)
    assert trace[11]["swap_pending"] == 1 and trace[n]["clearing"] == 0
    assert tb.model.swaps == 1 and tb.model.skipped == 30

    stim = Stimulus.idle(3 * n + 400)
    stim.events(np.arange(0, len(stim), 3), 0, 1)
    stim.release[2] = 1                                 # clear runs in cycles 3 .. n + 2
    stim.swap[40] = 1                                   # during the clear: pending
    stim.swap[45] = 1                                   # merged with the pending one
    stim.release[n + 5] = 1                             # swap at n + 3 still settling: held
    stim.swap[n + 100] = 1                              # during that clear: pending
    stim.swap[2 * n + 100] = 1                          # snapshot not released: waits
    stim.release[2 * n + 300] = 1
    trace = await tb.run(stim)
    col = {name: np.array([c[name] for c in trace]) for name in STATUS}
    assert col["clearing"][3] == 1 and col["clearing"][n + 2] == 1
    assert col["swap_pending"][41:n + 4].all() and col["swap_pending"][n + 4] == 0
    assert col["clearing"][n + 6:2 * n + 11].all() and col["clearing"][2 * n + 11] == 0
    assert col["snapshot_valid"][n + 9:n + 12].tolist() == [0, 1, 0]
    assert col["swap_pending"][n + 101:2 * n + 12].all()
    assert col["swap_pending"][2 * n + 101:3 * n + 302].all()
    assert col["swap_pending"][3 * n + 302] == 0
    assert col["swaps"][3 * n + 307] == 3 and col["swaps"][3 * n + 308] == 4
    rest = await tb.collect_rest()
    assert rest[0, 1] > 0


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_reset_mid_traffic(dut):
    """Reset in the middle of traffic and of a snapshot: both banks zero afterwards,
    counters restart, events during the reset-time clear are counted as skipped."""
    tb = await started(dut, seed=8)
    stim = tb.random_traffic(2500, density=0.9, offset=100, shift=1)
    stim.swap[300] = 1
    stim.rst[1500:1503] = 1                              # mid-sweep or mid-clear
    stim.swap[1600] = 1                                  # during the reset-time clear
    await tb.run(stim + tb.random_traffic(tb.words + 500, density=0.5, offset=100, shift=1),
                 read_snapshots=True)
    assert tb.model.skipped > 0
    await tb.collect_rest()


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_enable(dut):
    """enable gates counting per cycle: nothing is binned or counted while it is low."""
    tb = await started(dut, seed=9)
    stim = tb.random_traffic(3000, density=0.9, offset=0, shift=4)
    stim.enable = (tb.rng.random(3000) < 0.5).astype(np.int64)
    stim.enable[:500] = 0
    stim.enable[2500:] = 1
    await tb.run(stim)
    rest = await tb.collect_rest()
    on = (stim.valid == 1) & (stim.enable == 1)
    assert int(rest.sum()) + tb.model.outside + tb.model.bad_channel == int(on.sum())
    assert int(on.sum()) < int(stim.valid.sum())
