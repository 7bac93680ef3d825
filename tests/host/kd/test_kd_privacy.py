"""Toeplitz hashing against the dense matrix product, and the bit-packed GF(2)[t] product."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tbqkd.host import _gf2fft, _gf2poly, privacy


def _dense(x, seed, m):
    return (privacy.toeplitz_matrix(seed, x.size, m).astype(np.int64) @ x) % 2


def test_matrix_convention():
    seed = np.arange(6) % 2  # n = 4, m = 3: seed length 6
    seed = np.array([1, 0, 0, 1, 1, 0], dtype=np.uint8)
    t = privacy.toeplitz_matrix(seed, 4, 3)
    for i in range(3):
        for j in range(4):
            assert t[i, j] == seed[i - j + 3]
    assert list(t[0]) == [seed[3], seed[2], seed[1], seed[0]]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(n=st.integers(1, 700), frac=st.floats(0.01, 1.0), data=st.randoms(use_true_random=False))
def test_toeplitz_matches_dense(n, frac, data):
    rng = np.random.default_rng(data.getrandbits(32))
    m = max(1, int(n * frac))
    x = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    expected = _dense(x, seed, m)
    assert np.array_equal(privacy.toeplitz_hash(x, seed, m), expected)
    for method in ("karatsuba", "additive_fft"):
        assert np.array_equal(privacy.toeplitz_hash_packed(x, seed, m, method=method), expected)
    assert np.array_equal(privacy.toeplitz_hash_fft(x, seed, m), expected)


def test_large_block_implementations_agree():
    rng = np.random.default_rng(11)
    n, m = 300_001, 123_457
    x = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    packed = privacy.toeplitz_hash_packed(x, seed, m, method="additive_fft")
    assert np.array_equal(packed, privacy.toeplitz_hash_fft(x, seed, m))
    assert np.array_equal(packed, privacy.toeplitz_hash_packed(x, seed, m, method="karatsuba"))
    # Spot-check single output bits against the definition.
    for i in (0, 1, m // 2, m - 1):
        assert packed[i] == int(seed[i + n - 1 - np.arange(n)] @ x) % 2


def test_rejects_bad_sizes():
    x = np.ones(10, dtype=np.uint8)
    with pytest.raises(ValueError, match="seed must have"):
        privacy.toeplitz_hash(x, np.ones(10, dtype=np.uint8), 5)
    with pytest.raises(ValueError, match="output length"):
        privacy.toeplitz_hash(x, np.ones(20, dtype=np.uint8), 11)
    with pytest.raises(ValueError, match="unknown method"):
        privacy.toeplitz_hash_packed(x, np.ones(14, dtype=np.uint8), 5, method="magic")


def _clmul_int(a: int, b: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        b >>= 1
    return out


@pytest.mark.parametrize("na,nb", [(1, 1), (3, 17), (16, 16), (17, 40), (100, 33), (257, 256)])
def test_packed_multiply_matches_integer_clmul(na, nb):
    rng = np.random.default_rng(na * 1000 + nb)
    a = rng.integers(0, 2**63, na, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, nb, dtype=np.uint64)
    as_int = lambda words: int.from_bytes(words.astype("<u8").tobytes(), "little")  # noqa: E731
    product = _gf2poly.multiply(a, b)
    assert as_int(product) == _clmul_int(as_int(a), as_int(b))


def test_software_clmul_matches_definition():
    rng = np.random.default_rng(2)
    for a, b in rng.integers(0, 2**63, (20, 2), dtype=np.uint64):
        low, high = _gf2poly._clmul_sw(a, b)
        assert (int(high) << 64) | int(low) == _clmul_int(int(a), int(b))


@pytest.mark.parametrize("na,nb", [(1, 1), (1, 2), (2, 3), (5, 7), (16, 40), (100, 33),
                                   (1000, 1500), (4097, 3), (20_000, 30_001)])
def test_additive_fft_multiply_matches_karatsuba(na, nb):
    rng = np.random.default_rng(na + 7 * nb)
    a = rng.integers(0, 2**63, na, dtype=np.uint64) | np.uint64(1 << 63)
    b = rng.integers(0, 2**63, nb, dtype=np.uint64) | np.uint64(1 << 63)
    assert np.array_equal(_gf2fft.multiply_fft(a, b), _gf2poly.multiply(a, b))


def test_gf2_64_arithmetic_and_cantor_basis():
    rng = np.random.default_rng(12)
    for a, b in rng.integers(0, 2**63, (50, 2), dtype=np.uint64):
        a, b = int(a) << 1 | 1, int(b)
        assert int(_gf2fft._gf_mul(np.uint64(a), np.uint64(b))) == _gf2fft.field_multiply(a, b)
    # x^64 = x^4 + x^3 + x + 1
    assert _gf2fft.field_multiply(1 << 63, 2) == 0x1B
    basis = [int(v) for v in _gf2fft.cantor_basis(24)]
    assert basis[0] == 1
    for i in range(1, 24):
        assert _gf2fft.field_multiply(basis[i], basis[i]) ^ basis[i] == basis[i - 1]


def test_precomputed_constants_match_their_definitions():
    assert _gf2fft.compute_traces() == _gf2fft.TRACE_BITS
    assert np.array_equal(_gf2fft.cantor_basis(_gf2fft._MAX_LEVELS), _gf2fft._BASIS)


def test_multiplication_is_self_adjoint_under_the_trace_form():
    # The transposed (middle-product) algorithm rests on M_lam^T = G M_lam G^-1.
    gram, gram_inverse = _gf2fft._trace_gram()
    rng = np.random.default_rng(13)

    def apply(tables, value):
        data = np.array([value], dtype=np.uint64)
        _gf2fft._apply_tables(data, tables)
        return int(data[0])

    def column(matrix_of, j):
        return matrix_of(1 << j)

    for lam in (int(v) for v in rng.integers(1, 2**63, 3, dtype=np.uint64)):
        def mul(v, lam=lam):
            return _gf2fft.field_multiply(lam, v)

        def conjugated(v, lam=lam):
            return apply(gram, mul(apply(gram_inverse, v)))

        m = [column(mul, j) for j in range(64)]
        c = [column(conjugated, j) for j in range(64)]
        # c must be the transpose of m: bit i of column j of c == bit j of column i of m.
        for i in range(64):
            for j in range(0, 64, 7):
                assert (c[j] >> i) & 1 == (m[i] >> j) & 1
    assert apply(gram, apply(gram_inverse, 0x123456789ABCDEF)) == 0x123456789ABCDEF


def test_middle_product_matches_full_product():
    rng = np.random.default_rng(21)
    for n, m in ((1, 1), (31, 2), (33, 33), (4_000, 1_999), (100_003, 40_001)):
        x = rng.integers(0, 2, n, dtype=np.uint8)
        seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
        full = _gf2fft.multiply_fft(_gf2poly.pack(seed), _gf2poly.pack(x))
        expected = _gf2poly.extract_bits(full, n - 1, m)
        assert np.array_equal(_gf2fft.middle_product(x, seed, m), expected)
