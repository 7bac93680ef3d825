"""The event counter bank (``hdl/counters.py``) in the Amaranth simulator, cycle by cycle
against its golden model ``count_reference``.

Every read the bank answers is compared with the model's value of that counter in the read_en
cycle. Small widths make the whole counter wrap within a few thousand cycles; n = 3 and n = 7
are the counts where ``2 ** low_bits == 2 n + 2`` exactly, so the service has no slack."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module, ResetInserter, Signal
from amaranth.sim import Simulator
from tbqkd.hdl.counters import READ_LATENCY, CounterBank, count_reference

PERIOD = 1e-8


@dataclass
class Stimulus:
    """Inputs per cycle, ``(cycles, n)`` for ``inc``/``clear``, ``(cycles,)`` for the rest.

    ``reset`` (optional) is a synchronous reset of the whole bank in that cycle."""

    width: int
    inc: np.ndarray
    clear: np.ndarray
    read_en: np.ndarray
    read_addr: np.ndarray
    reset: np.ndarray | None = None

    @classmethod
    def idle(cls, n: int, cycles: int, width: int) -> Stimulus:
        """No events, no clears, no reads."""
        zeros = np.zeros((cycles, n), dtype=np.int64)
        return cls(width, zeros.copy(), zeros.copy(), np.zeros(cycles, dtype=np.int64),
                   np.zeros(cycles, dtype=np.int64))

    @property
    def n(self) -> int:
        return self.inc.shape[1]

    @property
    def cycles(self) -> int:
        return self.inc.shape[0]

    def read(self, t: int, k: int) -> None:
        """Issue a read of counter ``k`` in cycle ``t``."""
        self.read_en[t] = 1
        self.read_addr[t] = k

    def reference(self) -> np.ndarray:
        """``count_reference`` of the stimulus; a reset acts like a clear without the event."""
        inc, clear = self.inc, self.clear
        if self.reset is not None:
            inc = inc * (1 - self.reset[:, None])
            clear = clear | self.reset[:, None]
        return count_reference(inc, clear, width=self.width)


@dataclass
class Run:
    """What the bank answered: ``(read_en cycle, counter, read_data)`` per read, and the
    model's expectation for each."""

    reads: list[tuple[int, int, int]]
    ref: np.ndarray

    def values(self, k: int | None = None) -> list[tuple[int, int]]:
        """``(cycle, data)`` of the reads (of counter ``k`` only, if given)."""
        return [(t, d) for t, a, d in self.reads if k is None or a == k]


