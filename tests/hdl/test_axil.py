"""The register bank's read multiplexer tree (``hdl/axil.py``) in the Amaranth simulator.

The bank itself is tested through its AXI4-Lite port under Verilator (tests/cocotb) and against
the model device (tests/sim)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from tbqkd.hdl.axil import _word_mux


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
