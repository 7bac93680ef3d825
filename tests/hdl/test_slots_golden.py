"""The slot clock's constants and its exact model, and the slot mapper's model."""

from fractions import Fraction

import pytest
from tbqkd.hdl.config import CAL_FRAC_BITS, TaggerConfig, slot_clock_constants
from tbqkd.hdl.golden import SlotClockModel, map_to_slot
from tbqkd.hdl.records import SLOT_BITS

CLOCK = Fraction(4000)
PULSE = Fraction(10**9, 75_947)        # 75.947 MHz


def test_constants_are_exact():
    k = slot_clock_constants(CLOCK, PULSE)
    assert Fraction(k.step, k.den << CAL_FRAC_BITS) == CLOCK
    assert Fraction(k.wrap, k.den << CAL_FRAC_BITS) == PULSE
    assert 0 <= k.step_rem < k.den and 0 <= k.wrap_rem < k.den
    assert k.slot_period_ps == 13_167


@pytest.mark.parametrize("cycles", [0, 1, 3, 10**6 + 7, 9 * 10**11, 2**40 + 5])
def test_model_never_drifts(cycles):
    """After any number of cycles the slot and phase are those of the exact rational time."""
    k = slot_clock_constants(CLOCK, PULSE)
    slot, offset, rem = SlotClockModel(k).state(cycles)
    time = cycles * CLOCK
    assert slot == int(time / PULSE) % (1 << SLOT_BITS)
    phase = time - int(time / PULSE) * PULSE
    assert Fraction(offset * k.den + rem, k.den << CAL_FRAC_BITS) == phase


def test_model_from_a_preload():
    k = slot_clock_constants(CLOCK, PULSE)
    start = SlotClockModel(k).state(12_345)
    assert SlotClockModel(k, *start).state(1000) == SlotClockModel(k).state(13_345)


@pytest.mark.parametrize(("clock", "slot", "message"), [
    (Fraction(4000), Fraction(3999), "shorter than the clock"),
    (Fraction(4000), Fraction(1 << 24), "exceeds"),
    (Fraction(4000, 65_537), Fraction(10**9, 75_947 * 65_537), "denominator"),
])
def test_constants_refuse_what_the_hardware_cannot_do(clock, slot, message):
    with pytest.raises(ValueError, match=message):
        slot_clock_constants(clock, slot)


def test_config_validates_its_slot_period():
    with pytest.raises(ValueError, match="shorter"):
        TaggerConfig(slot_num=1000, slot_den=1)


def test_slot_mapper_model():
    w = 210_673                       # 13 167.06 ps in 1/16 ps
    assert map_to_slot(10, 0, w) == (10, 0)
    assert map_to_slot(10, -1, w) == (9, (w - 1) >> 4)
    assert map_to_slot(10, w, w) == (11, 0)
    assert map_to_slot(10, 2 * w + 5, w) == (12, 0)
    assert map_to_slot(10, -2 * w, w) == (8, 0)
    assert map_to_slot(0, -1, w) == ((1 << SLOT_BITS) - 1, (w - 1) >> 4)     # wraps
    assert map_to_slot(10, 3 * w, w) is None and map_to_slot(10, -2 * w - 1, w) is None
