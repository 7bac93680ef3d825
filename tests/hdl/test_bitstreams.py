"""Board-free checks of the Vivado build path (bitstreams/, tbqkd.deploy): no Vivado needed.

The build TCL runs for real in a Tcl interpreter whose Vivado commands are recorded
(:func:`tbqkd.deploy.dry_run`); what it would build is checked against the generated Verilog
(the receiver's ``generate_verilog(..., primitives="xc7")``, the transmitter's
``transmitter_verilog``), hdl/ip.py, the stream tables, the register tables and the board XDC.
Mutated copies of the scripts and parameters show that the checks catch what they claim to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tbqkd.hdl import ip
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.records import STREAMS
from tbqkd.hdl.registers import core_regmap
from tbqkd.hdl.transmitter import TX_TOP_NAME
from tbqkd.hdl.tx_records import TX_STREAMS
from tbqkd.hdl.tx_registers import RING_DEPTH, transmitter_regmap
from tbqkd.host.pynq_device import DEFAULT_BUFFER_BYTES

from tbqkd import deploy

tkinter = pytest.importorskip("tkinter")   # the dry run uses Python's Tcl interpreter


@pytest.fixture(scope="module")
def receiver() -> deploy.CoreBuild:
    return deploy.core_build("bob")


@pytest.fixture(scope="module")
def builds(receiver, tmp_path_factory) -> dict[str, tuple[Path, deploy.TclTrace]]:
    """Parameter file and dry-run trace of the receiver on every board."""
    out = {}
    for name in deploy.BOARDS:
        work = tmp_path_factory.mktemp(name)
        params, _ = deploy.write_params(name, "bob", work_dir=work / "work",
                                        out_dir=work / "out", core=receiver)
        out[name] = (params, deploy.dry_run(params))
    return out


@pytest.fixture(scope="module")
def verilog_text(receiver) -> str:
    """The Verilog as `python -m tbqkd.hdl.build` writes it (tbqkd_rx_xc7.v): the deploy path
    generates it with the same library function, ``generate_verilog(config, primitives="xc7")``.
    """
    return receiver.verilog


def _core_pins(trace: deploy.TclTrace, command: str) -> set[str]:
    prefix = f"{ip.INSTANCE_NAME}/"
    return {c[-1][len(prefix):] for c in trace.commands(command) if c[-1].startswith(prefix)}


# --- the whole check, on every board ----------------------------------------------------------

@pytest.mark.parametrize("board", sorted(deploy.BOARDS))
def test_build_passes_every_check(builds, receiver, verilog_text, board):
    params, trace = builds[board]
    assert deploy.check_build(trace, receiver, verilog_text, core_regmap(TaggerConfig())) == []
    assert trace.params["part"] == deploy.BOARDS[board].part
    assert trace.params["xdc"].endswith(f"{board}-bob.xdc")


def test_every_sourced_file_exists_and_every_script_is_used(builds):
    sourced = {Path(p).resolve() for _, trace in builds.values() for p in trace.sourced}
    assert all(p.is_file() for p in sourced)
    scripts = {p.resolve() for p in deploy.VIVADO_DIR.rglob("*.tcl")}
    assert scripts <= sourced, f"scripts no build uses: {sorted(scripts - sourced)}"
    for _, trace in builds.values():
        used = [a for c in trace.commands("add_files") for a in c[1:] if a.endswith((".v", ".xdc"))]
        project = Path(trace.params["work_dir"]) / "project"   # what Vivado writes itself
        sources = [a for a in used if not Path(a).is_relative_to(project)]
        assert sorted(Path(a).suffix for a in sources) == [".v", ".xdc"]
        assert all(Path(a).is_file() for a in sources)
        assert [a for a in used if a not in sources] == [
            f"{project}/tbqkd_bob.gen/sources_1/bd/tbqkd_bob/hdl/tbqkd_bob_wrapper.v"]


# --- ports against the generated Verilog ------------------------------------------------------

def test_verilog_header_matches_component_signature(receiver, verilog_text):
    ports = deploy.verilog_ports(verilog_text, receiver.top)
    assert ports == receiver.ports
    assert "CARRY4" in verilog_text and "ISERDESE2" not in verilog_text   # xc7 delay line
    for port in STREAMS:
        assert ports[f"{port.prefix}_tdata"] == (port.direction, port.record.width)
        assert ports[f"{port.prefix}_tready"][0] == ("in" if port.direction == "out" else "out")


def test_every_connected_core_pin_exists_with_its_width(builds, verilog_text, receiver):
    ports = deploy.verilog_ports(verilog_text, receiver.top)
    _, trace = builds["pynq-z2"]
    pins = _core_pins(trace, "get_bd_pins")
    assert pins and pins <= set(ports)
    assert {ip.CLOCK_PORT, ip.RESET_N_PORT, ip.IRQ_PORT} <= pins
    widths = {}
    for call in trace.commands("create_bd_port"):
        widths[call[-1]] = int(call[call.index("-from") + 1]) + 1 if "-from" in call else 1
    board_pins = {n for n in pins if n in widths}
    assert board_pins == {f"ch{i}_in" for i in range(TaggerConfig().n_channels)} | \
        {"dac_sclk", "dac_mosi", "dac_sync_n", "dac_ldac_n"}
    assert all(ports[n][1] == widths[n] for n in board_pins)
    interfaces = _core_pins(trace, "get_bd_intf_pins")
    assert interfaces == {ip.AXI_LITE_PORT} | {p.prefix for p in STREAMS}


def test_dma_names_widths_and_mode_follow_ip_py(builds):
    _, trace = builds["pynq-z2"]
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in trace.commands("create_bd_cell")}
    assert cells[ip.INSTANCE_NAME] == ip.VLNV
    for channel in ip.DMA_CHANNELS:
        assert "axi_dma" in cells[channel.dma]
        props = deploy._properties(trace, channel.dma)
        assert props["CONFIG.c_include_sg"] == "0"            # simple mode
        side = "s2mm" if channel.receives else "mm2s"
        key = f"CONFIG.c_s_axis_{side}_tdata_width" if channel.receives else \
            f"CONFIG.c_m_axis_{side}_tdata_width"
        assert int(props[key]) == 8 * channel.record_bytes
        assert props[f"CONFIG.c_include_{side}"] == "1"
        other = "mm2s" if channel.receives else "s2mm"
        assert props[f"CONFIG.c_include_{other}"] == "0"
        # the host's buffers fit one transfer (docs/PYNQ.md: buffer_max_size = 2^width - 1)
        assert 2 ** int(props["CONFIG.c_sg_length_width"]) - 1 >= DEFAULT_BUFFER_BYTES


def test_input_streams_pass_through_a_data_fifo(builds, alice_builds):
    for routes, traces in ((ip.DMA_CHANNELS, builds), (ip.TX_DMA_CHANNELS, alice_builds)):
        inputs = [c for c in routes if not c.receives]
        assert inputs and all(c.fifo_depth == 0 for c in routes if c.receives)
        for _, trace in traces.values():
            cells = {c[-1]: c[c.index("-vlnv") + 1] for c in trace.commands("create_bd_cell")}
            nets = [c[1:] for c in trace.commands("connect_bd_intf_net")]
            core = ip.INSTANCE_NAME if routes is ip.DMA_CHANNELS else ip.TX_INSTANCE_NAME
            for c in inputs:
                assert "axis_data_fifo" in cells[c.fifo]
                props = deploy._properties(trace, c.fifo)
                assert int(props["CONFIG.FIFO_DEPTH"]) * c.record_bytes == ip.INPUT_FIFO_BYTES
                assert int(props["CONFIG.TDATA_NUM_BYTES"]) == c.record_bytes
                assert [f"intf:{c.dma}/M_AXIS_MM2S", f"intf:{c.fifo}/S_AXIS"] in nets
                assert [f"intf:{c.fifo}/M_AXIS", f"intf:{core}/{c.stream}"] in nets
    assert ip.dma_channel("s_axis_random", ip.TX_DMA_CHANNELS).fifo_depth == 4096


def test_irq_goes_through_a_concat_to_the_ps(builds):
    for board, (_, trace) in builds.items():
        nets = [c[1:] for c in trace.commands("connect_bd_net")]
        assert [f"pin:{ip.INSTANCE_NAME}/{ip.IRQ_PORT}", "pin:irq_concat_0/In0"] in nets
        ps_irq = "IRQ_F2P" if board == "pynq-z2" else "pl_ps_irq0"
        assert any(n[0] == "pin:irq_concat_0/dout" and n[1].endswith(ps_irq) for n in nets)


def test_fabric_clock_comes_from_the_reference_through_the_mmcm(builds):
    _, trace = builds["pynq-z2"]
    props = deploy._properties(trace, "clock_wizard_0")
    assert props["CONFIG.PRIMITIVE"] == "MMCM"
    assert float(props["CONFIG.CLKOUT1_REQUESTED_OUT_FREQ"]) == pytest.approx(
        1e6 / TaggerConfig().period_ps)
    nets = [c[1:] for c in trace.commands("connect_bd_net")]
    assert ["ref_clk", "pin:clock_wizard_0/clk_in1"] in nets
    clock_net = max(nets, key=len)          # every AXI clock pin on one net
    assert clock_net[0] == "pin:clock_wizard_0/clk_out1"
    assert f"pin:{ip.INSTANCE_NAME}/{ip.CLOCK_PORT}" in clock_net
    assert all(f"pin:{c.dma}/s_axi_lite_aclk" in clock_net for c in ip.DMA_CHANNELS)


def test_ps_clock_source_skips_the_reference(receiver, tmp_path, verilog_text):
    options = deploy.BuildOptions(clock_source="ps")
    params, _ = deploy.write_params("pynq-z2", "bob", options, work_dir=tmp_path, core=receiver)
    trace = deploy.dry_run(params)
    assert "ref_clk" not in [c[-1] for c in trace.commands("create_bd_port")]
    assert deploy.check_build(trace, receiver, verilog_text, receiver.regmap) == []


# --- registers, identity ---------------------------------------------------------------------

def test_register_offsets_in_the_tcl_match_the_table(builds):
    _, trace = builds["pynq-z2"]
    table = core_regmap(TaggerConfig())
    regs = {c[-1][4:]: c for c in trace.commands("set_property")
            if len(c) == 4 and c[1] == "address_offset"}
    assert set(regs) == {r.name for r in table}
    for r in table:
        assert int(regs[r.name][2], 16) == r.offset
    fields = [c[1:3] for c in trace.commands("ipx::add_field")]
    assert len(fields) == sum(len(r.fields) for r in table)
    assert ["hash", "reg:ID"] in fields
    user = {c[1] for c in trace.commands("ipx::add_user_parameter")}
    assert {"REGMAP_ID", "REGMAP_VERSION"} <= user
    values = [c for c in trace.commands("set_property") if c[1:3] == ["value",
                                                                       f"0x{table.hash:08X}"]]
    assert values, "the register-table hash is not an IP parameter"


def test_ip_identity_is_hdl_ip(builds):
    _, trace = builds["pynq-z2"]
    (package,) = trace.commands("ipx::package_project")
    assert package[package.index("-vendor") + 1] == ip.IP_VENDOR
    assert package[package.index("-library") + 1] == ip.IP_LIBRARY
    core = {(c[1], c[2]) for c in trace.commands("set_property") if c[-1] == "core"}
    assert ("name", ip.IP_NAME) in core and ("version", ip.IP_VERSION) in core
    assert trace.params["vlnv"] == ip.VLNV and trace.params["instance"] == ip.INSTANCE_NAME


# --- the checks catch what they claim to ------------------------------------------------------

def _mutated_scripts(tmp_path: Path, file: str, old: str, new: str) -> Path:
    root = tmp_path / "vivado"
    shutil.copytree(deploy.VIVADO_DIR, root)
    path = root / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return root / "build.tcl"


def test_check_catches_a_pin_the_verilog_lacks(builds, receiver, verilog_text, tmp_path):
    params, _ = builds["pynq-z2"]
    build = _mutated_scripts(tmp_path, "lib/block_design.tcl",
                             "[get_bd_pins $core/$tbqkd(irq_port)]",
                             "[get_bd_pins $core/interrupt]")
    problems = deploy.check_build(deploy.dry_run(params, build), receiver, verilog_text,
                                  receiver.regmap)
    assert problems == [f"TCL connects {ip.INSTANCE_NAME}/interrupt, which the Verilog lacks"]


def test_check_catches_a_dma_of_the_wrong_width(builds, receiver, verilog_text, tmp_path):
    params, _ = builds["pynq-z2"]
    build = _mutated_scripts(tmp_path, "lib/block_design.tcl",
                             "CONFIG.c_s_axis_s2mm_tdata_width $width",
                             "CONFIG.c_s_axis_s2mm_tdata_width 64")
    problems = deploy.check_build(deploy.dry_run(params, build), receiver, verilog_text,
                                  receiver.regmap)
    assert any("dma_m_axis_phase" in p and "256" in p for p in problems)
    assert not any("dma_m_axis_sifted" in p for p in problems)      # 64 bits is right there


def test_check_catches_a_wrong_register_offset(builds, receiver, verilog_text, tmp_path):
    params, _ = builds["pynq-z2"]
    offset = receiver.regmap["FRAME_WORDS"].offset
    text = params.read_text()
    old = f"FRAME_WORDS 0x{offset:04X}"
    assert old in text
    bad = tmp_path / "params.tcl"
    bad.write_text(text.replace(old, f"FRAME_WORDS 0x{offset + 4:04X}"))
    problems = deploy.check_build(deploy.dry_run(bad), receiver, verilog_text, receiver.regmap)
    assert problems == [f"register FRAME_WORDS at 0x{offset + 4:04X} in the TCL, "
                        f"{offset:#x} in the table"]


def test_check_catches_an_unconstrained_port_and_a_missing_file(builds, receiver, verilog_text,
                                                                tmp_path):
    params, trace = builds["pynq-z2"]
    xdc = tmp_path / "board.xdc"
    xdc.write_text("\n".join(line for line in Path(trace.params["xdc"]).read_text().splitlines()
                             if "ch3_in]" not in line) + "\n"
                   "set_property -dict {PACKAGE_PIN Y18 IOSTANDARD LVCMOS33} [get_ports ch9_in]\n")
    bad = tmp_path / "params.tcl"
    bad.write_text(params.read_text().replace(trace.params["xdc"], xdc.as_posix()))
    problems = deploy.check_build(deploy.dry_run(bad), receiver, verilog_text, receiver.regmap)
    assert any("ch3_in has no PACKAGE_PIN" in p for p in problems)
    assert any("constrains ch9_in" in p for p in problems)
    assert any("share package pin Y18" in p for p in problems)
    xdc.unlink()
    with pytest.raises(deploy.DeployError, match="does not exist"):
        deploy.dry_run(bad)          # the TCL itself refuses a missing constraints file


def test_dry_run_fails_on_a_missing_sourced_script(builds, tmp_path):
    params, _ = builds["pynq-z2"]
    build = _mutated_scripts(tmp_path, "build.tcl", "lib implement.tcl", "lib implements.tcl")
    with pytest.raises(deploy.DeployError, match="implements.tcl"):
        deploy.dry_run(params, build)


# --- parsers and quoting ------------------------------------------------------------------------

def test_verilog_ports_parser():
    text = ("module top(a, b, \\c );\n  input [7:0] a;\n  wire x;\n  output b;\n"
            "  input c;\n  output [3:0] inner;\nendmodule\nmodule other(a);\n  input [99:0] a;\n"
            "endmodule\n")
    assert deploy.verilog_ports(text, "top") == {"a": ("in", 8), "b": ("out", 1),
                                                 "c": ("in", 1)}
    with pytest.raises(deploy.DeployError, match="no module"):
        deploy.verilog_ports(text, "missing")


def test_xdc_parser():
    text = ("# set_property -dict {PACKAGE_PIN A1 IOSTANDARD X} [get_ports commented]\n"
            "set_property -dict { PACKAGE_PIN U18 IOSTANDARD LVCMOS33 } [get_ports ref_clk]\n"
            "set_property IOSTANDARD LVDS_25 [get_ports d_p]\n"
            "set_false_path -from [get_ports {a b}]  ;# trailing comment\n")
    assert deploy.xdc_ports(text) == {
        "ref_clk": {"PACKAGE_PIN": "U18", "IOSTANDARD": "LVCMOS33"},
        "d_p": {"IOSTANDARD": "LVDS_25"}, "a": {}, "b": {}}


@pytest.mark.parametrize("value", ["plain_1.0", "two words", "brace { open", "a}b{", "$x [y]",
                                   'quote " and ; and #', "back\\slash", "", "new\nline"])
def test_tcl_word_round_trips(value):
    tcl = tkinter.Tcl()
    tcl.setvar("v", "")
    tcl.eval(f"set v {deploy.tcl_word(value)}")
    assert tcl.getvar("v") == value
    nested = deploy.tcl_list([value, [value, 3]])
    items = tcl.splitlist(nested)
    assert str(items[0]) == value and [str(x) for x in tcl.splitlist(items[1])] == [value, "3"]


# --- Vivado, manifest, links -------------------------------------------------------------------

def test_no_vivado_on_path_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(deploy.VivadoNotFound) as info:
        deploy.find_vivado()
    assert str(info.value) == deploy.VIVADO_MISSING
    assert deploy.VIVADO_MISSING.startswith("vivado not found on PATH: source settings64.sh")
    assert deploy.main(["bitstream", "--board", "pynq-z2", "--role", "bob"]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {deploy.VIVADO_MISSING}"]


def test_no_vivado_from_the_command_line(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "tbqkd.deploy", "bitstream", "--board",
                             "pynq-z2", "--role", "bob"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: {deploy.VIVADO_MISSING}"]
    assert result.stdout == ""


def test_vivado_found_on_path(tmp_path, monkeypatch):
    fake = tmp_path / "vivado"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert deploy.find_vivado() == str(fake)
    params = tmp_path / "params.tcl"
    params.write_text("")
    with pytest.raises(deploy.DeployError, match="exit 3"):
        deploy.run_vivado(params)


_FAKE_VIVADO = """#!/bin/sh
# Test double of the vivado executable: records its arguments, writes what build.tcl would.
echo "$@" > "$(dirname "$0")/args.txt"
for last; do :; done
out=$(sed -n 's/^set tbqkd(out_dir) //p' "$last")
name=$(sed -n 's/^set tbqkd(name) //p' "$last")
echo 2023.2 > "$(dirname "$last")/tool_version.txt"
mkdir -p "$out" && printf 'bitstream' > "$out/$name.bit" && printf '<hwh/>' > "$out/$name.hwh"
"""


def test_bitstream_runs_vivado_and_writes_the_manifest(tmp_path, monkeypatch, receiver):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vivado"
    fake.write_text(_FAKE_VIVADO)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    manifest = deploy.bitstream("pynq-z2", "bob", work_dir=tmp_path / "work", out_dir=out,
                                core=receiver)
    args = (bin_dir / "args.txt").read_text().split()
    assert args[:2] == ["-mode", "batch"]
    assert args[args.index("-source") + 1] == str(deploy.BUILD_TCL)
    assert args[-2:] == ["-tclargs", str(tmp_path / "work" / "params.tcl")]
    entry = json.loads(manifest.read_text())["builds"]["tbqkd_bob"]
    assert sorted(entry["files"]) == ["tbqkd_bob.bit", "tbqkd_bob.hwh", "tbqkd_bob.regmap.json"]
    assert entry["files"]["tbqkd_bob.bit"]["sha256"] == hashlib.sha256(b"bitstream").hexdigest()
    assert entry["tool"]["version"] == "2023.2"
    regmap = json.loads((out / "tbqkd_bob.regmap.json").read_text())
    assert regmap["hash"] == receiver.regmap.hash
    assert deploy.verify_manifest(out) == []


def test_manifest(tmp_path, receiver):
    out = tmp_path / "pynq-z2"
    out.mkdir()
    bit, hwh = out / "tbqkd_bob.bit", out / "tbqkd_bob.hwh"
    bit.write_bytes(bytes(range(256)) * 10)
    hwh.write_text("<hwh/>")
    path = deploy.write_manifest(out, "tbqkd_bob", [bit, hwh], board_name="pynq-z2",
                                 role="bob", vlnv=receiver.vlnv, regmap=receiver.regmap,
                                 tool_version="2023.2", git="abc123")
    doc = json.loads(path.read_text())
    entry = doc["builds"]["tbqkd_bob"]
    assert doc["format"] == 1 and path.name == "MANIFEST.json"
    assert entry["files"]["tbqkd_bob.bit"] == {
        "sha256": hashlib.sha256(bit.read_bytes()).hexdigest(), "bytes": 2560}
    assert entry["files"]["tbqkd_bob.hwh"]["sha256"] == hashlib.sha256(b"<hwh/>").hexdigest()
    assert entry["regmap"]["hash"] == f"0x{core_regmap(TaggerConfig()).hash:08x}"
    assert entry["tool"] == {"name": "vivado", "version": "2023.2"}
    assert (entry["git_revision"], entry["vlnv"], entry["role"]) == ("abc123", ip.VLNV, "bob")
    alice = out / "tbqkd_alice.bit"
    alice.write_bytes(b"\x00")
    deploy.write_manifest(out, "tbqkd_alice", [alice], board_name="pynq-z2", role="alice",
                          vlnv="v:l:n:1", regmap=receiver.regmap, tool_version="x", git="g")
    assert set(json.loads(path.read_text())["builds"]) == {"tbqkd_alice", "tbqkd_bob"}
    assert deploy.verify_manifest(out) == []
    hwh.write_text("<hwh changed/>")
    alice.unlink()
    assert deploy.verify_manifest(out) == [
        "tbqkd_alice: tbqkd_alice.bit is missing",
        "tbqkd_bob: tbqkd_bob.hwh does not match the manifest's sha256"]
    assert deploy.main(["verify", str(out)]) == 1
    with pytest.raises(deploy.DeployError, match="does not exist"):
        deploy.write_manifest(out, "x", [out / "missing.bit"], board_name="b", role="bob",
                              vlnv="v", regmap=receiver.regmap, tool_version="t", git="g")
    (tmp_path / "outside").write_text("x")
    with pytest.raises(deploy.DeployError, match="is not in"):
        deploy.write_manifest(out, "x", [tmp_path / "outside"], board_name="b", role="bob",
                              vlnv="v", regmap=receiver.regmap, tool_version="t", git="g")


def test_git_revision_is_a_commit_or_unknown(tmp_path):
    rev = deploy.git_revision()
    assert rev == "unknown" or len(rev.removesuffix("-dirty")) == 40
    assert deploy.git_revision(tmp_path) == "unknown"
    assert deploy.vivado_version(tmp_path) == "unknown"


def test_links_fetch_and_check(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    payload = os.urandom(4096)
    (release / "tbqkd_bob.bit").write_bytes(payload)
    board_dir = tmp_path / "pynq-z2"
    board_dir.mkdir()
    link = deploy.write_link(release / "tbqkd_bob.bit", (release / "tbqkd_bob.bit").as_uri())
    shutil.move(link, board_dir / link.name)
    link = board_dir / link.name
    data = deploy.read_link(link)
    assert data["sha256"] == hashlib.sha256(payload).hexdigest()
    assert data["md5sum"] == hashlib.md5(payload).hexdigest()
    target = deploy.fetch_link(link)
    assert target == board_dir / "tbqkd_bob.bit" and target.read_bytes() == payload
    # a corrupted local copy is fetched again; a corrupted download leaves nothing behind
    target.write_bytes(b"corrupt")
    assert deploy.fetch_link(link).read_bytes() == payload
    (release / "tbqkd_bob.bit").write_bytes(payload[::-1])
    target.unlink()
    with pytest.raises(deploy.ChecksumMismatch):
        deploy.fetch_link(link)
    assert sorted(p.name for p in board_dir.iterdir()) == ["tbqkd_bob.bit.link"]
    link.write_text('{"url": "file:///x"}')
    with pytest.raises(deploy.DeployError, match="sha256"):
        deploy.read_link(link)


# --- alice: the transmitter core -------------------------------------------------------------

#: Alice's board pins: (PYNQ-Z2 master XDC: JA1-3, JB1, JA7), (ZCU104 UG1267: PMOD0 2-4, 7, 1).
ALICE_PINS = {
    "pynq-z2": {"mod_early": "Y18", "mod_late": "Y19", "mod_phase": "Y16", "reference": "W14",
                "ref_clk": "U18"},
    "zcu104": {"mod_early": "H8", "mod_late": "G7", "mod_phase": "H7", "reference": "G6",
               "ref_clk": "G8"},
}
ALICE_OUTPUTS = ("mod_early", "mod_late", "mod_phase", "reference")


@pytest.fixture(scope="module")
def transmitter() -> deploy.CoreBuild:
    return deploy.core_build("alice")


@pytest.fixture(scope="module")
def alice_builds(transmitter, tmp_path_factory) -> dict[str, tuple[Path, deploy.TclTrace]]:
    """Parameter file and dry-run trace of the transmitter on every board."""
    out = {}
    for name in deploy.BOARDS:
        work = tmp_path_factory.mktemp(f"alice-{name}")
        params, _ = deploy.write_params(name, "alice", work_dir=work / "work",
                                        out_dir=work / "out", core=transmitter)
        out[name] = (params, deploy.dry_run(params))
    return out


def _alice_pins(trace: deploy.TclTrace, command: str) -> set[str]:
    prefix = f"{ip.TX_INSTANCE_NAME}/"
    return {c[-1][len(prefix):] for c in trace.commands(command) if c[-1].startswith(prefix)}


@pytest.mark.parametrize("board", sorted(deploy.BOARDS))
def test_alice_build_passes_every_check(alice_builds, transmitter, board):
    params, trace = alice_builds[board]
    assert deploy.check_build(trace, transmitter, transmitter.verilog,
                              transmitter_regmap(RING_DEPTH)) == []
    assert trace.params["xdc"].endswith(f"{board}-alice.xdc")
    assert trace.params["name"] == "tbqkd_alice" and trace.params["top"] == TX_TOP_NAME


def test_alice_verilog_ports_and_widths(transmitter):
    ports = deploy.verilog_ports(transmitter.verilog, TX_TOP_NAME)
    assert ports == transmitter.ports
    for port in TX_STREAMS:
        assert ports[f"{port.prefix}_tdata"] == (port.direction, port.record.width)
        assert ports[f"{port.prefix}_tready"][0] == ("in" if port.direction == "out" else "out")
    assert {name: ports[name] for name in ALICE_OUTPUTS} == {n: ("out", 1) for n in ALICE_OUTPUTS}
    # the state ring is generated without an initialiser (hdl/transmitter.py)
    assert f"reg [2:0] ring [{RING_DEPTH - 1}:0];" in transmitter.verilog
    assert "ring[0] = " not in transmitter.verilog


def test_alice_connects_her_pins_streams_and_no_interrupt(alice_builds, transmitter):
    ports = deploy.verilog_ports(transmitter.verilog, TX_TOP_NAME)
    for _, trace in alice_builds.values():
        pins = _alice_pins(trace, "get_bd_pins")
        assert pins <= set(ports)
        widths = {c[-1]: int(c[c.index("-from") + 1]) + 1 if "-from" in c else 1
                  for c in trace.commands("create_bd_port")}
        assert {n for n in pins if n in widths} == set(ALICE_OUTPUTS)
        assert set(widths) == set(ALICE_OUTPUTS) | {"ref_clk"}
        assert _alice_pins(trace, "get_bd_intf_pins") == \
            {ip.AXI_LITE_PORT} | {p.prefix for p in TX_STREAMS}
        assert trace.params["irq_port"] == "" and ip.IRQ_PORT not in ports
        assert not [c for c in trace.commands("create_bd_cell") if c[-1] == "irq_concat_0"]
        cells = {c[-1]: c[c.index("-vlnv") + 1] for c in trace.commands("create_bd_cell")}
        assert cells[ip.TX_INSTANCE_NAME] == ip.TX_VLNV
        for channel in ip.TX_DMA_CHANNELS:
            side = "s2mm" if channel.receives else "mm2s"
            key = f"CONFIG.c_s_axis_{side}_tdata_width" if channel.receives else \
                f"CONFIG.c_m_axis_{side}_tdata_width"
            assert int(deploy._properties(trace, channel.dma)[key]) == 8 * channel.record_bytes


def test_alice_register_offsets_in_the_tcl_match_the_table(alice_builds):
    _, trace = alice_builds["pynq-z2"]
    table = transmitter_regmap(RING_DEPTH)
    regs = {c[-1][4:]: c for c in trace.commands("set_property")
            if len(c) == 4 and c[1] == "address_offset"}
    assert set(regs) == {r.name for r in table}
    assert all(int(regs[r.name][2], 16) == r.offset for r in table)
    assert int(regs["RING_DEPTH"][2], 16) == table["RING_DEPTH"].offset
    values = [c for c in trace.commands("set_property") if c[1:3] == ["value",
                                                                       f"0x{table.hash:08X}"]]
    assert values, "the register-table hash is not an IP parameter"
    (package,) = trace.commands("ipx::package_project")
    assert package[package.index("-vendor") + 1] == ip.IP_VENDOR
    assert trace.params["vlnv"] == ip.TX_VLNV


@pytest.mark.parametrize("board", sorted(deploy.BOARDS))
def test_alice_xdc_pins(alice_builds, board):
    _, trace = alice_builds[board]
    constrained = deploy.xdc_ports(deploy.BOARDS[board].xdc("alice").read_text())
    assert {p: c.get("PACKAGE_PIN") for p, c in constrained.items()} == ALICE_PINS[board]
    for name in ALICE_OUTPUTS:
        assert constrained[name]["IOSTANDARD"] == "LVCMOS33"
        assert constrained[name]["SLEW"] == "FAST" and constrained[name]["IOB"] == "TRUE"
    # The pulse clock takes bob's pin (the same clock-capable pin on both boards' roles).
    bob = deploy.xdc_ports(deploy.BOARDS[board].xdc("bob").read_text())
    assert constrained["ref_clk"]["PACKAGE_PIN"] == bob["ref_clk"]["PACKAGE_PIN"]
    # every constrained port is a port of the block design
    assert set(constrained) <= {c[-1] for c in trace.commands("create_bd_port")}


def test_alice_check_catches_a_broken_copy(alice_builds, transmitter, tmp_path):
    params, trace = alice_builds["pynq-z2"]
    text = Path(trace.params["xdc"]).read_text()
    xdc = tmp_path / "alice.xdc"
    xdc.write_text(text.replace("[get_ports mod_phase]", "[get_ports mod_phs]")
                   .replace("PACKAGE_PIN W14", "PACKAGE_PIN Y19"))
    regmap = transmitter.regmap
    offset = regmap["MOD_DELAY"].offset
    bad_params = params.read_text().replace(trace.params["xdc"], xdc.as_posix())
    assert f"MOD_DELAY 0x{offset:04X}" in bad_params
    bad_params = bad_params.replace(f"MOD_DELAY 0x{offset:04X}", f"MOD_DELAY 0x{offset + 4:04X}")
    bad_params = bad_params.replace("{mod_phase out 1}", "{mod_phase out 1} {mod_gate out 1}")
    assert "fifo_s_axis_random 4096" in bad_params
    bad_params = bad_params.replace("fifo_s_axis_random 4096", "fifo_s_axis_random 16")
    bad = tmp_path / "params.tcl"
    bad.write_text(bad_params)
    problems = deploy.check_build(deploy.dry_run(bad), transmitter, transmitter.verilog, regmap)
    assert f"TCL connects {ip.TX_INSTANCE_NAME}/mod_gate, which the Verilog lacks" in problems
    assert any("mod_phase has no PACKAGE_PIN" in p for p in problems)
    assert any("constrains mod_phs" in p for p in problems)
    assert any("share package pin Y19" in p for p in problems)
    assert f"register MOD_DELAY at 0x{offset + 4:04X} in the TCL, {offset:#x} in the table" \
        in problems
    assert "FIFO fifo_s_axis_random: depth 16, expected 4096" in problems
    # a Verilog without one of the modulator pins is caught against the component too
    broken = transmitter.verilog.replace("mod_late", "mod_lat")
    assert any("Verilog ports differ" in p
               for p in deploy.check_build(trace, transmitter, broken, regmap))


def test_alice_fabric_clock_is_k_times_the_pulse_rate(transmitter, tmp_path):
    """The pulse clock (75.947 MHz) on ref_clk, two fabric clocks per slot: aclk 151.894 MHz."""
    assert alice_default_mhz(transmitter) == pytest.approx(250.0)
    options = deploy.BuildOptions(ref_clk_mhz=75.947, aclk_mhz=2 * 75.947)
    params, _ = deploy.write_params("pynq-z2", "alice", options, work_dir=tmp_path,
                                    core=transmitter)
    trace = deploy.dry_run(params)
    props = deploy._properties(trace, "clock_wizard_0")
    assert float(props["CONFIG.CLKOUT1_REQUESTED_OUT_FREQ"]) == pytest.approx(151.894)
    assert float(props["CONFIG.PRIM_IN_FREQ"]) == pytest.approx(75.947)
    values = [c[2] for c in trace.commands("set_property") if c[1] == "value"]
    assert f"{1e6 / 151.894:g}" in values                   # the ACLK_PERIOD_PS IP parameter
    assert deploy.check_build(trace, transmitter, transmitter.verilog, transmitter.regmap) == []


def test_bob_fabric_clock_follows_its_configuration(receiver, tmp_path):
    with pytest.raises(deploy.DeployError, match="follows the core's clock period"):
        deploy.write_params("pynq-z2", "bob", deploy.BuildOptions(aclk_mhz=150.0),
                            work_dir=tmp_path, core=receiver)
    with pytest.raises(deploy.DeployError, match="fabric clock 900.0 MHz"):
        deploy.BuildOptions(aclk_mhz=900.0)


def alice_default_mhz(core: deploy.CoreBuild) -> float:
    params = deploy.build_params("pynq-z2", core, deploy.BuildOptions(),
                                 verilog_path=Path("x.v"), work_dir=Path("w"),
                                 out_dir=Path("o"))
    return float(params["aclk_mhz"])


def test_alice_check_from_the_command_line(tmp_path, monkeypatch, capsys):
    """`make bitstream-check ROLE=alice` (= `python -m tbqkd.deploy check --role alice`)."""
    monkeypatch.setattr(deploy, "DEFAULT_WORK_DIR", tmp_path)
    assert deploy.main(["check", "--board", "pynq-z2", "--role", "alice"]) == 0
    assert capsys.readouterr().out.strip().endswith("pynq-z2/alice: ok")
    assert (tmp_path / "pynq-z2-alice" / f"{TX_TOP_NAME}_xc7.v").is_file()


def test_a_role_without_constraints_says_which_file_to_write(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "CONSTRAINTS_DIR", tmp_path)
    with pytest.raises(deploy.DeployError, match="no constraints for alice on pynq-z2: write "
                       f"{tmp_path}/pynq-z2-alice.xdc$"):
        deploy.write_params("pynq-z2", "alice", work_dir=tmp_path)


# --- options ---------------------------------------------------------------------------------

def test_bad_options_and_names_are_refused():
    with pytest.raises(deploy.DeployError, match="clock source"):
        deploy.BuildOptions(clock_source="pll")
    with pytest.raises(deploy.DeployError, match="reference clock"):
        deploy.BuildOptions(ref_clk_mhz=5.0)
    with pytest.raises(deploy.DeployError, match="unknown board"):
        deploy.board("arty")
    with pytest.raises(deploy.DeployError, match="unknown role"):
        deploy.core_build("eve")