def _simulate(stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
    """Run the bank on ``stim`` (plus idle cycles for the last reads to finish); return
    ``read_valid`` and ``read_data`` as seen in every cycle."""
    n, cycles = stim.n, stim.cycles
    total = cycles + READ_LATENCY + 2
    weights = 1 << np.arange(n, dtype=np.int64)
    inc_words = [int(w) for w in stim.inc @ weights] + [0] * (total - cycles)
    clear_words = [int(w) for w in stim.clear @ weights] + [0] * (total - cycles)
    read_en = [int(x) for x in stim.read_en] + [0] * (total - cycles)
    read_addr = [int(x) for x in stim.read_addr] + [0] * (total - cycles)
    reset = [0] * total
    if stim.reset is not None:
        reset[:cycles] = [int(x) for x in stim.reset]
    valid = np.zeros(total, dtype=np.int64)
    data = [0] * total

    bank = CounterBank(n, width=stim.width)
    rst = Signal()
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.bank = ResetInserter(rst)(bank)

    async def bench(ctx):
        for t in range(total):
            ctx.set(bank.inc, inc_words[t])
            ctx.set(bank.clear, clear_words[t])
            ctx.set(bank.read_en, read_en[t])
            ctx.set(bank.read_addr, read_addr[t])
            ctx.set(rst, reset[t])
            valid[t] = ctx.get(bank.read_valid)
            data[t] = ctx.get(bank.read_data)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(PERIOD)
    sim.add_testbench(bench)
    sim.run()
    return valid, np.array(data, dtype=object)


def _run(stim: Stimulus) -> Run:
    """Simulate ``stim`` and check every cycle against the model: ``read_valid`` exactly
    READ_LATENCY cycles after each ``read_en``, ``read_data`` the model's count of the read_en
    cycle, held until the next read completes (zero after a reset)."""
    en = np.asarray(stim.read_en)
    assert not np.any(en[1:] & en[:-1]), "stimulus breaks the every-other-cycle read rule"
    if stim.reset is not None:      # reads in flight over a reset are dropped: issue none
        for r in np.flatnonzero(stim.reset):
            assert not en[max(0, r - READ_LATENCY + 1):r + 1].any(), "read in flight at reset"
    valid, data = _simulate(stim)
    ref = stim.reference()
    issued = np.flatnonzero(en)
    assert np.array_equal(np.flatnonzero(valid), issued + READ_LATENCY), "read_valid timing"

    reads, wrong = [], []
    for t in issued:
        k, got = int(stim.read_addr[t]), int(data[t + READ_LATENCY])
        reads.append((int(t), k, got))
        if got != int(ref[t, k]):
            wrong.append(f"read_en cycle {t}, counter {k}: expected {int(ref[t, k])}, got {got}")
    assert not wrong, f"{len(wrong)} of {len(issued)} reads wrong, first: " + "; ".join(wrong[:5])

    held = 0
    resets = np.zeros(len(valid), dtype=bool) if stim.reset is None else np.r_[
        stim.reset.astype(bool), np.zeros(len(valid) - stim.cycles, dtype=bool)]
    for t in range(len(valid)):
        if t and resets[t - 1]:
            held = 0
        if valid[t]:
            held = data[t]
        assert data[t] == held, f"read_data changed without read_valid in cycle {t}"
    return Run(reads, ref)


def _low_wraps(stim: Stimulus, ref: np.ndarray) -> np.ndarray:
    """How often each counter's low bits wrapped (set a pending carry), per the model."""
    low = CounterBank.low_bits_for(stim.n)
    top = (1 << low) - 1
    return ((ref % (1 << low) == top) & (stim.inc == 1) & (stim.clear == 0)).sum(axis=0)


def _full_wraps(stim: Stimulus, ref: np.ndarray) -> np.ndarray:
    """How often each counter wrapped from ``2 ** width - 1`` to 0, per the model."""
    top = (1 << stim.width) - 1
    return ((ref == top) & (stim.inc == 1) & (stim.clear == 0)).sum(axis=0)


def _max_rate_reads(stim: Stimulus, start: int, stop: int, phase: int,
                    addr: Callable[[int], int]) -> None:
    """Reads in every other cycle of ``[start, stop)`` (cycles of parity ``phase``);
    ``addr(t)`` picks the counter."""
    for t in range(start + (start + phase) % 2, stop, 2):
        stim.read(t, addr(t))


# --- the golden model and the sizing


def test_reference_hand_example():
    inc = [[1, 0], [1, 1], [0, 1], [1, 1], [1, 1], [0, 0]]
    clear = [[0, 0], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0]]
    want = [[0, 0], [1, 0], [2, 1], [0, 2], [1, 3], [2, 1]]
    assert count_reference(inc, clear).tolist() == want
    # wraps modulo 2 ** width; clear-with-event gives 1
    inc = np.ones((6, 1), dtype=int)
    assert count_reference(inc, np.zeros((6, 1)), width=2)[:, 0].tolist() == [0, 1, 2, 3, 0, 1]
    clear = np.array([[0], [0], [0], [1], [0], [0]])
    assert count_reference(inc, clear, width=2)[:, 0].tolist() == [0, 1, 2, 3, 1, 2]
    # full 64 bits: nothing masked off
    big = count_reference(np.ones((3, 1)), np.zeros((3, 1)), width=64)
    assert big.dtype == np.uint64 and big[:, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 16, 31, 64, 100])
def test_low_bits_cover_the_service_round(n):
    low = CounterBank.low_bits_for(n)
    assert 2 ** low >= 2 * n + 2
    bank = CounterBank(n, width=64)
    assert bank.low_bits == low
    Fragment.get(bank, None)        # elaborates (and is not reported as unused)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_constructor_rejects_bad_sizes():
    for n in (-1, 0, 1):
        with pytest.raises(ValueError, match="at least 2"):
            CounterBank(n)
    with pytest.raises(ValueError, match="must exceed"):
        CounterBank(3, width=CounterBank.low_bits_for(3))
    Fragment.get(CounterBank(3, width=CounterBank.low_bits_for(3) + 1), None)  # 1 RAM bit


# --- randomized stimulus


