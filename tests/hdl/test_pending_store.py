"""`PendingStore` (the sifter's store, built from narrow memories) against one plain memory of
the whole record, cycle by cycle in the Amaranth simulator: random writes and reads on both
read ports (never the address written in the same cycle, as in the sifter) give the same data
in every cycle, for slice widths that divide the record and that do not. Its Verilog carries
no initialiser."""

import gc
import random
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import memory
from amaranth.sim import Simulator
from tbqkd.hdl.sifter import PENDING_ENTRY, PendingStore, Sifter
from tbqkd.hdl.uninitialised import PENDING_STORE_MEMORIES, verilog_without_initialisers


def _compare(depth: int, slice_bits: int, cycles: int, seed: int) -> int:
    m = Module()
    m.submodules.store = store = PendingStore(depth, slice_bits=slice_bits)
    m.submodules.reference = reference = memory.Memory(shape=PENDING_ENTRY.size, depth=depth,
                                                       init=[])
    ref_w = reference.write_port()
    ref_r = [reference.read_port() for _ in range(2)]
    sim = Simulator(m)
    sim.add_clock(1e-8)
    checked = 0

    async def bench(ctx):
        nonlocal checked
        rnd = random.Random(seed)
        for _ in range(cycles):
            w_addr, w_en = rnd.randrange(depth), rnd.random() < 0.7
            data = rnd.getrandbits(PENDING_ENTRY.size)
            for addr, en, data_in in ((store.write.addr, store.write.en,
                                       store.write.data.as_value()),
                                      (ref_w.addr, ref_w.en, ref_w.data)):
                ctx.set(addr, w_addr)
                ctx.set(en, w_en)
                ctx.set(data_in, data)
            for ours, theirs in zip(store.read, ref_r, strict=True):
                r_addr = rnd.choice([a for a in range(depth) if a != w_addr or not w_en])
                r_en = rnd.random() < 0.8
                for port in (ours, theirs):
                    ctx.set(port.addr, r_addr)
                    ctx.set(port.en, r_en)
            await ctx.tick()
            for ours, theirs in zip(store.read, ref_r, strict=True):
                assert ctx.get(ours.data.as_value()) == ctx.get(theirs.data)
                checked += 1

    sim.add_testbench(bench)
    sim.run()
    return checked


@pytest.mark.parametrize("slice_bits", [1, 2, 7, 50])
def test_same_data_as_one_memory_every_cycle(slice_bits):
    assert _compare(16, slice_bits, 600, seed=slice_bits) == 1200


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_one_memory_per_slice_each_free_of_read_write_checks():
    elaborated = PendingStore(64, slice_bits=2).elaborate(None)
    slices = [elaborated.submodules[f"pending_slice{i}"] for i in range(25)]
    assert all(isinstance(sub, memory.Memory) for sub in slices)
    with pytest.raises(AttributeError):
        elaborated.submodules["pending_slice25"]
    assert all(sub.attrs == {"no_rw_check": 1} for sub in slices)
    assert [sub.shape for sub in slices] == [2] * 25
    del elaborated, slices
    gc.collect()          # their "never used" warnings, inside this test's filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_slice_width_must_be_positive():
    with pytest.raises(ValueError, match="slice_bits=0"):
        PendingStore(16, slice_bits=0)
    gc.collect()          # the refused store's "never used" warning, inside this filter


def test_verilog_leaves_only_the_store_uninitialised():
    """The store's slices lose their initialisers (never read before written); the sifter's
    other memories (its FIFOs) keep theirs, and nothing else changes."""
    plain = verilog.convert(Sifter(64, counters=False), name="sifter", emit_src=False)
    text, removed = verilog_without_initialisers(Sifter(64, counters=False), "sifter",
                                                 PENDING_STORE_MEMORIES)
    store_init = re.compile(r"^\s*pending_slice\d+\[\d+\] = ", re.M)
    assert removed == 25
    assert len(store_init.findall(plain)) == 25 * 64
    assert store_init.findall(text) == []
    assert "storage[0] = " in text
    assert "reg [1:0] pending_slice24 [63:0];" in text
    kept = "\n".join(line for line in plain.splitlines() if not store_init.match(line))
    assert re.sub(r"\n  initial begin\n  end", "", kept).strip() == text.strip()
