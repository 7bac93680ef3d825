"""Bob: passive basis split, Z-arm arrival time, X-arm unbalanced interferometer, phase drift.

A photon from slot ``k`` (emitted at ``t_k``) in a state with late-bin population ``p_l``:

* Z arm (probability ``z_fraction``): arrives in the late bin with probability ``p_l``, at
  ``t_k + delay + bin * tau + emission delay``;
* X arm: the interferometer (delay ``tau``) gives three peaks at ``0, tau, 2 tau``. Each side
  peak carries ``(1 - p_l)/2`` resp. ``p_l/2`` of the photon, split evenly between the two
  outputs; the middle peak carries 1/2, split ``(1 ± V c cos phi) / 2`` between X+ and X-, with
  ``c = 1`` for |+>, |-> (|-> adds pi) and ``c = 0`` for the (incoherent) Z states, and
  ``phi = drift(t) + actuator + alice.x_phase_error_rad``.

The emission delay is exponential (radiative lifetime) plus Gaussian excitation jitter; the
detector adds Gaussian jitter (plus an optional exponential tail) and its electrical delay.
Gaussian terms are truncated at 8 sigma, which bounds how early an event can be (needed to hand
out chunks in time order) and changes nothing measurable (probability 1e-15).

The phase is evaluated at the slot's emission time: the fibre delay is a constant shift of a
stationary process.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .alice import counter_state_one
from .params import DriftParams
from .rng import GOLDEN, exponential, exponential_of, fast_cos, mix64, new_state, normal_of, unit

__all__ = ["PhaseDrift", "route_parameters", "route_photons", "GAUSS_CLIP_SIGMA"]

#: Gaussian timing terms are truncated at this many standard deviations.
GAUSS_CLIP_SIGMA = 8.0


class PhaseDrift:
    """Seeded random walk plus sinusoid on a grid of ``grid_step_s``, continued across chunks.

    Grid point ``j`` lies at ``j * grid_step`` from the start of the run; one Gaussian increment
    is drawn per grid point in order, so the process does not depend on the chunk size.
    """

    def __init__(self, params: DriftParams, rng: np.random.Generator) -> None:
        self._params    = params
        self._rng       = rng
        self._step_ps   = params.grid_step_s * 1e12
        self._sigma     = params.random_walk_rad_per_sqrt_s * math.sqrt(params.grid_step_s)
        self._walk      = np.array([params.initial_phase_rad])  # walk at grid points 0..n-1
        self._walk_from = 0                                      # grid index of _walk[0]

    def grid(self, start_ps: float, end_ps: float) -> tuple[int, float, np.ndarray]:
        """Drift values on the grid points covering ``[start_ps, end_ps]``.

        Returns ``(first_index, step_ps, values)``; value ``i`` is at
        ``(first_index + i) * step_ps``. Calls must not go back before the previous start.
        """
        first = int(start_ps // self._step_ps)
        last = int(end_ps // self._step_ps) + 1
        if first < self._walk_from:
            raise ValueError("drift grid requested backwards in time")
        have = self._walk_from + self._walk.size - 1
        if last > have:
            steps = self._rng.normal(0.0, self._sigma, last - have)
            self._walk = np.concatenate([self._walk, self._walk[-1] + np.cumsum(steps)])
        keep_from = first - self._walk_from
        self._walk, self._walk_from = self._walk[keep_from:], first
        times_s = np.arange(first, last + 1) * self._params.grid_step_s
        sine = self._params.sine_amplitude_rad * np.sin(2 * np.pi * times_s
                                                        / self._params.sine_period_s)
        return first, self._step_ps, self._walk[:last - first + 1] + sine

    def value_at(self, time_ps: float) -> float:
        """Drift at ``time_ps`` (must lie in the range of the last :meth:`grid` call)."""
        index = (time_ps / self._step_ps) - self._walk_from
        i = int(index)
        frac = index - i
        sine = self._params.sine_amplitude_rad * math.sin(
            2 * math.pi * time_ps * 1e-12 / self._params.sine_period_s)
        return float(self._walk[i] * (1 - frac) + self._walk[i + 1] * frac) + sine


# Indices of the packed route parameters (one float64 array, so kernels share one signature).
(_Z_FRACTION, _LEAK, _VISIBILITY, _PHASE_OFFSET, _TAU, _LIFETIME, _SIGMA, _TAIL_FRACTION,
 _TAIL, _BASE_DELAY, _GRID_SHIFT, _GRID_STEP, _FIRST_FRAC, _PERIOD) = range(14)

_TAIL_SALT = np.uint64(0x5DEECE66D2B7E151)  # seeds the generator of the rare exact tails


@numba.njit(inline="always", cache=True)
def _p_late(code, leak):
    if code == 0:
        return leak
    if code == 1:
        return 1.0 - leak
    return 0.5


@numba.njit(cache=True)
def _route(seed, slots, states, forced_channel, forced_peak, first_slot, first_int, par,
           keep_ratio, channel_delay, grid, alice_key, alice_edges, fill_states):
    # One loop. The parameters are held in locals and the main generator's counter in a
    # register (SplitMix64 of ``seed``); only the rare exact tails use ``tail_state``. One
    # uniform picks the arm, the bin or peak and the X output (its sub-intervals are uniform).
    counter = np.uint64(seed)
    tail_state = new_state(mix64(np.uint64(seed) ^ _TAIL_SALT))
    n = slots.size
    times = np.empty(n, np.int64)
    channels = np.empty(n, np.uint8)
    peaks = np.empty(n, np.int8)
    keep = np.empty(n, np.bool_)
    z_fraction, leak, visibility = par[_Z_FRACTION], par[_LEAK], par[_VISIBILITY]
    phase_offset, tau, lifetime, sigma = par[_PHASE_OFFSET], par[_TAU], par[_LIFETIME], \
        par[_SIGMA]
    tail_fraction, tail = par[_TAIL_FRACTION], par[_TAIL]
    grid_shift, grid_step = par[_GRID_SHIFT], par[_GRID_STEP]
    first_frac, period = par[_FIRST_FRAC], par[_PERIOD]
    delay = channel_delay + par[_BASE_DELAY]
    thin = keep_ratio.min() < 1.0
    last_grid = grid.size - 2
    to_x = 1.0 / (1.0 - z_fraction) if z_fraction < 1.0 else 0.0  # multiplications, not
    per_grid_step = 1.0 / grid_step                                  # divisions, in the loop
    for i in range(n):
        since_first = (slots[i] - first_slot) * period + first_frac
        kept = True
        if forced_channel[i] >= 0:
            channel = np.int64(forced_channel[i])
            peak = np.int64(forced_peak[i])
            offset = tau * peak
        else:
            if fill_states:
                code = counter_state_one(alice_key, slots[i], alice_edges)
                states[i] = code
            else:
                code = states[i]
            p_late = _p_late(code, leak)
            counter += GOLDEN
            u = unit(mix64(counter))
            if u < z_fraction:                              # Z arm; u again for the bin
                channel = 1
                peak = 1 if u < z_fraction * p_late else 0
            else:
                r = (u - z_fraction) * to_x                 # uniform again, for the peak
                side = 0.5 * (1.0 - p_late)
                if r < side:                                # early side peak, outputs 50/50
                    peak = 0
                    channel = 2 if r < 0.5 * side else 3
                elif r < 0.5:                               # late side peak
                    peak = 2
                    channel = 2 if r < 0.5 * (side + 0.5) else 3
                else:                                       # middle peak: interference
                    peak = 1
                    p_plus = 0.5
                    if code >= 2:
                        position = (since_first + grid_shift) * per_grid_step
                        j = min(int(position), last_grid)
                        w = position - j
                        phase = grid[j] * (1.0 - w) + grid[j + 1] * w + phase_offset
                        if code == 3:
                            phase += math.pi
                        p_plus = 0.5 * (1.0 + visibility * fast_cos(phase))
                    channel = 2 if r < 0.5 + 0.5 * p_plus else 3
            if thin:
                counter += GOLDEN
                kept = unit(mix64(counter)) < keep_ratio[channel - 1]
            counter += GOLDEN
            offset = tau * peak + exponential_of(unit(mix64(counter)), lifetime)
        if sigma > 0.0:
            counter += GOLDEN
            g = normal_of(unit(mix64(counter)), tail_state)
            offset += min(max(g, -GAUSS_CLIP_SIGMA), GAUSS_CLIP_SIGMA) * sigma
        if tail_fraction > 0.0:
            counter += GOLDEN
            if unit(mix64(counter)) < tail_fraction:
                offset += exponential(tail_state, tail)
        offset += delay[channel - 1]
        times[i] = first_int + np.int64(math.floor(since_first + offset + 0.5))
        channels[i] = channel
        peaks[i] = peak
        keep[i] = kept
    return times, channels, peaks, keep


def route_parameters(clock, first_slot: int, *, z_fraction: float, leak: float,
                     visibility: float, phase_offset_rad: float, tau_ps: float,
                     lifetime_ps: float, sigma_ps: float, tail_fraction: float, tail_ps: float,
                     base_delay_ps: float, drift_grid: tuple[int, float, np.ndarray]
                     ) -> tuple[int, np.ndarray]:
    """Pack the route parameters of a chunk: ``(first slot's integer ps time, params)``.

    ``sigma_ps`` is the combined rms of the excitation and detector Gaussian jitters.
    """
    grid_first, grid_step_ps, _ = drift_grid
    whole, frac = clock.split_ps(np.array([first_slot]))
    first_int = int(whole[0])
    par = np.array([z_fraction, leak, visibility, phase_offset_rad, tau_ps, lifetime_ps,
                    sigma_ps, tail_fraction, tail_ps, base_delay_ps,
                    first_int - grid_first * grid_step_ps, grid_step_ps, float(frac[0]),
                    clock.numerator / clock.denominator], dtype=np.float64)
    return first_int, par


def route_photons(seed: int, slots: np.ndarray, states: np.ndarray, forced_channel: np.ndarray,
                  forced_peak: np.ndarray, first_slot: int, first_int: int, par: np.ndarray,
                  keep_ratio: np.ndarray, channel_delay_ps: np.ndarray, grid: np.ndarray,
                  counter_alice: tuple[int, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Send candidate photons through Bob: detector, peak, detection time, efficiency kept.

    ``forced_channel >= 0`` marks clicks forced by a blinding attack (no optics, no emission
    delay, always registered). ``keep_ratio[d]`` is detector ``d``'s efficiency divided by the
    largest one (candidates were drawn with the largest). ``first_int`` and ``par`` come from
    :func:`route_parameters`; ``grid`` is the drift on its grid. Slot times are exact at
    ``first_slot`` and float64 offsets from it within the chunk (error far below 1 ps).
    ``counter_alice = (key, edges)`` of a :class:`~.alice.CounterAlice`: Alice's states are
    computed here, in the same pass, and written into ``states`` (an int8 output array).

    Returns
    -------
    time_ps, channel, peak, kept
        int64, uint8, int8 (Z: bin 0/1; X: peak 0/1/2), bool.
    """
    key, edges = counter_alice if counter_alice is not None else (0, np.empty(0))
    return _route(seed, slots, states, forced_channel, forced_peak, first_slot, first_int, par,
                  keep_ratio, channel_delay_ps, grid, np.uint64(key),
                  np.asarray(edges, dtype=np.float64), counter_alice is not None)
