"""cocotb tests of the slot clock and the slot mapper against the golden model."""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from tbqkd.hdl.config import SlotClockConstants
from tbqkd.hdl.golden import SlotClockModel, map_to_slot
from tbqkd.hdl.records import SLOT_BITS

_clocks_started: set[str] = set()


async def reset(dut) -> None:
    if dut._name not in _clocks_started:
        cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
        _clocks_started.add(dut._name)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def check_from(dut, k: SlotClockConstants, start: tuple[int, int, int] | None,
                     cycles: int) -> None:
    """Preload ``start`` (None: compare from reset) and compare every cycle with the model."""
    if start is not None:
        dut.preload_slot.value, dut.preload_offset.value, dut.preload_rem.value = start
        dut.preload.value = 1
        await RisingEdge(dut.clk)
        dut.preload.value = 0
    first = start or (0, 0, 0)
    model = SlotClockModel(k, *first)
    wrapped = False
    for cycle in range(cycles):
        await ReadOnly()
        got = (int(dut.slot.value), int(dut.offset.value), int(dut.rem.value))
        want = model.state(cycle)
        assert got == want, f"cycle {cycle} from {first}: {got} != {want}"
        wrapped |= got[0] < first[0]
        await RisingEdge(dut.clk)
    if first[0] > (1 << SLOT_BITS) - 100:
        assert wrapped, "the slot counter should have wrapped"


@cocotb.test()
async def test_slot_clock_matches_model(dut):
    """Each ratio (one slot per cycle, exactly 3, fractional, just above 1): out of reset (the
    build's own constants) and after preloads, one of them just below the slot counter's wrap
    at 2^48, every cycle's (slot, offset, rem) equals the exact model."""
    ratios = json.loads(os.environ["TBQKD_SLOT_CLOCKS"])
    reset_name = os.environ["TBQKD_SLOT_CLOCK_RESET"]
    rng = np.random.default_rng(5)
    names = [reset_name] + [n for n in ratios if n != reset_name]
    for index, name in enumerate(names):
        k = SlotClockConstants(**ratios[name])
        for field in ("step_int", "step_rem", "wrap_int", "wrap_rem", "den"):
            getattr(dut, field).value = getattr(k, field)
        if index == 0:
            dut.preload.value = 0
            await reset(dut)
            await check_from(dut, k, None, 3000)
        await ClockCycles(dut.clk, 2)          # the constants are registered inside
        await check_from(dut, k, (int(rng.integers(0, 1 << 40)), int(rng.integers(0, k.wrap_int)),
                                  int(rng.integers(0, k.den))), 2000)
        await check_from(dut, k, ((1 << SLOT_BITS) - 3, int(rng.integers(0, k.wrap_int)),
                                  int(rng.integers(0, k.den))), 2000)


@cocotb.test()
async def test_slot_mapper_matches_model(dut):
    """Random sums around the slot (including beyond two periods: range errors) map as the
    model says, one per cycle."""
    wrap_int = 210_673
    dut.wrap_int.value = wrap_int
    dut.i_valid.value = 0
    await reset(dut)
    rng = np.random.default_rng(6)
    n = 3000
    slots = rng.integers(0, 1 << SLOT_BITS, n)
    slots[:4] = [0, 0, (1 << SLOT_BITS) - 1, (1 << SLOT_BITS) - 1]
    sums = rng.integers(-3 * wrap_int, 4 * wrap_int, n)
    sums[:4] = [-1, -2 * wrap_int, wrap_int, 3 * wrap_int - 1]
    edges = [0, wrap_int - 1, wrap_int, -wrap_int, 2 * wrap_int - 1, -2 * wrap_int - 1]
    sums[4:4 + len(edges)] = edges
    want = [map_to_slot(int(s), int(x), wrap_int) for s, x in zip(slots, sums, strict=True)]
    got = []

    async def collect():
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.o_valid.value):
                got.append((int(dut.o_slot.value), int(dut.o_phase.value)))
            elif int(dut.range_error.value):
                got.append(None)

    cocotb.start_soon(collect())
    for s, x in zip(slots, sums, strict=True):
        dut.i_valid.value, dut.i_slot.value, dut.i_sum.value = 1, int(s), int(x)
        dut.i_channel.value = 3
        await RisingEdge(dut.clk)
    dut.i_valid.value = 0
    await ClockCycles(dut.clk, 6)
    assert got == want
    assert None in want and sum(w is None for w in want) < n / 2
