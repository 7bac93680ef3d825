"""`CollisionFreeFIFO` against Amaranth's `SyncFIFOBuffered`, cycle by cycle, in the Amaranth
simulator: the same ports must show the same values in every cycle under random traffic, and
`empty` (ours only) must be high exactly when the level is 0."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator
from tbqkd.hdl.tagger import CollisionFreeFIFO

_PORTS = ("w_rdy", "r_rdy", "level")


def _compare(depth: int, cycles: int, seed: int, p_write: float, p_read: float) -> int:
    """Drive both FIFOs with the same random enables and data; return the words read."""
    m = Module()
    m.submodules.ours = ours = CollisionFreeFIFO(width=16, depth=depth)
    m.submodules.reference = reference = fifo.SyncFIFOBuffered(width=16, depth=depth)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    reads = 0

    async def bench(ctx):
        nonlocal reads
        rnd = random.Random(seed)
        for cycle in range(cycles):
            w_en, r_en = rnd.random() < p_write, rnd.random() < p_read
            data = rnd.getrandbits(16)
            for dut in (ours, reference):
                ctx.set(dut.w_en, w_en)
                ctx.set(dut.w_data, data)
                ctx.set(dut.r_en, r_en)
            for port in _PORTS:
                assert ctx.get(getattr(ours, port)) == ctx.get(getattr(reference, port)), \
                    (cycle, port)
            assert ctx.get(ours.empty) == (ctx.get(reference.level) == 0), cycle
            if ctx.get(reference.r_rdy):
                assert ctx.get(ours.r_data) == ctx.get(reference.r_data), cycle
                reads += r_en
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return reads


@pytest.mark.parametrize("depth", [2, 3, 8, 16])
@pytest.mark.parametrize("p_write, p_read", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 1.0)])
def test_same_as_sync_fifo_buffered_every_cycle(depth, p_write, p_read):
    reads = _compare(depth, 3000, seed=depth * 100 + int(p_write * 10), p_write=p_write,
                     p_read=p_read)
    assert reads > 500                     # the traffic went through, not just stood still


def test_full_and_empty_in_long_runs_of_each():
    """Fill to the brim, drain to empty, many times (the flags' edge cases)."""
    assert _compare(5, 4000, seed=7, p_write=0.97, p_read=0.05) > 100
    assert _compare(5, 4000, seed=8, p_write=0.05, p_read=0.97) > 100


def test_depth_below_two_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        CollisionFreeFIFO(width=8, depth=1)
