"""Parameter estimation and secret-key length for the three-state time-bin protocol.

Every function is one term of the key-length formula, so each can be tested on its own; the
formula, its assumptions and its sources are written out in ``docs/KEY_DISTILLATION.md``.

Per block the key is distilled from the ``n_z`` sifted Z-basis bits. With

* ``e_z``  the Z-basis error rate found by error correction,
* ``phi_u = e_x + serfling_deviation(n_z, n_x, eps_pe)``, the upper bound on the phase-error
  rate of the Z bits from the X-basis statistics ``(n_x, e_x)`` (sampling without replacement,
  Serfling's bound as stated by Tomamichel and Leverrier 2017, Lemma 6; that the X error rate
  samples the Z bits' phase error is the BB84 argument, *assumed* for the three-state protocol,
  see the docs),
* ``m_u``  an upper bound on the detections caused by multi-photon pulses: per pulse
  ``p_m <= g2(0) mu^2 / 2`` and a Chernoff bound on the count,
* ``n_1 = n_z - m_u`` and ``phi_1 = phi_u n_z / n_1`` (GLLP: every multi-photon detection is
  known to Eve, every phase error is blamed on the single-photon detections),

the key length is::

    l = floor( n_1 (1 - h(phi_1)) - leak_ec - leak_ver - 2 log2(1 / (2 eps_pa)) )

which is eps_sec-secret with ``eps_sec = eps_pa + 2 sqrt(2 (eps_pe + eps_mp))`` and
eps_cor-correct through the verification hash (``leak_ver >= log2(1/eps_cor)`` tag bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SecurityParameters", "SourceParameters", "AbortThresholds", "KeyLengthReport",
           "binary_entropy", "serfling_deviation", "phase_error_upper_bound",
           "multiphoton_probability", "chernoff_upper", "multiphoton_detections_upper",
           "privacy_amplification_cost", "secret_key_length", "asymptotic_key_fraction"]


@dataclass(frozen=True)
class SecurityParameters:
    """Composable security parameters and their split between the estimation steps.

    ``eps_sec`` (secrecy) is split as ``eps_pa = eps_sec / 2`` for the leftover hash lemma and
    ``2 sqrt(2 (eps_pe + eps_mp)) = eps_sec / 2`` for the smoothing, with ``eps_pe = eps_mp``.
    ``eps_cor`` (correctness) is the probability that the verified keys differ.
    """

    eps_sec: float = 1e-9
    eps_cor: float = 1e-15

    def __post_init__(self) -> None:
        for name in ("eps_sec", "eps_cor"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")

    @property
    def eps_pa(self) -> float:
        """Failure probability allotted to privacy amplification (leftover hash lemma)."""
        return self.eps_sec / 2

    @property
    def eps_pe(self) -> float:
        """Failure probability of the phase-error bound."""
        return (self.eps_sec / 4) ** 2 / 4

    @property
    def eps_mp(self) -> float:
        """Failure probability of the multi-photon count bound."""
        return (self.eps_sec / 4) ** 2 / 4


@dataclass(frozen=True)
class SourceParameters:
    """The single-photon source as far as security is concerned.

    ``g2`` is the measured g2(0) and ``mean_photon_number`` the mean photon number per pulse
    leaving Alice. Either one zero means an ideal single-photon source (no multi-photon term).
    """

    g2: float = 0.0
    mean_photon_number: float = 0.0

    def __post_init__(self) -> None:
        if self.g2 < 0 or not 0 <= self.mean_photon_number <= 1:
            raise ValueError("need g2 >= 0 and 0 <= mean_photon_number <= 1")


@dataclass(frozen=True)
class AbortThresholds:
    """When a block is aborted instead of distilled (all configurable)."""

    max_qber_z: float = 0.11
    max_phase_error: float = 0.20
    min_x_detections: int = 100
    min_key_bits: int = 1


@dataclass(frozen=True)
class KeyLengthReport:
    """Every term of the key-length computation for one block."""

    n_z: int
    n_x: int
    qber_z: float
    qber_x: float
    phase_error_upper: float
    multiphoton_upper: float
    single_photon_lower: float
    phase_error_single: float
    leak_ec_bits: int
    leak_verify_bits: int
    pa_cost_bits: float
    key_bits: int
    abort_reason: str | None


def binary_entropy(p: float) -> float:
    """Binary entropy h(p) in bits; h(0) = h(1) = 0, and p is clipped to [0, 1]."""
    p = min(max(p, 0.0), 1.0)
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def serfling_deviation(n_key: int, n_test: int, eps: float) -> float:
    """Deviation ``d`` with ``P[rate(key) >= rate(test) + d] <= eps`` when sampling w/o replacement.

    Serfling's bound in the form of Tomamichel and Leverrier 2017, Lemma 6: for a population of
    ``n_key + n_test`` items split at random, ``P[mean_key >= mean_test + d] <= exp(-2 d^2 n_key
    n_test^2 / ((n_key + n_test)(n_test + 1)))``.

    Raises
    ------
    ValueError
        If a size is not positive or ``eps`` is not in (0, 1).
    """
    if n_key <= 0 or n_test <= 0:
        raise ValueError("both sample sizes must be positive")
    if not 0 < eps < 1:
        raise ValueError("eps must be in (0, 1)")
    return math.sqrt((n_key + n_test) * (n_test + 1) * math.log(1 / eps)
                     / (2 * n_key * n_test ** 2))


def phase_error_upper_bound(n_z: int, n_x: int, e_x: int, eps_pe: float) -> float:
    """Upper bound on the phase-error rate of the ``n_z`` key bits from ``e_x`` of ``n_x`` errors.

    Raises
    ------
    ValueError
        If the counts are inconsistent.
    """
    if not 0 <= e_x <= n_x:
        raise ValueError(f"need 0 <= e_x <= n_x, got e_x={e_x}, n_x={n_x}")
    return e_x / n_x + serfling_deviation(n_z, n_x, eps_pe)


def multiphoton_probability(source: SourceParameters) -> float:
    """Upper bound on the probability that a pulse holds two or more photons: g2(0) mu^2 / 2.

    Strict: ``g2 mu^2 = sum_n n (n - 1) P_n >= 2 P(n >= 2)``.
    """
    return source.g2 * source.mean_photon_number ** 2 / 2


def chernoff_upper(expected: float, eps: float) -> float:
    """Upper bound on a sum of independent Bernoulli variables with mean ``expected``.

    From the multiplicative Chernoff bound ``P[X >= (1 + d) m] <= exp(-d^2 m / (2 + d))``
    solved for ``d`` at probability ``eps``: ``m + (L + sqrt(L^2 + 8 L m)) / 2`` with
    ``L = ln(1/eps)``. Zero mean gives zero.
    """
    if expected <= 0:
        return 0.0
    log_term = math.log(1 / eps)
    return expected + (log_term + math.sqrt(log_term ** 2 + 8 * log_term * expected)) / 2


def multiphoton_detections_upper(pulses: int, source: SourceParameters, eps_mp: float) -> float:
    """Upper bound on the detections caused by multi-photon pulses among ``pulses`` sent.

    GLLP worst case: Eve can forward every multi-photon pulse losslessly, so the bound is on the
    number of multi-photon pulses sent, not on the detected fraction.
    """
    return chernoff_upper(pulses * multiphoton_probability(source), eps_mp)


def privacy_amplification_cost(eps_pa: float) -> float:
    """Bits removed by the leftover hash lemma: ``2 log2(1 / (2 eps_pa))``."""
    return 2 * math.log2(1 / (2 * eps_pa))


def secret_key_length(*, n_z: int, errors_z: int, n_x: int, e_x: int, pulses: int,
                      leak_ec_bits: int, leak_verify_bits: int, source: SourceParameters,
                      security: SecurityParameters,
                      thresholds: AbortThresholds) -> KeyLengthReport:
    """Secret-key length of one block, with every intermediate term and the abort decision.

    ``abort_reason`` is ``None`` when the block yields ``key_bits >= thresholds.min_key_bits``.
    """
    qber_z = errors_z / n_z if n_z else 1.0
    qber_x = e_x / n_x if n_x else 1.0
    phi_u = phase_error_upper_bound(n_z, n_x, e_x, security.eps_pe) if n_z and n_x else 1.0
    m_u = multiphoton_detections_upper(pulses, source, security.eps_mp)
    n_1 = max(n_z - m_u, 0.0)
    phi_1 = min(0.5, phi_u * n_z / n_1) if n_1 > 0 else 0.5
    pa_cost = privacy_amplification_cost(security.eps_pa)
    raw = n_1 * (1 - binary_entropy(phi_1)) - leak_ec_bits - leak_verify_bits - pa_cost
    key_bits = max(0, math.floor(raw))
    reason = None
    if n_x < thresholds.min_x_detections:
        reason = f"too few X-basis detections ({n_x} < {thresholds.min_x_detections})"
    elif qber_z > thresholds.max_qber_z:
        reason = f"Z-basis error rate {qber_z:.4f} above {thresholds.max_qber_z}"
    elif phi_1 > thresholds.max_phase_error:
        reason = f"phase-error bound {phi_1:.4f} above {thresholds.max_phase_error}"
    elif key_bits < thresholds.min_key_bits:
        reason = f"finite-key length {key_bits} below {thresholds.min_key_bits} bits"
    return KeyLengthReport(n_z=n_z, n_x=n_x, qber_z=qber_z, qber_x=qber_x,
                           phase_error_upper=phi_u, multiphoton_upper=m_u,
                           single_photon_lower=n_1, phase_error_single=phi_1,
                           leak_ec_bits=leak_ec_bits, leak_verify_bits=leak_verify_bits,
                           pa_cost_bits=pa_cost, key_bits=key_bits if reason is None else 0,
                           abort_reason=reason)


def asymptotic_key_fraction(qber_z: float, qber_x: float, multiphoton_fraction: float = 0.0,
                            ec_efficiency: float = 1.0) -> float:
    """Asymptotic secret bits per sifted Z bit (GLLP): ``(1-D)(1-h(e_x/(1-D))) - f h(e_z)``.

    ``multiphoton_fraction`` is D, the fraction of detections that may come from multi-photon
    pulses. Negative results are returned as 0.
    """
    single = 1.0 - multiphoton_fraction
    if single <= 0:
        return 0.0
    rate = single * (1 - binary_entropy(min(0.5, qber_x / single)))
    return max(0.0, rate - ec_efficiency * binary_entropy(qber_z))
