"""Bit-exact per-record reference model of the line-rate sifter (no Amaranth).

:class:`SifterModel` takes the sifter's inputs as an ordered sequence of operations — detections,
announcements taken from the pending store, answers, restarts — and returns what the gateware
(:class:`tbqkd.hdl.sifter.Sifter`) must output: announcement records, sifted Z records, sifted X
events and every counter. It is not cycle-accurate: the gateware performs the same operations,
one record per clock, in the order its handshakes happen; a test either keeps the order
unambiguous (phases separated by idle time) or feeds the model the order it observed.

The join rule (the same words as in the gateware's docstring): an answer is compared with the
oldest pending record that has been announced. With ``d = (answer.seq − oldest.seq) mod 2^32``:

* ``d ≥ 2^31`` (the answer is older than every pending record: a duplicate, an answer to an
  expired or already discarded record): ``err_extra``, the answer is discarded;
* ``d`` at or beyond the first record not yet announced (including "nothing is pending"): the
  answer cannot be for anything Alice has seen: ``err_early``, the answer is discarded;
* ``0 < d``: the ``d`` records before it got no answer: each is discarded and counted in
  ``err_missing``, then the answer is joined with the record it names;
* ``d = 0``: same slot → a match (same basis: Z → sifted key record, X → sifted X event;
  different basis → ``mismatch``); different slot → ``err_slot``, record and answer discarded.

Every protocol error (extra, early, missing, slot) sets the sticky ``protocol_error``. No answer is
ever joined with a record other than the one whose sequence number it echoes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from .records import SEQ_BITS, SLOT_BITS

__all__ = ["COUNTERS", "Announcement", "SiftedKey", "XEvent", "SifterModel"]

#: The sifter's 64-bit counters, in the order of the gateware's ports.
COUNTERS = ("detections", "announced", "answers", "sifted_z", "sifted_x", "mismatch",
            "dropped_full", "expired", "err_extra", "err_missing", "err_slot", "err_early")

_SEQ_MOD = 1 << SEQ_BITS
_SEQ_HALF = 1 << (SEQ_BITS - 1)
_SLOT_MAX = 1 << SLOT_BITS


@dataclass(frozen=True)
class Announcement:
    """Bob → Alice: a detection's sequence number, slot and basis (``ANNOUNCE``)."""

    seq: int
    slot: int
    basis: int


@dataclass(frozen=True)
class SiftedKey:
    """A sifted Z-basis key record (``SIFTED``): slot and Bob's bit."""

    slot: int
    bit: int


@dataclass(frozen=True)
class XEvent:
    """A sifted X-basis event for the error-signal unit: Bob's bit and Alice's ``x_bit``."""

    bob_bit: int
    alice_bit: int


@dataclass(frozen=True)
class _Pending:
    seq: int
    slot: int
    basis: int
    bit: int


def _check(name: str, value: int, bits: int) -> int:
    value = int(value)
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name}={value} does not fit in {bits} bits")
    return value


