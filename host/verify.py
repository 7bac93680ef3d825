"""Key verification: a universal hash of the corrected key with error probability eps_cor.

After error correction Bob draws a public random hash key, hashes his corrected key and sends key
and tag; Alice hashes her key with the same hash key and compares. The hash is the polynomial
hash of :mod:`tbqkd.host.polyhash` with enough independent lanes that two different keys collide
with probability at most ``eps_cor`` (the hash key is drawn after the keys are fixed). A block
whose tags differ is discarded and counted, never output. The tag is public: its length counts as
leaked to Eve (``leak_verify_bits``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import polyhash
from .protocol import pack_bits

__all__ = ["VerificationHash", "draw_field_element", "draw_verification_hash"]

_WORD_BYTES = 8


@dataclass(frozen=True)
class VerificationHash:
    """One hash function of the family: ``len(keys)`` independent lanes over GF(2^61 - 1)."""

    keys: tuple[int, ...]

    @property
    def tag_bits(self) -> int:
        """Bits disclosed by a tag (each lane is sent as one 64-bit word)."""
        return 8 * _WORD_BYTES * len(self.keys)

    def seed_bytes(self) -> bytes:
        """The hash keys as bytes, for the verification message."""
        return b"".join(key.to_bytes(_WORD_BYTES, "little") for key in self.keys)

    @classmethod
    def from_seed_bytes(cls, data: bytes) -> VerificationHash:
        """Inverse of :meth:`seed_bytes`.

        Raises
        ------
        ValueError
            If the length is not a positive multiple of 8 or a key is out of range.
        """
        if not data or len(data) % _WORD_BYTES:
            raise ValueError(f"verification seed of {len(data)} bytes is not whole 64-bit words")
        keys = tuple(int.from_bytes(data[i:i + _WORD_BYTES], "little")
                     for i in range(0, len(data), _WORD_BYTES))
        if any(key >= polyhash.PRIME for key in keys):
            raise ValueError("verification hash key out of range")
        return cls(keys)

    def tag(self, key_bits: np.ndarray) -> bytes:
        """Tag of a 0/1 key array (its bit length is part of the hashed encoding)."""
        values = polyhash.polyhash(pack_bits(key_bits) + len(key_bits).to_bytes(8, "little"),
                                   list(self.keys))
        return b"".join(value.to_bytes(_WORD_BYTES, "little") for value in values)

    def collision_probability(self, key_length_bits: int) -> float:
        """Upper bound on ``P[tag(x) == tag(y)]`` for two different keys of that length."""
        return polyhash.collision_bound(-(-key_length_bits // 8) + 8, len(self.keys))


def draw_field_element(random_bytes: Callable[[int], bytes]) -> int:
    """A uniform element of GF(2^61 - 1) from a source of random bytes (rejection sampling)."""
    while True:
        value = int.from_bytes(random_bytes(_WORD_BYTES), "little") & ((1 << 61) - 1)
        if value < polyhash.PRIME:
            return value


def draw_verification_hash(key_length_bits: int, eps_cor: float, *,
                           random_bytes: Callable[[int], bytes] = secrets.token_bytes,
                           ) -> VerificationHash:
    """Draw a hash with collision probability at most ``eps_cor`` for keys of that length."""
    lanes = polyhash.lanes_for(-(-key_length_bits // 8) + 8, eps_cor)
    return VerificationHash(tuple(draw_field_element(random_bytes) for _ in range(lanes)))
