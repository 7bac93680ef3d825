"""pytest entry point: the Classifier block alone under Verilator, one cocotb test per test."""

from __future__ import annotations

import pytest
from block_runner import run_block_test
from tbqkd.hdl.classifier import Classifier

N_CHANNELS = 5          # the product core: 4 detectors + the reference channel

TESTS = [
    "test_random_events_match_model",
    "test_window_edges",
    "test_phase_wrap_through_delay",
    "test_slot_counter_wrap",
    "test_overlapping_windows",
    "test_align_then_offsets",
    "test_lock_threshold_edges",
    "test_spread_and_mean_over_window",
    "test_reset_in_the_middle_of_traffic",
    "test_clear_counters",
]


@pytest.mark.verilator
@pytest.mark.parametrize("testcase", TESTS)
def test_classifier(testcase):
    run_block_test("classifier", lambda: Classifier(N_CHANNELS),
                   test_module="classifier_tests", testcase=testcase,
                   extra_env={"TBQKD_CLASSIFIER_CHANNELS": str(N_CHANNELS)})
