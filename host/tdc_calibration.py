"""TDC calibration by code density.

Hits that are uncorrelated with the clock land uniformly in time, so the number of hits that
produce raw code ``k`` is proportional to the width of that code's time bin. From a histogram
of ``N`` raw codes over one clock period ``T``::

    width_k  = T · count_k / N
    centre_k = width_0 + … + width_{k−1} + width_k / 2

``centre_k`` is the fine time written to the calibration table for code ``k``: the expected
arrival time of a hit given its code, measured from the start of the cycle's detection window.
The statistical error of a centre is at most ``T · sqrt(k (N − k) / N) / N``-ish (binomial), so
10^5 hits over a few hundred codes give sub-picosecond tables; the remaining timestamp error is
the quantisation of each bin, ``width_k / sqrt(12)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CodeDensityCalibration", "code_density", "CalibrationError"]


class CalibrationError(ValueError):
    """Too few hits, or codes outside the table, for a meaningful calibration."""


@dataclass(frozen=True)
class CodeDensityCalibration:
    """A per-channel calibration table from code density."""

    counts: np.ndarray          # hits per code
    width_ps: np.ndarray        # bin width per code
    fine_ps: np.ndarray         # bin centre per code: the calibration table

    @property
    def hits(self) -> int:
        return int(self.counts.sum())

    @property
    def quantisation_rms_ps(self) -> float:
        """RMS timestamp error from the bin widths alone (uniform arrivals)."""
        w = self.width_ps
        return float(np.sqrt(np.sum(w ** 3) / 12 / np.sum(w)))


def code_density(codes: np.ndarray, n_codes: int, period_ps: float, *,
                 min_hits: int = 1000) -> CodeDensityCalibration:
    """Calibrate one channel from raw ``codes`` of hits uncorrelated with the clock.

    Raises
    ------
    CalibrationError
        If there are fewer than ``min_hits`` hits or a code is out of ``[0, n_codes)``.
    """
    codes = np.asarray(codes)
    if codes.size < min_hits:
        raise CalibrationError(f"code-density calibration needs at least {min_hits} hits, "
                               f"got {codes.size}")
    if codes.min() < 0 or codes.max() >= n_codes:
        raise CalibrationError(f"raw codes must lie in [0, {n_codes}), got "
                               f"[{codes.min()}, {codes.max()}]")
    counts = np.bincount(codes.astype(np.int64), minlength=n_codes)
    width = period_ps * counts / counts.sum()
    fine = np.cumsum(width) - width / 2
    return CodeDensityCalibration(counts, width, fine)
