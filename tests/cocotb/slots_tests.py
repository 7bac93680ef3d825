"""cocotb tests of the slot clock and the slot mapper against the golden model."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from tbqkd.hdl.config import SLOT_CONSTANTS_LATENCY, SlotClockConstants
from tbqkd.hdl.golden import SlotClockModel, map_to_slot
from tbqkd.hdl.records import SLOT_BITS

_clocks_started: set[str] = set()
#: The slot clock under test was built with ``held_preload`` (the preload values lead the
#: strobe by a cycle) and the cycles to wait after a constants write before ``check_from``.
HELD_PRELOAD = os.environ.get("TBQKD_SLOT_CLOCK_HELD") == "1"
PRELOAD_WAIT = SLOT_CONSTANTS_LATENCY - 1 - HELD_PRELOAD


async def reset(dut) -> None:
    if dut._name not in _clocks_started:
        cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
        _clocks_started.add(dut._name)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def check_from(dut, k: SlotClockConstants, start: tuple[int, int, int] | None,
                     cycles: int) -> None:
    """Preload ``start`` (None: compare from reset) and compare every cycle with the model.

    The held slot clock gets the preload values a cycle before the strobe, as the core's
    registers hold them; the other gets them with the strobe, as from the Verilator model's
    idle skip. The strobe comes ``SLOT_CONSTANTS_LATENCY - 1`` cycles after a constants write
    when the caller waits ``PRELOAD_WAIT`` cycles before calling.
    """
    if start is not None:
        dut.preload_slot.value, dut.preload_offset.value, dut.preload_rem.value = start
        if HELD_PRELOAD:
            await RisingEdge(dut.clk)
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
    at 2^48, and 40 random tiny ratios, every cycle's (slot, offset, rem) equals the exact
    model."""
    ratios = json.loads(os.environ["TBQKD_SLOT_CLOCKS"])
    reset_name = os.environ["TBQKD_SLOT_CLOCK_RESET"]
    rng = np.random.default_rng(5)
    names = [reset_name] + [n for n in ratios if n != reset_name]
    for index, name in enumerate(names):
        k = SlotClockConstants(**ratios[name])
        set_constants(dut, k)
        if index == 0:
            dut.preload.value = 0
            await reset(dut)
            await check_from(dut, k, None, 3000)
        # the constants are registered inside; a preload a cycle early already runs on them
        await ClockCycles(dut.clk, PRELOAD_WAIT)
        await check_from(dut, k, (int(rng.integers(0, 1 << 40)), int(rng.integers(0, k.wrap_int)),
                                  int(rng.integers(0, k.den))), 2000)
        await check_from(dut, k, ((1 << SLOT_BITS) - 3, int(rng.integers(0, k.wrap_int)),
                                  int(rng.integers(0, k.den))), 2000)
    # Tiny constants (a few units per cycle and per slot): every comparison of the clock
    # meets its threshold's whole part, with and without a borrow in the remainder.
    for _ in range(40):
        den = int(rng.integers(1, 8))
        step = int(rng.integers(1, 6 * den))
        wrap = int(rng.integers(step, 4 * step + 2))
        k = SlotClockConstants(step // den, step % den, wrap // den, wrap % den, den)
        set_constants(dut, k)
        await ClockCycles(dut.clk, PRELOAD_WAIT)
        acc = int(rng.integers(0, wrap))
        await check_from(dut, k, (int(rng.integers(0, 1 << 20)), acc // den, acc % den), 200)


def clock_state(dut) -> tuple[int, int, int]:
    return int(dut.slot.value), int(dut.offset.value), int(dut.rem.value)


def set_constants(dut, k: SlotClockConstants) -> None:
    for field in ("step_int", "step_rem", "wrap_int", "wrap_rem", "den"):
        getattr(dut, field).value = getattr(k, field)


async def change_constants(dut, k: SlotClockConstants, make_new, cycles: int):
    """Write ``make_new(k, acc)`` while the clock runs on ``k`` (``acc``: the accumulator in the
    first cycle on the new constants); check every cycle: three more on ``k``, then on the new
    constants from the state reached. Returns the new constants."""
    await ReadOnly()
    before = clock_state(dut)
    await RisingEdge(dut.clk)
    old = SlotClockModel(k, *before)
    first_new = SLOT_CONSTANTS_LATENCY + 1  # counted from `before`, the cycle before the write
    switch = old.state(first_new)
    new = make_new(k, switch[1] * k.den + switch[2])
    set_constants(dut, new)
    assert switch[1] * new.den + switch[2] < new.wrap and switch[2] < new.den
    after = SlotClockModel(new, *switch)
    for cycle in range(1, first_new + cycles):
        await ReadOnly()
        want = old.state(cycle) if cycle < first_new else after.state(cycle - first_new)
        assert clock_state(dut) == want, f"cycle {cycle} after writing {new} at {before}"
        await RisingEdge(dut.clk)
    return new


@cocotb.test()
async def test_slot_clock_follows_new_constants(dut):
    """Slot periods written while the clock runs (no preload) take effect
    SLOT_CONSTANTS_LATENCY cycles after the write; the clock goes on from the state it reached,
    every cycle as the model says:
    longer, shorter, a faster clock, then 60 random tiny ratios one after the other (a few
    units per cycle, so that the transitions meet slot boundaries)."""
    ratios = json.loads(os.environ["TBQKD_SLOT_CLOCKS"])
    k = SlotClockConstants(**ratios[os.environ["TBQKD_SLOT_CLOCK_RESET"]])
    set_constants(dut, k)
    dut.preload.value = 0
    await reset(dut)
    await ClockCycles(dut.clk, 777)
    for make_new in (lambda k, acc: replace(k, wrap_int=k.wrap_int + 4321, wrap_rem=k.den - 1),
                     lambda k, acc: replace(k, wrap_int=max(k.wrap_int - 97, acc // k.den + 1),
                                            wrap_rem=0),
                     lambda k, acc: replace(k, step_int=k.step_int + 5,
                                            step_rem=k.step_rem // 2)):
        k = await change_constants(dut, k, make_new, 500)
    rng = np.random.default_rng(8)
    den = 5
    k = SlotClockConstants(1, 3, 4, 1, den)
    set_constants(dut, k)
    await ClockCycles(dut.clk, PRELOAD_WAIT)
    await check_from(dut, k, (123, 2, 4), 20)

    def tiny(k: SlotClockConstants, acc: int) -> SlotClockConstants:
        step = int(rng.integers(1, 6 * den))
        wrap = int(rng.integers(max(step, acc + 1), max(step, acc + 1) + 3 * step + 2))
        return SlotClockConstants(step // den, step % den, wrap // den, wrap % den, den)

    for _ in range(60):
        k = await change_constants(dut, k, tiny, int(rng.integers(0, 12)))


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
