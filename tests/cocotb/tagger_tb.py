"""Testbench parts for the receiver top under cocotb (not collected by pytest).

``TaggerTestbench`` assembles the cocotbext-axi AXI4-Lite master and AXI4-Stream sink, a sample
word driver fed by the front-end model, and the golden model. The configuration comes from the
``TBQKD_TAGGER_CONFIG`` environment variable (JSON of :class:`TaggerConfig`), set by the pytest
runner that built this simulation.
"""

from __future__ import annotations

import itertools
import json
import logging
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden import TaggerModel, TaggerSettings, ideal_calibration
from tbqkd.hdl.records import TAG
from tbqkd.hdl.registers import core_regmap
from tbqkd.sim.frontend import SampleWords, make_frontend

CLOCK_NS = 4


def load_config() -> TaggerConfig:
    return TaggerConfig(**json.loads(os.environ["TBQKD_TAGGER_CONFIG"]))


class SampleDriver:
    """Drives each channel's sample word in the cycle the words are scheduled for.

    The schedule is a :class:`SampleWords`; cycle numbers are the core's coarse counter. The
    driver writes right after a rising edge, where ``time_cycle`` still reads the value it had
    before that edge; the word is captured at the next edge, when the counter is one more.
    """

    def __init__(self, dut, n_channels: int) -> None:
        self._dut = dut
        self._ports = [getattr(dut, f"ch{ch}_samples") for ch in range(n_channels)]
        self.applied: list[tuple[int, int, int]] = []

    async def drive(self, words: SampleWords) -> None:
        dut = self._dut
        if len(words) == 0:
            return
        values = [int.from_bytes(row.astype("<u8").tobytes(), "little") for row in words.lanes]
        schedule: dict[int, list[tuple[int, int]]] = {}
        for cyc, ch, val in zip(words.cycle.tolist(), words.channel.tolist(), values,
                                strict=True):
            schedule.setdefault(cyc % (1 << 64), []).append((ch, val))
        # int64 cycle numbers are continuous across the counter's wrap at 2^64
        span = int(words.cycle[-1]) - int(words.cycle[0]) + 4
        live: set[int] = set()
        waited = 0
        while schedule or live:
            await RisingEdge(dut.aclk)
            now = (int(dut.time_cycle.value) + 1) % (1 << 64)   # counter at the capturing edge
            for ch in live:
                self._ports[ch].value = 0
            live = set()
            for ch, val in schedule.pop(now, ()):
                self._ports[ch].value = val
                live.add(ch)
            waited += 1
            if schedule and waited > span + 64:
                raise AssertionError(f"{len(schedule)} scheduled cycles were missed")