class SifterModel:
    """The sifter as a sequence of per-record operations (see the module docstring).

    Parameters
    ----------
    pending_depth:
        Capacity of the pending store (records detected and not yet answered or discarded).
    max_pending:
        Lag limit: a detection that finds ``max_pending`` records pending first expires the
        oldest one. ``0`` disables the limit (the store then fills and drops new detections).

    Raises
    ------
    ValueError
        If ``pending_depth < 1`` or ``max_pending < 0``.
    """

    def __init__(self, pending_depth: int = 16384, max_pending: int = 0) -> None:
        if pending_depth < 1 or max_pending < 0:
            raise ValueError(f"bad sizes: pending_depth={pending_depth}, "
                             f"max_pending={max_pending}")
        self.pending_depth = pending_depth
        self.max_pending   = max_pending
        self.counters      = dict.fromkeys(COUNTERS, 0)
        self.protocol_error = False
        self.announcements: list[Announcement] = []
        self.sifted: list[SiftedKey] = []
        self.x_events: list[XEvent] = []
        self._store: deque[_Pending] = deque()   # oldest first
        self._announced = 0                # how many of the oldest pending ones are announced
        self._next_seq = 0

    # --- state ---------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Records in the pending store (announced or not)."""
        return len(self._store)

    @property
    def unannounced(self) -> int:
        """Pending records not yet taken by the announcer."""
        return len(self._store) - self._announced

    @property
    def next_seq(self) -> int:
        """The sequence number the next accepted detection gets."""
        return self._next_seq

    # --- operations ---------------------------------------------------------------------------
    def detect(self, slot: int, basis: int, bit: int) -> int | None:
        """A detection arrives; return its sequence number, or ``None`` if it was dropped.

        Raises
        ------
        ValueError
            If a field does not fit its width.
        """
        record_fields = (_check("slot", slot, SLOT_BITS), _check("basis", basis, 1),
                         _check("bit", bit, 1))
        self.counters["detections"] += 1
        if self.max_pending and self.pending >= self.max_pending:
            self._store.popleft()              # a silent Alice must not stop the link
            self._announced = max(0, self._announced - 1)
            self.counters["expired"] += 1
        elif self.pending >= self.pending_depth:
            self.counters["dropped_full"] += 1
            return None
        seq = self._next_seq
        self._store.append(_Pending(seq, *record_fields))
        self._next_seq = (seq + 1) % _SEQ_MOD
        return seq

    def detect_many(self, records: Iterable[tuple[int, int, int]]) -> list[int | None]:
        """:meth:`detect` for each ``(slot, basis, bit)``."""
        return [self.detect(*r) for r in records]

    def announce(self, count: int | None = None) -> list[Announcement]:
        """The announcer takes ``count`` (default: all) unannounced records, oldest first.

        Raises
        ------
        ValueError
            If fewer than ``count`` records are waiting.
        """
        count = self.unannounced if count is None else count
        if not 0 <= count <= self.unannounced:
            raise ValueError(f"cannot announce {count}: {self.unannounced} waiting")
        taken = list(islice(self._store, self._announced, self._announced + count))
        self._announced += count
        out = [Announcement(r.seq, r.slot, r.basis) for r in taken]
        self.announcements.extend(out)
        self.counters["announced"] += count
        return out

    def answer(self, seq: int, slot: int, basis: int, x_bit: int) -> str:
        """Join one answer; return the outcome (``"z"``, ``"x"``, ``"mismatch"``, ``"slot"``,
        ``"extra"`` or ``"early"``; missing records skipped before it are only counted).

        Raises
        ------
        ValueError
            If a field does not fit its width.
        """
        seq = _check("seq", seq, SEQ_BITS)
        slot = _check("slot", slot, SLOT_BITS)
        basis, x_bit = _check("basis", basis, 1), _check("x_bit", x_bit, 1)
        c = self.counters
        c["answers"] += 1
        head = self._store[0].seq if self._store else self._next_seq
        d = (seq - head) % _SEQ_MOD
        if d >= _SEQ_HALF:
            return self._error("err_extra", "extra")
        if d >= self._announced:
            return self._error("err_early", "early")
        for _ in range(d):
            self._pop()
            self._error("err_missing", "missing")
        record = self._pop()
        if record.slot != slot:
            return self._error("err_slot", "slot")
        if record.basis != basis:
            c["mismatch"] += 1
            return "mismatch"
        if basis == 0:
            self.sifted.append(SiftedKey(slot, record.bit))
            c["sifted_z"] += 1
            return "z"
        self.x_events.append(XEvent(record.bit, x_bit))
        c["sifted_x"] += 1
        return "x"

    def restart(self) -> None:
        """Empty the store and restart sequence numbers at 0 (counters are kept)."""
        self._store.clear()
        self._announced = 0
        self._next_seq = 0

    def clear_counters(self) -> None:
        self.counters = dict.fromkeys(COUNTERS, 0)

    def clear_error(self) -> None:
        self.protocol_error = False

    # --- helpers ------------------------------------------------------------------------------
    def _pop(self) -> _Pending:
        self._announced -= 1
        return self._store.popleft()

    def _error(self, counter: str, outcome: str) -> str:
        self.counters[counter] += 1
        self.protocol_error = True
        return outcome
