"""Vivado builds of the cores for PYNQ boards, their board-free checks, and shipping them.

``python -m tbqkd.deploy bitstream --board pynq-z2 --role bob`` generates the core's Verilog
(Xilinx primitives), writes the build's parameter TCL from the single sources of truth
(:mod:`tbqkd.hdl.ip`, :data:`tbqkd.hdl.records.STREAMS`, the register table), runs
``vivado -mode batch`` on ``bitstreams/vivado/build.tcl`` and writes ``MANIFEST.json`` beside
``bitstreams/<board>/<name>.bit`` and ``.hwh``. ``check`` runs the same TCL without Vivado
(every Vivado command recorded by a stub Tcl interpreter) and checks what it would build
against the generated Verilog and the tables; ``link`` and ``fetch`` write and resolve the
``.link`` files through which built bitstreams are shipped, and ``verify`` checks files
against their manifest (docs/DEPLOY.md). Only ``bitstream`` and ``check`` need Amaranth;
``fetch`` and ``verify`` run on the board with the standard library alone.

Roles plug in by name (:data:`ROLES`): ``bob`` is the receiver core (:mod:`tbqkd.hdl.top`);
``alice`` is the transmitter core (:class:`tbqkd.hdl.transmitter.TransmitterTop`), packaged by
the same conventions (:mod:`tbqkd.hdl.ip`'s vendor, library, version and port names).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DeployError", "VivadoNotFound", "ChecksumMismatch",
    "Board", "BOARDS", "board", "Role", "ROLES", "CoreBuild", "StreamSpec", "core_build",
    "BuildOptions", "build_params", "tcl_word", "tcl_list", "params_tcl", "write_params",
    "find_vivado", "run_vivado", "vivado_version", "git_revision", "sha256_file",
    "write_manifest", "verify_manifest", "write_link", "read_link", "fetch_link", "TclTrace",
    "dry_run", "check_build", "verilog_ports", "xdc_ports", "bitstream", "main",
    "REPO_DIR", "BITSTREAMS_DIR", "VIVADO_DIR", "BUILD_TCL", "RECOMMENDED_VIVADO",
    "VIVADO_MISSING",
]

logger = logging.getLogger(__name__)


def _log(level: int, message: str, *args: object) -> None:
    logger.log(level, message, *args)


REPO_DIR = Path(__file__).resolve().parent.parent
BITSTREAMS_DIR = REPO_DIR / "bitstreams"
VIVADO_DIR = BITSTREAMS_DIR / "vivado"
BUILD_TCL = VIVADO_DIR / "build.tcl"
CONSTRAINTS_DIR = BITSTREAMS_DIR / "constraints"
DEFAULT_WORK_DIR = REPO_DIR / "build" / "vivado"

RECOMMENDED_VIVADO = "2023.2"
VIVADO_MISSING = (f"vivado not found on PATH: source settings64.sh of Vivado {RECOMMENDED_VIVADO} "
                  "(2022.1 to 2024.2 work; e.g. `source /tools/Xilinx/Vivado/"
                  f"{RECOMMENDED_VIVADO}/settings64.sh`) and run again")

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = 1


class DeployError(Exception):
    """A build, check or fetch could not be done; the message says why and what to do."""


class VivadoNotFound(DeployError):
    """No ``vivado`` executable on ``PATH``."""


class ChecksumMismatch(DeployError):
    """A fetched file does not have the checksum its ``.link`` file promises."""


# --- boards ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Board:
    """A target board: the FPGA part, its Vivado board part, the PS kind and the address map.

    ``ps``: ``"ps7"`` (Zynq-7000) or ``"psu"`` (Zynq UltraScale+), selects
    ``bitstreams/vivado/ps/<ps>.tcl``; ``core_address``: base of the core's 64 KiB register
    window on the PS master port; ``dma_addr_width``: AXI DMA address bits; ``pins_verified``:
    whether the pin assignment of its XDC was checked on a board (none are yet).
    """

    name: str
    part: str
    board_part: str
    ps: str
    core_address: int
    dma_addr_width: int
    description: str
    pins_verified: bool = False

    def xdc(self, role: str) -> Path:
        """The board's constraints for ``role``'s pins."""
        return CONSTRAINTS_DIR / f"{self.name}-{role}.xdc"


BOARDS: dict[str, Board] = {
    "pynq-z2": Board("pynq-z2", "xc7z020clg400-1", "tul.com.tw:pynq-z2:part0:1.0", "ps7",
                     0x43C0_0000, 32, "TUL PYNQ-Z2 (Zynq-7020): inputs and DAC on PMOD JA/JB"),
    "zcu104": Board("zcu104", "xczu7ev-ffvc1156-2-e", "xilinx.com:zcu104:part0:1.1", "psu",
                    0xA000_0000, 64, "AMD ZCU104 (Zynq UltraScale+ ZU7EV): inputs and DAC on "
                    "PMOD0/PMOD1"),
}


def board(name: str) -> Board:
    """The board called ``name``.

    Raises
    ------
    DeployError
        If there is no such board.
    """
    try:
        return BOARDS[name]
    except KeyError:
        raise DeployError(f"unknown board {name!r}; boards: {sorted(BOARDS)}") from None


# --- the cores ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamSpec:
    """One AXI4-Stream port of a core and the AXI DMA serving it (``direction`` from the core)."""

    prefix: str
    direction: str          # "out": the core is the master (DMA S2MM); "in": MM2S
    width: int              # TDATA bits (one record per beat)
    dma: str
    fifo: str = ""          # "in": the AXI4-Stream data FIFO between the DMA and the core
    fifo_depth: int = 0     # its depth in records


def _stream_spec(channel: Any) -> StreamSpec:
    """The build's view of a :class:`tbqkd.hdl.ip.DmaChannel`."""
    return StreamSpec(channel.stream, channel.port.direction, channel.port.record.width,
                      channel.dma, channel.fifo, channel.fifo_depth)


