"""Bit-exact numpy reference models of the core's blocks (no Amaranth).

The cocotb tests compare the RTL against these models event by event, and the host's
reference-model backend runs them for fast sweeps. Each model states what it assumes about the
block's environment (e.g. an output that is never back-pressured).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import CAL_FRAC_BITS, TaggerConfig

__all__ = ["encode_words", "TaggerSettings", "TaggerModel", "TagResult", "ideal_calibration"]

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


@dataclass
class TaggerSettings:
    """Register-level settings of the tagger that the model needs."""

    n_channels: int
    run: bool = True
    enable: list[bool] = field(default_factory=list)
    delay_ps: list[int] = field(default_factory=list)
    dead_time: list[int] = field(default_factory=list)
    calibration: np.ndarray | None = None     # (n_channels, 2**code_bits) entries, 1/16 ps

    @classmethod
    def defaults(cls, config: TaggerConfig) -> TaggerSettings:
        n = config.n_channels
        return cls(n, True, [True] * n, [0] * n, [config.min_dead_time] * n,
                   np.zeros((n, 1 << config.code_bits), dtype=np.int64))


@dataclass
class TagResult:
    """Tags in output order plus the per-channel counters."""

    timestamp: np.ndarray    # uint64
    channel: np.ndarray      # uint8
    code: np.ndarray         # int64
    cycle: np.ndarray        # int64, cycle of detection
    events: np.ndarray       # per channel
    suppressed: np.ndarray   # per channel

    def __len__(self) -> int:
        return len(self.timestamp)


class TaggerModel:
    """Reference model of the time-tagger, assuming an output that keeps up (no drops).

    Ordering guarantee (same as the RTL): tags leave in order of detection cycle, and within
    one cycle in increasing channel order. Dead time is non-extending: an edge is accepted when
    at least ``dead_time`` cycles have passed since the channel's last *accepted* edge.
    """

    def __init__(self, config: TaggerConfig, settings: TaggerSettings | None = None,
                 *, cycle_offset: int = 0, time_offset_ps: int = 0, rem_offset: int = 0) -> None:
        self.config = config
        self.settings = settings or TaggerSettings.defaults(config)
        self._cycle_offset = cycle_offset
        self._time_offset = time_offset_ps
        self._rem_offset = rem_offset

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
        return TagResult(timestamp, chan[idx].astype(np.uint8), code[idx], cycle[idx],
                         events, suppressed)
