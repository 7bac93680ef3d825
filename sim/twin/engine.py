"""The twin: a seeded generator of time-ordered detection events, chunk by chunk.

Per chunk of slots ``[s0, s1)`` (``chunk_s`` of link time):

1. candidate photons: sorted slots from geometric gaps (:func:`~.source.draw_pulses`), never a
   loop over slots; blinking removes those in "off" periods;
2. Alice's state at those slots only (:mod:`~.alice`), then Eve if any (:mod:`~.eve`);
3. Bob's optics, the phase ``drift(t) + actuator`` and the timing (:func:`~.bob.route_photons`);
   candidates are thinned to each detector's efficiency;
4. reference pulses and dark counts of the detection-time window;
5. merge, sort, and hand out the events earlier than the *cut* — the earliest time any event of
   a later chunk can have (slot time of ``s1`` plus the smallest delay, Gaussian terms being
   truncated at 8 sigma) — keeping the rest for the next chunk; then dead time and afterpulsing
   (:func:`~.detectors.apply_dead_time`).

So chunks are contiguous, non-overlapping windows of detection time and the concatenated stream
is exactly time-ordered. Memory is bounded by the chunk size. Output depends only on the
scenario, the seed and ``chunk_s`` (Alice's states and the phase drift depend on the seed only).
The actuator code set with :meth:`Twin.set_actuator` between two chunks applies from the next
one: that is the closed loop with the host's phase feedback.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numba
import numpy as np

from .alice import AliceSource, CounterAlice, stream_key
from .analytic import Expectation, expected
from .bob import GAUSS_CLIP_SIGMA, PhaseDrift, route_parameters, route_photons
from .channel import LinkBudget
from .detectors import DeadTimeState, apply_dead_time, draw_dark_counts
from .eve import blinding_targets, intercept_resend
from .params import PHOTON_CHANNELS, Channel, Scenario, ScenarioError
from .source import Blinker, PulseStatistics, SlotClock, draw_pulses

__all__ = ["Chunk", "Twin", "TRUTH_FIELDS"]

#: Per-event arrays of a :class:`Chunk`, in file order.
TRUTH_FIELDS = ("time_ps", "channel", "slot", "alice_state", "peak", "photons_in_pulse",
                "is_dark", "is_afterpulse", "eve_knows")

_DTYPES = {"time_ps": np.int64, "channel": np.uint8, "slot": np.int64, "alice_state": np.int8,
           "peak": np.int8, "photons_in_pulse": np.int8, "is_dark": np.bool_,
           "is_afterpulse": np.bool_, "eve_knows": np.bool_}

_STREAM_PULSES, _STREAM_ROUTE, _STREAM_DEAD = 10, 11, 12


@dataclass
class Chunk:
    """Detections with detection time in ``[start_ps, end_ps)``, time-ordered, with truth.

    ``time_ps`` and ``channel`` are what a tagger would see; the rest is truth for tests:
    ``slot`` (-1 for dark counts and afterpulses), ``alice_state`` (:class:`State` code, -1 for
    none, reference pulses included), ``peak`` (Z: bin 0/1; X: peak 0/1/2; -1 otherwise),
    ``photons_in_pulse`` (1 or 2; 0 for no photon), ``is_dark``, ``is_afterpulse``, ``eve_knows``.
    """

    index: int
    start_ps: int
    end_ps: int
    first_slot: int
    end_slot: int
    actuator_code: int
    time_ps: np.ndarray
    channel: np.ndarray
    slot: np.ndarray
    alice_state: np.ndarray
    peak: np.ndarray
    photons_in_pulse: np.ndarray
    is_dark: np.ndarray
    is_afterpulse: np.ndarray
    eve_knows: np.ndarray
    lost_dead_time: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))

    def __len__(self) -> int:
        return int(self.time_ps.size)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-event arrays by name (:data:`TRUTH_FIELDS`)."""
        return {name: getattr(self, name) for name in TRUTH_FIELDS}


def _empty_events() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype) for name, dtype in _DTYPES.items()}


def _events(n: int, **values: object) -> dict[str, np.ndarray]:
    defaults = {"slot": -1, "alice_state": -1, "peak": -1, "photons_in_pulse": 0,
                "is_dark": False, "is_afterpulse": False, "eve_knows": False}
    out = {}
    for name, dtype in _DTYPES.items():
        value = values.get(name, defaults.get(name))
        out[name] = (np.asarray(value, dtype=dtype) if isinstance(value, np.ndarray)
                     else np.full(n, value, dtype=dtype))
    return out