def _random_stimulus(n: int, width: int, cycles: int, seed: int) -> Stimulus:
    """Two hot counters (p = 0.95, and 0.9 with one per cycle for a while), the rest cold;
    rare clears (counter 0: only a burst early on, so that it wraps in full); reads in
    stretches at the maximum rate, at random, or not at all, never in consecutive cycles."""
    rng = np.random.default_rng(seed)
    stim = Stimulus.idle(n, cycles, width)
    probs = rng.choice([0.5, 0.1, 0.01, 0.0], size=n)
    probs[0] = 0.95
    probs[n - 1] = 0.9
    stim.inc[:] = rng.random((cycles, n)) < probs
    stim.inc[cycles // 3:cycles // 2, n - 1] = 1          # a long stretch of one per cycle
    stim.clear[:, 1:] = rng.random((cycles, n - 1)) < 0.0015
    stim.clear[300:304, 0] = 1      # clears in consecutive cycles, then a run to full wrap
    t, first = int(rng.integers(0, 2)), True
    while t < cycles:
        mode = rng.choice(["max", "random", "idle"], p=[0.5, 0.35, 0.15])
        stop = min(cycles, t + int(rng.integers(40, 400)))
        if first:       # a long stretch at the maximum rate right from reset
            mode, stop, first = "max", t + 600, False
        while t < stop:
            if mode == "max" or (mode == "random" and rng.random() < 0.3):
                hot = rng.random() < 0.4
                stim.read(t, int(rng.choice([0, n - 1])) if hot else int(rng.integers(n)))
                t += 2
            else:
                t += 1
    return stim


RANDOM_CASES = [  # n, width, cycles, seed
    (5, 12, 5000, 1),
    (6, 64, 4000, 2),
    (7, 11, 4000, 3),
    (2, 9, 3000, 4),
    (3, 10, 3000, 5),
]


@functools.cache
def _random_run(n: int, width: int, cycles: int, seed: int) -> tuple[Stimulus, Run]:
    stim = _random_stimulus(n, width, cycles, seed)
    return stim, _run(stim)


@pytest.mark.parametrize(("n", "width", "cycles", "seed"), RANDOM_CASES)
def test_random_stimulus_matches_reference(n, width, cycles, seed):
    """Every read matches the model, and the run was not a trivial one: many reads, a long
    stretch of them at the maximum rate, many pending carries, full-width wraps."""
    stim, run = _random_run(n, width, cycles, seed)
    low = CounterBank.low_bits_for(n)
    reads = np.flatnonzero(stim.read_en)
    assert len(run.reads) == len(reads) >= cycles // 5
    # a long stretch at the maximum rate: reads spaced exactly 2 cycles, 100 in a row
    gaps = np.diff(reads) == 2
    longest = max(len(s) for s in "".join("1" if g else "0" for g in gaps).split("0"))
    assert longest >= 100
    # the pending carry was used many times and reads saw the RAM words
    wraps = _low_wraps(stim, run.ref)
    assert wraps[0] >= cycles // 2 ** low // 2 and wraps[n - 1] >= 50
    assert sum(d >= 2 ** low for _, _, d in run.reads) >= len(run.reads) // 4
    assert stim.clear.sum() >= 5
    if width < 64:
        assert _full_wraps(stim, run.ref).sum() >= 1


@pytest.mark.parametrize(("n", "width", "cycles", "seed"), RANDOM_CASES[:3])
def test_random_check_is_not_vacuous(n, width, cycles, seed):
    """The recorded answers disagree with a wrong model: the count one cycle early or late,
    the neighbouring counter, or (small widths) no wrap at ``2 ** width``."""
    stim, run = _random_run(n, width, cycles, seed)
    ref, last = run.ref, stim.cycles - 1

    def mismatches(model: Callable[[int, int], int]) -> int:
        return sum(d != int(model(t, k)) for t, k, d in run.reads)

    assert mismatches(lambda t, k: ref[t, k]) == 0
    assert mismatches(lambda t, k: ref[max(t - 1, 0), k]) >= 20
    assert mismatches(lambda t, k: ref[min(t + 1, last), k]) >= 20
    assert mismatches(lambda t, k: ref[t, (k + 1) % n]) >= 20
    if width < 64:
        unwrapped = count_reference(stim.inc, stim.clear, width=64)
        assert mismatches(lambda t, k: unwrapped[t, k]) >= 1


# --- the worst case for the service


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("pattern", ["all hot, read one", "all hot, rotate", "one hot"])
def test_every_cycle_increment_with_reads_at_max_rate(phase, pattern):
    """n = 7 (2 ** 4 == 2 n + 2): low bits wrap every 16 cycles, the service, stalled by a
    read in every other cycle, comes back every 14; the phase between them drifts through
    every alignment."""
    n, cycles = 7, 3000
    stim = Stimulus.idle(n, cycles, width=64)
    rng = np.random.default_rng(10 + phase)
    if pattern == "one hot":
        stim.inc[:] = rng.random((cycles, n)) < 0.3
        stim.inc[:, 2] = 1
    else:
        stim.inc[:] = 1
    addr = (lambda t: 2) if pattern != "all hot, rotate" else (lambda t: (t // 2) % n)
    _max_rate_reads(stim, 0, cycles, phase, addr)
    run = _run(stim)
    assert len(run.reads) == cycles // 2
    assert _low_wraps(stim, run.ref)[2] == cycles // 16
    if pattern == "all hot, read one":
        assert run.values() == [(t, t) for t in range(phase, cycles, 2)]


# --- clears


N_SMALL, W_SMALL = 3, 12      # low bits 3: wraps every 8 counts


def test_clear_in_increment_cycle_counts_the_event():
    """Counter 0: clear with an event (1 afterwards); counter 1: clear without (0); counter
    2: clear with an event in 4 consecutive cycles (1 after each). Reads in the clear cycle
    see the count before it."""
    for phase in (0, 1):
        stim = Stimulus.idle(N_SMALL, 40, W_SMALL)
        stim.inc[:10, :] = 1              # all at 10 (> 8: upper bits in RAM) by cycle 10
        stim.inc[10, [0, 2]] = 1
        stim.clear[10, [0, 1]] = 1
        stim.inc[10:14, 2] = 1
        stim.clear[10:14, 2] = 1
        want = [{(8, 0): 8, (10, 0): 10, (12, 1): 0, (14, 2): 1, (16, 0): 1, (18, 1): 0},
                {(9, 0): 9, (11, 2): 1, (13, 2): 1, (15, 1): 0, (17, 2): 1, (19, 0): 1}][phase]
        for t, k in want:
            stim.read(t, k)
        run = _run(stim)
        assert {(t, k): d for t, k, d in run.reads} == want


def test_read_in_clear_cycle_sees_pre_clear_value():
    """A read in the cycle of a clear answers the count before it, also with a pending carry
    (counter 0 at 25: its low bits wrapped at the edge ending cycle 23, so the carry is
    pending in cycles 24..26 whatever the service's phase)."""
    stim = Stimulus.idle(N_SMALL, 120, W_SMALL)
    stim.inc[:, 0] = 1
    stim.inc[25, 0] = 0
    stim.clear[25, 0] = 1
    stim.inc[:, 1] = 1
    stim.clear[60, 1] = 1
    for t in (21, 23, 25, 27, 29):
        stim.read(t, 0)
    for t in (56, 58, 60, 62):
        stim.read(t, 1)
    _max_rate_reads(stim, 64, 120, 0, lambda t: (t // 2) % 2)
    run = _run(stim)
    assert run.values(0)[:5] == [(21, 21), (23, 23), (25, 25), (27, 1), (29, 3)]
    assert run.values(1)[:4] == [(56, 56), (58, 58), (60, 60), (62, 2)]


def test_clear_with_pending_carry_and_count_on():
    """Clear counter 0 in each cycle of a carry's pending window, then count on over
    several wraps with reads at the maximum rate: the voided service must not resurrect
    the old upper bits."""
    for clear_at in (24, 25, 26):
        for phase in (0, 1):
            stim = Stimulus.idle(N_SMALL, 140, W_SMALL)
            stim.inc[:, 0] = 1
            stim.clear[clear_at, 0] = 1
            stim.inc[:, 1] = (np.arange(140) % 3) == 0
            _max_rate_reads(stim, 0, 140, phase, lambda t: 0 if t % 4 < 2 else t % 3)
            run = _run(stim)
            assert all(d == (t if t <= clear_at else t - clear_at)
                       for t, d in run.values(0))


@pytest.mark.parametrize("reads", ["none", "even cycles", "odd cycles"])
@pytest.mark.parametrize("n", [2, 3, 7])
def test_clear_at_every_phase_of_the_service(n, reads):
    """For each counter (a sample for n = 7), a clear at each cycle of a window of 3 n + 3
    cycles that starts at a wrap of its low bits: the clear lands in every phase of the
    service (its read, register and write cycles, also of this counter's visit) and in the
    pending-carry window; every other cycle it comes with an event. Reads of the cleared
    counter in every other cycle, so some fall in the clear's cycle."""
    low = CounterBank.low_bits_for(n)
    wrap = 3 * 2 ** low - 1          # the counter's low bits wrap at the end of this cycle
    cycles = wrap + 3 * n + 3 + 4 * 2 ** low
    counters = range(n) if n <= 3 else (0, 3, n - 1)
    rng = np.random.default_rng(n)
    checked = 0
    for k in counters:
        for offset in range(3 * n + 3):
            stim = Stimulus.idle(n, cycles, width=low + 3)
            stim.inc[:] = rng.random((cycles, n)) < 0.9
            stim.inc[:, k] = 1
            c = wrap + offset
            stim.clear[c, k] = 1
            stim.inc[c, k] = offset % 2
            if reads != "none":
                phase = 0 if reads == "even cycles" else 1
                _max_rate_reads(stim, 0, cycles, phase,
                                lambda t, k=k: k if t % 8 < 6 else (t // 8) % n)
            else:       # one read after the window, so something is checked
                stim.read(cycles - 1, k)
            run = _run(stim)
            after = run.values(k)[-1]
            assert after[1] == (after[0] - c - 1 + offset % 2) % 2 ** (low + 3)
            checked += len(run.reads)
    assert checked >= len(counters) * (3 * n + 3)


# --- reset


def test_reads_after_reset_are_zero():
    """Straight after power-up every counter reads 0 (the first with an event in cycle 0);
    after a reset mid-run too, although the RAM still holds the old upper bits."""
    n = 4
    stim = Stimulus.idle(n, 400, width=16)
    stim.inc[:, 0] = 1
    stim.inc[200:, 1:] = 1
    for t in range(0, 8, 2):
        stim.read(t, t // 2)
    stim.reset = np.zeros(400, dtype=np.int64)
    stim.reset[300:302] = 1
    stim.inc[302:305, :] = 0
    for j, t in enumerate(range(302, 310, 2)):
        stim.read(t, j)
    _max_rate_reads(stim, 310, 400, 0, lambda t: (t // 2) % n)
    _max_rate_reads(stim, 100, 296, 1, lambda t: (t // 2) % n)
    run = _run(stim)
    assert [d for t, _, d in run.reads if t < 8] == [0, 0, 0, 0]
    assert [d for t, _, d in run.reads if 300 <= t < 306] == [0, 0]
    assert [d for t, _, d in run.reads if 306 <= t < 310] == [1, 3]
    assert any(d >= 2 ** 6 for t, _, d in run.reads if t < 300)


# --- the whole counter wraps


@pytest.mark.parametrize("width", [4, 10])
@pytest.mark.parametrize("phase", [0, 1])
def test_full_width_wrap(width, phase):
    """Counter 0 counts every cycle past ``2 ** width`` (several times for width 4, where the
    RAM word is one bit), counter 1 likewise from cycle 5, counter 2 at random; reads at the
    maximum rate watch counter 0 around its wraps, where the pending carry overflows the RAM
    word."""
    n, span = 3, 2 ** width
    cycles = 2 * span + 600
    stim = Stimulus.idle(n, cycles, width)
    stim.inc[:, 0] = 1
    stim.inc[5:, 1] = 1
    stim.inc[:, 2] = np.random.default_rng(width).random(cycles) < 0.95

    def addr(t: int) -> int:
        near = min(t % span, span - t % span) < min(12, span // 4)
        return 0 if near else (t // 2) % n

    _max_rate_reads(stim, 0, cycles, phase, addr)
    run = _run(stim)
    assert all(d == t % span for t, d in run.values(0))
    assert all(d == max(t - 5, 0) % span for t, d in run.values(1))
    seen = {d for t, d in run.values(0) if t >= span}
    assert {span - 2 + phase, phase} <= seen        # the top and just past the wrap
    assert _full_wraps(stim, run.ref)[0] == cycles // span
