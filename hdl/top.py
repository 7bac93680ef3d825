"""The receiver core's top level: flat, Vivado-inferable ports around the whole core.

Data path::

    sample words ─▶ Tagger ─┬─▶ m_axis (every tag, CONTROL.tag_stream)
                            └─▶ (slot, phase) ─┬─▶ PhaseHistogram (live, double-buffered)
                                               └─▶ Classifier ─▶ key detections ─▶ Sifter
                                                   │  ◀─ s_axis_answer (Alice) ─┘  │
                                                   │      m_axis_announce ◀────────┤
                                                   │      m_axis_sifted   ◀────────┤
                                                   └─ middle-bin clicks ─▶ PhaseErrorUnit
                                                          sifted X events ─▶ ┘ ─▶ m_axis_phase, irq
    DAC_VALUE ─▶ SpiDac ─▶ dac_sclk / dac_mosi / dac_sync_n / dac_ldac_n

(slot, phase): the tagger hands each tag's slot and phase sum to the :class:`SlotMapper`,
which brings the phase into the slot (part 2 of the core, outside the tagger).

Ports (Verilog names): ``aclk``, ``aresetn``; the AXI4-Lite register port ``s_axi_*``; the
AXI4-Stream ports of :data:`tbqkd.hdl.records.STREAMS` (``m_axis`` tags, ``m_axis_announce``,
``m_axis_sifted``, ``m_axis_phase``, ``s_axis_answer``), each ``_tdata``/``_tvalid``/
``_tready``/``_tlast``; ``irq`` (an error-signal window completed); the DAC's SPI pins;
``time_cycle`` (the coarse counter, for testbenches); and the inputs, which depend on
``primitives``:

* ``"none"`` (simulation, vendor-independent synthesis): ``ch<N>_samples`` — each channel's
  ``W``-bit sample word per cycle, driven by the testbench.
* ``"xc7"``: ``ch<N>_in`` pins through the Xilinx front ends of :mod:`tbqkd.hdl.frontend`, plus
  ``serdes_clk`` for the oversampling kind.

``sim_hooks=True`` adds the simulation-only ports of :data:`SIM_HOOKS` (idle skipping).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature, RegisterBank, forward_flat_axi4lite
from .classifier import Classifier
from .config import CAL_FRAC_BITS, OFFSET_WIDTH, SLOT_REM_WIDTH, TaggerConfig
from .frontend import DelayLineFrontend, OversamplingFrontend
from .histogram import PhaseHistogram
from .phase_error import PhaseErrorUnit
from .records import SLOT_BITS, STREAMS
from .registers import (
    DAC_SAFE_VALUE,
    HISTOGRAM_BINS,
    PENDING_DEPTH,
    SIFTER_COUNTERS,
    bank_counters,
    core_regmap,
)
from .regmap import RegisterMap
from .sifter import Sifter
from .slots import SlotMapper
from .spi_dac import SpiDac
from .tagger import Tagger

__all__ = ["ReceiverTop", "TOP_NAME", "SIM_HOOKS"]

TOP_NAME = "tbqkd_rx"

#: Simulation-only ports (``sim_hooks=True``): the Verilator model jumps across idle time by
#: loading, in one cycle, the time base and slot clock state that the skipped cycles would have
#: produced (``sim_skip``), and reads the state and constants it computes that from.
SIM_HOOKS = {
    "sim_skip": In(1), "sim_skip_cycle": In(64), "sim_skip_time": In(64),
    "sim_skip_time_rem": In(16), "sim_skip_slot": In(SLOT_BITS),
    "sim_skip_slot_offset": In(OFFSET_WIDTH), "sim_skip_slot_rem": In(SLOT_REM_WIDTH),
    "sim_time": Out(64), "sim_time_rem": Out(16), "sim_slot": Out(SLOT_BITS),
    "sim_slot_offset": Out(OFFSET_WIDTH), "sim_slot_rem": Out(SLOT_REM_WIDTH),
    "sim_slot_step_int": Out(OFFSET_WIDTH), "sim_slot_step_rem": Out(SLOT_REM_WIDTH),
    "sim_slot_wrap_int": Out(OFFSET_WIDTH), "sim_slot_wrap_rem": Out(SLOT_REM_WIDTH),
    "sim_slot_den": Out(SLOT_REM_WIDTH),
}


class ReceiverTop(wiring.Component):
    """The receiver core with its register bank and flat top-level ports (module docstring)."""

    def __init__(self, config: TaggerConfig, *, primitives: str = "none",
                 sim_hooks: bool = False) -> None:
        if primitives not in ("none", "xc7"):
            raise ValueError(f"primitives must be 'none' or 'xc7', not {primitives!r}")
        if sim_hooks and primitives != "none":
            raise ValueError("simulation hooks exist only without vendor primitives")
        self._config = config
        self._primitives = primitives
        self._sim_hooks = sim_hooks
        self.regmap: RegisterMap = core_regmap(config)
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, member in AXI4LiteSignature(self.regmap.addr_width).members.items():
            members[f"s_axi_{name}"] = member
        for port in STREAMS:      # the AXI4-Stream ports, from the one table of them
            out, inp = (Out, In) if port.direction == "out" else (In, Out)
            members.update({f"{port.prefix}_tdata": out(port.record.width),
                            f"{port.prefix}_tvalid": out(1), f"{port.prefix}_tready": inp(1),
                            f"{port.prefix}_tlast": out(1)})
        members.update({"irq": Out(1), "dac_sclk": Out(1), "dac_mosi": Out(1),
                        "dac_sync_n": Out(1), "dac_ldac_n": Out(1), "time_cycle": Out(64)})
        for ch in range(config.n_channels):
            if primitives == "none":
                members[f"ch{ch}_samples"] = In(config.word_width)
            else:
                members[f"ch{ch}_in"] = In(1)
        if primitives == "xc7" and config.frontend == "oversampling":
            members["serdes_clk"] = In(1)
        if sim_hooks:
            members.update(SIM_HOOKS)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        m.domains.sync = cd = ClockDomain("sync")
        # AXI reset is active-low; the core uses a synchronous active-high reset.
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]

        m.submodules.regs = regs = RegisterBank(self.regmap,
                                                counters=bank_counters(c.n_channels))
        forward_flat_axi4lite(m, self, regs.bus, self.regmap.addr_width)

        m.submodules.tagger = tagger = Tagger(c, sim_hooks=self._sim_hooks)
        for ch in range(c.n_channels):
            if self._primitives == "none":
                word = getattr(self, f"ch{ch}_samples")
            elif c.frontend == "oversampling":
                fe = m.submodules[f"frontend{ch}"] = OversamplingFrontend(c.word_width)
                m.d.comb += [fe.pin.eq(getattr(self, f"ch{ch}_in")),
                             fe.serdes_clk.eq(self.serdes_clk)]
                word = fe.word
            else:
                fe = m.submodules[f"frontend{ch}"] = DelayLineFrontend(c.word_width)
                m.d.comb += fe.pin.eq(getattr(self, f"ch{ch}_in"))
                word = fe.word
            m.d.comb += tagger.words[ch].eq(word)

        v, s, st = regs.value, regs.strobe, regs.set
        count, count_clear = regs.count, regs.count_clear
        cmd = self.regmap["COMMAND"]
        m.d.comb += [
            tagger.run.eq(v["CONTROL"][0]),
            tagger.tag_stream.eq(v["CONTROL"][1]),
            tagger.slot_step_int.eq(v["SLOT_STEP_INT"]),
            tagger.slot_step_rem.eq(v["SLOT_STEP_REM"]),
            tagger.slot_wrap_int.eq(v["SLOT_WRAP_INT"]),
            tagger.slot_wrap_rem.eq(v["SLOT_WRAP_REM"]),
            tagger.slot_den.eq(v["SLOT_DEN"]), tagger.preload_slot.eq(v["PRELOAD_SLOT"]),
            tagger.preload_slot_offset.eq(v["PRELOAD_SLOT_OFFSET"]),
            tagger.preload_slot_rem.eq(v["PRELOAD_SLOT_REM"]),
            v["SLOT"].eq(tagger.slot),
            tagger.clear_counters.eq(s["COMMAND"][cmd.field("clear_counters").lsb]),
            tagger.preload.eq(s["COMMAND"][cmd.field("preload_time").lsb]),
            tagger.flush.eq(s["COMMAND"][cmd.field("flush").lsb]),
            tagger.preload_cycle.eq(v["PRELOAD_CYCLE"]),
            tagger.preload_time.eq(v["PRELOAD_TIME"]),
            tagger.preload_rem.eq(v["PRELOAD_TIME_REM"]),
            tagger.frame_words.eq(v["FRAME_WORDS"]),
            tagger.flush_cycles.eq(v["FLUSH_CYCLES"]),
            v["CYCLE"].eq(tagger.cycle), v["TIME"].eq(tagger.time),
            count["TAGS_OUT"].eq(tagger.tags_inc), count["FRAMES_OUT"].eq(tagger.frames_inc),
            count_clear["TAGS_OUT"].eq(tagger.clear_counters),
            count_clear["FRAMES_OUT"].eq(tagger.clear_counters),
            st["STATUS"].eq(tagger.overflow),
            self.time_cycle.eq(tagger.cycle),
        ]
        # Calibration writes: each CAL_DATA write stores one entry at (channel, code) and
        # advances the code, so a channel's table is written with one CAL_ADDR write followed
        # by a burst of CAL_DATA writes. (CAL_ADDR reads back what was written to it.)
        cal_addr = self.regmap["CAL_ADDR"]
        code_field, chan_field = cal_addr.field("code"), cal_addr.field("channel")
        cal_code = Signal(code_field.width)
        with m.If(regs.written["CAL_ADDR"]):
            m.d.sync += cal_code.eq(v["CAL_ADDR"][code_field.lsb:][:code_field.width])
        with m.Elif(regs.written["CAL_DATA"]):
            m.d.sync += cal_code.eq(cal_code + 1)
        m.d.comb += [
            tagger.cal_we.eq(regs.written["CAL_DATA"]),
            tagger.cal_code.eq(cal_code[:c.code_bits]),
            tagger.cal_channel.eq(v["CAL_ADDR"][chan_field.lsb:][:chan_field.width]),
            tagger.cal_fine.eq(s["CAL_DATA"]),
        ]
        for ch in range(c.n_channels):
            m.d.comb += [
                tagger.enable[ch].eq(v[f"CH{ch}_CONTROL"][0]),
                tagger.delay_ps[ch].eq(v[f"CH{ch}_DELAY"]),
                tagger.dead_time[ch].eq(v[f"CH{ch}_DEAD_TIME"]),
                count[f"CH{ch}_EVENTS"].eq(tagger.events_inc[ch]),
                count_clear[f"CH{ch}_EVENTS"].eq(tagger.clear_counters),
                v[f"CH{ch}_SUPPRESSED"].eq(tagger.suppressed[ch]),
                count[f"CH{ch}_DROPPED"].eq(tagger.dropped_inc[ch]),
                count_clear[f"CH{ch}_DROPPED"].eq(tagger.clear_counters),
            ]
        if self._sim_hooks:
            m.d.comb += [
                tagger.skip.eq(self.sim_skip), tagger.skip_cycle.eq(self.sim_skip_cycle),
                tagger.skip_time.eq(self.sim_skip_time), tagger.skip_rem.eq(self.sim_skip_time_rem),
                tagger.skip_slot.eq(self.sim_skip_slot),
                tagger.skip_slot_offset.eq(self.sim_skip_slot_offset),
                tagger.skip_slot_rem.eq(self.sim_skip_slot_rem),
                self.sim_time.eq(tagger.time), self.sim_time_rem.eq(tagger.time_rem),
                self.sim_slot.eq(tagger.slot), self.sim_slot_offset.eq(tagger.slot_offset),
                self.sim_slot_rem.eq(tagger.slot_rem),
                self.sim_slot_step_int.eq(v["SLOT_STEP_INT"]),
                self.sim_slot_step_rem.eq(v["SLOT_STEP_REM"]),
                self.sim_slot_wrap_int.eq(v["SLOT_WRAP_INT"]),
                self.sim_slot_wrap_rem.eq(v["SLOT_WRAP_REM"]), self.sim_slot_den.eq(v["SLOT_DEN"]),
            ]
        m.d.comb += [self.m_axis_tdata.eq(tagger.tdata), self.m_axis_tvalid.eq(tagger.tvalid),
                     self.m_axis_tlast.eq(tagger.tlast), tagger.tready.eq(self.m_axis_tready)]
        self._elaborate_part2(m, regs, tagger)
        return m

    def _elaborate_part2(self, m: Module, regs: RegisterBank, tagger: Tagger) -> None:
        """Slot mapper, classifier, histograms, sifter, error signal and DAC behind the
        tagger."""
        _c, n = self._config, self._config.n_channels
        v, count, count_clear = regs.value, regs.count, regs.count_clear

        # Each tag's slot and phase sum, brought into [0, slot period) (latency 3).
        m.submodules.slot_mapper = mapper = SlotMapper()
        range_errors = Signal(32)
        m.d.comb += [mapper.wrap_int.eq(v["SLOT_WRAP_INT"]), mapper.i_valid.eq(tagger.ph_valid),
                     mapper.i_slot.eq(tagger.ph_slot), mapper.i_sum.eq(tagger.ph_sum),
                     mapper.i_channel.eq(tagger.ph_channel),
                     v["SLOT_RANGE_ERRORS"].eq(range_errors)]
        with m.If(tagger.clear_counters):
            m.d.sync += range_errors.eq(0)
        with m.Elif(mapper.range_error):
            m.d.sync += range_errors.eq(range_errors + 1)
        command = self.regmap["CORE_COMMAND"]
        strobe = regs.strobe["CORE_COMMAND"]

        def pulse(name: str):
            return strobe[command.field(name).lsb]

        clear = pulse("clear_counters")

        m.submodules.classifier = cls = Classifier(n, counters=False)
        m.d.comb += [
            cls.valid.eq(mapper.o_valid), cls.slot.eq(mapper.o_slot),
            cls.phase.eq(mapper.o_phase), cls.channel.eq(mapper.o_channel),
            cls.slot_period.eq(v["SLOT_WRAP_INT"] >> CAL_FRAC_BITS),
            cls.ref_phase.eq(v["REF_PHASE"]), cls.ref_window_log2.eq(v["LOCK_WINDOW"]),
            cls.lock_threshold.eq(v["LOCK_THRESHOLD"]),
            cls.align.eq(pulse("align")), cls.clear_counters.eq(clear),
            cls.clear_lost_lock.eq(pulse("clear_lost_lock")),
            v["LOCK_OFFSET"].eq(cls.lock_offset), v["LOCK_SPREAD"].eq(cls.lock_spread),
            v["LOCK_WINDOWS"].eq(cls.lock_windows), v["SLOT_BASE"].eq(cls.slot_base),
            count["LOCK_VIOLATIONS"].eq(cls.lock_violations_inc),
            count_clear["LOCK_VIOLATIONS"].eq(cls.lock_violations_clear),
            count["CLASS_BAD_CHANNEL"].eq(cls.bad_channel_inc),
            count_clear["CLASS_BAD_CHANNEL"].eq(cls.counts_clear),
            count["CLASS_BAD_PHASE"].eq(cls.bad_phase_inc),
            count_clear["CLASS_BAD_PHASE"].eq(cls.counts_clear),
        ]
        for ch in range(n):
            m.d.comb += [cls.role[ch].eq(v[f"CH{ch}_ROLE"]),
                         cls.delay[ch].eq(v[f"CH{ch}_PHASE_DELAY"])]
            for window in ("early", "late", "middle"):
                for part in ("start", "width"):
                    m.d.comb += getattr(cls, f"{window}_{part}")[ch].eq(
                        v[f"CH{ch}_{window.upper()}_{part.upper()}"])
            for counter in ("early", "late", "middle", "outside"):
                name = f"CH{ch}_{counter.upper()}_COUNT"
                m.d.comb += [count[name].eq(getattr(cls, f"{counter}_inc")[ch]),
                             count_clear[name].eq(cls.counts_clear)]

        m.submodules.histogram = hist = PhaseHistogram(n, HISTOGRAM_BINS, counters=False)
        hist_control, hist_addr = self.regmap["HIST_CONTROL"], self.regmap["HIST_ADDR"]
        shift = hist_control.field("shift")
        bin_field, chan_field = hist_addr.field("bin"), hist_addr.field("channel")
        m.d.comb += [
            hist.valid.eq(mapper.o_valid), hist.channel.eq(mapper.o_channel),
            hist.phase.eq(mapper.o_phase),
            hist.enable.eq(v["HIST_CONTROL"][hist_control.field("enable").lsb]),
            hist.shift.eq(v["HIST_CONTROL"][shift.lsb:shift.lsb + shift.width]),
            hist.offset.eq(v["HIST_OFFSET"]),
            hist.swap.eq(pulse("hist_swap")), hist.release.eq(pulse("hist_release")),
            hist.read_addr.eq(Cat(v["HIST_ADDR"][bin_field.lsb:bin_field.lsb + bin_field.width],
                                  v["HIST_ADDR"][chan_field.lsb:chan_field.lsb
                                                 + chan_field.width])),
            v["HIST_DATA"].eq(hist.read_data), v["HIST_SWAPS"].eq(hist.swaps),
            count["HIST_OUTSIDE"].eq(hist.outside_inc), count["HIST_SKIPPED"].eq(hist.skipped_inc),
        ]

        m.submodules.sifter = sifter = Sifter(PENDING_DEPTH, counters=False)
        event = cls.o_event
        m.d.comb += [
            sifter.det_valid.eq(cls.o_valid & cls.o_key), sifter.det_slot.eq(event.slot),
            sifter.det_basis.eq(event.basis), sifter.det_bit.eq(event.bit),
            self.m_axis_announce_tdata.eq(sifter.ann_tdata),
            self.m_axis_announce_tvalid.eq(sifter.ann_tvalid),
            self.m_axis_announce_tlast.eq(sifter.ann_tlast),
            sifter.ann_tready.eq(self.m_axis_announce_tready),
            sifter.ans_tdata.eq(self.s_axis_answer_tdata),
            sifter.ans_tvalid.eq(self.s_axis_answer_tvalid),
            self.s_axis_answer_tready.eq(sifter.ans_tready),
            self.m_axis_sifted_tdata.eq(sifter.sift_tdata),
            self.m_axis_sifted_tvalid.eq(sifter.sift_tvalid),
            self.m_axis_sifted_tlast.eq(sifter.sift_tlast),
            sifter.sift_tready.eq(self.m_axis_sifted_tready),
            sifter.frame_words.eq(v["FRAME_WORDS"]), sifter.flush_cycles.eq(v["FLUSH_CYCLES"]),
            sifter.max_pending.eq(v["SIFT_MAX_PENDING"]),
            sifter.restart.eq(pulse("sift_restart")), sifter.clear_counters.eq(clear),
            sifter.clear_error.eq(pulse("clear_protocol_error")),
            v["SIFT_PENDING"].eq(sifter.pending),
        ]
        for name in SIFTER_COUNTERS:
            m.d.comb += [count[f"SIFT_{name.upper()}"].eq(getattr(sifter, f"{name}_inc")),
                         count_clear[f"SIFT_{name.upper()}"].eq(sifter.counts_clear)]

        m.submodules.phase_error = phase = PhaseErrorUnit()
        phase_control = self.regmap["PHASE_CONTROL"]
        relative_slot = Signal(SLOT_BITS)
        m.d.sync += relative_slot.eq(tagger.slot - cls.slot_base)
        m.d.comb += [
            phase.x_valid.eq(sifter.x_valid), phase.x_bob_bit.eq(sifter.x_bob_bit),
            phase.x_alice_bit.eq(sifter.x_alice_bit),
            phase.mid_valid.eq(cls.mid_valid), phase.mid_minus.eq(cls.mid_minus),
            phase.slot.eq(relative_slot),
            phase.enable.eq(v["PHASE_CONTROL"][phase_control.field("enable").lsb]),
            phase.mode.eq(v["PHASE_CONTROL"][phase_control.field("mode").lsb]),
            phase.four_state.eq(v["PHASE_CONTROL"][phase_control.field("four_state").lsb]),
            phase.window_slots.eq(v["PHASE_WINDOW_SLOTS"]),
            phase.window_events.eq(v["PHASE_WINDOW_EVENTS"]),
            phase.irq_ack.eq(pulse("irq_ack")), self.irq.eq(phase.irq),
            self.m_axis_phase_tdata.eq(phase.win_tdata),
            self.m_axis_phase_tvalid.eq(phase.win_tvalid),
            self.m_axis_phase_tlast.eq(phase.win_tlast),
            phase.win_tready.eq(self.m_axis_phase_tready),
            v["PHASE_INDEX"].eq(phase.snap_index), v["PHASE_X_SIFTED"].eq(phase.snap_x_sifted),
            v["PHASE_X_ERRORS"].eq(phase.snap_x_errors),
            v["PHASE_MID_PLUS"].eq(phase.snap_mid_plus),
            v["PHASE_MID_MINUS"].eq(phase.snap_mid_minus),
            v["PHASE_END_SLOT"].eq(phase.snap_end_slot), v["PHASE_DROPPED"].eq(phase.win_dropped),
        ]

        m.submodules.dac = dac = SpiDac(safe_value=DAC_SAFE_VALUE)
        dac_config = self.regmap["DAC_CONFIG"]

        def config_field(name: str):
            f = dac_config.field(name)
            return v["DAC_CONFIG"][f.lsb:f.lsb + f.width]

        m.d.comb += [
            dac.frame_bits.eq(config_field("frame_bits")),
            dac.suffix_bits.eq(config_field("suffix_bits")),
            dac.clock_div.eq(config_field("clock_div")), dac.cpol.eq(config_field("cpol")),
            dac.prefix.eq(v["DAC_PREFIX"]), dac.suffix.eq(v["DAC_SUFFIX"]),
            dac.value.eq(v["DAC_VALUE"]), dac.write.eq(regs.written["DAC_VALUE"]),
            v["DAC_WRITES"].eq(dac.writes), v["DAC_REJECTED"].eq(dac.rejected),
            self.dac_sclk.eq(dac.sclk), self.dac_mosi.eq(dac.mosi),
            self.dac_sync_n.eq(dac.sync_n), self.dac_ldac_n.eq(dac.ldac_n),
        ]

        status = self.regmap["CORE_STATUS"]
        flags = {"aligned": cls.aligned, "lost_lock": cls.lost_lock,
                 "protocol_error": sifter.protocol_error, "hist_clearing": hist.clearing,
                 "hist_swap_pending": hist.swap_pending,
                 "hist_snapshot_valid": hist.snapshot_valid, "dac_busy": dac.busy,
                 "irq": phase.irq}
        m.d.comb += [v["CORE_STATUS"][status.field(name).lsb].eq(flag)
                     for name, flag in flags.items()]
