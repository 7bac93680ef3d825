"""Numba kernels of the reference-model backend (:mod:`tbqkd.sim.model_device`).

Each kernel is the sequential part of one block that numpy cannot vectorise: a channel's
non-extending dead time, the tagger's one-tag-per-cycle serialiser, and the phase error unit's
event-count windows. They follow the golden models' arithmetic (:mod:`tbqkd.hdl.golden`,
:mod:`tbqkd.hdl.golden_phase`) step for step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["dead_time_gate", "serialise", "delay_line_hits", "event_windows", "click_hits",
           "stamp_slots", "classify", "bin_table", "histogram_add", "NO_EDGE"]

#: ``last_accept`` value of a channel that has accepted no edge since reset.
NO_EDGE = np.iinfo(np.int64).min


@njit(cache=True)
def dead_time_gate(cycle, channel, hit, extra, enabled, dead_time, last_accept, events,
                   suppressed):  # pragma: no cover - compiled
    """Accept edges in (cycle, channel) order; update ``last_accept``, ``events``, ``suppressed``.

    As :class:`tbqkd.hdl.golden.TaggerModel`: a disabled channel ignores its words; extra edges
    in a word are suppressed; a hit fewer than ``dead_time`` cycles after the channel's last
    accepted edge is suppressed. Returns the accepted flags.
    """
    n = cycle.shape[0]
    accepted = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        ch = channel[i]
        if not enabled[ch]:
            continue
        suppressed[ch] += extra[i]
        if not hit[i]:
            continue
        last = last_accept[ch]
        if last != NO_EDGE and cycle[i] - last < dead_time[ch]:
            suppressed[ch] += 1
            continue
        last_accept[ch] = cycle[i]
        accepted[i] = True
        events[ch] += 1
    return accepted


@njit(cache=True)
def serialise(cycle, latency, free_from):  # pragma: no cover - compiled
    """Cycle each tag reaches classification: ``max(cycle + latency, previous + 1)``.

    The serialiser emits one tag per cycle, in input order; ``free_from`` is the first cycle
    not taken by an earlier batch. Returns the cycles and the next free cycle.
    """
    n = cycle.shape[0]
    out = np.empty(n, dtype=np.int64)
    nxt = free_from
    for i in range(n):
        c = cycle[i] + latency
        if c < nxt:
            c = nxt
        out[i] = c
        nxt = c + 1
    return out, nxt


@njit(cache=True)
def delay_line_hits(cycle0, resid, offsets, period, pulse_width, k_lo, k_hi):
    """Hit cycle and code of isolated pulses on a delay-line front end (no bubbles).

    Reproduces :meth:`tbqkd.sim.frontend._Frontend.words` followed by the delay-line encoder
    in the same float64 operations: in cycle ``cycle0 + k`` sample ``j`` is high when
    ``start_k = resid − k·period <= offsets[j] < start_k + pulse_width``; the hit is the first
    cycle whose latest sample is high, its code the number of samples before ``start_k``.
    Returns ``(cycle, code, ok)``; ``ok`` is False when no listed word of the pulse has its
    latest sample high (cannot happen for a valid front end).
    """  # pragma: no cover - compiled
    n = cycle0.shape[0]
    width = offsets.shape[0]
    last = offsets[width - 1]
    first = offsets[0]
    lut = np.searchsorted(offsets, first + np.arange(int(last - first) + 2))
    out_cycle = np.empty(n, dtype=np.int64)
    out_code = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        k = int(np.ceil((resid[i] - last) / period)) - 1
        if k < k_lo:
            k = k_lo
        while k <= k_hi:
            start = resid[i] - float(k) * period
            if start <= last and last < start + pulse_width:
                break
            k += 1
        if k > k_hi:
            out_cycle[i] = cycle0[i]
            continue
        start = resid[i] - float(k) * period
        out_cycle[i] = cycle0[i] + k
        # samples before start (searchsorted "left"): a 1 ps table, then exact steps
        b = int(np.floor(start - first))
        code = 0 if b < 0 else (width if b >= lut.shape[0] else lut[b])
        while code < width and offsets[code] < start:
            code += 1
        while code > 0 and offsets[code - 1] >= start:
            code -= 1
        out_code[i] = code
        ok[i] = True
    return out_cycle, out_code, ok


@njit(cache=True)
def event_windows(kind, cycle, minus_or_bob, alice, four_state, window_events, state,
                  out):  # pragma: no cover - compiled
    """The phase error unit in event-count mode over a cycle-ordered stream of inputs.

    ``kind`` 0: a middle-bin click (``minus_or_bob`` = X− detector); 1: a sifted X event
    (``minus_or_bob`` = Bob's bit, ``alice`` = Alice's x bit). Inputs of one cycle are
    adjacent. ``state`` = ``[running, events_left, x, err, plus, minus, index]`` is updated in
    place; each completed window is written to a row of ``out`` as ``[cycle, index, x, err,
    plus, minus]`` (the cycle it was complete in). Returns the number of windows.
    """
    cmax = (1 << 32) - 1
    n = cycle.shape[0]
    w = 0
    i = 0
    while i < n:
        c = cycle[i]
        inc_x = 0
        inc_err = 0
        inc_plus = 0
        inc_minus = 0
        while i < n and cycle[i] == c:
            if kind[i] == 1:
                inc_x = 1
                if four_state:
                    inc_err = (minus_or_bob[i] ^ alice[i]) & 1
                else:
                    inc_err = minus_or_bob[i] & 1
            elif minus_or_bob[i]:
                inc_minus = 1
            else:
                inc_plus = 1
            i += 1
        running = state[0]
        if running:
            base_x, base_err, base_plus, base_minus = state[2], state[3], state[4], state[5]
            left = state[1]
        else:
            base_x = base_err = base_plus = base_minus = 0
            left = window_events
        tx = min(base_x + inc_x, cmax)
        te = min(base_err + inc_err, cmax)
        tp = min(base_plus + inc_plus, cmax)
        tm = min(base_minus + inc_minus, cmax)
        complete = inc_x == 1 and left == 1
        if complete:
            out[w, 0] = c
            out[w, 1] = state[6]
            out[w, 2] = tx
            out[w, 3] = te
            out[w, 4] = tp
            out[w, 5] = tm
            w += 1
            state[6] = (state[6] + 1) & cmax
            state[2] = state[3] = state[4] = state[5] = 0
            state[1] = window_events
        else:
            state[2], state[3], state[4], state[5] = tx, te, tp, tm
            if running:
                state[1] = (left - inc_x) & cmax
            else:
                state[1] = (window_events - inc_x) & cmax
        state[0] = 1
    return w


@njit(cache=True)
def click_hits(time_ps, channel, num, den, offsets, period, pulse_width, k_lo, k_hi, reach,
               n_channels):  # pragma: no cover - compiled
    """Split clicks into the front end's cycle and residual; find isolated clicks' hits.

    ``time_ps`` is time-ordered (int64 ps). As :meth:`tbqkd.sim.frontend._Frontend.words`:
    ``cycle0 = time·den // num`` and ``resid = (time·den − cycle0·num) / den``. A click is
    *near* when another click of its channel is less than ``reach`` ps away (their words may
    overlap or touch: the caller encodes those through the sample words). Returns ``(cycle,
    code, near, cycle0, resid, ok)`` where ``cycle``/``code`` are the hit of each isolated click.
    """
    n = time_ps.shape[0]
    cycle0 = np.empty(n, dtype=np.int64)
    resid = np.empty(n, dtype=np.float64)
    near = np.zeros(n, dtype=np.bool_)
    last = np.full(n_channels, -1, dtype=np.int64)
    for i in range(n):
        t = time_ps[i] * den
        c0 = t // num
        cycle0[i] = c0
        resid[i] = (t - c0 * num) / den
        ch = channel[i]
        j = last[ch]
        if j >= 0 and float(time_ps[i] - time_ps[j]) < reach:
            near[i] = True
            near[j] = True
        last[ch] = i
    out_cycle, out_code, ok = delay_line_hits(cycle0, resid, offsets, period, pulse_width,
                                              k_lo, k_hi)
    return out_cycle, out_code, near, cycle0, resid, ok


@njit(cache=True)
def stamp_slots(k, cal, delay, rem_base, period_num, period_den, acc_base, step, wrap, den,
                wrap_int, frac_bits):  # pragma: no cover - compiled
    """Time offsets, slots and phases of tags ``k`` cycles after a base (slot mapper).

    Returns ``(time offset ps from the base's time, slots from the base's slot, phase)``:
    ``phase`` is −1 for a slot range error. The caller adds the 64-bit time base (mod 2^64)
    and the 48-bit slot base.
    """
    n = k.shape[0]
    t_off = np.empty(n, dtype=np.int64)
    slots = np.empty(n, dtype=np.int64)
    phase = np.empty(n, dtype=np.int64)
    half = 1 << (frac_bits - 1)
    for i in range(n):
        fine = (cal[i] + half) >> frac_bits
        t_off[i] = (rem_base + k[i] * period_num) // period_den + fine + delay[i]
        acc = acc_base + k[i] * step
        s = acc // wrap
        total = (acc - s * wrap) // den + (delay[i] << frac_bits) + cal[i]
        for _ in range(2):
            if total < 0:
                s -= 1
                total += wrap_int
            elif total >= wrap_int:
                s += 1
                total -= wrap_int
        slots[i] = s
        phase[i] = total >> frac_bits if 0 <= total < wrap_int else -1
    return t_off, slots, phase


@njit(cache=True)
def classify(arrival, slot, phase, channel, role, delay, starts, widths, lut, period, latency,
             counts):  # pragma: no cover - compiled
    """The classifier's data path (golden arithmetic) for every event but the references.

    ``starts``/``widths`` are ``(n_channels, 3)`` (early, late, middle), ``lut`` the bin of
    each phase below its width (:func:`bin_table`, same rule); ``counts`` is ``(n_channels, 4)``
    early/late/middle/outside counts, updated in place. Reference-role events are only listed
    (the golden model aligns and monitors the lock with them); OFF events are ignored.

    Returns the key detections ``(cycle, slot, basis, bit, position)`` (slots not yet relative
    to ``SLOT_BASE``, cycle = ``arrival + latency``), the middle-bin clicks ``(cycle, minus)``,
    the positions of reference events and the count of phases not below the period.
    """
    n = slot.shape[0]
    k_cycle = np.empty(n, dtype=np.int64)
    k_slot = np.empty(n, dtype=np.int64)
    k_basis = np.empty(n, dtype=np.int64)
    k_bit = np.empty(n, dtype=np.int64)
    k_pos = np.empty(n, dtype=np.int64)
    m_cycle = np.empty(n, dtype=np.int64)
    m_minus = np.empty(n, dtype=np.int64)
    refs = np.empty(n, dtype=np.int64)
    nk = nm = nr = 0
    bad_phase = 0
    slot_mask = (1 << 48) - 1
    size = lut.shape[1]
    for i in range(n):
        ch = channel[i]
        r = role[ch]
        if r == 0:
            continue
        if r == 5:
            refs[nr] = i
            nr += 1
            continue
        if phase[i] >= period:
            bad_phase += 1
        p0 = phase[i] - delay[ch]
        s = slot[i]
        if p0 < 0:
            p0 += period
            s -= 1
        elif p0 >= period:
            p0 -= period
            s += 1
        p = p0 & 0xFFFFFF
        if p < size:
            b = lut[ch, p]
        else:
            b = 3
            for w in range(3):
                if starts[ch, w] <= p < starts[ch, w] + widths[ch, w]:
                    b = w
                    break
        counts[ch, b] += 1
        if r == 1 and b <= 1:                      # Z: early 0, late 1
            k_cycle[nk] = arrival[i] + latency
            k_slot[nk] = s & slot_mask
            k_basis[nk] = 0
            k_bit[nk] = b
            k_pos[nk] = i
            nk += 1
        elif (r == 2 or r == 3) and b == 2:        # X: the middle bin, bit = the detector
            k_cycle[nk] = arrival[i] + latency
            k_slot[nk] = s & slot_mask
            k_basis[nk] = 1
            k_bit[nk] = r - 2
            k_pos[nk] = i
            nk += 1
            m_cycle[nm] = arrival[i] + latency
            m_minus[nm] = r - 2
            nm += 1
    return (k_cycle[:nk], k_slot[:nk], k_basis[:nk], k_bit[:nk], k_pos[:nk], m_cycle[:nm],
            m_minus[:nm], refs[:nr], bad_phase)


@njit(cache=True)
def histogram_add(bank, arrival, channel, phase, offset, shift, bins, skip_before, count_max):
    """Bin tags into the accumulating bank (saturating); return ``(outside, skipped)``."""  # noqa
    outside = 0
    skipped = 0
    for i in range(arrival.shape[0]):
        if arrival[i] < skip_before:
            skipped += 1
            continue
        d = phase[i] - offset
        if d < 0:
            outside += 1
            continue
        index = d >> shift
        if index >= bins:
            outside += 1
            continue
        a = channel[i] * bins + index
        if bank[a] < count_max:
            bank[a] += 1
    return outside, skipped


def bin_table(starts: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    """Bin (0 early, 1 late, 2 middle, 3 none) of every phase ``0 … size − 1`` per channel.

    Overlaps resolve early > late > middle, as the classifier's window test.
    """
    phase = np.arange(size, dtype=np.int64)
    table = np.full((starts.shape[0], size), 3, dtype=np.int8)
    for w in (2, 1, 0):
        inside = (phase[None, :] >= starts[:, w:w + 1]) & \
            (phase[None, :] < starts[:, w:w + 1] + widths[:, w:w + 1])
        table[inside] = w
    return table
