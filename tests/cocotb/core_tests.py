"""cocotb tests of the whole receiver top (part 2), run by test_tagger_cocotb.py.

Alice is a coroutine: she reads announcements from ``m_axis_announce`` (cocotbext-axi sink with
random back-pressure) and answers each on ``s_axis_answer`` (cocotbext-axi source) with her
basis for the slot; the sifted key leaves on ``m_axis_sifted`` (sink, back-pressured). Every
record is compared with the golden models of the tagger, classifier and sifter run on the
same clicks.
"""

from __future__ import annotations

import itertools

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource
from tagger_tb import TaggerTestbench
from tbqkd.hdl.golden_classifier import ClassifierConfig, ClassifierModel
from tbqkd.hdl.golden_sifter import SifterModel
from tbqkd.hdl.records import ANNOUNCE, ANSWER, SIFTED, Role
from tbqkd.hdl.registers import PENDING_DEPTH

ROLES = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.MONITOR]
WINDOWS = {"EARLY": (1_000, 3_000), "LATE": (8_000, 3_000), "MIDDLE": (4_500, 3_000)}


class CoreTestbench(TaggerTestbench):
    def __init__(self, dut, *, seed: int = 1) -> None:
        super().__init__(dut, seed=seed)
        bus = {p: AxiStreamBus.from_prefix(dut, p)
               for p in ("m_axis_announce", "m_axis_sifted", "s_axis_answer")}
        self.announce = AxiStreamSink(bus["m_axis_announce"], dut.aclk, dut.aresetn,
                                      reset_active_level=False)
        self.sifted = AxiStreamSink(bus["m_axis_sifted"], dut.aclk, dut.aresetn,
                                    reset_active_level=False)
        self.answers = AxiStreamSource(bus["s_axis_answer"], dut.aclk, dut.aresetn,
                                       reset_active_level=False)
        for sink in (self.announce, self.sifted):
            pattern = (self.rng.random(1024) < 0.3).tolist()      # TREADY 70 % of cycles
            sink.set_pause_generator(itertools.cycle(pattern))
        self.announced: list[dict[str, int]] = []

    async def configure(self) -> ClassifierConfig:
        await self.calibrate_ideal()
        await self.write("CONTROL", run=1, tag_stream=0)
        for ch, role in enumerate(ROLES):
            await self.write(f"CH{ch}_ROLE", role=int(role))
            for name, (start, width) in WINDOWS.items():
                await self.write(f"CH{ch}_{name}_START", ps=start)
                await self.write(f"CH{ch}_{name}_WIDTH", ps=width)
        await self.write("FLUSH_CYCLES", value=32)
        n = self.config.n_channels
        return ClassifierConfig(
            n, int(self.config.slot_period), role=[int(r) for r in ROLES],
            early_start=[WINDOWS["EARLY"][0]] * n, early_width=[WINDOWS["EARLY"][1]] * n,
            late_start=[WINDOWS["LATE"][0]] * n, late_width=[WINDOWS["LATE"][1]] * n,
            middle_start=[WINDOWS["MIDDLE"][0]] * n, middle_width=[WINDOWS["MIDDLE"][1]] * n,
            ref_window_log2=8, lock_threshold=500)

    @staticmethod
    def alice_basis(slot: int) -> int:
        return ((slot * 0x9E3779B1) >> 7) & 1

    async def alice(self) -> None:
        """Answer every announcement, in order, as it arrives."""
        while True:
            frame = await self.announce.recv()
            records = ANNOUNCE.decode(bytes(frame.tdata))
            seq, slot = records["seq"], records["slot"]
            basis = np.array([self.alice_basis(int(s)) for s in slot], np.uint64)
            self.announced += [{"seq": int(q), "slot": int(s), "basis": int(b)} for q, s, b in
                               zip(seq, slot, records["basis"], strict=True)]
            data = ANSWER.encode(seq=seq, slot=slot, basis=basis,
                                 x_bit=np.zeros(len(seq), np.uint64))
            await self.answers.send(AxiStreamFrame(data))

    def sifted_records(self) -> list[tuple[int, int]]:
        data = b""
        while not self.sifted.empty():
            data += bytes(self.sifted.recv_nowait().tdata)
        got = SIFTED.decode(data)
        return list(zip(got["slot"].tolist(), got["bit"].tolist(), strict=True))

    def golden_sifter(self, words, class_config) -> SifterModel:
        tags = self.expected(words)
        classified = ClassifierModel(class_config).run(tags.slot, tags.phase, tags.channel)
        key = classified.key.astype(bool)
        model = SifterModel(PENDING_DEPTH, PENDING_DEPTH - 1)
        model.detect_many(zip(classified.slot[key].tolist(), classified.basis[key].tolist(),
                              classified.bit[key].tolist(), strict=True))
        for a in model.announce():
            model.answer(a.seq, a.slot, self.alice_basis(a.slot), 0)
        return model