@numba.njit(cache=True)
def _gather_truth(source, n_main, m_slot, m_state, m_peak, m_photons, m_eve,
                  x_slot, x_state, x_peak, x_photons, x_dark, x_ap, x_eve):
    # ``main`` are photon detections: never dark counts nor afterpulses.
    n = source.size
    slot = np.empty(n, np.int64)
    state = np.empty(n, np.int8)
    peak = np.empty(n, np.int8)
    photons = np.empty(n, np.int8)
    dark = np.empty(n, np.bool_)
    ap = np.empty(n, np.bool_)
    eve = np.empty(n, np.bool_)
    for i in range(n):
        j = source[i]
        if j < 0:  # an afterpulse
            slot[i], state[i], peak[i], photons[i] = -1, -1, -1, 0
            dark[i], ap[i], eve[i] = False, True, False
        elif j < n_main:
            slot[i], state[i], peak[i], photons[i] = m_slot[j], m_state[j], m_peak[j], \
                m_photons[j]
            dark[i], ap[i], eve[i] = False, False, m_eve[j]
        else:
            k = j - n_main
            slot[i], state[i], peak[i], photons[i] = x_slot[k], x_state[k], x_peak[k], \
                x_photons[k]
            dark[i], ap[i], eve[i] = x_dark[k], x_ap[k], x_eve[k]
    return slot, state, peak, photons, dark, ap, eve


_TRUTH_ONLY = ("slot", "alice_state", "peak", "photons_in_pulse", "is_dark", "is_afterpulse",
               "eve_knows")
_PHOTON_TRUTH = ("slot", "alice_state", "peak", "photons_in_pulse", "eve_knows")


