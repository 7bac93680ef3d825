"""pytest entry point: the phase error unit and the SPI DAC master, each alone under Verilator.

One build per block (cached by ``block_runner``), one simulator run per cocotb test.
"""

from __future__ import annotations

import json

import pytest
from block_runner import run_block_test

PHASE_PARAMS = {"fifo_depth": 4}
DAC_PARAMS = {"safe_value": 0x8000, "sync_high_cycles": 25}

PHASE_TESTS = [
    "test_phase_random_vs_model",
    "test_phase_window_boundaries_slots",
    "test_phase_window_boundaries_events",
    "test_phase_four_state",
    "test_phase_snapshot_irq_ack",
    "test_phase_backpressure_drops",
]
DAC_TESTS = [
    "test_dac_safe_value_after_reset",
    "test_dac_framings_and_dividers",
    "test_dac_queued_write_while_busy",
    "test_dac_timing_limits",
    "test_dac_random_vs_model",
]


def make_phase():
    from tbqkd.hdl.phase_error import PhaseErrorUnit
    return PhaseErrorUnit(**PHASE_PARAMS)


def make_dac():
    from tbqkd.hdl.spi_dac import SpiDac
    return SpiDac(**DAC_PARAMS)


@pytest.mark.verilator
@pytest.mark.parametrize("testcase", PHASE_TESTS)
def test_phase_error_unit(testcase):
    params = json.dumps(PHASE_PARAMS)
    run_block_test("phase_error", make_phase, test_module="phase_tests", testcase=testcase,
                   extra_env={"TBQKD_PHASE_PARAMS": params})


@pytest.mark.verilator
@pytest.mark.parametrize("testcase", DAC_TESTS)
def test_spi_dac(testcase):
    params = json.dumps(DAC_PARAMS)
    run_block_test("spi_dac", make_dac, test_module="phase_tests", testcase=testcase,
                   extra_env={"TBQKD_DAC_PARAMS": params})
