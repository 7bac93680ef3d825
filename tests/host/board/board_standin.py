"""A board without a board: the transmitter's golden model behind pynq-shaped MMIO and DMAs.

:class:`TxModelCore` serves the transmitter's register table and streams from
:class:`tbqkd.hdl.golden_transmitter.TransmitterModel` (the bit-exact, cycle-accurate model the
RTL is verified against): register reads and writes as the AXI4-Lite bank does them (64-bit
registers latch their high word on the low read; a ``COMMAND`` write is a one-cycle pulse),
random beats offered to ``s_axis_random`` whenever the model's ``tready`` is high, and the
model's answers, sifted and ``STATES`` records encoded on the output streams. Time passes only
in :meth:`TxModelCore.run`. Every register transaction is logged.

:class:`TxDma` is a simple-mode AXI DMA in front of it, built from the receiver's shim channel
(:mod:`tbqkd.sim.pynq_shim`): an MM2S transfer completes only once the core has taken every
beat, or an AXIS data FIFO of ``fifo_words`` beats before it has (the block design's FIFO,
docs/PYNQ.md).
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from tbqkd.hdl.golden_sifter import Announcement
from tbqkd.hdl.golden_transmitter import TransmitterModel, TxConfig
from tbqkd.hdl.ip import TX_DMA_CHANNELS, dma_channel
from tbqkd.hdl.records import ANNOUNCE, ANSWER, SIFTED
from tbqkd.hdl.tx_records import STATES, STATES_PER_RECORD
from tbqkd.hdl.tx_registers import TX_COUNTERS, transmitter_regmap
from tbqkd.sim.pynq_shim import PYNQ_DEFAULT_MAX_TRANSFER, _ChannelShim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pynq_overlay import (  # noqa: E402  (the receiver's stand-in board)
    PlDevice,
    bitstream,
    full_design,
    make_fake_pynq,
)

__all__ = ["TxModelCore", "TxDma", "tx_dmas", "encode_states", "PlDevice", "make_fake_pynq",
           "bitstream", "full_design"]

_MASK32 = (1 << 32) - 1
_CONFIG_FIELDS = {  # TxConfig field -> (register, field)
    "run": ("CONTROL", "run"), "four_state": ("CONTROL", "four_state"),
    "pattern_mode": ("CONTROL", "pattern_mode"), "state_stream": ("CONTROL", "state_stream"),
    "slot_divider": ("SLOT_DIVIDER", "cycles"), "basis_bits": ("BASIS_BITS", "bits"),
    "x_threshold": ("X_THRESHOLD", "threshold"), "pattern": ("PATTERN", "states"),
    "pattern_length": ("PATTERN_LENGTH", "slots"), "ref_divider": ("REF_DIVIDER", "slots"),
    "mod_delay": ("MOD_DELAY", "cycles"), "mod_width": ("MOD_WIDTH", "cycles"),
}


class TxModelCore:
    """The transmitter's register window and streams, served by its golden model."""

    def __init__(self, ring_depth: int = 64, *, fifo_words: int = 64) -> None:
        self.fifo_words = fifo_words          # an AXIS data FIFO between the DMA and the core
        self.regmap = transmitter_regmap(ring_depth)
        self.model = TransmitterModel(ring_depth)
        self.log: list[tuple] = []
        self._values = {r.name: r.reset for r in self.regmap if r.access == "rw"}
        self._by_offset = {}
        for reg in self.regmap:
            for w in range(reg.words):
                self._by_offset[reg.offset + 4 * w] = (reg, w)
        self._latched: dict[int, int] = {}
        self.random: deque[int] = deque()
        self.announce: deque[Announcement] = deque()
        self.out = {r.stream: bytearray() for r in TX_DMA_CHANNELS if r.receives}
        self._taken = {"answers": 0, "sifted": 0, "state_records": 0}

    # --- registers --------------------------------------------------------------------------
    def config(self) -> TxConfig:
        values = {}
        for name, (register, field) in _CONFIG_FIELDS.items():
            values[name] = self.regmap[register].decode(self._values[register])[field]
        return TxConfig(**values)

    def _value(self, name: str) -> int:
        m = self.model
        if name in self._values:
            return self._values[name]
        if name == "ID":
            return self.regmap.hash
        if name == "SLOT":
            return m.slot
        if name == "STATUS":
            return self.regmap["STATUS"].encode(running=self.config().run,
                                                protocol_error=int(m.protocol_error),
                                                random_bits=m.random_bits)
        if name.lower() in TX_COUNTERS:
            return m.counters[name.lower()]
        if name == "COMMAND":
            return 0
        return self.regmap.reset_value(name)

    def read(self, offset: int, length: int = 4) -> int:
        assert offset % 4 == 0 and length == 4, "aligned 32-bit reads only"
        reg, word = self._by_offset[offset]
        if word == 1 and offset in self._latched:
            value = self._latched.pop(offset)
        else:
            full = self._value(reg.name)
            if reg.words == 2:
                self._latched[offset + 4] = (full >> 32) & _MASK32
            value = full & _MASK32
        self.log.append(("r", reg.name, word, value))
        return value

    def write(self, offset: int, value: int) -> None:
        assert offset % 4 == 0 and 0 <= value <= _MASK32
        reg, word = self._by_offset[offset]
        self.log.append(("w", reg.name, word, value))
        if reg.access == "rw":
            shift = 32 * word
            old = self._values[reg.name]
            self._values[reg.name] = (old & ~(_MASK32 << shift)) | (value << shift)
        elif reg.access == "wp":                # a command: a one-cycle pulse
            self._step(**self.regmap[reg.name].decode(value))
        else:
            raise RuntimeError(f"write to read-only {reg.name}: AXI4-Lite SLVERR")

    def transactions(self) -> list[tuple]:
        """The register log as ``(op, register, word, value)``, then cleared."""
        log, self.log = self.log, []
        return log

    # --- streams ----------------------------------------------------------------------------
    def write_stream(self, data: bytes, *, stream: str) -> None:
        if stream == "s_axis_random":
            self.random.extend(int(w) for w in np.frombuffer(data, "<u8"))
        elif stream == "s_axis_announce":
            ann = ANNOUNCE.decode(data)
            self.announce.extend(Announcement(int(q), int(s), int(b)) for q, s, b in
                                 zip(ann["seq"], ann["slot"], ann["basis"], strict=True))
        else:
            raise ValueError(f"{stream} is not an input of the transmitter")

    def input_pending(self, stream: str) -> int:
        return len(self.random if stream == "s_axis_random" else self.announce)

    def read_stream(self, max_bytes: int | None = None, *, stream: str) -> bytes:
        buffer = self.out[stream]
        record = dma_channel(stream, TX_DMA_CHANNELS).record_bytes
        size = len(buffer) if max_bytes is None else min(len(buffer), max_bytes)
        size -= size % record
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    # --- time -------------------------------------------------------------------------------
    def _step(self, **pulses: int) -> None:
        m = self.model
        rnd = self.random[0] if self.random else None
        ready = m.outputs().rnd_ready
        announce = self.announce.popleft() if self.announce else None
        m.step(self.config(), rnd_valid=int(rnd is not None), rnd_data=rnd or 0,
               announce=announce, **pulses)
        if rnd is not None and ready:
            self.random.popleft()

    def run(self, cycles: int) -> None:
        """Let ``cycles`` fabric clocks pass; new records go to the output streams."""
        for _ in range(cycles):
            self._step()
        self._emit()

    def _emit(self) -> None:
        m, taken = self.model, self._taken
        answers = m.answers[taken["answers"]:]
        if answers:
            self.out["m_axis_answer"] += ANSWER.encode(
                seq=np.array([a.seq for a in answers], np.uint64),
                slot=np.array([a.slot for a in answers], np.uint64),
                basis=np.array([a.basis for a in answers], np.uint64),
                x_bit=np.array([a.x_bit for a in answers], np.uint64))
        sifted = m.sifted[taken["sifted"]:]
        if sifted:
            self.out["m_axis_sifted"] += SIFTED.encode(
                slot=np.array([s.slot for s in sifted], np.uint64),
                bit=np.array([s.bit for s in sifted], np.uint64))
        for rec in m.state_records[taken["state_records"]:]:
            self.out["m_axis_states"] += encode_states(rec.first_slot, rec.codes)
        taken.update(answers=len(m.answers), sifted=len(m.sifted),
                     state_records=len(m.state_records))


