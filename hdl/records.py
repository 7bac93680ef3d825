"""Record layouts of the core's streams: the single definition shared by gateware and host.

A layout is an ordered list of ``(name, width)`` fields packed LSB first, exactly like an
Amaranth ``data.StructLayout`` built from it (:func:`tbqkd.hdl.layouts.struct_layout`). The host
decodes DMA buffers with :meth:`RecordLayout.decode` (vectorised numpy), which a test checks
against the Amaranth layout's field offsets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["RecordLayout", "TAG", "EVENT", "ANNOUNCE", "ANSWER", "SIFTED", "PHASE_WINDOW",
           "Role", "Bin", "Basis", "SLOT_BITS", "PHASE_BITS", "SEQ_BITS", "StreamPort",
           "STREAMS"]


@dataclass(frozen=True)
class RecordLayout:
    """An ordered record of unsigned fields, LSB first, padded to ``width`` bits."""

    name: str
    fields: tuple[tuple[str, int], ...]
    width: int

    def __post_init__(self) -> None:
        if self.width % 32 or sum(w for _, w in self.fields) > self.width:
            raise ValueError(f"{self.name}: fields exceed {self.width} bits or width not a "
                             "multiple of 32")

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        """Yield ``(name, offset, width)`` for every field."""
        offset = 0
        for name, width in self.fields:
            yield name, offset, width
            offset += width

    @property
    def offsets(self) -> dict[str, int]:
        return {name: offset for name, offset, _ in self}

    @property
    def nbytes(self) -> int:
        return self.width // 8

    def pack(self, **values: int) -> int:
        """Pack one record into an integer (for tests and drivers)."""
        word = 0
        for name, offset, width in self:
            v = int(values.get(name, 0))
            if not 0 <= v < 1 << width:
                raise ValueError(f"{self.name}.{name}={v} does not fit in {width} bits")
            word |= v << offset
        return word

    def unpack(self, word: int) -> dict[str, int]:
        return {name: (word >> offset) & ((1 << width) - 1) for name, offset, width in self}

    def decode(self, buffer: bytes | np.ndarray) -> dict[str, np.ndarray]:
        """Decode a little-endian buffer of whole records into one numpy array per field.

        Raises
        ------
        ValueError
            If the buffer is not a whole number of records.
        """
        raw = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, (bytes, bytearray)) \
            else np.asarray(buffer).view(np.uint8).ravel()
        if raw.size % self.nbytes:
            raise ValueError(f"{self.name}: {raw.size} bytes is not a whole number of "
                             f"{self.nbytes}-byte records")
        words = raw.view("<u8").reshape(-1, self.width // 64) if self.width % 64 == 0 else \
            raw.view("<u4").astype(np.uint64).reshape(-1, self.width // 32)
        lane_bits = 64 if self.width % 64 == 0 else 32
        out = {}
        for name, offset, width in self:
            lane, shift = divmod(offset, lane_bits)
            value = words[:, lane] >> np.uint64(shift)
            if shift + width > lane_bits:
                value = value | (words[:, lane + 1] << np.uint64(lane_bits - shift))
            if width < 64:
                value = value & np.uint64((1 << width) - 1)
            out[name] = value
        return out

    def encode(self, **arrays: np.ndarray) -> bytes:
        """Inverse of :meth:`decode`: pack field arrays into a little-endian buffer."""
        n = len(next(iter(arrays.values())))
        words = np.zeros((n, self.width // 64), dtype=np.uint64)
        for name, offset, width in self:
            if name not in arrays:
                continue
            value = np.asarray(arrays[name]).astype(np.uint64)
            if width < 64:
                value = value & np.uint64((1 << width) - 1)
            lane, shift = divmod(offset, 64)
            words[:, lane] |= value << np.uint64(shift)
            if shift + width > 64:
                words[:, lane + 1] |= value >> np.uint64(64 - shift)
        return words.astype("<u8").tobytes()


#: A time tag, as it leaves the tagger on ``m_axis`` (128-bit TDATA).
#: ``timestamp``: picoseconds, ``time base + calibrated fine time + channel delay`` (mod 2^64);
#: ``channel``: input channel; ``code``: the raw fine code the timestamp was calibrated from
#: (what code-density calibration collects).
TAG = RecordLayout("tag", (("timestamp", 64), ("channel", 8), ("code", 8)), 128)


#: Width of a slot index (Alice's pulse number since slot 0), of a phase within a slot (ps), and
#: of the sequence number that ties Alice's answers to Bob's announcements.
SLOT_BITS = 48
PHASE_BITS = 24
SEQ_BITS = 32


class Role(IntEnum):
    """What a channel's detector does (``CHn_ROLE``)."""

    OFF = 0        #: events are counted by the tagger and go no further
    Z = 1          #: Z-basis detector: early bin is bit 0, late bin is bit 1
    X_PLUS = 2     #: X-basis detector behind the interferometer's "+" output (bit 0)
    X_MINUS = 3    #: X-basis detector behind the "−" output (bit 1)
    MONITOR = 4    #: histogrammed and counted, never key
    REFERENCE = 5  #: Alice's clock reference: slot alignment and the lock monitor


