"""Density evolution: the (3, 6) ensemble's BSC threshold, edge distributions, bad input."""

import numpy as np
import pytest
from tbqkd.host.ec.density_evolution import bsc_threshold, converges, edge_distributions

#: Belief-propagation threshold of the regular (3, 6) ensemble on the BSC, about 0.084
#: (Richardson and Urbanke, Modern Coding Theory, 2008, chapter 4).
_THRESHOLD_3_6 = 0.084


def test_edge_distributions_of_a_mixed_ensemble():
    degrees, lam, check_degrees, rho = edge_distributions({2: 100, 3: 200, 12: 50}, 100)
    # 200 + 600 + 600 edges over 100 checks: mean check degree 14, all checks of degree 14/15
    np.testing.assert_array_equal(degrees, [2, 3, 12])
    np.testing.assert_allclose(lam, [200 / 1400, 600 / 1400, 600 / 1400])
    np.testing.assert_array_equal(check_degrees, [14, 15])
    np.testing.assert_allclose(rho, [1.0, 0.0])
    _, _, check_degrees, rho = edge_distributions({3: 10}, 4)   # mean 7.5
    np.testing.assert_array_equal(check_degrees, [7, 8])
    np.testing.assert_allclose(rho, [3.5 / 7.5, 4 / 7.5])


def test_regular_3_6_threshold():
    ensemble = {3: 1000}
    assert converges(0.075, ensemble, 500, population=20_000)[0]
    ok, iterations, wrong = converges(0.095, ensemble, 500, population=20_000)
    assert not ok and iterations == 300 and wrong > 0.01
    threshold = bsc_threshold(ensemble, 500, 0.07, 0.10, steps=6, population=20_000)
    assert abs(threshold - _THRESHOLD_3_6) < 0.003


def test_puncturing_raises_the_noise_sensitivity():
    ensemble = {2: 300, 3: 500, 8: 200}
    p = 0.9 * bsc_threshold(ensemble, 500, 0.01, 0.2, steps=6, population=10_000)
    assert converges(p, ensemble, 500, population=10_000)[0]
    assert not converges(p, ensemble, 500, punctured_deg2=1.0, population=10_000)[0]


@pytest.mark.parametrize("call", [
    lambda: edge_distributions({3: 10}, 0),
    lambda: edge_distributions({0: 10}, 5),
    lambda: edge_distributions({3: 0}, 5),
    lambda: converges(0.6, {3: 10}, 5),
    lambda: converges(0.1, {3: 10}, 5, punctured_deg2=1.5),
    lambda: converges(0.1, {3: 10}, 5, population=10),
    lambda: converges(0.1, {3: 10}, 5, iterations=0),
    lambda: bsc_threshold({3: 10}, 5, 0.2, 0.1),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
