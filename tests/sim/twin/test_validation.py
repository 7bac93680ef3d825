"""Monte Carlo against the twin's own analytic expectations.

Tolerances: 5 binomial standard deviations of the measured proportion (fixed seeds, so the
tests are deterministic; a correct model fails one of them with probability ~1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.sim.twin import Channel, Scenario, Twin, expected
from twin_helpers import run, sifted, within

SEED = 11


@pytest.fixture(scope="module")
def static_run(bright_static):
    twin, chunks, events = run(bright_static, 0.2, SEED)
    return bright_static, twin, events, sifted(bright_static, twin, events, SEED)


def test_detection_probability_per_slot(static_run):
    scenario, twin, events, _ = static_run
    exp = twin.expected()
    slots = round(0.2 * scenario.source.pulse_rate_hz)
    p1, p2 = exp.photon_probability
    for channel in (Channel.Z, Channel.X_PLUS, Channel.X_MINUS):
        photons = (events["channel"] == channel) & ~events["is_dark"]
        expected_per_slot = exp.arrival_probability[channel - 1] * (p1 + 2 * p2)
        assert within(photons.sum() / slots, expected_per_slot, slots), channel


def test_dark_counts_are_poisson_at_the_set_rate(static_run):
    scenario, twin, events, _ = static_run
    duration_s = 0.2
    for channel in (Channel.Z, Channel.X_PLUS, Channel.X_MINUS):
        darks = int((events["is_dark"] & (events["channel"] == channel)).sum())
        mean = scenario.detectors.dark_count_hz[channel - 1] * duration_s
        assert abs(darks - mean) < 5 * np.sqrt(mean)
    assert not (events["is_dark"] & (events["slot"] >= 0)).any()


def test_z_error_rate_and_its_contributions(static_run):
    scenario, twin, events, s = static_run
    exp = twin.expected()
    n = int(s["z"].sum())
    assert within(s["z_wrong"].sum() / n, exp.e_z, n)
    own_photon = ~events["is_dark"] & (events["slot"] == s["slot"])
    parts = {
        "dark": events["is_dark"],
        "extinction": own_photon & (events["peak"] == s["gate"]),
        "overlap": ~events["is_dark"] & ~(own_photon & (events["peak"] == s["gate"])),
    }
    for name, mask in parts.items():
        assert within((s["z_wrong"] & mask).sum() / n, exp.e_z_parts[name], n), name
    assert exp.e_z_parts["overlap"] > 0.005  # the lifetime tail is a real contribution here


def test_x_error_rate_and_its_contributions(static_run):
    scenario, twin, events, s = static_run
    exp = twin.expected()
    n = int(s["x"].sum())
    assert within(s["x_wrong"].sum() / n, exp.e_x, n)
    middle_own = ~events["is_dark"] & (events["slot"] == s["slot"]) & (events["peak"] == 1)
    parts = {"dark": events["is_dark"], "visibility": middle_own,
             "overlap": ~events["is_dark"] & ~middle_own}
    for name, mask in parts.items():
        assert within((s["x_wrong"] & mask).sum() / n, exp.e_x_parts[name], n), name
    # Visibility sets the middle peak's error: (1 - V) / 2 of the middle-peak clicks.
    assert exp.e_x_parts["visibility"] == pytest.approx(
        (1 - scenario.bob.visibility) / 2, rel=0.15)


def test_sifted_rates_per_slot(static_run):
    scenario, twin, events, s = static_run
    exp = twin.expected()
    slots = round(0.2 * scenario.source.pulse_rate_hz)
    assert within(s["z"].sum() / slots, exp.sifted_z_per_slot, slots)
    assert within(s["x"].sum() / slots, exp.sifted_x_per_slot, slots)


def test_multi_photon_share_follows_g2(static_run):
    scenario, twin, events, _ = static_run
    exp = twin.expected()
    photons = events["photons_in_pulse"] > 0
    n = int(photons.sum())
    share = (events["photons_in_pulse"] == 2).sum() / n
    assert within(share, exp.multi_photon_fraction, n)
    assert exp.multi_photon_fraction == pytest.approx(
        scenario.source.g2 * scenario.source.efficiency, rel=0.01)


def test_alice_state_frequencies_in_clicks(static_run):
    scenario, twin, events, _ = static_run
    photon = events["slot"] >= 0
    photon &= events["channel"] != Channel.REF
    states = events["alice_state"][photon]
    n = states.size
    for code, p in enumerate(scenario.alice.state_probabilities()):
        assert within((states == code).sum() / n, p, n), code


def test_x_peaks_and_z_bins_in_time():
    """Arrival times: Z clicks at bins 0 and tau, X clicks at 0, tau, 2 tau (+ delays)."""
    scenario = Scenario.load("paper-120km", distance_km=5, lifetime_ps=50.0,
                             sine_amplitude_rad=0, random_walk_rad_per_sqrt_s=0,
                             dark_count_hz=[0, 0, 0], detectors__delay_ps=[100.0, 200.0, 300.0])
    twin, _, events = run(scenario, 0.002, 3, chunk_s=0.001)
    photon = events["slot"] >= 0
    photon &= events["channel"] != Channel.REF
    whole, frac = twin.clock.split_ps(events["slot"][photon])
    channel = events["channel"][photon]
    offset = (events["time_ps"][photon] - whole - frac - twin.budget.fibre_delay_ps
              - np.array([0, 100.0, 200.0, 300.0])[channel]
              - scenario.alice.time_bin_separation_ps * events["peak"][photon])
    # What remains is the emission delay plus jitter: mean ~ lifetime, never far negative.
    assert offset.mean() == pytest.approx(50.0, abs=3.0)
    assert offset.min() > -8 * 25.0
    assert set(np.unique(events["peak"][photon & (events["channel"] == 1)])) == {0, 1}
    assert set(np.unique(events["peak"][photon & (events["channel"] == 2)])) == {0, 1, 2}


def test_dead_time_matches_non_paralysable_rate():
    """Losses to dead time follow r / (1 + r tau) up to the slot grid's granularity."""
    scenario = Scenario.load("paper-120km", distance_km=0, source__efficiency=0.2,
                             detectors__dead_time_ps=100_000.0, random_walk_rad_per_sqrt_s=0,
                             sine_amplitude_rad=0)
    twin, chunks, events = run(scenario, 0.02, 5, chunk_s=0.005)
    exp = twin.expected()
    lost = sum(c.lost_dead_time for c in chunks)
    for channel in (Channel.Z, Channel.X_PLUS, Channel.X_MINUS):
        times = events["time_ps"][events["channel"] == channel]
        assert np.diff(times).min() >= 100_000
        registered = times.size / 0.02
        offered = (times.size + lost[channel]) / 0.02
        loss = 1 - registered / offered
        expected_loss = exp.click_rate_hz[channel - 1] * 100e-9  # = r tau / (1 + r tau)
        # Clicks come on a 13.2 ns slot grid, not as a Poisson process: 10 % of the loss.
        assert loss == pytest.approx(expected_loss, rel=0.10), channel
        assert loss > 0.1


