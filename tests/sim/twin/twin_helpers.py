"""Helpers of the twin tests: run a twin, gate its clicks, compare proportions."""

from __future__ import annotations

import numpy as np
from tbqkd.sim.twin import Scenario, Twin, gate_clicks
from tbqkd.sim.twin.alice import CounterAlice


def run(scenario: Scenario, duration_s: float, seed: int, chunk_s: float = 0.05):
    """Run a twin; return the twin and all events concatenated."""
    twin = Twin(scenario, seed=seed)
    chunks = list(twin.chunks(duration_s, chunk_s))
    events = {name: np.concatenate([getattr(c, name) for c in chunks])
              for name in chunks[0].arrays()}
    return twin, chunks, events


def sifted(scenario: Scenario, twin: Twin, events: dict, seed: int) -> dict:
    """Gate the clicks from their times and look up Alice's state of their slots.

    Returns masks ``z`` (Alice Z state, Z-gated click), ``z_wrong``, ``x`` (Alice X state, X
    middle-gate click), ``x_wrong`` and the ``slot`` and ``gate`` arrays.
    """
    slot, gate = gate_clicks(scenario, events["time_ps"], events["channel"],
                             twin.budget.fibre_delay_ps)
    alice = CounterAlice(scenario.alice, seed).states(slot)
    channel = events["channel"]
    z = (channel == 1) & (gate >= 0) & (alice <= 1)
    x = ((channel == 2) | (channel == 3)) & (gate == 1) & (alice >= 2)
    right_x = np.where(alice == 2, 2, 3)
    return {"z": z, "z_wrong": z & (gate != alice), "x": x, "x_wrong": x & (channel != right_x),
            "slot": slot, "gate": gate, "alice": alice}


def within(measured: float, expected: float, n: int, sigmas: float = 5.0,
           floor: float = 0.0) -> bool:
    """Whether a measured proportion of ``n`` trials agrees with ``expected`` to ``sigmas``."""
    sd = np.sqrt(max(expected * (1 - expected), 1e-12) / n)
    return abs(measured - expected) <= sigmas * sd + floor
