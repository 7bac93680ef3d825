"""Bit-exact numpy reference models of the core's blocks (no Amaranth).

The cocotb tests compare the RTL against these models event by event, and the host's
reference-model backend runs them for fast sweeps. Each model states what it assumes about the
block's environment (e.g. an output that is never back-pressured).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import CAL_FRAC_BITS, SlotClockConstants, TaggerConfig, slot_clock_constants
from .records import SLOT_BITS

__all__ = ["encode_words", "TaggerSettings", "TaggerModel", "TagResult", "ideal_calibration",
           "SlotClockModel", "map_to_slot"]

_MASK64 = (1 << 64) - 1


def encode_words(bits: np.ndarray, prev_last: np.ndarray, kind: str) -> tuple[np.ndarray, ...]:
    """The tagger's encoder on a batch of words.

    Parameters
    ----------
    bits:
        ``(n, W)`` 0/1 samples in time order (column 0 earliest).
    prev_last:
        ``(n,)`` the last sample of the same channel's previous word.
    kind:
        ``"oversampling"``: the code is the index of the first rising edge (a sample that is high
        while the one before it, or ``prev_last`` for sample 0, is low); further rising edges in
        the same word are *extra* edges. ``"delay_line"``: a hit is the latest sample going high
        (``prev_last`` low, sample ``W − 1`` high) and the code is ``W − popcount(word)``:
        counting ones ignores bubbles (isolated wrong samples near the transition of a
        thermometer code), and equals the index of the transition for a clean code.

    Returns
    -------
    hit, code, extra:
        Boolean hit flags, integer codes (0 where no hit), and the number of extra edges.
    """
    bits = np.asarray(bits, dtype=np.uint8)
    n, width = bits.shape
    prev_last = np.asarray(prev_last, dtype=np.uint8)
    if kind == "oversampling":
        before = np.concatenate([prev_last[:, None], bits[:, :-1]], axis=1)
        rising = (bits == 1) & (before == 0)
        count = rising.sum(axis=1)
        hit = count > 0
        code = np.where(hit, rising.argmax(axis=1), 0)
        extra = np.maximum(count - 1, 0)
    elif kind == "delay_line":
        hit = (bits[:, -1] == 1) & (prev_last == 0)
        code = np.where(hit, width - bits.sum(axis=1), 0)
        extra = np.zeros(n, dtype=np.int64)
    else:
        raise ValueError(f"unknown front-end kind {kind!r}")
    return hit, code.astype(np.int64), extra.astype(np.int64)


def ideal_calibration(fine_ps: np.ndarray) -> np.ndarray:
    """Calibration entries (1/16 ps fixed point) from fine times in ps."""
    return np.round(np.asarray(fine_ps) * (1 << CAL_FRAC_BITS)).astype(np.int64)


_SLOT_MASK = (1 << SLOT_BITS) - 1


@dataclass(frozen=True)
class SlotClockModel:
    """The slot clock's state ``k`` cycles after it was preloaded with ``(slot, offset, rem)``.

    Exact: the accumulator ``offset·den + rem`` advances by ``step`` per cycle and wraps at
    ``wrap``, so after ``k`` cycles it is ``(acc0 + k·step) mod wrap`` with
    ``(acc0 + k·step) div wrap`` slots counted.
    """

    constants: SlotClockConstants
    slot0: int = 0
    offset0: int = 0
    rem0: int = 0

    def state(self, k: int) -> tuple[int, int, int]:
        """``(slot, offset, rem)`` after ``k`` cycles."""
        c = self.constants
        slots, acc = divmod(self.offset0 * c.den + self.rem0 + k * c.step, c.wrap)
        offset, rem = divmod(acc, c.den)
        return (self.slot0 + slots) & _SLOT_MASK, offset, rem


def map_to_slot(slot: int, phase_sum: int, wrap_int: int) -> tuple[int, int] | None:
    """:class:`tbqkd.hdl.slots.SlotMapper`: ``(slot, phase ps)`` or None (range error)."""
    for _ in range(2):
        if phase_sum < 0:
            slot, phase_sum = slot - 1, phase_sum + wrap_int
        elif phase_sum >= wrap_int:
            slot, phase_sum = slot + 1, phase_sum - wrap_int
    if not 0 <= phase_sum < wrap_int:
        return None
    return slot & _SLOT_MASK, phase_sum >> CAL_FRAC_BITS


@dataclass
class TaggerSettings:
    """Register-level settings of the tagger that the model needs."""

    n_channels: int
    run: bool = True
    enable: list[bool] = field(default_factory=list)
    delay_ps: list[int] = field(default_factory=list)
    dead_time: list[int] = field(default_factory=list)
    calibration: np.ndarray | None = None     # (n_channels, 2**code_bits) entries, 1/16 ps
    slot_clock: SlotClockConstants | None = None

    @classmethod
    def defaults(cls, config: TaggerConfig) -> TaggerSettings:
        n = config.n_channels
        return cls(n, True, [True] * n, [0] * n, [config.min_dead_time] * n,
                   np.zeros((n, 1 << config.code_bits), dtype=np.int64),
                   slot_clock_constants(config.period_ps, config.slot_period))


@dataclass
class TagResult:
    """Tags in output order plus the per-channel counters."""

    timestamp: np.ndarray    # uint64
    channel: np.ndarray      # uint8
    code: np.ndarray         # int64
    cycle: np.ndarray        # int64, cycle of detection
    events: np.ndarray       # per channel
    suppressed: np.ndarray   # per channel
    slot: np.ndarray | None = None    # uint64, the tag's slot (as the slot mapper leaves it)
    phase: np.ndarray | None = None   # int64, ps within the slot; -1 for a range error

    def __len__(self) -> int:
        return len(self.timestamp)


class TaggerModel:
    """Reference model of the time-tagger, assuming an output that keeps up (no drops).

    Ordering guarantee (same as the RTL): tags leave in order of detection cycle, and within
    one cycle in increasing channel order. Dead time is non-extending: an edge is accepted when
    at least ``dead_time`` cycles have passed since the channel's last *accepted* edge.
    """

    def __init__(self, config: TaggerConfig, settings: TaggerSettings | None = None,
                 *, cycle_offset: int = 0, time_offset_ps: int = 0, rem_offset: int = 0,
                 slot_offset: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.config = config
        self.settings = settings or TaggerSettings.defaults(config)
        self._cycle_offset = cycle_offset
        self._time_offset = time_offset_ps
        self._rem_offset = rem_offset
        constants = self.settings.slot_clock or \
            slot_clock_constants(config.period_ps, config.slot_period)
        self.slot_clock = SlotClockModel(constants, *slot_offset)

    def time_at(self, cycle: np.ndarray) -> np.ndarray:
        """Time base (ps, mod 2^64) of absolute cycle numbers, honouring a preload.

        After a preload of (cycle0, time0, rem0), cycle ``cycle0 + k`` has time
        ``time0 + floor((rem0 + k·num) / den)``.
        """
        c = self.config
        # Cycle numbers may be given as int64 views of the 64-bit counter: count modulo 2^64.
        k = [(int(x) - self._cycle_offset) & _MASK64 for x in np.asarray(cycle).ravel()]
        t = [(self._time_offset + (self._rem_offset + kk * c.period_num) // c.period_den)
             & _MASK64 for kk in k]
        return np.array(t, dtype=np.uint64)

    def run(self, words) -> TagResult:
        """Tag a :class:`tbqkd.sim.frontend.SampleWords` stream (cycles as the core counts)."""
        c, s = self.config, self.settings
        bits = words.bits()
        cycle = np.asarray(words.cycle, dtype=np.int64)
        chan = np.asarray(words.channel, dtype=np.int64)
        # The previous word of the same channel is the listed word one cycle earlier, or zeros.
        prev_last = np.zeros(len(cycle), dtype=np.uint8)
        last_of = {}
        for i in range(len(cycle)):
            key = (int(chan[i]), int(cycle[i]) - 1)
            if key in last_of:
                prev_last[i] = last_of[key]
            last_of[(int(chan[i]), int(cycle[i]))] = bits[i, -1]
        hit, code, extra = encode_words(bits, prev_last, c.frontend)

        events = np.zeros(c.n_channels, dtype=np.int64)
        suppressed = np.zeros(c.n_channels, dtype=np.int64)
        last_accept = [None] * c.n_channels
        accepted = np.zeros(len(cycle), dtype=bool)
        for i in np.flatnonzero(hit | (extra > 0)):
            ch = int(chan[i])
            if not (s.run and s.enable[ch]):
                continue
            suppressed[ch] += int(extra[i])
            if not hit[i]:
                continue
            la = last_accept[ch]
            if la is not None and cycle[i] - la < s.dead_time[ch]:
                suppressed[ch] += 1
                continue
            last_accept[ch] = int(cycle[i])
            accepted[i] = True
            events[ch] += 1
        idx = np.flatnonzero(accepted)          # already in (cycle, channel) order
        fine = (np.asarray(s.calibration)[chan[idx], code[idx]] + (1 << (CAL_FRAC_BITS - 1))) \
            >> CAL_FRAC_BITS
        base = self.time_at(cycle[idx])
        delay = np.array(s.delay_ps, dtype=np.int64)[chan[idx]]
        timestamp = np.array([(int(b) + int(f) + int(d)) & _MASK64
                              for b, f, d in zip(base, fine, delay, strict=True)], dtype=np.uint64)
        slot, phase = self._slots(cycle[idx], np.asarray(s.calibration)[chan[idx], code[idx]],
                                  delay)
        return TagResult(timestamp, chan[idx].astype(np.uint8), code[idx], cycle[idx],
                         events, suppressed, slot, phase)

    def _slots(self, cycle, cal_entry, delay) -> tuple[np.ndarray, np.ndarray]:
        """Each tag's (slot, phase) through the slot clock and the slot mapper."""
        wrap_int = self.slot_clock.constants.wrap_int
        slots = np.zeros(len(cycle), dtype=np.uint64)
        phases = np.full(len(cycle), -1, dtype=np.int64)
        for i, (cy, fine, d) in enumerate(zip(cycle, cal_entry, delay, strict=True)):
            k = (int(cy) - self._cycle_offset) & _MASK64
            slot, offset, _ = self.slot_clock.state(k)
            mapped = map_to_slot(slot, offset + (int(d) << CAL_FRAC_BITS) + int(fine), wrap_int)
            if mapped is not None:
                slots[i], phases[i] = mapped
        return slots, phases
