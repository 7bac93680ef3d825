"""Long validation runs (``make test-slow``)."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from tbqkd.sim.twin import Channel, Scenario, Twin, calibrate, finite_key_rate
from twin_helpers import sifted, within

pytestmark = pytest.mark.slow


def test_calibration_reproduces_the_scenario_values():
    scenario = Scenario.load("paper-120km")
    efficiency, visibility = calibrate(scenario)
    assert efficiency == pytest.approx(scenario.source.efficiency, rel=1e-3)
    assert visibility == pytest.approx(scenario.bob.visibility, abs=1e-4)
    assert finite_key_rate(scenario)["rate_bps"] == pytest.approx(15.0, rel=1e-3)


def test_paper_link_error_rates_at_120km():
    scenario = Scenario.load("paper-120km", random_walk_rad_per_sqrt_s=0, sine_amplitude_rad=0)
    twin = Twin(scenario, seed=17)
    exp = twin.expected()
    counts = dict.fromkeys(("z", "z_wrong", "x", "x_wrong"), 0)
    for chunk in twin.chunks(300.0, 10.0):
        s = sifted(scenario, twin, chunk.arrays(), 17)
        for key in counts:
            counts[key] += int(s[key].sum())
    assert within(counts["z_wrong"] / counts["z"], exp.e_z, counts["z"])
    assert within(counts["x_wrong"] / counts["x"], exp.e_x, counts["x"])
    assert within(counts["z"] / (300 * 75.947e6), exp.sifted_z_per_slot, round(300 * 75.947e6))


def test_six_hour_run_is_ordered_complete_and_bounded():
    scenario = Scenario.load("paper-120km")
    twin = Twin(scenario, seed=3)
    exp = twin.expected()
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    last_time, total = -1, np.zeros(4, np.int64)
    for chunk in twin.chunks(6 * 3600.0, 10.0):
        if len(chunk):
            assert chunk.time_ps[0] >= last_time
            assert np.all(np.diff(chunk.time_ps) >= 0)
            last_time = int(chunk.time_ps[-1])
        total += np.bincount(chunk.channel, minlength=4)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb) / 1024
    assert grown_mb < 300
    for channel in (Channel.Z, Channel.X_PLUS, Channel.X_MINUS):
        expected = exp.click_rate_hz[channel - 1] * 6 * 3600
        # The drift moves counts between X+ and X-; Z and the X sum are phase independent.
        if channel == Channel.Z:
            assert abs(total[channel] - expected) < 5 * np.sqrt(expected)
    x_expected = (exp.click_rate_hz[1] + exp.click_rate_hz[2]) * 6 * 3600
    assert abs(total[2] + total[3] - x_expected) < 5 * np.sqrt(x_expected) + 1e-4 * x_expected
