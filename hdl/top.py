"""The receiver core's top level: flat, Vivado-inferable ports around the tagger.

Ports (Verilog names): ``aclk``, ``aresetn``; the AXI4-Lite register port ``s_axi_*``; the tag
stream ``m_axis_tdata`` (128 bits), ``m_axis_tvalid``, ``m_axis_tready``, ``m_axis_tlast``;
``time_cycle`` (the coarse counter, for testbenches); and the inputs, which depend on
``primitives``:

* ``"none"`` (simulation, vendor-independent synthesis): ``ch<N>_samples`` — each channel's
  ``W``-bit sample word per cycle, driven by the testbench.
* ``"xc7"``: ``ch<N>_in`` pins through the Xilinx front ends of :mod:`tbqkd.hdl.frontend`, plus
  ``serdes_clk`` for the oversampling kind.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature, RegisterBank, forward_flat_axi4lite
from .config import TaggerConfig, tagger_regmap
from .frontend import DelayLineFrontend, OversamplingFrontend
from .regmap import RegisterMap
from .tagger import Tagger

__all__ = ["ReceiverTop", "TOP_NAME"]

TOP_NAME = "tbqkd_rx"


class ReceiverTop(wiring.Component):
    """Tagger + register bank with flat top-level ports (see the module docstring)."""

    def __init__(self, config: TaggerConfig, *, primitives: str = "none") -> None:
        if primitives not in ("none", "xc7"):
            raise ValueError(f"primitives must be 'none' or 'xc7', not {primitives!r}")
        self._config = config
        self._primitives = primitives
        self.regmap: RegisterMap = tagger_regmap(config)
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, member in AXI4LiteSignature(self.regmap.addr_width).members.items():
            members[f"s_axi_{name}"] = member
        members.update({"m_axis_tdata": Out(128), "m_axis_tvalid": Out(1),
                        "m_axis_tready": In(1), "m_axis_tlast": Out(1),
                        "time_cycle": Out(64)})
        for ch in range(config.n_channels):
            if primitives == "none":
                members[f"ch{ch}_samples"] = In(config.word_width)
            else:
                members[f"ch{ch}_in"] = In(1)
        if primitives == "xc7" and config.frontend == "oversampling":
            members["serdes_clk"] = In(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        m.domains.sync = cd = ClockDomain("sync")
        # AXI reset is active-low; the core uses a synchronous active-high reset.
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]

        m.submodules.regs = regs = RegisterBank(self.regmap)
        forward_flat_axi4lite(m, self, regs.bus, self.regmap.addr_width)

        m.submodules.tagger = tagger = Tagger(c)
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
        cmd = self.regmap["COMMAND"]
        m.d.comb += [
            tagger.run.eq(v["CONTROL"][0]),
            tagger.clear_counters.eq(s["COMMAND"][cmd.field("clear_counters").lsb]),
            tagger.preload.eq(s["COMMAND"][cmd.field("preload_time").lsb]),
            tagger.flush.eq(s["COMMAND"][cmd.field("flush").lsb]),
            tagger.preload_cycle.eq(v["PRELOAD_CYCLE"]),
            tagger.preload_time.eq(v["PRELOAD_TIME"]),
            tagger.preload_rem.eq(v["PRELOAD_TIME_REM"]),
            tagger.frame_words.eq(v["FRAME_WORDS"]),
            tagger.flush_cycles.eq(v["FLUSH_CYCLES"]),
            v["CYCLE"].eq(tagger.cycle), v["TIME"].eq(tagger.time),
            v["TAGS_OUT"].eq(tagger.tags_out), v["FRAMES_OUT"].eq(tagger.frames_out),
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
                v[f"CH{ch}_EVENTS"].eq(tagger.events[ch]),
                v[f"CH{ch}_SUPPRESSED"].eq(tagger.suppressed[ch]),
                v[f"CH{ch}_DROPPED"].eq(tagger.dropped[ch]),
            ]
        m.d.comb += [self.m_axis_tdata.eq(tagger.tdata), self.m_axis_tvalid.eq(tagger.tvalid),
                     self.m_axis_tlast.eq(tagger.tlast), tagger.tready.eq(self.m_axis_tready)]
        return m