@dataclass(frozen=True)
class CoreBuild:
    """Everything the TCL needs to know about one role's core, and its Verilog.

    ``ports``: every top-level port, name → (``"in"``/``"out"``, width), from the elaborated
    component's signature; ``regmap``: its register table (:class:`tbqkd.hdl.regmap.RegisterMap`).
    """

    role: str
    top: str
    verilog: str
    ports: dict[str, tuple[str, int]]
    ip_vendor: str
    ip_library: str
    ip_name: str
    ip_version: str
    instance: str
    clock_port: str
    reset_n_port: str
    irq_port: str | None
    axi_lite: str
    streams: tuple[StreamSpec, ...]
    regmap: Any
    config: dict[str, Any]

    @property
    def vlnv(self) -> str:
        return f"{self.ip_vendor}:{self.ip_library}:{self.ip_name}:{self.ip_version}"

    @property
    def serdes_port(self) -> str | None:
        return "serdes_clk" if "serdes_clk" in self.ports else None

    def bus_ports(self) -> set[str]:
        """Ports that belong to the clock, reset, interrupt, AXI4-Lite and stream interfaces."""
        names = {self.clock_port, self.reset_n_port, self.irq_port, self.serdes_port}
        for port in self.ports:
            if port.startswith(f"{self.axi_lite}_"):
                names.add(port)
        for s in self.streams:
            names.update(p for p in self.ports if _stream_prefix(p) == s.prefix)
        return {n for n in names if n}

    def board_pins(self) -> list[tuple[str, str, int]]:
        """Ports that become board pins: every 1-bit port outside the bus interfaces.

        Raises
        ------
        DeployError
            If a wider input is left without a connection (outputs wider than one bit, such
            as the receiver's ``time_cycle`` testbench counter, are left open).
        """
        pins = []
        for name, (direction, width) in self.ports.items():
            if name in self.bus_ports():
                continue
            if width == 1:
                pins.append((name, direction, width))
            elif direction == "in":
                raise DeployError(f"{self.role}: input port {name} ({width} bits) has no "
                                  "board connection in the block design")
        return pins


_STREAM_SIGNALS = ("tdata", "tvalid", "tready", "tlast")


def _stream_prefix(port: str) -> str | None:
    prefix, _, signal = port.rpartition("_")
    if signal in _STREAM_SIGNALS and re.match(r"^[ms]_axis", prefix):
        return prefix
    return None


def _signature_ports(component: Any) -> dict[str, tuple[str, int]]:
    """Top-level ports of a flat Amaranth ``wiring.Component``: name → (direction, width)."""
    from amaranth.hdl import Shape
    from amaranth.lib.wiring import Flow

    ports = {}
    for name, member in component.signature.members.items():
        if not member.is_port:
            raise DeployError(f"top-level member {name} is not a flat port")
        direction = "in" if member.flow == Flow.In else "out"
        ports[name] = (direction, Shape.cast(member.shape).width)
    return ports


def _receiver_core(config: Any = None) -> CoreBuild:
    """Bob: the receiver core, named by :mod:`tbqkd.hdl.ip`."""
    from .hdl import ip
    from .hdl.build import generate_verilog
    from .hdl.config import TaggerConfig
    from .hdl.top import TOP_NAME, ReceiverTop

    config = config or TaggerConfig()
    top = ReceiverTop(config, primitives="xc7")   # for its signature; elaborated below
    top._MustUse__silence = True                    # (generate_verilog builds its own)
    streams = tuple(_stream_spec(c) for c in ip.DMA_CHANNELS)
    return CoreBuild(
        role="bob", top=TOP_NAME, verilog=generate_verilog(config, primitives="xc7"),
        ports=_signature_ports(top), ip_vendor=ip.IP_VENDOR, ip_library=ip.IP_LIBRARY,
        ip_name=ip.IP_NAME, ip_version=ip.IP_VERSION, instance=ip.INSTANCE_NAME,
        clock_port=ip.CLOCK_PORT, reset_n_port=ip.RESET_N_PORT, irq_port=ip.IRQ_PORT,
        axi_lite=ip.AXI_LITE_PORT, streams=streams, regmap=top.regmap,
        config=config.as_dict())


def _transmitter_core(config: Any = None) -> CoreBuild:
    """Alice: the transmitter core, named by :mod:`tbqkd.hdl.ip` (``TX_*``).

    ``config``: the state ring's depth in slots (default
    :data:`tbqkd.hdl.tx_registers.RING_DEPTH`). The core has no vendor primitives and no
    interrupt; its streams are those of :data:`tbqkd.hdl.ip.TX_DMA_CHANNELS`, one AXI DMA
    each. The Verilog comes from :func:`tbqkd.hdl.transmitter.transmitter_verilog` (the state
    ring without initialiser).
    """
    from .hdl import ip
    from .hdl.transmitter import TX_TOP_NAME, TransmitterTop, transmitter_verilog
    from .hdl.tx_registers import RING_DEPTH

    ring_depth = RING_DEPTH if config is None else int(config)
    top = TransmitterTop(ring_depth)
    ports = _signature_ports(top)
    streams = tuple(_stream_spec(c) for c in ip.TX_DMA_CHANNELS)
    return CoreBuild(
        role="alice", top=TX_TOP_NAME, verilog=transmitter_verilog(top, TX_TOP_NAME),
        ports=ports, ip_vendor=ip.IP_VENDOR, ip_library=ip.IP_LIBRARY,
        ip_name=ip.TX_IP_NAME, ip_version=ip.IP_VERSION,
        instance=ip.TX_INSTANCE_NAME, clock_port=ip.CLOCK_PORT,
        reset_n_port=ip.RESET_N_PORT, irq_port=ip.IRQ_PORT if ip.IRQ_PORT in ports else None,
        axi_lite=ip.AXI_LITE_PORT, streams=streams, regmap=top.regmap,
        config={"ring_depth": ring_depth})


@dataclass(frozen=True)
class Role:
    """A core that can be built: its name, bitstream basename and how to elaborate it."""

    name: str
    basename: str
    description: str
    load: Callable[..., CoreBuild]


