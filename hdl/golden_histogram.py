"""Bit-exact golden model of :class:`tbqkd.hdl.histogram.PhaseHistogram` (pure Python + numpy).

:class:`HistogramModel` is cycle-accurate for everything the block decides on its own: which
bank an event goes to, when a swap executes, when clearing starts and ends, and the status
outputs ``clearing``, ``swap_pending``, ``snapshot_valid`` and ``swaps``. Call :meth:`step`
once per clock cycle with that cycle's inputs; afterwards the status properties equal the
RTL outputs during the *next* cycle. Bank contents and the event counters (``outside``,
``bad_channel``, ``skipped``) are updated at once in the model; the RTL shows them a fixed
number of cycles later (:data:`WRITE_LATENCY`, :data:`COUNTER_LATENCY`). The frozen snapshot
is complete in the RTL exactly when ``snapshot_valid`` rises, so a snapshot read while
``snapshot_valid`` is high equals :attr:`HistogramModel.snapshot` word for word.

:meth:`HistogramModel.run` is the vectorised form for long event streams: it replays only
the control inputs cycle by cycle and bins the events with ``numpy.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from .records import PHASE_BITS

__all__ = ["HistogramModel", "HistogramRun", "SpareState", "WRITE_LATENCY", "COUNTER_LATENCY",
           "READ_LATENCY", "SETTLE_CYCLES", "SHIFT_BITS"]

#: An event presented in cycle ``c`` is in block RAM (visible to reads) from cycle
#: ``c + WRITE_LATENCY + 1``.
WRITE_LATENCY = 6
#: ``outside`` and ``bad_channel`` include an event presented in cycle ``c`` from cycle
#: ``c + COUNTER_LATENCY``; ``skipped`` from ``c + 1``.
COUNTER_LATENCY = 3
#: ``read_data`` in cycle ``t + READ_LATENCY`` is the snapshot word at ``read_addr`` of cycle t.
READ_LATENCY = 2
#: A swap executed in cycle ``s`` makes ``snapshot_valid`` rise (and ``swaps`` count) in cycle
#: ``s + SETTLE_CYCLES``: the last events of the old bank have then been written.
SETTLE_CYCLES = WRITE_LATENCY + 1
#: Width of the ``shift`` input.
SHIFT_BITS = 5

_PHASE_MAX = (1 << PHASE_BITS) - 1


class SpareState(IntEnum):
    """What the bank that is not accumulating holds."""

    CLEAN = 0       #: all zero: the next swap executes at once
    CLEARING = 1    #: being zeroed, one word per cycle
    SNAPSHOT = 2    #: frozen counts of the last accumulation period, readable


@dataclass
class HistogramRun:
    """What :meth:`HistogramModel.run` returns.

    ``snapshots[k]`` is the frozen bank of the ``k``-th swap executed during the run, as an
    ``(n_channels, bins)`` array, and ``swap_cycles[k]`` the cycle that swap executed in (events
    presented in cycles up to and including it are in that snapshot).
    """

    snapshots: list[np.ndarray] = field(default_factory=list)
    swap_cycles: list[int] = field(default_factory=list)


class HistogramModel:
    """Golden model of ``PhaseHistogram(n_channels, bins, count_bits)``; starts as after reset.

    Parameters
    ----------
    n_channels, bins, count_bits
        As for the RTL block.

    Raises
    ------
    ValueError
        For parameters the RTL block does not accept.
    """

    def __init__(self, n_channels: int, bins: int = 1024, count_bits: int = 32) -> None:
        check_parameters(n_channels, bins, count_bits)
        self.n_channels = n_channels
        self.bins = bins
        self.count_bits = count_bits
        self.count_max = (1 << count_bits) - 1
        self.words = n_channels * bins
        self.cycle = 0
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Synchronous reset: both banks are cleared (``words`` cycles), counters are zero."""
        self._banks = np.zeros((2, self.words), dtype=np.uint64)
        self._init_left = self.words
        self._acc = 0
        self._spare = SpareState.CLEAN
        self._clear_left = 0
        self._swap_pending = False
        self._release_held = False
        self._settle = 0
        self.swaps = 0
        self.outside = 0
        self.bad_channel = 0
        self.skipped = 0

    @property
    def initialising(self) -> bool:
        """The reset-time clear of both banks is running (events are skipped meanwhile)."""
        return self._init_left > 0

    @property
    def clearing(self) -> bool:
        return self.initialising or self._spare == SpareState.CLEARING or self._release_held

    @property
    def swap_pending(self) -> bool:
        return self._swap_pending

    @property
    def quiet(self) -> bool:
        """No control activity can happen without a swap or release pulse: cycles without
        events and pulses change nothing but the cycle count."""
        return (not self.initialising and self._settle == 0
                and self._spare != SpareState.CLEARING and not self._release_held
                and not (self._swap_pending and self._spare == SpareState.CLEAN))

    @property
    def snapshot_valid(self) -> bool:
        return self._spare == SpareState.SNAPSHOT and self._settle == 0

    @property
    def spare_state(self) -> SpareState:
        return self._spare

    @property
    def accumulating_bank(self) -> int:
        return self._acc

    @property
    def snapshot(self) -> np.ndarray:
        """The non-accumulating bank as ``(n_channels, bins)`` counts (a copy).

        Meaningful while :attr:`snapshot_valid`; zero once a clear has started.
        """
        return self._banks[1 - self._acc].reshape(self.n_channels, self.bins).copy()

    @property
    def accumulating(self) -> np.ndarray:
        """The accumulating bank as ``(n_channels, bins)`` counts (a copy)."""
        return self._banks[self._acc].reshape(self.n_channels, self.bins).copy()

    def status(self) -> dict[str, int]:
        """The status outputs as the RTL shows them in the current cycle."""
        return {"clearing": int(self.clearing), "swap_pending": int(self._swap_pending),
                "snapshot_valid": int(self.snapshot_valid), "swaps": self.swaps}

    # -- one cycle -----------------------------------------------------------------------------

    def bin_of(self, phase: int, offset: int, shift: int) -> int | None:
        """The bin of ``phase``, or ``None`` if it is outside the histogram."""
        if phase < offset:
            return None
        index = (phase - offset) >> shift
        return index if index < self.bins else None

    def step(self, valid: bool = False, channel: int = 0, phase: int = 0, *, enable: bool = True,
             offset: int = 0, shift: int = 0, swap: bool = False,
             release: bool = False) -> None:
        """Advance one clock cycle with these inputs.

        Raises
        ------
        ValueError
            If ``phase``, ``offset``, ``shift`` or ``channel`` do not fit their ports.
        """
        _check_port("phase", phase, PHASE_BITS)
        _check_port("offset", offset, PHASE_BITS)
        _check_port("shift", shift, SHIFT_BITS)
        _check_port("channel", channel, channel_bits(self.n_channels))
        if valid and enable:
            self._count_event(channel, phase, offset, shift)
        self._advance_control(bool(swap), bool(release))
        self.cycle += 1

    def _count_event(self, channel: int, phase: int, offset: int, shift: int) -> None:
        if self.initialising:
            self.skipped = (self.skipped + 1) & _MASK64
        elif channel >= self.n_channels:
            self.bad_channel = (self.bad_channel + 1) & _MASK64
        else:
            index = self.bin_of(phase, offset, shift)
            if index is None:
                self.outside = (self.outside + 1) & _MASK64
            else:
                bank = self._banks[self._acc]
                addr = channel * self.bins + index
                bank[addr] = min(int(bank[addr]) + 1, self.count_max)

    def _advance_control(self, swap: bool, release: bool) -> None:
        # Every decision uses the state of this cycle (registers), like the RTL.
        init, spare, settle = self.initialising, self._spare, self._settle
        if init:
            self._init_left -= 1
        if settle:
            self._settle -= 1
            if settle == 1:
                self.swaps = (self.swaps + 1) & 0xFFFF_FFFF
        if spare == SpareState.CLEARING:
            self._clear_left -= 1
            if self._clear_left == 0:
                self._spare = SpareState.CLEAN
        elif spare == SpareState.SNAPSHOT and (release or self._release_held):
            if settle == 0:
                self._spare = SpareState.CLEARING
                self._clear_left = self.words
                self._release_held = False
                self._banks[1 - self._acc] = 0
            else:
                self._release_held = True
        if not init and spare == SpareState.CLEAN and (swap or self._swap_pending):
            self._acc ^= 1
            self._spare = SpareState.SNAPSHOT
            self._settle = SETTLE_CYCLES - 1
            self._swap_pending = False
        elif swap:
            self._swap_pending = True

    # -- many cycles ---------------------------------------------------------------------------

    def run(self, cycles: int, event_cycle: np.ndarray, channel: np.ndarray, phase: np.ndarray,
            *, offset: int = 0, shift: int = 0, swaps_at: np.ndarray = (),
            releases_at: np.ndarray = ()) -> HistogramRun:
        """Advance ``cycles`` cycles with events, swap and release pulses at the given cycles.

        Cycles are counted from the model's current cycle (0 = the next :meth:`step`). At most
        one event per cycle (``event_cycle`` strictly increasing), ``enable`` high throughout,
        constant ``offset`` and ``shift``. Equivalent to calling :meth:`step` for every cycle,
        but the events are binned with ``numpy.bincount`` between control changes.

        Raises
        ------
        ValueError
            For events outside ``[0, cycles)``, two events in one cycle, mismatched arrays or
            values that do not fit their ports.
        """
        event_cycle = np.asarray(event_cycle, dtype=np.int64)
        channel = np.asarray(channel, dtype=np.int64)
        phase = np.asarray(phase, dtype=np.int64)
        if not event_cycle.shape == channel.shape == phase.shape or event_cycle.ndim != 1:
            raise ValueError("event_cycle, channel and phase must be 1-D arrays of one length")
        if event_cycle.size and (event_cycle[0] < 0 or event_cycle[-1] >= cycles
                                 or np.any(np.diff(event_cycle) <= 0)):
            raise ValueError("event cycles must be strictly increasing within [0, cycles)")
        if phase.size and (phase.min() < 0 or phase.max() > _PHASE_MAX):
            raise ValueError(f"phase must fit in {PHASE_BITS} bits")
        if channel.size and (channel.min() < 0
                             or channel.max() >= 1 << channel_bits(self.n_channels)):
            raise ValueError("channel does not fit the channel port")
        _check_port("offset", offset, PHASE_BITS)
        _check_port("shift", shift, SHIFT_BITS)
        swap_set = {int(c) for c in np.asarray(swaps_at, dtype=np.int64)}
        release_set = {int(c) for c in np.asarray(releases_at, dtype=np.int64)}

        # Classify every event once; then bin runs of cycles with a constant bank.
        good_channel = channel < self.n_channels
        diff = phase - offset
        index = np.where(diff >= 0, diff >> shift, self.bins)
        inside = good_channel & (index < self.bins)
        addr = np.where(inside, channel * self.bins + np.minimum(index, self.bins - 1), 0)
        result = HistogramRun()
        cursor = 0                        # first event not yet binned

        def bin_until(stop: int) -> None:
            nonlocal cursor
            end = int(np.searchsorted(event_cycle, stop, side="left"))
            if end > cursor:
                self._bin_events(event_cycle[cursor:end], good_channel[cursor:end],
                                 inside[cursor:end], addr[cursor:end])
            cursor = end

        t = 0
        while t < cycles:
            # Skip ahead to the next cycle where the control state can change.
            if self.quiet:
                nxt = min((c for c in swap_set | release_set if c >= t), default=cycles)
                if nxt > t:
                    bin_until(nxt)
                    self.cycle += nxt - t
                    t = nxt
                    continue
            bin_until(t + 1)
            acc_before = self._acc
            self._advance_control(t in swap_set, t in release_set)
            if self._acc != acc_before:
                result.swap_cycles.append(self.cycle)
                result.snapshots.append(self.snapshot)
            self.cycle += 1
            t += 1
        bin_until(cycles)
        return result

    def _bin_events(self, cycles: np.ndarray, good_channel: np.ndarray, inside: np.ndarray,
                    addr: np.ndarray) -> None:
        """Count a run of events that all see the same control state (one bank, one phase)."""
        n = cycles.size
        if self.initialising:
            # Reset clear ends inside this run only at a control step, never here.
            self.skipped = (self.skipped + n) & _MASK64
            return
        self.bad_channel = (self.bad_channel + int(np.count_nonzero(~good_channel))) & _MASK64
        self.outside = (self.outside + int(np.count_nonzero(good_channel & ~inside))) & _MASK64
        counts = np.bincount(addr[inside], minlength=self.words).astype(np.uint64)
        bank = self._banks[self._acc]
        room = np.uint64(self.count_max) - bank          # no uint64 overflow at 64-bit counts
        bank[:] = np.where(counts > room, np.uint64(self.count_max), bank + counts)


_MASK64 = (1 << 64) - 1


def channel_bits(n_channels: int) -> int:
    """Width of the ``channel`` port (at least 1)."""
    return max(1, (n_channels - 1).bit_length())


def check_parameters(n_channels: int, bins: int, count_bits: int) -> None:
    """Validate ``PhaseHistogram`` parameters.

    Raises
    ------
    ValueError
        If ``n_channels`` < 1, ``bins`` is not a power of two in ``[2, 2**PHASE_BITS]``, or
        ``count_bits`` is not in ``[1, 64]``.
    """
    if not isinstance(n_channels, int) or n_channels < 1:
        raise ValueError(f"n_channels must be a positive integer, not {n_channels!r}")
    if not isinstance(bins, int) or bins < 2 or bins & (bins - 1) or bins > 1 << PHASE_BITS:
        raise ValueError(f"bins must be a power of two in [2, 2**{PHASE_BITS}], not {bins!r}")
    if not isinstance(count_bits, int) or not 1 <= count_bits <= 64:
        raise ValueError(f"count_bits must be in [1, 64], not {count_bits!r}")


def _check_port(name: str, value: int, width: int) -> None:
    if not 0 <= int(value) < 1 << width:
        raise ValueError(f"{name}={value} does not fit in {width} bits")
