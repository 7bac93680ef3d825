"""The event stream: order, chunking, reproducibility, detector effects, the closed loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tbqkd.sim.twin import Channel, Scenario, State, Twin
from tbqkd.sim.twin.alice import CounterAlice
from twin_helpers import run, sifted


@pytest.fixture(scope="module")
def short_link():
    return Scenario.load("paper-120km", distance_km=20, dark_count_hz=[5e4, 5e4, 5e4])


def test_chunks_are_contiguous_and_time_ordered(short_link):
    twin, chunks, events = run(short_link, 0.05, 1, chunk_s=0.01)
    assert len(chunks) == 5
    assert chunks[0].start_ps == 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.end_ps == after.start_ps
        assert before.end_slot == after.first_slot
    for chunk in chunks:
        if len(chunk):
            assert chunk.time_ps.min() >= chunk.start_ps and chunk.time_ps.max() < chunk.end_ps
    assert np.all(np.diff(events["time_ps"]) >= 0)
    assert events["time_ps"].dtype == np.int64 and events["channel"].dtype == np.uint8


def test_same_seed_same_events_other_seed_other_events(short_link):
    _, _, a = run(short_link, 0.01, 7, chunk_s=0.005)
    _, _, b = run(short_link, 0.01, 7, chunk_s=0.005)
    _, _, c = run(short_link, 0.01, 8, chunk_s=0.005)
    for name in a:
        assert np.array_equal(a[name], b[name])
    assert a["time_ps"].size != c["time_ps"].size or not np.array_equal(a["time_ps"],
                                                                          c["time_ps"])


def test_alice_states_do_not_depend_on_chunking(short_link):
    """The truth state of a slot is the counter generator's, whatever the chunk size."""
    for chunk_s in (0.002, 0.01):
        _, _, events = run(short_link, 0.01, 3, chunk_s=chunk_s)
        photon = events["slot"] >= 0
        photon &= events["channel"] != Channel.REF
        slots = events["slot"][photon]
        assert np.array_equal(events["alice_state"][photon],
                              CounterAlice(short_link.alice, 3).states(slots))


def test_truth_flags_are_consistent(short_link):
    _, _, events = run(short_link, 0.02, 2, chunk_s=0.01)
    dark = events["is_dark"]
    assert dark.any()
    assert (events["slot"][dark] == -1).all() and (events["alice_state"][dark] == -1).all()
    assert (events["channel"][dark] != Channel.REF).all()
    photon = (events["slot"] >= 0) & (events["channel"] != Channel.REF)
    assert set(np.unique(events["photons_in_pulse"][photon])) <= {1, 2}
    assert set(np.unique(events["alice_state"][photon])) == {0, 1, 2}


def test_afterpulses_follow_dead_time():
    scenario = Scenario.load("paper-120km", distance_km=20, afterpulse_probability=0.2,
                             afterpulse_delay_ps=5000.0, detectors__dead_time_ps=30_000.0)
    twin, chunks, events = run(scenario, 0.01, 9, chunk_s=0.002)
    ap = events["is_afterpulse"]
    assert ap.any()
    for channel in (1, 2, 3):
        mask = events["channel"] == channel
        times = events["time_ps"][mask]
        assert np.diff(times).min() >= 30_000
        # Each afterpulse comes after the previous registered click of its detector by the dead
        # time plus an exponential delay of mean 5 ns (a later click can make it be lost).
        gaps = np.diff(times)[ap[mask][1:]] - 30_000
        assert gaps.mean() == pytest.approx(5000, rel=0.1)
    share = ap.sum() / (events["channel"] != Channel.REF).sum()
    assert 0.1 < share < 0.2