ROLES: dict[str, Role] = {
    "bob": Role("bob", "tbqkd_bob", "receiver core (time tagger, sifting, error signal, DAC)",
                _receiver_core),
    "alice": Role("alice", "tbqkd_alice", "transmitter core (random states, modulator pins, "
                  "answers to Bob's announcements)", _transmitter_core),
}


def core_build(role: str, config: Any = None) -> CoreBuild:
    """Elaborate ``role``'s core (with Xilinx 7-series primitives) and describe it.

    Raises
    ------
    DeployError
        For an unknown role.
    """
    if role not in ROLES:
        raise DeployError(f"unknown role {role!r}; roles: {sorted(ROLES)}")
    return ROLES[role].load(config)


# --- the parameter TCL ----------------------------------------------------------------------

@dataclass(frozen=True)
class BuildOptions:
    """Choices of one build that are not in the core: clocks, parallelism, timing policy.

    ``clock_source``: ``"reference"`` (the fabric clock from the external reference input
    through an MMCM; the default) or ``"ps"`` (from the PS's 100 MHz clock, for bring-up
    without a reference); ``ref_clk_mhz``: frequency of the reference input; ``aclk_mhz``: the
    fabric clock of a core whose logic does not depend on its clock period (``alice``: k ×
    the pulse rate); ``None`` takes it from the core's clock period (``bob``'s
    ``TaggerConfig``), or 250 MHz for a core without one.
    """

    ref_clk_mhz: float = 10.0
    clock_source: str = "reference"
    jobs: int = 2
    allow_timing_failure: bool = False
    aclk_mhz: float | None = None

    def __post_init__(self) -> None:
        if self.clock_source not in ("reference", "ps"):
            raise DeployError(f"clock source must be 'reference' or 'ps', not "
                              f"{self.clock_source!r}")
        if not 10.0 <= self.ref_clk_mhz <= 800.0:
            raise DeployError(f"reference clock {self.ref_clk_mhz} MHz outside the MMCM's "
                              "input range (10 to 800 MHz)")
        if self.jobs < 1:
            raise DeployError("jobs must be >= 1")
        if self.aclk_mhz is not None and not 10.0 <= self.aclk_mhz <= 800.0:
            raise DeployError(f"fabric clock {self.aclk_mhz} MHz outside the MMCM's output range "
                              "(10 to 800 MHz)")


_ACCESS = {"ro": "read-only", "rw": "read-write", "wp": "write-only", "rc": "read-write"}
_PLAIN = re.compile(r"^[A-Za-z0-9_./:+\-]+$")


def tcl_word(value: object) -> str:
    """``value`` as one Tcl word (plain, braced, or backslash-quoted)."""
    text = str(value)
    if _PLAIN.match(text):
        return text
    depth = 0
    balanced = True
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        balanced &= depth >= 0
    if text and balanced and depth == 0 and "\\" not in text and "\n" not in text:
        return "{" + text + "}"
    return "".join("\\" + ch if ch in '\\{}[]$";# \t' else ("\\n" if ch == "\n" else ch)
                   for ch in text) or "{}"


def tcl_list(items: Iterable[object]) -> str:
    """A Tcl list of ``items`` (nested sequences become nested lists)."""
    words = []
    for item in items:
        if isinstance(item, (list, tuple)):
            words.append("{" + tcl_list(item) + "}")
        else:
            words.append(tcl_word(item))
    return " ".join(words)


def _register_rows(regmap: Any) -> list[list[object]]:
    """The register table as rows ``name offset bits access description fields``.

    64-bit registers are one 64-bit IP-XACT register (the ``.hwh`` and pynq's
    ``register_map`` show them whole); reads must still take the low word first.
    """
    rows = []
    for reg in regmap:
        fields = [[f.name, f.lsb, f.width, _ACCESS[reg.access]] for f in reg.fields]
        description = " ".join(reg.description.split())[:200]
        rows.append([reg.name, f"0x{reg.offset:04X}", reg.width, _ACCESS[reg.access],
                     description, fields])
    return rows


def build_params(board_name: str, core: CoreBuild, options: BuildOptions, *,
                 verilog_path: Path, work_dir: Path, out_dir: Path) -> dict[str, object]:
    """The ``tbqkd(...)`` array the TCL reads, from the board, the core and the options.

    Raises
    ------
    DeployError
        If the board has no constraints for the role, the core's clock cannot come from the
        MMCM, or ``options.aclk_mhz`` is given for a core whose logic is built for its clock
        period.
    """
    b = board(board_name)
    xdc = b.xdc(core.role)
    if not xdc.exists():
        raise DeployError(f"no constraints for {core.role} on {b.name}: write {xdc}")
    period_ps = core.config.get("period_num", 4000) / core.config.get("period_den", 1)
    if options.aclk_mhz is not None:
        if "period_num" in core.config:
            raise DeployError(f"{core.role}: the fabric clock follows the core's clock period "
                              f"({1e6 / period_ps:g} MHz, set in its configuration); "
                              "--aclk-mhz is for cores without one")
        period_ps = 1e6 / options.aclk_mhz
    aclk_mhz = 1e6 / period_ps
    if not 10.0 <= aclk_mhz <= 800.0:
        raise DeployError(f"fabric clock {aclk_mhz:.3f} MHz is outside the MMCM's range")
    regmap = core.regmap
    ip_parameters = [
        ["REGMAP_ID", f"0x{regmap.hash:08X}"], ["REGMAP_VERSION", f"0x{regmap.version:08X}"],
        ["ACLK_PERIOD_PS", f"{period_ps:g}"], ["ROLE", core.role],
    ] + [[f"CFG_{k.upper()}", v] for k, v in sorted(core.config.items())]
    return {
        "board": b.name, "role": core.role, "name": ROLES[core.role].basename,
        "part": b.part, "board_part": b.board_part, "ps": b.ps,
        "xdc": xdc.as_posix(), "verilog": verilog_path.as_posix(), "top": core.top,
        "work_dir": work_dir.as_posix(), "out_dir": out_dir.as_posix(),
        "ip_repo": (work_dir / "ip_repo").as_posix(),
        "ip_vendor": core.ip_vendor, "ip_library": core.ip_library, "ip_name": core.ip_name,
        "ip_version": core.ip_version, "vlnv": core.vlnv, "instance": core.instance,
        "clock_port": core.clock_port, "reset_n_port": core.reset_n_port,
        "irq_port": core.irq_port or "", "axi_lite": core.axi_lite,
        "axi_lite_range": 1 << regmap.addr_width, "core_address": f"0x{b.core_address:08X}",
        "dma_addr_width": b.dma_addr_width, "dma_length_width": 26,
        "streams": [[s.prefix, s.direction, s.width, s.dma, s.fifo, s.fifo_depth]
                    for s in core.streams],
        "pins": [list(p) for p in core.board_pins()],
        "serdes_port": core.serdes_port or "",
        "aclk_mhz": f"{aclk_mhz:.6f}", "ref_clk_mhz": f"{options.ref_clk_mhz:.6f}",
        "clock_source": options.clock_source, "jobs": options.jobs,
        "allow_timing_failure": int(options.allow_timing_failure),
        "ip_parameters": ip_parameters, "registers": _register_rows(regmap),
    }


