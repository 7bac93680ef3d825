"""Polynomial hashing over GF(2^61 - 1): the universal hash of authentication and verification.

A message of ``B`` bytes is cut into ``L = ceil(B / 7)`` little-endian 56-bit chunks
``c_1 .. c_L`` (each < p) and hashed with key ``k`` as::

    h_k(M) = c_1 k^(L+1) + c_2 k^L + ... + c_L k^2 + (8 B) k      (mod p)

The last coefficient (the bit length) makes the encoding prefix-free, so for two different
messages ``h_k(M) - h_k(M')`` is a non-zero polynomial in ``k`` of degree at most ``L + 1``
without constant term, and for any offset ``c``: ``P_k[h_k(M) - h_k(M') = c] <= (L + 1) / p``
(the family is epsilon-almost-Delta-universal, Wegman and Carter 1981; Bernstein 2005). Using
``lanes`` independent keys multiplies the probabilities: ``((L + 1) / p) ** lanes``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["PRIME", "polyhash", "collision_bound", "lanes_for"]

PRIME = (1 << 61) - 1
_P = np.uint64(PRIME)
_MASK32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _mulmod(a: np.uint64, b: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    # Thorup's multiplication modulo 2^61 - 1 with 32-bit halves (a, b < 2^61).
    l1 = a & np.uint64(0xFFFFFFFF)
    h1 = a >> np.uint64(32)
    l2 = b & np.uint64(0xFFFFFFFF)
    h2 = b >> np.uint64(32)
    low = l1 * l2
    mid = l1 * h2 + l2 * h1
    high = h1 * h2
    p = np.uint64(0x1FFFFFFFFFFFFFFF)
    r = ((low & p) + (low >> np.uint64(61)) + (high << np.uint64(3)) + (mid >> np.uint64(29))
         + ((mid << np.uint64(35)) >> np.uint64(3)) + np.uint64(1))
    r = (r & p) + (r >> np.uint64(61))
    r = (r & p) + (r >> np.uint64(61))
    return r - np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _horner(chunks: np.ndarray, bit_length: np.uint64,
            key: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    p = np.uint64(0x1FFFFFFFFFFFFFFF)
    acc = np.uint64(0)
    for i in range(chunks.shape[0]):
        acc = _mulmod(acc + chunks[i], key)  # acc < p and chunk < 2^56: no overflow
        if acc >= p:
            acc -= p
    acc = _mulmod(acc + bit_length % p, key)
    if acc >= p:
        acc -= p
    return acc


def _chunks(data: bytes | np.ndarray) -> tuple[np.ndarray, int]:
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) \
        else np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    count = -(-raw.size // 7)
    flat = np.zeros(count * 7, dtype=np.uint8)
    flat[:raw.size] = raw
    padded = np.zeros((count, 8), dtype=np.uint8)
    padded[:, :7] = flat.reshape(count, 7)
    return padded.view("<u8").reshape(-1).astype(np.uint64, copy=False), raw.size


def polyhash(data: bytes | np.ndarray, keys: list[int]) -> list[int]:
    """Hash ``data`` (bytes, or a uint8 array) with each key in ``keys`` (each in [0, p)).

    Raises
    ------
    ValueError
        If a key is out of range.
    """
    chunks, size = _chunks(data)
    out = []
    for key in keys:
        if not 0 <= key < PRIME:
            raise ValueError("polynomial-hash key out of range")
        out.append(int(_horner(chunks, np.uint64(8 * size), np.uint64(key))))
    return out


def collision_bound(size_bytes: int, lanes: int) -> float:
    """``((L + 1) / p) ** lanes`` for a message of ``size_bytes`` bytes (``L`` chunks)."""
    return ((-(-size_bytes // 7) + 1) / PRIME) ** lanes


def lanes_for(size_bytes: int, eps: float) -> int:
    """Smallest number of independent lanes whose collision bound is at most ``eps``."""
    per_lane = (-(-size_bytes // 7) + 1) / PRIME
    return max(1, math.ceil(math.log(eps) / math.log(per_lane)))
