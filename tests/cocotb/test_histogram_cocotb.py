"""pytest entry point: build ``PhaseHistogram`` alone with Verilator and run its cocotb tests.

Two builds: the product size (5 channels × 1,024 bins × 32 bits) and a small variant with 8-bit
counts and a channel count that is not a power of two (saturation, ``bad_channel``). One
simulator run per cocotb test, so each shows up as its own pytest test.
"""

from __future__ import annotations

import json

import pytest
from block_runner import run_block_test
from tbqkd.hdl.histogram import PhaseHistogram

VARIANTS = {
    "product": {"n_channels": 5, "bins": 1024, "count_bits": 32},
    "small": {"n_channels": 3, "bins": 64, "count_bits": 8},
}

TESTS = {
    "test_random_events_match_model": ("product", "small"),
    "test_same_bin_at_every_hazard_distance": ("product", "small"),
    "test_saturation": ("small",),
    "test_offset_shift_edges": ("product", "small"),
    "test_snapshot_during_traffic": ("product", "small"),
    "test_swap_while_clearing": ("product", "small"),
    "test_reset_mid_traffic": ("product", "small"),
    "test_enable": ("small",),
}


@pytest.mark.verilator
@pytest.mark.parametrize(("variant", "testcase"),
                         [(v, t) for t, variants in TESTS.items() for v in variants])
def test_histogram(variant, testcase):
    params = VARIANTS[variant]
    run_block_test(f"histogram_{variant}", lambda: PhaseHistogram(**params),
                   test_module="histogram_tests", testcase=testcase,
                   extra_env={"TBQKD_HISTOGRAM_PARAMS": json.dumps(params)})
