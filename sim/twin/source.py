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
from .rng import GOLDEN, exponential_of, mix64, unit

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


_TWO_PHOTON_SALT = np.uint64(0x2545F4914F6CDD1D)  # seeds the photon-number stream


@numba.njit(cache=True)
def _candidate_positions(counter, n_slots, p_any):
    # Slot positions in [0, n_slots) with a candidate, from geometric gaps
    # floor(E / -log(1 - p)), E ~ Exp(1). Drawn in batches by a branch-free loop (much faster
    # than stopping at each draw); the draws past the end are discarded.
    gap_scale = -1.0 / math.log1p(-p_any) if p_any < 1.0 else 0.0
    expected = n_slots * p_any
    size = max(64, int(expected + 10.0 * math.sqrt(expected + 1.0)) + 64)
    positions = np.empty(size, np.int64)
    count = 0
    position = -1
    while position < n_slots:
        if count == positions.size:
            grown = np.empty(positions.size * 2, np.int64)
            grown[:count] = positions[:count]
            positions = grown
        batch = min(positions.size - count,
                    max(64, int((n_slots - position) * p_any * 1.01) + 64))
        for k in range(count, count + batch):
            counter += GOLDEN
            position += 1 + int(exponential_of(unit(mix64(counter)), gap_scale))
            positions[k] = position
        count += batch
    while count > 0 and positions[count - 1] >= n_slots:
        count -= 1
    return positions[:count]


@numba.njit(cache=True)
def _draw_pulses(seed: int, first_slot: int, n_slots: int, p_any: float, two_fraction: float,
                 both_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    if p_any <= 0.0:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    positions = _candidate_positions(np.uint64(seed), n_slots, p_any)
    n = positions.size
    photons = np.ones(n, np.int8)
    if two_fraction <= 0.0:
        positions += first_slot
        return positions, photons
    # Photon number of each pulse from its own stream: 1, 2, or 2 with both photons
    # candidates (marked 3 here, listed twice below).
    counter = mix64(np.uint64(seed) ^ _TWO_PHOTON_SALT)
    two_both = two_fraction * both_fraction
    doubles = 0
    for k in range(n):
        counter += GOLDEN
        u = unit(mix64(counter))
        if u < two_fraction:
            photons[k] = 3 if u < two_both else 2
            doubles += u < two_both
    slots = np.empty(n + doubles, np.int64)
    numbers = np.empty(n + doubles, np.int8)
    count = 0
    for k in range(n):
        slot = first_slot + positions[k]
        number = photons[k]
        slots[count] = slot
        numbers[count] = min(number, 2)
        count += 1
        if number == 3:
            slots[count] = slot
            numbers[count] = 2
            count += 1
    return slots, numbers


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
