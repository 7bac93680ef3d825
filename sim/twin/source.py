"""The quantum-dot source: exact slot times, which pulses carry photons, blinking.

Slots are never looped over. For a chunk of ``n`` slots the pulses that yield at least one
*candidate* photon (a photon that reaches Bob and would be detected by the most efficient
detector) form a Bernoulli process of probability ``p_any`` per slot; the gaps between them are
geometric, so the sorted slot indices are drawn directly from inverse-transform geometric gaps,
in time proportional to the number of detections, not of slots. Candidates are thinned later to
each detector's own efficiency (:mod:`tbqkd.sim.twin.bob`).

Photon number per pulse: 0, 1 or 2 photons with ``P(2) = g2 * efficiency**2 / 2`` and
``P(1) = efficiency - 2 P(2)`` (mean ``efficiency``); higher numbers are negligible for a dot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numba
import numpy as np

from .params import SourceParams
from .rng import (
    EXP_TAIL_U,
    GOLDEN,
    exponential_body,
    exponential_tail,
    high_unit,
    low_unit,
    mix64,
    new_state,
)

__all__ = ["SlotClock", "PulseStatistics", "draw_pulses", "Blinker"]


@dataclass(frozen=True)
class SlotClock:
    """Exact slot times: slot ``k`` starts at ``k * numerator / denominator`` ps.

    ``k = q * denominator + r`` gives ``t = q * numerator + (r * numerator) // denominator`` plus
    a fraction below 1 ps, all in int64 without overflow for any run shorter than centuries.
    """

    numerator: int
    denominator: int

    @classmethod
    def from_period(cls, period_ps: Fraction) -> SlotClock:
        """Clock for a rational period in ps.

        Raises
        ------
        ValueError
            If ``numerator * denominator`` does not fit in int64 (exact arithmetic impossible).
        """
        if period_ps.numerator * period_ps.denominator >= 2 ** 62:
            raise ValueError(f"period {period_ps} ps too finely specified for exact arithmetic")
        return cls(period_ps.numerator, period_ps.denominator)

    def split_ps(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start time of each slot as an integer part (int64 ps) and a fraction in [0, 1)."""
        slots = np.asarray(slots, dtype=np.int64)
        quotient = slots // self.denominator
        whole = (slots - quotient * self.denominator) * self.numerator
        fine = whole // self.denominator
        return (quotient * self.numerator + fine,
                (whole - fine * self.denominator) / self.denominator)

    def time_ps(self, slots: np.ndarray) -> np.ndarray:
        """Start time of each slot, floored to integer ps (int64)."""
        return self.split_ps(slots)[0]

    def time_of(self, slot: int) -> int:
        """Start time of one slot, floored to integer ps (exact Python integers)."""
        return slot * self.numerator // self.denominator

    def first_slot_at_or_after(self, time_ps: int) -> int:
        """Index of the first slot starting at or after ``time_ps``."""
        return -(-time_ps * self.denominator // self.numerator)


@dataclass(frozen=True)
class PulseStatistics:
    """Per-pulse probabilities of candidate photons, given the per-photon candidate probability.

    ``q1`` and ``q2`` are the candidate probabilities of a photon of a one- or two-photon pulse
    (they differ under photon-number splitting); ``forwarded2`` is how many photons of a
    two-photon pulse travel on (2 normally, 1 under PNS).
    """

    p_any: float          # probability per slot of at least one candidate photon
    two_fraction: float   # among those pulses, fraction that were two-photon pulses
    both_fraction: float  # among those two-photon pulses, fraction with two candidates

    @classmethod
    def build(cls, source: SourceParams, q1: float, q2: float, forwarded2: int,
              block1: float = 0.0) -> PulseStatistics:
        """Combine the source's photon numbers with the link's candidate probabilities."""
        p1 = source.one_photon_probability() * (1 - block1)
        p2 = source.two_photon_probability()
        a1 = p1 * q1
        any2 = 1 - (1 - q2) ** forwarded2
        a2 = p2 * any2
        p_any = a1 + a2
        both = (q2 * q2 / any2) if (forwarded2 == 2 and any2 > 0) else 0.0
        return cls(p_any=min(p_any, 1.0), two_fraction=a2 / p_any if p_any > 0 else 0.0,
                   both_fraction=both)


_TAIL_SALT = np.uint64(0x2545F4914F6CDD1D)  # seeds the generator of the rare exact gap tails

#: Candidate draws per block (see :func:`_draw_pulses`).
_BLOCK = 1024


@numba.njit(cache=True)
def _draw_pulses(seed, first_slot, n_slots, p_any, two_fraction, both_fraction):
    # Slot positions in [0, n_slots) with a candidate, from geometric gaps
    # floor(E / -log(1 - p)), E ~ Exp(1), and the photon number of each pulse. Draw k is
    # mix64(seed + (k+1) golden): its high 32 bits give E (tabulated body; the exact tail,
    # probability 1/256, from ``tail_state``), its low 32 bits the photon number: 1, 2, or 2
    # with both photons candidates (listed twice). Per block, the draws and the tabulated
    # bodies are loops without branches (vectorised); the running sum is the only serial loop.
    if p_any <= 0.0:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    tail_state = new_state(mix64(np.uint64(seed) ^ _TAIL_SALT))
    gap_scale = -1.0 / math.log1p(-p_any) if p_any < 1.0 else 0.0
    max_gap = float(n_slots)  # a longer gap ends the chunk anyway (and int64 cannot overflow)
    two_both = two_fraction * both_fraction
    expected = n_slots * p_any
    size = max(64, int(expected * (1.0 + two_both) + 10.0 * math.sqrt(expected + 1.0)) + 64)
    slots = np.empty(size, np.int64)
    numbers = np.empty(size, np.int8)
    bits = np.empty(_BLOCK, np.uint64)
    steps = np.empty(_BLOCK, np.int64)  # 1 + geometric gap
    count = 0
    position = -1
    drawn = np.uint64(seed)
    while True:
        for k in range(_BLOCK):
            bits[k] = mix64(drawn + np.uint64(k + 1) * GOLDEN)
        drawn += np.uint64(_BLOCK) * GOLDEN
        for k in range(_BLOCK):
            steps[k] = 1 + np.int64(min(exponential_body(high_unit(bits[k])) * gap_scale,
                                        max_gap))
        if count + 2 * _BLOCK > slots.size:  # room for a whole block, two-photon pairs too
            grown = max(2 * slots.size, count + 2 * _BLOCK)
            slots = _grown(slots, count, grown)
            numbers = _grown(numbers, count, grown)
        for k in range(_BLOCK):
            if high_unit(bits[k]) < EXP_TAIL_U:
                position += steps[k]
            else:
                position += 1 + int(min(exponential_tail(tail_state) * gap_scale, max_gap))
            if position >= n_slots:
                return slots[:count], numbers[:count]
            u = low_unit(bits[k])
            slots[count] = first_slot + position
            numbers[count] = 2 if u < two_fraction else 1
            count += 1
            if u < two_both:  # both photons of a two-photon pulse are candidates
                slots[count] = first_slot + position
                numbers[count] = 2
                count += 1


@numba.njit(cache=True)
def _grown(values, count, size):
    out = np.empty(size, values.dtype)
    out[:count] = values[:count]
    return out


def draw_pulses(seed: int, first_slot: int, n_slots: int,
                stats: PulseStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Candidate photons of ``n_slots`` slots from ``first_slot``.

    Returns
    -------
    slots : int64 array
        Slot of each candidate photon, sorted (a two-photon pulse may appear twice).
    photons_in_pulse : int8 array
        Photon number (1 or 2) of the pulse each candidate came from.
    """
    return _draw_pulses(seed, first_slot, n_slots, stats.p_any,
                        stats.two_fraction, stats.both_fraction)


class Blinker:
    """Telegraph on/off process of a blinking dot on the slot axis, continued across chunks.

    On and off durations are exponential with the scenario's means; the process starts in the
    stationary distribution.
    """

    def __init__(self, source: SourceParams, rng: np.random.Generator) -> None:
        self._rng        = rng
        self._rate_hz    = source.pulse_rate_hz
        self._on_mean_s  = source.blink_on_mean_s
        self._off_mean_s = source.blink_off_mean_s
        self._on         = bool(rng.random() < source.on_fraction())
        self._next_slot  = self._duration_slots()

    def _duration_slots(self) -> float:
        mean_s = self._on_mean_s if self._on else self._off_mean_s
        return self._rng.exponential(mean_s) * self._rate_hz

    def on_mask(self, slots: np.ndarray, first_slot: int, end_slot: int) -> np.ndarray:
        """Whether the dot is on at each of ``slots`` (sorted, within ``[first, end)``).

        Successive calls must cover consecutive slot ranges.
        """
        edges = []
        states = [self._on]
        while self._next_slot < end_slot:
            edges.append(self._next_slot)
            self._on = not self._on
            states.append(self._on)
            self._next_slot += self._duration_slots()
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), slots, side="right")
        return np.asarray(states, dtype=bool)[index]
