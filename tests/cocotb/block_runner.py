"""Build one Amaranth component on its own with Verilator and run a cocotb test on it.

Each block of the core (histogram, sifter, SPI DAC master, ...) has its cocotb tests run against
the block alone, with its ports as Amaranth names them in Verilog (``stream__payload``,
``stream__valid`` ...). Builds are cached under ``build/cocotb/<name>-<hash>`` by a hash of the
generated Verilog, and serialised with a file lock so that pytest-xdist workers do not compile
the same model twice. Waveforms only with ``TBQKD_WAVES=1``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog
from cocotb_tools.runner import get_runner
from tbqkd.hdl.build import write_if_changed
from tbqkd.sim.verilator import verilator_env

__all__ = ["run_block_test"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "build" / "cocotb"
WAVES = os.environ.get("TBQKD_WAVES", "") not in ("", "0")

BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
              "--x-initial", "fast", "--output-split", "5000", "--output-split-cfuncs", "500"]


def _build_dir(name: str, verilog_text: str) -> Path:
    return BUILD / f"{name}-{hashlib.sha256(verilog_text.encode()).hexdigest()[:12]}"


def _plain_verilog(component: object, name: str) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def run_block_test(name: str, make_component: Callable[[], object], *, test_module: str,
                   testcase: str, extra_env: dict[str, str] | None = None,
                   seed: int = 1,
                   convert: Callable[[object, str], str] = _plain_verilog) -> None:
    """Convert ``make_component()`` to Verilog as top ``name``, build it, run ``testcase``.

    The build is cached by the generated Verilog, so editing other gateware does not rebuild
    it. ``test_module`` is a module in ``tests/cocotb``. ``convert(component, name)`` makes the
    Verilog (the deployment's own converter where it differs from Amaranth's).
    A failing cocotb test fails the calling pytest test (the runner raises).
    """
    os.environ.update({k: v for k, v in verilator_env().items()
                       if k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")})
    text = convert(make_component(), name)
    build_dir = _build_dir(name, text)
    source = build_dir / f"{name}.v"
    runner = get_runner("verilator")
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_if_changed(source, text)
        runner.build(sources=[source], hdl_toplevel=name, build_dir=build_dir,
                     build_args=BUILD_ARGS, timescale=("1ns", "1ps"), waves=WAVES)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    runner.test(hdl_toplevel=name, test_module=test_module, testcase=testcase,
                build_dir=build_dir, test_dir=build_dir / f"run-{testcase}",
                extra_env=extra_env or {}, waves=WAVES, timescale=("1ns", "1ps"), seed=seed)