def params_tcl(params: Mapping[str, object]) -> str:
    """The parameter TCL: ``set tbqkd(<key>) <value>`` lines, nested lists as Tcl lists."""
    lines = ["# Generated by `python -m tbqkd.deploy`: do not edit; regenerate instead.",
             "# Read by bitstreams/vivado/build.tcl (vivado -mode batch -source build.tcl "
             "-tclargs <this file>)."]
    for key, value in params.items():
        text = "{" + tcl_list(value) + "}" if isinstance(value, (list, tuple)) \
            else tcl_word(value)
        lines.append(f"set tbqkd({key}) {text}")
    return "\n".join(lines) + "\n"


def write_params(board_name: str, role: str, options: BuildOptions | None = None, *,
                 work_dir: Path | None = None, out_dir: Path | None = None,
                 config: Any = None, core: CoreBuild | None = None) -> tuple[Path, CoreBuild]:
    """Generate the Verilog and ``params.tcl`` of one build under ``work_dir``.

    Returns the parameter file and the core description (``core``: one already elaborated
    for this role, to skip elaborating it again).

    Raises
    ------
    DeployError
        See :func:`core_build` and :func:`build_params`.
    """
    from .hdl.build import write_if_changed

    b = board(board_name)
    if role in ROLES and not b.xdc(role).exists():     # before elaborating for a minute
        raise DeployError(f"no constraints for {role} on {b.name}: write {b.xdc(role)}")
    work_dir = Path(work_dir or DEFAULT_WORK_DIR / f"{b.name}-{role}").resolve()
    out_dir = Path(out_dir or BITSTREAMS_DIR / b.name).resolve()
    if core is None:
        core = core_build(role, config)
    elif core.role != role:
        raise DeployError(f"core of role {core.role} given for a {role} build")
    verilog_path = work_dir / f"{core.top}_xc7.v"
    write_if_changed(verilog_path, core.verilog)
    params = build_params(b.name, core, options or BuildOptions(), verilog_path=verilog_path,
                          work_dir=work_dir, out_dir=out_dir)
    path = work_dir / "params.tcl"
    write_if_changed(path, params_tcl(params))
    write_if_changed(work_dir / "regmap.json", core.regmap.to_json(config=core.config))
    return path, core


# --- Vivado ---------------------------------------------------------------------------------

def find_vivado(path: str | None = None) -> str:
    """The ``vivado`` executable on ``PATH`` (or on ``path``).

    Raises
    ------
    VivadoNotFound
        With :data:`VIVADO_MISSING` as the message.
    """
    found = shutil.which("vivado", path=path)
    if not found:
        raise VivadoNotFound(VIVADO_MISSING)
    return found


def run_vivado(params_path: Path, *, vivado: str | None = None) -> None:
    """Run the batch build of ``params_path`` (``build.tcl``), logging to its work folder.

    Raises
    ------
    VivadoNotFound
        If ``vivado`` is not on ``PATH``.
    DeployError
        If Vivado fails; the message names the log.
    """
    vivado = vivado or find_vivado()
    work_dir = params_path.parent
    log = work_dir / "vivado.log"
    command = [vivado, "-mode", "batch", "-notrace", "-nojournal", "-log", str(log),
               "-source", str(BUILD_TCL), "-tclargs", str(params_path)]
    _log(logging.INFO, "running %s", " ".join(command))
    result = subprocess.run(command, cwd=work_dir, check=False)
    if result.returncode:
        raise DeployError(f"vivado failed (exit {result.returncode}); see {log}")


def vivado_version(work_dir: Path) -> str:
    """The Vivado version the build recorded (``tool_version.txt``), or ``"unknown"``."""
    path = work_dir / "tool_version.txt"
    text = path.read_text().strip() if path.exists() else ""
    return text or "unknown"