def _gather(source: np.ndarray, main: dict[str, np.ndarray], extra: dict[str, np.ndarray],
            times: np.ndarray | None = None,
            channels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Events ``source`` of ``main`` (photons) followed by ``extra`` (-1: an afterpulse).

    ``times`` and ``channels``, when given, are used instead of gathering them.
    """
    n_main = main["time_ps"].size
    truth = _gather_truth(source, n_main, *(main[name] for name in _PHOTON_TRUTH),
                          *(extra[name] for name in _TRUTH_ONLY))
    out = dict(zip(_TRUTH_ONLY, truth, strict=True))
    if times is None:
        both_times = np.concatenate([main["time_ps"], extra["time_ps"]])
        both_channels = np.concatenate([main["channel"], extra["channel"]])
        times, channels = both_times[source], both_channels[source]
    out["time_ps"], out["channel"] = times, channels
    return out


def _seed(seed: int, stream: int, index: int) -> int:
    return stream_key(seed, stream * 1_000_003 + index) % 2 ** 32


class Twin:
    """The digital twin of the optics of one link.

    Parameters
    ----------
    scenario
        The link (see :class:`~.params.Scenario`).
    seed
        Everything random derives from it.
    alice
        Where Alice's states come from; default: the counter-based generator of ``seed``.
    """

    def __init__(self, scenario: Scenario, seed: int = 0,
                 alice: AliceSource | None = None) -> None:
        self._scenario = scenario
        self._seed     = int(seed)
        self._alice    = alice if alice is not None else CounterAlice(scenario.alice, seed)
        self._clock    = SlotClock.from_period(scenario.period_ps_fraction())
        self._budget   = LinkBudget.of(scenario)
        self._code     = scenario.actuator.initial_code
        self._drift    = PhaseDrift(scenario.drift, np.random.default_rng([self._seed, 5]))
        self._started  = False
        self._pulses   = self._pulse_statistics()

    @property
    def scenario(self) -> Scenario:
        """The scenario being simulated."""
        return self._scenario

    @property
    def clock(self) -> SlotClock:
        """Exact slot times of this link."""
        return self._clock

    @property
    def budget(self) -> LinkBudget:
        """Transmittances and delays of this link."""
        return self._budget

    @property
    def actuator_code(self) -> int:
        """The DAC code of Bob's phase shifter now."""
        return self._code

    def set_actuator(self, code: int) -> None:
        """Set Bob's phase-shifter DAC code; it applies from the next chunk.

        Raises
        ------
        ScenarioError
            If ``code`` is outside the DAC range.
        """
        self._scenario.actuator.phase_rad(code)
        self._code = int(code)

    def phase_rad(self, time_ps: float) -> float:
        """Interferometer phase seen by |+> at slot time ``time_ps`` of the last chunk (truth).

        Zero means |+> leaves by X+ with probability ``(1 + V) / 2``.
        """
        return (self._drift.value_at(time_ps) + self._scenario.actuator.phase_rad(self._code)
                + self._scenario.alice.x_phase_error_rad)

    def expected(self, phase_rad: float = 0.0) -> Expectation:
        """Analytic expectations of this link at a fixed interferometer phase.

        See :func:`tbqkd.sim.twin.analytic.expected`.
        """
        return expected(self._scenario, phase_rad=phase_rad)

    def _pulse_statistics(self) -> PulseStatistics:
        sc, budget = self._scenario, self._budget
        q = budget.candidate_probability
        honest = PulseStatistics.build(sc.source, q, q, 2)
        if sc.eve.photon_number_splitting:
            q_lossless = budget.bob_transmittance * budget.eta_max
            p1 = sc.source.one_photon_probability()
            p2 = sc.source.two_photon_probability()
            from_two = p2 * q_lossless
            if from_two >= honest.p_any:  # two-photon pulses alone suffice: block all singles
                return PulseStatistics(honest.p_any, 1.0, 0.0)
            block = 1 - (honest.p_any - from_two) / (p1 * q)
            return PulseStatistics.build(sc.source, q, q_lossless, 1, block1=block)
        if sc.eve.blinding:
            zf = sc.bob.z_fraction
            match = zf ** 2 + (1 - zf) ** 2
            weight = (zf * budget.keep_ratio[0]
                      + (1 - zf) * (budget.keep_ratio[1] + budget.keep_ratio[2]) / 2)
            photon = sc.source.one_photon_probability() + sc.source.two_photon_probability()
            return PulseStatistics(min(photon * match, honest.p_any * weight), 0.0, 0.0)
        return honest

    def chunks(self, duration_s: float, chunk_s: float = 1.0) -> Iterator[Chunk]:
        """Generate ``duration_s`` of link time as time-ordered chunks of ``chunk_s``.

        A twin runs once: make a new one for another run.

        Raises
        ------
        ScenarioError
            If the durations are not positive or the twin already ran.
        """
        if not duration_s > 0 or not chunk_s > 0:
            raise ScenarioError("duration_s and chunk_s must be > 0")
        if self._started:
            raise ScenarioError("this twin already ran; create a new Twin")
        self._started = True
        return self._run(duration_s, chunk_s)

    def _run(self, duration_s: float, chunk_s: float) -> Iterator[Chunk]:
        sc = self._scenario
        rate = sc.source.pulse_rate_hz
        total_slots = max(1, round(duration_s * rate))
        per_chunk = max(1, round(chunk_s * rate))
        det = sc.detectors
        blinded = sc.eve.blinding
        dark_rates = np.array([0.0, 0.0, 0.0] if blinded else det.dark_count_hz)
        dead_ps = np.array([sc.reference.dead_time_ps] + [det.dead_time_ps] * 3, dtype=np.int64)
        ap_probability = np.array([0.0] + [0.0 if blinded else det.afterpulse_probability] * 3)
        ap_delay = np.array([1.0] + [det.afterpulse_delay_ps] * 3)
        dead_state = DeadTimeState(4)
        dark_rng = np.random.default_rng([self._seed, 6])
        ref_rng = np.random.default_rng([self._seed, 7])
        blinker = (Blinker(sc.source, np.random.default_rng([self._seed, 8]))
                   if sc.source.blinking else None)
        carry = _empty_events()
        window_start = 0
        earliest = self._budget.earliest_offset_ps
        for index, first_slot in enumerate(range(0, total_slots, per_chunk)):
            end_slot = min(first_slot + per_chunk, total_slots)
            last = end_slot == total_slots
            photons = self._photon_events(index, first_slot, end_slot, blinker)
            references = self._reference_events(ref_rng, first_slot, end_slot)
            nominal_end = self._clock.time_of(end_slot) + math.floor(earliest)
            window_end = nominal_end
            if last:
                for part in (carry, photons, references):
                    window_end = max(window_end, int(part["time_ps"].max(initial=0)) + 1)
            dark_time, dark_channel = draw_dark_counts(
                dark_rng, dark_rates, np.array(PHOTON_CHANNELS), window_start, nominal_end)
            darks = _events(dark_time.size, time_ps=dark_time, channel=dark_channel,
                            is_dark=True)
            # The photons are the bulk: only time and channel are concatenated and sorted;
            # the truth fields are gathered once, at the end, from photons or the small rest.
            extra = {name: np.concatenate([carry[name], references[name], darks[name]])
                     for name in _DTYPES}
            all_times = np.concatenate([photons["time_ps"], extra["time_ps"]])
            all_channels = np.concatenate([photons["channel"], extra["channel"]])
            order = np.argsort(all_times, kind="stable")
            split = int(np.count_nonzero(all_times < window_end))
            later = order[split:]
            carry = _gather(later, photons, extra, all_times[later], all_channels[later])
            source, times, channels, lost = apply_dead_time(
                _seed(self._seed, _STREAM_DEAD, index), all_times, all_channels, dead_ps,
                ap_probability, ap_delay, dead_state, window_end, order=order[:split])
            out = _gather(source, photons, extra, times, channels)
            yield Chunk(index=index, start_ps=window_start, end_ps=window_end,
                        first_slot=first_slot, end_slot=end_slot, actuator_code=self._code,
                        lost_dead_time=lost, **out)
            window_start = window_end

    def _route_parameters(self, first_slot: int, end_slot: int) -> tuple[int, np.ndarray,
                                                                         np.ndarray]:
        sc, det = self._scenario, self._scenario.detectors
        grid = self._drift.grid(float(self._clock.time_of(first_slot)),
                                float(self._clock.time_of(end_slot)))
        first_int, par = route_parameters(
            self._clock, first_slot, z_fraction=sc.bob.z_fraction, leak=sc.alice.leak(),
            visibility=sc.bob.visibility,
            phase_offset_rad=sc.actuator.phase_rad(self._code) + sc.alice.x_phase_error_rad,
            tau_ps=sc.alice.time_bin_separation_ps, lifetime_ps=sc.source.lifetime_ps,
            sigma_ps=math.hypot(sc.source.excitation_jitter_ps, det.jitter_sigma_ps()),
            tail_fraction=det.jitter_tail_fraction, tail_ps=det.jitter_tail_ps,
            base_delay_ps=self._budget.fibre_delay_ps, drift_grid=grid)
        return first_int, par, grid[2]

    def _photon_events(self, index: int, first_slot: int, end_slot: int,
                       blinker: Blinker | None) -> dict[str, np.ndarray]:
        sc, budget = self._scenario, self._budget
        slots, photons = draw_pulses(_seed(self._seed, _STREAM_PULSES, index), first_slot,
                                     end_slot - first_slot, self._pulses)
        if blinker is not None:
            on = blinker.on_mask(slots, first_slot, end_slot)
            slots, photons = slots[on], photons[on]
        # A counter Alice is evaluated inside the routing kernel unless Eve needs the states.
        fused_alice = (isinstance(self._alice, CounterAlice)
                       and not sc.eve.intercept_resend_fraction > 0 and not sc.eve.blinding)
        states = (np.empty(slots.size, np.int8) if fused_alice
                  else self._alice.states(slots, first_slot, end_slot))
        delivered = states
        eve_knows = np.zeros(slots.size, np.bool_)
        forced_channel = forced_peak = np.empty(0, np.int8)  # no click forced by Eve
        if sc.eve.intercept_resend_fraction > 0:
            delivered, eve_knows = intercept_resend(self._seed, slots, states,
                                                    sc.eve.intercept_resend_fraction)
        elif sc.eve.photon_number_splitting:
            eve_knows = photons == 2
        elif sc.eve.blinding:
            forced_channel, forced_peak, eve_knows = blinding_targets(
                self._seed, slots, states, sc.bob.z_fraction)
        first_int, par, grid = self._route_parameters(first_slot, end_slot)
        times, channels, peaks, kept = route_photons(
            _seed(self._seed, _STREAM_ROUTE, index), slots, delivered, forced_channel,
            forced_peak, first_slot, first_int, par, budget.keep_ratio,
            np.asarray(sc.detectors.delay_ps, dtype=np.float64), grid,
            (self._alice.key, self._alice.edges) if fused_alice else None)
        if not kept.all():
            times, channels, slots, states = times[kept], channels[kept], slots[kept], states[kept]
            peaks, photons, eve_knows = peaks[kept], photons[kept], eve_knows[kept]
        # Photon events: the truth of _PHOTON_TRUTH only (never dark, never an afterpulse).
        return {"time_ps": times, "channel": channels, "slot": slots, "alice_state": states,
                "peak": peaks, "photons_in_pulse": photons, "eve_knows": eve_knows}

    def _reference_events(self, rng: np.random.Generator, first_slot: int,
                          end_slot: int) -> dict[str, np.ndarray]:
        ref = self._scenario.reference
        first = -(-first_slot // ref.divider) * ref.divider
        slots = np.arange(first, end_slot, ref.divider, dtype=np.int64)
        whole, frac = self._clock.split_ps(slots)
        jitter = np.clip(rng.standard_normal(slots.size), -GAUSS_CLIP_SIGMA,
                         GAUSS_CLIP_SIGMA) * ref.jitter_ps
        offset = frac + self._budget.fibre_delay_ps + ref.delay_ps + jitter
        times = whole + np.floor(offset + 0.5).astype(np.int64)
        return _events(slots.size, time_ps=times, channel=np.full(slots.size, Channel.REF),
                       slot=slots)
