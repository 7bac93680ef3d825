"""Analytic expectations of a scenario, and the secret-key rate used to calibrate it.

Everything here is closed-form from the scenario (no sampling), at a fixed interferometer phase,
ignoring dead time except through :func:`dead_time_rate` and ignoring Eve.

Timing model
    A photon's detection time after its nominal bin time is ``Exp(lifetime)`` plus Gaussian
    noise of variance ``excitation_jitter**2 + detector_sigma**2`` (an exponentially modified
    Gaussian), plus with probability ``jitter_tail_fraction`` a further ``Exp(jitter_tail)``.
Gates
    A click belongs to slot ``k`` and to gate ``b`` if its time lies in
    ``[gs, gs + w)`` after the nominal time of bin/peak ``b`` of slot ``k`` on its channel
    (:func:`gate_clicks` does this from times alone, as the host would).
    Z detector: gates ``b = 0`` (early) and ``1`` (late). X detectors: the middle peak ``b = 1``.
Error contributions (each as a share of the gated clicks of the basis)
    ``dark`` dark counts in the gates; ``visibility`` the middle peak's wrong output
    (``(1 - V cos phi)/2``); ``overlap`` photons whose lifetime tail or jitter reaches the
    other bin's gate, the X side peaks reaching the middle gate, and the previous slot's tail;
    ``extinction`` Z-state light in the wrong bin; ``multi_photon`` two-photon pulses that click
    both X detectors in the same middle gate (counted as half an error each, as with a random
    assignment of double clicks).

Secret-key rate (the calibration target)
    :func:`finite_key_rate` puts the expected block (``n_Z``, ``e_Z``, ``n_X``,
    ``e_X``, the Z-basis pulses, ``f n_Z h(e_Z)`` disclosed by error correction, the
    verification tag) into the formula the link distils with,
    :func:`tbqkd.host.finite_key.secret_key_length`, with its abort thresholds. ``e_X`` is
    taken at ``analysis.lock_phase_error_rad``, the offset the locked feedback loop keeps (its
    dither), since that is what the link measures. So the twin is calibrated against the number
    the whole system distils, by the formula that decides the key length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from .params import Channel, Scenario, State
from .source import SlotClock

__all__ = ["Expectation", "expected", "arrival_cdf", "binary_entropy", "finite_key_rate",
           "source_parameters", "security_parameters", "gate_clicks",
           "dead_time_rate", "calibrate"]


def binary_entropy(p: float) -> float:
    """Binary entropy ``h(p)`` in bits (0 at 0 and 1)."""
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _exgauss_cdf(t: np.ndarray, mean_ps: float, sigma_ps: float) -> np.ndarray:
    if sigma_ps <= 0:
        return stats.expon.cdf(t, scale=mean_ps)
    return stats.exponnorm.cdf(t, mean_ps / sigma_ps, scale=sigma_ps)


def arrival_cdf(scenario: Scenario, t_ps: np.ndarray | float) -> np.ndarray:
    """CDF of (detection time - nominal bin time) of a photon, at ``t_ps``."""
    t = np.asarray(t_ps, dtype=np.float64)
    src, det = scenario.source, scenario.detectors
    sigma = math.hypot(src.excitation_jitter_ps, det.jitter_sigma_ps())
    main = _exgauss_cdf(t, src.lifetime_ps, sigma)
    if det.jitter_tail_fraction == 0:
        return main
    t1, t2 = src.lifetime_ps, det.jitter_tail_ps
    if math.isclose(t1, t2):
        t2 = t1 * (1 + 1e-6)
    tail = (t1 * main - t2 * _exgauss_cdf(t, t2, sigma)) / (t1 - t2)
    return (1 - det.jitter_tail_fraction) * main + det.jitter_tail_fraction * tail


def dead_time_rate(rate_hz: float, dead_time_ps: float) -> float:
    """Registered rate of a non-paralysable detector of dead time ``dead_time_ps``."""
    return rate_hz / (1 + rate_hz * dead_time_ps * 1e-12)


@dataclass(frozen=True)
class Expectation:
    """Analytic numbers of a scenario (probabilities per slot, rates per second)."""

    phase_rad: float
    slots_per_s: float
    photon_probability: tuple[float, float]          # P(1), P(2) photons in the fibre
    arrival_probability: tuple[float, float, float]  # per fibre photon: reaches+clicks Z, X+, X-
    click_probability: tuple[float, float, float]    # per slot, photons only (Z, X+, X-)
    dark_probability: tuple[float, float, float]     # per slot
    click_rate_hz: tuple[float, float, float]        # photons + darks, after dead time
    reference_rate_hz: float
    gate_probability: float          # P(photon lands in its own gate)
    multi_photon_fraction: float     # share of photon clicks from two-photon pulses
    sifted_z_per_slot: float         # P(Alice Z state and a Z-gated click)
    sifted_x_per_slot: float         # P(Alice X state and an X middle-gate click)
    e_z: float
    e_x: float
    e_z_parts: dict[str, float]
    e_x_parts: dict[str, float]

    def sifted_z_rate_hz(self) -> float:
        """Sifted Z events per second."""
        return self.sifted_z_per_slot * self.slots_per_s

    def sifted_x_rate_hz(self) -> float:
        """X-basis (|+>/|-> with an X middle-gate click) events per second."""
        return self.sifted_x_per_slot * self.slots_per_s

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


def _state_populations(scenario: Scenario) -> dict[int, float]:
    leak = scenario.alice.leak()
    return {State.EARLY: leak, State.LATE: 1 - leak, State.PLUS: 0.5, State.MINUS: 0.5}


def expected(scenario: Scenario, phase_rad: float = 0.0) -> Expectation:
    """Analytic expectations of ``scenario`` at interferometer phase ``phase_rad``.

    ``phase_rad`` is the total phase seen by |+> (drift + actuator + Alice's X phase error);
    0 is the locked point.
    """
    sc = scenario
    src, det, bob, ana = sc.source, sc.detectors, sc.bob, sc.analysis
    period = sc.period_ps()
    tau = sc.alice.time_bin_separation_ps
    p1, p2 = src.one_photon_probability(), src.two_photon_probability()
    reach = sc.channel.transmittance() * bob.transmittance()
    eta = det.efficiency
    zf, vis = bob.z_fraction, bob.visibility
    probs = sc.alice.state_probabilities()
    p_late = _state_populations(sc)

    def gate(d: float) -> float:
        """P(photon whose nominal time is ``d`` before the gate reference lands in the gate)."""
        lo = ana.gate_start_ps + d
        return float(arrival_cdf(sc, lo + ana.gate_width_ps) - arrival_cdf(sc, lo))

    # Per-photon probability, per state, of each (channel, peak) and the port split.
    def peaks(state: int) -> dict[tuple[int, int], float]:
        late = p_late[state]
        out = {(Channel.Z, 0): zf * (1 - late) * eta[0], (Channel.Z, 1): zf * late * eta[0]}
        if state >= State.PLUS:
            cos = math.cos(phase_rad + (math.pi if state == State.MINUS else 0.0))
            plus = 0.5 * (1 + vis * cos)
        else:
            plus = 0.5
        for channel, share in ((Channel.X_PLUS, plus), (Channel.X_MINUS, 1 - plus)):
            e = eta[channel - 1]
            out[(channel, 0)] = (1 - zf) * (1 - late) / 4 * e
            out[(channel, 2)] = (1 - zf) * late / 4 * e
            out[(channel, 1)] = (1 - zf) * 0.5 * share * e
        return {key: value * reach for key, value in out.items()}

    table = {s: peaks(s) for s in State if probs[s] > 0}

    def click(a: float) -> float:
        return p1 * a + p2 * (1 - (1 - a) ** 2)

    arrival = tuple(sum(probs[s] * sum(v for (c, _), v in table[s].items() if c == ch)
                        for s in table) for ch in (1, 2, 3))
    click_probability = tuple(
        sum(probs[s] * click(sum(v for (c, _), v in table[s].items() if c == ch)) for s in table)
        for ch in (1, 2, 3))
    dark = tuple(rate * period * 1e-12 for rate in det.dark_count_hz)
    dark_gate = tuple(rate * ana.gate_width_ps * 1e-12 for rate in det.dark_count_hz)
    rates = tuple(dead_time_rate((click_probability[i] + dark[i]) * 1e12 / period,
                                 det.dead_time_ps) for i in range(3))
    mean_photons = p1 + 2 * p2

    def in_gate(state: int, channel: int, gate_peak: int, previous: bool = True) -> float:
        """Mean photon clicks of ``channel`` in gate ``gate_peak`` for a slot in ``state``."""
        total = 0.0
        for (c, peak), a in table[state].items():
            if c == channel:
                total += a * mean_photons * gate((gate_peak - peak) * tau)
        if previous:  # the previous slot, Alice's state drawn at random
            for s_prev in table:
                for (c, peak), a in table[s_prev].items():
                    if c == channel:
                        total += (probs[s_prev] * a * mean_photons
                                  * gate((gate_peak - peak) * tau + period))
        return total

    # Z basis.
    z_states = [s for s in (State.EARLY, State.LATE) if s in table]
    z_good = z_bad = z_dark = z_ext = z_overlap = 0.0
    for s in z_states:
        right, wrong = (0, 1) if s == State.EARLY else (1, 0)
        w = probs[s]
        good = in_gate(s, Channel.Z, right)
        bad_total = in_gate(s, Channel.Z, wrong)
        leak_part = (table[s][(Channel.Z, wrong)] * mean_photons * gate(0.0))
        z_good += w * good
        z_bad += w * (bad_total + dark_gate[0])
        z_ext += w * leak_part
        z_overlap += w * (bad_total - leak_part)
        z_dark += w * dark_gate[0]
        z_good += w * dark_gate[0]  # a dark count in the right gate
    z_total = z_good + z_bad
    # X basis.
    x_states = [s for s in (State.PLUS, State.MINUS) if s in table]
    x_good = x_bad = x_dark = x_vis = x_overlap = x_multi = 0.0
    for s in x_states:
        right, wrong = ((Channel.X_PLUS, Channel.X_MINUS) if s == State.PLUS
                        else (Channel.X_MINUS, Channel.X_PLUS))
        w = probs[s]
        good = in_gate(s, right, 1)
        bad = in_gate(s, wrong, 1)
        vis_part = table[s][(wrong, 1)] * mean_photons * gate(0.0)
        x_good += w * (good + dark_gate[right - 1])
        x_bad += w * (bad + dark_gate[wrong - 1])
        x_vis += w * vis_part
        x_overlap += w * (bad - vis_part)
        x_dark += w * dark_gate[wrong - 1]
        # Two photons of one pulse, one in each middle gate: already counted as one good and one
        # bad click above; under random assignment it is half an error of one event instead.
        a_good = table[s][(right, 1)] * gate(0.0)
        a_bad = table[s][(wrong, 1)] * gate(0.0)
        x_multi += w * p2 * 2 * a_good * a_bad * 0.5
    x_total = x_good + x_bad
    multi_fraction = (p2 * 2 * sum(arrival) / (mean_photons * sum(arrival))
                      if sum(arrival) > 0 else 0.0)
    return Expectation(
        phase_rad=phase_rad, slots_per_s=src.pulse_rate_hz, photon_probability=(p1, p2),
        arrival_probability=arrival, click_probability=click_probability,
        dark_probability=dark, click_rate_hz=rates,
        reference_rate_hz=src.pulse_rate_hz / sc.reference.divider,
        gate_probability=gate(0.0), multi_photon_fraction=multi_fraction,
        sifted_z_per_slot=z_total, sifted_x_per_slot=x_total,
        e_z=z_bad / z_total if z_total else 0.0, e_x=x_bad / x_total if x_total else 0.0,
        e_z_parts={"dark": z_dark / z_total, "extinction": z_ext / z_total,
                   "overlap": z_overlap / z_total} if z_total else {},
        e_x_parts={"dark": x_dark / x_total, "visibility": x_vis / x_total,
                   "overlap": x_overlap / x_total,
                   "multi_photon": x_multi / x_total} if x_total else {},
    )


def finite_key_rate(scenario: Scenario, exp: Expectation | None = None) -> dict:
    """Secret bits per second the key pipeline's formula gives for one expected block.

    ``exp`` defaults to the expectation at ``analysis.lock_phase_error_rad``. Returns the rate
    and the block's terms (``n_z``, ``n_x``, ``e_z``, ``e_x``, ``e_ph`` the phase-error bound,
    ``phi_1`` the single-photon phase error, ``delta`` the multi-photon share of ``n_z``,
    ``secret_bits``, ``abort_reason``).
    """
    from tbqkd.host import finite_key
    from tbqkd.host.polyhash import lanes_for

    ana = scenario.analysis
    exp = exp or expected(scenario, ana.lock_phase_error_rad)
    block = ana.block_duration_s
    n_z = int(exp.sifted_z_rate_hz() * block)
    n_x = int(exp.sifted_x_rate_hz() * block)
    a = scenario.alice
    pulses = int(exp.slots_per_s * block * (a.p_early + a.p_late))     # Alice's Z pulses
    report = finite_key.secret_key_length(
        n_z=n_z, errors_z=round(exp.e_z * n_z), n_x=n_x, e_x=round(exp.e_x * n_x),
        pulses=pulses,
        leak_ec_bits=math.ceil(ana.error_correction_efficiency * n_z * binary_entropy(exp.e_z)),
        leak_verify_bits=64 * lanes_for(-(-n_z // 8) + 8, ana.epsilon_correctness),
        source=source_parameters(scenario), security=security_parameters(scenario),
        thresholds=finite_key.AbortThresholds())
    return {"rate_bps": report.key_bits / block, "n_z": n_z, "n_x": n_x, "e_z": exp.e_z,
            "e_x": exp.e_x, "e_ph": report.phase_error_upper,
            "phi_1": report.phase_error_single,
            "delta": report.multiphoton_upper / n_z if n_z else 1.0,
            "secret_bits": report.key_bits, "abort_reason": report.abort_reason}


def source_parameters(scenario: Scenario):
    """The source as the key pipeline's security analysis sees it (g2(0), mean photon number)."""
    from tbqkd.host.finite_key import SourceParameters

    return SourceParameters(g2=scenario.source.g2,
                            mean_photon_number=min(1.0, scenario.source.efficiency))