def test_reference_pulses_are_divided_clock():
    scenario = Scenario.load("paper-120km", reference__divider=1024, reference__jitter_ps=0.0)
    twin, _, events = run(scenario, 0.01, 2, chunk_s=0.002)
    ref = events["channel"] == Channel.REF
    slots = events["slot"][ref]
    assert np.array_equal(slots, np.arange(0, round(0.01 * 75.947e6), 1024))
    whole, frac = twin.clock.split_ps(slots)
    expect = whole + np.floor(frac + twin.budget.fibre_delay_ps + 0.5).astype(np.int64)
    assert np.abs(events["time_ps"][ref] - expect).max() <= 1


@pytest.mark.parametrize("tail", [0.0, 0.3])
def test_gate_probability_matches_arrival_model(tail):
    scenario = Scenario.load("paper-120km", distance_km=10, dark_count_hz=[0, 0, 0],
                             detectors__dead_time_ps=0, jitter_tail_fraction=tail,
                             jitter_tail_ps=300.0)
    twin, _, events = run(scenario, 0.02, 4, chunk_s=0.01)
    exp = expected(scenario)
    z = (events["channel"] == Channel.Z) & (events["slot"] >= 0)
    s = sifted(scenario, twin, events, 4)
    own = z & (s["slot"] == events["slot"]) & (s["gate"] == events["peak"])
    n = int(z.sum())
    assert within(own.sum() / n, exp.gate_probability, n)


def test_twin_runs_once_and_rejects_bad_durations():
    twin = Twin(Scenario.load("paper-120km"), seed=1)
    with pytest.raises(ValueError):
        twin.chunks(0, 1)
    list(twin.chunks(0.001, 0.001))
    with pytest.raises(ValueError, match="already ran"):
        twin.chunks(0.001, 0.001)


def test_multi_photon_double_clicks_in_x():
    """Two photons of one pulse clicking X+ and X- in the same middle gate (a bright, noisy
    source makes the term large enough to measure)."""
    scenario = Scenario.load("paper-120km", distance_km=0, source__efficiency=0.6, g2=0.5,
                             bob__visibility=0.3, detectors__dead_time_ps=0,
                             dark_count_hz=[0, 0, 0], random_walk_rad_per_sqrt_s=0,
                             sine_amplitude_rad=0, p_early=0.1, p_late=0.1, p_plus=0.8)
    twin, _, events = run(scenario, 0.02, 8, chunk_s=0.01)
    exp = twin.expected()
    s = sifted(scenario, twin, events, 8)
    own = s["x"] & (events["slot"] == s["slot"])
    slots_plus = set(events["slot"][own & (events["channel"] == Channel.X_PLUS)].tolist())
    slots_minus = set(events["slot"][own & (events["channel"] == Channel.X_MINUS)].tolist())
    doubles = len(slots_plus & slots_minus)
    n = int(s["x"].sum())
    assert doubles > 300
    assert within(0.5 * doubles / n, exp.e_x_parts["multi_photon"], n)
