"""Sans-I/O protocol sides: the shape of every two-party step of the classical post-processing.

Alice's and Bob's parts of a step (error correction, verification, ...) are separate objects that
share nothing but messages. A side consumes messages and returns the messages it wants sent; it
never does I/O itself, so the same code runs over an in-memory channel (:func:`run_in_memory`) or
over TCP with authentication (the transport wraps each message).

A :data:`Message` is a dict with a ``"type"`` string and msgpack-native values (``int``,
``float``, ``str``, ``bytes``, ``bool``, lists and dicts of those). Bit arrays travel packed as
``bytes`` (:func:`pack_bits` / :func:`unpack_bits`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Any

import numpy as np

__all__ = ["Message", "ProtocolError", "ProtocolSide", "run_in_memory", "pack_bits",
           "unpack_bits"]

Message = dict[str, Any]


class ProtocolError(Exception):
    """A message was malformed, unexpected, or inconsistent with the protocol state."""


class ProtocolSide(ABC):
    """One party's half of a two-party protocol step."""

    @abstractmethod
    def start(self) -> list[Message]:
        """Begin the step; return the messages to send first (possibly none)."""

    @abstractmethod
    def receive(self, message: Message) -> list[Message]:
        """Consume one message from the peer; return the messages to send in reply.

        Raises
        ------
        ProtocolError
            If the message is malformed or not expected in the current state.
        """

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once this side has finished and :meth:`result` is available."""

    @abstractmethod
    def result(self) -> Any:
        """The outcome of the step for this side (only once :attr:`done`)."""


def run_in_memory(alice: ProtocolSide, bob: ProtocolSide, *,
                  max_messages: int = 1_000_000) -> tuple[Any, Any, int]:
    """Run both sides to completion over an in-memory channel.

    Returns ``(alice_result, bob_result, messages)`` where ``messages`` counts every message
    delivered in either direction.

    Raises
    ------
    ProtocolError
        If the sides deadlock (nothing in flight, not both done) or exceed ``max_messages``.
    """
    to_bob: deque[Message] = deque(alice.start())
    to_alice: deque[Message] = deque(bob.start())
    delivered = 0
    while to_bob or to_alice:
        if to_bob:
            to_alice.extend(bob.receive(to_bob.popleft()))
            delivered += 1
        if to_alice:
            to_bob.extend(alice.receive(to_alice.popleft()))
            delivered += 1
        if delivered > max_messages:
            raise ProtocolError(f"more than {max_messages} messages: protocol does not terminate")
    if not (alice.done and bob.done):
        raise ProtocolError("protocol stalled: no message in flight but a side is not done")
    return alice.result(), bob.result(), delivered


def pack_bits(bits: np.ndarray) -> bytes:
    """Pack a 0/1 array (any integer dtype) into bytes, MSB first within each byte."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``count`` bits as a ``uint8`` array.

    Raises
    ------
    ProtocolError
        If ``data`` holds fewer than ``count`` bits.
    """
    if len(data) * 8 < count or count < 0:
        raise ProtocolError(f"packed field holds {len(data) * 8} bits, {count} expected")
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count)