# --- manifest and links ---------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_revision(repo: Path = REPO_DIR) -> str:
    """``git rev-parse HEAD`` (with ``-dirty`` for uncommitted changes), or ``"unknown"``."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                 "--untracked-files=no"], check=True, capture_output=True,
                                text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if status else "")


def write_manifest(out_dir: Path, name: str, files: Sequence[Path], *, board_name: str,
                   role: str, vlnv: str, regmap: Any, tool_version: str,
                   git: str | None = None) -> Path:
    """Add (or replace) build ``name`` in ``out_dir/MANIFEST.json``.

    Each file is recorded with its size and sha256; with the board, role, VLNV, the git
    revision, the register table's hash (``ID``) and version, and the tool version. Other
    builds already in the manifest are kept.

    Raises
    ------
    DeployError
        If a file is missing or outside ``out_dir``.
    """
    out_dir = Path(out_dir)
    entries = {}
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise DeployError(f"manifest: {path} does not exist")
        if path.resolve().parent != out_dir.resolve():
            raise DeployError(f"manifest: {path} is not in {out_dir}")
        entries[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest_path = out_dir / MANIFEST_NAME
    manifest = {"format": MANIFEST_FORMAT, "builds": {}}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise DeployError(f"{manifest_path}: unknown manifest format "
                              f"{manifest.get('format')!r}")
    manifest["builds"][name] = {
        "board": board_name, "role": role, "vlnv": vlnv,
        "git_revision": git if git is not None else git_revision(),
        "regmap": {"hash": f"0x{regmap.hash:08x}", "version": f"0x{regmap.version:08x}"},
        "tool": {"name": "vivado", "version": tool_version},
        "built_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": entries,
    }
    manifest["builds"] = dict(sorted(manifest["builds"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return manifest_path


def verify_manifest(folder: Path) -> list[str]:
    """Check every file ``folder/MANIFEST.json`` lists against its recorded size and sha256.

    Returns the problems (missing or changed files); empty if all match.

    Raises
    ------
    DeployError
        If there is no readable manifest.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
        builds = manifest["builds"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeployError(f"{path}: no readable manifest ({exc})") from None
    problems = []
    for name, build in builds.items():
        for filename, entry in build.get("files", {}).items():
            file = Path(folder) / filename
            if not file.is_file():
                problems.append(f"{name}: {filename} is missing")
            elif file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
                problems.append(f"{name}: {filename} does not match the manifest's sha256")
    return problems


def write_link(path: Path, url: str) -> Path:
    """Write ``<path>.link`` for a built file: its URL, sha256 and md5 (pynq's ``md5sum`` key)."""
    path = Path(path)
    data = path.read_bytes()
    link = path.with_name(path.name + ".link")
    link.write_text(json.dumps({"url": url, "sha256": hashlib.sha256(data).hexdigest(),
                                "md5sum": hashlib.md5(data).hexdigest()}, indent=1) + "\n")
    return link


def read_link(link: Path) -> dict[str, str]:
    """Read a ``.link`` file (``url`` and at least one of ``sha256``, ``md5sum``).

    Raises
    ------
    DeployError
        If the file is not such JSON.
    """
    try:
        data = json.loads(Path(link).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DeployError(f"{link}: not a readable .link file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) \
            or not ({"sha256", "md5sum"} & set(data)):
        raise DeployError(f"{link}: a .link file needs 'url' and 'sha256' (or 'md5sum')")
    return data


def fetch_link(link: Path, *, force: bool = False) -> Path:
    """Download the file a ``.link`` names beside it, checking its checksums.

    An existing file with the right checksum is kept. The download goes to a temporary file
    that replaces the target only once checked.

    Raises
    ------
    ChecksumMismatch
        If the (downloaded or existing) file does not match; nothing is left behind.
    DeployError
        For an unreadable link or a failed download.
    """
    link = Path(link)
    data = read_link(link)
    target = link.with_name(link.name.removesuffix(".link"))
    if target.exists() and not force:
        try:
            _check_digests(target.read_bytes(), data, target)
            return target
        except ChecksumMismatch:
            _log(logging.WARNING, "%s does not match %s: fetching it again", target, link)
    try:
        with urllib.request.urlopen(data["url"], timeout=60) as response:
            payload = response.read()
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot fetch {data['url']}: {exc}") from None
    _check_digests(payload, data, target)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, target)
    return target


def _check_digests(payload: bytes, data: Mapping[str, str], target: Path) -> None:
    for key, algorithm in (("sha256", hashlib.sha256), ("md5sum", hashlib.md5)):
        if key in data and algorithm(payload).hexdigest() != data[key].lower():
            raise ChecksumMismatch(f"{target.name}: {key} {algorithm(payload).hexdigest()} is "
                                   f"not the {data[key]} of its .link file")


# --- board-free checks ----------------------------------------------------------------------

_STUB_TCL = r"""
set ::tbqkd_dry_run 1
set ::tbqkd_trace {}
proc unknown {args} {
    lappend ::tbqkd_trace $args
    set cmd [lindex $args 0]
    set last [lindex $args end]
    switch -glob -- $cmd {
        create_bd_cell - create_bd_port - create_bd_intf_port -
        get_bd_cells - get_bd_ports - get_bd_intf_ports { return $last }
        get_bd_pins { return "pin:$last" }
        get_bd_intf_pins { return "intf:$last" }
        get_bd_addr_spaces { return "space:$last" }
        get_bd_addr_segs { return "seg:$last" }
        ipx::add_register { return "reg:[lindex $args 1]" }
        ipx::add_field { return "field:[lindex $args 1]:[lindex $args 2]" }
        ipx::current_core { return core }
        ipx::get_* { return "ipx:[lindex $args 1]" }
        get_ipdefs { return [string map {:* :0.0} $last] }
        get_board_parts { return $last }
        get_files { return $last }
        get_runs { return "run:$last" }
        version { return "dry-run" }
        get_property {
            switch -- [lindex $args 1] {
                PROGRESS { return 100% }
                SLACK { return 0.001 }
                default { return "" }
            }
        }
        default { return "" }
    }
}
"""


@dataclass
class TclTrace:
    """What the build TCL did in a dry run: every Vivado command, and the files it sourced."""

    calls: list[list[str]]
    params: dict[str, str]
    sourced: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def commands(self, name: str) -> list[list[str]]:
        return [c for c in self.calls if c and c[0] == name]


def dry_run(params_path: Path, build_tcl: Path = BUILD_TCL) -> TclTrace:
    """Run ``build_tcl`` in a Tcl interpreter whose unknown commands (Vivado's) are recorded.

    Real Tcl runs for real (``source``, ``file``, loops, procs); every Vivado command is
    recorded with its arguments and returns a placeholder. Needs Python's ``tkinter`` (only
    its Tcl interpreter; no display).

    Raises
    ------
    DeployError
        If the TCL fails (a missing sourced file, a Tcl error, an ``error`` it raises).
    """
    try:
        import tkinter
    except ImportError:
        raise DeployError("the dry run needs Python's tkinter (its Tcl interpreter)") from None
    tcl = tkinter.Tcl()
    tcl.eval(_STUB_TCL)
    tcl.eval("rename source _tbqkd_source\n"
             "proc source {args} { lappend ::tbqkd_sourced [lindex $args end];"
             " uplevel 1 [list _tbqkd_source {*}$args] }")
    tcl.eval("set ::tbqkd_sourced {}; set ::tbqkd_output {}\n"
             "rename puts _tbqkd_puts\n"
             "proc puts {args} { if {[llength $args] == 2 && [lindex $args 0] ne \"-nonewline\"}"
             " { _tbqkd_puts {*}$args } else { lappend ::tbqkd_output [lindex $args end] } }")
    tcl.setvar("argv", str(params_path))
    tcl.setvar("argc", "1")
    tcl.setvar("argv0", str(build_tcl))
    try:
        tcl.eval(f"source {{{build_tcl.as_posix()}}}")
    except tkinter.TclError as exc:
        info = tcl.getvar("errorInfo")
        raise DeployError(f"build TCL failed in the dry run: {exc}\n{info}") from None
    calls = [[str(a) for a in tcl.splitlist(c)]
             for c in tcl.splitlist(tcl.eval("set ::tbqkd_trace"))]
    names = [str(n) for n in tcl.splitlist(tcl.eval("array names tbqkd"))]
    params = {n: str(tcl.eval(f"set tbqkd({n})")) for n in names}
    sourced = [str(p) for p in tcl.splitlist(tcl.eval("set ::tbqkd_sourced"))]
    output = [str(p) for p in tcl.splitlist(tcl.eval("set ::tbqkd_output"))]
    return TclTrace(calls, params, sourced, output)


_VERILOG_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?"
                           r"(?:\[(\d+):(\d+)\]\s+)?\\?([A-Za-z_][\w$]*)\s*;", re.M)


def verilog_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    """Ports of ``module`` in Verilog ``text``: name → (``"in"``/``"out"``, width).

    Parses the module header and its ``input``/``output`` declarations (Amaranth's style:
    port list, then one declaration per port).

    Raises
    ------
    DeployError
        If the module is not found.
    """
    match = re.search(rf"^module\s+{re.escape(module)}\s*\(([^)]*)\)\s*;", text, re.M)
    if not match:
        raise DeployError(f"no module {module} in the Verilog")
    header = [p.strip().lstrip("\\") for p in match.group(1).split(",") if p.strip()]
    end = text.find("endmodule", match.end())
    ports = {}
    for kind, msb, lsb, name in _VERILOG_PORT.findall(text[match.end():end]):
        if name in header:
            width = abs(int(msb) - int(lsb)) + 1 if msb else 1
            ports[name] = ("in" if kind == "input" else "out" if kind == "output" else "inout",
                           width)
    missing = set(header) - set(ports)
    if missing:
        raise DeployError(f"{module}: ports without a declaration: {sorted(missing)}")
    return ports


_XDC_PORTS = re.compile(r"get_ports\s+(?:\{\s*([^}]*)\}|\[?(\S+?)\]?)(?=[\s\]])")


def xdc_ports(text: str) -> dict[str, dict[str, str]]:
    """Ports an XDC constrains, with the properties ``set_property -dict`` gives them.

    Comment lines are ignored. Returns port name → {property: value}; a port named in any
    other constraint (``set_false_path -from [get_ports ...]``) appears with no properties.
    """
    out: dict[str, dict[str, str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        names = []
        for braced, plain in _XDC_PORTS.findall(line):
            names.extend((braced or plain).split())
        props = {}
        dict_match = re.search(r"-dict\s*\{([^}]*)\}", line)
        if dict_match:
            words = dict_match.group(1).split()
            props = dict(zip(words[::2], words[1::2], strict=False))
        single = re.match(r"set_property\s+(\w+)\s+(\S+)\s+\[get_ports", line)
        if single:
            props[single.group(1)] = single.group(2)
        for name in names:
            out.setdefault(name, {}).update(props)
    return out


def _properties(trace: TclTrace, target: str) -> dict[str, str]:
    """``CONFIG.*`` values set on bd cell ``target`` through ``set_property -dict``."""
    props: dict[str, str] = {}
    for call in trace.commands("set_property"):
        if len(call) >= 4 and call[1] == "-dict" and call[-1] == target:
            words = _split_tcl_list(call[2])
            props.update(zip(words[::2], words[1::2], strict=False))
    return props


def _split_tcl_list(text: str) -> list[str]:
    import tkinter
    return [str(w) for w in tkinter.Tcl().splitlist(text)]


def check_build(trace: TclTrace, core: CoreBuild, verilog_text: str,
                regmap: Any) -> list[str]:
    """Check a dry run of the build TCL against the Verilog, the tables and the XDC.

    Returns the problems found (empty if none): pins of the core instance that the Verilog
    lacks or has at another width, stream interfaces whose DMA has another width, files it
    uses that do not exist, registers whose offset or width differs from ``regmap``, a VLNV
    or instance name other than the core's, external ports without pin and I/O standard in
    the XDC, XDC ports the design does not have.
    """
    problems: list[str] = []
    ports = verilog_ports(verilog_text, core.top)
    if ports != {n: d for n, d in core.ports.items()}:
        problems.append(f"Verilog ports differ from the component's: "
                        f"{sorted(set(ports.items()) ^ set(core.ports.items()))}")
    inst = core.instance
    stream_width = {s.prefix: s for s in core.streams}
    bd_port_width: dict[str, int] = {}
    for call in trace.commands("create_bd_port"):
        width = 1
        if "-from" in call:
            width = int(call[call.index("-from") + 1]) - int(call[call.index("-to") + 1]) + 1
        bd_port_width[call[-1]] = width
    connected: dict[str, str] = {}
    for call in trace.commands("connect_bd_net"):
        objs = [a for a in call[1:] if not a.startswith("-")]
        core_pins = [o for o in objs if o.startswith(f"pin:{inst}/")]
        bd_ports = [o for o in objs if o in bd_port_width]
        for pin in core_pins:
            for port in bd_ports:
                connected[port] = pin.split("/", 1)[1]
    for call in trace.commands("get_bd_pins"):
        path = call[-1]
        if path.startswith(f"{inst}/"):
            pin = path.split("/", 1)[1]
            if pin not in ports:
                problems.append(f"TCL connects {path}, which the Verilog lacks")
    for port, pin in connected.items():
        if pin in ports and ports[pin][1] != bd_port_width[port]:
            problems.append(f"board port {port} is {bd_port_width[port]} bits, core pin {pin} "
                            f"is {ports[pin][1]}")
    for call in trace.commands("get_bd_intf_pins"):
        path = call[-1]
        if not path.startswith(f"{inst}/"):
            continue
        intf = path.split("/", 1)[1]
        members = [p for p in ports if p.startswith(intf + "_")]
        if intf == core.axi_lite:
            needed = {f"{intf}_{s}" for s in ("awaddr", "awvalid", "awready", "wdata", "wstrb",
                                              "wvalid", "wready", "bresp", "bvalid", "bready",
                                              "araddr", "arvalid", "arready", "rdata", "rresp",
                                              "rvalid", "rready")}
            if not needed <= set(members):
                problems.append(f"AXI4-Lite {intf}: Verilog lacks {sorted(needed - set(members))}")
        elif intf in stream_width:
            spec = stream_width[intf]
            needed = {f"{intf}_{s}" for s in _STREAM_SIGNALS}
            if not needed <= set(ports):
                problems.append(f"stream {intf}: Verilog lacks {sorted(needed - set(ports))}")
                continue
            if ports[f"{intf}_tdata"][1] != spec.width:
                problems.append(f"stream {intf}: TDATA is {ports[f'{intf}_tdata'][1]} bits, "
                                f"the build expects {spec.width}")
            key = "CONFIG.c_s_axis_s2mm_tdata_width" if spec.direction == "out" else \
                "CONFIG.c_m_axis_mm2s_tdata_width"
            dma_width = _properties(trace, spec.dma).get(key)
            if dma_width != str(ports[f"{intf}_tdata"][1]):
                problems.append(f"DMA {spec.dma}: {key} is {dma_width}, the core's {intf} "
                                f"TDATA is {ports[f'{intf}_tdata'][1]} bits")
        else:
            problems.append(f"TCL connects interface {path}, which the core does not have")
    intf_nets = [[a for a in c[1:] if not a.startswith("-")]
                 for c in trace.commands("connect_bd_intf_net")]
    for s in core.streams:
        if not any(c[-1] == s.dma for c in trace.commands("create_bd_cell")):
            problems.append(f"no AXI DMA named {s.dma} for stream {s.prefix}")
        if s.fifo:
            depth = _properties(trace, s.fifo).get("CONFIG.FIFO_DEPTH")
            if depth != str(s.fifo_depth):
                problems.append(f"FIFO {s.fifo}: depth {depth}, expected {s.fifo_depth}")
            path = [[f"intf:{s.dma}/M_AXIS_MM2S", f"intf:{s.fifo}/S_AXIS"],
                    [f"intf:{s.fifo}/M_AXIS", f"intf:{inst}/{s.prefix}"]]
            if not all(hop in intf_nets for hop in path):
                problems.append(f"stream {s.prefix}: not DMA -> {s.fifo} -> core")
    # files (except what Vivado itself writes into the project folder)
    generated = Path(trace.params.get("work_dir", "/nonexistent")) / "project"
    for call in trace.commands("add_files") + trace.commands("read_xdc"):
        for arg in call[1:]:
            if arg.startswith("-") or arg in ("constrs_1", "sources_1") or \
                    Path(arg).is_relative_to(generated):
                continue
            if ("/" in arg or arg.endswith((".v", ".xdc", ".tcl"))) and not Path(arg).exists():
                problems.append(f"TCL uses {arg}, which does not exist")
    for path in trace.sourced:
        if not Path(path).exists():
            problems.append(f"TCL sources {path}, which does not exist")
    # identity
    packaged = trace.commands("ipx::package_project")
    if not packaged:
        problems.append("the TCL never packages the IP")
    for call in packaged:
        opts = dict(zip(call[1::2], call[2::2], strict=False))
        if (opts.get("-vendor"), opts.get("-library")) != (core.ip_vendor, core.ip_library):
            problems.append(f"IP packaged as {opts.get('-vendor')}:{opts.get('-library')}, "
                            f"not {core.ip_vendor}:{core.ip_library}")
    cells = [c for c in trace.commands("create_bd_cell") if c[-1] == inst]
    if len(cells) != 1 or core.vlnv not in cells[0]:
        problems.append(f"block design does not instantiate {core.vlnv} as {inst}: {cells}")
    core_props = {(c[1], c[2]) for c in trace.commands("set_property") if c[-1] == "core"}
    for prop, value in (("name", core.ip_name), ("version", core.ip_version)):
        if (prop, value) not in core_props:
            problems.append(f"IP {prop} is not set to {value}")
    # registers
    offsets = {c[-1][4:]: c[2] for c in trace.commands("set_property")
               if len(c) == 4 and c[1] == "address_offset" and c[-1].startswith("reg:")}
    sizes = {c[-1][4:]: c[2] for c in trace.commands("set_property")
             if len(c) == 4 and c[1] == "size" and c[-1].startswith("reg:")}
    table = {r.name: r for r in regmap}
    for name, offset in offsets.items():
        if name not in table:
            problems.append(f"TCL names register {name}, not in the table")
        elif int(offset, 0) != table[name].offset:
            problems.append(f"register {name} at {offset} in the TCL, {table[name].offset:#x} "
                            "in the table")
        elif int(sizes.get(name, "0")) != table[name].width:
            problems.append(f"register {name} is {sizes.get(name)} bits in the TCL, "
                            f"{table[name].width} in the table")
    if set(offsets) != set(table):
        problems.append(f"registers missing from the TCL: {sorted(set(table) - set(offsets))}")
    # constraints
    xdc_path = Path(trace.params.get("xdc", ""))
    if not xdc_path.exists():
        problems.append(f"no XDC {xdc_path}")
        return problems
    constrained = xdc_ports(xdc_path.read_text())
    for port in bd_port_width:
        props = constrained.get(port, {})
        if "PACKAGE_PIN" not in props or "IOSTANDARD" not in props:
            problems.append(f"board port {port} has no PACKAGE_PIN and IOSTANDARD in "
                            f"{xdc_path.name}")
    for port in constrained:
        if port == "ref_clk" and trace.params.get("clock_source") == "ps":
            continue                # the reference input's pin stays constrained, unused
        if port not in bd_port_width:
            problems.append(f"{xdc_path.name} constrains {port}, which the design lacks")
    pins = [p for p, props in constrained.items() if "PACKAGE_PIN" in props]
    seen: dict[str, str] = {}
    for p in pins:
        pin = constrained[p]["PACKAGE_PIN"]
        if pin in seen:
            problems.append(f"{p} and {seen[pin]} share package pin {pin}")
        seen[pin] = p
    return problems


# --- the commands ---------------------------------------------------------------------------

def bitstream(board_name: str, role: str, options: BuildOptions | None = None, *,
              work_dir: Path | None = None, out_dir: Path | None = None,
              core: CoreBuild | None = None) -> Path:
    """Build ``bitstreams/<board>/<name>.bit`` and ``.hwh`` and record them in the manifest.

    Vivado is looked for first, so that a machine without it stops before the 20 s of
    Verilog generation. Returns the manifest's path.

    Raises
    ------
    VivadoNotFound
        Without ``vivado`` on ``PATH``.
    DeployError
        If generation, the build, or the manifest fails.
    """
    vivado = find_vivado()
    b = board(board_name)
    out_dir = Path(out_dir or BITSTREAMS_DIR / b.name).resolve()
    params_path, core = write_params(b.name, role, options, work_dir=work_dir, out_dir=out_dir,
                                     core=core)
    run_vivado(params_path, vivado=vivado)
    name = ROLES[role].basename
    regmap_copy = out_dir / f"{name}.regmap.json"
    regmap_copy.write_text(core.regmap.to_json(config=core.config))
    files = [out_dir / f"{name}.bit", out_dir / f"{name}.hwh", regmap_copy]
    return write_manifest(out_dir, name, files, board_name=b.name, role=role, vlnv=core.vlnv,
                          regmap=core.regmap, tool_version=vivado_version(params_path.parent))


def _check_command(board_name: str, role: str, options: BuildOptions) -> list[str]:
    params_path, core = write_params(board_name, role, options)
    trace = dry_run(params_path)
    return check_build(trace, core, core.verilog, core.regmap)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tbqkd.deploy {bitstream,check,link,fetch}`` (``--help`` for each)."""
    parser = argparse.ArgumentParser(prog="python -m tbqkd.deploy", description=__doc__
                                     .split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("bitstream", "generate the Verilog and build the bitstream with Vivado"),
                       ("check", "dry-run the build TCL without Vivado and check it")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--board", default="pynq-z2", choices=sorted(BOARDS))
        p.add_argument("--role", default="bob", choices=sorted(ROLES))
        p.add_argument("--ref-clk-mhz", type=float, default=10.0,
                       help="frequency of the reference clock input (default 10)")
        p.add_argument("--clock-source", default="reference", choices=("reference", "ps"))
        p.add_argument("--jobs", type=int, default=2)
        p.add_argument("--aclk-mhz", type=float, default=None,
                       help="fabric clock of the alice role (k x the pulse rate; default 250)")
        p.add_argument("--allow-timing-failure", action="store_true",
                       help="write the bitstream even if timing is not met")
    p = sub.add_parser("link", help="write .link files for a board's built files")
    p.add_argument("--board", default="pynq-z2", choices=sorted(BOARDS))
    p.add_argument("--base-url", required=True, help="URL of the folder holding the files")
    p = sub.add_parser("fetch", help="download the files of a board's .link files")
    p.add_argument("--board", default="pynq-z2", choices=sorted(BOARDS))
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("verify", help="check a folder's files against its MANIFEST.json")
    p.add_argument("folder", type=Path, help="e.g. bitstreams/pynq-z2 or the overlay folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command in ("bitstream", "check"):
            options = BuildOptions(args.ref_clk_mhz, args.clock_source, args.jobs,
                                   args.allow_timing_failure, args.aclk_mhz)
            if args.command == "bitstream":
                print(bitstream(args.board, args.role, options))
                return 0
            problems = _check_command(args.board, args.role, options)
            for problem in problems:
                print(problem)
            print(f"{args.board}/{args.role}: " + ("ok" if not problems else
                                                   f"{len(problems)} problem(s)"))
            return 1 if problems else 0
        if args.command == "verify":
            problems = verify_manifest(args.folder)
            for problem in problems:
                print(problem)
            print(f"{args.folder}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
            return 1 if problems else 0
        folder = BITSTREAMS_DIR / args.board
        if args.command == "link":
            manifest = json.loads((folder / MANIFEST_NAME).read_text())
            for build in manifest["builds"].values():
                for filename in build["files"]:
                    print(write_link(folder / filename, args.base_url.rstrip("/") + "/"
                                     + filename))
            return 0
        links = sorted(folder.glob("*.link"))
        if not links:
            raise DeployError(f"no .link files in {folder}: build with `make bitstream` or "
                              "see docs/DEPLOY.md")
        for link in links:
            print(fetch_link(link, force=args.force))
        return 0
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
