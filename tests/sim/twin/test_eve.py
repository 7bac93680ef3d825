"""Eavesdroppers show their textbook signatures."""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.sim.twin import Channel, Scenario, ScenarioError
from twin_helpers import run, sifted, within

BASE = {"distance_km": 20, "random_walk_rad_per_sqrt_s": 0, "sine_amplitude_rad": 0,
        "detectors__dead_time_ps": 0}


def honest_and(attack: dict, seed: int = 21, duration_s: float = 0.1, **link):
    out = []
    for extra in ({}, attack):
        scenario = Scenario.load("paper-120km", **{**BASE, **link}, **extra)
        twin, _, events = run(scenario, duration_s, seed)
        out.append((scenario, twin, events, sifted(scenario, twin, events, seed)))
    return out


def rates(s):
    return s["z_wrong"].sum() / s["z"].sum(), s["x_wrong"].sum() / s["x"].sum()


def test_full_intercept_resend_gives_25_percent_in_each_basis():
    (_, twin, _, s0), (_, _, events, s1) = honest_and({"intercept_resend_fraction": 1.0})
    e_z0, e_x0 = rates(s0)
    e_z, e_x = rates(s1)
    # Eve's 25 % combines with the honest errors e0 as 0.25 + 0.5 e0.
    for measured, honest, n in ((e_z, e_z0, s1["z"].sum()), (e_x, e_x0, s1["x"].sum())):
        assert within(measured, 0.25 + 0.5 * honest, n, floor=0.005)
    assert 0.24 < e_z < 0.28 and 0.25 < e_x < 0.34
    # Eve knows half of the bits (her basis matched Alice's), rate unchanged.
    assert events["eve_knows"][s1["z"]].mean() == pytest.approx(0.5, abs=0.01)


def test_partial_intercept_resend_scales():
    (_, _, _, s0), (_, _, _, s1) = honest_and({"intercept_resend_fraction": 0.4})
    e_z0, _ = rates(s0)
    e_z, _ = rates(s1)
    assert within(e_z, 0.4 * 0.25 + (1 - 0.5 * 0.4) * e_z0, s1["z"].sum(), floor=0.003)


def test_photon_number_splitting_keeps_rate_and_errors():
    """At 120 km PNS turns a ~0.2 % two-photon share of the clicks into ~18 %, silently."""
    (sc, twin0, ev0, s0), (_, twin1, ev1, s1) = honest_and(
        {"photon_number_splitting": True}, duration_s=3.0, distance_km=120)
    photons0 = ((ev0["slot"] >= 0) & (ev0["channel"] != Channel.REF)).sum()
    photons1 = ((ev1["slot"] >= 0) & (ev1["channel"] != Channel.REF)).sum()
    assert abs(photons1 - photons0) < 5 * np.sqrt(2 * photons0)  # Bob sees the same rate
    e_z0, e_x0 = rates(s0)
    e_z1, e_x1 = rates(s1)
    assert abs(e_z1 - e_z0) < 0.005 and abs(e_x1 - e_x0) < 0.03   # no extra error
    # Eve holds every bit that came in a two-photon pulse, and there are many more of them.
    budget = twin1.budget
    p2 = sc.source.two_photon_probability()
    honest_any = (sc.source.efficiency - p2) * budget.candidate_probability  # ~ P(candidate)
    share = p2 * budget.bob_transmittance * budget.eta_max / honest_any
    n = int(s1["z"].sum())
    assert within(ev1["eve_knows"][s1["z"]].mean(), share, n, floor=0.01)
    assert share > 0.1 > ev0["photons_in_pulse"][s0["z"]].mean() - 1
    assert np.array_equal(ev1["eve_knows"], ev1["photons_in_pulse"] == 2)


def test_detector_blinding_gives_no_errors_and_no_darks():
    (_, _, ev0, s0), (_, _, ev1, s1) = honest_and({"blinding": True})
    e_z, e_x = rates(s1)
    assert e_z < 0.005 and e_x < 0.005
    assert not ev1["is_dark"].any()
    # No side peaks on the X detectors, every key bit known to Eve.
    x = (ev1["channel"] == Channel.X_PLUS) | (ev1["channel"] == Channel.X_MINUS)
    assert set(np.unique(ev1["peak"][x])) == {1}
    assert ev1["eve_knows"][s1["z"]].all()
    clicks0 = (ev0["channel"] != Channel.REF).sum()
    clicks1 = (ev1["channel"] != Channel.REF).sum()
    assert clicks1 == pytest.approx(clicks0, rel=0.05)


def test_only_one_attack_at_a_time():
    with pytest.raises(ScenarioError, match="at most one"):
        Scenario.load("paper-120km", blinding=True, photon_number_splitting=True)
