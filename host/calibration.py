"""Automated calibration of the receiver core from its live phase histograms.

From the per-channel histograms of arrival phase (:meth:`ReceiverInterface.histogram`, a few
seconds of link time) :func:`calibrate_windows` finds

1. the reference peak's phase ``ref_phase_raw_ps`` and each detector's *skew*, the onset of its
   time-bin pattern relative to the reference (wrapped into ``[−P/2, P/2)``);
2. per-channel phase delays that put the reference at ``guard_ps`` and every detector's pattern
   onset at ``guard_ps`` too, so that all detectors share one set of windows;
3. the window ``(start, width)``, relative to the pattern onset, that maximises the estimated
   asymptotic secret key (:func:`~tbqkd.host.finite_key.asymptotic_key_fraction` times the
   sifted Z counts): Z early ``[start, start + width)``, Z late and X middle one bin separation
   later.

Each detector histogram is fitted with its time-bin peaks (two for Z, three for X) of one shape,
an exponentially modified Gaussian (emitter lifetime convolved with the timing jitter), plus a
flat dark-count floor, by Poisson maximum likelihood. The error rates of candidate windows come
from that model: Z errors are the early peak's tail in the late window (and vice versa), half
of the dark counts and of the photons of neighbouring slots, plus ``z_error_floor`` (the
encoder's extinction, invisible in a histogram); X errors are ``(1 − visibility) / 2`` of the
middle peak plus half of the side-peak tails, dark counts and neighbouring slots. Window counts
are the measured histogram counts. The convention and its assumptions are written out in
``docs/LINK_CALIBRATION.md``.

Pure Python 3.10 with numpy and scipy; no gateware imports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import log_ndtr, ndtr
from tbqkd.hdl.records import Role

from .finite_key import asymptotic_key_fraction
from .receiver import ReceiverInterface, Window

__all__ = ["CalibrationError", "PeakShape", "ChannelPlan", "Calibration", "calibrate_windows",
           "apply_calibration", "exgauss_cdf"]

logger = logging.getLogger(__name__)

#: The rising edge of a peak is taken to start this many jitter sigmas before its onset.
RISE_SIGMAS = 5.0
#: Each fitted peak must hold at least this fraction of its channel's peak counts.
MIN_PEAK_FRACTION = 0.05
#: The reference peak must hold at least this fraction of the reference counts.
MIN_REFERENCE_FRACTION = 0.5

#: A detector histogram must peak at least this many times above its median (smoothed).
MIN_CONTRAST = 3.0

_MAX_FIT_EVALUATIONS = 200
_X_ROLES = (Role.X_PLUS, Role.X_MINUS)
_IMAGES = (-2, -1, 1)          # neighbouring slots whose photons can reach a slot


def _log(message: str, *args: object) -> None:
    logger.debug(message, *args)


class CalibrationError(ValueError):
    """The histograms or parameters do not allow a calibration (the message says why)."""


def exgauss_cdf(x: np.ndarray, sigma_ps: float, lifetime_ps: float) -> np.ndarray:
    """CDF of an exponential delay (mean ``lifetime_ps``) plus Gaussian jitter (``sigma_ps``).

    Written with ``log Φ`` so that it neither overflows far before the onset nor loses
    precision in the tail.
    """
    x = np.asarray(x, dtype=np.float64)
    z = x / sigma_ps
    ratio = sigma_ps / lifetime_ps
    tail = np.exp(0.5 * ratio * ratio - x / lifetime_ps + log_ndtr(z - ratio))
    return ndtr(z) - tail


@dataclass(frozen=True)
class PeakShape:
    """A detector's fitted pattern: peaks ``i·separation`` after ``onset_ps``, one shape.

    ``onset_ps`` is the raw phase (before any delay) of the first peak's excitation, i.e. the
    centre of the jitter before the exponential emission; ``amplitudes`` are the counts of each
    peak; ``dark_per_ps`` the flat floor in counts per ps.
    """

    onset_ps: float
    jitter_ps: float
    lifetime_ps: float
    amplitudes: tuple[float, ...]
    dark_per_ps: float

    def components(self, lo: np.ndarray, hi: np.ndarray, separation_ps: float,
                   period_ps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts in ``[lo, hi)`` (ps relative to the onset): own peaks, neighbours, dark.

        Returns ``(own, foreign, dark)``: ``own[i]`` the counts of peak ``i`` of this slot,
        ``foreign`` those of the same peaks of the neighbouring slots, ``dark`` the floor.
        """
        lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
        # A grid of windows shares few distinct edges: evaluate the CDFs once per edge.
        points, inverse = np.unique(np.concatenate([lo.ravel(), hi.ravel()]),
                                    return_inverse=True)
        inverse = inverse.reshape((2,) + lo.shape)
        own = np.empty((len(self.amplitudes),) + lo.shape)
        foreign = np.zeros(lo.shape)
        for i, amplitude in enumerate(self.amplitudes):
            for m in (0,) + _IMAGES:
                cdf = exgauss_cdf(points - i * separation_ps - m * period_ps, self.jitter_ps,
                                  self.lifetime_ps)
                mass = amplitude * (cdf[inverse[1]] - cdf[inverse[0]])
                if m == 0:
                    own[i] = mass
                else:
                    foreign += mass
        return own, foreign, self.dark_per_ps * (hi - lo)


