"""The PYNQ backend without a board: mock MMIO and DMA that record every transaction.

The mocks follow pynq's semantics (``MMIO.read/write`` on 32-bit aligned offsets; a simple-mode
AXI DMA channel whose S2MM transfer ends at TLAST or when its length is used up, with the
moved length known after ``wait``). The end-to-end test runs the same backend over a shim to
the compiled core (``tbqkd.sim.pynq_shim``) and compares with direct access.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import types
from fractions import Fraction

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig, slot_clock_constants
from tbqkd.hdl.ip import (
    DMA_CHANNELS,
    IP_NAME,
    IRQ_PORT,
    VLNV,
    VLNV_PREFIX,
    dma_channel,
    parse_vlnv,
)
from tbqkd.hdl.records import ANSWER, PHASE_WINDOW, STREAMS, TAG
from tbqkd.hdl.registers import core_regmap
from tbqkd.host.device import DeviceError, DeviceMismatch
from tbqkd.host.pynq_device import PYNQ_MISSING, PynqDevice, StreamTimeout, open_pynq_device
from tbqkd.host.receiver import ReceiverInterface
from tbqkd.host.tagger import TaggerInterface
from tbqkd.sim.pynq_shim import DmaShim, MmioShim, shim_allocate

CONFIG = TaggerConfig()
REGMAP = core_regmap(CONFIG)


# --- mocks ------------------------------------------------------------------------------------
class MockMmio:
    """Register window with the core's reset values; logs ``("r", offset)`` and
    ``("w", offset, value)``. 64-bit ``ro`` registers latch their high word on the low read."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.words = {0: REGMAP.hash}
        for reg in REGMAP:
            if reg.name != "ID":
                for w in range(reg.words):
                    self.words[reg.offset + 4 * w] = (reg.reset >> (32 * w)) & 0xFFFF_FFFF
        self.live64: dict[int, list[int]] = {}     # offset -> values taken on successive reads
        self._latched: dict[int, int] = {}

    def read(self, offset: int, length: int = 4) -> int:
        assert offset % 4 == 0 and length == 4, "the backend must read aligned 32-bit words"
        self.log.append(("r", offset))
        if offset in self.live64:                  # low word of a changing 64-bit counter
            value = self.live64[offset].pop(0)
            self._latched[offset + 4] = value >> 32
            return value & 0xFFFF_FFFF
        if offset in self._latched:
            return self._latched.pop(offset)
        return self.words.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        assert offset % 4 == 0 and isinstance(value, int) and 0 <= value < 1 << 32
        self.log.append(("w", offset, value))
        self.words[offset] = value


class MockChannel:
    """A simple-mode DMA channel. S2MM: ``frames`` queued by the test, each ending in TLAST;
    MM2S: bytes sent are collected in ``sent``; ``stall`` keeps a transfer from finishing."""

    def __init__(self, log: list, receives: bool, max_size: int) -> None:
        self.log, self.receives, self.max_size = log, receives, max_size
        self.frames: list[bytes] = []
        self.sent = bytearray()
        self.stall = False
        self.running = True
        self.transferred = 0
        self.active = None
        self.done: int | None = None

    @property
    def idle(self) -> bool:
        if self.active is not None and self.done is None and not self.stall:
            array, nbytes = self.active
            if self.receives and self.frames:
                frame = self.frames[0]
                n = min(len(frame), nbytes)
                array[:n] = np.frombuffer(frame[:n], np.uint8)
                if n < len(frame):
                    self.frames[0] = frame[n:]         # no TLAST yet: the rest waits
                else:
                    self.frames.pop(0)
                self.done = n
            elif not self.receives:
                self.sent += array[:nbytes].tobytes()
                self.done = nbytes
        return self.active is None or self.done is not None

    error = False

    def start(self) -> None:
        self.log.append(("start",))
        self.running = True

    def stop(self) -> None:
        self.log.append(("stop",))
        self.running, self.active, self.done = False, None, None

    def transfer(self, array, start: int = 0, nbytes: int = 0) -> None:
        assert self.running and (self.active is None or self.done is not None)
        assert not array.freed and start == 0
        if nbytes > self.max_size:
            raise ValueError("exceeds the maximum DMA buffer size")
        self.log.append(("transfer", nbytes))
        self.active, self.done = (array, nbytes), None

    def wait(self) -> None:
        assert self.idle, "pynq's wait would spin forever"
        self.transferred = self.done
        self.log.append(("wait", self.done))
        self.active, self.done = None, None


