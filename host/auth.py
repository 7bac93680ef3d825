"""Wegman-Carter authentication of every classical message, with key accounting.

Each endpoint holds the same secret material: two polynomial-hash keys ``k1, k2`` over
GF(2^61 - 1) (:mod:`tbqkd.host.polyhash`) and two one-time-pad pools, one per direction. A
frame's tag is::

    tag = (h_k1(F) + r1 mod p, h_k2(F) + r2 mod p)      (two 64-bit little-endian words)

where ``F`` is the frame header and body (direction, counter and length included) and
``(r1, r2)`` are 16 fresh pad bytes taken in order from the sender's direction pool. The hash is
epsilon-almost-Delta-universal with ``eps = ((L + 1) / p)^2`` for an ``L``-chunk frame, so the
forgery probability of one frame is at most that (Wegman and Carter 1981; key recycling of the
hash keys under one-time-padded tags: Portmann 2014). Each pad word is 64 uniform bits reduced
modulo p, 2^-60 away from uniform; the hash keys take 61 bits each, likewise.

Replay and reordering: each direction has a message counter, inside the authenticated bytes. The
receiver accepts only counters above the last accepted one, so a replayed frame, or an older
frame arriving after a newer one, fails. A counter may jump ahead by at most
:data:`MAX_SKIPPED_FRAMES` (frames lost or rejected on the way): the pads of the skipped frames
are discarded and counted as consumed, and the protocol layer notices the missing message. A
rejected frame consumes no pad; the caller aborts the block (see :mod:`tbqkd.host.distill`).

Deferred frames: high-rate messages of the sifting exchange (:data:`messages.DEFERRED_TYPES`)
may be sealed with ``deferred=True``. Such a frame carries an all-zero tag and consumes no pad;
both ends record the polynomial hash of its authenticated bytes, in order. The sender's next
ordinary frame then authenticates, together with its own bytes, the hashes of every deferred
frame it sent since its previous ordinary frame (a two-level polynomial hash: the deferred
frames' hashes are words of the outer message; forgery probability at most the sum of the inner
and outer collision bounds). So nothing is accepted for good unauthenticated: the link derives
key from sifting only after the peer's next ordinary frame has verified its transcript, and one
tag covers a whole block's sifting instead of one per message. A frame with a zero tag whose type
is not deferrable is rejected; more than :data:`MAX_DEFERRED_FRAMES` pending deferred frames is
an error.

Key accounting: the pre-shared key bootstraps the hash keys and both pools; distilled key refills
the pools (:meth:`AuthenticatedChannel.refill`). :attr:`AuthenticatedChannel.consumed_bits`
counts the secret bits used so far (hash keys plus 128 pad bits per frame, either direction);
the distillation subtracts it from the net key it reports.
"""

from __future__ import annotations

import logging

import numpy as np

from . import messages, polyhash
from .protocol import Message, ProtocolError

__all__ = ["AuthenticationError", "KeyExhaustedError", "AuthenticatedChannel", "MAX_SKIPPED_FRAMES",
           "MAX_DEFERRED_FRAMES",
           "MIN_PRE_SHARED_KEY_BYTES", "PAD_BYTES_PER_FRAME"]

_logger = logging.getLogger(__name__)

ROLES = {"alice": 0, "bob": 1}
HASH_KEY_BYTES = 16
PAD_BYTES_PER_FRAME = 16
MIN_PRE_SHARED_KEY_BYTES = HASH_KEY_BYTES + 2 * PAD_BYTES_PER_FRAME
MAX_SKIPPED_FRAMES = 64
MAX_DEFERRED_FRAMES = 1 << 20
_ZERO_TAG = bytes(PAD_BYTES_PER_FRAME)


def _log(level: int, message: str, *args: object) -> None:
    _logger.log(level, message, *args)


class AuthenticationError(ProtocolError):
    """A frame failed authentication: wrong tag, unexpected counter or direction."""


class KeyExhaustedError(AuthenticationError):
    """The one-time-pad pool of a direction is empty: refill it from distilled key."""


class _PadPool:
    """FIFO of secret bytes; reads come from the front, refills go to the back."""

    def __init__(self, data: bytes) -> None:
        self._data = bytearray(data)
        self._start = 0

    @property
    def available(self) -> int:
        return len(self._data) - self._start

    def peek(self, count: int, offset: int = 0) -> bytes:
        if self.available < offset + count:
            raise KeyExhaustedError(f"authentication key exhausted: {self.available} bytes "
                                    f"left, {offset + count} needed")
        start = self._start + offset
        return bytes(self._data[start:start + count])

    def consume(self, count: int) -> None:
        self._start += count
        if self._start > 4096 and self._start > len(self._data) // 2:
            del self._data[:self._start]
            self._start = 0

    def extend(self, data: bytes) -> None:
        self._data.extend(data)


