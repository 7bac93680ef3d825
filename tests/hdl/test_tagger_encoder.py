"""The tagger's encoder and its counter-tree popcount in the Amaranth simulator, against the
golden encoder (random words, thermometer codes with bubbles, word-boundary edges).

Narrow words keep these fast; the 256-tap product encoder is checked against the golden model
under Verilator (tests/cocotb, delay-line build)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from tbqkd.hdl.golden import encode_words
from tbqkd.hdl.tagger import ENCODER_LATENCY, FirstEdgeEncoder, popcount, popcount_levels


def _run_encoder(kind: str, words: np.ndarray) -> tuple[list, list, list]:
    """Feed ``words`` (``(n, W)`` 0/1, one per cycle) and collect hit, code, extra per word."""
    n, width = words.shape
    dut = FirstEdgeEncoder(width, kind)
    values = [int("".join(str(b) for b in reversed(row)), 2) for row in words]
    out: list[tuple[int, int, int]] = []

    async def bench(ctx):
        for cycle in range(n + ENCODER_LATENCY):
            ctx.set(dut.word, values[cycle] if cycle < n else 0)
            await ctx.tick()
            if cycle >= ENCODER_LATENCY - 1 and len(out) < n:
                out.append((ctx.get(dut.hit), ctx.get(dut.code), ctx.get(dut.extra)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    hit, code, extra = zip(*out, strict=True)
    return list(hit), list(code), list(extra)


def _thermometer_words(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Delay-line words: idle (all low), hits at random taps with bubbles, and held-high words."""
    words = np.zeros((n, width), dtype=np.uint8)
    for i in range(n):
        kind = rng.integers(0, 6)
        if kind < 3:
            continue                                      # no pulse (half of the words)
        if kind == 5:
            words[i] = 1                                  # high all word (edge at boundary)
            continue
        start = int(rng.integers(0, width))
        words[i, start:] = 1
        for _ in range(int(rng.integers(0, 4))):          # bubbles near the transition
            j = int(np.clip(start + rng.integers(-3, 4), 0, width - 1))
            words[i, j] ^= 1
        words[i, -1] = 1
    return words


@pytest.mark.parametrize("width", [64, 20, 4])
def test_delay_line_encoder_matches_golden(width):
    rng = np.random.default_rng(width)
    words = _thermometer_words(rng, 60, width)
    hit, code, extra = _run_encoder("delay_line", words)
    prev_last = np.concatenate([[0], words[:-1, -1]])
    g_hit, g_code, g_extra = encode_words(words, prev_last, "delay_line")
    assert hit == g_hit.astype(int).tolist()
    assert sum(hit) > 5                                  # the stimulus has hits
    assert code == g_code.tolist()
    assert extra == g_extra.tolist()


def test_oversampling_encoder_matches_golden():
    rng = np.random.default_rng(8)
    words = (rng.random((100, 8)) < 0.4).astype(np.uint8)
    hit, code, extra = _run_encoder("oversampling", words)
    prev_last = np.concatenate([[0], words[:-1, -1]])
    g_hit, g_code, g_extra = encode_words(words, prev_last, "oversampling")
    assert hit == g_hit.astype(int).tolist()
    assert code == g_code.tolist()
    assert extra == g_extra.tolist()
    assert max(extra) >= 2


@pytest.mark.parametrize(("width", "stages"), [(64, 2), (37, 1), (37, 0), (3, 2), (1, 0)])
def test_popcount_counts_and_takes_its_stages(width, stages):
    rng = np.random.default_rng(width + stages)
    patterns = [0, (1 << width) - 1] + [int(x) for x in rng.integers(0, 2, (12, width)) @
                                         (1 << np.arange(width, dtype=object))]
    m = Module()
    bits = Signal(width)
    count = popcount(m, bits, stages=stages)
    result = Signal(len(count))
    m.d.comb += result.eq(count)
    seen = []

    async def bench(ctx):
        for cycle in range(len(patterns) + stages):
            ctx.set(bits, patterns[cycle] if cycle < len(patterns) else 0)
            if cycle >= stages:
                seen.append(ctx.get(result))
            if stages:
                await ctx.tick()
            else:
                await ctx.delay(1e-8)

    sim = Simulator(m)
    if stages:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [bin(p).count("1") for p in patterns]


def test_popcount_levels():
    assert popcount_levels(2) == 0
    assert popcount_levels(256) >= 5
    assert popcount_levels(256) <= 8