class MockDma:
    def __init__(self, stream: str, max_size: int = (1 << 14) - 1) -> None:
        self.log: list[tuple] = []
        self.buffer_max_size = max_size
        channel = MockChannel(self.log, dma_channel(stream).receives, max_size)
        self.recvchannel = channel if channel.receives else None
        self.sendchannel = None if channel.receives else channel


class CountingAllocator:
    def __init__(self) -> None:
        self.buffers = []

    def __call__(self, shape, dtype):
        buffer = shim_allocate(shape, dtype)
        self.buffers.append(buffer)
        return buffer


def make_device(max_size: int = (1 << 14) - 1, **options):
    mmio, alloc = MockMmio(), CountingAllocator()
    dmas = {p.prefix: MockDma(p.prefix, max_size) for p in STREAMS}
    device = PynqDevice(mmio, REGMAP, dmas, allocate=alloc, **options)
    return device, mmio, dmas, alloc


def tags(n: int, first: int = 0) -> bytes:
    k = np.arange(first, first + n, dtype=np.uint64)
    return TAG.encode(timestamp=k * np.uint64(1000), channel=k % np.uint64(5), code=k % 7)


# --- the IP's identity ------------------------------------------------------------------------
def test_vlnv_and_dma_routes_come_from_one_table():
    vendor, library, name, version = parse_vlnv(VLNV)
    assert (name, VLNV_PREFIX) == (IP_NAME, f"{vendor}:{library}:{name}")
    assert version == "{}.{}".format(*divmod(REGMAP.version & 0xFFFF, 256))
    assert [c.stream for c in DMA_CHANNELS] == [p.prefix for p in STREAMS]
    for c, p in zip(DMA_CHANNELS, STREAMS, strict=True):
        assert c.receives == (p.direction == "out") and c.record_bytes == p.record.nbytes
        assert c.dma.endswith(p.prefix)
        assert c.frame_records == (1 if p.record is PHASE_WINDOW else None)
    assert len({c.dma for c in DMA_CHANNELS}) == len(DMA_CHANNELS)
    with pytest.raises(KeyError, match="no stream port"):
        dma_channel("m_axis_nothing")
    with pytest.raises(ValueError):
        parse_vlnv("a:b:c")


def test_port_names_match_the_top_level():
    from tbqkd.hdl.ip import AXI_LITE_PORT, CLOCK_PORT, RESET_N_PORT
    from tbqkd.hdl.top import ReceiverTop

    members = ReceiverTop(CONFIG).signature.members
    for port in (IRQ_PORT, CLOCK_PORT, RESET_N_PORT, f"{AXI_LITE_PORT}_awaddr"):
        assert port in members
    for c in DMA_CHANNELS:
        assert f"{c.stream}_tlast" in members


# --- registers --------------------------------------------------------------------------------
def test_register_access_at_table_offsets_only():
    device, mmio, _, _ = make_device()
    frame = REGMAP["FRAME_WORDS"].offset
    device.write("FRAME_WORDS", value=100)
    assert device.read("FRAME_WORDS") == 100
    assert mmio.log == [("w", frame, 100), ("r", frame)]
    mmio.log.clear()
    for bad in (frame + 2, 0xFFF0, REGMAP.addr_width and (1 << REGMAP.addr_width) + 4):
        with pytest.raises(DeviceError, match="unaligned|not a register"):
            device.read32(bad)
        with pytest.raises(DeviceError, match="unaligned|not a register"):
            device.write32(bad, 0)
    with pytest.raises(DeviceError, match="read-only register TAGS_OUT"):
        device.write32(REGMAP["TAGS_OUT"].offset + 4, 1)
    with pytest.raises(DeviceError, match="32-bit"):
        device.write32(frame, 1 << 32)
    assert mmio.log == []                         # nothing reached the bus


def test_set_slot_period_writes_exactly_its_registers_in_order():
    device, mmio, _, _ = make_device()
    rx = ReceiverInterface(device)
    period = Fraction(10**9, 75947)
    rx.set_slot_period(period)
    k = slot_clock_constants(rx.clock_period_ps, period)
    expected = [("w", REGMAP[name].offset, value) for name, value in (
        ("SLOT_DEN", k.den), ("SLOT_STEP_INT", k.step_int), ("SLOT_STEP_REM", k.step_rem),
        ("SLOT_WRAP_INT", k.wrap_int), ("SLOT_WRAP_REM", k.wrap_rem))]
    assert mmio.log == expected
    mmio.log.clear()
    assert rx.slot_period_ps == period
    assert mmio.log == [("r", REGMAP[name].offset)
                        for name in ("SLOT_DEN", "SLOT_WRAP_INT", "SLOT_WRAP_REM")]