def security_parameters(scenario: Scenario):
    """The scenario's secrecy and correctness parameters, for the key pipeline."""
    from tbqkd.host.finite_key import SecurityParameters

    ana = scenario.analysis
    return SecurityParameters(eps_sec=ana.epsilon_security, eps_cor=ana.epsilon_correctness)


def _basis_match(scenario: Scenario) -> float:
    """Share of gated clicks that are sifted Z or X events (Alice's and Bob's bases agree)."""
    a = scenario.alice
    zf = scenario.bob.z_fraction
    return (a.p_early + a.p_late) * zf + (a.p_plus + a.p_minus) * (1 - zf)


def calibrate(scenario: Scenario, target_bps: float | None = None,
              target_e_x: float = 0.10) -> tuple[float, float]:
    """Source efficiency and visibility meeting the key-rate and error-rate targets.

    Two conditions fix the two calibrated quantities: :func:`finite_key_rate` gives
    ``target_bps`` (default: ``analysis.target_secret_rate_bps``) and the X-basis error rate
    (the larger of the two), as the locked link measures it (at
    ``analysis.lock_phase_error_rad``), is ``target_e_x``. Of the two efficiencies giving the
    target rate at a visibility (rate rises with brightness, then falls as multi-photon pulses
    take over),
    the brighter one is taken: the dimmer one is dark-count limited with an X error above 11 %.
    Returns ``(efficiency, visibility)``.

    Raises
    ------
    ValueError
        If the targets cannot be met with a visibility in [0.5, 1].
    """
    target = scenario.analysis.target_secret_rate_bps if target_bps is None else target_bps
    lock_phase = scenario.analysis.lock_phase_error_rad

    def rate(eta: float, visibility: float) -> float:
        trial = scenario.with_overrides(source__efficiency=eta, bob__visibility=visibility)
        return finite_key_rate(trial)["rate_bps"]

    def brightest_best(visibility: float) -> tuple[float, float]:
        best = optimize.minimize_scalar(lambda le: -rate(math.exp(le), visibility),
                                        bounds=(math.log(1e-3), math.log(0.9)),
                                        method="bounded", options={"xatol": 1e-4})
        return math.exp(best.x), -best.fun

    def efficiency(visibility: float) -> float:
        eta_best, best = brightest_best(visibility)
        if best < target:
            raise ValueError(f"visibility {visibility:.3f} cannot reach {target} bit/s")
        return optimize.brentq(lambda eta: rate(eta, visibility) - target,
                               eta_best, 0.999, xtol=1e-7)

    def x_error(visibility: float) -> float:
        trial = scenario.with_overrides(source__efficiency=efficiency(visibility),
                                        bob__visibility=visibility)
        return expected(trial, lock_phase).e_x - target_e_x

    reachable = [v for v in np.linspace(0.5, 1.0, 51) if brightest_best(v)[1] >= target]
    if not reachable:
        raise ValueError(f"no visibility in [0.5, 1] reaches {target} bit/s")
    visibility = optimize.brentq(x_error, reachable[0], 1.0, xtol=1e-6)
    return efficiency(visibility), visibility


