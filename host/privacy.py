"""Privacy amplification by Toeplitz hashing.

Convention: an ``n``-bit input ``x``, an ``m``-bit output ``y`` and an ``(n + m - 1)``-bit seed
``s`` define the ``m x n`` Toeplitz matrix ``T[i][j] = s[i - j + n - 1]`` and ``y = T x``
(mod 2). Row 0 is ``s[n-1], s[n-2], ..., s[0]``; column 0 is ``s[n-1], ..., s[n+m-2]``.

``y_i = sum_j s[i - j + n - 1] x_j`` is coefficient ``i + n - 1`` of the product ``s(t) x(t)``
of the GF(2)[t] polynomials with coefficient vectors ``s`` and ``x``: Toeplitz hashing is the
*middle product* of the two polynomials. Two implementations compute it:

* :func:`toeplitz_hash_packed`: bit-packed polynomials (64 coefficients per word), multiplied
  either by Karatsuba over words with a carry-less (PCLMULQDQ) base case
  (:mod:`tbqkd.host._gf2poly`, n^1.58, best for small blocks) or by an additive FFT over
  GF(2^64) on 32-bit chunks (:mod:`tbqkd.host._gf2fft`, n log n, best for large blocks).
* :func:`toeplitz_hash_fft`: exact integer convolution with a float64 real FFT (0/1 inputs,
  cyclic length ``>= n + m - 1``, so the wrap-around never reaches the middle coefficients),
  then the parity of each coefficient. One bit per float: slow, but needs no carry-less
  multiply.

:func:`toeplitz_hash` picks the method by CPU and size.

Toeplitz matrices form a two-universal family, so the leftover hash lemma applies (Krawczyk
1994; Tomamichel et al. 2011).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from . import _gf2fft, _gf2poly

__all__ = ["seed_bits_for", "toeplitz_matrix", "toeplitz_hash_fft", "toeplitz_hash_packed",
           "toeplitz_hash", "KARATSUBA_MAX_BITS"]


def seed_bits_for(input_bits: int, output_bits: int) -> int:
    """Seed length ``n + m - 1`` for an ``n``-bit input and an ``m``-bit output."""
    return input_bits + output_bits - 1


def _check(bits: np.ndarray, seed: np.ndarray, output_bits: int) -> tuple[np.ndarray, np.ndarray]:
    bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
    seed = np.asarray(seed, dtype=np.uint8).reshape(-1)
    if output_bits < 1 or output_bits > bits.size:
        raise ValueError(f"output length must be in [1, {bits.size}], got {output_bits}")
    if seed.size != seed_bits_for(bits.size, output_bits):
        raise ValueError(f"seed must have {seed_bits_for(bits.size, output_bits)} bits, "
                         f"got {seed.size}")
    return bits, seed


def toeplitz_matrix(seed: np.ndarray, input_bits: int, output_bits: int) -> np.ndarray:
    """The dense ``m x n`` matrix ``T[i][j] = s[i - j + n - 1]`` (for tests and small sizes)."""
    seed = np.asarray(seed, dtype=np.uint8)
    i = np.arange(output_bits)[:, None]
    j = np.arange(input_bits)[None, :]
    return seed[i - j + input_bits - 1]


def toeplitz_hash_fft(bits: np.ndarray, seed: np.ndarray, output_bits: int) -> np.ndarray:
    """``T x`` (mod 2) through a float64 real-FFT convolution; returns ``output_bits`` bits.

    Raises
    ------
    ValueError
        If the seed length is not ``n + m - 1`` or the output is longer than the input.
    """
    bits, seed = _check(bits, seed, output_bits)
    n = bits.size
    size = scipy.fft.next_fast_len(n + output_bits - 1, real=True)
    product = scipy.fft.irfft(scipy.fft.rfft(bits.astype(np.float64), size)
                              * scipy.fft.rfft(seed.astype(np.float64), size), size)
    middle = product[n - 1:n - 1 + output_bits]
    return (np.rint(middle).astype(np.int64) & 1).astype(np.uint8)


#: Below this input size the bit-packed Karatsuba beats the additive FFT (set-up costs).
KARATSUBA_MAX_BITS = 1 << 15


def toeplitz_hash_packed(bits: np.ndarray, seed: np.ndarray, output_bits: int, *,
                         method: str = "auto") -> np.ndarray:
    """``T x`` (mod 2) on bit-packed polynomials; returns ``output_bits`` bits.

    ``method`` is ``"karatsuba"``, ``"additive_fft"`` or ``"auto"`` (by input size).

    Raises
    ------
    ValueError
        If the seed length is not ``n + m - 1``, the output is longer than the input, or the
        method is unknown.
    """
    bits, seed = _check(bits, seed, output_bits)
    if method == "auto":
        method = "karatsuba" if bits.size <= KARATSUBA_MAX_BITS else "additive_fft"
    if method == "karatsuba":
        product = _gf2poly.multiply(_gf2poly.pack(seed), _gf2poly.pack(bits))
    elif method == "additive_fft":
        return _gf2fft.middle_product(bits, seed, output_bits)
    else:
        raise ValueError(f"unknown method {method!r}")
    return _gf2poly.extract_bits(product, bits.size - 1, output_bits)


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, output_bits: int) -> np.ndarray:
    """``T x`` (mod 2) by the fastest method for the CPU; returns ``output_bits`` bits.

    With PCLMULQDQ (x86): bit-packed, Karatsuba for small and the additive FFT for large
    inputs. Without (e.g. ARM): the float FFT, as software carry-less products are slow.

    Raises
    ------
    ValueError
        If the seed length is not ``n + m - 1`` or the output is longer than the input.
    """
    if _gf2poly.HAVE_PCLMUL:
        return toeplitz_hash_packed(bits, seed, output_bits)
    return toeplitz_hash_fft(bits, seed, output_bits)
