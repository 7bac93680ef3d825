"""Record layouts of the core's streams: the single definition shared by gateware and host.

A layout is an ordered list of ``(name, width)`` fields packed LSB first, exactly like an
Amaranth ``data.StructLayout`` built from it (:func:`tbqkd.hdl.layouts.struct_layout`). The host
decodes DMA buffers with :meth:`RecordLayout.decode` (vectorised numpy), which a test checks
against the Amaranth layout's field offsets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["RecordLayout", "TAG"]


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
