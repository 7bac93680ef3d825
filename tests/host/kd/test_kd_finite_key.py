"""Every term of the finite-key formula, on its own and assembled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from tbqkd.host import finite_key as fk


def test_binary_entropy_values():
    assert fk.binary_entropy(0.0) == 0.0
    assert fk.binary_entropy(1.0) == 0.0
    assert fk.binary_entropy(0.5) == pytest.approx(1.0)
    assert fk.binary_entropy(0.11) == pytest.approx(0.4999, abs=1e-3)
    assert fk.binary_entropy(0.2) == pytest.approx(fk.binary_entropy(0.8))


def test_security_split_adds_up_to_eps_sec():
    sec = fk.SecurityParameters(eps_sec=1e-9, eps_cor=1e-15)
    total = sec.eps_pa + 2 * math.sqrt(2 * (sec.eps_pe + sec.eps_mp))
    assert total == pytest.approx(1e-9)
    with pytest.raises(ValueError):
        fk.SecurityParameters(eps_sec=0.0)


def test_serfling_deviation_formula_and_monotonicity():
    n, k, eps = 10_000, 2_000, 1e-6
    expected = math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k))
    assert fk.serfling_deviation(n, k, eps) == pytest.approx(expected)
    assert fk.serfling_deviation(n, 4 * k, eps) < fk.serfling_deviation(n, k, eps)
    assert fk.serfling_deviation(n, k, 1e-12) > fk.serfling_deviation(n, k, eps)
    with pytest.raises(ValueError):
        fk.serfling_deviation(0, k, eps)


def test_serfling_bound_holds_in_simulation():
    # Random split of a population with 5 % errors: the key rate exceeds test rate + d
    # no more often than eps.
    rng = np.random.default_rng(3)
    n, k, eps, trials = 600, 200, 0.05, 4000
    population = np.zeros(n + k, dtype=np.int64)
    population[:40] = 1
    d = fk.serfling_deviation(n, k, eps)
    failures = 0
    for _ in range(trials):
        perm = rng.permutation(population)
        failures += perm[:n].mean() >= perm[n:].mean() + d
    assert failures / trials <= eps


def test_phase_error_bound_is_rate_plus_deviation():
    bound = fk.phase_error_upper_bound(10_000, 1_000, 30, 1e-10)
    assert bound == pytest.approx(0.03 + fk.serfling_deviation(10_000, 1_000, 1e-10))
    with pytest.raises(ValueError):
        fk.phase_error_upper_bound(10, 5, 6, 1e-10)


def test_multiphoton_probability():
    source = fk.SourceParameters(g2=0.0085, mean_photon_number=0.2)
    assert fk.multiphoton_probability(source) == pytest.approx(0.0085 * 0.04 / 2)
    assert fk.multiphoton_probability(fk.SourceParameters()) == 0.0


@pytest.mark.parametrize("mean", [0.5, 10.0, 1e3, 1e6])
def test_chernoff_upper_covers_binomial_quantile(mean):
    eps = 1e-9
    trials = 10**9
    quantile = stats.binom.isf(eps, trials, mean / trials)
    assert fk.chernoff_upper(mean, eps) >= quantile
    assert fk.chernoff_upper(mean, eps) < mean + 50 * math.sqrt(mean) + 60
    assert fk.chernoff_upper(0.0, eps) == 0.0


def test_privacy_amplification_cost():
    assert fk.privacy_amplification_cost(0.5e-9) == pytest.approx(2 * math.log2(1e9))


def _key(**overrides):
    args = dict(n_z=100_000, errors_z=2_000, n_x=20_000, e_x=400, pulses=0, leak_ec_bits=25_000,
                leak_verify_bits=128, source=fk.SourceParameters(),
                security=fk.SecurityParameters(), thresholds=fk.AbortThresholds())
    args.update(overrides)
    return fk.secret_key_length(**args)


def test_key_length_assembles_the_terms():
    sec = fk.SecurityParameters()
    report = _key()
    phi = 0.02 + fk.serfling_deviation(100_000, 20_000, sec.eps_pe)
    expected = math.floor(100_000 * (1 - fk.binary_entropy(phi)) - 25_000 - 128
                          - fk.privacy_amplification_cost(sec.eps_pa))
    assert report.abort_reason is None
    assert report.key_bits == expected
    assert report.phase_error_upper == pytest.approx(phi)
    assert report.qber_z == pytest.approx(0.02)


def test_multiphoton_term_reduces_the_key_as_gllp():
    source = fk.SourceParameters(g2=0.01, mean_photon_number=0.1)
    pulses = 10**8
    sec = fk.SecurityParameters()
    report = _key(pulses=pulses, source=source)
    m_u = fk.chernoff_upper(pulses * 0.01 * 0.01 / 2, sec.eps_mp)
    assert report.multiphoton_upper == pytest.approx(m_u)
    assert report.single_photon_lower == pytest.approx(100_000 - m_u)
    assert report.phase_error_single == pytest.approx(
        report.phase_error_upper * 100_000 / (100_000 - m_u))
    assert 0 < report.key_bits < _key().key_bits


def test_abort_thresholds():
    assert "Z-basis error rate" in _key(errors_z=12_000).abort_reason
    assert "X-basis detections" in _key(n_x=50, e_x=1).abort_reason
    assert "phase-error" in _key(e_x=5_000, leak_ec_bits=0).abort_reason
    short = _key(leak_ec_bits=99_000)
    assert "finite-key length" in short.abort_reason and short.key_bits == 0


def test_asymptotic_fraction():
    assert fk.asymptotic_key_fraction(0.0, 0.0) == pytest.approx(1.0)
    # BB84 with ideal EC reaches zero near 11 %.
    assert fk.asymptotic_key_fraction(0.1100, 0.1100) == pytest.approx(0.0, abs=2e-3)
    assert fk.asymptotic_key_fraction(0.12, 0.12) == 0.0
    with_mp = fk.asymptotic_key_fraction(0.02, 0.02, multiphoton_fraction=0.1)
    assert 0 < with_mp < fk.asymptotic_key_fraction(0.02, 0.02)
