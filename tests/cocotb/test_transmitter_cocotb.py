"""pytest entry point: the transmitter core (Alice) under Verilator, one pytest test per
cocotb test.

Two builds: the core alone with a 64-slot ring (every edge of the ring is reached in a few
hundred cycles) and the whole top with a 1024-slot ring behind its AXI ports. Both from
``transmitter_verilog``, the Verilog the bitstream is built from (the state ring without an
initialiser).
"""

from __future__ import annotations

import pytest
from block_runner import run_block_test
from tbqkd.hdl.transmitter import Transmitter, TransmitterTop, transmitter_verilog

CORE_TESTS = [
    "test_random_three_state",
    "test_random_underrun",
    "test_pattern_mode",
    "test_four_state",
    "test_out_of_ring",
    "test_back_to_back",
    "test_latency",
    "test_commands_in_flight",
]
CORE_DEPTH = 64
TOP_DEPTH = 1024


@pytest.mark.verilator
@pytest.mark.parametrize("testcase", CORE_TESTS)
def test_transmitter_core(testcase):
    run_block_test(f"tx_core_{CORE_DEPTH}", lambda: Transmitter(CORE_DEPTH),
                   test_module="transmitter_tests", testcase=testcase,
                   extra_env={"TBQKD_TX_DEPTH": str(CORE_DEPTH)}, convert=transmitter_verilog)


@pytest.mark.verilator
def test_transmitter_top():
    run_block_test(f"tbqkd_tx_{TOP_DEPTH}", lambda: TransmitterTop(TOP_DEPTH),
                   test_module="transmitter_tests", testcase="test_top_registers_and_link",
                   extra_env={"TBQKD_TX_DEPTH": str(TOP_DEPTH)}, convert=transmitter_verilog)
