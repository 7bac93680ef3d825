"""GF(2)[t] multiplication in O(n log n): an additive FFT over GF(2^64) on 32-bit chunks.

A binary polynomial is cut into 32-bit chunks, ``A(t) = sum_i a_i(t) t^(32 i)`` with
``deg a_i < 32``. Read as a polynomial in ``y = t^32`` with coefficients in GF(2)[t], the product
has coefficients ``c_k = sum_(i+j=k) a_i b_j`` of degree < 63. Computing that convolution in the
field GF(2^64) = GF(2)[t] / (t^64 + t^4 + t^3 + t + 1) changes nothing (no product reaches
degree 64, so no reduction happens), and in a field the convolution can be done by evaluation
and interpolation: the additive FFT of Lin, Chung and Han (FOCS 2014) in the "novel polynomial
basis" ``X_k = prod_(bit i of k) s_i``, with the Cantor basis ``beta_0 = 1, beta_i^2 + beta_i =
beta_(i-1)`` (Cantor 1989; Gao and Mateer 2010) for which the subspace-vanishing polynomials
``s_i(x) = sum_(j subset of i) x^(2^j)`` have 0/1 coefficients and ``s_i(beta_j) = beta_(j-i)``.
The same approach for long binary polynomials: Chen, Cheng, Kuo, Li, Yang, "Faster
multiplication for long binary polynomials", arXiv:1708.09746 (2017).

Steps for a product of ``N = 2^L`` chunks: monomial -> novel basis (XORs only, division by the
sparse ``s_i``), forward FFT of both inputs (``N/2 log N`` field products each), pointwise
product, inverse FFT, novel -> monomial basis, overlap-add of the 63-bit ``c_k`` at bit ``32 k``.

Toeplitz hashing needs only the middle of a product: :func:`middle_product` runs the transposed
algorithm (Tellegen's principle), with half the transform length (see the comment above it).
"""

from __future__ import annotations

import numba
import numpy as np

from ._gf2poly import _clmul, pack

__all__ = ["middle_product", "multiply_fft", "multiply_bits_fft", "cantor_basis", "field_multiply",
           "compute_traces", "TRACE_BITS"]

_MODULUS_LOW = 0x1B  # t^64 = t^4 + t^3 + t + 1
_MAX_LEVELS = 40