def test_64_bit_write_is_low_word_then_high_word():
    device, mmio, _, _ = make_device()
    off = REGMAP["PRELOAD_CYCLE"].offset
    device.write("PRELOAD_CYCLE", value=0x1234_5678_9ABC_DEF0)
    assert mmio.log == [("w", off, 0x9ABC_DEF0), ("w", off + 4, 0x1234_5678)]


def test_64_bit_counter_reads_low_then_latched_high():
    device, mmio, _, _ = make_device()
    off = REGMAP["TAGS_OUT"].offset
    # The counter crosses a 32-bit boundary between the two word reads: the latch keeps the
    # pair consistent, provided the low word is read first.
    mmio.live64[off] = [0x1_FFFF_FFFF, 0x2_0000_0000]
    assert device.read("TAGS_OUT") == 0x1_FFFF_FFFF
    assert mmio.log == [("r", off), ("r", off + 4)]
    assert TaggerInterface(device).n_channels == CONFIG.n_channels


def test_identity_check():
    device, mmio, _, _ = make_device()
    device.check_identity()
    assert mmio.log == [("r", REGMAP.VERSION_OFFSET), ("r", REGMAP.ID_OFFSET)]
    mmio.words[0] ^= 1
    with pytest.raises(DeviceMismatch, match="register map mismatch"):
        device.check_identity()


# --- DMA: receive -----------------------------------------------------------------------------
def test_reads_split_at_the_maximum_transfer_and_stop_at_tlast():
    device, mmio, dmas, _ = make_device(max_size=100)   # 6 tags (96 bytes) per transfer
    device.write("FRAME_WORDS", value=6)
    rx = dmas["m_axis"].recvchannel
    data = tags(15)
    rx.frames = [data[:96], data[96:192], data[192:]]   # two full frames, then TLAST after 3
    assert device.read_stream() == data
    transfers = [e for e in rx.log if e[0] in ("transfer", "wait")]
    assert transfers == [("transfer", 96), ("wait", 96), ("transfer", 96), ("wait", 96),
                         ("transfer", 96), ("wait", 48), ("transfer", 96)]   # re-armed
    assert device.read_stream() == b""                  # nothing more: does not block
    rx.frames = [tags(2, 15)]
    assert device.read_stream() == tags(2, 15)
    stats = device.stream_stats()["m_axis"]
    assert (stats["transfers"], stats["bytes"], stats["partial_records"]) == (4, 272, 0)


def test_max_bytes_returns_whole_records_and_keeps_the_rest():
    device, _, dmas, _ = make_device()
    rx = dmas["m_axis_sifted"].recvchannel              # 8-byte records
    data = bytes(range(80))
    rx.frames = [data]
    assert device.read_stream(20, stream="m_axis_sifted") == data[:16]
    assert device.stream_stats()["m_axis_sifted"]["queued_bytes"] == 64
    assert device.read_stream(stream="m_axis_sifted") == data[16:]
    assert device.read_stream(7, stream="m_axis_sifted") == b""


def test_partial_record_raises_is_counted_and_loses_no_whole_record():
    device, _, dmas, _ = make_device()
    rx = dmas["m_axis"].recvchannel
    rx.frames = [tags(2) + b"\x01" * 8]
    with pytest.raises(DeviceError, match="inside a record"):
        device.read_stream()
    stats = device.stream_stats()["m_axis"]
    assert (stats["partial_records"], stats["partial_bytes"]) == (1, 8)
    assert device.read_stream() == tags(2)


def test_frames_larger_than_a_transfer_are_refused():
    device, mmio, dmas, _ = make_device(max_size=100)
    with pytest.raises(DeviceError, match="FRAME_WORDS=7 makes 112-byte frames on m_axis"):
        device.write("FRAME_WORDS", value=7)
    assert mmio.log == []
    # The reset value (256 tags = 4 KiB) does not fit either: caught before the first transfer.
    with pytest.raises(DeviceError, match="FRAME_WORDS=256"):
        device.read_stream()
    assert dmas["m_axis"].log == []


