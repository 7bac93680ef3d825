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
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["Message", "ProtocolError", "ProtocolSide", "deliver_until_quiet", "run_in_memory",
           "pack_bits", "unpack_bits"]

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


def deliver_until_quiet(to_bob: Iterable[Any], to_alice: Iterable[Any],
                        alice_receive: Callable[[Any], list[Any]],
                        bob_receive: Callable[[Any], list[Any]], *, limit: int,
                        wire: Callable[[int, Any], list[Any]] | None = None,
                        on_quiet: Callable[[], list[Any]] | None = None) -> int:
    """Carry items between two parties in one process until nothing is in flight.

    ``to_bob`` / ``to_alice`` are what each side has to send first; every ``receive`` returns
    the replies, which join the other direction (Bob's queue is served first, then Alice's,
    alternately). ``wire(direction, item)`` may replace, drop or duplicate items (tests;
    direction 0 is Alice to Bob). ``on_quiet()``, called when everything went quiet, may return
    more items for Alice (e.g. an abort); the exchange ends when it returns none. Returns the
    number of items delivered.

    Raises
    ------
    ProtocolError
        If more than ``limit`` items are delivered.
    """
    def carry(direction: int, items: Iterable[Any]) -> list[Any]:
        items = list(items)
        return items if wire is None else [out for item in items for out in wire(direction, item)]

    queue_bob, queue_alice = deque(carry(0, to_bob)), deque(carry(1, to_alice))
    delivered = 0
    while True:
        while queue_bob or queue_alice:
            if queue_bob:
                queue_alice.extend(carry(1, bob_receive(queue_bob.popleft())))
                delivered += 1
            if queue_alice:
                queue_bob.extend(carry(0, alice_receive(queue_alice.popleft())))
                delivered += 1
            if delivered > limit:
                raise ProtocolError(f"more than {limit} items delivered: the exchange does not "
                                    "terminate")
        more = on_quiet() if on_quiet is not None else []
        if not more:
            return delivered
        queue_alice.extend(carry(1, more))


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
    delivered = deliver_until_quiet(alice.start(), bob.start(), alice.receive, bob.receive,
                                    limit=max_messages)
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
