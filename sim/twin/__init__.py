"""The digital twin of the optics of a time-bin QKD link (see docs/TWIN.md).

Quick use::

    from tbqkd.sim.twin import Scenario, Twin
    twin = Twin(Scenario.load("paper-120km", distance_km=140), seed=1)
    for chunk in twin.chunks(duration_s=10, chunk_s=1):
        ...  # chunk.time_ps, chunk.channel, truth arrays
"""

from .analytic import Expectation, calibrate, expected, finite_key_rate, gate_clicks
from .engine import TRUTH_FIELDS, Chunk, Twin
from .params import (
    PHOTON_CHANNELS,
    Channel,
    Scenario,
    ScenarioError,
    State,
    list_scenarios,
)

__all__ = ["Scenario", "ScenarioError", "Channel", "PHOTON_CHANNELS", "State", "Twin", "Chunk",
           "TRUTH_FIELDS", "Expectation", "expected", "finite_key_rate", "calibrate",
           "gate_clicks", "list_scenarios"]
