"""The transmitter core (Alice): random states per slot, modulator pins, and her half of sifting.

Data path, one clock domain (``sync``)::

    s_axis_random ─▶ random buffer (128 bits) ─┐
    PATTERN ───────────────────────────────────┴▶ state of the slot ─┬▶ mod_early/late/phase
    slot clock (÷ k) ──▶ slot counter ──▶ reference (every REF_DIVIDER slots)
                                                                     ├▶ state ring (BRAM)
                                                  m_axis_states ◀─ 16 slots a record ◀┘
    s_axis_announce ─▶ ring lookup ─▶ answer FIFO ─▶ TagFramer ─▶ m_axis_answer
                                  └─▶ sifted FIFO ─▶ TagFramer ─▶ m_axis_sifted

:class:`Transmitter` is the core with plain ports; :class:`TransmitterTop` wraps it with the
AXI4-Lite register bank of :func:`~tbqkd.hdl.tx_registers.transmitter_regmap` and flat,
Vivado-inferable ports. The cycle behaviour is that of
:class:`~tbqkd.hdl.golden_transmitter.TransmitterModel` (its docstring is the specification).

Slot clock: the fabric clock is locked to k times the pulse rate and a slot is k clocks (an
integer divider, no fractional phase). The pins are levels per fabric clock; finer timing (an
ODELAY or an MMCM phase shift, ``MOD_FINE_DELAY``) lies outside the core.

State ring: ``ring_depth`` slots × 3 bits (state and "sent"), written at every slot start,
read by announcements, and without initial contents: an entry is only used after it was written
in this session (an announcement for slot ``s`` is answered only if ``1 <= slot − s <=
ring_depth``, and every slot below the counter was written since the last restart or reset), so
its contents before the first write are never observed. Convert designs containing the core
with :func:`transmitter_verilog`, which leaves out the initialiser Amaranth would emit. The
ring covers round trips up to ``ring_depth × k`` fabric clocks (2^17 slots: 1.73 ms at 75.947
MHz; Yosys maps it to 12 RAMB36 of the Zynq-7020's 140, as 32K × 1 blocks).
Announcements older than that — long fibres plus host batching — get no
answer (``err_out_of_ring``): the ring is the line-rate path for short delays. For long links
the host keeps the states: with ``state_stream`` every slot's state leaves on
``m_axis_states`` (``STATES`` records of 16 slots; a record that finds its 16-deep queue full
is dropped and counted) and the host answers.

Announcement path (one record per clock, three steps): an announcement is taken when stage 1
is free or moving on; its slot is checked against the slot counter of that cycle and the ring
is read at the same clock edge; stage 1 holds the ring's block-RAM output; stage 2 holds it
registered (the decision bits computed on the way in) and writes the answer (and sifted
record) into 4-deep FIFOs, stalling while either is full. A stalled stage 2 stalls stage 1
(whose ring read is then held: the RAM is not read again), a stalled stage 1 the input, so
back-pressure on ``m_axis_answer``/``m_axis_sifted`` only delays announcements. Latency
(:data:`~tbqkd.hdl.golden_transmitter.ANSWER_LATENCY`): an announcement transferred in cycle
``a`` is in the FIFO, and the ``answers``/``sifted_z``/``err_*`` counters and
``protocol_error`` have stepped, at ``a + 3`` without back-pressure (``announcements`` at ``a +
1``); the register between the ring read and the decision keeps the block RAM's clock-to-out
and the multiplexer over its blocks out of the FIFO and counter logic. ``clear_counters`` and
``clear_error`` apply to every announcement taken up to their cycle, even one still in the
pipeline (its answer is written, but not counted; its miss does not set ``protocol_error``), as
in the model: ``announcements`` always equals ``answers + err_vacuum + err_out_of_ring`` once
the pipeline is empty. The framer holds the newest record until the next one or
``flush_cycles`` idle cycles (:class:`~tbqkd.hdl.tagger.TagFramer`). The slot counter is 48
bits and does not wrap (2^48 slots: 43 days at 75.947 MHz; restart sessions before that).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature, RegisterBank, forward_flat_axi4lite
from .layouts import struct_layout
from .records import ANNOUNCE, ANSWER, SEQ_BITS, SIFTED, SLOT_BITS
from .regmap import RegisterMap
from .tagger import TagFramer
from .tx_records import RANDOM_BITS, STATE_PINS, STATES, STATES_PER_RECORD, TX_STREAMS
from .tx_registers import RING_DEPTH, TX_COUNTERS, transmitter_regmap
from .uninitialised import verilog_without_initialisers

__all__ = ["Transmitter", "TransmitterTop", "TX_TOP_NAME", "RING_ENTRY", "RING_MEMORY",
           "transmitter_verilog", "write_transmitter"]

TX_TOP_NAME = "tbqkd_tx"

#: Name of the state ring's memory (its submodule name, the ``MEMID`` in RTLIL).
RING_MEMORY = "ring"

#: One entry of the state ring.
RING_ENTRY = data.StructLayout({"state": 2, "sent": 1})

_POOL_BITS = 2 * RANDOM_BITS
_ANSWER_FIELDS = data.StructLayout({"seq": SEQ_BITS, "slot": SLOT_BITS, "basis": 1, "x_bit": 1})
_SIFT_FIELDS = data.StructLayout({"slot": SLOT_BITS, "bit": 1})


class Transmitter(wiring.Component):
    """The transmitter core with plain ports (module docstring; timing in the golden model).

    Parameters
    ----------
    ring_depth:
        Slots the state ring keeps: a power of two.

    Raises
    ------
    ValueError
        If ``ring_depth`` is not a power of two between 2 and 2^22.
    """

    def __init__(self, ring_depth: int = RING_DEPTH) -> None:
        if not 2 <= ring_depth <= 1 << 22 or ring_depth & (ring_depth - 1):
            raise ValueError(f"ring_depth={ring_depth} must be a power of two in [2, 2^22]")
        self._depth = ring_depth
        ports = {
            # configuration
            "run": In(1), "four_state": In(1), "pattern_mode": In(1), "slot_divider": In(16),
            "basis_bits": In(5), "x_threshold": In(17), "pattern": In(32),
            "pattern_length": In(5), "ref_divider": In(32), "mod_delay": In(16),
            "mod_width": In(16), "state_stream": In(1),
            "frame_words": In(16), "flush_cycles": In(24),
            "restart": In(1), "clear_counters": In(1), "clear_error": In(1),
            # random bits
            "rnd_tdata": In(RANDOM_BITS), "rnd_tvalid": In(1), "rnd_tready": Out(1),
            # announcements in, answers and sifted key out
            "ann_tdata": In(ANNOUNCE.width), "ann_tvalid": In(1), "ann_tready": Out(1),
            "ans_tdata": Out(ANSWER.width), "ans_tvalid": Out(1), "ans_tready": In(1),
            "ans_tlast": Out(1),
            "sift_tdata": Out(SIFTED.width), "sift_tvalid": Out(1), "sift_tready": In(1),
            "sift_tlast": Out(1),
            "states_tdata": Out(STATES.width), "states_tvalid": Out(1), "states_tready": In(1),
            "states_tlast": Out(1),
            # pins
            "mod_early": Out(1), "mod_late": Out(1), "mod_phase": Out(1), "reference": Out(1),
            # status
            "slot": Out(SLOT_BITS), "protocol_error": Out(1), "random_level": Out(8),
        }
        ports.update({name: Out(64) for name in TX_COUNTERS})
        super().__init__(ports)

    @property
    def ring_depth(self) -> int:
        return self._depth

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self._depth
        addr_bits = depth.bit_length() - 1
        incr = {name: Signal(name=f"inc_{name}") for name in TX_COUNTERS}

        # --- slot clock ---------------------------------------------------------------------
        phase = Signal(16)
        live = Signal()
        slot_start = Signal()
        m.d.comb += [live.eq(self.run & ~self.restart), slot_start.eq(live & (phase == 0))]
        with m.If(~live | (phase + 1 >= self.slot_divider)):
            m.d.sync += phase.eq(0)
        with m.Else():
            m.d.sync += phase.eq(phase + 1)
        with m.If(self.restart):
            m.d.sync += self.slot.eq(0)
        with m.Elif(slot_start):
            m.d.sync += self.slot.eq(self.slot + 1)

        # --- random buffer ------------------------------------------------------------------
        pool = Signal(_POOL_BITS)
        level = Signal(range(_POOL_BITS + 1))
        n = Signal(5)               # basis bits, clamped to 1..16
        m.d.comb += n.eq(Mux(self.basis_bits == 0, 1,
                             Mux(self.basis_bits > 16, 16, self.basis_bits)))
        need = Signal(6)
        m.d.comb += [need.eq(n + 1), self.rnd_tready.eq(level <= RANDOM_BITS),
                     self.random_level.eq(level)]
        random_mode = Signal()
        m.d.comb += random_mode.eq(~self.pattern_mode)
        consume = Signal()
        m.d.comb += [consume.eq(slot_start & random_mode & (level >= need)),
                     incr["random_underruns"].eq(slot_start & random_mode & (level < need))]
        pool_after = Signal(_POOL_BITS)
        level_after = Signal(range(_POOL_BITS + 1))
        m.d.comb += [pool_after.eq(Mux(consume, pool >> need, pool)),
                     level_after.eq(level - Mux(consume, need, 0))]
        beat = Signal()
        m.d.comb += [beat.eq(self.rnd_tvalid & self.rnd_tready), incr["random_words"].eq(beat)]
        with m.If(beat):
            m.d.sync += [pool.eq(pool_after | (self.rnd_tdata << level_after)),
                         level.eq(level_after + RANDOM_BITS)]
        with m.Else():
            m.d.sync += [pool.eq(pool_after), level.eq(level_after)]

        # --- the state of a starting slot ---------------------------------------------------
        r = Signal(16)
        m.d.comb += r.eq(pool & ((Const(1, 17) << n) - 1))
        value_bit = Signal()
        m.d.comb += value_bit.eq((pool >> n)[0])
        random_state = Signal(2)
        with m.If(r < self.x_threshold):
            m.d.comb += random_state.eq(Cat(self.four_state & value_bit, 1))
        with m.Else():
            m.d.comb += random_state.eq(Cat(value_bit, 0))
        pattern_index = Signal(4)
        pattern_length = Signal(5)
        m.d.comb += pattern_length.eq(Mux(self.pattern_length > 16, 16, self.pattern_length))
        pattern_state = Signal(2)
        m.d.comb += pattern_state.eq(self.pattern.word_select(pattern_index, 2))
        with m.If(self.restart):
            m.d.sync += pattern_index.eq(0)
        with m.Elif(slot_start & self.pattern_mode):
            m.d.sync += pattern_index.eq(Mux(pattern_index + 1 >= pattern_length, 0,
                                             pattern_index + 1))
        new_entry = Signal(RING_ENTRY)
        m.d.comb += [new_entry.state.eq(Mux(self.pattern_mode, pattern_state, random_state)),
                     new_entry.sent.eq(self.pattern_mode | consume)]
        current = Signal(RING_ENTRY)
        entry_now = Signal(RING_ENTRY)
        m.d.comb += entry_now.eq(Mux(slot_start, new_entry, current))
        with m.If(slot_start):
            m.d.sync += current.eq(new_entry)
        for code, name in enumerate(("states_e", "states_l", "states_plus", "states_minus")):
            m.d.comb += incr[name].eq(slot_start & new_entry.sent & (new_entry.state == code))

        # --- pins ---------------------------------------------------------------------------
        in_window = Signal()
        m.d.comb += in_window.eq((phase >= self.mod_delay) &
                                 (phase < self.mod_delay + self.mod_width))
        show = Signal()
        m.d.comb += show.eq(live & in_window & entry_now.sent)
        levels = {pin: Signal(name=f"{pin}_level") for pin in ("early", "late", "phase")}
        with m.Switch(entry_now.state):
            for code, pins in enumerate(STATE_PINS):
                with m.Case(code):
                    m.d.comb += [levels[p].eq(v) for p, v in zip(levels, pins, strict=True)]
        m.d.sync += [self.mod_early.eq(show & levels["early"]),
                     self.mod_late.eq(show & levels["late"]),
                     self.mod_phase.eq(show & levels["phase"])]
        ref_count = Signal(32)
        with m.If(self.restart):
            m.d.sync += ref_count.eq(0)
        with m.Elif(slot_start):
            m.d.sync += ref_count.eq(Mux(ref_count + 1 >= self.ref_divider, 0, ref_count + 1))
        m.d.sync += self.reference.eq(slot_start & (ref_count == 0) & (self.ref_divider != 0))

        # --- state ring ---------------------------------------------------------------------
        # No entry is read before it is written (module docstring): the zero initialiser that
        # Amaranth requires is left out of the Verilog by transmitter_verilog().
        ring = memory.Memory(shape=RING_ENTRY, depth=depth, init=[])
        m.submodules[RING_MEMORY] = ring
        w_port = ring.write_port()
        r_port = ring.read_port()      # not transparent: reads the entry before this edge
        m.d.comb += [w_port.addr.eq(self.slot[:addr_bits]), w_port.data.eq(new_entry),
                     w_port.en.eq(slot_start)]

        # --- announcements -------------------------------------------------------------------
        # Three steps, one announcement per clock: taken (the slot checked against the slot
        # counter, the ring read at the same edge); stage 1 holds the block RAM's output while
        # the next stage is busy; stage 2 holds it registered, with the decision bits, and
        # writes the answer and sifted FIFOs. A full FIFO stalls stage 2, stage 2 stalls stage
        # 1 and stage 1 the input: nothing is dropped, no FIFO is written while full.
        # "counted"/"flagged": no clear_counters/clear_error since the announcement was taken
        # (a command applies to every announcement taken up to its cycle, as in the model).
        ann = Signal(struct_layout(ANNOUNCE))
        m.d.comb += ann.eq(self.ann_tdata)
        m.submodules.answers = ans_fifo = fifo.SyncFIFOBuffered(width=_ANSWER_FIELDS.size,
                                                                depth=4)
        m.submodules.sifted = sift_fifo = fifo.SyncFIFOBuffered(width=_SIFT_FIELDS.size,
                                                                depth=4)
        s1_valid = Signal()
        s1_seq = Signal(SEQ_BITS)
        s1_slot = Signal(SLOT_BITS)
        s1_basis = Signal()
        s1_in_ring = Signal()
        s1_counted = Signal()
        s1_flagged = Signal()
        s2_valid = Signal()
        s2_seq = Signal(SEQ_BITS)
        s2_slot = Signal(SLOT_BITS)
        s2_entry = Signal(RING_ENTRY)
        s2_answer = Signal()            # in the ring and sent
        s2_sift = Signal()              # ... and both bases Z
        s2_vacuum = Signal()            # in the ring, not sent
        s2_out_of_ring = Signal()
        s2_counted = Signal()
        s2_flagged = Signal()
        s2_push = Signal()
        s1_move = Signal()
        accept = Signal()
        m.d.comb += [
            s2_push.eq(s2_valid & ans_fifo.w_rdy & sift_fifo.w_rdy),
            s1_move.eq(s1_valid & (~s2_valid | s2_push)),
            self.ann_tready.eq(~s1_valid | s1_move),
            accept.eq(self.ann_tvalid & self.ann_tready),
            incr["announcements"].eq(accept),
            r_port.addr.eq(ann.slot[:addr_bits]), r_port.en.eq(accept),
        ]
        age = Signal(SLOT_BITS + 1)      # S − slot; in the ring iff 1 ≤ age ≤ depth
        m.d.comb += age.eq(self.slot - ann.slot)
        keep_count = ~self.clear_counters
        keep_flag = ~self.clear_error
        with m.If(s1_move):
            m.d.sync += s1_valid.eq(0)
        m.d.sync += [s1_counted.eq(s1_counted & keep_count),
                     s1_flagged.eq(s1_flagged & keep_flag)]
        with m.If(accept):
            m.d.sync += [s1_valid.eq(1), s1_seq.eq(ann.seq), s1_slot.eq(ann.slot),
                         s1_basis.eq(ann.basis),
                         s1_in_ring.eq(~age[-1] & (age != 0) & (age <= depth)),
                         s1_counted.eq(keep_count), s1_flagged.eq(keep_flag)]
        stored = Signal(RING_ENTRY)     # the ring's output: valid (and held) while s1_valid
        m.d.comb += stored.eq(r_port.data)
        with m.If(s2_push):
            m.d.sync += s2_valid.eq(0)
        m.d.sync += [s2_counted.eq(s2_counted & keep_count),
                     s2_flagged.eq(s2_flagged & keep_flag)]
        with m.If(s1_move):
            m.d.sync += [s2_valid.eq(1), s2_seq.eq(s1_seq), s2_slot.eq(s1_slot),
                         s2_entry.eq(stored),
                         s2_answer.eq(s1_in_ring & stored.sent),
                         s2_sift.eq(s1_in_ring & stored.sent & ~stored.state[1] & ~s1_basis),
                         s2_vacuum.eq(s1_in_ring & ~stored.sent),
                         s2_out_of_ring.eq(~s1_in_ring),
                         s2_counted.eq(s1_counted & keep_count),
                         s2_flagged.eq(s1_flagged & keep_flag)]
        m.d.comb += [
            incr["answers"].eq(s2_push & s2_answer & s2_counted),
            incr["sifted_z"].eq(s2_push & s2_sift & s2_counted),
            incr["err_vacuum"].eq(s2_push & s2_vacuum & s2_counted),
            incr["err_out_of_ring"].eq(s2_push & s2_out_of_ring & s2_counted),
            ans_fifo.w_en.eq(s2_push & s2_answer),
            ans_fifo.w_data.eq(Cat(s2_seq, s2_slot, s2_entry.state[1], s2_entry.state == 3)),
            sift_fifo.w_en.eq(s2_push & s2_sift),
            sift_fifo.w_data.eq(Cat(s2_slot, s2_entry.state[0])),
        ]
        with m.If(self.clear_error):
            m.d.sync += self.protocol_error.eq(0)
        with m.Elif(s2_push & s2_out_of_ring & s2_flagged):
            m.d.sync += self.protocol_error.eq(1)

        # --- state stream: 16 slots a record ---------------------------------------------
        group = Signal(4 * STATES_PER_RECORD)
        group_count = Signal(range(STATES_PER_RECORD))
        group_first = Signal(SLOT_BITS)
        code = Signal(4)
        m.d.comb += code.eq(Mux(new_entry.sent, Cat(new_entry.state, 1, 0), 0))
        grouping = Signal()
        m.d.comb += grouping.eq(slot_start & self.state_stream)
        with m.If(self.restart | ~self.state_stream):
            m.d.sync += group_count.eq(0)
        with m.Elif(grouping):
            m.d.sync += [group_count.eq(group_count + 1),
                         group.word_select(group_count, 4).eq(code)]
            with m.If(group_count == 0):
                m.d.sync += group_first.eq(self.slot)
        m.submodules.states = states_fifo = fifo.SyncFIFOBuffered(
            width=SLOT_BITS + 4 * STATES_PER_RECORD, depth=16)
        group_done = Signal()
        m.d.comb += [
            group_done.eq(grouping & (group_count == STATES_PER_RECORD - 1)),
            states_fifo.w_en.eq(group_done),
            states_fifo.w_data.eq(Cat(group_first, group[:-4], code)),
            incr["states_dropped"].eq(group_done & ~states_fifo.w_rdy),
        ]

        # --- output streams ------------------------------------------------------------------
        for name, source, width, prefix in (("ans_framer", ans_fifo, ANSWER.width, "ans"),
                                            ("sift_framer", sift_fifo, SIFTED.width, "sift"),
                                            ("states_framer", states_fifo, STATES.width,
                                             "states")):
            framer = m.submodules[name] = TagFramer()
            m.d.comb += [
                framer.i_data.eq(source.r_data), framer.i_valid.eq(source.r_rdy),
                source.r_en.eq(framer.i_ready),
                framer.frame_words.eq(self.frame_words),
                framer.flush_cycles.eq(self.flush_cycles),
                framer.flush.eq(0), framer.upstream_empty.eq(1), framer.expire.eq(0),
                getattr(self, f"{prefix}_tdata").eq(framer.tdata[:width]),
                getattr(self, f"{prefix}_tvalid").eq(framer.tvalid),
                getattr(self, f"{prefix}_tlast").eq(framer.tlast),
                framer.tready.eq(getattr(self, f"{prefix}_tready")),
            ]

        # --- counters -----------------------------------------------------------------------
        for name in TX_COUNTERS:
            counter = getattr(self, name)
            with m.If(self.clear_counters):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + incr[name])
        return m


class TransmitterTop(wiring.Component):
    """The transmitter core with its register bank and flat top-level ports.

    Ports (Verilog names): ``aclk``, ``aresetn``; the AXI4-Lite register port ``s_axi_*``; the
    AXI4-Stream ports of :data:`~tbqkd.hdl.tx_records.TX_STREAMS`, each ``_tdata``/
    ``_tvalid``/``_tready``/``_tlast`` (``tlast`` of the inputs is ignored); the pins
    ``mod_early``, ``mod_late``, ``mod_phase``, ``reference``; ``slot_count`` (the slot
    counter, for testbenches).
    """

    def __init__(self, ring_depth: int = RING_DEPTH) -> None:
        self._depth = ring_depth
        self.regmap: RegisterMap = transmitter_regmap(ring_depth)
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, member in AXI4LiteSignature(self.regmap.addr_width).members.items():
            members[f"s_axi_{name}"] = member
        for port in TX_STREAMS:
            out, inp = (Out, In) if port.direction == "out" else (In, Out)
            members.update({f"{port.prefix}_tdata": out(port.record.width),
                            f"{port.prefix}_tvalid": out(1), f"{port.prefix}_tready": inp(1),
                            f"{port.prefix}_tlast": out(1)})
        members.update({"mod_early": Out(1), "mod_late": Out(1), "mod_phase": Out(1),
                        "reference": Out(1), "slot_count": Out(SLOT_BITS)})
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        # AXI reset is active-low; the core uses a synchronous active-high reset.
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.regs = regs = RegisterBank(self.regmap)
        forward_flat_axi4lite(m, self, regs.bus, self.regmap.addr_width)
        m.submodules.core = core = Transmitter(self._depth)
        v, s = regs.value, regs.strobe

        def field(register: str, name: str, source=None):
            f = self.regmap[register].field(name)
            return (v if source is None else source)[register][f.lsb:f.lsb + f.width]

        m.d.comb += [
            core.run.eq(field("CONTROL", "run")),
            core.four_state.eq(field("CONTROL", "four_state")),
            core.pattern_mode.eq(field("CONTROL", "pattern_mode")),
            core.state_stream.eq(field("CONTROL", "state_stream")),
            core.restart.eq(field("COMMAND", "restart", s)),
            core.clear_counters.eq(field("COMMAND", "clear_counters", s)),
            core.clear_error.eq(field("COMMAND", "clear_error", s)),
            core.slot_divider.eq(v["SLOT_DIVIDER"]), core.basis_bits.eq(v["BASIS_BITS"]),
            core.x_threshold.eq(v["X_THRESHOLD"]), core.pattern.eq(v["PATTERN"]),
            core.pattern_length.eq(v["PATTERN_LENGTH"]), core.ref_divider.eq(v["REF_DIVIDER"]),
            core.mod_delay.eq(v["MOD_DELAY"]), core.mod_width.eq(v["MOD_WIDTH"]),
            core.frame_words.eq(v["FRAME_WORDS"]), core.flush_cycles.eq(v["FLUSH_CYCLES"]),
            v["SLOT"].eq(core.slot), self.slot_count.eq(core.slot),
            field("STATUS", "running").eq(core.run),
            field("STATUS", "protocol_error").eq(core.protocol_error),
            field("STATUS", "random_bits").eq(core.random_level),
            # streams
            core.rnd_tdata.eq(self.s_axis_random_tdata),
            core.rnd_tvalid.eq(self.s_axis_random_tvalid),
            self.s_axis_random_tready.eq(core.rnd_tready),
            core.ann_tdata.eq(self.s_axis_announce_tdata),
            core.ann_tvalid.eq(self.s_axis_announce_tvalid),
            self.s_axis_announce_tready.eq(core.ann_tready),
            self.m_axis_answer_tdata.eq(core.ans_tdata),
            self.m_axis_answer_tvalid.eq(core.ans_tvalid),
            self.m_axis_answer_tlast.eq(core.ans_tlast),
            core.ans_tready.eq(self.m_axis_answer_tready),
            self.m_axis_sifted_tdata.eq(core.sift_tdata),
            self.m_axis_sifted_tvalid.eq(core.sift_tvalid),
            self.m_axis_sifted_tlast.eq(core.sift_tlast),
            core.sift_tready.eq(self.m_axis_sifted_tready),
            self.m_axis_states_tdata.eq(core.states_tdata),
            self.m_axis_states_tvalid.eq(core.states_tvalid),
            self.m_axis_states_tlast.eq(core.states_tlast),
            core.states_tready.eq(self.m_axis_states_tready),
            # pins
            self.mod_early.eq(core.mod_early), self.mod_late.eq(core.mod_late),
            self.mod_phase.eq(core.mod_phase), self.reference.eq(core.reference),
        ]
        m.d.comb += [v[name.upper()].eq(getattr(core, name)) for name in TX_COUNTERS]
        return m


def transmitter_verilog(design: Elaboratable, name: str = TX_TOP_NAME) -> str:
    """Verilog of ``design`` (the transmitter, its top, or anything containing them) with the
    state ring's memory uninitialised.

    Amaranth 0.5 gives every memory an initialiser (a ``$meminit_v2`` cell; all zeros for
    ``init=[]``) and Yosys's ``write_verilog`` writes it as one ``ring[i] = 3'h0;`` line per
    entry: 131 072 lines in an ``initial`` block for the 2^17-slot ring, which Yosys's Verilog
    front end had not read after 5 minutes. The ring's contents are never observed before
    being written (module docstring), so its initialiser cells are removed from the RTLIL;
    the rest is :func:`amaranth.back.verilog.convert` unchanged (same Yosys script, no
    ``src`` attributes).

    Raises
    ------
    ValueError
        If ``design`` has no state ring (nothing to leave uninitialised).
    """
    text, removed = verilog_without_initialisers(design, name, re.escape(RING_MEMORY))
    if not removed:
        raise ValueError(f"{name}: no initialiser of a memory named {RING_MEMORY!r} (is the "
                         "transmitter core in this design?)")
    return text


def write_transmitter(outdir: Path, ring_depth: int = RING_DEPTH) -> list[Path]:
    """Write ``tbqkd_tx.v``, ``tx_regmap.json`` and ``TX_REGISTERS.md`` into ``outdir``
    (files rewritten only when their content changes)."""
    from .build import write_if_changed
    top = TransmitterTop(ring_depth)
    files = {f"{TX_TOP_NAME}.v": transmitter_verilog(top, TX_TOP_NAME),
             "tx_regmap.json": top.regmap.to_json(top=TX_TOP_NAME, ring_depth=ring_depth),
             "TX_REGISTERS.md": top.regmap.to_markdown()}
    paths = [Path(outdir) / name for name in files]
    for path, text in zip(paths, files.values(), strict=True):
        write_if_changed(path, text)
    return paths


if __name__ == "__main__":     # python -m tbqkd.hdl.transmitter [OUTDIR]
    from .build import DEFAULT_BUILD_DIR
    for written in write_transmitter(Path(sys.argv[1]) if len(sys.argv) > 1
                                     else DEFAULT_BUILD_DIR):
        print(written)