def test_read_timeout_and_dma_errors():
    device, _, dmas, _ = make_device()
    with pytest.raises(StreamTimeout, match="no record on m_axis_announce within 0.01 s"):
        device.read_stream(stream="m_axis_announce", timeout_s=0.01)
    assert device.stream_stats()["m_axis_announce"]["timeouts"] == 1
    dmas["m_axis_announce"].recvchannel.frames = [bytes(16)]
    assert device.read_stream(stream="m_axis_announce", timeout_s=0.01) == bytes(16)

    class Failing(MockChannel):
        error = True

        @property
        def idle(self):
            return False

        def wait(self):
            raise RuntimeError("DMA Decode Error (invalid address)")

    dmas["m_axis_phase"].recvchannel.__class__ = Failing
    with pytest.raises(DeviceError, match="m_axis_phase: DMA Decode Error"):
        device.read_stream(stream="m_axis_phase")


def test_unknown_missing_and_wrong_direction_streams():
    mmio = MockMmio()
    device = PynqDevice(mmio, REGMAP, {"m_axis_sifted": MockDma("m_axis_sifted")},
                        allocate=CountingAllocator())
    assert device.streams == ("m_axis_sifted",)
    with pytest.raises(DeviceError, match="'m_axis' has no DMA in this design"):
        device.read_stream()
    with pytest.raises(DeviceError, match="no stream 'm_axis_x'"):
        device.read_stream(stream="m_axis_x")
    with pytest.raises(DeviceError, match="not an input stream"):
        device.write_stream(bytes(8), stream="m_axis_sifted")
    with pytest.raises(DeviceError, match="no stream port"):
        PynqDevice(mmio, REGMAP, {"bogus": MockDma("m_axis")})
    with pytest.raises(DeviceError, match="no S2MM"):
        PynqDevice(mmio, REGMAP, {"m_axis": MockDma("s_axis_answer")})
    with pytest.raises(DeviceError, match="less than one 32-byte record"):
        PynqDevice(mmio, REGMAP, {"m_axis_phase": MockDma("m_axis_phase", max_size=31)})


# --- DMA: send --------------------------------------------------------------------------------
def test_write_stream_splits_at_the_maximum_transfer():
    device, _, dmas, _ = make_device(max_size=100)
    tx = dmas["s_axis_answer"].sendchannel
    k = np.arange(10, dtype=np.uint64)
    data = ANSWER.encode(seq=k, slot=k * np.uint64(3), basis=k % 2, x_bit=k % 3 == 0)
    device.write_stream(data)
    assert [e for e in tx.log if e[0] == "transfer"] == [("transfer", 96), ("transfer", 64)]
    assert bytes(tx.sent) == data
    with pytest.raises(DeviceError, match="not a whole number of 16-byte records"):
        device.write_stream(data[:20])
    assert bytes(tx.sent) == data


def test_write_stream_timeout_says_what_was_queued():
    device, _, dmas, _ = make_device(max_size=100)
    tx = dmas["s_axis_answer"].sendchannel
    tx.stall = True
    with pytest.raises(StreamTimeout, match="1 of 10 records|6 of 10 records") as info:
        device.write_stream(bytes(160), timeout_s=0.01)
    assert info.value.records_queued == 6                # the first transfer is in flight
    with pytest.raises(StreamTimeout):                   # the buffer is still the DMA's
        device.write_stream(bytes(16), timeout_s=0.01)
    tx.stall = False
    device.write_stream(bytes(16))
    assert len(tx.sent) == 96 + 16


# --- buffers ----------------------------------------------------------------------------------
def test_buffers_are_reused_and_freed_on_close():
    device, _, dmas, alloc = make_device(max_size=100)
    device.write("FRAME_WORDS", value=4)
    rx = dmas["m_axis"].recvchannel
    for i in range(5):
        rx.frames = [tags(4, 4 * i)]
        assert device.read_stream() == tags(4, 4 * i)
    device.write_stream(bytes(32))
    device.write_stream(bytes(32))
    assert len(alloc.buffers) == 2                       # one per stream used, reused
    assert all(b.nbytes == 96 for b in alloc.buffers)
    device.close()
    assert all(b.freed for b in alloc.buffers)
    assert ("stop",) in rx.log                           # the armed S2MM was stopped first
    with pytest.raises(DeviceError, match="closed"):
        device.read("ID")
    device.close()


def test_channel_stopped_elsewhere_is_restarted():
    device, _, dmas, _ = make_device()
    rx = dmas["m_axis_sifted"].recvchannel
    rx.running = False
    rx.frames = [bytes(8)]
    assert device.read_stream(stream="m_axis_sifted") == bytes(8)
    assert rx.log[0] == ("start",)


