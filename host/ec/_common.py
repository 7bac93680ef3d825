"""Helpers shared by the reconciliation sides: message checks and confirmation parities."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..protocol import Message, ProtocolError, pack_bits, unpack_bits

__all__ = ["expect_message", "field_int", "field_bits", "confirm_parities", "MAX_KEY_BITS"]

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


def field_bits(message: Message, name: str, count: int) -> np.ndarray:
    """Unpack the packed-bits field ``name``, which must hold exactly ``count`` bits.

    Raises
    ------
    ProtocolError
        If the field's byte length does not match ``count`` (too short or oversized).
    """
    data = message[name]
    if len(data) != (count + 7) // 8:
        raise ProtocolError(f"{message['type']!r} field {name!r} holds {len(data)} bytes, "
                            f"{(count + 7) // 8} expected for {count} bits")
    return unpack_bits(data, count)


def confirm_parities(key: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Parities of ``count`` public random subsets of ``key`` (each bit in with probability 1/2).

    Two different keys give a different parity vector except with probability ``2**-count``.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint8)
    rng = np.random.default_rng([seed, 0x0C0F1])
    words = rng.integers(0, 1 << 63, size=(key.size, (count + 62) // 63), dtype=np.int64)
    acc = np.bitwise_xor.reduce(words[key.astype(bool)], axis=0) if key.any() else \
        np.zeros(words.shape[1], dtype=np.int64)
    bits = ((acc[:, None] >> np.arange(63)) & 1).astype(np.uint8).ravel()
    return bits[:count]


def pack(bits: np.ndarray) -> bytes:
    """Pack a 0/1 array for a message (alias of :func:`~tbqkd.host.protocol.pack_bits`)."""
    return pack_bits(bits)
