"""pytest entry point: the slot clock and the slot mapper alone under Verilator."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from block_runner import run_block_test
from tbqkd.hdl.config import slot_clock_constants
from tbqkd.hdl.slots import SlotClock, SlotMapper

# (clock period, slot period) in ps: the ratio edge cases
RATIOS = {
    "equal": (Fraction(4000), Fraction(4000)),                     # one slot per cycle
    "integer": (Fraction(13_167_081, 3000), Fraction(13_167_081, 1000)),   # exactly 3
    "fractional": (Fraction(4000), Fraction(10**9, 75_947)),        # 75.947 MHz at 250 MHz
    "nearly_one": (Fraction(4000), Fraction(4001 * 65_521 - 1, 65_521)),  # just above 1
}


@pytest.mark.verilator
@pytest.mark.parametrize("ratio", list(RATIOS))
def test_slot_clock(ratio):
    clock, slot = RATIOS[ratio]
    k = slot_clock_constants(clock, slot)
    run_block_test("slot_clock", lambda: SlotClock(k), test_module="slots_tests",
                   testcase="test_slot_clock_matches_model",
                   extra_env={"TBQKD_SLOT_CLOCK": json.dumps(k.__dict__)})


@pytest.mark.verilator
def test_slot_mapper():
    run_block_test("slot_mapper", SlotMapper, test_module="slots_tests",
                   testcase="test_slot_mapper_matches_model")
