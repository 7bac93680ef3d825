"""SNSPD effects applied to the merged event list: dark counts, dead time, afterpulsing.

Dark counts are a Poisson process per detector, drawn per time window. Dead time is applied per
channel on the time-ordered merged list (photons, darks, afterpulses alike): an event closer than
``dead_time`` to the previous *registered* event of its channel is lost. After each registered
event an afterpulse follows with probability ``p`` at ``t + dead_time + Exp(mean delay)``; at most
one afterpulse is pending per detector (a trap releases once), afterpulses can themselves cause
afterpulses. The state (last registered time, pending afterpulse) carries over between windows.
"""

from __future__ import annotations

import numba
import numpy as np

from .rng import exponential, new_state, uniform

__all__ = ["draw_dark_counts", "DeadTimeState", "apply_dead_time", "NO_TIME"]

#: "No event yet" in :class:`DeadTimeState`.
NO_TIME = np.iinfo(np.int64).min
_NONE = NO_TIME


def draw_dark_counts(rng: np.random.Generator, rates_hz: np.ndarray, channels: np.ndarray,
                     start_ps: int, end_ps: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark counts in ``[start_ps, end_ps)``: Poisson number per channel, uniform times.

    Returns ``(time_ps int64, channel uint8)``, unsorted.
    """
    span = end_ps - start_ps
    if span <= 0:
        return np.empty(0, np.int64), np.empty(0, np.uint8)
    counts = rng.poisson(np.asarray(rates_hz, dtype=np.float64) * span * 1e-12)
    times = start_ps + rng.integers(0, span, size=int(counts.sum()), dtype=np.int64)
    return times, np.repeat(np.asarray(channels, dtype=np.uint8), counts)


class DeadTimeState:
    """Per-channel memory of the dead-time filter between windows."""

    def __init__(self, n_channels: int) -> None:
        self.last_ps    = np.full(n_channels, _NONE, dtype=np.int64)
        self.pending_ps = np.full(n_channels, _NONE, dtype=np.int64)

    def pending(self) -> bool:
        """Whether an afterpulse is pending on any channel."""
        return bool(np.any(self.pending_ps != _NONE))


@numba.njit(cache=True)
def _dead_time(seed, order, times, channels, dead_ps, ap_probability, ap_delay_ps, last, pending,
               end_ps):
    # The one dead-time filter (afterpulsing or not). Without afterpulsing (no probability,
    # nothing pending) the afterpulse search is skipped by one predictable test per event.
    state = new_state(seed)
    n = order.size
    n_channels = last.size
    afterpulsing = False
    for c in range(n_channels):
        if ap_probability[c] > 0.0 or pending[c] != _NONE:
            afterpulsing = True
    # At most one afterpulse per registered event, plus those pending at the start.
    size = (2 * n if afterpulsing else n) + n_channels
    out_index = np.empty(size, np.int64)     # index into the input, -1 for an afterpulse
    out_time = np.empty(size, np.int64)
    out_channel = np.empty(size, np.uint8)
    lost = np.zeros(n_channels, np.int64)
    count = 0
    i = 0
    while True:
        if afterpulsing:
            # The earliest pending afterpulse before the next input event (or before end_ps).
            limit = times[order[i]] if i < n else end_ps
            first_channel = -1
            first_time = limit
            for c in range(n_channels):
                if pending[c] != _NONE and pending[c] < first_time:
                    first_channel = c
                    first_time = pending[c]
            if first_channel >= 0:
                c = first_channel
                pending[c] = _NONE
                if first_time - last[c] < dead_ps[c]:
                    lost[c] += 1  # a later registered event made the detector dead again
                    continue
                if count == size:
                    break  # cannot happen: at most one afterpulse per registered event
                out_index[count] = -1
                out_time[count] = first_time
                out_channel[count] = c
                count += 1
                last[c] = first_time
                if ap_probability[c] > 0.0 and uniform(state) < ap_probability[c]:
                    pending[c] = (first_time + dead_ps[c]
                                  + int(exponential(state, ap_delay_ps[c])))
                continue
        if i >= n:
            break
        k = order[i]
        c = channels[k]
        t = times[k]
        i += 1
        if last[c] != _NONE and t - last[c] < dead_ps[c]:
            lost[c] += 1
            continue
        out_index[count] = k
        out_time[count] = t
        out_channel[count] = c
        count += 1
        last[c] = t
        if afterpulsing and pending[c] == _NONE and ap_probability[c] > 0.0 \
                and uniform(state) < ap_probability[c]:
            pending[c] = t + dead_ps[c] + int(exponential(state, ap_delay_ps[c]))
    return out_index[:count], out_time[:count], out_channel[:count], lost


def apply_dead_time(seed: int, times: np.ndarray, channels: np.ndarray, dead_ps: np.ndarray,
                    ap_probability: np.ndarray, ap_delay_ps: np.ndarray, state: DeadTimeState,
                    end_ps: int, order: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dead time and afterpulsing on a time-ordered window of events ending before ``end_ps``.

    The events are taken in the order ``order`` (indices into ``times`` and ``channels``;
    default: as given, which must then be sorted). Afterpulses due before ``end_ps`` are
    inserted; later ones stay pending in ``state``.

    Returns
    -------
    source_index, time_ps, channel, lost_per_channel
        ``source_index[i]`` is the input index of output event ``i`` (-1 for an afterpulse).
    """
    if order is None:
        order = np.arange(len(times), dtype=np.int64)
    return _dead_time(seed, np.asarray(order, dtype=np.int64), times, channels,
                      np.asarray(dead_ps, dtype=np.int64), np.asarray(ap_probability, np.float64),
                      np.asarray(ap_delay_ps, np.float64), state.last_ps, state.pending_ps,
                      np.int64(end_ps))
