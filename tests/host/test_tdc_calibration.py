"""Code-density calibration."""

import numpy as np
import pytest
from tbqkd.host.tdc_calibration import CalibrationError, code_density


def test_uniform_codes_give_equal_bins():
    codes = np.repeat(np.arange(8), 1000)
    cal = code_density(codes, 8, 4000.0)
    assert np.allclose(cal.width_ps, 500) and np.allclose(cal.fine_ps, 250 + 500 * np.arange(8))
    assert cal.quantisation_rms_ps == pytest.approx(500 / np.sqrt(12))


def test_unequal_bins_recovered_statistically():
    rng = np.random.default_rng(5)
    edges = np.cumsum(rng.uniform(5, 40, 200))
    edges = edges[edges < 4000]
    t = rng.uniform(0, 4000, 200_000)
    codes = np.searchsorted(edges, t)
    cal = code_density(codes, len(edges) + 1, 4000.0)
    true_centres = (np.concatenate([[0], edges]) + np.concatenate([edges, [4000]])) / 2
    assert np.max(np.abs(cal.fine_ps - true_centres)) < 12      # ~3 sigma of the sampling


def test_bad_input():
    with pytest.raises(CalibrationError):
        code_density(np.zeros(10, int), 8, 4000.0)
    with pytest.raises(CalibrationError):
        code_density(np.full(5000, 9), 8, 4000.0)
