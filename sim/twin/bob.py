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

from .params import DriftParams
from .rng import (
    EXP_TAIL_U,
    GOLDEN,
    exponential,
    exponential_body,
    exponential_tail,
    fast_cos,
    high_unit,
    is_normal_tail,
    low_unit,
    mix64,
    new_state,
    normal_body,
    normal_tail,
    uniform,
    unit,
)

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


#: Photons routed per block: the block's random draws, Alice's states and tabulated variates are
#: computed in separate loops that vectorise, then combined in one scalar loop (L1-resident).
_BLOCK = 512


@numba.njit(cache=True)
def _route(seed, slots, states, forced_channel, forced_peak, first_slot, first_int, par,
           keep_ratio, channel_delay, grid, alice_key, alice_edges, fill_states, any_forced):
    # Photon i of the call uses the two 64-bit counter-based draws mix64(seed + (2i+1) golden)
    # and mix64(seed + (2i+2) golden), each split into two 32-bit uniforms: the arm, bin or
    # peak and X output (one uniform, whose sub-intervals are uniform again), the emission
    # delay, the Gaussian jitter and the efficiency thinning. The rare exact tails and the
    # optional jitter tail draw from ``tail_state``, in photon order.
    #
    # Per block of photons: loops without branches (the draws, Alice's states, the tabulated
    # bodies, the time offsets, then the outcome by arithmetic on comparisons with per-state
    # thresholds: the 50/50 arm choice is unpredictable, a branch would miss half the time),
    # and short scans that fix up the few photons that need more (exact tails, the phase of
    # the middle X peak of |+> and |->, thinning, clicks forced by Eve).
    tail_state = new_state(mix64(np.uint64(seed) ^ _TAIL_SALT))
    n = slots.size
    times = np.empty(n, np.int64)
    channels = np.empty(n, np.uint8)
    peaks = np.empty(n, np.int8)
    keep = np.ones(n, np.bool_)
    z_fraction, leak, visibility = par[_Z_FRACTION], par[_LEAK], par[_VISIBILITY]
    phase_offset, tau, lifetime, sigma = par[_PHASE_OFFSET], par[_TAU], par[_LIFETIME], \
        par[_SIGMA]
    tail_fraction, tail = par[_TAIL_FRACTION], par[_TAIL]
    grid_shift, grid_step = par[_GRID_SHIFT], par[_GRID_STEP]
    first_frac, period = par[_FIRST_FRAC], par[_PERIOD]
    delay = channel_delay + par[_BASE_DELAY] + 0.5  # + 0.5: rounding by floor
    thin = keep_ratio.min() < 1.0
    last_grid = grid.size - 2
    per_grid_step = 1.0 / grid_step
    x_fraction = 1.0 - z_fraction
    # Alice's state is the number of edges <= u: padded to three edges (2.0 is never reached).
    edge = np.full(3, 2.0)
    edge[:alice_edges.size] = alice_edges
    edge0, edge1, edge2 = edge[0], edge[1], edge[2]
    # Per state code (|e>, |l>, |+>, |->), on the first uniform u: in the Z arm (u <
    # z_fraction) the late bin below z_late; in the X arm the early side peak below side0 (X+
    # below side0_plus), the late side peak below middle (X+ below side2_plus), else the middle
    # peak (X+ below middle_plus: 3/4 of the X arm for Z states; for X states it depends on
    # the phase, fixed up below).
    z_late = np.empty(4)
    side0_plus = np.empty(4)
    side0 = np.empty(4)
    side2_plus = np.empty(4)
    for code in range(4):
        p_late = leak if code == 0 else (1.0 - leak if code == 1 else 0.5)
        side = 0.5 * (1.0 - p_late)
        z_late[code] = z_fraction * p_late
        side0_plus[code] = z_fraction + x_fraction * 0.5 * side
        side0[code] = z_fraction + x_fraction * side
        side2_plus[code] = z_fraction + x_fraction * 0.5 * (side + 0.5)
    middle = z_fraction + x_fraction * 0.5
    middle_plus = z_fraction + x_fraction * 0.75
    bits1 = np.empty(_BLOCK, np.uint64)
    bits2 = np.empty(_BLOCK, np.uint64)
    base = np.empty(_BLOCK)       # time offset from the chunk's first slot, without peak, delay
    jitter = np.empty(_BLOCK)     # Gaussian jitter (ps), plus the optional exponential tail
    codes = np.empty(_BLOCK, np.int8)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        drawn = np.uint64(seed) + np.uint64(2 * start) * GOLDEN
        for k in range(m):
            bits1[k] = mix64(drawn + np.uint64(2 * k + 1) * GOLDEN)
            bits2[k] = mix64(drawn + np.uint64(2 * k + 2) * GOLDEN)
        if fill_states:  # the counter Alice (alice.counter_state_one), inline
            for k in range(m):
                u = unit(mix64(alice_key + np.uint64(slots[start + k]) * GOLDEN + GOLDEN))
                codes[k] = (u >= edge0) + (u >= edge1) + (u >= edge2)
            states[start:start + m] = codes[:m]
        else:
            codes[:m] = states[start:start + m]
        for k in range(m):
            since_first = (slots[start + k] - first_slot) * period + first_frac
            g = min(max(normal_body(high_unit(bits2[k])), -GAUSS_CLIP_SIGMA),
                    GAUSS_CLIP_SIGMA) * sigma
            jitter[k] = g
            base[k] = since_first + lifetime * exponential_body(low_unit(bits1[k])) + g
        for k in range(m):  # the exact tails (about 1 % of the photons), the jitter tail
            u_emission = low_unit(bits1[k])
            u_gauss = high_unit(bits2[k])
            if not (u_emission >= EXP_TAIL_U or is_normal_tail(u_gauss) or tail_fraction > 0.0):
                continue
            emission = exponential_body(u_emission)
            if u_emission >= EXP_TAIL_U:
                emission = exponential_tail(tail_state)
            g = normal_body(u_gauss)
            if is_normal_tail(u_gauss):
                g = normal_tail(tail_state, u_gauss >= 0.5)
            g = min(max(g, -GAUSS_CLIP_SIGMA), GAUSS_CLIP_SIGMA) * sigma
            if tail_fraction > 0.0 and uniform(tail_state) < tail_fraction:
                g += exponential(tail_state, tail)
            jitter[k] = g
            since_first = (slots[start + k] - first_slot) * period + first_frac
            base[k] = since_first + lifetime * emission + g
        for k in range(m):
            i = start + k
            code = codes[k]
            u = high_unit(bits1[k])
            in_z = np.int64(u < z_fraction)
            in_side0 = np.int64(u < side0[code])       # implies in_side2
            in_side2 = np.int64(u < middle)
            x_peak = 1 + in_side2 - 2 * in_side0          # 0, 2 or 1
            threshold = (middle_plus + in_side2 * (side2_plus[code] - middle_plus)
                         + in_side0 * (side0_plus[code] - side2_plus[code]))
            peak = in_z * np.int64(u < z_late[code]) + (1 - in_z) * x_peak
            channel = 1 + (1 - in_z) * (1 + np.int64(u >= threshold))
            peaks[i] = peak
            channels[i] = channel
            times[i] = first_int + np.int64(math.floor(base[k] + tau * peak
                                                       + delay[channel - 1]))
        for k in range(m):  # the middle X peak of X states: the output depends on the phase
            i = start + k
            code = codes[k]
            if code < 2 or peaks[i] != 1 or channels[i] == 1:
                continue
            since_first = (slots[i] - first_slot) * period + first_frac
            position = (since_first + grid_shift) * per_grid_step
            j = min(int(position), last_grid)
            w = position - j
            phase = grid[j] * (1.0 - w) + grid[j + 1] * w + phase_offset
            if code == 3:
                phase += math.pi
            plus = middle + x_fraction * 0.25 * (1.0 + visibility * fast_cos(phase))
            channel = 2 if high_unit(bits1[k]) < plus else 3
            channels[i] = channel
            times[i] = first_int + np.int64(math.floor(base[k] + tau + delay[channel - 1]))
        if thin:
            for k in range(m):
                i = start + k
                keep[i] = low_unit(bits2[k]) < keep_ratio[channels[i] - 1]
        if any_forced:  # blinding: Eve's click, no optics, no emission delay, registered
            for k in range(m):
                i = start + k
                if forced_channel[i] < 0:
                    continue
                channel = np.int64(forced_channel[i])
                peak = np.int64(forced_peak[i])
                since_first = (slots[i] - first_slot) * period + first_frac
                channels[i], peaks[i], keep[i] = channel, peak, True
                times[i] = first_int + np.int64(math.floor(since_first + tau * peak + jitter[k]
                                                           + delay[channel - 1]))
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
    delay, always registered); ``forced_channel`` and ``forced_peak`` may be empty (none).
    ``keep_ratio[d]`` is detector ``d``'s efficiency divided by the largest one (candidates
    were drawn with the largest). ``first_int`` and ``par`` come from
    :func:`route_parameters`; ``grid`` is the drift on its grid. Slot times are exact at
    ``first_slot`` and float64 offsets from it within the chunk (error far below 1 ps).
    ``counter_alice = (key, edges)`` of a :class:`~.alice.CounterAlice`: Alice's states are
    computed here, in the same pass, and written into ``states`` (an int8 output array).
    The result depends on ``seed`` and the photons only (counter-based draws per photon).

    Returns
    -------
    time_ps, channel, peak, kept
        int64, uint8, int8 (Z: bin 0/1; X: peak 0/1/2), bool.
    """
    key, edges = counter_alice if counter_alice is not None else (0, np.empty(0))
    return _route(seed, slots, states, forced_channel, forced_peak, first_slot, first_int, par,
                  keep_ratio, channel_delay_ps, grid, np.uint64(key),
                  np.asarray(edges, dtype=np.float64), counter_alice is not None,
                  bool(forced_channel.size and forced_channel.max() >= 0))