class Bin(IntEnum):
    """Which of a channel's windows an event fell in."""

    EARLY = 0
    LATE = 1
    MIDDLE = 2     #: the interference bin of the X detectors
    NONE = 3       #: in no window: counted and dropped


class Basis(IntEnum):
    Z = 0
    X = 1


#: A classified detection (the classifier's output, inside the core and on the record stream):
#: ``slot`` since slot 0; ``phase`` in ps within the slot; ``bin`` a :class:`Bin`; ``basis`` and
#: ``bit`` the key value (Z: early 0 / late 1; X: the detector, X+ 0 / X− 1).
EVENT = RecordLayout("event", (("slot", SLOT_BITS), ("phase", PHASE_BITS), ("channel", 8),
                               ("bin", 2), ("basis", 1), ("bit", 1)), 128)

#: Bob → Alice (``m_axis_announce``): a key-relevant detection's slot and basis, with the
#: sequence number the answer must echo (consecutive from 0 after reset or ``SIFT_RESET``).
ANNOUNCE = RecordLayout("announce", (("seq", SEQ_BITS), ("slot", SLOT_BITS), ("basis", 1)), 128)

#: Alice → Bob (``s_axis_answer``): Alice's basis for the announced slot, echoing ``seq`` and
#: ``slot``; ``x_bit`` is Alice's X value (0 for |+>, 1 for |−>), used by the four-state
#: convention of the error signal.
ANSWER = RecordLayout("answer", (("seq", SEQ_BITS), ("slot", SLOT_BITS), ("basis", 1),
                                 ("x_bit", 1)), 128)

#: Bob's sifted Z-basis key (``m_axis_sifted``): slot and bit.
SIFTED = RecordLayout("sifted", (("slot", SLOT_BITS), ("bit", 1)), 64)

#: One completed window of the phase error signal (``m_axis_phase``), also latched in the
#: ``PHASE_*`` snapshot registers: ``index`` counts windows; ``x_sifted`` sifted X events and
#: ``x_errors`` those that disagree with Alice; ``mid_plus``/``mid_minus`` middle-bin clicks of
#: the X+ and X− detectors regardless of Alice; ``end_slot`` the slot the window closed at.
PHASE_WINDOW = RecordLayout("phase_window", (("index", 32), ("x_sifted", 32), ("x_errors", 32),
                                             ("mid_plus", 32), ("mid_minus", 32),
                                             ("end_slot", SLOT_BITS)), 256)


@dataclass(frozen=True)
class StreamPort:
    """An AXI4-Stream port of the core's top level: ``<prefix>_tdata`` etc., one record a beat."""

    prefix: str
    record: RecordLayout
    direction: str        # "out" (the core is the master) or "in"


#: The core's AXI4-Stream ports, in the order the Verilator model's C ABI numbers them.
STREAMS = (
    StreamPort("m_axis", TAG, "out"),                # every tag (CONTROL.tag_stream)
    StreamPort("m_axis_announce", ANNOUNCE, "out"),  # Bob's announcements, to Alice
    StreamPort("m_axis_sifted", SIFTED, "out"),      # Bob's sifted key
    StreamPort("m_axis_phase", PHASE_WINDOW, "out"),  # completed error-signal windows
    StreamPort("s_axis_answer", ANSWER, "in"),       # Alice's answers
)
