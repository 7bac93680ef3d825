"""Helpers shared by the reconciliation sides: message checks and confirmation parities."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ..protocol import Message, ProtocolError, pack_bits, unpack_bits

__all__ = ["expect_message", "field_int", "field_bits", "field_packed", "confirm_parities",
           "pack_words", "mix64", "popcount64", "MAX_KEY_BITS"]

#: Largest key (bits) a side accepts or a message may announce; bounds memory per request.
MAX_KEY_BITS = 1 << 26


def expect_message(message: Any, kind: str, fields: dict[str, type]) -> Message:
    """Check that ``message`` is a dict of type ``kind`` holding exactly ``fields``.

    Raises
    ------
    ProtocolError
        If the message is not a dict, has another type, misses a field, holds an unknown field,
        or a field has the wrong Python type.
    """
    # Fast path for the common case (a plain dict with exactly the right fields and types); any
    # deviation falls through to the checks below, which decide and name the problem.
    if type(message) is dict and len(message) == len(fields) + 1 and message.get("type") == kind:
        for name, field_type in fields.items():
            if type(message.get(name)) is not field_type:
                break
        else:
            return message
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a dict message, got {type(message).__name__}")
    got = message.get("type")
    if got != kind:
        raise ProtocolError(f"expected a {kind!r} message, got type {got!r}")
    extra = set(message) - set(fields) - {"type"}
    if extra:
        raise ProtocolError(f"{kind!r} message has unknown fields {sorted(extra)}")
    for name, field_type in fields.items():
        if name not in message:
            raise ProtocolError(f"{kind!r} message lacks field {name!r}")
        value = message[name]
        # bool is an int subclass: never accept it where an int is expected, nor the reverse.
        if field_type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ProtocolError(f"{kind!r} field {name!r} must be an int, got {value!r:.40}")
        if field_type is not int and not isinstance(value, field_type):
            raise ProtocolError(f"{kind!r} field {name!r} must be {field_type.__name__}, "
                                f"got {type(value).__name__}")
    return message


def field_int(message: Message, name: str, low: int, high: int) -> int:
    """Return the int field ``name``, checked to lie in ``[low, high]``.

    Raises
    ------
    ProtocolError
        If the value is out of range.
    """
    value = message[name]
    if not low <= value <= high:
        raise ProtocolError(f"{message['type']!r} field {name!r} = {value} outside "
                            f"[{low}, {high}]")
    return value


def field_packed(message: Message, name: str, count: int) -> np.ndarray:
    """The packed-bits field ``name`` as a ``uint8`` array (not unpacked), which must hold
    exactly ``count`` bits.

    Raises
    ------
    ProtocolError
        If the field's byte length does not match ``count`` (too short or oversized).
    """
    data = message[name]
    if len(data) != (count + 7) // 8:
        raise ProtocolError(f"{message['type']!r} field {name!r} holds {len(data)} bytes, "
                            f"{(count + 7) // 8} expected for {count} bits")
    return np.frombuffer(data, dtype=np.uint8)


def field_bits(message: Message, name: str, count: int) -> np.ndarray:
    """Unpack the packed-bits field ``name``, which must hold exactly ``count`` bits.

    Raises
    ------
    ProtocolError
        If the field's byte length does not match ``count`` (too short or oversized).
    """
    return unpack_bits(field_packed(message, name, count).tobytes(), count)


@numba.njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finaliser: ``mix64(base + i * golden)`` for i = 0, 1, ... is a counter-based
    stream of well-mixed 64-bit words (Steele, Lea, Flood, OOPSLA 2014)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def popcount64(v):
    """Number of set bits of the ``uint64`` ``v``."""
    v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
    v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
    v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((v * np.uint64(0x0101010101010101)) >> np.uint64(56))


def pack_words(key: np.ndarray) -> np.ndarray:
    """Pack a 0/1 array into ``uint64`` words, bit ``i`` of word ``w`` being ``key[64 w + i]``
    (bits past the end are zero)."""
    words = (key.size + 63) // 64
    padded = np.zeros(8 * words, dtype=np.uint8)
    packed = np.packbits(key, bitorder="little")
    padded[:packed.size] = packed
    return padded.view("<u8").astype(np.uint64)


@numba.njit(cache=True)
def _subset_parities(words, base, count):
    golden = np.uint64(0x9E3779B97F4A7C15)
    out = np.empty(count, dtype=np.uint8)
    for s in range(count):
        start = mix64(base + np.uint64(s) * golden) * np.uint64(2)
        acc = np.uint64(0)
        for w in range(words.size):
            acc ^= words[w] & mix64(start + np.uint64(w) * golden)
        out[s] = popcount64(acc) & 1
    return out


def confirm_parities(key: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Parities of ``count`` public random subsets of ``key`` (each bit in with probability 1/2).

    Two different keys give a different parity vector except with probability ``2**-count``
    (for truly random subsets). The subsets come from a counter-based stream seeded by
    ``seed``, 64 key bits at a time.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint8)
    base = np.random.SeedSequence([seed, 0x0C0F1]).generate_state(1, np.uint64)[0]
    return _subset_parities(pack_words(np.asarray(key, dtype=np.uint8)), base, count)


def pack(bits: np.ndarray) -> bytes:
    """Pack a 0/1 array for a message (alias of :func:`~tbqkd.host.protocol.pack_bits`)."""
    return pack_bits(bits)