def gate_clicks(scenario: Scenario, time_ps: np.ndarray, channel: np.ndarray,
                fibre_delay_ps: float) -> tuple[np.ndarray, np.ndarray]:
    """Assign clicks to (slot, gate) from their times alone, as the host's sifting would.

    A click at ``t`` on channel ``c`` belongs to the slot ``k`` whose window
    ``[t_k + gs, t_k + gs + period)`` holds ``t - fibre_delay - delay_c``.

    Returns ``(slot, gate)``; ``gate`` is the bin (Z: 0 early, 1 late) or peak (X: 1 middle)
    whose gate holds the click, -1 for a click outside every gate of its channel (and for
    reference clicks).
    """
    clock = SlotClock.from_period(scenario.period_ps_fraction())
    num, den = clock.numerator, clock.denominator
    tau = scenario.alice.time_bin_separation_ps
    ana = scenario.analysis
    channel = np.asarray(channel)
    delays = np.zeros(4)
    delays[1:] = scenario.detectors.delay_ps
    relative = (np.asarray(time_ps, dtype=np.int64)
                - np.round(fibre_delay_ps + delays[channel]).astype(np.int64))
    shifted = relative - math.floor(ana.gate_start_ps)
    quotient = shifted // num                 # slot = floor(shifted * den / num), no overflow
    slot = quotient * den + ((shifted - quotient * num) * den) // num
    whole, frac = clock.split_ps(slot)
    within = (relative - whole).astype(np.float64) - frac
    gate = np.full(relative.size, -1, np.int8)
    is_z = channel == Channel.Z
    is_x = (channel == Channel.X_PLUS) | (channel == Channel.X_MINUS)
    for peak in (0, 1):
        low = ana.gate_start_ps + peak * tau
        gate[is_z & (within >= low) & (within < low + ana.gate_width_ps)] = peak
    low = ana.gate_start_ps + tau
    gate[is_x & (within >= low) & (within < low + ana.gate_width_ps)] = 1
    return slot, gate