def test_blinking_removes_the_off_periods():
    on_s, off_s = 2e-4, 2e-4
    scenario = Scenario.load("paper-120km", distance_km=20, blinking=True,
                             blink_on_mean_s=on_s, blink_off_mean_s=off_s,
                             dark_count_hz=[0, 0, 0])
    _, _, blinking = run(scenario, 0.05, 4, chunk_s=0.01)
    _, _, steady = run(scenario.with_overrides(blinking=False), 0.05, 4, chunk_s=0.01)
    count = (blinking["channel"] != Channel.REF).sum()
    assert count / (steady["channel"] != Channel.REF).sum() == pytest.approx(0.5, abs=0.08)
    # Gaps: long silent periods appear (off periods ~0.2 ms vs ~ns between clicks).
    times = blinking["time_ps"][blinking["channel"] != Channel.REF]
    assert np.diff(times).max() > 5e8


def test_actuator_sets_the_interferometer_phase():
    """Code for pi: |+> leaves by X- with probability (1 + V)/2; applied from the next chunk."""
    scenario = Scenario.load("paper-120km", distance_km=20, random_walk_rad_per_sqrt_s=0,
                             sine_amplitude_rad=0, dark_count_hz=[0, 0, 0],
                             detectors__dead_time_ps=0)
    pi_code = round(math.pi / scenario.actuator.range_rad * (2 ** 16 - 1))
    twin = Twin(scenario, seed=5)
    fractions = []
    for chunk in twin.chunks(0.04, 0.01):
        middle = ((chunk.alice_state == State.PLUS) & (chunk.peak == 1)
                  & (chunk.channel >= Channel.X_PLUS))
        fractions.append((chunk.channel[middle] == Channel.X_PLUS).mean())
        assert chunk.actuator_code == twin.actuator_code
        if chunk.index == 1:
            twin.set_actuator(pi_code)
    v = scenario.bob.visibility
    assert fractions[0] == pytest.approx((1 + v) / 2, abs=0.02)
    assert fractions[1] == pytest.approx((1 + v) / 2, abs=0.02)
    assert fractions[2] == pytest.approx((1 - v) / 2, abs=0.02)
    assert twin.expected(phase_rad=math.pi).e_x > 0.85
    with pytest.raises(ValueError, match="outside"):
        twin.set_actuator(2 ** 16)


def test_closed_loop_feedback_tracks_the_drift():
    """A simple host-style loop (dither the code, keep the side with fewer X errors) holds the
    X error near its locked value while the drift alone would wash the interference out."""
    scenario = Scenario.load("paper-120km", distance_km=20, random_walk_rad_per_sqrt_s=1.0,
                             sine_amplitude_rad=0, dark_count_hz=[0, 0, 0],
                             detectors__dead_time_ps=0)
    gain = scenario.actuator.range_rad / (2 ** 16 - 1)
    step = round(0.15 / gain)

    def x_error(chunk):
        middle = (chunk.alice_state == State.PLUS) & (chunk.peak == 1)
        middle &= chunk.channel >= Channel.X_PLUS
        return (chunk.channel[middle] == Channel.X_MINUS).mean()

    def run_loop(feedback: bool) -> float:
        twin = Twin(scenario.with_overrides(initial_code=2 ** 15), seed=6)
        errors, previous, direction = [], None, 1
        for chunk in twin.chunks(1.0, 0.005):
            error = x_error(chunk)
            errors.append(error)
            if feedback:
                if previous is not None and error > previous:
                    direction = -direction
                twin.set_actuator(twin.actuator_code + direction * step)
            previous = error
        return float(np.mean(errors[40:]))

    locked = (1 - scenario.bob.visibility) / 2
    assert run_loop(True) < locked + 0.05
    assert run_loop(False) > locked + 0.1


def test_phase_truth_matches_drift_process():
    scenario = Scenario.load("paper-120km", sine_amplitude_rad=1.0, sine_period_s=0.02,
                             random_walk_rad_per_sqrt_s=0.0)
    twin = Twin(scenario, seed=1)
    chunks = list(twin.chunks(0.01, 0.01))
    assert len(chunks) == 1
    assert twin.phase_rad(0.005e12) == pytest.approx(math.sin(2 * math.pi * 0.005 / 0.02),
                                                     abs=1e-3)


def test_sifted_helper_sanity(short_link):
    twin, _, events = run(short_link, 0.005, 1, chunk_s=0.005)
    s = sifted(short_link, twin, events, 1)
    assert s["z"].sum() > 1000 and s["x"].sum() > 100

