"""The fibre and the link budget: transmittances, per-photon detection odds, delays.

A photon in the fibre reaches detector ``d`` with probability
``T_fibre * T_bob * P(arm) * eta_d``; the Monte Carlo draws *candidate* photons with
``q = T_fibre * T_bob * max(eta)`` and thins each to its detector's ``eta_d / max(eta)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bob import GAUSS_CLIP_SIGMA
from .params import Scenario

__all__ = ["LinkBudget"]


@dataclass(frozen=True)
class LinkBudget:
    """Numbers derived once from a scenario and shared by the engine and the analytic model."""

    fibre_transmittance: float
    bob_transmittance: float
    eta_max: float                 # largest detector efficiency
    keep_ratio: np.ndarray         # eta_d / eta_max for Z, X+, X-
    candidate_probability: float   # q: a fibre photon becomes a candidate detection
    fibre_delay_ps: float
    earliest_offset_ps: float      # lower bound of (detection time - slot time), any channel

    @classmethod
    def of(cls, scenario: Scenario) -> LinkBudget:
        """Compute the budget of ``scenario``."""
        det = scenario.detectors
        fibre = scenario.channel.transmittance()
        bob = scenario.bob.transmittance()
        eta_max = max(det.efficiency)
        delay = scenario.channel.delay_ps()
        photon_earliest = (delay + min(det.delay_ps)
                           - GAUSS_CLIP_SIGMA * (det.jitter_sigma_ps()
                                                 + scenario.source.excitation_jitter_ps))
        reference_earliest = (delay + scenario.reference.delay_ps
                              - GAUSS_CLIP_SIGMA * scenario.reference.jitter_ps)
        return cls(fibre_transmittance=fibre, bob_transmittance=bob, eta_max=eta_max,
                   keep_ratio=np.asarray(det.efficiency, dtype=np.float64) / eta_max,
                   candidate_probability=fibre * bob * eta_max, fibre_delay_ps=delay,
                   earliest_offset_ps=min(photon_earliest, reference_earliest) - 1.0)