@dataclass(frozen=True)
class ChannelPlan:
    """What to program for one channel (windows in ps after the delay; ``None``: off).

    ``skew_ps`` is the onset of the detector's pattern minus the reference phase, wrapped into
    ``[−P/2, P/2)`` (0 for the reference); ``shape`` the fitted pattern (detectors only).
    """

    channel: int
    role: Role
    delay_ps: int
    early: Window | None = None
    late: Window | None = None
    middle: Window | None = None
    skew_ps: float = 0.0
    shape: PeakShape | None = None


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate_windows`: settings to program and the estimates.

    ``window_start_ps`` and ``window_width_ps`` are the chosen Z early window relative to the
    pattern onset; ``tolerance_ps`` is how far the reference may move relative to the detectors
    before a window or a peak leaves its slot (a natural ``LOCK_THRESHOLD``). Estimates:
    ``qber_z``, ``qber_x``, ``key_fraction`` (secret bits per sifted Z bit),
    ``sifted_z_counts`` and ``sifted_x_counts`` (window counts times Alice's basis
    probability), over the histograms' accumulation time.
    """

    ref_phase_raw_ps: float
    ref_phase_ps: int
    channels: tuple[ChannelPlan, ...]
    qber_z: float
    qber_x: float
    key_fraction: float
    sifted_z_counts: float
    sifted_x_counts: float = 0.0
    guard_ps: int = 0
    tolerance_ps: int = 0
    window_start_ps: int = 0
    window_width_ps: int = 0
    slot_period_ps: float = 0.0

    @property
    def secret_counts(self) -> float:
        """Estimated asymptotic secret bits over the accumulation time."""
        return self.key_fraction * self.sifted_z_counts

    def to_dict(self) -> dict:
        """The calibration as plain JSON-serialisable values (roles by name)."""
        out = asdict(self)
        for plan in out["channels"]:
            plan["role"] = Role(plan["role"]).name
            if plan["shape"] is not None:
                plan["shape"]["amplitudes"] = list(plan["shape"]["amplitudes"])
        out["channels"] = list(out["channels"])
        return out


# --- input checks ---------------------------------------------------------------------------
def _bin_edges(n_bins: int, offset_ps: int, bin_ps: int, period_ps: float) -> np.ndarray:
    if bin_ps <= 0 or offset_ps < 0:
        raise CalibrationError(f"need bin_ps > 0 and offset_ps >= 0, got {bin_ps}, {offset_ps}")
    if offset_ps != 0 or n_bins * bin_ps < period_ps:
        raise CalibrationError(
            f"the histogram covers [{offset_ps}, {offset_ps + n_bins * bin_ps}) ps but must "
            f"cover the whole slot [0, {period_ps:.2f}): use offset 0 and bins × bin_ps >= P")
    n_valid = math.ceil(period_ps / bin_ps)
    edges = np.minimum(np.arange(n_valid + 1, dtype=np.float64) * bin_ps, period_ps)
    return edges


def _check_roles(roles: Sequence[Role], n_channels: int) -> list[Role]:
    try:
        roles = [Role(r) for r in roles]
    except ValueError as exc:
        raise CalibrationError(f"bad role: {exc}") from None
    if len(roles) != n_channels:
        raise CalibrationError(f"{len(roles)} roles for {n_channels} histogram channels")
    if roles.count(Role.REFERENCE) != 1:
        raise CalibrationError("need exactly one channel with the REFERENCE role")
    if Role.Z not in roles or not any(r in _X_ROLES for r in roles):
        raise CalibrationError("need at least one Z and one X (X_PLUS/X_MINUS) channel")
    return roles


def _check_histograms(histograms: np.ndarray, n_valid: int) -> np.ndarray:
    hist = np.asarray(histograms)
    if hist.ndim != 2 or hist.shape[1] < n_valid:
        raise CalibrationError(f"histograms must be (n_channels, bins), got shape {hist.shape}")
    hist = hist.astype(np.float64)
    if not np.all(np.isfinite(hist)) or hist.min(initial=0) < 0:
        raise CalibrationError("histogram counts must be finite and non-negative")
    beyond = hist[:, n_valid:].sum(axis=1)
    if beyond.any():
        ch = int(np.flatnonzero(beyond)[0])
        raise CalibrationError(f"channel {ch} has {int(beyond[ch])} counts at phases beyond the "
                               "slot period: wrong slot_period_ps?")
    return hist[:, :n_valid]


def _wrap(x: float, period: float) -> float:
    """``x`` wrapped into ``[−period/2, period/2)``."""
    return float((x + period / 2) % period - period / 2)


# --- reference ------------------------------------------------------------------------------
def _reference_phase(counts: np.ndarray, edges: np.ndarray, period: float,
                     min_counts: int) -> float:
    total = counts.sum()
    if total < min_counts:
        raise CalibrationError(f"reference channel: {int(total)} counts, need {min_counts}")
    centres = (edges[:-1] + edges[1:]) / 2
    peak = centres[int(np.argmax(counts))]
    rel = (centres - peak + period / 2) % period - period / 2
    width = np.diff(edges).max()
    near = np.abs(rel) <= 8 * width
    if counts[near].sum() < MIN_REFERENCE_FRACTION * total:
        raise CalibrationError("no reference peak: the reference counts are spread over the "
                               "slot (slot period wrong or reference not locked?)")
    core = np.abs(rel) <= 3 * width
    mean = float(np.sum(counts[core] * rel[core]) / counts[core].sum())
    return float((peak + mean) % period)


# --- detector pattern fit -------------------------------------------------------------------
def _template_onset(counts: np.ndarray, bin_ps: float, n_peaks: int,
                    separation: float) -> float:
    """Rough onset: circular cross-correlation with exponential peaks 1:1 (Z) or 1:2:1 (X)."""
    n = counts.size
    u = np.arange(n) * bin_ps
    weights = (1.0, 1.0) if n_peaks == 2 else (1.0, 2.0, 1.0)
    template = np.zeros(n)
    for i, weight in enumerate(weights):
        d = (u - i * separation) % (n * bin_ps)
        template += weight * np.exp(-d / (separation / 4))
    corr = np.fft.irfft(np.fft.rfft(counts) * np.conj(np.fft.rfft(template)), n)
    return float(np.argmax(corr) * bin_ps)


def _fit_pattern(counts: np.ndarray, edges: np.ndarray, period: float, n_peaks: int,
                 separation: float, channel: int) -> PeakShape:
    lo, hi = edges[:-1], edges[1:]
    bin_ps = float(hi[0] - lo[0])
    smooth = np.convolve(np.concatenate([counts[-4:], counts, counts[:4]]), np.ones(9) / 9,
                         mode="valid")
    if smooth.max() < MIN_CONTRAST * max(float(np.median(smooth)), 1.0):
        raise CalibrationError(f"channel {channel}: no peaks in the histogram (flat: no light, "
                               "or the slot period is wrong)")
    t0_guess = _template_onset(counts, bin_ps, n_peaks, separation)
    density = counts / (hi - lo)
    dark0 = float(np.percentile(density, 10))
    signal = max(counts.sum() - dark0 * period, 1.0)
    x0 = np.array([t0_guess, max(bin_ps / 2, 10.0), separation / 4]
                  + [signal / n_peaks] * n_peaks + [max(dark0, 1e-9)])
    lower = [t0_guess - separation / 4, 0.5, 1.0] + [0.0] * n_peaks + [0.0]
    upper = [t0_guess + separation / 4, separation / 4, separation] + [np.inf] * (n_peaks + 1)
    positive = counts > 0

    def model(x: np.ndarray) -> np.ndarray:
        t0, sigma, tau = x[:3]
        out = x[-1] * (hi - lo)
        for i in range(n_peaks):
            for m in (0,) + _IMAGES:
                cdf = exgauss_cdf(edges - (t0 + i * separation + m * period), sigma, tau)
                out = out + x[3 + i] * np.diff(cdf)
        return out

    def deviance(x: np.ndarray) -> np.ndarray:
        m = model(x) + 1e-12
        term = m - counts
        term[positive] += counts[positive] * np.log(counts[positive] / m[positive])
        return np.sign(counts - m) * np.sqrt(2 * np.maximum(term, 0.0))

    result = least_squares(deviance, x0, bounds=(lower, upper), x_scale="jac", method="trf",
                           max_nfev=_MAX_FIT_EVALUATIONS)
    _log("channel %d: fit took %d evaluations", channel, result.nfev)
    t0, sigma, tau = (float(v) for v in result.x[:3])
    amplitudes = tuple(float(a) for a in result.x[3:3 + n_peaks])
    total_peaks = sum(amplitudes)
    if not result.success or total_peaks <= 0 \
            or min(amplitudes) < MIN_PEAK_FRACTION * total_peaks:
        raise CalibrationError(
            f"channel {channel}: no time-bin pattern of {n_peaks} peaks {separation:g} ps apart "
            f"(fitted peak counts {[round(a) for a in amplitudes]}): wrong bin_separation_ps, "
            "role, or no light?")
    shape = PeakShape(float(t0 % period), sigma, tau, amplitudes, float(result.x[-1]))
    _log("channel %d: onset %.1f ps, jitter %.1f ps, lifetime %.1f ps, peaks %s, dark %.3g/ps",
         channel, shape.onset_ps, sigma, tau, [round(a) for a in amplitudes], shape.dark_per_ps)
    return shape


# --- window estimates -----------------------------------------------------------------------
class _Counts:
    """Measured counts of one channel in phase windows relative to its onset (circular)."""

    def __init__(self, counts: np.ndarray, edges: np.ndarray, onset: float, period: float):
        self._edges  = edges
        self._cum    = np.concatenate([[0.0], np.cumsum(counts)])
        self._total  = self._cum[-1]
        self._onset  = onset
        self._period = period

    def _cumulative(self, x: np.ndarray) -> np.ndarray:
        turns, rest = np.divmod(x, self._period)
        return turns * self._total + np.interp(rest, self._edges, self._cum)

    def between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return self._cumulative(self._onset + hi) - self._cumulative(self._onset + lo)


@dataclass
class _Estimate:
    qber_z: np.ndarray
    qber_x: np.ndarray
    z_counts: np.ndarray
    x_counts: np.ndarray


def _estimate(start: np.ndarray, width: np.ndarray, fits: list[tuple[Role, PeakShape, _Counts]],
              separation: float, period: float, z_floor: float, x_floor: float) -> _Estimate:
    """Estimated error rates and measured counts for windows ``(start, width)`` (broadcast).

    The late (and middle) window starts ``round(separation)`` after the early one, as
    programmed; the peaks lie ``separation`` apart.
    """
    start, width = np.broadcast_arrays(start, width)
    z_err = np.zeros(start.shape)
    z_model = np.zeros(start.shape)
    z_counts = np.zeros(start.shape)
    x_err = np.zeros(start.shape)
    x_model = np.zeros(start.shape)
    x_counts = np.zeros(start.shape)
    early_lo, early_hi = start, start + width
    late_lo, late_hi = early_lo + round(separation), early_hi + round(separation)
    for role, shape, counts in fits:
        if role == Role.Z:
            own_e, foreign_e, dark_e = shape.components(early_lo, early_hi, separation, period)
            own_l, foreign_l, dark_l = shape.components(late_lo, late_hi, separation, period)
            right = own_e[0] + own_l[1]
            wrong = own_e[1] + own_l[0]
            noise = foreign_e + dark_e + foreign_l + dark_l
            z_err += wrong + noise / 2 + z_floor * right
            z_model += right + wrong + noise
            z_counts += counts.between(early_lo, early_hi) + counts.between(late_lo, late_hi)
        else:
            own, foreign, dark = shape.components(late_lo, late_hi, separation, period)
            side = own[0] + own[2]
            x_err += x_floor * own[1] + (side + foreign + dark) / 2
            x_model += own[1] + side + foreign + dark
            x_counts += counts.between(late_lo, late_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        qber_z = np.where(z_model > 0, z_err / z_model, 0.5)
        qber_x = np.where(x_model > 0, x_err / x_model, 0.5)
    return _Estimate(qber_z, qber_x, z_counts, x_counts)


_key_fraction = np.vectorize(asymptotic_key_fraction, otypes=[np.float64])


def _secret(est: _Estimate, multiphoton_fraction: float, ec_efficiency: float) -> np.ndarray:
    """Secret bits of each window; where no window gives any, a stand-in that still ranks them
    (counts weighted by the two bases' error margins), so the windows stay sensible."""
    secret = _key_fraction(est.qber_z, est.qber_x, multiphoton_fraction,
                           ec_efficiency) * est.z_counts
    if secret.max() > 0:
        return secret
    logger.warning("no window gives a positive key fraction: windows chosen for the error rates")
    return est.z_counts * np.clip(1 - 2 * est.qber_z, 0, 1) * np.clip(1 - 2 * est.qber_x, 0, 1)


def _best_window(fits, separation: float, period: float, bin_ps: float, rise: float,
                 tail: float, max_width: float, floors: tuple[float, float],
                 key_args: tuple[float, float]) -> tuple[int, int]:
    """Grid search, coarse (bin steps) then fine (1 ps), of the window ``(start, width)``."""
    step = max(1, int(bin_ps))
    starts = np.arange(-math.ceil(rise / step) * step, math.ceil(tail) + step, step)
    widths = np.arange(step, int(max_width) + 1, step)
    if not widths.size:
        raise CalibrationError("no room for a window: bin_separation_ps too small")
    s, w = np.meshgrid(starts, widths, indexing="ij")
    secret = _secret(_estimate(s, w, fits, separation, period, *floors), *key_args)
    i, j = np.unravel_index(int(np.argmax(secret)), secret.shape)
    s0, w0 = int(starts[i]), int(widths[j])
    fine_s = np.arange(s0 - step, s0 + step + 1)
    fine_w = np.arange(max(1, w0 - step), min(int(max_width), w0 + step) + 1)
    s, w = np.meshgrid(fine_s, fine_w, indexing="ij")
    secret = _secret(_estimate(s, w, fits, separation, period, *floors), *key_args)
    i, j = np.unravel_index(int(np.argmax(secret)), secret.shape)
    return int(fine_s[i]), int(fine_w[j])


# --- delays ---------------------------------------------------------------------------------
def _delays(raw: list[float], period_int: int) -> list[int]:
    """Integer delays, shifted together by a whole slot if needed to lie in ``(−P, P)``."""
    base = [round(d) for d in raw]
    for turn in sorted((0, -1, 1), key=lambda k: max(abs(d + k * period_int) for d in base)):
        shifted = [d + turn * period_int for d in base]
        if all(-period_int < d < period_int for d in shifted):
            return shifted
    raise CalibrationError("the detector skews spread over more than a slot")


def calibrate_windows(histograms: np.ndarray, *, roles: Sequence[Role], offset_ps: int,
                      bin_ps: int, slot_period_ps: float, bin_separation_ps: float,
                      visibility: float = 0.81, min_counts: int = 1000,
                      x_error_floor: float | None = None, z_error_floor: float = 0.0,
                      alice_z_probability: float = 1.0, multiphoton_fraction: float = 0.0,
                      ec_efficiency: float = 1.0, min_reference_counts: int = 100,
                      guard_ps: int | None = None, guard_margin_ps: int = 500) -> Calibration:
    """Compute delays, windows and ``REF_PHASE`` from live histograms (see the module doc).

    Parameters
    ----------
    histograms
        ``(n_channels, bins)`` counts; bin ``k`` covers phases ``offset_ps + k·bin_ps`` on.
        Must cover the whole slot (``offset_ps = 0``, ``bins·bin_ps >= slot_period_ps``).
    roles
        Role of each channel: one ``REFERENCE``, at least one ``Z`` and one ``X_PLUS`` or
        ``X_MINUS``; ``MONITOR`` channels get the reference's delay and no windows, ``OFF``
        channels nothing.
    slot_period_ps, bin_separation_ps
        Alice's pulse period and the time-bin separation (the interferometer's delay).
    visibility, x_error_floor
        The X-basis error of the interference peak is ``x_error_floor`` if given, else
        ``(1 − visibility) / 2``.
    z_error_floor
        Z errors not visible in a histogram (the encoder's extinction leak), per Z count.
    alice_z_probability
        Alice's probability of a Z-basis state: sifted counts are window counts times it
        (X: times ``1 − alice_z_probability``, or the X window counts if it is 1).
    multiphoton_fraction, ec_efficiency
        Passed to :func:`~tbqkd.host.finite_key.asymptotic_key_fraction`.
    min_counts, min_reference_counts
        Fewest counts accepted per detector channel and on the reference.
    guard_ps
        Phase of the reference (and of the pattern onsets) after the delays; default: just
        enough for the earliest window and rising edge, plus ``guard_margin_ps``.

    Raises
    ------
    CalibrationError
        On mismatched shapes or roles, too few counts, no reference peak, no time-bin pattern
        on a detector, or windows that cannot fit the slot.
    """
    period = float(slot_period_ps)
    separation = float(bin_separation_ps)
    if not period > 0 or not 0 < 2 * separation < period:
        raise CalibrationError(f"need 0 < 2 × bin_separation_ps ({separation}) < "
                               f"slot_period_ps ({period})")
    if not 0 <= visibility <= 1 or not 0 <= z_error_floor <= 0.5 or (
            x_error_floor is not None and not 0 <= x_error_floor <= 0.5):
        raise CalibrationError("visibility must be in [0, 1] and error floors in [0, 0.5]")
    if not 0 < alice_z_probability <= 1:
        raise CalibrationError("alice_z_probability must be in (0, 1]")
    if np.ndim(histograms) != 2:
        raise CalibrationError(f"histograms must be (n_channels, bins), got shape "
                               f"{np.shape(histograms)}")
    edges = _bin_edges(np.shape(histograms)[1], int(offset_ps), int(bin_ps), period)
    hist = _check_histograms(histograms, edges.size - 1)
    roles = _check_roles(roles, hist.shape[0])
    period_int = int(math.floor(period))

    ref_channel = roles.index(Role.REFERENCE)
    ref_raw = _reference_phase(hist[ref_channel], edges, period, min_reference_counts)
    fits: list[tuple[Role, PeakShape, _Counts]] = []
    shapes: dict[int, PeakShape] = {}
    for ch, role in enumerate(roles):
        if role != Role.Z and role not in _X_ROLES:
            continue
        if hist[ch].sum() < min_counts:
            raise CalibrationError(f"channel {ch} ({role.name}): {int(hist[ch].sum())} counts, "
                                   f"need {min_counts}")
        shape = _fit_pattern(hist[ch], edges, period, 2 if role == Role.Z else 3, separation, ch)
        shapes[ch] = shape
        fits.append((role, shape, _Counts(hist[ch], edges, shape.onset_ps, period)))

    jitter = max(s.jitter_ps for s in shapes.values())
    lifetime = max(s.lifetime_ps for s in shapes.values())
    rise = RISE_SIGMAS * jitter
    x_floor = (1 - visibility) / 2 if x_error_floor is None else x_error_floor
    max_width = min(separation, period - separation - 2 * rise - guard_margin_ps)
    start, width = _best_window(fits, separation, period, float(bin_ps), rise, lifetime,
                                max_width, (z_error_floor, x_floor),
                                (multiphoton_fraction, ec_efficiency))

    # Everything after the delay, relative to the onset: rising edges from -rise, the windows,
    # the last peak's rising edge (X: two separations) — all must lie in [0, P).
    first = min(-rise, start)
    last = max(2 * separation + rise, start + round(separation) + width)
    lowest, highest = math.ceil(-first), math.floor(period_int - last)
    if guard_ps is None:
        guard_ps = min(lowest + guard_margin_ps, max(lowest, (lowest + highest) // 2))
    if not lowest <= guard_ps <= highest:
        raise CalibrationError(f"guard {guard_ps} ps: the pattern and windows need a guard in "
                               f"[{lowest}, {highest}] ps to fit the slot")
    tolerance = int(min(guard_ps - lowest, highest - guard_ps))

    # Delays: the reference and every pattern onset land at guard_ps (skews measured mod P).
    skews = [_wrap(shapes[ch].onset_ps - ref_raw, period) if ch in shapes else 0.0
             for ch in range(len(roles))]
    live = [ch for ch, role in enumerate(roles) if role != Role.OFF]
    delays = dict(zip(live, _delays([ref_raw + skews[ch] - guard_ps for ch in live], period_int),
                      strict=True))
    early = Window(guard_ps + start, width)
    late = Window(guard_ps + start + round(separation), width)
    plans = []
    for ch, role in enumerate(roles):
        windows: dict[str, Window | None] = {}
        if role == Role.Z:
            windows = {"early": early, "late": late}
        elif role in _X_ROLES:
            windows = {"middle": late}
        plans.append(ChannelPlan(ch, role, delays.get(ch, 0),
                                 skew_ps=skews[ch], shape=shapes.get(ch), **windows))
    for window in (early, late):
        if window.start_ps < 0 or window.start_ps + window.width_ps > period_int:
            raise CalibrationError(f"window {window} does not fit the slot [0, {period_int})")

    est = _estimate(np.array(start), np.array(width), fits, separation, period, z_error_floor,
                    x_floor)
    qber_z, qber_x = float(est.qber_z), float(est.qber_x)
    key = asymptotic_key_fraction(qber_z, qber_x, multiphoton_fraction, ec_efficiency)
    x_probability = 1 - alice_z_probability if alice_z_probability < 1 else 1.0
    calibration = Calibration(
        ref_phase_raw_ps=ref_raw, ref_phase_ps=int(guard_ps), channels=tuple(plans),
        qber_z=qber_z, qber_x=qber_x, key_fraction=key,
        sifted_z_counts=float(est.z_counts) * alice_z_probability,
        sifted_x_counts=float(est.x_counts) * x_probability, guard_ps=int(guard_ps),
        tolerance_ps=tolerance, window_start_ps=start, window_width_ps=width,
        slot_period_ps=period)
    _log("calibration: ref %.1f ps, guard %d ps, window %+d ps wide %d ps, e_z %.4f, e_x %.4f, "
         "key fraction %.4f", ref_raw, guard_ps, start, width, qber_z, qber_x, key)
    return calibration


def apply_calibration(receiver: ReceiverInterface, calibration: Calibration, *,
                      lock_threshold_ps: int | None = None,
                      lock_window_log2: int | None = None) -> None:
    """Program roles, delays, windows and ``REF_PHASE`` of ``calibration`` into the core.

    ``lock_threshold_ps`` defaults to the calibration's ``tolerance_ps`` (how far the reference
    may move before a window leaves its slot); ``lock_window_log2`` is left as it is unless
    given. Slot alignment (``align``) is left to the caller: it starts a session.

    Raises
    ------
    CalibrationError
        If the calibration has a different channel count or slot period than the core, or
        the lock threshold exceeds the tolerance.
    """
    if len(calibration.channels) != receiver.n_channels:
        raise CalibrationError(f"calibration has {len(calibration.channels)} channels, the core "
                               f"{receiver.n_channels}")
    core_period = float(receiver.slot_period_ps)
    if abs(core_period - calibration.slot_period_ps) > 1.0:
        raise CalibrationError(f"the core's slot period {core_period:.3f} ps differs from the "
                               f"calibration's {calibration.slot_period_ps:.3f} ps")
    threshold = calibration.tolerance_ps if lock_threshold_ps is None else int(lock_threshold_ps)
    if not 0 < threshold <= max(calibration.tolerance_ps, 1):
        raise CalibrationError(f"lock threshold {threshold} ps must be in (0, "
                               f"{calibration.tolerance_ps}] (the calibration's tolerance)")
    for plan in calibration.channels:
        receiver.set_channel_role(plan.channel, plan.role, delay_ps=plan.delay_ps,
                                  early=plan.early, late=plan.late, middle=plan.middle)
    receiver.set_reference(calibration.ref_phase_ps, threshold_ps=threshold,
                           window_log2=lock_window_log2)
    _log("applied calibration: REF_PHASE %d ps, lock threshold %d ps", calibration.ref_phase_ps,
         threshold)