def field_multiply(a: int, b: int) -> int:
    """Product in GF(2^64) of two field elements given as Python ints (slow; for set-up, tests)."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        b >>= 1
    for bit in range(127, 63, -1):
        if product >> bit & 1:
            product ^= (1 << bit) | (_MODULUS_LOW << (bit - 64))
    return product


def _solve_artin_schreier(c: int) -> int:
    """A root x of x^2 + x = c in GF(2^64) (linear algebra over GF(2)).

    Raises
    ------
    ValueError
        If there is none (trace of ``c`` is 1).
    """
    # Columns: images of the basis vectors t^j under the GF(2)-linear map x -> x^2 + x.
    rows = []  # augmented rows of the 64 x 64 system, as (row bits, rhs bit)
    images = [field_multiply(1 << j, 1 << j) ^ (1 << j) for j in range(64)]
    for bit in range(64):
        row = sum(((images[j] >> bit) & 1) << j for j in range(64))
        rows.append([row, (c >> bit) & 1])
    pivots = {}
    for row, rhs in rows:
        for column, (prow, prhs) in pivots.items():
            if row >> column & 1:
                row ^= prow
                rhs ^= prhs
        if row == 0:
            if rhs:
                raise ValueError("x^2 + x = c has no solution")
            continue
        column = row.bit_length() - 1
        for other, (orow, orhs) in list(pivots.items()):
            if orow >> column & 1:
                pivots[other] = (orow ^ row, orhs ^ rhs)
        pivots[column] = (row, rhs)
    return sum(rhs << column for column, (row, rhs) in pivots.items())


def cantor_basis(levels: int) -> np.ndarray:
    """``beta_0 .. beta_(levels-1)`` with ``beta_0 = 1`` and ``beta_i^2 + beta_i = beta_(i-1)``."""
    basis = [1]
    for _ in range(1, levels):
        basis.append(_solve_artin_schreier(basis[-1]))
    return np.array(basis, dtype=np.uint64)


#: ``cantor_basis(_MAX_LEVELS)``, precomputed (the tests recompute it).
_BASIS = np.array([
    0x0000000000000001,
    0x19C9369F278ADC02,
    0xA181E7D66F5FF794,
    0x5DB84357CE785D08,
    0xB973D466F5C9D0CA,
    0x521AC889831A075E,
    0x033CE8BEDDC8A656,
    0xB5846C4E07B91010,
    0x4087B8CBB37A32EC,
    0x00D0D3888C0AE17C,
    0xAFD5AC70237F2222,
    0xE3F5AF99CC3AAAF8,
    0x5A1DB3B16A0B58B8,
    0x09947C54FE7EE248,
    0x0E8EAF0E0068F544,
    0xA2A113500B4B4F5A,
    0xE96F9805D6CE0BB0,
    0x53496F8B5C9EDD4C,
    0xAD325CB6F4AC2A9E,
    0x4A8DCF8BD7EDE826,
    0xA3E9C552B6434210,
    0x5FA92AD9C9BC7ED0,
    0xA389F910CD7734DE,
    0xE916F3DFCA4609D8,
    0xF89578714BD28F96,
    0x564DDA59237A3352,
    0xAD33BC6CC75AED38,
    0x57A3104FCD0E5F34,
    0xB0F502E4CD60039A,
    0xEB42E79F91F49F8C,
    0x54E5BF3774B3F850,
    0xB66864E6EC14B4D2,
    0xED57CE778F0D6244,
    0x523AAF9D6148BA24,
    0xA8FCBFAAC14940C6,
    0xE503EACFCEF77780,
    0xF3746C7B5183A372,
    0xEC50D77D2F416218,
    0xF9CDF54569FE87E6,
    0xE576269915705E2C
,
], dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def _gf_mul(a, b):  # pragma: no cover - compiled
    low, high = _clmul(a, b)
    # Fold the high word twice with t^64 = t^4 + t^3 + t + 1.
    fold = ((high >> np.uint64(63)) ^ (high >> np.uint64(61)) ^ (high >> np.uint64(60)))
    high ^= fold
    return (low ^ high ^ (high << np.uint64(1)) ^ (high << np.uint64(3))
            ^ (high << np.uint64(4)))


@numba.njit(cache=True, nogil=True)
def _twiddles(basis, count):  # pragma: no cover - compiled
    # tw[q] = s_(r-1)(offset of block q at level r) = sum over bits b of q of beta_(b+1).
    tw = np.zeros(max(count, 1), dtype=np.uint64)
    for q in range(1, count):
        low = q & -q
        b = 0
        while (low >> b) != 1:
            b += 1
        tw[q] = tw[q ^ low] ^ basis[b + 1]
    return tw


@numba.njit(cache=True, nogil=True)
def _lower_terms(r):  # pragma: no cover - compiled
    # Exponents 2^j of s_(r-1) other than the leading x^(2^(r-1)): j a proper subset of r-1.
    terms = r - 1
    count = 0
    j = terms
    while True:
        if j != terms:
            count += 1
        if j == 0:
            break
        j = (j - 1) & terms
    out = np.empty(count, dtype=np.int64)
    count = 0
    j = terms
    while True:
        if j != terms:
            out[count] = 1 << j
            count += 1
        if j == 0:
            break
        j = (j - 1) & terms
    return out


#: Levels up to this one run block by block (2^_CACHE_LEVELS words, in cache), the rest in
#: whole-array passes. The drivers that order the passes (``_forward`` ...) are plain Python:
#: a few dozen calls per transform, and it saves seconds of JIT compilation.
_CACHE_LEVELS = 13


@numba.njit(cache=True, nogil=True)
def _to_novel_levels(d, first, last, r_high, r_low, filled):  # pragma: no cover - compiled
    # Monomial -> novel basis: f = f0 + s_(r-1) f1 by long division of each 2h-block by the
    # monic 0/1 polynomial s_(r-1) of degree h. Every lower term x^e has e <= h/2, so a source
    # coefficient k only updates k - h + e <= k - h/2: the quotient half splits into two
    # quarters, top one first, each free of dependencies inside itself. Coefficients from
    # ``filled`` on are zero and stay zero (updates only flow downwards): they are skipped.
    for r in range(r_high, r_low - 1, -1):
        h = 1 << (r - 1)
        q = h >> 1
        terms = _lower_terms(r)
        for base in range(first, last, 2 * h):
            for start in (base + h + q, base + h):
                if start >= filled:
                    continue
                for e in terms:
                    target = start - h + e
                    for i in range(q):
                        d[target + i] ^= d[start + i]


@numba.njit(cache=True, nogil=True)
def _from_novel_levels(d, first, last, r_low, r_high):  # pragma: no cover - compiled
    # Novel -> monomial basis: f = f0 + s_(r-1) f1, small blocks first; f1's lower quarter
    # first (its targets all lie in f0), then the upper quarter (targets below it).
    for r in range(r_low, r_high + 1):
        h = 1 << (r - 1)
        q = h >> 1
        terms = _lower_terms(r)
        for base in range(first, last, 2 * h):
            for offset in (0, q):
                source = base + h + offset
                for e in terms:
                    target = base + e + offset
                    for i in range(q):
                        d[target + i] ^= d[source + i]


@numba.njit(cache=True, nogil=True)
def _fft_levels(d, first, last, r_high, r_low, tw):  # pragma: no cover - compiled
    # Butterflies of level r on blocks of 2^r words: lo += lam hi; hi += lo, with lam the
    # twiddle of the block (its index q counts blocks from the start of the array).
    for r in range(r_high, r_low - 1, -1):
        h = 1 << (r - 1)
        for base in range(first, last, 2 * h):
            lam = tw[base >> r]
            if lam == 0:
                for i in range(base, base + h):
                    d[i + h] ^= d[i]
            else:
                for i in range(base, base + h):
                    low = d[i] ^ _gf_mul(lam, d[i + h])
                    d[i] = low
                    d[i + h] ^= low


@numba.njit(cache=True, nogil=True)
def _ifft_levels(d, first, last, r_low, r_high, tw):  # pragma: no cover - compiled
    for r in range(r_low, r_high + 1):
        h = 1 << (r - 1)
        for base in range(first, last, 2 * h):
            lam = tw[base >> r]
            if lam == 0:
                for i in range(base, base + h):
                    d[i + h] ^= d[i]
            else:
                for i in range(base, base + h):
                    high = d[i + h] ^ d[i]
                    d[i + h] = high
                    d[i] ^= _gf_mul(lam, high)


def _forward(d, levels, tw, filled):
    """Monomial coefficients (zero from ``filled`` on) -> evaluations on W_levels (in place)."""
    n = d.shape[0]
    split = min(levels, _CACHE_LEVELS)
    block = 1 << split
    _to_novel_levels(d, 0, n, levels, split + 1, filled)
    for first in range(0, min(n, filled + block), block):
        _to_novel_levels(d, first, first + block, split, 2, filled)
    _fft_levels(d, 0, n, levels, split + 1, tw)
    for first in range(0, n, block):
        _fft_levels(d, first, first + block, split, 1, tw)


def _inverse(d, levels, tw):
    """Evaluations on W_levels -> monomial coefficients (in place)."""
    n = d.shape[0]
    split = min(levels, _CACHE_LEVELS)
    block = 1 << split
    for first in range(0, n, block):
        _ifft_levels(d, first, first + block, 1, split, tw)
    _ifft_levels(d, 0, n, split + 1, levels, tw)
    for first in range(0, n, block):
        _from_novel_levels(d, first, first + block, 2, split)
    _from_novel_levels(d, 0, n, split + 1, levels)


@numba.njit(cache=True, nogil=True)
def _pointwise(x, y):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        x[i] = _gf_mul(x[i], y[i])


@numba.njit(cache=True, nogil=True)
def _overlap_add(c, out):  # pragma: no cover - compiled
    # c_k (< 2^63) goes to bit 32 k of out.
    for k in range(min(c.shape[0], 2 * out.shape[0])):
        v = c[k]
        if v == 0:
            continue
        word = k >> 1
        if k & 1:
            out[word] ^= v << np.uint64(32)
            if word + 1 < out.shape[0]:
                out[word + 1] ^= v >> np.uint64(32)
        else:
            out[word] ^= v


def _chunks(words: np.ndarray, size: int) -> np.ndarray:
    chunks = np.zeros(size, dtype=np.uint64)
    halves = np.ascontiguousarray(words, dtype="<u8").view("<u4")
    chunks[:halves.size] = halves
    return chunks


def multiply_fft(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two packed polynomials (``len(a) + len(b)`` words), by the additive FFT."""
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = np.ascontiguousarray(b, dtype=np.uint64)
    out = np.zeros(a.size + b.size, dtype=np.uint64)
    if a.size == 0 or b.size == 0:
        return out
    chunks = 2 * (a.size + b.size)
    levels = max(1, int(chunks - 1).bit_length())
    if levels >= _MAX_LEVELS:
        raise ValueError("polynomials too long for the additive FFT")
    size = 1 << levels
    tw = _twiddles(_BASIS, size // 2)
    x = _chunks(a, size)
    y = _chunks(b, size)
    _forward(x, levels, tw, 2 * a.size)
    _forward(y, levels, tw, 2 * b.size)
    _pointwise(x, y)
    _inverse(x, levels, tw)
    _overlap_add(x, out)
    return out


def multiply_bits_fft(a_bits: np.ndarray, b_bits: np.ndarray) -> np.ndarray:
    """:func:`multiply_fft` of two 0/1 coefficient arrays (packed result)."""
    return multiply_fft(pack(a_bits), pack(b_bits))


# --- Middle product by transposition (Tellegen's principle) ------------------------------------
#
# Toeplitz hashing y_l = sum_j x'_j s_(l+j) (x' = x reversed) is the transpose of the map
# A: f -> x' f. A is a chain of GF(2)-linear steps (chunking E, to-novel T, FFT F, pointwise
# product D, inverse FFT, from-novel, overlap-add O), so A^T is the chain of the transposed steps
# in reverse order: each "d[t] ^= d[s]" becomes "d[s] ^= d[t]", and multiplication by a field
# element lam transposes to G M_lam G^-1 (G the Gram matrix of the trace form Tr(ab), for which
# multiplication is self-adjoint). Working in the coordinates z = G^-1 v, every transposed
# multiplication is an ordinary one. The FFT only needs n + m points instead of 2n + m.


#: Bit k is Tr(t^k) in GF(2^64) for k < 127 (checked by ``compute_traces`` in the tests).
TRACE_BITS = 0x6E00000000000000A000000000000000


def compute_traces() -> int:
    """``sum_k Tr(t^k) 2^k`` for k < 127, from the definition ``Tr(a) = sum_i a^(2^i)``."""
    bits = 0
    for k in range(127):
        element = 1 << k if k < 64 else field_multiply(1 << 63, 1 << (k - 63))
        total, power = 0, element
        for _ in range(64):
            total ^= power
            power = field_multiply(power, power)
        bits |= (total & 1) << k  # the trace lies in GF(2): 0 or 1
    return bits


def _trace_gram() -> tuple[np.ndarray, np.ndarray]:
    """Byte tables of G (G_ij = Tr(t^(i+j))) and of G^-1, for :func:`_apply_tables`."""
    columns = [sum(((TRACE_BITS >> (i + j)) & 1) << i for i in range(64)) for j in range(64)]
    inverse = _invert_gf2(columns)
    return _byte_tables(columns), _byte_tables(inverse)


def _invert_gf2(columns: list[int]) -> list[int]:
    """Columns of the inverse of a 64 x 64 GF(2) matrix given by its columns."""
    rows = [sum(((columns[j] >> i) & 1) << j for j in range(64)) for i in range(64)]
    inverse_rows = [1 << i for i in range(64)]
    for column in range(64):
        pivot = next(r for r in range(column, 64) if rows[r] >> column & 1)
        rows[column], rows[pivot] = rows[pivot], rows[column]
        inverse_rows[column], inverse_rows[pivot] = inverse_rows[pivot], inverse_rows[column]
        for r in range(64):
            if r != column and rows[r] >> column & 1:
                rows[r] ^= rows[column]
                inverse_rows[r] ^= inverse_rows[column]
    return [sum(((inverse_rows[i] >> j) & 1) << i for i in range(64)) for j in range(64)]


def _byte_tables(columns: list[int]) -> np.ndarray:
    tables = np.zeros((8, 256), dtype=np.uint64)
    for byte in range(8):
        for value in range(256):
            acc = 0
            for bit in range(8):
                if value >> bit & 1:
                    acc ^= columns[8 * byte + bit]
            tables[byte, value] = acc
    return tables


_GRAM: tuple[np.ndarray, np.ndarray] | None = None


@numba.njit(cache=True, nogil=True)
def _apply_tables(d, tables):  # pragma: no cover - compiled
    for i in range(d.shape[0]):
        v = d[i]
        acc = np.uint64(0)
        for byte in range(8):
            acc ^= tables[byte, (v >> np.uint64(8 * byte)) & np.uint64(0xFF)]
        d[i] = acc


@numba.njit(cache=True, nogil=True)
def _to_novel_levels_t(d, first, last, r_low, r_high, live):  # pragma: no cover - compiled
    # Writes go upwards (to the quotient half), reads come from below: if only d[:live] is
    # wanted at the end, a write at or above ``live`` is never read again and is skipped.
    for r in range(r_low, r_high + 1):
        h = 1 << (r - 1)
        q = h >> 1
        terms = _lower_terms(r)
        for base in range(first, last, 2 * h):
            for start in (base + h, base + h + q):
                length = min(q, live - start)
                for e in terms:
                    target = start - h + e
                    for i in range(length):
                        d[start + i] ^= d[target + i]


@numba.njit(cache=True, nogil=True)
def _from_novel_levels_t(d, first, last, r_high, r_low):  # pragma: no cover - compiled
    for r in range(r_high, r_low - 1, -1):
        h = 1 << (r - 1)
        q = h >> 1
        terms = _lower_terms(r)
        for base in range(first, last, 2 * h):
            for offset in (q, 0):
                source = base + h + offset
                for e in terms:
                    target = base + e + offset
                    for i in range(q):
                        d[source + i] ^= d[target + i]


@numba.njit(cache=True, nogil=True)
def _fft_levels_t(d, first, last, r_low, r_high, tw):  # pragma: no cover - compiled
    # Transpose of (lo += lam hi; hi += lo): lo += hi; hi += lam lo, levels in reverse order.
    for r in range(r_low, r_high + 1):
        h = 1 << (r - 1)
        for base in range(first, last, 2 * h):
            lam = tw[base >> r]
            if lam == 0:
                for i in range(base, base + h):
                    d[i] ^= d[i + h]
            else:
                for i in range(base, base + h):
                    low = d[i] ^ d[i + h]
                    d[i] = low
                    d[i + h] ^= _gf_mul(lam, low)


@numba.njit(cache=True, nogil=True)
def _ifft_levels_t(d, first, last, r_high, r_low, tw):  # pragma: no cover - compiled
    # Transpose of (hi += lo; lo += lam hi): hi += lam lo; lo += hi, levels in reverse order.
    for r in range(r_high, r_low - 1, -1):
        h = 1 << (r - 1)
        for base in range(first, last, 2 * h):
            lam = tw[base >> r]
            if lam == 0:
                for i in range(base, base + h):
                    d[i] ^= d[i + h]
            else:
                for i in range(base, base + h):
                    high = d[i + h] ^ _gf_mul(lam, d[i])
                    d[i + h] = high
                    d[i] ^= high


def _inverse_t(d, levels, tw):
    """Transpose of :func:`_inverse` (on dual coordinates)."""
    n = d.shape[0]
    split = min(levels, _CACHE_LEVELS)
    block = 1 << split
    _from_novel_levels_t(d, 0, n, levels, split + 1)
    for first in range(0, n, block):
        _from_novel_levels_t(d, first, first + block, split, 2)
    _ifft_levels_t(d, 0, n, levels, split + 1, tw)
    for first in range(0, n, block):
        _ifft_levels_t(d, first, first + block, split, 1, tw)


def _forward_t(d, levels, tw, live):
    """Transpose of :func:`_forward` (on dual coordinates); only ``d[:live]`` is exact."""
    n = d.shape[0]
    split = min(levels, _CACHE_LEVELS)
    block = 1 << split
    for first in range(0, n, block):
        _fft_levels_t(d, first, first + block, 1, split, tw)
    _fft_levels_t(d, 0, n, split + 1, levels, tw)
    for first in range(0, min(n, live), block):
        _to_novel_levels_t(d, first, first + block, 2, split, live)
    _to_novel_levels_t(d, 0, n, split + 1, levels, live)


@numba.njit(cache=True, nogil=True)
def _windows(words, count):  # pragma: no cover - compiled
    # Element k = the 64 bits of the packed polynomial starting at bit 32 k (transpose of the
    # overlap-add).
    out = np.zeros(count, dtype=np.uint64)
    n = words.shape[0]
    for k in range(min(count, 2 * n)):
        w = k >> 1
        if k & 1:
            v = words[w] >> np.uint64(32)
            if w + 1 < n:
                v |= words[w + 1] << np.uint64(32)
            out[k] = v
        else:
            out[k] = words[w]
    return out


def middle_product(x_bits: np.ndarray, seed_bits: np.ndarray, output_bits: int) -> np.ndarray:
    """Toeplitz hash ``y_i = sum_j s[i - j + n - 1] x_j`` (0/1 arrays in, ``output_bits`` out).

    Computed as the transposed product (see above) with an additive FFT of
    ``2^ceil(log2(ceil(n/32) + ceil(m/32) + 1))`` points.
    """
    global _GRAM
    if _GRAM is None:
        _GRAM = _trace_gram()
    gram, gram_inverse = _GRAM
    x_bits = np.asarray(x_bits, dtype=np.uint8)
    n = x_bits.size
    x_chunks = -(-n // 32)
    y_chunks = -(-output_bits // 32)
    levels = max(1, int(x_chunks + y_chunks).bit_length())
    if levels >= _MAX_LEVELS:
        raise ValueError("input too long for the additive FFT")
    size = 1 << levels
    tw = _twiddles(_BASIS, size // 2)
    reversed_x = _chunks(pack(np.ascontiguousarray(x_bits[::-1])), size)
    _forward(reversed_x, levels, tw, x_chunks)
    z = _windows(pack(seed_bits), size)
    _apply_tables(z, gram_inverse)
    _inverse_t(z, levels, tw)
    _pointwise(z, reversed_x)
    _forward_t(z, levels, tw, y_chunks)
    z = z[:y_chunks]
    _apply_tables(z, gram)
    low = (z & np.uint64(0xFFFFFFFF)).astype("<u4")
    return np.unpackbits(low.view(np.uint8), count=output_bits, bitorder="little")

