"""Alice's slots: the slot clock, and the mapping of each tag to (slot, phase within the slot).

The slot clock runs beside the tagger's time base, one step per cycle. It keeps the phase of the
cycle's start within its slot exactly (:class:`tbqkd.hdl.config.SlotClockConstants`): an
``offset`` in 1/16 ps plus a remainder in ``1/(16·den)`` ps, so that slot boundaries fall where
``k × slot period`` says for as long as the link runs, for any rational ratio of Alice's pulse
period to the clock period (at least one clock period per slot).

Each accepted event carries its cycle's ``(slot, offset)`` through the tagger's event FIFO; the
calibration pipeline adds the fine time and the channel delay (both in 1/16 ps), and
:class:`SlotMapper` brings the sum back into ``[0, slot period)``, moving the slot by up to two
in either direction. Phases leave in whole picoseconds, rounded down.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import CAL_FRAC_BITS, OFFSET_WIDTH, SLOT_REM_WIDTH, SlotClockConstants
from .records import PHASE_BITS, SLOT_BITS

__all__ = ["SlotClock", "SlotMapper", "PHASE_SUM_WIDTH", "SLOT_MAPPER_LATENCY"]

#: Signed width of ``offset + fine + delay`` in 1/16 ps before the mapper reduces it (the
#: offset, the fine time and a 32-bit delay in ps times 16, with room to spare).
PHASE_SUM_WIDTH = 40

SLOT_MAPPER_LATENCY = 3


class SlotClock(wiring.Component):
    """Slot counter and the exact phase of each cycle's start within its slot.

    Every cycle ``(offset, rem) += (step_int, step_rem)`` with a carry when ``rem`` reaches
    ``den``; when the sum reaches ``(wrap_int, wrap_rem)`` one slot period is subtracted and
    ``slot`` counts up. ``preload`` loads ``slot``, ``offset`` and ``rem`` (with the tagger's
    time-base preload: a test hook, the Verilator model's idle skip, and a way to start the slot
    grid at a known phase). The constants must satisfy ``step <= wrap``, ``step_rem, wrap_rem <
    den`` (the host checks; :func:`tbqkd.hdl.config.slot_clock_constants`). They pass through
    three register stages inside: a new value takes effect three cycles after it is written,
    and a preload two cycles after the write already runs on it. ``reset`` are the constants'
    values out of reset (the register table's), which those registers start from.

    ``held_preload``: the preload values are held for at least one cycle before ``preload``
    rises (registers written before a command strobe, as in the core), so whether the
    preloaded phase starts on a slot boundary is compared a cycle ahead, off the clock's loop.
    Otherwise (the Verilator model's idle skip, whose values come with the strobe) it is
    compared in the cycle of the strobe, which costs the ECP5 placement about 0.8 ns.
    """

    def __init__(self, reset: SlotClockConstants, *, held_preload: bool = False) -> None:
        self._reset = reset
        self._held_preload = held_preload
        super().__init__({
            "step_int": In(OFFSET_WIDTH), "step_rem": In(SLOT_REM_WIDTH),
            "wrap_int": In(OFFSET_WIDTH), "wrap_rem": In(SLOT_REM_WIDTH),
            "den": In(SLOT_REM_WIDTH),
            "preload": In(1), "preload_slot": In(SLOT_BITS), "preload_offset": In(OFFSET_WIDTH),
            "preload_rem": In(SLOT_REM_WIDTH),
            "slot": Out(SLOT_BITS), "offset": Out(OFFSET_WIDTH), "rem": Out(SLOT_REM_WIDTH),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # With acc = offset·den + rem in [0, wrap) and T = wrap − step, each cycle
        #     acc ← acc − T   if acc >= T   (a slot boundary falls in this cycle)
        #     acc ← acc + step otherwise.
        # The decision `acc >= T` is made one cycle ahead and held in a flip-flop: the next acc
        # is acc − T or acc + step, so the next decision is acc >= T' + T or acc >= T' − step
        # (T' the next cycle's T), two comparisons against registered thresholds. The loop is
        # then one flip-flop driving the multiplexers; with the comparison in the loop it was
        # the tagger's ECP5 critical path at 155 MHz.
        k = self._reset
        t0 = k.wrap - k.step

        def mixed(name: str, value: int, shape=OFFSET_WIDTH) -> tuple[Signal, Signal]:
            """Registers (whole, remainder in [0, den)) holding ``value`` out of reset."""
            whole, rem = divmod(value, k.den)
            return (Signal(shape, name=f"{name}_int", init=whole),
                    Signal(SLOT_REM_WIDTH, name=f"{name}_rem", init=rem))

        def stage(name: str) -> dict[str, Signal]:
            step_int, step_rem = mixed(f"{name}_step", k.step)
            t_int, t_rem = mixed(f"{name}_t", t0)
            return {"step_int": step_int, "step_rem": step_rem, "t_int": t_int, "t_rem": t_rem,
                    "den": Signal(SLOT_REM_WIDTH, name=f"{name}_den", init=k.den)}

        # Stage 1: the written constants, with T.
        s1, s2, s3 = stage("written"), stage("next"), stage("used")
        t_borrow = Signal()
        m.d.comb += t_borrow.eq(self.wrap_rem < self.step_rem)
        # Every "x ± y ± 1" below is one carry chain (a - b - 1 = a + ~b, and a + b + 1 as the
        # high bits of (a, 1) + (b, 1)), beside its comparison, not a second chain after it.
        diff_int = self.wrap_int - self.step_int
        diff_int_less1 = (self.wrap_int + ~self.step_int)[:OFFSET_WIDTH]
        m.d.sync += [
            s1["step_int"].eq(self.step_int), s1["step_rem"].eq(self.step_rem),
            s1["den"].eq(self.den), s1["t_int"].eq(Mux(t_borrow, diff_int_less1, diff_int)),
            s1["t_rem"].eq(Mux(t_borrow, self.wrap_rem + self.den - self.step_rem,
                               self.wrap_rem - self.step_rem)),
        ]
        # Stage 2: the next cycle's constants, with den − rem of each; stage 3: those in use.
        next_den_minus_t = Signal(SLOT_REM_WIDTH, init=k.den - t0 % k.den)
        next_den_minus_s = Signal(SLOT_REM_WIDTH, init=k.den - k.step_rem)
        s_int1 = Signal(OFFSET_WIDTH + 1, init=k.step_int + 1)
        den_minus_s = Signal(SLOT_REM_WIDTH, init=k.den - k.step_rem)
        t_int1 = Signal(OFFSET_WIDTH, init=t0 // k.den + 1)
        den_minus_t = Signal(SLOT_REM_WIDTH, init=k.den - t0 % k.den)
        m.d.sync += [s2[name].eq(s1[name]) for name in s1]
        m.d.sync += [s3[name].eq(s2[name]) for name in s2]
        m.d.sync += [
            next_den_minus_t.eq(s1["den"] - s1["t_rem"]),
            next_den_minus_s.eq(s1["den"] - s1["step_rem"]),
            s_int1.eq(s2["step_int"] + 1), den_minus_s.eq(next_den_minus_s),
            t_int1.eq(s2["t_int"] + 1), den_minus_t.eq(next_den_minus_t),
        ]
        # Thresholds of the decision after next: T'' + T' and T'' − step' from stages 1 and 2
        # (they take effect when stage 3 holds stage 2's constants).
        wide = signed(OFFSET_WIDTH + 3)
        both_int, both_rem = mixed("both", 2 * t0, wide)
        less_int, less_rem = mixed("less", t0 - k.step, wide)
        sum_carry, less_borrow = Signal(), Signal()
        m.d.comb += [sum_carry.eq(s1["t_rem"] >= next_den_minus_t),   # t''_rem + t'_rem >= den
                     less_borrow.eq(s1["t_rem"] < s2["step_rem"])]
        both = s1["t_int"] + s2["t_int"]
        both_plus1 = (Cat(Const(1, 1), s1["t_int"]) + Cat(Const(1, 1), s2["t_int"]))[1:]
        less = s1["t_int"] - s2["step_int"]
        less_minus1 = (Cat(s1["t_int"], Const(0, 1)).as_signed()
                       + ~Cat(s2["step_int"], Const(0, 1)).as_signed())
        m.d.sync += [
            both_int.eq(Mux(sum_carry, both_plus1, both)),
            both_rem.eq(Mux(sum_carry, s1["t_rem"] - next_den_minus_t,
                            s1["t_rem"] + s2["t_rem"])),
            less_int.eq(Mux(less_borrow, less_minus1, less)),
            less_rem.eq(Mux(less_borrow, s1["t_rem"] + next_den_minus_s,
                            s1["t_rem"] - s2["step_rem"])),
        ]

        off, rem = self.offset, self.rem
        # candidate A, no boundary: (off, rem) + step
        carry_a = Signal()
        m.d.comb += carry_a.eq(rem >= den_minus_s)
        off_a = Mux(carry_a, off + s_int1, off + s3["step_int"])
        rem_a = Mux(carry_a, rem - den_minus_s, rem + s3["step_rem"])
        # candidate B, a boundary: (off, rem) − T
        borrow_b = Signal()
        m.d.comb += borrow_b.eq(rem < s3["t_rem"])
        off_b = Mux(borrow_b, off - t_int1, off - s3["t_int"])
        rem_b = Mux(borrow_b, rem + den_minus_t, rem - s3["t_rem"])

        def at_least(whole, part, bound_int, bound_rem):
            """(whole, part) >= (bound_int, bound_rem), both remainders in [0, den).

            Carry select: the remainders' comparison picks the wholes' ``>=`` or ``>``, three
            carry chains side by side instead of one through both (the 60-bit chain was the
            tagger's ECP5 critical path). For a bound whose whole part lies in
            [0, 2^OFFSET_WIDTH); below it the answer is yes, above it no (``whole`` is never
            that large).
            """
            assert len(part) == len(bound_rem) and len(whole) == OFFSET_WIDTH

            def compare(bound_whole):
                return Mux(part >= bound_rem, whole >= bound_whole, whole > bound_whole)

            if not bound_int.shape().signed:
                assert len(bound_int) == OFFSET_WIDTH
                return compare(bound_int)
            below = bound_int[-1]
            above = ~below & (bound_int[OFFSET_WIDTH:] != 0)
            return below | (~above & compare(bound_int[:OFFSET_WIDTH]))

        boundary = Signal(init=t0 == 0)         # acc >= T (acc is 0 out of reset)
        # The preloaded state against the T of the cycle after the strobe: stage 2's, or
        # (held values) stage 1's a cycle earlier, which is the same register one stage on.
        if self._held_preload:
            preload_boundary = Signal()
            m.d.sync += preload_boundary.eq(at_least(self.preload_offset, self.preload_rem,
                                                     s1["t_int"], s1["t_rem"]))
        else:
            preload_boundary = at_least(self.preload_offset, self.preload_rem,
                                        s2["t_int"], s2["t_rem"])
        with m.If(self.preload):
            m.d.sync += [self.slot.eq(self.preload_slot), self.offset.eq(self.preload_offset),
                         self.rem.eq(self.preload_rem), boundary.eq(preload_boundary)]
        with m.Elif(boundary):
            m.d.sync += [self.slot.eq(self.slot + 1), self.offset.eq(off_b),
                         self.rem.eq(rem_b),
                         boundary.eq(at_least(off, rem, both_int, both_rem))]
        with m.Else():
            m.d.sync += [self.offset.eq(off_a), self.rem.eq(rem_a),
                         boundary.eq(at_least(off, rem, less_int, less_rem))]
        return m


class SlotMapper(wiring.Component):
    """Brings ``slot`` and a phase sum (1/16 ps, signed) into ``[0, slot period)``.

    Two stages each move the sum by one slot period (``wrap_int``, the whole 1/16 ps of the
    period) and the slot by one, up or down; a third rounds the phase down to whole picoseconds.
    A sum still outside after two moves (a channel delay beyond one slot period) raises
    ``range_error`` with ``o_valid`` low: the tag is dropped from classification and counted.
    Latency :data:`SLOT_MAPPER_LATENCY`; one tag per cycle, no back-pressure.
    """

    def __init__(self, channel_bits: int = 8) -> None:
        super().__init__({
            "wrap_int": In(OFFSET_WIDTH),
            "i_valid": In(1), "i_slot": In(SLOT_BITS), "i_sum": In(signed(PHASE_SUM_WIDTH)),
            "i_channel": In(channel_bits),
            "o_valid": Out(1), "o_slot": Out(SLOT_BITS), "o_phase": Out(PHASE_BITS),
            "o_channel": Out(channel_bits), "range_error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        valid, slot, total, chan = self.i_valid, self.i_slot, self.i_sum, self.i_channel
        # The slot rides along unchanged; the moves are counted (-2..2) and added once, in the
        # last stage: one 48-bit adder instead of an increment, a decrement and a choice per
        # stage.
        moves = Const(0, signed(3))
        for stage in range(2):
            v = Signal(name=f"valid{stage}")
            s = Signal(SLOT_BITS, name=f"slot{stage}")
            x = Signal(signed(PHASE_SUM_WIDTH), name=f"sum{stage}")
            d = Signal(signed(3), name=f"moves{stage}")
            ch = Signal.like(chan, name=f"channel{stage}")
            m.d.sync += [v.eq(valid), ch.eq(chan), s.eq(slot)]
            with m.If(total < 0):
                m.d.sync += [d.eq(moves - 1), x.eq(total + self.wrap_int)]
            with m.Elif(total >= self.wrap_int):
                m.d.sync += [d.eq(moves + 1), x.eq(total - self.wrap_int)]
            with m.Else():
                m.d.sync += [d.eq(moves), x.eq(total)]
            valid, slot, total, moves, chan = v, s, x, d, ch
        inside = Signal()
        m.d.comb += inside.eq((total >= 0) & (total < self.wrap_int))
        m.d.sync += [self.o_valid.eq(valid & inside), self.range_error.eq(valid & ~inside),
                     self.o_slot.eq(slot + moves), self.o_channel.eq(chan),
                     self.o_phase.eq(total[CAL_FRAC_BITS:])]
        return m
