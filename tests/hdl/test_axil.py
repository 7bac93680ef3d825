"""The register bank (``hdl/axil.py``) in the Amaranth simulator: its read multiplexer tree,
and the block-RAM copy its rw registers answer from.

The bank itself is tested through its AXI4-Lite port under Verilator (tests/cocotb) and against
the model device (tests/sim)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.sim import Simulator
from tbqkd.hdl.axil import RESP_OKAY, RegisterBank, _word_mux
from tbqkd.hdl.regmap import Field, RegisterMap


def _evaluate(words: dict, select_width: int, exact: bool) -> list[int]:
    """``_word_mux`` of ``words`` (ints, one leaf a signal held at 0xAB) for every select."""
    select = Signal(select_width)
    leaf = Signal(8)
    leaves = {i: (leaf if v is None else v) for i, v in words.items()}
    out = Signal(8)
    tree = _word_mux(select, leaves, 8, exact=exact)
    m = Module()
    m.d.comb += out.eq(tree)
    results = []

    async def bench(ctx):
        ctx.set(leaf, 0xAB)
        for value in range(1 << select_width):
            ctx.set(select, value)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("seed", range(4))
def test_word_mux_selects_each_word(seed):
    rng = np.random.default_rng(seed)
    keys = sorted(rng.choice(48, size=int(rng.integers(1, 20)), replace=False).tolist())
    words = {k: int(rng.integers(1, 256)) for k in keys}
    words[keys[len(keys) // 2]] = None                    # one leaf is a signal
    want = {k: (0xAB if v is None else v) for k, v in words.items()}
    exact = _evaluate(words, 7, exact=True)
    # Exact: the word at every key, zero everywhere else (also above the highest key, where
    # the low bits of the select alias a key).
    assert exact == [want.get(i, 0) for i in range(128)]
    # Not exact: the word at every key; elsewhere anything.
    loose = _evaluate(words, 7, exact=False)
    assert [loose[k] for k in keys] == [want[k] for k in keys]


def test_word_mux_edge_cases():
    assert _evaluate({}, 3, exact=True) == [0] * 8
    assert _evaluate({0: 5}, 3, exact=True) == [5] + [0] * 7
    assert _evaluate({0: 5}, 3, exact=False)[0] == 5
    with pytest.raises(ValueError, match="beyond"):
        _evaluate({9: 1}, 3, exact=True)


PERIOD = 1e-8


def _small_map() -> RegisterMap:
    regs = RegisterMap.Builder(addr_width=8)
    regs.add("MODE", "rw", "three fields in three bytes, reset not zero", fields=[
        Field("a", 0, 6, reset=0x21), Field("b", 8, 4, reset=0x5), Field("c", 16, 9)])
    regs.add("LEVEL", "rw", "one field", fields=[Field("level", 4, 12, reset=0x123)])
    regs.add("WIDE", "rw", "64-bit", width=64, fields=[Field("value", 0, 40, reset=7)])
    regs.add("COUNT", "ro", "a counter", width=64)
    return regs.build()


def _run_bank(regmap: RegisterMap, script) -> None:
    """Run ``script(ops)`` against a RegisterBank of ``regmap`` in the Amaranth simulator;
    ``ops`` has ``write(offset, data, strobes)``, ``read(offset) -> (data, resp)`` and
    ``reset()``."""
    bank = RegisterBank(regmap)
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.bank = bank
    m.d.comb += bank.value["COUNT"].eq(0x1_2345_6789)
    bus = bank.bus

    class Ops:
        def __init__(self, ctx):
            self.ctx = ctx

        def value(self, name: str) -> int:
            """What the bank drives into the core."""
            return self.ctx.get(bank.value[name])

        async def write(self, offset: int, data: int, strobes: int = 0b1111) -> int:
            ctx = self.ctx
            ctx.set(bus.awaddr, offset)
            ctx.set(bus.wdata, data)
            ctx.set(bus.wstrb, strobes)
            ctx.set(bus.awvalid, 1)
            ctx.set(bus.wvalid, 1)
            ctx.set(bus.bready, 1)
            await ctx.tick().until(bus.awready)
            ctx.set(bus.awvalid, 0)
            ctx.set(bus.wvalid, 0)
            await ctx.tick().until(bus.bvalid)
            return ctx.get(bus.bresp)

        async def read(self, offset: int) -> tuple[int, int]:
            ctx = self.ctx
            ctx.set(bus.araddr, offset)
            ctx.set(bus.arvalid, 1)
            ctx.set(bus.rready, 0)
            await ctx.tick().until(bus.arready)
            ctx.set(bus.arvalid, 0)
            ctx.set(bus.araddr, offset ^ 4)          # free to change once AR is accepted
            await ctx.tick().until(bus.rvalid)
            await ctx.tick().repeat(3)            # R held: the answer must stay put
            data, resp = ctx.get(bus.rdata), ctx.get(bus.rresp)
            ctx.set(bus.rready, 1)
            await ctx.tick()
            ctx.set(bus.rready, 0)
            return data, resp

        async def reset(self) -> None:
            self.ctx.set(sync.rst, 1)
            await self.ctx.delay(3 * PERIOD)         # ticks raise DomainReset meanwhile
            self.ctx.set(sync.rst, 0)
            await self.ctx.tick()

    async def bench(ctx):
        await script(Ops(ctx))

    sim = Simulator(m)
    sim.add_clock(PERIOD)
    sim.add_testbench(bench)
    sim.run()


def test_bank_rw_registers_read_back_reset_and_byte_writes():
    """The rw words answer from the bank's block-RAM copy: written values (masked to the
    fields), reset values after a reset that follows writes, and byte writes that keep the
    other bytes (also the first write after a reset)."""
    regmap = _small_map()
    mode, level, wide = regmap["MODE"], regmap["LEVEL"], regmap["WIDE"]

    async def script(ops):
        for reg in (mode, level, wide):
            for w in range(reg.words):
                want = (reg.reset >> 32 * w) & 0xFFFF_FFFF
                assert await ops.read(reg.offset + 4 * w) == (want, RESP_OKAY), reg.name
        assert await ops.write(mode.offset, 0xFFFF_FFFF) == RESP_OKAY
        assert (await ops.read(mode.offset))[0] == mode.field_mask
        assert await ops.write(wide.offset + 4, 0xFFFF_FFFF) == RESP_OKAY
        assert (await ops.read(wide.offset + 4))[0] == wide.field_mask >> 32
        await ops.write(level.offset, 0xFFFF_FFFF)
        await ops.reset()
        for reg in (mode, level, wide):
            for w in range(reg.words):
                want = (reg.reset >> 32 * w) & 0xFFFF_FFFF
                assert (await ops.read(reg.offset + 4 * w))[0] == want, f"{reg.name} reset"
        # A first write with no strobe set stores nothing, and the word keeps its reset value
        # (the copy still holds what was written before the reset).
        assert await ops.write(level.offset, 0xFFFF_FFFF, strobes=0) == RESP_OKAY
        assert (await ops.read(level.offset))[0] == level.reset
        # First write after reset, byte 2 only: bytes 0 and 1 keep their reset values.
        await ops.write(mode.offset, 0x01AB_0000, strobes=0b0100)
        assert (await ops.read(mode.offset))[0] == (mode.reset | 0xAB_0000) & mode.field_mask
        # A later write, byte 0 only.
        await ops.write(mode.offset, 0x0000_0013, strobes=0b0001)
        want = (mode.reset & ~0xFF | 0xAB_0013) & mode.field_mask
        assert (await ops.read(mode.offset))[0] == want
        assert ops.value("MODE") == want
        # A 64-bit ro register beside them still answers from the fabric.
        assert await ops.read(regmap["COUNT"].offset) == (0x2345_6789, RESP_OKAY)
        assert await ops.read(regmap["COUNT"].offset + 4) == (1, RESP_OKAY)

    _run_bank(regmap, script)


def test_bank_value_leads_a_later_strobe_by_a_cycle():
    """A value written before a command strobe is on its port at least one cycle before the
    strobe, however fast the manager issues the two writes (the write channel takes one write
    per two cycles). The synthesised slot clock relies on it: it compares the PRELOAD_SLOT_*
    values a cycle ahead of COMMAND.preload_time (``SlotClock(held_preload=True)``)."""
    regs = RegisterMap.Builder(addr_width=8)
    regs.add("LEVEL", "rw", "a value", fields=[Field("level", 0, 16)])
    regs.add("GO", "wp", "a command", fields=[Field("go", 0, 1)])
    regs.add("COUNT", "ro", "a counter", width=64)
    regmap = regs.build()
    bank = RegisterBank(regmap)
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.bank = bank
    m.d.comb += bank.value["COUNT"].eq(0)
    bus = bank.bus
    trace: list[tuple[int, int]] = []

    async def bench(ctx):
        ctx.set(bus.bready, 1)
        ctx.set(bus.wstrb, 0b1111)
        for value in (0x1234, 0xBEEF, 0x0042):
            for offset, data in ((regmap["LEVEL"].offset, value), (regmap["GO"].offset, 1)):
                ctx.set(bus.awaddr, offset)
                ctx.set(bus.wdata, data)
                ctx.set(bus.awvalid, 1)
                ctx.set(bus.wvalid, 1)
                await ctx.tick().until(bus.awready)     # the next write right after
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick().repeat(4)

    async def monitor(ctx):
        async for _, _, level, go in ctx.tick().sample(bank.value["LEVEL"], bank.strobe["GO"]):
            trace.append((level, go))

    sim = Simulator(m)
    sim.add_clock(PERIOD)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run_until(200 * PERIOD)
    strobes = [i for i, (_, go) in enumerate(trace) if go]
    assert len(strobes) == 3
    for i, value in zip(strobes, (0x1234, 0xBEEF, 0x0042), strict=True):
        assert trace[i][0] == value and trace[i - 1][0] == value, trace[i - 2:i + 1]
