"""Eavesdroppers (all off by default); each has a textbook signature the tests check.

Intercept-resend
    On a fraction of slots (chosen per slot by a counter stream) Eve measures Alice's photon in a
    random basis next to Alice and resends the state she found into the same channel, so Bob's
    click rate does not change. Full intercept-resend gives 25 % error in each basis.
Photon-number splitting
    Eve keeps one photon of each two-photon pulse and forwards the other over a lossless line;
    she blocks just enough single-photon pulses that Bob's expected click rate is unchanged.
    No error is added; Eve knows every bit carried by a two-photon pulse.
Detector blinding
    Eve blinds Bob's SNSPDs (no dark counts, no afterpulses, photons not registered), measures
    every pulse next to Alice in Bob's basis proportions, and forces a click in the detector of
    her result with a bright pulse that only registers when Bob's basis matches hers. Error rate
    about 0, no X-arm side peaks, Eve knows every key bit; she scales her forcing so that Bob's
    click rate matches the honest one.

A resent or forced photon has the same encoder imperfections and time profile as Alice's.
"""

from __future__ import annotations

import numpy as np

from .alice import counter_uniform, stream_key
from .params import Channel, State

__all__ = ["intercept_resend", "measure", "blinding_targets"]

_STREAM_ATTACK, _STREAM_BASIS, _STREAM_RESULT = 2, 3, 4


def measure(key: int, slots: np.ndarray, states: np.ndarray,
            z_basis: np.ndarray) -> np.ndarray:
    """Eve's ideal measurement of ``states`` in Z (``z_basis``) or X; returns the found states.

    A state of the measured basis is found exactly; a state of the other basis gives either
    outcome with probability 1/2 (from the counter stream ``key``).
    """
    coin = counter_uniform(key, slots) < 0.5
    in_z = states <= State.LATE
    found = np.where(z_basis,
                     np.where(in_z, states, np.where(coin, State.EARLY, State.LATE)),
                     np.where(in_z, np.where(coin, State.PLUS, State.MINUS), states))
    return found.astype(np.int8)


def intercept_resend(seed: int, slots: np.ndarray, states: np.ndarray,
                     fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """States delivered to Bob under intercept-resend on ``fraction`` of the slots.

    Returns ``(delivered_states, eve_knows)``: ``eve_knows`` marks attacked slots where Eve's
    basis matched Alice's (she then knows the bit).
    """
    attacked = counter_uniform(stream_key(seed, _STREAM_ATTACK), slots) < fraction
    z_basis = counter_uniform(stream_key(seed, _STREAM_BASIS), slots) < 0.5
    found = measure(stream_key(seed, _STREAM_RESULT), slots, states, z_basis)
    delivered = np.where(attacked, found, states).astype(np.int8)
    matched = z_basis == (states <= State.LATE)
    return delivered, attacked & matched


def blinding_targets(seed: int, slots: np.ndarray, states: np.ndarray,
                     z_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forced clicks of a blinding attack, one per slot in ``slots`` (slots where bases match).

    Returns ``(channel, peak, eve_knows)``: a Z result forces the Z detector in its bin, an X
    result forces X+ or X- in the middle peak.
    """
    z_weight = z_fraction ** 2
    x_weight = (1 - z_fraction) ** 2
    z_basis = counter_uniform(stream_key(seed, _STREAM_BASIS), slots) * (z_weight + x_weight) \
        < z_weight
    found = measure(stream_key(seed, _STREAM_RESULT), slots, states, z_basis)
    channel = np.where(z_basis, Channel.Z,
                       np.where(found == State.PLUS, Channel.X_PLUS, Channel.X_MINUS))
    peak = np.where(z_basis, found == State.LATE, 1)
    matched = z_basis == (states <= State.LATE)
    return channel.astype(np.int8), peak.astype(np.int8), matched
