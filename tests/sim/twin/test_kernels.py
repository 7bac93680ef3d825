"""The fast kernels: dead time against a plain reference, counter-based routing, exact tails."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from tbqkd.sim.twin import Scenario, Twin
from tbqkd.sim.twin.alice import CounterAlice
from tbqkd.sim.twin.bob import route_photons
from tbqkd.sim.twin.detectors import NO_TIME, DeadTimeState, apply_dead_time
from tbqkd.sim.twin.rng import (
    EXP_TAIL_U,
    exponential_body,
    exponential_tail,
    is_normal_tail,
    new_state,
    normal_body,
    normal_tail,
    uniform,
)
from tbqkd.sim.twin.source import PulseStatistics, draw_pulses


def _reference_dead_time(times, channels, dead_ps, last):
    """Non-paralysable dead time per channel, written plainly."""
    kept, lost = [], np.zeros(last.size, np.int64)
    for index in np.argsort(times, kind="stable"):
        c, t = channels[index], times[index]
        if last[c] != NO_TIME and t - last[c] < dead_ps[c]:
            lost[c] += 1
        else:
            kept.append(index)
            last[c] = t
    return np.array(kept, np.int64), lost


def test_dead_time_matches_a_plain_reference_across_windows():
    rng = np.random.default_rng(4)
    dead_ps = np.array([0, 40_000, 40_000, 25_000], np.int64)
    state = DeadTimeState(4)
    last = np.full(4, NO_TIME, np.int64)
    start = 0
    for _ in range(3):  # consecutive windows: the state carries over
        times = start + rng.integers(0, 2_000_000, 400)
        channels = rng.integers(0, 4, 400).astype(np.uint8)
        source, out_times, out_channels, lost = apply_dead_time(
            1, times, channels, dead_ps, np.zeros(4), np.ones(4), state, start + 2_000_000,
            order=np.argsort(times, kind="stable"))
        kept, expected_lost = _reference_dead_time(times, channels, dead_ps, last)
        assert np.array_equal(source, kept)
        assert np.array_equal(out_times, times[kept])
        assert np.array_equal(out_channels, channels[kept])
        assert np.array_equal(lost, expected_lost)
        assert lost[1:].sum() > 0 and lost[0] == 0  # the test exercises the dead time
        start += 2_000_000


def test_dead_time_with_afterpulsing_keeps_dead_time_and_counts_everything():
    rng = np.random.default_rng(5)
    times = np.sort(rng.integers(0, 5_000_000, 500))
    channels = rng.integers(1, 4, 500).astype(np.uint8)
    dead_ps = np.array([0, 30_000, 30_000, 30_000], np.int64)
    state = DeadTimeState(4)
    source, out_times, out_channels, lost = apply_dead_time(
        2, times, channels, dead_ps, np.array([0.0, 0.3, 0.3, 0.3]), np.full(4, 5_000.0), state,
        5_000_000)
    afterpulses = source < 0
    assert afterpulses.sum() > 20
    assert np.all(np.diff(out_times) >= 0)
    for c in (1, 2, 3):
        assert np.diff(out_times[out_channels == c]).min() >= 30_000
    # Every input event is registered once or counted as lost (lost afterpulses count too).
    registered = source[~afterpulses]
    assert np.unique(registered).size == registered.size
    assert registered.size < times.size <= registered.size + lost.sum()


def _route_all(twin: Twin, slots: np.ndarray, seed: int):
    sc = twin.scenario
    first_int, par, grid = twin._route_parameters(0, int(slots.max()) + 1)
    states = np.empty(slots.size, np.int8)
    empty = np.empty(0, np.int8)
    out = route_photons(seed, slots, states, empty, empty, 0, first_int, par,
                        twin.budget.keep_ratio, np.asarray(sc.detectors.delay_ps, np.float64),
                        grid, (twin._alice.key, twin._alice.edges))
    return (*out, states)


def test_routing_is_counter_based_per_photon():
    """Photon i's outcome depends on the seed and i only: routing a prefix gives its prefix,
    across block boundaries; Alice's states are the counter generator's."""
    scenario = Scenario.load("paper-120km", distance_km=0,
                             detectors__efficiency=[0.6, 0.74, 0.7])
    twin = Twin(scenario, seed=3)
    slots, _ = draw_pulses(9, 0, 200_000, PulseStatistics(0.05, 0.0, 0.0))
    full = _route_all(twin, slots, 17)
    for size in (1, 511, 513, 1500):
        part = _route_all(twin, slots[:size], 17)
        for whole, prefix in zip(full, part, strict=True):
            assert np.array_equal(whole[:size], prefix)
    assert np.array_equal(full[4], CounterAlice(scenario.alice, 3).states(slots))
    times, channels, peaks, kept, _ = full
    # Thinned to each detector's efficiency (Z half the photons, X+ and X- about a quarter).
    assert kept.mean() == pytest.approx(0.5 * 0.6 / 0.74 + 0.25 + 0.25 * 0.7 / 0.74, abs=0.03)
    assert set(np.unique(channels)) == {1, 2, 3}
    other = _route_all(twin, slots, 18)
    assert not np.array_equal(times, other[0])


@numba.njit(cache=True)
def _tabulated_variates(seed, n):
    state = new_state(seed)
    exponentials = np.empty(n)
    normals = np.empty(n)
    for i in range(n):
        u = uniform(state)
        exponentials[i] = exponential_tail(state) if u >= EXP_TAIL_U else exponential_body(u)
        u = uniform(state)
        normals[i] = normal_tail(state, u >= 0.5) if is_normal_tail(u) else normal_body(u)
    return exponentials, normals


def test_tabulated_variates_with_exact_tails():
    n = 2_000_000
    exponentials, normals = _tabulated_variates(np.uint64(21), n)
    # Exp(1): mean 1 and variance 1; the tail beyond 8 log 2 (weight 1/256) has mean 8 log 2 + 1.
    assert exponentials.mean() == pytest.approx(1.0, abs=5 / np.sqrt(n))
    assert exponentials.var() == pytest.approx(1.0, abs=5 * np.sqrt(8 / n))
    start = 8 * np.log(2)
    tail = exponentials[exponentials > start]
    assert tail.size == pytest.approx(n / 256, rel=5 / np.sqrt(n / 256))
    assert tail.mean() - start == pytest.approx(1.0, abs=5 / np.sqrt(tail.size))
    assert exponentials.max() > start + 5
    # Normal: mean 0, variance 1, the tails beyond 2.66 with their weight, and no gap there.
    assert normals.mean() == pytest.approx(0.0, abs=5 / np.sqrt(n))
    assert normals.var() == pytest.approx(1.0, abs=5 * np.sqrt(2 / n))
    beyond = np.abs(normals) > 3.0
    assert beyond.mean() == pytest.approx(0.0026998, abs=5 * np.sqrt(0.0027 / n))
    assert normals.min() < -4.5 and normals.max() > 4.5


@pytest.mark.parametrize("p_any", [1e-30, 2e-4, 0.3, 1.0])
def test_candidate_slots_are_a_bernoulli_process(p_any):
    n_slots, first = 5_000_000, 1_000
    stats = PulseStatistics(p_any, two_fraction=0.01, both_fraction=0.5)
    slots, photons = draw_pulses(8, first, n_slots, stats)
    assert np.all(np.diff(slots) >= 0)
    pulses = slots[np.diff(slots, prepend=-1) != 0]  # sorted: the distinct slots
    assert pulses.size == 0 or (pulses[0] >= first and pulses[-1] < first + n_slots)
    mean = n_slots * p_any
    assert abs(pulses.size - mean) <= 5 * np.sqrt(mean * (1 - p_any)) + 1e-9
    if pulses.size:
        pairs = slots.size - pulses.size  # both photons of a two-photon pulse
        assert abs(pairs - pulses.size * 0.005) <= 5 * np.sqrt(pulses.size * 0.005) + 1
        two = (photons == 2).sum() - pairs
        assert abs(two - pulses.size * 0.01) <= 5 * np.sqrt(pulses.size * 0.01) + 1
