"""Time-bin classification of (slot, phase) events and the reference lock monitor.

The arithmetic (delay and wrap, windows, key values, alignment, lock monitor, bad input) is
specified once, in the docstring of :mod:`tbqkd.hdl.golden_classifier`, whose
:class:`~tbqkd.hdl.golden_classifier.ClassifierModel` the cocotb tests hold this block to.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .golden_classifier import CLASSIFIER_LATENCY, LOCK_OFFSET_BITS, LOCK_WINDOWS_BITS
from .layouts import struct_layout
from .records import EVENT, PHASE_BITS, SLOT_BITS, Basis, Bin, Role

__all__ = ["Classifier", "CLASSIFIER_LATENCY"]

_COUNT_BITS = 64
_WINDOW_COUNT_BITS = 32      # events in an open lock window (windows hold up to 2**31)
_SUM_BITS = LOCK_OFFSET_BITS + _WINDOW_COUNT_BITS


def _delayed(m: Module, signal, cycles: int, name: str) -> Signal:
    """``signal`` through ``cycles`` registers."""
    for i in range(cycles):
        reg = Signal.like(signal, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(signal)
        signal = reg
    return signal


class Classifier(wiring.Component):
    """Classify one event per cycle into time bins, key values and counters; lock monitor.

    Pipeline, no back-pressure, fixed latency :data:`CLASSIFIER_LATENCY` (5) cycles: an event
    presented with ``valid`` in cycle *t* leaves on ``o_valid``/``o_event``/``o_key``/
    ``mid_valid``/``mid_minus`` in cycle *t* + 5 (one cycle per stage: 1 channel lookup, 2
    ``phase − delay`` and window ends, 3 wrap at the slot boundary, 4 bins, key value,
    alignment, 5 outputs and counters). Events of OFF channels and of channels
    ``>= n_channels`` leave nothing on the outputs.

    Counters (``early``, ``late``, ``middle``, ``outside`` per channel, ``bad_channel``,
    ``bad_phase``) include the event of cycle *t* from cycle *t* + 6 on; the lock flag
    (``lost_lock``) from *t* + 7; ``lock_violations``, and ``lock_windows`` with the latched
    ``lock_offset``/``lock_spread`` of the window it counts, from *t* + 8. ``slot_base``/
    ``aligned`` change in cycle *t* + 5 after the aligning reference event.

    Control pulses act on the events presented in the same cycle or later and on none before
    (they travel down the pipeline with the events): ``align``, ``clear_counters``,
    ``clear_lost_lock``. The configuration inputs are quasi-static: per-channel settings and
    ``slot_period`` are sampled when an event enters; the lock settings when a reference event
    reaches the lock monitor (``ref_window_log2`` through a register, a cycle after it
    changes).

    Nothing is dropped silently: events of OFF channels are ignored by design; events on a
    channel ``>= n_channels`` are counted in ``bad_channel``; events whose phase is not below
    ``slot_period`` are processed and counted in ``bad_phase``.

    Every 64-bit counter also leaves as its increment, ``<name>_inc`` (per channel for the
    bin counters), with ``counts_clear`` (``lock_violations_clear`` for ``lock_violations``):
    the counter is ``count <= clear ? inc : count + inc``. With ``counters=False`` the block
    keeps none of them (the receiver core counts the increments in its register bank).

    In short (the model's docstring has the exact arithmetic): ``p = phase − delay`` wrapped
    once into the neighbouring slot; bins with priority early > late > middle where windows
    overlap; ``align`` arms, the next reference event's slot becomes ``slot_base`` (that event
    is slot 0); the lock monitor takes each reference offset ``p − ref_phase`` into
    ``(−P/2, P/2]`` by one ``±slot_period`` correction, so a reference jittering across the
    slot boundary gives small offsets of both signs, never a jump by a whole slot.
    """

    def __init__(self, n_channels: int, *, counters: bool = True) -> None:
        if not 1 <= n_channels <= 256:
            raise ValueError(f"n_channels={n_channels} must be in 1..256")
        self._n = n_channels
        self._counters = counters
        per_channel = data.ArrayLayout(unsigned(PHASE_BITS), n_channels)
        per_counter = data.ArrayLayout(unsigned(_COUNT_BITS), n_channels)
        kept = {"early": Out(per_counter), "late": Out(per_counter),
                "middle": Out(per_counter), "outside": Out(per_counter),
                "bad_channel": Out(_COUNT_BITS), "bad_phase": Out(_COUNT_BITS),
                "lock_violations": Out(_COUNT_BITS)} if counters else {}
        super().__init__({
            # event in
            "valid": In(1), "slot": In(SLOT_BITS), "phase": In(PHASE_BITS), "channel": In(8),
            # configuration
            "slot_period": In(PHASE_BITS),
            "role": In(data.ArrayLayout(unsigned(3), n_channels)),
            "delay": In(data.ArrayLayout(signed(PHASE_BITS), n_channels)),
            "early_start": In(per_channel), "early_width": In(per_channel),
            "late_start": In(per_channel), "late_width": In(per_channel),
            "middle_start": In(per_channel), "middle_width": In(per_channel),
            "ref_phase": In(PHASE_BITS), "ref_window_log2": In(5),
            "lock_threshold": In(PHASE_BITS),
            # control pulses
            "align": In(1), "clear_counters": In(1), "clear_lost_lock": In(1),
            # classified events out
            "o_valid": Out(1), "o_event": Out(struct_layout(EVENT)), "o_key": Out(1),
            "mid_valid": Out(1), "mid_minus": Out(1),
            # counters and status
            **kept,
            "early_inc": Out(n_channels), "late_inc": Out(n_channels),
            "middle_inc": Out(n_channels), "outside_inc": Out(n_channels),
            "bad_channel_inc": Out(1), "bad_phase_inc": Out(1), "lock_violations_inc": Out(1),
            "counts_clear": Out(1), "lock_violations_clear": Out(1),
            "slot_base": Out(SLOT_BITS), "aligned": Out(1),
            "lock_offset": Out(signed(LOCK_OFFSET_BITS)), "lock_spread": Out(LOCK_OFFSET_BITS),
            "lock_windows": Out(LOCK_WINDOWS_BITS), "lost_lock": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        n = self._n

        # Stage 1: the channel's settings, looked up and registered with the event. The lookup
        # is indexed by the channel's low bits only (a power-of-two table, the last channel's
        # settings repeated): a channel >= n is not valid, so what it looks up is never used,
        # and the 8-bit decode stays off the 171 multiplexers.
        index = self.channel[:max(1, (n - 1).bit_length())]

        def table(port):
            return Array(port[min(ch, n - 1)] for ch in range(1 << len(index)))

        def lookup(port, name):
            reg = Signal(port[0].shape(), name=f"{name}1")
            m.d.sync += reg.eq(table(port)[index])
            return reg

        known = self.channel < n
        role1 = lookup(self.role, "role")
        delay1 = lookup(self.delay, "delay")
        # ``phase ± P`` beside ``phase``, so that stage 2 computes ``p0 ± P`` beside ``p0`` and
        # stage 3's wrap is selected by two sign bits instead of a comparison.
        phase_plus_period1 = Signal(PHASE_BITS + 1)
        phase_minus_period1 = Signal(signed(PHASE_BITS + 1))
        m.d.sync += [phase_plus_period1.eq(self.phase + self.slot_period),
                     phase_minus_period1.eq(self.phase - self.slot_period)]
        start1 = {w: lookup(getattr(self, f"{w}_start"), f"{w}_start")
                  for w in ("early", "late", "middle")}
        width1 = {w: lookup(getattr(self, f"{w}_width"), f"{w}_width")
                  for w in ("early", "late", "middle")}
        valid1, bad_channel1 = Signal(), Signal()
        slot1, phase1 = Signal(SLOT_BITS), Signal(PHASE_BITS)
        channel1, period1 = Signal(8), Signal(PHASE_BITS)
        m.d.sync += [
            valid1.eq(self.valid & known & (table(self.role)[index] != Role.OFF)),
            bad_channel1.eq(self.valid & ~known),
            slot1.eq(self.slot), phase1.eq(self.phase), channel1.eq(self.channel),
            period1.eq(self.slot_period),
        ]

        # Stage 2: p0 = phase − delay (exact, signed) and p0 ± P; window ends (exact, no
        # overflow).
        p0_2 = Signal(signed(PHASE_BITS + 3))
        p0_plus_period2 = Signal(signed(PHASE_BITS + 3))
        p0_minus_period2 = Signal(signed(PHASE_BITS + 3))
        start2 = {w: Signal(PHASE_BITS, name=f"{w}_start2") for w in start1}
        end2 = {w: Signal(PHASE_BITS + 1, name=f"{w}_end2") for w in start1}
        bad_phase2 = Signal()
        m.d.sync += [p0_2.eq(phase1 - delay1), bad_phase2.eq(valid1 & (phase1 >= period1)),
                     p0_plus_period2.eq(phase_plus_period1 - delay1),
                     p0_minus_period2.eq(phase_minus_period1 - delay1)]
        for w in start1:
            m.d.sync += [start2[w].eq(start1[w]), end2[w].eq(start1[w] + width1[w])]
        valid2, slot2, channel2, role2, period2 = (
            _delayed(m, s, 1, name) for s, name in ((valid1, "valid"), (slot1, "slot"),
                                                    (channel1, "channel"), (role1, "role"),
                                                    (period1, "period")))

        # Stage 3: one correction by a slot period when p0 left [0, P): p0 < 0 and
        # p0 − P >= 0 are sign bits of stage 2's registers. The slot moves by the same: one
        # adder whose operand (−1, 0 or +1) those two bits give.
        under = p0_2[-1]
        over = ~p0_minus_period2[-1]
        p3 = Signal(PHASE_BITS)
        slot3 = Signal(SLOT_BITS)
        m.d.sync += slot3.eq(slot2 + Mux(under, -1, Mux(over, 1, 0)))
        with m.If(under):
            m.d.sync += p3.eq(p0_plus_period2)
        with m.Elif(over):
            m.d.sync += p3.eq(p0_minus_period2)
        with m.Else():
            m.d.sync += p3.eq(p0_2)
        start3 = {w: _delayed(m, s, 1, f"{w}_start") for w, s in start2.items()}
        end3 = {w: _delayed(m, s, 1, f"{w}_end") for w, s in end2.items()}
        valid3, channel3, period3 = (
            _delayed(m, s, 1, name) for s, name in ((valid2, "valid"), (channel2, "channel"),
                                                    (period2, "period")))

        # Stage 4: bin (priority early > late > middle), key value, alignment, lock raw offset.
        inside = {w: (p3 >= start3[w]) & (p3 < end3[w]) for w in start3}
        bin4 = Signal(2)
        with m.If(inside["early"]):
            m.d.sync += bin4.eq(Bin.EARLY)
        with m.Elif(inside["late"]):
            m.d.sync += bin4.eq(Bin.LATE)
        with m.Elif(inside["middle"]):
            m.d.sync += bin4.eq(Bin.MIDDLE)
        with m.Else():
            m.d.sync += bin4.eq(Bin.NONE)
        # The role's decodes are registers of stage 3, not logic in front of stage 4's.
        is_z, is_x, is_minus, is_ref_role = (Signal(name=f"{s}3") for s in
                                             ("is_z", "is_x", "is_minus", "is_ref_role"))
        m.d.sync += [is_z.eq(role2 == Role.Z),
                     is_x.eq((role2 == Role.X_PLUS) | (role2 == Role.X_MINUS)),
                     is_minus.eq(role2 == Role.X_MINUS),
                     is_ref_role.eq(role2 == Role.REFERENCE)]
        is_ref = valid3 & is_ref_role
        basis4, bit4, key4, mid4, minus4 = (Signal(name=f"{s}4") for s in
                                            ("basis", "bit", "key", "mid", "minus"))
        middle3 = ~inside["early"] & ~inside["late"] & inside["middle"]
        m.d.sync += [
            basis4.eq(Mux(is_x, Basis.X, Basis.Z)),
            bit4.eq(Mux(is_z, ~inside["early"] & inside["late"], is_minus)),
            key4.eq((is_z & (inside["early"] | inside["late"])) | (is_x & middle3)),
            mid4.eq(valid3 & is_x & middle3),
            minus4.eq(is_minus),
        ]
        # Alignment: the pulse travels with the events to this stage, so an event presented in
        # the cycle of the pulse is already eligible.
        align3 = _delayed(m, self.align, 3, "align")
        armed = Signal()
        do_align = is_ref & (armed | align3)
        slot4 = Signal(SLOT_BITS)
        with m.If(do_align):
            m.d.sync += [self.slot_base.eq(slot3), armed.eq(0), self.aligned.eq(1),
                         slot4.eq(0)]
        with m.Else():
            with m.If(align3):
                m.d.sync += [armed.eq(1), self.aligned.eq(0)]
            m.d.sync += slot4.eq(slot3 - self.slot_base)
        raw4 = Signal(signed(PHASE_BITS + 1))
        m.d.sync += raw4.eq(p3 - self.ref_phase)
        valid4, channel4, p4, period4 = (
            _delayed(m, s, 1, name) for s, name in ((valid3, "valid"), (channel3, "channel"),
                                                    (p3, "p"), (period3, "period")))
        ref4 = _delayed(m, is_ref, 1, "ref")
        bad_channel4 = _delayed(m, bad_channel1, 3, "bad_channel")
        bad_phase4 = _delayed(m, bad_phase2, 2, "bad_phase")

        # Stage 5: outputs and counters.
        m.d.sync += [
            self.o_valid.eq(valid4), self.o_key.eq(valid4 & key4),
            self.o_event.slot.eq(slot4), self.o_event.phase.eq(p4),
            self.o_event.channel.eq(channel4), self.o_event.bin.eq(bin4),
            self.o_event.basis.eq(basis4), self.o_event.bit.eq(bit4),
            self.mid_valid.eq(mid4), self.mid_minus.eq(mid4 & minus4),
        ]
        clear4 = _delayed(m, self.clear_counters, 4, "clear")
        clear5 = _delayed(m, clear4, 1, "clear")

        m.d.comb += self.counts_clear.eq(clear4)

        def count(counter, increment, clear=clear4):
            # A clear and an event in the same stage: the event counts (clear, then add).
            # Written as a choice after the adder, not a zero before it, so that the clear is
            # the flip-flops' synchronous reset instead of one LUT per counter bit.
            if counter is None:
                return
            with m.If(clear):
                m.d.sync += counter.eq(increment)
            with m.Else():
                m.d.sync += counter.eq(counter + increment)

        def kept(name: str, ch: int | None = None):
            if not self._counters:
                return None
            return getattr(self, name) if ch is None else getattr(self, name)[ch]

        for ch in range(n):
            here = valid4 & (channel4 == ch)
            for name, code in (("early", Bin.EARLY), ("late", Bin.LATE),
                               ("middle", Bin.MIDDLE), ("outside", Bin.NONE)):
                inc = getattr(self, f"{name}_inc")[ch]
                m.d.comb += inc.eq(here & (bin4 == code))
                count(kept(name, ch), inc)
        m.d.comb += [self.bad_channel_inc.eq(bad_channel4), self.bad_phase_inc.eq(bad_phase4)]
        count(kept("bad_channel"), bad_channel4)
        count(kept("bad_phase"), bad_phase4)

        # Lock monitor. Stage 5: offset in (−P/2, P/2] (one correction by ±P).
        offset5 = Signal(signed(LOCK_OFFSET_BITS))
        twice = raw4 << 1
        neg_period4 = Signal(signed(PHASE_BITS + 1))       # −P a register, not a carry chain
        m.d.sync += neg_period4.eq(-period3)
        # 2·raw > P and 2·raw <= −P as the sign bits of P − 2·raw and −P − 2·raw: each is one
        # carry chain's last sum bit, with no sign correction after the chain.
        above_half = (period4 - twice)[-1]
        below_half = ~(neg_period4 - twice)[-1]
        with m.If(above_half):
            m.d.sync += offset5.eq(raw4 - period4)
        with m.Elif(below_half):
            m.d.sync += offset5.eq(raw4 + period4)
        with m.Else():
            m.d.sync += offset5.eq(raw4)
        ref5 = _delayed(m, ref4, 1, "ref")
        clear_lost5 = _delayed(m, self.clear_lost_lock, 5, "clear_lost")
        threshold = Signal(PHASE_BITS)
        neg_threshold = Signal(signed(PHASE_BITS + 1))
        m.d.sync += [threshold.eq(self.lock_threshold), neg_threshold.eq(-self.lock_threshold)]

        # Stage 6: violations, window accumulation.
        violation = ref5 & ((offset5 > threshold) | (offset5 < neg_threshold))
        m.d.sync += self.lost_lock.eq(Mux(clear_lost5, 0, self.lost_lock) | violation)
        violation6 = _delayed(m, violation, 1, "violation")
        clear6 = _delayed(m, clear5, 1, "clear")
        count6 = Signal(_WINDOW_COUNT_BITS)
        sum6 = Signal(signed(_SUM_BITS))
        min6, max6 = Signal(signed(LOCK_OFFSET_BITS)), Signal(signed(LOCK_OFFSET_BITS))
        # ``empty`` is "the open window holds nothing" in this cycle (a clear or ``count6 == 0``)
        # kept as a flag, and the spread of a closed window is subtracted in stage 7: neither a
        # 32-bit zero test nor a subtraction sits behind the min/max selection. The comparisons
        # are the sign bits of differences (one carry chain each, no sign correction after it);
        # a clear selects after the adder (the sum restarts at the offset), not before it.
        empty = Signal(init=1)
        base_count = Mux(clear5, 0, count6)
        base_sum = Mux(clear5, 0, sum6)
        new_sum = Mux(clear5, offset5, sum6 + offset5)
        below_min = (offset5 - min6)[-1]
        above_max = (max6 - offset5)[-1]
        new_min = Mux(empty | below_min, offset5, min6)
        new_max = Mux(empty | above_max, offset5, max6)
        # A window closes at count 2**k − 1, k = ``log2``: ``ref_window_log2`` through a
        # register, with ``2**k − 1`` and ``2**k − 2`` (0 for k = 0) registered beside it, so
        # that no decode sits in front of the comparisons (k of two cycles before decides). The
        # comparison ``count6 >= 2**k − 1`` is kept as the flag ``full6``, computed one cycle
        # ahead from registers for each way ``count6`` can change, so that no carry chain sits
        # between ``count6`` and the decision that resets it. ``last0``: k was 0.
        log2 = Signal(5)
        last = Signal(_WINDOW_COUNT_BITS)          # 2**k − 1
        last_minus1 = Signal(_WINDOW_COUNT_BITS)   # 2**k − 2, and 0 for k = 0
        ones = Const((1 << _WINDOW_COUNT_BITS) - 1, _WINDOW_COUNT_BITS)
        written_last = ~(ones << self.ref_window_log2)[:_WINDOW_COUNT_BITS]
        m.d.sync += [log2.eq(self.ref_window_log2), last.eq(written_last),
                     last_minus1.eq(written_last & ~1)]
        full6, last0 = Signal(init=1), Signal(init=1)
        closing = ref5 & Mux(clear5, last0, full6)
        m.d.sync += last0.eq(log2 == 0)
        with m.If(closing):
            m.d.sync += full6.eq(log2 == 0)                    # count 0
        with m.Elif(ref5):                                     # count base + 1
            m.d.sync += full6.eq(Mux(clear5, log2 <= 1, count6 >= last_minus1))
        with m.Else():                                         # count base
            m.d.sync += full6.eq(Mux(clear5, log2 == 0, count6 >= last))
        closed6 = Signal()
        closed_sum6 = Signal(signed(_SUM_BITS))
        closed_min6 = Signal(signed(LOCK_OFFSET_BITS))
        closed_max6 = Signal(signed(LOCK_OFFSET_BITS))
        m.d.sync += [closed6.eq(closing), empty.eq(clear4 | closing | (~ref5 & empty))]
        with m.If(closing):
            m.d.sync += [count6.eq(0), sum6.eq(0), closed_sum6.eq(new_sum),
                         closed_min6.eq(new_min), closed_max6.eq(new_max)]
        with m.Elif(ref5):
            m.d.sync += [count6.eq(base_count + 1), sum6.eq(new_sum), min6.eq(new_min),
                         max6.eq(new_max)]
        with m.Else():
            m.d.sync += [count6.eq(base_count), sum6.eq(base_sum)]
        # Both counted one stage later, from registers (with the clear one stage later too):
        # the comparisons' carry chains and the counters' do not sit in series.
        m.d.comb += [self.lock_violations_inc.eq(violation6),
                     self.lock_violations_clear.eq(clear6)]
        count(kept("lock_violations"), violation6, clear6)
        count(self.lock_windows, closed6, clear6)

        # Stage 7: latch the window's mean (arithmetic shift) and spread.
        with m.If(closed6):
            m.d.sync += [self.lock_offset.eq(closed_sum6 >> log2),
                         self.lock_spread.eq(closed_max6 - closed_min6)]
        return m
