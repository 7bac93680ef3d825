"""cocotb tests of the receiver top (tagger), run by test_tagger_cocotb.py under Verilator."""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from tagger_tb import TaggerTestbench, assert_tags_equal
from tbqkd.hdl.axil import RESP_OKAY, RESP_SLVERR
from tbqkd.sim.frontend import SampleWords

LINE_RATE_CYCLES = int(os.environ.get("TBQKD_LINE_RATE_CYCLES", "100000"))


async def started(dut, seed: int = 1) -> TaggerTestbench:
    tb = TaggerTestbench(dut, seed=seed)
    await tb.reset()
    return tb


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def test_register_reset_and_access(dut):
    """Every register's reset value and read/write behaviour; errors for bad accesses."""
    tb = await started(dut)
    regmap = tb.regmap
    for reg in regmap:
        value = await tb.read(reg.name)
        if reg.name == "ID":
            assert value == regmap.hash, f"ID {value:#x} != table hash {regmap.hash:#x}"
        elif reg.name in ("CYCLE", "TIME", "SLOT"):   # free-running counters
            assert value > 0, f"{reg.name} should be counting"
        elif reg.name == "DAC_WRITES":                # the safe value is sent after reset
            assert value == 1, "the DAC should have received its safe value once"
        elif reg.name == "CORE_STATUS":   # DAC and histogram clear may still be busy
            busy = regmap["CORE_STATUS"].field("dac_busy").mask | \
                regmap["CORE_STATUS"].field("hist_clearing").mask
            assert value & ~busy == 0, f"CORE_STATUS {value:#x}"
        else:
            assert value == reg.reset, f"{reg.name} reset {value:#x}, table says {reg.reset:#x}"
    for reg in regmap:
        if reg.access != "rw":
            continue
        mask = sum(f.mask for f in reg.fields)
        for pattern in (0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA):
            want = pattern & mask & ((1 << reg.width) - 1)
            await tb.write(reg.name, want)
            assert await tb.read(reg.name) == want, f"{reg.name} does not hold {want:#x}"
        await tb.write(reg.name, reg.reset)
    # rw registers read from a block-RAM copy that a reset does not clear: after writes and a
    # reset, each reads its reset value again, and byte writes (WSTRB) keep the other bytes.
    rw = [reg for reg in regmap if reg.access == "rw"]
    for reg in rw:
        await tb.write(reg.name, 0x5555_5555_5555_5555 & reg.field_mask)
    await tb.reset()
    for reg in rw:
        assert await tb.read(reg.name) == reg.reset, f"{reg.name} after reset"
    config = regmap["DAC_CONFIG"]                 # fields in three bytes, reset not zero
    assert config.reset & 0xFF00 and config.field_mask & 0xFF00FF
    for byte, value in ((1, 0x3C), (0, 0xA5)):    # the first write, then a later one
        before = await tb.read("DAC_CONFIG")
        await tb.axil.write(config.offset + byte, bytes([value]))
        shift = 8 * byte
        want = (before & ~(0xFF << shift) | value << shift) & config.field_mask
        assert await tb.read("DAC_CONFIG") == want, f"byte {byte} write"
    await tb.write("DAC_CONFIG", config.reset)
    # Writes to read-only registers and accesses to unmapped addresses answer SLVERR.
    write = await tb.axil.write(regmap["TAGGER_CONFIG"].offset, b"\xff\xff\xff\xff")
    assert write.resp == RESP_SLVERR
    assert await tb.read("TAGGER_CONFIG") == regmap["TAGGER_CONFIG"].reset
    unmapped = max(r.offset + r.width // 8 for r in regmap) + 0x100
    read = await tb.axil.read(unmapped, 4)
    assert read.resp == RESP_SLVERR and read.data == bytes(4)
    # An address beyond the map whose low bits name a register is not that register.
    alias = (1 << (regmap.addr_width - 1)) | regmap["VERSION"].offset
    assert (await tb.axil.read(alias, 4)).resp == RESP_SLVERR
    ok = await tb.axil.read(regmap["VERSION"].offset, 4)
    assert ok.resp == RESP_OKAY
    # A 64-bit counter read low-then-high is consistent (the low read latches the high word).
    await tb.write("PRELOAD_CYCLE", (1 << 32) - 3)
    await tb.write("COMMAND", preload_time=1)
    for _ in range(4):
        lo = int.from_bytes((await tb.axil.read(regmap["CYCLE"].offset, 4)).data, "little")
        await ClockCycles(dut.aclk, 5)
        hi = int.from_bytes((await tb.axil.read(regmap["CYCLE"].offset + 4, 4)).data, "little")
        value = hi << 32 | lo
        assert (1 << 32) - 3 <= value < (1 << 32) + 200 and (hi == 0) == (lo > 1 << 31)
    # One latch serves every 64-bit counter: a high word answers only after its own low word,
    # and another counter's low word read in between takes the latch over.
    cycle, time = regmap["CYCLE"].offset, regmap["TIME"].offset
    await tb.axil.read(cycle, 4)
    await tb.axil.read(time, 4)
    stale = await tb.axil.read(cycle + 4, 4)
    assert stale.resp == RESP_SLVERR and stale.data == bytes(4)
    for _ in range(2):                       # the latch stays until the next low-word read
        assert (await tb.axil.read(time + 4, 4)).resp == RESP_OKAY


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_random_events_match_model(dut):
    """Randomised, seeded events on every channel, with channel delays: tag by tag equal."""
    tb = await started(dut, seed=11)
    await tb.calibrate_ideal()
    for ch in range(tb.config.n_channels):
        await tb.set_channel(ch, delay_ps=int(tb.rng.integers(-5000, 5000)))
    start = await tb.now() + 20
    t, ch = tb.random_events(start, 6000, 1500)
    words = tb.frontend.words(t, ch)
    await tb.run_words(words)
    got = tb.received()
    want = tb.expected(words)
    assert len(want) > 1000
    assert_tags_equal(got, want)
    for c in range(tb.config.n_channels):
        assert await tb.read(f"CH{c}_EVENTS") == want.events[c]
        assert await tb.read(f"CH{c}_SUPPRESSED") == want.suppressed[c]
        assert await tb.read(f"CH{c}_DROPPED") == 0
    assert await tb.read("TAGS_OUT") == len(want)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def test_word_corner_cases(dut):
    """Edges on the first and last sample, at the word boundary, and two edges in one word."""
    tb = await started(dut)
    await tb.calibrate_ideal()
    w = tb.config.word_width
    start = await tb.now() + 20
    rows, cycles = [], []

    def word(*ones):
        bits = np.zeros(w, np.uint8)
        for lo, hi in ones:
            bits[lo:hi] = 1
        return bits

    cases = [
        [word((w - 1, w))],                   # edge on the last sample
        [word((0, w))],                       # edge on the first sample (boundary)
        [word((0, w)), word((0, w))],         # held high: one event only
        [word((w // 2, w))],
        [word((1, 2), (w - 2, w))],           # two edges in one word (oversampling)
        [word((0, 1))],                       # only the first sample high
    ]
    c = start
    for case in cases:
        for i, bits in enumerate(case):
            rows.append(bits)
            cycles.append(c + i)
        c += len(case) + 8                    # beyond the dead time
    words = SampleWords.from_bits(np.repeat(cycles, tb.config.n_channels),
                                  np.tile(np.arange(tb.config.n_channels), len(cycles)),
                                  np.repeat(np.array(rows), tb.config.n_channels, axis=0))
    await tb.run_words(words)
    want = tb.expected(words)
    assert len(want) >= 3 * tb.config.n_channels
    assert_tags_equal(tb.received(), want)
    assert await tb.read("CH0_SUPPRESSED") == want.suppressed[0]


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_bubbles_in_thermometer_codes(dut):
    """Bubbles near the transition do not break the delay-line encoder (ones counting)."""
    tb = await started(dut, seed=5)
    if tb.config.frontend != "delay_line":
        return
    await tb.calibrate_ideal()
    tb.frontend.bubble_probability = 0.3
    start = await tb.now() + 20
    t, ch = tb.random_events(start, 4000, 400)
    words = tb.frontend.words(t, ch, rng=np.random.default_rng(3))
    clean = tb.frontend.words(t, ch)
    assert not np.array_equal(words.lanes, clean.lanes), "no bubbles were injected"
    await tb.run_words(words)
    want = tb.expected(words)
    assert_tags_equal(tb.received(), want)
    # Ones counting keeps every timestamp within the bubble reach (in taps of at most 40 ps)
    # of the clean one, also when a bubble on the newest sample moves a hit to the next word.
    ideal = tb.expected(clean)
    assert len(ideal) == len(want)
    shift = np.abs(want.timestamp.astype(np.int64) - ideal.timestamp.astype(np.int64))
    assert shift.max() <= (tb.frontend.bubble_reach + 1) * 40


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_dead_time(dut):
    """Dense clicks with a different dead time per channel (1 and 2 cycles among them);
    suppressed counts exact."""
    tb = await started(dut, seed=7)
    await tb.calibrate_ideal()
    n = tb.config.n_channels
    for ch in range(n):
        await tb.set_channel(ch, dead_time=ch + 1 if ch < 2 else n + 3 * ch)
    start = await tb.now() + 20
    t, ch = tb.random_events(start, 3000, 900)
    words = tb.frontend.words(t, ch)
    await tb.run_words(words)
    want = tb.expected(words)
    assert want.suppressed.sum() > 20
    assert_tags_equal(tb.received(), want)
    for c in range(n):
        assert await tb.read(f"CH{c}_SUPPRESSED") == want.suppressed[c]


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_coarse_counter_wrap(dut):
    """Preload the counter and time base just below 2^64: timestamps wrap modulo 2^64."""
    tb = await started(dut, seed=9)
    await tb.calibrate_ideal()
    cycle0 = (1 << 64) - 1500
    time0 = (1 << 64) - 1500 * tb.config.period_int_ps - 777
    rem0 = tb.config.period_den - 1
    await tb.write("PRELOAD_CYCLE", cycle0)
    await tb.write("PRELOAD_TIME", time0)
    await tb.write("PRELOAD_TIME_REM", rem0)
    await tb.write("COMMAND", preload_time=1)
    start = await tb.now() + 20
    assert start > cycle0
    # Events relative to the preloaded cycle, across the wrap of both counters.
    period = float(tb.config.period_ps)
    rel = np.sort(tb.rng.uniform(50 * period, 3000 * period, 300)).astype(np.int64)
    ch = tb.rng.integers(0, tb.config.n_channels, 300)
    words = tb.frontend.words(rel, ch)
    base = start - 50 - (1 << 64)         # as int64: continuous across the wrap
    words.cycle = words.cycle + np.int64(base)
    await tb.run_words(words)
    model = tb.expected(words, cycle_offset=cycle0, time_offset_ps=time0, rem_offset=rem0)
    got = tb.received()
    assert_tags_equal(got, model)
    assert got["timestamp"].min() < 1 << 40 < got["timestamp"].max(), "no wrap happened"


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_overflow_exact_drop_count(dut):
    """Every channel firing in the same cycle at its highest rate: exact drop accounting."""
    tb = await started(dut)
    await tb.calibrate_ideal()
    n, w = tb.config.n_channels, tb.config.word_width
    for ch in range(n):
        await tb.set_channel(ch, dead_time=0)
    start = await tb.now() + 20
    cycles = 6 * tb.config.fifo_depth
    if tb.config.frontend == "oversampling":     # a rising edge at sample 0 every cycle
        pattern = [np.concatenate([np.ones(w // 2), np.zeros(w - w // 2)])]
    else:                                         # a hit every second cycle
        pattern = [np.ones(w), np.zeros(w)]
    rows = [pattern[k % len(pattern)] for k in range(cycles)]
    words = SampleWords.from_bits(np.repeat(np.arange(start, start + cycles), n),
                                  np.tile(np.arange(n), cycles), np.repeat(rows, n, axis=0))
    await tb.run_words(words, settle=n * cycles + 200)
    want = tb.expected(words)
    got = tb.received()
    total_dropped = 0
    for ch in range(n):
        events = await tb.read(f"CH{ch}_EVENTS")
        dropped = await tb.read(f"CH{ch}_DROPPED")
        expected_here = int(np.sum(want.channel == ch))
        received_here = int(np.sum(got["channel"] == ch))
        assert events == received_here, f"channel {ch}: {events} counted, {received_here} sent"
        assert events + dropped == expected_here, f"channel {ch}: {events}+{dropped} != " \
                                                  f"{expected_here}"
        total_dropped += dropped
    assert total_dropped > 0
    # What was delivered is the expected stream with whole cycles cut out, in order.
    want_keys = list(zip(want.timestamp.tolist(), want.channel.tolist(), strict=True))
    got_keys = list(zip(got["timestamp"].tolist(), got["channel"].tolist(), strict=True))
    it = iter(want_keys)
    assert all(k in it for k in got_keys), "delivered tags are not an ordered subset"
    status = await tb.read("STATUS")
    assert status == (1 << n) - 1
    await tb.write("STATUS", status)
    assert await tb.read("STATUS") == 0


@cocotb.test(timeout_time=30, timeout_unit="ms")
async def test_backpressure_and_framing(dut):
    """Random TREADY at 50 %: nothing lost, order kept; TLAST every FRAME_WORDS tags."""
    tb = await started(dut, seed=13)
    await tb.calibrate_ideal()
    await tb.write("FRAME_WORDS", 7)
    tb.set_backpressure(50)
    start = await tb.now() + 20
    t, ch = tb.random_events(start, 5000, 1200)
    words = tb.frontend.words(t, ch)
    await tb.run_words(words, settle=2000)
    got = tb.received()
    want = tb.expected(words)
    assert_tags_equal(got, want)
    lengths = got["frame_lengths"]
    assert lengths.max() <= 7 and lengths.sum() == len(want)
    assert np.sum(lengths == 7) >= len(want) // 7 - 60
    assert await tb.read("FRAMES_OUT") == len(lengths)
    assert await tb.read("TAGS_OUT") == len(want)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_line_rate(dut):
    """Every channel at its maximum rate (dead time = n_channels): aggregate one event per
    cycle for LINE_RATE_CYCLES cycles with zero loss; then back-pressured, exact drops."""
    tb = await started(dut, seed=17)
    await tb.calibrate_ideal()
    n = tb.config.n_channels
    period = float(tb.config.period_ps)

    def max_rate_words(start: int, cycles: int) -> SampleWords:
        k = np.arange(cycles // n - 2)
        times, chans = [], []
        for ch in range(n):
            fine = tb.rng.uniform(0.05, 0.95, len(k)) * period
            times.append(((start + ch + n * k) * period + fine).astype(np.int64))
            chans.append(np.full(len(k), ch))
        t, c = np.concatenate(times), np.concatenate(chans)
        order = np.argsort(t)
        return tb.frontend.words(t[order], c[order])

    start = await tb.now() + 20
    words = max_rate_words(start, LINE_RATE_CYCLES)
    await tb.run_words(words, settle=200)
    want = tb.expected(words)
    assert len(want) >= LINE_RATE_CYCLES - 3 * n - 10
    assert_tags_equal(tb.received(), want)
    for ch in range(n):
        assert await tb.read(f"CH{ch}_DROPPED") == 0
    # Beyond the bound (output ready 70 % of cycles): drops happen and are counted exactly.
    await tb.write("COMMAND", clear_counters=1)
    tb.set_backpressure(70)
    start = await tb.now() + 20
    words = max_rate_words(start, 20 * tb.config.fifo_depth)
    await tb.run_words(words, settle=4000)
    want = tb.expected(words)
    got = tb.received()
    dropped = sum([await tb.read(f"CH{ch}_DROPPED") for ch in range(n)])
    assert dropped > 0
    assert len(got["timestamp"]) + dropped == len(want)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_calibration_write_while_tagging(dut):
    """Rewriting a calibration table mid-stream: each tag uses the old or the new entry."""
    tb = await started(dut, seed=19)
    old = await tb.calibrate_ideal()
    new = old + 16 * 37                                   # shift every code by 37 ps
    start = await tb.now() + 20
    t, ch = tb.random_events(start, 8000, 1600, channels=[0])
    words = tb.frontend.words(t, ch)
    driver = cocotb.start_soon(tb.driver.drive(words))
    await ClockCycles(dut.aclk, 2000)
    write_start = await tb.now()
    await tb.write_calibration(0, new)
    write_end = await tb.now()
    await driver
    await tb.write("COMMAND", flush=1)
    await ClockCycles(dut.aclk, 64)
    got = tb.received()
    tb.settings.calibration[0, :len(old)] = old
    before = tb.expected(words)
    tb.settings.calibration[0, :len(new)] = new
    after = tb.expected(words)
    assert len(got["timestamp"]) == len(before)
    g = got["timestamp"].astype(np.int64)
    is_old = g == before.timestamp.astype(np.int64)
    is_new = g == after.timestamp.astype(np.int64)
    assert np.all(is_old | is_new), "a tag matches neither the old nor the new table"
    assert np.all(is_old[before.cycle < write_start])
    assert np.all(is_new[before.cycle > write_end + 8])
    await RisingEdge(dut.aclk)