# --- interrupt --------------------------------------------------------------------------------
def test_wait_window_polls_acks_then_reads_the_snapshot():
    device, mmio, _, _ = make_device()
    status = REGMAP["CORE_STATUS"]
    mmio.words[status.offset] = status.encode(irq=1)
    mmio.words[REGMAP["PHASE_INDEX"].offset] = 7
    mmio.words[REGMAP["PHASE_X_ERRORS"].offset] = 3
    window = asyncio.run(device.wait_window(timeout_s=1.0))
    assert (window["index"], window["x_errors"]) == (7, 3)
    ack = ("w", REGMAP["CORE_COMMAND"].offset, REGMAP["CORE_COMMAND"].encode(irq_ack=1))
    index_read = ("r", REGMAP["PHASE_INDEX"].offset)
    assert mmio.log.index(ack) < mmio.log.index(index_read)
    # irq still high (the mock does not clear it) but no new window: not returned twice
    with pytest.raises(StreamTimeout, match="no error-signal window"):
        asyncio.run(device.wait_window(timeout_s=0.02))


def test_wait_window_uses_the_interrupt_when_wired():
    class Interrupt:
        waits = 0

        async def wait(self):
            Interrupt.waits += 1

    device, mmio, _, _ = make_device(interrupt=Interrupt())
    mmio.words[REGMAP["PHASE_INDEX"].offset] = 1
    assert asyncio.run(device.wait_window())["index"] == 1
    assert Interrupt.waits == 1
    assert ("r", REGMAP["CORE_STATUS"].offset) not in mmio.log


# --- construction -----------------------------------------------------------------------------
class FakeOverlay:
    """An overlay's ``ip_dict`` and attribute access (hierarchies as nested objects)."""

    def __init__(self, ip: dict) -> None:
        self.ip_dict = {name: {"type": kind, "fullpath": name} for name, (kind, _) in ip.items()}
        for name, (_, driver) in ip.items():
            node = self
            *path, leaf = name.split("/")
            for part in path:
                if not hasattr(node, part):
                    setattr(node, part, types.SimpleNamespace())
                node = getattr(node, part)
            setattr(node, leaf, driver)


def test_from_overlay_finds_the_core_and_dmas_by_name():
    mmio = MockMmio()
    sifted, link = MockDma("m_axis_sifted"), MockDma("m_axis_announce")
    answers = MockDma("s_axis_answer")
    overlay = FakeOverlay({
        "tbqkd_receiver_0": (VLNV, mmio), "dma_m_axis_sifted": (dma_channel("m_axis").dma, sifted),
        "link/dma_ann": ("xilinx.com:ip:axi_dma:7.1", link),
        "link/dma_ans": ("xilinx.com:ip:axi_dma:7.1", answers),
        "ps7_0": ("xilinx.com:ip:processing_system7:5.5", None)})
    overlay.ip_dict["dma_m_axis_sifted"]["type"] = "xilinx.com:ip:axi_dma:7.1"
    device = PynqDevice.from_overlay(
        overlay, dma_names={"m_axis_announce": "link/dma_ann", "s_axis_answer": "link/dma_ans"},
        allocate=CountingAllocator())
    assert sorted(device.streams) == ["m_axis_announce", "m_axis_sifted", "s_axis_answer"]
    assert mmio.log[:2] == [("r", REGMAP.VERSION_OFFSET), ("r", REGMAP.ID_OFFSET)]
    with pytest.raises(DeviceError, match="DMA 'link/none' for m_axis is not in the overlay"):
        PynqDevice.from_overlay(overlay, dma_names={"m_axis": "link/none"})
    with pytest.raises(DeviceError, match="unknown stream ports"):
        PynqDevice.from_overlay(overlay, dma_names={"m_axis_x": "link/dma_ann"})


def test_from_overlay_reports_a_missing_or_other_version_core():
    with pytest.raises(DeviceError, match="has no IP of type"):
        PynqDevice.from_overlay(FakeOverlay({"ps7_0": ("xilinx.com:ip:ps7:5.5", None)}))
    old = FakeOverlay({"tbqkd_receiver_0": (f"{VLNV_PREFIX}:9.9", MockMmio())})
    with pytest.raises(DeviceError, match="rebuild the bitstream"):
        PynqDevice.from_overlay(old)
    two = FakeOverlay({"a": (VLNV, MockMmio()), "b": (VLNV, MockMmio())})
    with pytest.raises(DeviceError, match="several tbqkd cores"):
        PynqDevice.from_overlay(two)
    assert PynqDevice.from_overlay(two, core="b").streams == ()
    wrong = MockMmio()
    wrong.words[0] ^= 0xFF
    with pytest.raises(DeviceMismatch):
        PynqDevice.from_overlay(FakeOverlay({"x": (VLNV, wrong)}))