class TaggerTestbench:
    def __init__(self, dut, *, seed: int = 1) -> None:
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.config = load_config()
        self.regmap = core_regmap(self.config)
        self.rng = np.random.default_rng(seed)
        Clock(dut.aclk, CLOCK_NS, unit="ns").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.driver = SampleDriver(dut, self.config.n_channels)
        logging.getLogger(f"cocotb.{dut._name}").setLevel(logging.WARNING)  # per-frame logs
        self.frontend = make_frontend(self.config.frontend, self.config.word_width,
                                      self.config.period_ps, seed=seed)
        self.settings = TaggerSettings.defaults(self.config)

    # --- setup ------------------------------------------------------------------------------
    async def reset(self) -> None:
        dut = self.dut
        dut.aresetn.value = 0
        for ch in range(self.config.n_channels):
            getattr(dut, f"ch{ch}_samples").value = 0
        await ClockCycles(dut.aclk, 4)
        dut.aresetn.value = 1
        await ClockCycles(dut.aclk, 2)

    def set_backpressure(self, duty_percent: int | None) -> None:
        """TREADY high ``duty_percent`` % of cycles (seeded pattern), or always (None)."""
        if duty_percent is None:
            self.sink.set_pause_generator(None)
            return
        pattern = (self.rng.random(4096) * 100 >= duty_percent).tolist()
        self.sink.set_pause_generator(itertools.cycle(pattern))

    # --- registers --------------------------------------------------------------------------
    async def read(self, name: str) -> int:
        reg = self.regmap[name]
        data = await self.axil.read(reg.offset, reg.width // 8)
        return int.from_bytes(data.data, "little")

    async def read32_resp(self, offset: int):
        return await self.axil.read(offset, 4)

    async def write(self, name: str, value: int | None = None, **fields: int) -> None:
        reg = self.regmap[name]
        if value is None:
            value = reg.encode(**fields)
        await self.axil.write(reg.offset, value.to_bytes(reg.width // 8, "little"))

    async def write_calibration(self, channel: int, entries: np.ndarray) -> None:
        await self.write("CAL_ADDR", code=0, channel=channel)
        offset = self.regmap["CAL_DATA"].offset
        for value in entries:
            await self.axil.write(offset, int(value).to_bytes(4, "little"))
        self.settings.calibration[channel, :len(entries)] = entries

    async def calibrate_ideal(self) -> np.ndarray:
        entries = ideal_calibration(self.frontend.ideal_fine_ps())
        for ch in range(self.config.n_channels):
            await self.write_calibration(ch, entries)
        return entries

    async def set_channel(self, ch: int, *, delay_ps: int | None = None,
                          dead_time: int | None = None, enable: bool | None = None) -> None:
        if delay_ps is not None:
            await self.write(f"CH{ch}_DELAY", ps=delay_ps)
            self.settings.delay_ps[ch] = delay_ps
        if dead_time is not None:
            await self.write(f"CH{ch}_DEAD_TIME", cycles=dead_time)
            self.settings.dead_time[ch] = dead_time
        if enable is not None:
            await self.write(f"CH{ch}_CONTROL", enable=int(enable))
            self.settings.enable[ch] = enable

    # --- stimulus and checking --------------------------------------------------------------
    async def now(self) -> int:
        """The coarse counter at the next capturing edge."""
        await RisingEdge(self.dut.aclk)
        return int(self.dut.time_cycle.value) + 1

    def random_events(self, start_cycle: int, cycles: int, count: int,
                      channels: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        period = float(self.config.period_ps)
        t = np.sort(self.rng.uniform(start_cycle * period, (start_cycle + cycles) * period,
                                     count)).astype(np.int64)
        chans = np.asarray(channels if channels is not None else
                           range(self.config.n_channels))
        return t, self.rng.choice(chans, count)

    async def run_words(self, words: SampleWords, *, settle: int | None = None) -> None:
        """Drive ``words``, then flush the framer and wait for the tags to leave."""
        await self.driver.drive(words)
        await self.write("COMMAND", flush=1)
        await ClockCycles(self.dut.aclk, settle or 64)

    def received(self) -> dict[str, np.ndarray]:
        """Tags received so far (all frames), and the frame lengths."""
        frames = []
        while not self.sink.empty():
            frames.append(self.sink.recv_nowait())
        data = b"".join(bytes(f.tdata) for f in frames)
        tags = TAG.decode(data)
        tags["frame_lengths"] = np.array([len(f.tdata) // 16 for f in frames])
        return tags

    def expected(self, words: SampleWords, **offsets) -> object:
        return TaggerModel(self.config, self.settings, **offsets).run(words)


def assert_tags_equal(got: dict[str, np.ndarray], want) -> None:
    n_got, n_want = len(got["timestamp"]), len(want.timestamp)
    if n_got != n_want:
        g = set(zip(got["timestamp"].tolist(), got["channel"].tolist(), strict=True))
        w = list(zip(want.timestamp.tolist(), want.channel.tolist(), want.cycle.tolist(),
                     strict=True))
        missing = [x for x in w if x[:2] not in g][:5]
        extra = sorted(g - {x[:2] for x in w})[:5]
        raise AssertionError(f"{n_got} tags received, {n_want} expected; missing (ts, ch, "
                             f"cycle) {missing}, unexpected {extra}; expected cycles "
                             f"{w[0][2]}..{w[-1][2]}")
    for i in range(n_want):
        g = (int(got["timestamp"][i]), int(got["channel"][i]), int(got["code"][i]))
        w = (int(want.timestamp[i]), int(want.channel[i]), int(want.code[i]))
        assert g == w, f"tag {i}: got (ts, ch, code) {g}, expected {w}"


def start_soon(coro):
    return cocotb.start_soon(coro)
