"""Fixtures of the twin tests."""

from __future__ import annotations

import pytest
from tbqkd.sim.twin import Scenario


@pytest.fixture(scope="session")
def bright_static() -> Scenario:
    """The paper's link at 20 km, phase frozen, no dead time, raised dark counts.

    Short distance gives many clicks per second of link time; raising the dark counts makes
    their error contribution measurable in a short run.
    """
    return Scenario.load("paper-120km", distance_km=20, detectors__dead_time_ps=0,
                         random_walk_rad_per_sqrt_s=0, sine_amplitude_rad=0,
                         dark_count_hz=[2e4, 2e4, 2e4])