async def started(dut, seed: int = 1) -> CoreTestbench:
    tb = CoreTestbench(dut, seed=seed)
    await tb.reset()
    return tb


async def link_traffic(tb: CoreTestbench, class_config, count: int):
    start = await tb.now() + 8
    t, ch = tb.random_events(start, 40 * count, count, channels=[1, 2, 3, 4])
    words = tb.frontend.words(t, ch)
    await tb.driver.drive(words)
    await ClockCycles(tb.dut.aclk, 600)
    return words


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_link_streams_with_backpressure(dut):
    """Announcements out, Alice's answers in, sifted key out, all back-pressured at random:
    every record equals the golden chain's; the counters agree."""
    tb = await started(dut, seed=3)
    class_config = await tb.configure()
    alice = cocotb.start_soon(tb.alice())
    words = await link_traffic(tb, class_config, 600)
    alice.cancel()
    model = tb.golden_sifter(words, class_config)
    assert [(a.seq, a.slot, a.basis) for a in model.announcements] == [
        (a["seq"], a["slot"], a["basis"]) for a in tb.announced]
    assert len(model.sifted) > 20
    assert tb.sifted_records() == [(k.slot, k.bit) for k in model.sifted]
    for name, value in model.counters.items():
        assert await tb.read(f"SIFT_{name.upper()}") == value, name
    assert await tb.read("SIFT_PENDING") == 0
    assert not (await tb.read("CORE_STATUS")) & tb.regmap["CORE_STATUS"].field(
        "protocol_error").mask


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_reset_in_the_middle_of_traffic(dut):
    """A reset while clicks, announcements and answers are in flight: afterwards the core
    starts clean (slot clock, sequence numbers, counters) and the next session is exact."""
    tb = await started(dut, seed=4)
    class_config = await tb.configure()
    alice = cocotb.start_soon(tb.alice())
    start = await tb.now() + 8
    t, ch = tb.random_events(start, 4000, 200, channels=[1, 2, 3, 4])
    driving = cocotb.start_soon(tb.driver.drive(tb.frontend.words(t, ch)))
    await ClockCycles(dut.aclk, 1500)
    driving.cancel()
    alice.cancel()
    await tb.reset()
    for ch in range(tb.config.n_channels):
        getattr(dut, f"ch{ch}_samples").value = 0
    tb.sifted_records()                    # whatever left before the reset
    tb.announce.clear()
    tb.announced = []
    assert await tb.read("SIFT_DETECTIONS") == 0
    assert await tb.read("CH1_EARLY_COUNT") == 0
    tb.settings = type(tb.settings).defaults(tb.config)
    class_config = await tb.configure()
    alice = cocotb.start_soon(tb.alice())
    words = await link_traffic(tb, class_config, 300)
    alice.cancel()
    model = tb.golden_sifter(words, class_config)
    assert tb.announced[0]["seq"] == 0
    assert [(a.seq, a.slot, a.basis) for a in model.announcements] == [
        (a["seq"], a["slot"], a["basis"]) for a in tb.announced]
    assert tb.sifted_records() == [(k.slot, k.bit) for k in model.sifted]
