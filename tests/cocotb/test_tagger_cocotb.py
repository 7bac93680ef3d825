"""pytest entry point: build the receiver top with Verilator and run the cocotb tests.

One build per configuration (cached under build/cocotb/), one simulator run per cocotb test, so
each shows up as its own pytest test. Waveforms only on request: ``TBQKD_WAVES=1``.
"""

from __future__ import annotations

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
    "oversampling": TaggerConfig(frontend="oversampling", word_width=8,
                                 period_num=13_167_081, period_den=3_000),
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


_BUILT: dict[str, tuple] = {}


def built(name: str):
    """Build configuration ``name`` once per worker process; return (runner, dir, config)."""
    if name not in _BUILT:
        os.environ.update({k: v for k, v in verilator_env().items()
                           if k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")})
        config = CONFIGS[name]
        verilog = verilog_for(config)
        build_dir = BUILD / f"{name}-{verilog.parent.name}"
        runner = get_runner("verilator")
        runner.build(sources=[verilog], hdl_toplevel="tbqkd_rx", build_dir=build_dir,
                     build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3",
                                 "--x-assign", "fast", "--x-initial", "fast"],
                     timescale=("1ns", "1ps"), waves=WAVES)
        _BUILT[name] = (runner, build_dir, config)
    return _BUILT[name]


def _case(config_name: str, testcase: str):
    # All tests of one configuration run in one xdist worker, which builds it once.
    return pytest.param(config_name, testcase, id=f"{config_name}-{testcase}",
                        marks=pytest.mark.xdist_group(f"cocotb_{config_name}"))


@pytest.mark.verilator
@pytest.mark.parametrize(("config_name", "testcase"),
                         [_case(c, t) for c in CONFIGS for t in TESTS])
def test_tagger(config_name, testcase):
    runner, build_dir, config = built(config_name)
    sys.path.insert(0, str(HERE))
    runner.test(hdl_toplevel="tbqkd_rx", test_module="tagger_tests", testcase=testcase,
                build_dir=build_dir, test_dir=build_dir / f"run-{testcase}",
                extra_env={"TBQKD_TAGGER_CONFIG": json.dumps(config.as_dict())},
                waves=WAVES, timescale=("1ns", "1ps"), seed=1)
