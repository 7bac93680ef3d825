"""A small, fast random generator for the numba kernels: SplitMix64 with an explicit state.

numba's ``np.random`` costs tens of ns per draw on the target machines; SplitMix64 (Steele,
Lea, Flood, OOPSLA 2014; the seeding generator of xoshiro) is a few ns and passes BigCrush. The
state is a one-element uint64 array owned by the caller, so kernels are reproducible from a
seed and independent of any global state. Gaussians use the Marsaglia polar method.

The hot kernels use SplitMix64 as a counter-based generator instead: draw ``k`` is
``mix64(key + k * GOLDEN)``, so a block of draws is a loop without a carried dependency (it
vectorises), split into two 32-bit uniforms by :func:`high_unit` and :func:`low_unit`, and fed
to branch-free tabulated bodies (:func:`exponential_body`, :func:`normal_body`) whose rare tails
are drawn exactly from a small sequential state (:func:`exponential_tail`,
:func:`normal_tail`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import ndtri

__all__ = ["new_state", "new_cache", "next_u64", "mix64", "unit", "high_unit", "low_unit",
           "uniform", "exponential", "exponential_of", "fast_exponential",
           "exponential_body", "exponential_tail", "normal", "normal_of", "normal_body",
           "normal_tail", "is_normal_tail", "fast_normal", "fast_cos", "GOLDEN", "EXP_TAIL_U"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: SplitMix64 counter increment (a kernel may keep the counter in a local variable).
GOLDEN = _GOLDEN
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_TO_UNIT32 = 1.0 / 4294967296.0      # 2**-32


@numba.njit(cache=True)
def new_state(seed):
    """Generator state for ``seed`` (a non-negative int64; a one-element uint64 array)."""
    state = np.empty(1, np.uint64)
    state[0] = np.uint64(seed)
    return state


@numba.njit(inline="always", cache=True)
def next_u64(state):
    """Next 64 random bits."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(inline="always", cache=True)
