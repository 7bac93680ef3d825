"""The interferometer's error signal: sifted X events and errors counted over windows.

:class:`PhaseErrorUnit` counts, over a programmable integration window, the sifted X-basis events
and those that are errors, plus the raw middle-bin clicks of the X+ and X− detectors. Each
completed window is latched in snapshot outputs, raises ``irq`` and leaves as one
:data:`~tbqkd.hdl.records.PHASE_WINDOW` record on a stream, so the host's phase controller reads
an error signal without touching raw events. Golden model:
:class:`tbqkd.hdl.golden_phase.PhaseErrorModel`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .golden_phase import COUNT_MAX
from .layouts import struct_layout
from .records import PHASE_WINDOW, SLOT_BITS

__all__ = ["PhaseErrorUnit"]


class PhaseErrorUnit(wiring.Component):
    """Error-signal windows over sifted X events; one cycle per event, never stalls.

    Counting
        Every cycle, a sifted X event (``x_valid``) counts in ``x_sifted``; it is an error if
        ``x_bob_bit`` is 1 (three-state protocol: Alice's X state is always \\|+>, so an X−
        click is an error, whatever ``x_alice_bit`` says) or, with ``four_state``, if
        ``x_bob_bit != x_alice_bit``. A middle-bin click (``mid_valid``) counts in
        ``mid_minus`` if ``mid_minus`` is 1, else in ``mid_plus``. Counts saturate at 2^32 − 1.
    Windows
        ``enable`` low holds the counts at zero. The first cycle with ``enable`` high starts a
        window (its events count).
        ``mode`` 0 (slots): the window ends at slot ``start slot + window_slots``; it is complete
        in the first cycle where ``slot`` is at or past that end slot (modulo 2^48), and **the
        events of that boundary cycle belong to the next window**, which ends ``window_slots``
        after that (boundary) slot. So a window holds the events of slots ``[start, end)``. If
        ``slot`` jumps past the end slot (a simulation skipping idle time), the window is
        complete one cycle later (the jump cycle's events still count in it), at the slot of
        that cycle, and the next one ends ``window_slots`` after that: no burst of empty windows.
        ``mode`` 1 (events): the window is complete in the cycle of its ``window_events``-th
        sifted X event, and **every event of that cycle (the X event and any middle-bin click)
        belongs to it**; the next starts empty.
        ``window_slots``/``window_events`` of 0 act as 1. New lengths apply from the next
        window; change ``mode`` with ``enable`` low.
    Outputs
        A window found complete in one cycle closes at the next edge (one cycle later, so that
        the close is a register: it drives every counter, the snapshot and the FIFO; counting
        is not delayed). At that edge the snapshot outputs take the window's ``index``
        (0, 1, ... since reset), counts and boundary slot (``snap_end_slot``, the slot of the
        cycle it was complete in); ``irq`` goes high
        until an ``irq_ack`` pulse (a close wins over an ack in the same cycle); the record
        enters a FIFO of ``fifo_depth`` records behind the stream's output register. If the
        stream is not drained and the FIFO is full, the oldest queued record is dropped and
        counted in ``win_dropped``: the newest records are kept and counting never waits. A
        record reaches ``win_tvalid`` one cycle after its window closed, at the earliest.
        TLAST is set on every record.
    """

    def __init__(self, *, fifo_depth: int = 4) -> None:
        if fifo_depth < 2 or fifo_depth & (fifo_depth - 1):
            raise ValueError(f"fifo_depth {fifo_depth} must be a power of two >= 2")
        self._fifo_depth = fifo_depth
        super().__init__({
            # events
            "x_valid": In(1), "x_bob_bit": In(1), "x_alice_bit": In(1),
            "mid_valid": In(1), "mid_minus": In(1),
            "slot": In(SLOT_BITS),
            # configuration
            "mode": In(1), "window_slots": In(SLOT_BITS), "window_events": In(32),
            "four_state": In(1), "enable": In(1), "irq_ack": In(1),
            # snapshot and interrupt
            "snap_index": Out(32), "snap_x_sifted": Out(32), "snap_x_errors": Out(32),
            "snap_mid_plus": Out(32), "snap_mid_minus": Out(32), "snap_end_slot": Out(SLOT_BITS),
            "irq": Out(1),
            # record stream
            "win_tdata": Out(PHASE_WINDOW.width), "win_tvalid": Out(1), "win_tready": In(1),
            "win_tlast": Out(1), "win_dropped": Out(32),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        running = Signal()
        end_slot = Signal(SLOT_BITS)
        index = Signal(32)
        names = ("x_sifted", "x_errors", "mid_plus", "mid_minus")
        counts = [Signal(32, name=f"count_{n}") for n in names]

        error = Signal()
        m.d.comb += error.eq(Mux(self.four_state, self.x_bob_bit ^ self.x_alice_bit,
                                 self.x_bob_bit))
        inc = [self.x_valid, self.x_valid & error, self.mid_valid & ~self.mid_minus,
               self.mid_valid & self.mid_minus]
        window_slots = Signal(SLOT_BITS)
        window_events = Signal(32)
        m.d.comb += [window_slots.eq(Mux(self.window_slots == 0, 1, self.window_slots)),
                     window_events.eq(Mux(self.window_events == 0, 1, self.window_events))]

        # base: the counts before this cycle (0 in a window's first cycle); total: with it.
        base = [Signal(32, name=f"base_{n}") for n in names]
        total = [Signal(32, name=f"total_{n}") for n in names]
        # A window detected complete in one cycle closes in the next (``close``, a register:
        # it fans out to every counter, the snapshot and the FIFO). The counters run on as if
        # nothing happened and ``close`` then swaps in what the new window holds (``carry``).
        close = Signal()
        carry = [Signal(name=f"carry_{n}") for n in names]
        # (``total`` is ``base`` + this cycle's event, saturating, written so that ``close``
        # selects after the adder, not before it; the increment's carry out is the saturation
        # test, so no 32-input AND sits beside the carry chain.)
        for b, t, c, i, k in zip(base, total, counts, inc, carry, strict=True):
            counted = Signal(32, name=f"counted_{c.name}")
            incremented = Signal(33, name=f"incremented_{c.name}")
            m.d.comb += [incremented.eq(c + 1),
                         counted.eq(Mux(i & ~incremented[32], incremented[:32], c)),
                         b.eq(Mux(running, Mux(close, k, c), 0)),
                         t.eq(Mux(running, Mux(close, k + i, counted), i))]

        # ``detect`` comes from short paths only. Slot mode: an equality (no 48-bit
        # subtraction); a slot that jumped past the end is caught by the registered
        # ``past_end`` one cycle later. Event mode: a down-counter of the X events the window
        # still needs, and a registered flag that it needs exactly one.
        past_end = Signal()
        events_left = Signal(32)
        one_left = Signal()
        since_end = Signal(SLOT_BITS)
        m.d.comb += since_end.eq(self.slot - end_slot)
        detect = Signal()
        with m.If(self.mode == 0):
            m.d.comb += detect.eq(self.enable & running & ((self.slot == end_slot) | past_end))
        with m.Else():
            m.d.comb += detect.eq(self.enable & self.x_valid
                                  & Mux(running, one_left, window_events == 1))
        restart = Signal()
        carry_x = Signal()          # the restart cycle's X event counts in the new window
        m.d.comb += [restart.eq(detect | ~running),
                     carry_x.eq(self.x_valid & ~(detect & (self.mode == 1)))]
        # (the restart's load ``window_events − carry_x`` as a choice between two values
        # computed from the input, so that no carry chain sits after the restart decision)
        window_events_minus1 = Signal(32)
        m.d.comb += window_events_minus1.eq(Mux(self.window_events == 0, 0,
                                                self.window_events - 1))
        with m.If(restart):
            m.d.sync += [events_left.eq(Mux(carry_x, window_events_minus1, window_events)),
                         one_left.eq(Mux(carry_x, window_events == 2, window_events == 1))]
        with m.Else():
            m.d.sync += [events_left.eq(events_left - self.x_valid),
                         one_left.eq(Mux(self.x_valid, events_left == 2, events_left == 1))]
        m.d.sync += past_end.eq(self.enable & running & ~detect & ~since_end[-1])

        # The detected window, registered every cycle (slot mode: before this cycle's events;
        # event mode: with them), and what the next window starts with.
        window = [Signal(32, name=f"window_{n}") for n in names]
        window_end = Signal(SLOT_BITS)
        m.d.sync += [close.eq(detect), window_end.eq(self.slot)]
        for w, b, t, i, k in zip(window, base, total, inc, carry, strict=True):
            m.d.sync += [w.eq(Mux(self.mode == 0, b, t)), k.eq(i & (self.mode == 0))]
        record = Signal(struct_layout(PHASE_WINDOW))
        m.d.comb += [record.index.eq(index), record.end_slot.eq(window_end)]
        for name, w in zip(names, window, strict=True):
            m.d.comb += getattr(record, name).eq(w)

        with m.If(~self.enable):
            m.d.sync += running.eq(0)
            m.d.sync += [c.eq(0) for c in counts]
        with m.Else():
            m.d.sync += running.eq(1)
            with m.If(restart):
                m.d.sync += end_slot.eq(self.slot + window_slots)
            m.d.sync += [c.eq(t) for c, t in zip(counts, total, strict=True)]
        with m.If(close):
            m.d.sync += index.eq(index + 1)

        with m.If(close):
            m.d.sync += [self.snap_index.eq(record.index),
                         self.snap_x_sifted.eq(record.x_sifted),
                         self.snap_x_errors.eq(record.x_errors),
                         self.snap_mid_plus.eq(record.mid_plus),
                         self.snap_mid_minus.eq(record.mid_minus),
                         self.snap_end_slot.eq(record.end_slot),
                         self.irq.eq(1)]
        with m.Elif(self.irq_ack):
            m.d.sync += self.irq.eq(0)

        # Record FIFO (a ring in LUT RAM, asynchronous read) behind the output register. When
        # full, a new record overwrites the oldest: both pointers advance.
        depth = self._fifo_depth
        m.submodules.ring = ring = memory.Memory(shape=PHASE_WINDOW.width, depth=depth, init=[])
        ring_w = ring.write_port()
        ring_r = ring.read_port(domain="comb")
        rd_ptr, wr_ptr = Signal(range(depth)), Signal(range(depth))     # wrap: power of two
        level = Signal(range(depth + 1))
        transfer, pop = Signal(), Signal()
        m.d.comb += [
            ring_r.addr.eq(rd_ptr),
            ring_w.addr.eq(wr_ptr), ring_w.data.eq(record), ring_w.en.eq(close),
            transfer.eq(self.win_tvalid & self.win_tready),
            pop.eq((level != 0) & (~self.win_tvalid | transfer)),
            self.win_tlast.eq(1),
        ]
        with m.If(pop):
            m.d.sync += [self.win_tdata.eq(ring_r.data), self.win_tvalid.eq(1)]
        with m.Elif(transfer):
            m.d.sync += [self.win_tdata.eq(0), self.win_tvalid.eq(0)]
        overwrite = Signal()
        m.d.comb += overwrite.eq(close & ~pop & (level == depth))
        with m.If(close):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)
        with m.If(pop | overwrite):
            m.d.sync += rd_ptr.eq(rd_ptr + 1)
        with m.If(overwrite):
            m.d.sync += self.win_dropped.eq(Mux(self.win_dropped == COUNT_MAX, COUNT_MAX,
                                                self.win_dropped + 1))
        with m.Elif(close & ~pop):
            m.d.sync += level.eq(level + 1)
        with m.Elif(pop & ~close):
            m.d.sync += level.eq(level - 1)
        return m
