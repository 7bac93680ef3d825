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
@pytest.mark.parametrize("held_preload", [False, True], ids=["immediate", "held"])
@pytest.mark.parametrize("testcase", ["test_slot_clock_matches_model",
                                      "test_slot_clock_follows_new_constants"])
def test_slot_clock(testcase, held_preload):
    """One build per preload mode (reset constants: the fractional ratio); every ratio driven
    at run time. ``held``: the synthesised core's slot clock, whose preload comparison is
    registered a cycle ahead; ``immediate``: the Verilator model's, for the idle skip."""
    constants = {name: slot_clock_constants(*periods).__dict__
                 for name, periods in RATIOS.items()}
    reset = slot_clock_constants(*RATIOS["fractional"])
    name = "slot_clock_held" if held_preload else "slot_clock"
    run_block_test(name, lambda: SlotClock(reset, held_preload=held_preload),
                   test_module="slots_tests",
                   testcase=testcase,
                   extra_env={"TBQKD_SLOT_CLOCKS": json.dumps(constants),
                              "TBQKD_SLOT_CLOCK_HELD": str(int(held_preload)),
                              "TBQKD_SLOT_CLOCK_RESET": "fractional"})


@pytest.mark.verilator
def test_slot_mapper():
    run_block_test("slot_mapper", SlotMapper, test_module="slots_tests",
                   testcase="test_slot_mapper_matches_model")
