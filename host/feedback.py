"""Interferometer phase feedback: dither-and-demodulate lock, fringe hops, fringe fit.

Bob's X-arm interferometer has the phase ``phi = drift(t) + k * code`` (``code`` the 16-bit DAC
code of the phase shifter, ``k`` radians per code). The core's error-signal windows give, per
window, the sifted X events and the X errors among them; their ratio follows the fringe::

    e(phi) = a - b * cos(phi)          (a ~ 0.5, b ~ V / 2, minimum a - b at phi = 0 mod 2 pi)

which is even in ``phi``: one window's error rate does not tell on which side of the minimum
the phase lies. :class:`PhaseController` therefore dithers the code by ``+-d`` on alternate
windows around its set point and demodulates each pair of consecutive windows (codes ``m +- h``,
rates ``e_hi``, ``e_lo``) in both quadratures::

    e_hi - e_lo     = 2 b sin(x) sin(h)       (first harmonic: the gradient, gives the sign)
    2 a - e_hi - e_lo = 2 b cos(x) cos(h)     (mean level: on or off the fringe minimum)
    x = atan2((e_hi - e_lo) cos h, (2 a - e_hi - e_lo) sin h)

``x`` is the phase of the pair's mid code ``m`` from the nearest fringe minimum, so
``m - x / k`` estimates the best code; the set point moves a fraction ``gain`` of the way there
(for small ``x`` this is the classic extremum-seeking integrator, with gain ``gain / (b k)`` on
the gradient ``(e_hi - e_lo) / (2 h)``). Because the estimate is anchored to the codes that
were actually in effect during the measured windows (the controller keeps the codes it issued
in a queue ``actuation_delay_windows`` long, or the caller passes the code in effect), a delay
between measurement and actuation does not make the loop overshoot. The atan2 form also works
far from the minimum (no stall at the fringe maximum), which is what reacquisition relies on.

Fringe hops: the set point is kept at least ``hop_margin_rad`` from both ends of the DAC range;
when it gets closer it jumps by exactly one fringe, ``2 pi`` in codes, towards the centre, which
leaves the interferometer (and the error rate) unchanged. The set point is the loop's only
integrator and is clamped to the range the dither can reach, so it cannot wind up.

Lock detector: a window is out of lock when its error rate exceeds the floor expected at that
window's dither, ``a - b cos(d)``, by more than ``lock_threshold`` plus ``lock_sigmas``
binomial standard deviations. After ``reacquire_after_windows`` consecutive out-of-lock windows
the controller reacquires: larger dither (``reacquire_dither_rad``) and full steps (gain 1)
until a window is back in lock.

Windows with fewer than ``min_events`` sifted X events (source off, link down) change nothing
but are counted; the dither goes on. Failure modes: a wrong ``codes_per_rad`` (beyond ~30 %)
or fringe ``a``, ``b`` make the steps too large or small (use :func:`fit_fringe` at start-up);
a phase that moves by more than ~1 rad per window cannot be tracked.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy.optimize import curve_fit

__all__ = ["FeedbackConfig", "PhaseController", "FringeFit", "fit_fringe", "scan_codes",
           "FeedbackError", "FeedbackConfigError", "FringeFitError"]

_logger = logging.getLogger(__name__)

TWO_PI = 2 * math.pi


def _log(level: int, message: str, *args: object) -> None:
    _logger.log(level, message, *args)


class FeedbackError(ValueError):
    """Counts that cannot come from an error-signal window."""


class FeedbackConfigError(ValueError):
    """A feedback configuration that cannot work (see :meth:`FeedbackConfig.validate`)."""


class FringeFitError(ValueError):
    """A DAC scan with too few points or events, or no visible fringe."""


@dataclass(frozen=True)
class FeedbackConfig:
    """Settings of :class:`PhaseController` (defaults tuned on the ``paper-120km`` scenario).

    ``codes_per_rad`` and the fringe ``fringe_mean`` (a), ``fringe_amplitude`` (b) come from a
    start-up scan (:meth:`from_fit`). The integration window itself is set in the core
    (``ReceiverInterface.set_phase_window``); the controller sees one call per window.
    """

    codes_per_rad: float                      # DAC codes per radian of interferometer phase
    dither_rad: float = 0.15                  # dither amplitude while locked
    gain: float = 0.3                         # fraction of the estimated error corrected/window
    dac_bits: int = 16                        # DAC width: codes 0 .. 2**dac_bits - 1
    hop_margin_rad: float = math.pi / 2       # hop by 2 pi when the set point gets this close
    fringe_mean: float = 0.5                  # a in e = a - b cos(phi)
    fringe_amplitude: float = 0.4             # b (a - b: the error-rate floor at lock)
    lock_threshold: float = 0.05              # excess error rate that means out of lock
    lock_sigmas: float = 3.0                  # plus this many binomial standard deviations
    min_events: int = 100                     # fewer sifted X events: window not used
    actuation_delay_windows: int = 1          # code from window n's counts acts in n + this
    reacquire_after_windows: int = 2          # out-of-lock windows in a row before reacquiring
    reacquire_dither_rad: float = math.pi / 4 # dither amplitude while reacquiring
    max_pair_gap_windows: int = 4             # older samples are not paired with a new one

    @property
    def max_code(self) -> int:
        return (1 << self.dac_bits) - 1

    @property
    def fringe_codes(self) -> float:
        """One fringe (2 pi) in codes: the size of a fringe hop."""
        return TWO_PI * self.codes_per_rad

    @property
    def floor(self) -> float:
        """Error rate at the fringe minimum without dither, ``a - b``."""
        return self.fringe_mean - self.fringe_amplitude

    @classmethod
    def from_fit(cls, fit: FringeFit, **settings: object) -> FeedbackConfig:
        """Configuration with ``codes_per_rad`` and the fringe taken from a :class:`FringeFit`."""
        return cls(codes_per_rad=fit.codes_per_rad, fringe_mean=fit.mean,
                   fringe_amplitude=fit.amplitude, **settings)

    def validate(self) -> None:
        """Check that the settings can work.

        Raises
        ------
        FeedbackConfigError
            On a non-positive scale, a dither outside ``(0, pi/2)``, a gain outside ``(0, 1]``,
            an impossible fringe, negative counts or delays, or a DAC range too small to hold
            one fringe plus both hop margins.
        """
        def bad(message: str) -> FeedbackConfigError:
            return FeedbackConfigError(f"feedback config: {message}")

        if not (math.isfinite(self.codes_per_rad) and self.codes_per_rad > 0):
            raise bad(f"codes_per_rad must be positive, got {self.codes_per_rad}")
        if not 1 <= self.dac_bits <= 32:
            raise bad(f"dac_bits must be 1..32, got {self.dac_bits}")
        for name in ("dither_rad", "reacquire_dither_rad"):
            value = getattr(self, name)
            if not 0 < value < math.pi / 2:
                raise bad(f"{name} must lie in (0, pi/2), got {value}")
        if not 0 < self.gain <= 1:
            raise bad(f"gain must lie in (0, 1], got {self.gain}")
        if not (0 < self.fringe_amplitude <= self.fringe_mean
                and self.fringe_mean + self.fringe_amplitude <= 1):
            raise bad(f"fringe needs 0 < b <= a and a + b <= 1, got a={self.fringe_mean}, "
                      f"b={self.fringe_amplitude}")
        if self.lock_threshold <= 0 or self.lock_sigmas < 0:
            raise bad("lock_threshold must be positive and lock_sigmas non-negative")
        if self.min_events < 1:
            raise bad(f"min_events must be at least 1, got {self.min_events}")
        if self.actuation_delay_windows < 1:
            raise bad("actuation_delay_windows must be at least 1 (the next window)")
        if self.reacquire_after_windows < 1 or self.max_pair_gap_windows < 1:
            raise bad("reacquire_after_windows and max_pair_gap_windows must be at least 1")
        if self.hop_margin_rad < max(self.dither_rad, self.reacquire_dither_rad):
            raise bad("hop_margin_rad must be at least the (reacquisition) dither")
        needed = self.fringe_codes + 2 * self.hop_margin_rad * self.codes_per_rad
        if needed > self.max_code:
            raise bad(f"the DAC range ({self.max_code} codes) must hold one fringe plus both "
                      f"hop margins ({needed:.0f} codes at {self.codes_per_rad:.1f} codes/rad): "
                      "lower hop_margin_rad or use a phase shifter with a range above 2 pi")


class _Issued(NamedTuple):
    code: int              # code in effect during the window
    dither_rad: float      # its dither amplitude (0: not dithered)


class _Sample(NamedTuple):
    code: int
    rate: float
    window: int


class PhaseController:
    """Dither-and-demodulate phase lock with fringe hops, lock detector and reacquisition.

    Call :meth:`update` once per error-signal window, in order, with that window's counts; it
    returns the DAC code to apply so that it is in effect ``actuation_delay_windows`` windows
    later (1: the next window). The windows before the first returned code takes effect run at
    ``initial_code``. See the module docstring for the algorithm.

    Raises
    ------
    FeedbackConfigError
        If the configuration is invalid or ``initial_code`` lies outside the DAC range.
    """

    def __init__(self, config: FeedbackConfig, initial_code: int) -> None:
        config.validate()
        if not 0 <= initial_code <= config.max_code:
            raise FeedbackConfigError(f"initial code {initial_code} outside 0..{config.max_code}")
        self._config      = config
        self._setpoint    = float(initial_code)
        self._code        = round(initial_code)
        self._sign        = 1
        self._pending     = deque([_Issued(self._code, 0.0)]
                                  * config.actuation_delay_windows)
        self._last: _Sample | None = None
        self._reacquiring = False
        self._locked      = True
        self._windows     = 0
        self._skipped     = 0
        self._rejected    = 0
        self._updates     = 0
        self._hops        = 0
        self._out_windows = 0
        self._out_run     = 0
        self._longest_run = 0
        self._reacquisitions = 0
        self._x_sifted    = 0
        self._x_errors    = 0

    @property
    def config(self) -> FeedbackConfig:
        return self._config

    @property
    def code(self) -> int:
        """The last code returned by :meth:`update` (``initial_code`` before the first)."""
        return self._code

    @property
    def setpoint(self) -> float:
        """Current estimate of the best code (the dither is applied around it)."""
        return self._setpoint

    @property
    def locked(self) -> bool:
        """False from an out-of-lock window until the next window in lock."""
        return self._locked

    @property
    def stats(self) -> dict:
        """Counters since construction.

        ``windows`` (counted by :meth:`update`), ``skipped_windows`` (below ``min_events``),
        ``rejected_windows`` (bad counts), ``updates`` (set-point updates), ``hops``,
        ``out_of_lock_windows``, ``out_of_lock_run`` (current), ``longest_out_of_lock_run``,
        ``reacquisitions``, ``locked``, ``reacquiring``, ``setpoint``, ``code``, ``x_sifted``,
        ``x_errors`` and ``error_rate`` (over the windows used; None before any). JSON-ready.
        """
        return {"windows": self._windows, "skipped_windows": self._skipped,
                "rejected_windows": self._rejected, "updates": self._updates,
                "hops": self._hops, "out_of_lock_windows": self._out_windows,
                "out_of_lock_run": self._out_run, "longest_out_of_lock_run": self._longest_run,
                "reacquisitions": self._reacquisitions, "locked": self._locked,
                "reacquiring": self._reacquiring, "setpoint": float(self._setpoint),
                "code": self._code, "x_sifted": self._x_sifted, "x_errors": self._x_errors,
                "error_rate": self._x_errors / self._x_sifted if self._x_sifted else None}

    def update(self, x_sifted: int, x_errors: int, code_in_effect: int | None = None) -> int:
        """Take one window's counts and return the DAC code to apply.

        ``code_in_effect`` is the DAC code that acted during this window, if the caller knows
        it (the twin's ``chunk.actuator_code``, a DAC read-back); it overrides the controller's
        own bookkeeping (the code it returned ``actuation_delay_windows`` calls ago), which
        makes the loop immune to a latency that differs from the configured one.

        Raises
        ------
        FeedbackError
            If the counts are not integers with ``0 <= x_errors <= x_sifted`` or
            ``code_in_effect`` lies outside the DAC range. The window is counted in
            ``rejected_windows`` and the state is otherwise unchanged; pass ``update(0, 0)``
            for it if the window did elapse.
        """
        cfg = self._config
        if (isinstance(x_sifted, bool) or isinstance(x_errors, bool)
                or not isinstance(x_sifted, (int, np.integer))
                or not isinstance(x_errors, (int, np.integer))
                or not 0 <= x_errors <= x_sifted):
            self._rejected += 1
            raise FeedbackError(f"window counts need integers 0 <= x_errors <= x_sifted, got "
                                f"x_sifted={x_sifted!r}, x_errors={x_errors!r}")
        if code_in_effect is not None and not 0 <= code_in_effect <= cfg.max_code:
            self._rejected += 1
            raise FeedbackError(f"code in effect {code_in_effect} outside 0..{cfg.max_code}")
        issued = self._pending.popleft()
        if code_in_effect is not None:
            issued = issued._replace(code=int(code_in_effect))
        window = self._windows
        self._windows += 1
        if x_sifted < cfg.min_events:
            self._skipped += 1
        else:
            rate = int(x_errors) / int(x_sifted)
            self._x_sifted += int(x_sifted)
            self._x_errors += int(x_errors)
            self._judge_lock(rate, int(x_sifted), issued.dither_rad)
            self._estimate(_Sample(issued.code, rate, window))
        self._hop_and_clamp()
        return self._issue()

    # --- steps of update ------------------------------------------------------------------
    def _judge_lock(self, rate: float, events: int, dither_rad: float) -> None:
        cfg = self._config
        expected = cfg.fringe_mean - cfg.fringe_amplitude * math.cos(dither_rad)
        allowance = cfg.lock_sigmas * math.sqrt(expected * (1 - expected) / events)
        if rate <= expected + cfg.lock_threshold + allowance:
            if not self._locked:
                _log(logging.INFO, "phase lock regained after %d windows", self._out_run)
            self._locked, self._reacquiring, self._out_run = True, False, 0
            return
        if self._locked:
            _log(logging.WARNING, "phase lock lost: X error rate %.3f (expected %.3f)", rate,
                 expected)
        self._locked = False
        self._out_windows += 1
        self._out_run += 1
        self._longest_run = max(self._longest_run, self._out_run)
        if self._out_run >= cfg.reacquire_after_windows and not self._reacquiring:
            self._reacquiring = True
            self._reacquisitions += 1
            _log(logging.WARNING, "phase lock: reacquiring (larger dither)")

    def _estimate(self, sample: _Sample) -> None:
        """Demodulate ``sample`` with the previous one and move the set point."""
        cfg, previous = self._config, self._last
        self._last = sample
        if previous is None or sample.window - previous.window > cfg.max_pair_gap_windows:
            return
        fringe = cfg.fringe_codes
        delta = sample.code - previous.code
        delta -= fringe * round(delta / fringe)          # same phase, nearest fringe
        half_rad = abs(delta) / 2 / cfg.codes_per_rad
        if not 0.25 * cfg.dither_rad <= half_rad <= math.pi / 2 - 0.05:
            return                                       # no usable dither across the pair
        hi, lo = (sample, previous) if delta > 0 else (previous, sample)
        difference = hi.rate - lo.rate
        level = 2 * cfg.fringe_mean - hi.rate - lo.rate
        x = math.atan2(difference * math.cos(half_rad), level * math.sin(half_rad))
        mid = sample.code - delta / 2
        best = mid - x * cfg.codes_per_rad
        best += fringe * round((self._setpoint - best) / fringe)
        gain = 1.0 if self._reacquiring else cfg.gain
        self._setpoint += gain * (best - self._setpoint)
        self._updates += 1

    def _hop_and_clamp(self) -> None:
        cfg = self._config
        margin = cfg.hop_margin_rad * cfg.codes_per_rad
        if self._setpoint < margin:
            self._setpoint += cfg.fringe_codes
            self._hops += 1
            _log(logging.DEBUG, "fringe hop up to %.0f", self._setpoint)
        elif self._setpoint > cfg.max_code - margin:
            self._setpoint -= cfg.fringe_codes
            self._hops += 1
            _log(logging.DEBUG, "fringe hop down to %.0f", self._setpoint)
        reach = self._dither_rad() * cfg.codes_per_rad
        self._setpoint = min(max(self._setpoint, reach), cfg.max_code - reach)  # anti-windup

    def _dither_rad(self) -> float:
        cfg = self._config
        return cfg.reacquire_dither_rad if self._reacquiring else cfg.dither_rad

    def _issue(self) -> int:
        cfg = self._config
        dither = self._dither_rad()
        code = round(self._setpoint + self._sign * dither * cfg.codes_per_rad)
        code = min(max(code, 0), cfg.max_code)
        self._sign = -self._sign
        self._pending.append(_Issued(code, dither))
        self._code = code
        return code


# --- start-up scan ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FringeFit:
    """Fit of ``e(c) = mean - amplitude * cos(rad_per_code * c + phase_rad)`` to a DAC scan."""

    mean: float                 # a
    amplitude: float            # b (>= 0)
    rad_per_code: float         # k (> 0)
    phase_rad: float            # phi0 in [0, 2 pi)
    best_code: float            # a minimum of e(c), the one nearest the requested code
    rad_per_code_std: float     # standard errors from the fit covariance
    best_code_std: float
    amplitude_std: float
    chi2_per_dof: float         # about 1 for a good fit with binomial errors
    points: int                 # distinct codes used
    events: int                 # sifted X events used

    @property
    def codes_per_rad(self) -> float:
        return 1.0 / self.rad_per_code

    @property
    def codes_per_2pi(self) -> float:
        return TWO_PI / self.rad_per_code

    @property
    def visibility(self) -> float:
        """Fringe visibility ``b / a`` (background included)."""
        return self.amplitude / self.mean

    @property
    def min_error_rate(self) -> float:
        return self.mean - self.amplitude

    def error_rate(self, codes: np.ndarray | float) -> np.ndarray:
        """The fitted error rate at ``codes``."""
        return _fringe(np.asarray(codes, float), self.mean, self.amplitude, self.rad_per_code,
                       self.phase_rad)

    def with_best_code_near(self, code: float) -> FringeFit:
        """The same fit with :attr:`best_code` the minimum nearest ``code``."""
        return replace(self, best_code=_minimum_near(code, self.rad_per_code, self.phase_rad))


def _fringe(c: np.ndarray, a: float, b: float, k: float, phase: float) -> np.ndarray:
    return a - b * np.cos(k * c + phase)


def _minimum_near(code: float, k: float, phase: float) -> float:
    period = TWO_PI / k
    first = (-phase % TWO_PI) / k                # k c + phase = 0 mod 2 pi
    return first + period * round((code - first) / period)


def scan_codes(points: int = 32, dac_bits: int = 16, *, there_and_back: bool = False
               ) -> np.ndarray:
    """``points`` codes spread evenly over the DAC range, for a start-up scan.

    With ``there_and_back`` the codes go up then down again (``2 * points`` windows): a phase
    drift that is linear over the scan then cancels in :func:`fit_fringe`, which pools windows
    by code.

    Raises
    ------
    ValueError
        If ``points < 2``.
    """
    if points < 2:
        raise ValueError(f"a scan needs at least 2 points, got {points}")
    codes = np.round(np.linspace(0, (1 << dac_bits) - 1, points)).astype(np.int64)
    return np.concatenate([codes, codes[::-1]]) if there_and_back else codes


def fit_fringe(codes: np.ndarray, x_sifted: np.ndarray, x_errors: np.ndarray, *,
               near_code: float | None = None, min_points: int = 6,
               min_events: int = 1000) -> FringeFit:
    """Fit the X error-rate fringe to a DAC scan (windows at several codes).

    Windows at the same code are pooled. The period is found by a weighted linear
    least-squares search over frequencies from half a fringe across the scan to the Nyquist
    limit of the code spacing, then refined with binomial errors by
    :func:`scipy.optimize.curve_fit`. The scan should cover at least one fringe.

    ``best_code`` is the minimum nearest ``near_code`` (default: the middle of the scan).

    Raises
    ------
    FringeFitError
        On arrays of different lengths, bad counts, fewer than ``min_points`` distinct codes
        with events or ``min_events`` events, a fit that fails, or no significant fringe.
    """
    codes, x_sifted, x_errors = (np.asarray(v) for v in (codes, x_sifted, x_errors))
    if not codes.shape == x_sifted.shape == x_errors.shape or codes.ndim != 1:
        raise FringeFitError("codes, x_sifted and x_errors must be 1-d arrays of one length")
    if np.any(x_sifted < 0) or np.any(x_errors < 0) or np.any(x_errors > x_sifted):
        raise FringeFitError("scan counts need 0 <= x_errors <= x_sifted")
    min_points = max(min_points, 5)                  # four parameters, at least one dof
    distinct, index = np.unique(codes, return_inverse=True)
    n = np.bincount(index, weights=x_sifted, minlength=distinct.size)
    errors = np.bincount(index, weights=x_errors, minlength=distinct.size)
    used = n > 0
    c, n, errors = distinct[used].astype(float), n[used], errors[used]
    total = int(n.sum())
    if c.size < min_points or total < min_events:
        raise FringeFitError(f"fringe fit needs at least {min_points} codes with events and "
                             f"{min_events} events; the scan has {c.size} codes and {total} "
                             "events: scan more codes or longer windows")
    rate = errors / n
    span = c[-1] - c[0]
    spacing = float(np.median(np.diff(c)))
    frequencies = np.linspace(0.5 / span, 0.5 / spacing,
                              min(20_000, int(8 * (0.5 / spacing - 0.5 / span) * span) + 2))
    k0, a0, b0, phase0 = _search(c, rate, n, TWO_PI * frequencies)

    sigma = _binomial_sigma(a0 - b0 * np.cos(k0 * c + phase0), n)
    try:
        p, cov = curve_fit(_fringe, c, rate, p0=(a0, b0, k0, phase0), sigma=sigma,
                           absolute_sigma=True)
        sigma = _binomial_sigma(_fringe(c, *p), n)   # refit with errors from the model
        p, cov = curve_fit(_fringe, c, rate, p0=p, sigma=sigma, absolute_sigma=True)
    except (RuntimeError, ValueError) as error:
        raise FringeFitError(f"fringe fit did not converge: {error}") from None
    a, b, k, phase = (float(v) for v in p)
    if not np.all(np.isfinite(cov)):
        raise FringeFitError("fringe fit is degenerate: scan a wider code range")
    std = np.sqrt(np.diag(cov))
    if b < 0:
        b, phase = -b, phase + math.pi
    if k < 0:
        k, phase = -k, -phase
    phase %= TWO_PI
    if b < 5 * std[1]:
        raise FringeFitError(f"no significant fringe: amplitude {b:.4f} +- {std[1]:.4f}; "
                             "check the X detectors and the scan range")
    chi2 = float(np.sum(((rate - _fringe(c, a, b, k, phase)) / sigma) ** 2) / (c.size - 4))
    near = 0.5 * (c[0] + c[-1]) if near_code is None else near_code
    best = _minimum_near(near, k, phase)
    # best = (2 pi m - phase) / k: its variance from k, phase and their covariance.
    grad = np.array([0.0, 0.0, -best / k, -1.0 / k])
    best_std = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    return FringeFit(mean=a, amplitude=b, rad_per_code=k, phase_rad=phase, best_code=best,
                     rad_per_code_std=float(std[2]), best_code_std=best_std,
                     amplitude_std=float(std[1]), chi2_per_dof=chi2, points=int(c.size),
                     events=total)


def _binomial_sigma(model: np.ndarray, n: np.ndarray) -> np.ndarray:
    p = np.clip(model, 1e-3, 1 - 1e-3)
    return np.sqrt(p * (1 - p) / n)


def _search(c: np.ndarray, rate: np.ndarray, n: np.ndarray,
            ks: np.ndarray) -> tuple[float, float, float, float]:
    """Best ``(k, a, b, phase)`` over ``ks`` by weighted linear least squares at each k."""
    pooled = float(np.sum(rate * n) / np.sum(n))
    w = np.sqrt(n / max(pooled * (1 - pooled), 1e-6))
    arg = ks[:, None] * c[None, :]
    design = np.stack([np.ones_like(arg), np.cos(arg), np.sin(arg)], axis=-1) * w[None, :, None]
    target = rate * w
    normal = np.einsum("fpi,fpj->fij", design, design)
    rhs = np.einsum("fpi,p->fi", design, target)
    coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
    residual = np.sum((np.einsum("fpi,fi->fp", design, coef) - target) ** 2, axis=1)
    best = int(np.argmin(residual))
    a, cos_coef, sin_coef = coef[best]
    # a + B cos(kc) + C sin(kc) = a - b cos(kc + phase) with B = -b cos phase, C = b sin phase
    return float(ks[best]), float(a), float(math.hypot(cos_coef, sin_coef)), \
        float(math.atan2(sin_coef, -cos_coef))