def encode_states(first_slot: int, codes) -> bytes:
    """One ``STATES`` record."""
    assert len(codes) == STATES_PER_RECORD
    packed = sum(int(c) << 4 * i for i, c in enumerate(codes))
    return STATES.pack(first_slot=first_slot, codes=packed).to_bytes(STATES.nbytes, "little")


class _SendChannel(_ChannelShim):
    """MM2S: the transfer completes when every beat is in the core or in the data FIFO before
    it (``fifo_words`` beats)."""

    @property
    def idle(self) -> bool:
        return self._active is None or \
            self._device.input_pending(self._stream) <= self._device.fifo_words


class TxDma:
    """A ``pynq.lib.dma.DMA`` with the one channel that serves transmitter port ``stream``."""

    def __init__(self, core: TxModelCore, stream: str, *,
                 buffer_max_size: int = PYNQ_DEFAULT_MAX_TRANSFER) -> None:
        route = dma_channel(stream, TX_DMA_CHANNELS)
        self.buffer_max_size = buffer_max_size
        kind = _ChannelShim if route.receives else _SendChannel
        channel = kind(core, stream, route.receives, buffer_max_size)
        self.recvchannel = channel if route.receives else None
        self.sendchannel = None if route.receives else channel


def tx_dmas(core: TxModelCore, **options: Any) -> dict[str, TxDma]:
    """One DMA per transmitter stream, keyed by stream prefix."""
    return {r.stream: TxDma(core, r.stream, **options) for r in TX_DMA_CHANNELS}
