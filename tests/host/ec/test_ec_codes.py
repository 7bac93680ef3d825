"""LDPC code construction: structure, determinism, untainted puncturing, disk cache."""

from __future__ import annotations

import numba
import numpy as np
from tbqkd.host.ec import codes
from tbqkd.host.ec.codes import build_code, get_code


def check_rows(code):
    return np.repeat(np.arange(code.n_checks), np.diff(code.row_ptr))


def test_construction_is_deterministic_and_simple():
    a = build_code(6000, 1500, 7)
    b = build_code(6000, 1500, 7)
    np.testing.assert_array_equal(a.col_idx, b.col_idx)
    np.testing.assert_array_equal(a.puncture_order, b.puncture_order)
    assert not np.array_equal(a.col_idx, build_code(6000, 1500, 8).col_idx)
    edges = check_rows(a).astype(np.int64) * a.n_vars + a.col_idx
    assert np.unique(edges).size == edges.size  # no parallel edges
    var_degree = np.bincount(a.col_idx, minlength=a.n_vars)
    assert var_degree.min() >= 2
    check_degree = np.diff(a.row_ptr)
    assert check_degree.max() - check_degree.min() <= 2  # check-concentrated


def test_puncturing_is_untainted():
    code = build_code(20_000, 6000, 3)
    punctured = np.zeros(code.n_vars, dtype=bool)
    punctured[code.puncture_order] = True
    per_check = np.add.reduceat(punctured[code.col_idx].astype(int), code.row_ptr[:-1])
    assert per_check.max() == 1
    assert code.puncture_order.size > code.n_checks // 3


def test_syndrome_is_linear():
    code = build_code(3000, 900, 1)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 2, (2, code.n_vars), dtype=np.uint8)
    np.testing.assert_array_equal(code.syndrome(x ^ y), code.syndrome(x) ^ code.syndrome(y))


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("TBQKD_LDPC_CACHE", str(tmp_path))
    monkeypatch.setattr(codes, "_MEMORY", {})
    first = get_code(4000, 1000, 11)
    files = list(tmp_path.glob("v*_4000_1000_11.npz"))
    assert len(files) == 1
    monkeypatch.setattr(codes, "_MEMORY", {})
    second = get_code(4000, 1000, 11)
    np.testing.assert_array_equal(first.col_idx, second.col_idx)
    np.testing.assert_array_equal(first.puncture_order, second.puncture_order)


def test_construction_realises_the_degree_distribution():
    # Rate 0.6: an optimised table entry with five degrees (2, 3, 8, 10, 30).
    n_vars, n_checks = 20_000, 8_000
    degrees, lam = codes.degree_distribution(1 - n_checks / n_vars)
    assert degrees.size == 5 and abs(lam.sum() - 1) < 1e-12
    code = build_code(n_vars, n_checks, 5)
    var_degree = np.bincount(code.col_idx, minlength=code.n_vars)
    edges = var_degree.sum()
    for degree, fraction in zip(degrees, lam, strict=True):
        realised = var_degree[var_degree == degree].sum() / edges
        assert abs(realised - fraction) < 0.01, (degree, realised, fraction)


def test_high_rates_use_the_stability_limited_family():
    degrees, lam = codes.degree_distribution(0.9)
    assert list(degrees) == [2, 3, 12]
    assert abs(lam.sum() - 1) < 1e-12 and 0 < lam[0] < 0.3
    low_degrees, _ = codes.degree_distribution(0.5)
    assert low_degrees.max() == 30


def test_every_variable_gets_a_degree_and_the_chain_fits():
    for n_vars, n_checks in ((20_000, 8_000), (100_000, 9_000), (10_040, 30), (5_000, 4_000)):
        degrees, chain = codes._variable_degrees(n_vars, n_checks)
        assert degrees.size == n_vars
        assert chain <= n_checks - 1 and np.all(degrees[:chain] == 2)
        assert degrees.min() >= 2 and degrees.max() <= max(2, n_checks)


@numba.njit(cache=True)
def _on_low_ace_cycle(row_ptr, col_idx, var_ptr, var_checks, degree, u):
    """Whether variable ``u`` (degree 3) lies on a cycle through at most four variables whose
    ACE (sum of degree - 2 over the cycle's variables) is below 3: explicit nested paths
    u - a - w1 - y1 - w2 - y2 - w3 - y3, closing when a ``y`` is another check of ``u``."""
    own = var_checks[var_ptr[u]:var_ptr[u + 1]]
    for a in own:
        for t1 in range(row_ptr[a], row_ptr[a + 1]):
            w1 = col_idx[t1]
            ace1 = 1 + degree[w1] - 2
            if w1 == u or ace1 > 2:
                continue
            for y1 in var_checks[var_ptr[w1]:var_ptr[w1 + 1]]:
                if y1 == a:
                    continue
                if y1 in own:
                    return True
                for t2 in range(row_ptr[y1], row_ptr[y1 + 1]):
                    w2 = col_idx[t2]
                    ace2 = ace1 + degree[w2] - 2
                    if w2 == u or w2 == w1 or ace2 > 2:  # noqa: SIM109 (numba)
                        continue
                    for y2 in var_checks[var_ptr[w2]:var_ptr[w2 + 1]]:
                        if y2 == y1:
                            continue
                        if y2 in own and y2 != a:
                            return True
                        for t3 in range(row_ptr[y2], row_ptr[y2 + 1]):
                            w3 = col_idx[t3]
                            if (w3 == u or w3 == w1 or w3 == w2  # noqa: SIM109 (numba)
                                    or ace2 + degree[w3] - 2 > 2):
                                continue
                            for y3 in var_checks[var_ptr[w3]:var_ptr[w3 + 1]]:
                                if y3 != y2 and y3 != a and y3 in own:
                                    return True
    return False


def low_ace_share(code) -> float:
    """Share of the degree-3 variables that lie on a cycle of at most four variables with
    ACE below 3 (independent of the construction's search)."""
    order = np.argsort(code.col_idx, kind="stable")
    degree = np.bincount(code.col_idx, minlength=code.n_vars)
    var_ptr = np.concatenate([[0], np.cumsum(degree)])
    var_checks = check_rows(code)[order]
    threes = np.flatnonzero(degree == 3)
    hits = sum(_on_low_ace_cycle(code.row_ptr, code.col_idx, var_ptr, var_checks, degree, u)
               for u in threes)
    return hits / threes.size


def test_high_rate_codes_avoid_low_ace_cycles(monkeypatch):
    # Rate 0.9, the 1 % QBER shape at a tenth of the size. The failure this guards against
    # (a 1 % frame decoded to a wrong codeword of weight 6: two degree-3 variables and two
    # pairs of chain variables) lives on such cycles.
    conditioned = build_code(10_226, 1_066, 1)
    assert low_ace_share(conditioned) < 0.01
    monkeypatch.setattr(codes, "_ACE", (0, 0))
    assert low_ace_share(build_code(10_226, 1_066, 1)) > 0.5


def test_low_rate_codes_are_not_ace_conditioned(monkeypatch):
    plain = build_code(6000, 3000, 7)  # rate 0.5
    monkeypatch.setattr(codes, "_ACE", (3, 3))
    np.testing.assert_array_equal(plain.col_idx, build_code(6000, 3000, 7).col_idx)