def test_without_pynq_open_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)        # makes `import pynq` fail
    with pytest.raises(DeviceError) as info:
        open_pynq_device("tbqkd.bit")
    assert str(info.value) == PYNQ_MISSING
    device = PynqDevice(MockMmio(), REGMAP, {"m_axis_sifted": MockDma("m_axis_sifted")})
    with pytest.raises(DeviceError, match="needs the pynq package"):
        device.read_stream(stream="m_axis_sifted")        # allocate comes from pynq


def test_driver_binds_to_the_vlnv_and_gives_the_core(monkeypatch):
    """``TbqkdReceiverIP`` on a stand-in for pynq's ``DefaultIP`` (pynq is not installed)."""
    fake = types.ModuleType("pynq")
    irq_waits = []

    class Interrupt:
        async def wait(self):
            irq_waits.append(1)

    class DefaultIP:                                       # the parts of pynq's DefaultIP used
        def __init__(self, description):
            self.device = "pynq PL device"
            self.mmio = description["mmio"]
            for name in description["interrupts"]:
                setattr(self, name, Interrupt())

        def read(self, offset=0):
            return self.mmio.read(offset)

        def write(self, offset, value):
            self.mmio.write(offset, value)

    fake.DefaultIP = DefaultIP
    monkeypatch.setitem(sys.modules, "pynq", fake)
    sys.modules.pop("tbqkd.host.pynq_driver", None)      # bind to the stand-in, then forget it
    try:
        _check_driver(importlib.import_module("tbqkd.host.pynq_driver"), Interrupt, irq_waits)
    finally:
        sys.modules.pop("tbqkd.host.pynq_driver", None)
        vars(sys.modules["tbqkd.host"]).pop("pynq_driver", None)


def _check_driver(driver, interrupt, irq_waits) -> None:
    assert driver.TbqkdReceiverIP.bindto == [VLNV]
    mmio = MockMmio()
    mmio.words[REGMAP["PHASE_INDEX"].offset] = 4
    ip = driver.TbqkdReceiverIP({"mmio": mmio, "interrupts": {IRQ_PORT: {}}})
    assert isinstance(ip.irq, interrupt)
    assert ip.device == "pynq PL device"                   # pynq's attribute left alone
    ip.core.check_identity()
    assert asyncio.run(ip.wait_window())["index"] == 4 and irq_waits == [1]
    with pytest.raises(DeviceError, match="no DMA in this design"):
        ip.core.read_stream()
    overlay = FakeOverlay({"tbqkd_receiver_0": (VLNV, ip),
                           "dma_m_axis": ("xilinx.com:ip:axi_dma:7.1", MockDma("m_axis"))})
    device = PynqDevice.from_overlay(overlay, allocate=CountingAllocator())
    assert ip.core is device and device.streams == ("m_axis",)


