"""Alice's states: counter-based generator, file and stream modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tbqkd.sim.twin import Scenario, ScenarioError, State, Twin
from tbqkd.sim.twin.alice import CounterAlice, FileAlice, StreamAlice, counter_uniform


def test_counter_states_are_random_access():
    params = Scenario.load("paper-120km").alice
    alice = CounterAlice(params, seed=42)
    slots = np.arange(200_000, dtype=np.int64) * 7919 + 10 ** 12
    forward = alice.states(slots)
    shuffled = np.random.default_rng(0).permutation(slots.size)
    assert np.array_equal(alice.states(slots[shuffled]), forward[shuffled])
    assert np.array_equal(alice.states(slots[:10]), forward[:10])
    counts = np.bincount(forward, minlength=4) / slots.size
    sd = np.sqrt(0.25 / slots.size)
    assert np.all(np.abs(counts - np.array(params.state_probabilities())) < 5 * sd)
    assert not np.array_equal(CounterAlice(params, seed=43).states(slots[:100]), forward[:100])


def test_counter_uniform_is_uniform_and_uncorrelated():
    u = counter_uniform(12345, np.arange(200_000))
    assert u.min() >= 0 and u.max() < 1
    assert u.mean() == pytest.approx(0.5, abs=5 * np.sqrt(1 / 12 / u.size))
    lag1 = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(lag1) < 5 / np.sqrt(u.size)


def test_four_state_protocol_uses_minus():
    params = Scenario.load("paper-120km", protocol="four-state", p_early=0.25, p_late=0.25,
                           p_plus=0.25, p_minus=0.25).alice
    states = CounterAlice(params, 1).states(np.arange(100_000))
    assert set(np.unique(states)) == {0, 1, 2, 3}


def test_file_mode_states_and_uniform(tmp_path):
    scenario = Scenario.load("paper-120km", distance_km=10)
    codes = np.random.default_rng(1).integers(0, 3, size=round(0.002 * 75.947e6),
                                              dtype=np.uint8)
    path = tmp_path / "alice.bin"
    codes.tofile(path)
    alice = FileAlice(scenario.alice, path, "states-u8")
    assert len(alice) == codes.size
    twin = Twin(scenario, seed=3, alice=alice)
    events = [c for c in twin.chunks(0.002, 0.001)]
    slot = np.concatenate([c.slot for c in events])
    state = np.concatenate([c.alice_state for c in events])
    photon = (slot >= 0) & (state >= 0)
    assert photon.sum() > 1000
    assert np.array_equal(state[photon], codes[slot[photon]])
    with pytest.raises(ScenarioError, match="holds"):
        alice.states(np.array([codes.size]))
    # uniform-u16: u / 65536 compared with the cumulative probabilities (0.4, 0.8).
    raw = np.array([0, 26213, 26215, 52428, 52430, 65535], dtype="<u2")
    raw.tofile(tmp_path / "u16.bin")
    states = FileAlice(scenario.alice, tmp_path / "u16.bin", "uniform-u16").states(
        np.arange(6))
    assert states.tolist() == [State.EARLY, State.EARLY, State.LATE, State.LATE, State.PLUS,
                               State.PLUS]


def test_bad_file_contents_are_reported(tmp_path):
    params = Scenario.load("paper-120km").alice
    np.array([0, 1, 3], dtype=np.uint8).tofile(tmp_path / "bad.bin")
    with pytest.raises(ScenarioError, match="outside 0..2"):
        FileAlice(params, tmp_path / "bad.bin").states(np.arange(3))
    with pytest.raises(ScenarioError, match="unknown Alice file format"):
        FileAlice(params, tmp_path / "bad.bin", "bits")


def test_stream_mode_reads_forward():
    params = Scenario.load("paper-120km").alice
    codes = np.random.default_rng(2).integers(0, 3, size=1000, dtype=np.uint8)
    alice = StreamAlice(params, io.BytesIO(codes.tobytes()))
    assert np.array_equal(alice.states(np.array([3, 7]), 0, 500), codes[[3, 7]])
    assert np.array_equal(alice.states(np.array([500, 999]), 500, 1000), codes[[500, 999]])
    with pytest.raises(ScenarioError, match="asked from"):
        alice.states(np.array([0]), 0, 10)
    short = StreamAlice(params, io.BytesIO(codes[:10].tobytes()))
    with pytest.raises(ScenarioError, match="ended at slot 10"):
        short.states(np.array([1]), 0, 20)
