"""Slot synchronisation: which of Alice's slots is Bob's slot 0.

Bob's alignment (:func:`tbqkd.host.link.bring_up`) makes a reference pulse his slot 0. The
reference marks every ``divider``-th of Alice's slots, so Alice's number for that pulse is a
multiple of ``divider``; Bob's estimate of *which* multiple comes from his time base and the
nominal fibre delay (``nominal`` offset). Two boards without a common clock know it only to
within their start-up uncertainty, many reference periods.

The ambiguity is resolved by correlation. Bob takes a public *sample* of Z-basis detections
(slot, bit) right after the alignment, before sifting restarts for the key: those detections
never become key. Alice compares her states with the sample at ``nominal + k · divider`` for
k = 0, +1, −1, +2, … up to ``search``: at the right offset the bits agree up to the Z error
rate (a few %; 25 % under a full intercept-resend attack), at any other they agree by chance
(50 %). The first candidate with at least :data:`SYNC_MIN_COMPARED` comparable detections and
an error rate at most :data:`SYNC_MAX_ERROR` is taken. With 1 000 comparisons a wrong
candidate passes with probability below 10^-20 (9.5 standard deviations), so taking the first
does not need a scan of all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .protocol import ProtocolError

__all__ = ["SYNC_SAMPLE_DETECTIONS", "SYNC_MIN_COMPARED", "SYNC_MAX_ERROR", "STATE_BASIS",
           "STATE_BIT", "SyncSample", "SyncResult",
           "find_slot_offset"]

#: Bob's Z-basis detections in the sample (about 80 % of them meet a Z-basis state of Alice).
SYNC_SAMPLE_DETECTIONS = 2_000
#: Comparisons (Bob Z, Alice Z) needed to accept an offset.
SYNC_MIN_COMPARED = 1_000
#: The largest error rate accepted at the right offset (chance gives 50 %).
SYNC_MAX_ERROR = 0.35

#: Alice's state codes (as the twin's ``State``): |e>, |l>, |+>, |->. Basis (1 = X) and bit.
STATE_BASIS = np.array([0, 0, 1, 1], dtype=np.uint8)
STATE_BIT = np.array([0, 1, 0, 1], dtype=np.uint8)


@dataclass(frozen=True)
class SyncSample:
    """Bob's public sample: slots (his numbering) and bits of Z-basis detections."""

    slots: np.ndarray
    bits: np.ndarray

    def __post_init__(self) -> None:
        if np.shape(self.slots) != np.shape(self.bits) or np.ndim(self.slots) != 1:
            raise ValueError("the sample needs one bit per slot")

    def __len__(self) -> int:
        return int(np.size(self.slots))


@dataclass(frozen=True)
class SyncResult:
    """The outcome of :func:`find_slot_offset`.

    ``slot_offset`` is the offset found (Alice's slot = Bob's + offset) or, when ``found`` is
    false, the nominal one; ``compared`` and ``errors`` are the comparisons and disagreements
    at that offset; ``tried`` counts candidates checked, ``unknown`` those Alice had no states
    for (outside her history, or slots sent empty).
    """

    found: bool
    slot_offset: int
    compared: int
    errors: int
    tried: int
    unknown: int
    reason: str = ""

    @property
    def error_rate(self) -> float:
        return self.errors / self.compared if self.compared else float("nan")


def _candidates(nominal: int, divider: int, search: int, lowest_slot: int):
    for step in range(search + 1):
        for k in ((0,) if step == 0 else (step, -step)):
            offset = nominal + k * divider
            if lowest_slot + offset >= 0:
                yield offset


def find_slot_offset(states: Callable[[np.ndarray], np.ndarray], slots: np.ndarray,
                     bits: np.ndarray, *, nominal: int, divider: int, search: int,
                     min_compared: int = SYNC_MIN_COMPARED,
                     max_error: float = SYNC_MAX_ERROR) -> SyncResult:
    """Find the offset at which Alice's ``states(slots)`` match Bob's sample.

    ``slots`` and ``bits`` are Bob's Z-basis detections (his slot numbers); candidates are
    ``nominal + k · divider`` for |k| ≤ ``search``, nearest first. ``states`` raises
    :class:`~tbqkd.host.protocol.ProtocolError` for slots it has no state for; such a candidate
    is skipped and counted.

    Raises
    ------
    ValueError
        If the sample is malformed or the search settings are out of range.
    """
    slots = np.asarray(slots, dtype=np.int64)
    bits = np.asarray(bits)
    if slots.shape != bits.shape or slots.ndim != 1:
        raise ValueError("the sample needs one bit per slot")
    if bits.size and (bits.min() < 0 or bits.max() > 1):
        raise ValueError("sample bits must be 0 or 1")
    if divider < 1 or search < 0:
        raise ValueError(f"divider {divider} must be positive and search {search} not negative")
    if slots.size < min_compared:
        return SyncResult(False, nominal, 0, 0, 0, 0,
                          f"a sample of {slots.size} detections is below the {min_compared} "
                          "comparisons needed")
    tried = unknown = 0
    best: tuple[float, int, int, int] | None = None
    for offset in _candidates(nominal, divider, search, int(slots.min())):
        tried += 1
        try:
            alice = np.asarray(states(slots + offset), dtype=np.int64)
        except ProtocolError:
            unknown += 1
            continue
        z = STATE_BASIS[alice] == 0
        compared = int(z.sum())
        errors = int((STATE_BIT[alice[z]] != bits[z]).sum())
        rate = errors / compared if compared else 1.0
        if compared >= min_compared and rate <= max_error:
            return SyncResult(True, offset, compared, errors, tried, unknown)
        if best is None or rate < best[0]:
            best = (rate, offset, compared, errors)
    if best is None:
        return SyncResult(False, nominal, 0, 0, tried, unknown,
                          f"no states for any of the {tried} candidate offsets (outside "
                          "Alice's history?)")
    rate, offset, compared, errors = best
    return SyncResult(False, offset, compared, errors, tried, unknown,
                      f"no offset within ±{search} reference periods of the nominal one "
                      f"matches: the best has {rate:.1%} errors over {compared} comparisons "
                      f"(at most {max_error:.0%} over {min_compared} needed; {unknown} "
                      "candidates without states)")
