"""Density evolution of sum-product decoding on the BSC, for designing the codes of :mod:`.codes`.

Population dynamics (Monte-Carlo density evolution): the density of variable-to-check messages
is represented by ``population`` samples; each iteration draws every check-to-variable sample
from ``d_c - 1`` variable messages (tanh rule) and every variable-to-check sample from the
channel LLR plus ``d_v - 1`` check messages, degrees drawn from the edge-perspective
distributions. The all-zero word is assumed (the BSC is symmetric, so syndrome decoding of any
word behaves the same). Degree-2 variables may be punctured (channel LLR 0), as the blind
protocol does.

The ensemble is described as the construction builds it: node counts per variable degree and
the number of checks, whose degrees are concentrated on the two integers around the mean.

Used offline to compare degree distributions. The population noise moves a threshold by about
2e-4 in crossover probability at the default size (0.0121 and 0.0123 for one ensemble with two
sample streams), about 0.01 in efficiency at 1 % QBER. Measured with it (docs/ERROR_CORRECTION.md):
the code of the 1 % QBER frames (version 4) has its threshold at efficiency 1.10-1.13.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["edge_distributions", "converges", "bsc_threshold"]


def edge_distributions(var_nodes: dict[int, int], n_checks: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge-perspective (degrees, fractions) of the variables and of the checks.

    Raises
    ------
    ValueError
        If a count is negative, a degree below 1, or there are no edges or checks.
    """
    if n_checks < 1 or any(d < 1 or c < 0 for d, c in var_nodes.items()):
        raise ValueError("need n_checks >= 1, degrees >= 1 and counts >= 0")
    degrees = np.array(sorted(d for d, c in var_nodes.items() if c > 0), dtype=np.int64)
    counts = np.array([var_nodes[d] for d in degrees], dtype=np.float64)
    edges = float(np.sum(degrees * counts))
    if edges == 0:
        raise ValueError("the ensemble has no edges")
    mean_check = edges / n_checks
    low = max(1, math.floor(mean_check))
    high_share = mean_check - low
    check_degrees = np.array([low, low + 1], dtype=np.int64)
    check_nodes = np.array([1.0 - high_share, high_share])
    check_edges = check_degrees * check_nodes
    return degrees, degrees * counts / edges, check_degrees, check_edges / check_edges.sum()


@numba.njit(cache=True)
def _draw(cumulative):
    """Index drawn from a cumulative distribution (its last entry is taken as 1)."""
    r = np.random.random()
    k = 0
    while cumulative[k] < r and k < cumulative.size - 1:
        k += 1
    return k


@numba.njit(cache=True)
def _evolve(p, var_deg, var_cum, punctured_deg2, check_deg, check_cum, population,
            iterations, seed):
    np.random.seed(seed)
    channel = math.log((1.0 - p) / p)
    v2c = np.empty(population)
    for i in range(population):
        v2c[i] = channel if np.random.random() > p else -channel
    c2v = np.empty(population)
    wrong = population
    for it in range(iterations):
        for i in range(population):
            product = 1.0
            for _ in range(check_deg[_draw(check_cum)] - 1):
                x = v2c[np.random.randint(population)]
                product *= math.tanh(0.5 * max(-40.0, min(40.0, x)))
            product = max(-0.999999999999, min(0.999999999999, product))
            c2v[i] = 2.0 * math.atanh(product)
        wrong = 0
        for i in range(population):
            degree = var_deg[_draw(var_cum)]
            if degree == 2 and np.random.random() < punctured_deg2:
                value = 0.0
            else:
                value = channel if np.random.random() > p else -channel
            for _ in range(degree - 1):
                value += c2v[np.random.randint(population)]
            v2c[i] = value
            if value < 0.0 or (value == 0.0 and np.random.random() < 0.5):
                wrong += 1
        if wrong == 0:
            return it + 1, 0.0
    return iterations, wrong / population


def converges(p: float, var_nodes: dict[int, int], n_checks: int, *,
              punctured_deg2: float = 0.0, population: int = 30_000,
              iterations: int = 300, seed: int = 1) -> tuple[bool, int, float]:
    """Whether decoding converges at crossover probability ``p``.

    ``punctured_deg2`` is the fraction of degree-2 variables that are punctured. Returns
    (converged: no wrong sample left, iterations run, fraction of wrong samples at the end).
    """
    if not 0.0 < p < 0.5 or not 0.0 <= punctured_deg2 <= 1.0:
        raise ValueError(f"need 0 < p < 0.5 and 0 <= punctured_deg2 <= 1, got {p}, "
                         f"{punctured_deg2}")
    if population < 100 or iterations < 1:
        raise ValueError(f"need population >= 100 and iterations >= 1, got {population}, "
                         f"{iterations}")
    degrees, lam, check_degrees, rho = edge_distributions(var_nodes, n_checks)
    its, wrong = _evolve(p, degrees, np.cumsum(lam), punctured_deg2, check_degrees,
                         np.cumsum(rho), population, iterations, seed)
    return wrong == 0.0, int(its), float(wrong)


def bsc_threshold(var_nodes: dict[int, int], n_checks: int, low: float, high: float, *,
                  steps: int = 8, **options) -> float:
    """Largest crossover probability in ``[low, high]`` at which decoding converges (bisection).

    ``options`` go to :func:`converges`. ``low`` is taken to converge and ``high`` not to;
    neither end is evaluated, so if every midpoint fails the result is ``low`` itself.
    """
    if not 0.0 < low < high < 0.5:
        raise ValueError(f"need 0 < low < high < 0.5, got {low}, {high}")
    for _ in range(steps):
        middle = 0.5 * (low + high)
        if converges(middle, var_nodes, n_checks, **options)[0]:
            low = middle
        else:
            high = middle
    return low