def test_backend_imports_neither_pynq_nor_gateware_tools():
    code = ("import sys, tbqkd.host.pynq_device, tbqkd.hdl.ip;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('pynq', 'amaranth', 'cocotb')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- end to end over the compiled core ---------------------------------------------------------
@pytest.mark.verilator
def test_same_results_through_the_pynq_backend_as_direct():
    from tbqkd.sim.device import open_verilator_device
    from tbqkd.sim.frontend import make_frontend

    vdev = open_verilator_device(CONFIG)
    frontend = make_frontend(CONFIG.frontend, CONFIG.word_width, CONFIG.period_ps, seed=8)
    # A small maximum transfer (127 tags), so that reads take several transfers.
    dmas = {p.prefix: DmaShim(vdev, p.prefix, buffer_max_size=2047) for p in STREAMS}
    pdev = PynqDevice(MmioShim(vdev), vdev.regmap, dmas, allocate=CountingAllocator())
    try:
        direct = _run(vdev, vdev, frontend)
        through = _run(vdev, pdev, frontend)
    finally:
        pdev.close()
        vdev.close()
    assert through["tags"]["timestamp"].size > 500
    assert through["announce"]["seq"].size > 50 and through["sifted"]["slot"].size > 10
    for key, value in direct.items():
        if isinstance(value, dict):
            assert value.keys() == through[key].keys(), key
            for field, array in value.items():
                assert np.array_equal(array, through[key][field]), (key, field)
        else:
            assert value == through[key], key
    transfers = dmas["m_axis"].recvchannel.transfers
    assert len(transfers) > 5 and set(transfers) == {2032}


def _run(vdev, device, frontend) -> dict:
    """Reset the model, configure it through ``device``, feed a burst, read everything back
    through ``device``."""
    from tbqkd.hdl.golden import ideal_calibration  # noqa: F401 (same calibration as the tests)
    from tbqkd.hdl.records import ANNOUNCE, SIFTED, Role
    from tbqkd.host.receiver import Window

    vdev.model.reset()
    vdev.skip_min = 64                                  # jump across idle time
    for p in STREAMS:
        if p.direction == "out":
            vdev.read_stream(stream=p.prefix)
    tagger, rx = TaggerInterface(device), ReceiverInterface(device)
    device.check_identity()
    for ch in range(CONFIG.n_channels):
        tagger.write_calibration(ch, frontend.ideal_fine_ps())
    roles = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.MONITOR]
    for ch, role in enumerate(roles):
        rx.set_channel_role(ch, role, early=Window(1_000, 2_500), late=Window(7_000, 2_500),
                            middle=Window(4_000, 2_500))
    rx.set_reference(300, threshold_ps=200, window_log2=2)
    rx.set_phase_window(events=8)
    tagger.set_framing(64, 256)
    vdev.feed(None, 12_000)                             # histogram banks clear after reset
    rng = np.random.default_rng(11)
    period = CONFIG.slot_period
    first = int((vdev.model.cycle + 50) * CONFIG.period_ps / period) + 4
    slots = first + np.cumsum(rng.integers(2, 60, 800))
    channel = np.where(np.arange(800) % 7 == 0, 0, rng.integers(1, 5, 800))
    phase = np.where(channel == 0, 340.5, rng.uniform(0, float(period) - 1, 800))
    t = np.array([int(s * period) for s in slots]) + phase
    vdev.feed_events(frontend, t.astype(np.int64), channel.astype(np.uint8))
    out = {"tags": TAG.decode(device.read_stream())}
    ann = ANNOUNCE.decode(device.read_stream(stream="m_axis_announce"))
    alice = (ann["slot"] * np.uint64(0x9E3779B1) >> np.uint64(7)) & np.uint64(1)
    rx.send_answers(ann["seq"], ann["slot"], alice)
    vdev.feed(None, 20 * len(ann["seq"]) + 200, drain=True)
    out.update(announce=ann, sifted=SIFTED.decode(device.read_stream(stream="m_axis_sifted")),
               windows=PHASE_WINDOW.decode(device.read_stream(stream="m_axis_phase")),
               counters=rx.sifter_counters(), lock=rx.lock_status(),
               tags_out=device.read("TAGS_OUT"), frames_out=device.read("FRAMES_OUT"),
               histogram_sum=int(rx.histogram().sum()))
    return out


# --- the real pynq, where it is installed (a board, or a PC with pynq) ---------------------------
class _BusDevice:
    """A pynq register device: the core's window at ``CORE_BASE`` (``MockMmio``) and emulated
    AXI DMAs in simple mode (PG021 register layout) at ``DMA_BASE + k·0x10000``."""

    CORE_BASE, DMA_BASE = 0x4000_0000, 0x4040_0000

    def __init__(self, pynq) -> None:
        class Device(pynq.Device):
            def __init__(inner):
                super().__init__("tbqkd-test-bus")
                inner.capabilities = {"REGISTER_RW": True}

            def read_registers(inner, address, length):
                return self.read(address).to_bytes(4, "little")

            def write_registers(inner, address, data):
                self.write(address, int.from_bytes(data, "little"))

        self.device = Device()
        self.core = MockMmio()
        self.memory: dict[int, np.ndarray] = {}          # physical address -> buffer
        self.dma: dict[int, dict] = {}                   # base -> channel state by offset

    def add_dma(self, k: int) -> int:
        base = self.DMA_BASE + k * 0x10000
        self.dma[base] = {off: {"run": 0, "idle": 0, "addr": 0, "length": 0, "busy": False,
                                "frames": [], "sent": bytearray()} for off in (0x00, 0x30)}
        return base

    def _split(self, address):
        base = address & ~0xFFFF
        if address - base >= 0x30:
            return self.dma[base][0x30], address - base - 0x30, True
        return self.dma[base][0x00], address - base, False

    def _step(self, ch, receives):
        if not ch["busy"]:
            return
        buffer = self.memory[ch["addr"]].view(np.uint8).reshape(-1)
        if receives and ch["frames"]:
            frame = ch["frames"].pop(0)
            n = min(len(frame), ch["length"])
            buffer[:n] = np.frombuffer(frame[:n], np.uint8)
            if n < len(frame):
                ch["frames"].insert(0, frame[n:])
            ch["length"], ch["busy"], ch["idle"] = n, False, 1
        elif not receives:
            ch["sent"] += buffer[:ch["length"]].tobytes()
            ch["busy"], ch["idle"] = False, 1

    def read(self, address):
        if address < self.DMA_BASE:
            return self.core.read(address - self.CORE_BASE)
        ch, reg, receives = self._split(address)
        self._step(ch, receives)
        if reg == 0x04:
            return (0 if ch["run"] else 1) | ch["idle"] << 1
        return {0x00: ch["run"], 0x28: ch["length"]}.get(reg, 0)

    def write(self, address, value):
        if address < self.DMA_BASE:
            return self.core.write(address - self.CORE_BASE, value)
        ch, reg, _ = self._split(address)
        if reg == 0x00:
            ch["run"] = value & 1
        elif reg == 0x18:
            ch["addr"] = value
        elif reg == 0x28:
            ch["length"], ch["busy"], ch["idle"] = value, True, 0