def mix64(z):
    """SplitMix64 output function of the counter ``z`` (uint64)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(inline="always", cache=True)
def unit(bits):
    """Uniform float64 in [0, 1) from 64 random bits."""
    return np.float64(bits >> _S11) * _TO_UNIT


@numba.njit(inline="always", cache=True)
def high_unit(bits):
    """Uniform float64 in [0, 1) on a 2**-32 grid from the high 32 of 64 random bits.

    With :func:`low_unit`, one 64-bit draw gives two independent uniforms. 2**-32 resolution is
    ample wherever a uniform is compared with a probability or feeds a tabulated body whose
    tails are drawn exactly (:func:`exponential_tail`, :func:`normal_tail`).
    """
    return np.float64(bits >> _S32) * _TO_UNIT32


@numba.njit(inline="always", cache=True)
def low_unit(bits):
    """Uniform float64 in [0, 1) on a 2**-32 grid from the low 32 of 64 random bits."""
    return np.float64(bits & _LOW32) * _TO_UNIT32


@numba.njit(inline="always", cache=True)
def uniform(state):
    """Uniform float64 in [0, 1)."""
    return np.float64(next_u64(state) >> _S11) * _TO_UNIT


@numba.njit(inline="always", cache=True)
def exponential(state, mean):
    """Exponential variate of the given mean."""
    return -mean * math.log(1.0 - uniform(state))


@numba.njit(cache=True)
def normal(state, cache):
    """Standard normal variate (Marsaglia polar method; the pair's second value is kept in
    ``cache``, a two-element float64 array ``[has_value, value]``)."""
    if cache[0] != 0.0:
        cache[0] = 0.0
        return cache[1]
    while True:
        x = 2.0 * uniform(state) - 1.0
        y = 2.0 * uniform(state) - 1.0
        s = x * x + y * y
        if 0.0 < s < 1.0:
            factor = math.sqrt(-2.0 * math.log(s) / s)
            cache[0] = 1.0
            cache[1] = y * factor
            return x * factor


@numba.njit(cache=True)
def new_cache():
    """An empty Gaussian cache for :func:`normal`."""
    return np.zeros(2, np.float64)


# Exponential variates by table: -log(1 - u) is tabulated on 4096 equal steps of u below
# 1 - 2**-8 and interpolated linearly (error below 3e-4 of the mean, i.e. < 1 ps for a 1 ns
# lifetime); the remaining 1/256 of the mass is computed exactly, so the tail is exact.
_EXP_STEPS = 4096
_EXP_U_MAX = 1.0 - 2.0 ** -8
_EXP_TABLE = -np.log1p(-np.linspace(0.0, _EXP_U_MAX, _EXP_STEPS + 1))
_EXP_SCALE = _EXP_STEPS / _EXP_U_MAX


@numba.njit(inline="always", cache=True)
def exponential_of(u, mean):
    """Exponential variate of the given mean from the uniform ``u`` (tabulated body, exact
    tail)."""
    if u >= _EXP_U_MAX:
        return -mean * math.log(1.0 - u)
    position = u * _EXP_SCALE
    i = int(position)
    w = position - i
    return mean * (_EXP_TABLE[i] * (1.0 - w) + _EXP_TABLE[i + 1] * w)


_EXP_TAIL_START = float(_EXP_TABLE[-1])  # -log(2**-8) = 8 log 2


#: Uniforms at or above this value take the exact exponential tail (:func:`exponential_tail`).
EXP_TAIL_U = _EXP_U_MAX


@numba.njit(inline="always", cache=True)
def exponential_body(u):
    """Tabulated ``-log(1 - u)`` for ``u < EXP_TAIL_U``, branch-free so that loops over blocks
    vectorise; larger ``u`` give the table's last value and must be replaced by
    :func:`exponential_tail`."""
    position = min(u * _EXP_SCALE, _EXP_STEPS - 1e-9)
    i = int(position)
    w = position - i
    return _EXP_TABLE[i] * (1.0 - w) + _EXP_TABLE[i + 1] * w


@numba.njit(inline="always", cache=True)
def exponential_tail(state):
    """A unit-mean exponential conditioned on exceeding ``-log(1 - EXP_TAIL_U)`` (exact)."""
    return _EXP_TAIL_START - math.log(1.0 - uniform(state))


@numba.njit(inline="always", cache=True)
def fast_exponential(state, mean):
    """Exponential variate of the given mean (tabulated body, exact tail)."""
    return exponential_of(uniform(state), mean)


# Normal variates by table: the inverse CDF is tabulated on 4096 equal steps of u in
# [2**-8, 1 - 2**-8] (|x| < 2.66) and interpolated linearly (error below 1e-4); the two tails
# (1/128 of the mass) are drawn exactly with Marsaglia's tail method for |x| > 2.66.
_NORMAL_U_LOW = 2.0 ** -8
_NORMAL_STEPS = 4096
_NORMAL_TABLE = ndtri(np.linspace(_NORMAL_U_LOW, 1.0 - _NORMAL_U_LOW, _NORMAL_STEPS + 1))
_NORMAL_EDGE = float(-_NORMAL_TABLE[0])
_NORMAL_SCALE = _NORMAL_STEPS / (1.0 - 2.0 * _NORMAL_U_LOW)


@numba.njit(inline="always", cache=True)
def normal_of(u, state):
    """Standard normal variate from the uniform ``u`` (tabulated body); the exact tails
    (probability 1/128) draw further uniforms from ``state``."""
    if _NORMAL_U_LOW <= u < 1.0 - _NORMAL_U_LOW:
        position = (u - _NORMAL_U_LOW) * _NORMAL_SCALE
        i = int(position)
        if i >= _NORMAL_STEPS:
            i = _NORMAL_STEPS - 1
        w = position - i
        return _NORMAL_TABLE[i] * (1.0 - w) + _NORMAL_TABLE[i + 1] * w
    return _normal_tail(state, u >= 0.5)


@numba.njit(inline="always", cache=True)
def normal_body(u):
    """Tabulated inverse normal CDF of ``u``, branch-free so that loops over blocks vectorise;
    valid unless :func:`is_normal_tail` (then draw :func:`normal_tail` instead)."""
    position = min(max((u - _NORMAL_U_LOW) * _NORMAL_SCALE, 0.0), _NORMAL_STEPS - 1e-9)
    i = int(position)
    w = position - i
    return _NORMAL_TABLE[i] * (1.0 - w) + _NORMAL_TABLE[i + 1] * w


@numba.njit(inline="always", cache=True)
def is_normal_tail(u):
    """Whether the uniform ``u`` falls in the normal tails (probability 1/128)."""
    return not (_NORMAL_U_LOW <= u < 1.0 - _NORMAL_U_LOW)


@numba.njit(cache=True)
def normal_tail(state, positive):
    """A standard normal conditioned on ``|x| > 2.66`` with the given sign (exact)."""
    return _normal_tail(state, positive)


@numba.njit(cache=True)
def _normal_tail(state, positive):
    while True:  # tail beyond the edge (Marsaglia 1964)
        x = -math.log(1.0 - uniform(state)) / _NORMAL_EDGE
        y = -math.log(1.0 - uniform(state))
        if 2.0 * y > x * x:
            return _NORMAL_EDGE + x if positive else -_NORMAL_EDGE - x


@numba.njit(inline="always", cache=True)
def fast_normal(state):
    """Standard normal variate (tabulated body, exact tails)."""
    return normal_of(uniform(state), state)


# Cosine by table: 4096 equal steps of the period, interpolated linearly (error below 3e-7);
# libm's cos costs tens of ns per call on the target machines.
_COS_STEPS = 4096
_COS_TABLE = np.cos(np.linspace(0.0, 2.0 * math.pi, _COS_STEPS + 1))
_COS_SCALE = _COS_STEPS / (2.0 * math.pi)


@numba.njit(inline="always", cache=True)
def fast_cos(x):
    """``cos(x)`` for any finite ``x``, within 3e-7 (tabulated, interpolated linearly)."""
    position = x * _COS_SCALE
    position -= math.floor(position / _COS_STEPS) * _COS_STEPS
    i = int(position)
    if i >= _COS_STEPS:
        i = _COS_STEPS - 1
    w = position - i
    return _COS_TABLE[i] * (1.0 - w) + _COS_TABLE[i + 1] * w