def _field_words(data: bytes) -> list[int]:
    # 64 bits -> GF(p): reduce modulo p (statistical distance from uniform < 2^-60).
    return [int.from_bytes(data[i:i + 8], "little") % polyhash.PRIME
            for i in range(0, len(data), 8)]


class AuthenticatedChannel:
    """One endpoint of the authenticated classical channel (sans-I/O: frames in, frames out).

    Parameters
    ----------
    role
        ``"alice"`` or ``"bob"``; Alice sends in direction 0, Bob in direction 1.
    pre_shared_key
        Secret bytes shared in advance, identical on both sides: the first 16 bytes become the
        hash keys, the rest is split in half between the two direction pools.

    Raises
    ------
    ValueError
        If the role is unknown or the pre-shared key is shorter than
        :data:`MIN_PRE_SHARED_KEY_BYTES`.
    """

    def __init__(self, role: str, pre_shared_key: bytes) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be 'alice' or 'bob', got {role!r}")
        if len(pre_shared_key) < MIN_PRE_SHARED_KEY_BYTES:
            raise ValueError(f"pre-shared key needs at least {MIN_PRE_SHARED_KEY_BYTES} bytes, "
                             f"got {len(pre_shared_key)}")
        self._direction = ROLES[role]
        self._hash_keys = [int.from_bytes(pre_shared_key[i:i + 8], "little")
                           & ((1 << 61) - 1) for i in (0, 8)]
        self._hash_keys = [key % polyhash.PRIME for key in self._hash_keys]
        pads = pre_shared_key[HASH_KEY_BYTES:]
        half = len(pads) // 2
        self._pools = [_PadPool(pads[:half]), _PadPool(pads[half:2 * half])]
        self._counters = [0, 0]
        self._deferred: list[list[int]] = [[], []]   # per direction: hash words of frames
        self._consumed_bits = 8 * HASH_KEY_BYTES
        self._failures = 0

    def __repr__(self) -> str:
        return (f"AuthenticatedChannel(direction={self._direction}, sent={self.frames_sent}, "
                f"received={self.frames_received}, consumed_bits={self._consumed_bits})")

    @property
    def consumed_bits(self) -> int:
        """Secret key bits used so far (hash keys and every pad, both directions)."""
        return self._consumed_bits

    @property
    def frames_sent(self) -> int:
        """Frames sealed by this endpoint."""
        return self._counters[self._direction]

    @property
    def frames_received(self) -> int:
        """Frames accepted from the peer."""
        return self._counters[1 - self._direction]

    @property
    def failures(self) -> int:
        """Frames rejected by :meth:`open` (bad tag, counter, direction or format)."""
        return self._failures

    def pad_bits_available(self, direction: int) -> int:
        """Pad bits left in a direction pool (0: Alice -> Bob, 1: Bob -> Alice)."""
        return 8 * self._pools[direction].available

    def _tag(self, signed: bytes, pad: bytes) -> bytes:
        hashes = polyhash.polyhash(signed, self._hash_keys)
        return b"".join(((value + r) % polyhash.PRIME).to_bytes(8, "little")
                        for value, r in zip(hashes, _field_words(pad), strict=True))

    @property
    def deferred_pending(self) -> tuple[int, int]:
        """Deferred frames not yet covered by an ordinary frame, per direction."""
        return len(self._deferred[0]) // 2, len(self._deferred[1]) // 2

    def _covered(self, direction: int, signed: bytes) -> bytes:
        """What an ordinary frame's tag covers: the sender's pending deferred hashes, then it."""
        words = self._deferred[direction]
        if not words:
            return signed
        prefix = np.asarray(words, dtype="<u8").tobytes()
        return len(words).to_bytes(8, "little") + prefix + signed

    def _defer(self, direction: int, signed: bytes) -> None:
        if len(self._deferred[direction]) >= 2 * MAX_DEFERRED_FRAMES:
            raise AuthenticationError(f"more than {MAX_DEFERRED_FRAMES} deferred frames "
                                      "without an ordinary frame")
        self._deferred[direction].extend(polyhash.polyhash(signed, self._hash_keys))

    def seal(self, message: Message, *, deferred: bool = False) -> bytes:
        """Serialise, number and authenticate a message; return the frame.

        ``deferred``: a message of a deferrable type is sent with a zero tag and authenticated
        by this side's next ordinary frame (module docstring).

        Raises
        ------
        MessageError
            If the message does not match its declared type, is too large, or is deferred but
            not of a deferrable type.
        KeyExhaustedError
            If this direction's pad pool is empty.
        """
        body = messages.encode_body(message)
        frame = messages.Frame(self._direction, self._counters[self._direction], body, b"")
        if deferred:
            if message["type"] not in messages.DEFERRED_TYPES:
                raise messages.MessageError(f"{message['type']} messages cannot be deferred")
            self._defer(self._direction, frame.signed_bytes)
            self._counters[self._direction] += 1
            return frame.signed_bytes + _ZERO_TAG
        pool = self._pools[self._direction]
        pad = pool.peek(PAD_BYTES_PER_FRAME)
        tag = self._tag(self._covered(self._direction, frame.signed_bytes), pad)
        self._deferred[self._direction] = []
        pool.consume(PAD_BYTES_PER_FRAME)
        self._counters[self._direction] += 1
        self._consumed_bits += 8 * PAD_BYTES_PER_FRAME
        return frame.signed_bytes + tag

    def open(self, data: bytes) -> Message:
        """Check a frame from the peer and return its message.

        Raises
        ------
        MessageError
            If the frame is oversized, truncated or malformed, or its body is not a valid
            message (checked only after the tag).
        AuthenticationError
            If the direction or counter is not the expected one (replay, reordering, reflection)
            or the tag is wrong (tampering).
        KeyExhaustedError
            If the peer's pad pool is empty.
        """
        try:
            frame = messages.unpack_frame(data)
            peer = 1 - self._direction
            if frame.direction != peer:
                raise AuthenticationError("frame has this side's own direction (reflected)")
            expected = self._counters[peer]
            if frame.counter < expected:
                raise AuthenticationError(f"frame counter {frame.counter}, expected {expected}:"
                                          f" replayed or reordered")
            skipped = frame.counter - expected
            if skipped > MAX_SKIPPED_FRAMES:
                raise AuthenticationError(f"frame counter {frame.counter} jumps {skipped} "
                                          f"frames ahead of {expected}")
            if frame.tag == _ZERO_TAG:
                return self._open_deferred(frame, peer)
            pool = self._pools[peer]
            pad = pool.peek(PAD_BYTES_PER_FRAME, skipped * PAD_BYTES_PER_FRAME)
            if self._tag(self._covered(peer, frame.signed_bytes), pad) != frame.tag:
                pending = self.deferred_pending[peer]
                self._deferred[peer] = []    # the sender covered them with this frame: gone
                raise AuthenticationError(f"authentication tag mismatch on frame "
                                          f"{frame.counter}" + (f" (covering {pending} deferred "
                                                                "frames)" if pending else ""))
            self._deferred[peer] = []
            used = (skipped + 1) * PAD_BYTES_PER_FRAME
            pool.consume(used)
            self._counters[peer] = frame.counter + 1
            self._consumed_bits += 8 * used
            return messages.decode_body(frame.body)
        except ProtocolError as error:
            self._failures += 1
            _log(logging.WARNING, "rejected frame: %s", error)
            raise

    def _open_deferred(self, frame: messages.Frame, peer: int) -> Message:
        if frame.counter != self._counters[peer]:
            raise AuthenticationError(f"deferred frame counter {frame.counter}, expected "
                                      f"{self._counters[peer]}")
        message = messages.decode_body(frame.body)
        if message["type"] not in messages.DEFERRED_TYPES:
            raise AuthenticationError(f"{message['type']} frame without a tag")
        self._defer(peer, frame.signed_bytes)
        self._counters[peer] = frame.counter + 1
        return message

    def refill(self, key: bytes) -> None:
        """Append distilled key to the pad pools, half to each direction (same on both sides)."""
        half = len(key) // 2
        self._pools[0].extend(key[:half])
        self._pools[1].extend(key[half:2 * half])

    def refill_bits(self, bits: np.ndarray) -> None:
        """:meth:`refill` from a 0/1 array (whole bytes only; a partial last byte is unused)."""
        bits = np.asarray(bits, dtype=np.uint8)
        usable = bits.size - bits.size % 8
        self.refill(np.packbits(bits[:usable]).tobytes())
