"""Front-end models: turn true event times into the per-clock sample words the tagger sees.

The core's front end delivers, per channel and per clock cycle, one ``W``-bit word of samples of
the input in time order (bit 0 earliest). Two kinds sit behind that interface:

* :class:`OversamplingFrontend` — ISERDES-style: sample ``j`` of cycle ``c`` is taken at
  ``c·T + (j + 1)·T/W``. An edge in ``[c·T + j·T/W, c·T + (j + 1)·T/W)`` makes ``j`` the first
  high sample, so the ideal fine time of code ``j`` is ``(j + ½)·T/W``.
* :class:`DelayLineFrontend` — a carry-chain TDC: the input runs along ``W`` taps of unequal
  delays ``d_k`` and all taps are captured at the clock edge ``(c + 1)·T``; tap ``k`` sees the
  input as it was ``D_k = d_0 + … + d_k`` earlier. Bit ``j`` of the word is tap ``W − 1 − j``, so
  the word is again in time order, with unequal spacing, spanning ``D_{W-1}`` (more than ``T``).
  Optional *bubbles* flip samples next to the transition, as metastable carry-chain taps do.

Inputs are pulses of ``pulse_width_ps``. Words that are all zero are not produced: the result is
sparse, ``(cycle, channel, lanes)`` sorted by cycle then channel, with bit ``j`` of the word in
bit ``j % 64`` of lane ``j // 64``. The same model feeds the cocotb tests, the Verilator model and
the golden model, and (through :class:`tbqkd.sim.twin`) the whole emulated link.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["SampleWords", "OversamplingFrontend", "DelayLineFrontend", "make_frontend",
           "lanes_for", "words_to_bits", "bits_to_lanes"]


def lanes_for(width: int) -> int:
    """Number of 64-bit lanes holding a ``width``-bit word."""
    return -(-width // 64)


def bits_to_lanes(bits: np.ndarray) -> np.ndarray:
    """Pack a ``(n, W)`` 0/1 matrix into ``(n, lanes)`` uint64 words (bit j -> lane j//64)."""
    n, width = bits.shape
    padded = np.zeros((n, lanes_for(width) * 64), dtype=np.uint8)
    padded[:, :width] = bits
    packed = np.packbits(padded, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64).reshape(n, -1)


def words_to_bits(lanes: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`bits_to_lanes`: ``(n, lanes)`` uint64 to a ``(n, W)`` uint8 matrix."""
    lanes = np.ascontiguousarray(lanes, dtype="<u8")
    return np.unpackbits(lanes.view(np.uint8), axis=1, bitorder="little")[:, :width]


@dataclass
class SampleWords:
    """Sparse per-cycle sample words: every (cycle, channel) not listed is all zeros."""

    cycle: np.ndarray          # int64, sorted (ties by channel)
    channel: np.ndarray        # uint8
    lanes: np.ndarray          # uint64, shape (n, lanes_for(width))
    width: int

    def __len__(self) -> int:
        return len(self.cycle)

    def bits(self) -> np.ndarray:
        return words_to_bits(self.lanes, self.width)

    @classmethod
    def from_bits(cls, cycle, channel, bits) -> SampleWords:
        """Build from explicit words (for directed tests); merges duplicates by OR."""
        bits = np.asarray(bits, dtype=np.uint8)
        return _merge(np.asarray(cycle, dtype=np.int64), np.asarray(channel, dtype=np.uint8),
                      bits_to_lanes(bits), bits.shape[1])

    def split(self, cycle: int) -> tuple[SampleWords, SampleWords]:
        """The words before ``cycle``, and those at or after it."""
        cut = int(np.searchsorted(self.cycle, cycle))
        return (SampleWords(self.cycle[:cut], self.channel[:cut], self.lanes[:cut], self.width),
                SampleWords(self.cycle[cut:], self.channel[cut:], self.lanes[cut:], self.width))

    def concat(self, other: SampleWords) -> SampleWords:
        return _merge(np.concatenate([self.cycle, other.cycle]),
                      np.concatenate([self.channel, other.channel]),
                      np.concatenate([self.lanes, other.lanes]), self.width)


def _merge(cycle, channel, lanes, width) -> SampleWords:
    """Sort by (cycle, channel), OR words of the same (cycle, channel), drop all-zero words."""
    keep = lanes.any(axis=1)
    cycle, channel, lanes = cycle[keep], channel[keep], lanes[keep]
    order = np.lexsort((channel, cycle))
    cycle, channel, lanes = cycle[order], channel[order], lanes[order]
    if len(cycle) == 0:
        return SampleWords(cycle, channel, lanes.reshape(0, lanes_for(width)), width)
    first = np.ones(len(cycle), dtype=bool)
    first[1:] = (cycle[1:] != cycle[:-1]) | (channel[1:] != channel[:-1])
    starts = np.flatnonzero(first)
    merged = np.bitwise_or.reduceat(lanes, starts, axis=0)
    return SampleWords(cycle[starts], channel[starts], merged, width)


def _run_lanes(first: np.ndarray, end: np.ndarray, n_lanes: int) -> np.ndarray:
    """Words whose bits ``first`` … ``end − 1`` are high, as ``(n, n_lanes)`` uint64."""
    lanes = np.zeros((len(first), n_lanes), dtype=np.uint64)
    for lane in range(n_lanes):
        a = np.clip(first - 64 * lane, 0, 64).astype(np.uint64)
        b = np.clip(end - 64 * lane, 0, 64).astype(np.uint64)
        width = np.where(b > a, b - a, 0).astype(np.uint64)
        ones = np.where(width >= 64, np.uint64(0xFFFF_FFFF_FFFF_FFFF),
                        (np.uint64(1) << np.minimum(width, 63)) - np.uint64(1))
        lanes[:, lane] = np.where(width > 0, ones << np.minimum(a, 63), 0)
    return lanes


@dataclass
class _Frontend(ABC):
    width: int
    period_ps: Fraction
    pulse_width_ps: float = 0.0

    @abstractmethod
    def sample_offsets_ps(self) -> np.ndarray:
        """Time of sample ``j`` relative to the start of its cycle, in ps (float64)."""

    @abstractmethod
    def ideal_fine_ps(self) -> np.ndarray:
        """True centre (ps from the start of the cycle) of the time bin of each code."""

    def _post_process(self, bits: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return bits

    def words(self, time_ps: np.ndarray, channel: np.ndarray,
              rng: np.random.Generator | None = None) -> SampleWords:
        """Sample words produced by pulses starting at ``time_ps`` (int64 or float ps).

        Times are split exactly into a cycle index and a residual inside the cycle (integer
        arithmetic on the rational period), so hours of link time lose no precision.
        """
        time_ps = np.asarray(time_ps)
        channel = np.asarray(channel, dtype=np.uint8)
        num, den = self.period_ps.numerator, self.period_ps.denominator
        period = float(self.period_ps)
        if np.issubdtype(time_ps.dtype, np.integer):
            cycle0 = (time_ps.astype(np.int64) * den) // num
            resid = (time_ps.astype(np.int64) * den - cycle0 * num) / den
        else:
            cycle0 = np.floor(time_ps / period).astype(np.int64)
            resid = time_ps - cycle0 * period
        offsets = self.sample_offsets_ps()          # increasing: samples are in time order
        lo = int(np.floor((offsets.min() - self.pulse_width_ps) / period)) - 1
        hi = int(np.ceil(offsets.max() / period)) + 1
        ks = np.arange(-hi, -lo + 1)
        # In cycle cycle0 + k, sample j is high when the pulse covers it:
        # 0 <= k·T + offset_j − resid < pulse width. The high samples form one run [first, end).
        start = resid[:, None] - ks[None, :] * period
        first = np.searchsorted(offsets, start, side="left")
        end = np.searchsorted(offsets, start + self.pulse_width_ps, side="left")
        n, nk = first.shape
        cycles = (cycle0[:, None] + ks[None, :]).reshape(-1)
        chans = np.repeat(channel, nk)
        lanes = _run_lanes(first.reshape(-1), end.reshape(-1), lanes_for(self.width))
        if self._has_post_process(rng):
            bits = self._post_process(words_to_bits(lanes, self.width), rng)
            lanes = bits_to_lanes(bits)
        return _merge(cycles, chans, lanes, self.width)

    def _has_post_process(self, rng) -> bool:
        return False


@dataclass
class OversamplingFrontend(_Frontend):
    """ISERDES-style front end: ``W`` equally spaced samples per cycle."""

    def __post_init__(self) -> None:
        if not self.pulse_width_ps:
            self.pulse_width_ps = float(self.period_ps) * 2

    def sample_offsets_ps(self) -> np.ndarray:
        return (np.arange(self.width) + 1) * float(self.period_ps) / self.width

    def ideal_fine_ps(self) -> np.ndarray:
        return (np.arange(self.width) + 0.5) * float(self.period_ps) / self.width


@dataclass
class DelayLineFrontend(_Frontend):
    """Carry-chain TDC: ``W`` taps with unequal delays ``tap_delays_ps`` (tap 0 first)."""

    tap_delays_ps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bubble_probability: float = 0.0
    bubble_reach: int = 2

    def __post_init__(self) -> None:
        self.tap_delays_ps = np.asarray(self.tap_delays_ps, dtype=np.float64)
        if self.tap_delays_ps.shape != (self.width,):
            raise ValueError(f"need {self.width} tap delays, got {self.tap_delays_ps.shape}")
        if np.cumsum(self.tap_delays_ps)[-1] <= float(self.period_ps):
            raise ValueError("the delay line must span more than one clock period")
        if not self.pulse_width_ps:
            self.pulse_width_ps = float(np.sum(self.tap_delays_ps)) + float(self.period_ps)

    @classmethod
    def random(cls, width: int, period_ps: Fraction, *, low_ps: float = 5.0,
               high_ps: float = 40.0, seed: int = 0, **kw) -> DelayLineFrontend:
        """Tap delays drawn uniformly from ``[low_ps, high_ps]`` with a seeded generator."""
        delays = np.random.default_rng(seed).uniform(low_ps, high_ps, width)
        return cls(width, Fraction(period_ps), tap_delays_ps=delays, **kw)

    def sample_offsets_ps(self) -> np.ndarray:
        cumulative = np.cumsum(self.tap_delays_ps)          # D_k, tap k
        return float(self.period_ps) - cumulative[::-1]     # bit j is tap W-1-j

    def ideal_fine_ps(self) -> np.ndarray:
        """Centre of each code's bin, from the start of the cycle's detection window.

        Code ``j`` (``j`` leading zeros) means the edge fell between samples ``j − 1`` and
        ``j``. An edge is reported in the cycle whose latest sample is the first to see it, so
        the window of a cycle starts one period before its latest sample.
        """
        s = self.sample_offsets_ps()
        window_start = s[-1] - float(self.period_ps)
        prev = np.concatenate([[s[0] - self.tap_delays_ps[-1]], s[:-1]])
        lo = np.clip(prev, window_start, None)
        hi = np.clip(s, window_start, None)
        return (lo + hi) / 2 - window_start

    def _has_post_process(self, rng) -> bool:
        return bool(self.bubble_probability) and rng is not None

    def _post_process(self, bits: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if not self._has_post_process(rng):
            return bits
        # Flip samples within `bubble_reach` of each 0->1 transition, each with the probability.
        edge = np.zeros_like(bits, dtype=bool)
        edge[:, 1:] = (bits[:, 1:] == 1) & (bits[:, :-1] == 0)
        near = np.zeros_like(edge)
        for shift in range(-self.bubble_reach, self.bubble_reach + 1):
            near |= np.roll(edge, shift, axis=1)
        flip = near & (rng.random(bits.shape) < self.bubble_probability)
        return bits ^ flip.astype(np.uint8)


def make_frontend(kind: str, width: int, period_ps: Fraction, *, seed: int = 0,
                  **kw) -> _Frontend:
    """The front-end model matching a :class:`tbqkd.hdl.config.TaggerConfig`'s kind."""
    if kind == "oversampling":
        return OversamplingFrontend(width, Fraction(period_ps), **kw)
    if kind == "delay_line":
        return DelayLineFrontend.random(width, Fraction(period_ps), seed=seed, **kw)
    raise ValueError(f"unknown front-end kind {kind!r}")
