"""pytest entry point: the sifter alone under Verilator, one pytest test per cocotb test.

Two builds: the default power-of-two store (16 384 records, address = low bits of the sequence
number) with every test, and a 10 240-record store (addresses that wrap at the depth, the
block-RAM-saving choice) with the tests that fill, wrap and empty the ring.
"""

from __future__ import annotations

import pytest
from block_runner import run_block_test
from tbqkd.hdl.sifter import Sifter

TESTS = [
    "test_random_matched_traffic",
    "test_answer_errors",
    "test_lag_limit_expiry",
    "test_lag_limit_below_prefetch",
    "test_answer_waits_behind_expired_records",
    "test_full_store_drop_count",
    "test_many_pending_late_answers",
    "test_restart_mid_traffic",
    "test_reset_mid_traffic",
]
RING_TESTS = ["test_full_store_drop_count", "test_reset_mid_traffic",
              "test_restart_mid_traffic", "test_lag_limit_below_prefetch"]
CASES = [(16384, t) for t in TESTS] + [(10240, t) for t in RING_TESTS]


@pytest.mark.verilator
@pytest.mark.parametrize(("depth", "testcase"), CASES)
def test_sifter(depth, testcase):
    run_block_test(f"sifter_{depth}", lambda: Sifter(depth), test_module="sifter_tests",
                   testcase=testcase,
                   extra_env={"TBQKD_SIFTER_DEPTH": str(depth)})
