"""When a calibration write reaches a tag: the exact cycle, in the Amaranth simulator.

A small tagger (two channels, 4-sample oversampling words) takes one hit while the host
rewrites the hit's table entry at a chosen cycle. A write in the cycle of the lookup or
before it gives the tag the new fine time, later ones the old: the lookup is
:data:`~tbqkd.hdl.tagger.CAL_LOOKUP_LATENCY` cycles after the sample word. The lookup's read
port is not transparent, so a write in the lookup's own cycle reaches the tag only through the
tagger's bypass; the last write cycle that reaches it is what this test pins.
"""

from __future__ import annotations

from amaranth.sim import Simulator
from tbqkd.hdl.config import TaggerConfig, slot_clock_constants
from tbqkd.hdl.tagger import CAL_LOOKUP_LATENCY, Tagger

CONFIG = TaggerConfig(n_channels=2, frontend="oversampling", word_width=4, fifo_depth=4)
HIT_CYCLE = 12
CODE = 1                                  # first rising sample of the hit's word
OLD_FINE, NEW_FINE = 100 << 4, 777 << 4


def _phase_sum(write_cycle: int | None) -> int:
    """The hit's phase sum (offset + fine, 1/16 ps) with the entry rewritten in
    ``write_cycle`` (counted from the cycle the hit's word is presented), or never."""
    dut = Tagger(CONFIG)
    constants = slot_clock_constants(CONFIG.period_ps, CONFIG.slot_period)
    word = ((1 << CONFIG.word_width) - 1) & ~((1 << CODE) - 1)
    sums: list[int] = []

    async def bench(ctx):
        ctx.set(dut.run, 1)
        ctx.set(dut.enable, 0b01)
        for ch in range(CONFIG.n_channels):
            ctx.set(dut.dead_time[ch], CONFIG.n_channels)
        for name in ("step_int", "step_rem", "wrap_int", "wrap_rem", "den"):
            ctx.set(getattr(dut, f"slot_{name}"), getattr(constants, name))
        ctx.set(dut.cal_channel, 0)
        ctx.set(dut.cal_code, CODE)
        for cycle in range(HIT_CYCLE + 60):
            ctx.set(dut.words[0], word if cycle == HIT_CYCLE else 0)
            first = cycle == 0
            rewrite = write_cycle is not None and cycle == HIT_CYCLE + write_cycle
            ctx.set(dut.cal_we, first or rewrite)
            ctx.set(dut.cal_fine, NEW_FINE if rewrite else OLD_FINE)
            await ctx.tick()
            if ctx.get(dut.ph_valid):
                sums.append(ctx.get(dut.ph_sum))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(sums) == 1, f"expected one tag, got {len(sums)}"
    return sums[0]


def test_a_write_reaches_the_tag_up_to_the_lookup_cycle_and_not_after():
    old = _phase_sum(None)
    got = {d: _phase_sum(d) for d in range(CAL_LOOKUP_LATENCY - 3, CAL_LOOKUP_LATENCY + 3)}
    for d, value in got.items():
        want = old + (NEW_FINE - OLD_FINE if d <= CAL_LOOKUP_LATENCY else 0)
        assert value == want, f"write {d} cycles after the word: sum {value}, want {want}"