def _real_pynq_setup(max_transfer_log2: int = 8):
    pynq = pytest.importorskip("pynq")
    from pynq.lib.dma import DMA

    bus = _BusDevice(pynq)

    def allocate(shape, dtype):
        buffer = shim_allocate(shape, dtype)
        bus.memory[buffer.physical_address] = buffer
        return buffer

    def dma(k: int, receives: bool, width: int):
        kind = "s2mm" if receives else "mm2s"
        parameters = {"c_include_sg": "0", "c_sg_length_width": str(max_transfer_log2),
                      f"c_include_{kind}": "1", f"c_m_axi_{kind}_data_width": str(width)}
        return DMA({"phys_addr": bus.add_dma(k), "addr_range": 0x10000, "interrupts": {},
                    "gpio": {}, "parameters": parameters, "device": bus.device})

    return pynq, bus, allocate, dma


def test_real_pynq_driver_register_transactions():
    pynq, bus, _, _ = _real_pynq_setup()
    from pynq.overlay import _ip_drivers
    from tbqkd.host.pynq_driver import TbqkdReceiverIP

    assert _ip_drivers[VLNV] is TbqkdReceiverIP
    ip = TbqkdReceiverIP({"phys_addr": bus.CORE_BASE, "addr_range": 0x10000, "interrupts": {},
                          "gpio": {}, "parameters": {}, "device": bus.device})
    assert ip.device is bus.device
    ip.core.check_identity()
    bus.core.log.clear()
    ReceiverInterface(ip.core).set_slot_period(Fraction(10**9, 75947))
    assert [entry[1] for entry in bus.core.log] == [REGMAP[name].offset for name in (
        "SLOT_DEN", "SLOT_STEP_INT", "SLOT_STEP_REM", "SLOT_WRAP_INT", "SLOT_WRAP_REM")]


def test_real_pynq_dma_channels():
    pynq, bus, allocate, dma = _real_pynq_setup(max_transfer_log2=8)   # 255-byte transfers
    tags_dma, answers_dma = dma(0, True, 64), dma(1, False, 64)
    assert tags_dma.buffer_max_size == 255
    device = PynqDevice(pynq.MMIO(bus.CORE_BASE, 0x10000, device=bus.device), REGMAP,
                        {"m_axis": tags_dma, "s_axis_answer": answers_dma}, allocate=allocate)
    device.write("FRAME_WORDS", value=15)
    data = tags(40)
    s2mm = bus.dma[bus.DMA_BASE][0x30]
    s2mm["frames"] = [data[:240], data[240:480], data[480:]]
    assert device.read_stream() == data
    device.write_stream(data)
    assert bytes(bus.dma[bus.DMA_BASE + 0x10000][0x00]["sent"]) == data
    device.close()


def test_real_pynq_open_of_a_missing_overlay_is_one_clear_error():
    pytest.importorskip("pynq")
    with pytest.raises(DeviceError, match="cannot load overlay /nonexistent/tbqkd.bit"):
        open_pynq_device("/nonexistent/tbqkd.bit")
