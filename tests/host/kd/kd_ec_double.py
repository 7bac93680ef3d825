"""TEST DOUBLE: a minimal one-pass parity-bisection reconciler with the ``make_reconciler`` shape.

Not for production. It corrects at most one error per block (one BINARY pass, no Cascade
back-tracking), so some keys keep errors: exactly what the verification tests need. Used by the
key-distillation tests that must not depend on the real error correction in ``host/ec``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tbqkd.host.protocol import Message, ProtocolError, ProtocolSide, pack_bits, unpack_bits


@dataclass(frozen=True)
class DoubleResult:
    key: np.ndarray
    success: bool
    leaked_bits: int
    messages: int
    round_trips: int
    errors_corrected: int | None


def _parities(key: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0], np.cumsum(key, dtype=np.int64)])
    return ((cumulative[starts + lengths] - cumulative[starts]) & 1).astype(np.uint8)


class _Side(ProtocolSide):
    def __init__(self, key: np.ndarray, qber: float) -> None:
        self.key = np.asarray(key, dtype=np.uint8).copy()
        self.block = max(2, min(self.key.size, int(0.73 / qber)))
        self.leaked = 0
        self.count = 0
        self.finished = False
        self.flipped = 0

    @property
    def done(self) -> bool:
        return self.finished

    def result(self) -> DoubleResult:
        return DoubleResult(self.key, True, self.leaked, self.count, -(-self.count // 2),
                            self.flipped)


class DoubleAlice(_Side):
    def start(self) -> list[Message]:
        starts = np.arange(0, self.key.size, self.block)
        lengths = np.minimum(self.block, self.key.size - starts)
        parities = _parities(self.key, starts, lengths)
        self.leaked += parities.size
        self.count += 1
        return [{"type": "dbl_parities", "parities": pack_bits(parities)}]

    def receive(self, message: Message) -> list[Message]:
        self.count += 1
        if message.get("type") == "dbl_done":
            self.finished = True
            return []
        if message.get("type") != "dbl_ask":
            raise ProtocolError(f"test double: unexpected {message.get('type')!r}")
        starts = np.asarray(message["starts"], dtype=np.int64)
        lengths = np.asarray(message["lengths"], dtype=np.int64)
        parities = _parities(self.key, starts, lengths)
        self.leaked += parities.size
        self.count += 1
        return [{"type": "dbl_answer", "parities": pack_bits(parities)}]


class DoubleBob(_Side):
    def start(self) -> list[Message]:
        return []

    def _ask(self) -> list[Message]:
        live = self.lengths > 1
        if not live.any():
            self.key[self.starts] ^= 1
            self.flipped = int(self.starts.size)
            self.finished = True
            self.count += 1
            return [{"type": "dbl_done"}]
        self.count += 1
        return [{"type": "dbl_ask", "starts": self.starts.tolist(),
                 "lengths": (self.lengths // 2).tolist()}]

    def receive(self, message: Message) -> list[Message]:
        self.count += 1
        kind = message.get("type")
        if kind == "dbl_parities":
            starts = np.arange(0, self.key.size, self.block)
            lengths = np.minimum(self.block, self.key.size - starts)
            theirs = unpack_bits(message["parities"], starts.size)
            wrong = theirs != _parities(self.key, starts, lengths)
            self.starts, self.lengths = starts[wrong], lengths[wrong]
            return self._ask()
        if kind == "dbl_answer":
            half = self.lengths // 2
            theirs = unpack_bits(message["parities"], half.size)
            in_first = theirs != _parities(self.key, self.starts, half)
            self.starts = np.where(in_first, self.starts, self.starts + half)
            self.lengths = np.where(in_first, half, self.lengths - half)
            return self._ask()
        raise ProtocolError(f"test double: unexpected {kind!r}")


def make_double_reconciler(method: str, role: str, key: np.ndarray, qber_estimate: float, *,
                           seed: int, **options) -> ProtocolSide:
    """Same signature as ``tbqkd.host.ec.make_reconciler``; ``method`` and ``seed`` unused."""
    return DoubleAlice(key, qber_estimate) if role == "alice" else DoubleBob(key, qber_estimate)
