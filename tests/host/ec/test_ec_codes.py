"""LDPC code construction: structure, determinism, untainted puncturing, disk cache."""

from __future__ import annotations

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
