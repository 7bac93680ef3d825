"""pytest entry point: build the receiver top with Verilator and run its cocotb tests
(tagger_tests: part 1 on two configurations; core_tests: part 2).

One build per configuration (cached under build/cocotb/ by a hash of the gateware), one
simulator run per cocotb test, so each shows up as its own pytest test. Waveforms only on
request: ``TBQKD_WAVES=1``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from cocotb_tools.runner import get_runner
from tbqkd.hdl.build import verilog_for
from tbqkd.hdl.config import TaggerConfig
from tbqkd.sim.verilator import verilator_env

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent.parent / "build" / "cocotb"
WAVES = os.environ.get("TBQKD_WAVES", "") not in ("", "0")

CONFIGS = {
    # The product configuration: 4 detectors + reference, 256-tap delay line at 250 MHz.
    "delay_line": TaggerConfig(),
    # ISERDES-style 8x oversampling, with a non-integer clock period (3 x 75.947 MHz fabric).
    # Alice's slot exactly 3 clock periods here; a fractional ratio in the other build.
    "oversampling": TaggerConfig(frontend="oversampling", word_width=8,
                                 period_num=13_167_081, period_den=3_000,
                                 slot_num=13_167_081, slot_den=1_000),
}

TESTS = [
    "test_register_reset_and_access",
    "test_random_events_match_model",
    "test_word_corner_cases",
    "test_bubbles_in_thermometer_codes",
    "test_dead_time",
    "test_coarse_counter_wrap",
    "test_overflow_exact_drop_count",
    "test_backpressure_and_framing",
    "test_line_rate",
    "test_calibration_write_while_tagging",
]


def built(name: str):
    """Build configuration ``name`` (a file lock serialises pytest-xdist workers);
    return (runner, build_dir, config)."""
    os.environ.update({k: v for k, v in verilator_env().items()
                       if k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")})
    config = CONFIGS[name]
    verilog = verilog_for(config)            # keyed by a hash of the gateware sources
    # keyed by the Verilog itself: gateware edits elsewhere do not force a rebuild
    build_dir = BUILD / f"{name}-{hashlib.sha256(verilog.read_bytes()).hexdigest()[:12]}"
    runner = get_runner("verilator")
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Verilator skips identical inputs and make is incremental: after the first build in
        # any worker, this is a quick no-op that gives the runner its build state.
        runner.build(sources=[verilog], hdl_toplevel="tbqkd_rx", build_dir=build_dir,
                     build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3",
                                 "--x-assign", "fast", "--x-initial", "fast",
                                 # small C++ files: bounded compiler memory on CI
                                 "--output-split", "5000", "--output-split-cfuncs", "500"],
                     timescale=("1ns", "1ps"), waves=WAVES)
    return runner, build_dir, config


@pytest.mark.verilator
@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("testcase", TESTS)
def test_tagger(config_name, testcase):
    runner, build_dir, config = built(config_name)
    sys.path.insert(0, str(HERE))
    runner.test(hdl_toplevel="tbqkd_rx", test_module="tagger_tests", testcase=testcase,
                build_dir=build_dir, test_dir=build_dir / f"run-{testcase}",
                extra_env={"TBQKD_TAGGER_CONFIG": json.dumps(config.as_dict())},
                waves=WAVES, timescale=("1ns", "1ps"), seed=1)


CORE_TESTS = ["test_link_streams_with_backpressure", "test_reset_in_the_middle_of_traffic"]


@pytest.mark.verilator
@pytest.mark.parametrize("testcase", CORE_TESTS)
def test_core(testcase):
    """Part 2 of the top (sifting streams, reset in traffic), on the 8x oversampling build."""
    runner, build_dir, config = built("oversampling")
    sys.path.insert(0, str(HERE))
    runner.test(hdl_toplevel="tbqkd_rx", test_module="core_tests", testcase=testcase,
                build_dir=build_dir, test_dir=build_dir / f"run-{testcase}",
                extra_env={"TBQKD_TAGGER_CONFIG": json.dumps(config.as_dict())},
                waves=WAVES, timescale=("1ns", "1ps"), seed=1)
