"""Host API of the time-tagger: channel settings, calibration, counters and tag decoding."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tbqkd.hdl.config import CAL_FRAC_BITS, CAL_WIDTH
from tbqkd.hdl.records import TAG

from .device import Device, DeviceError

__all__ = ["TaggerInterface", "ChannelCounters", "TaggerOverflow", "decode_tags"]

logger = logging.getLogger(__name__)


class TaggerOverflow(DeviceError):
    """The core dropped events because its event FIFO was full."""


@dataclass(frozen=True)
class ChannelCounters:
    events: int
    suppressed: int
    dropped: int


def decode_tags(buffer: bytes) -> dict[str, np.ndarray]:
    """Decode a buffer of 128-bit tags (``timestamp`` ps, ``channel``, ``code``)."""
    return TAG.decode(buffer)


class TaggerInterface:
    """Configure and read the tagger of a receiver core through a :class:`Device`."""

    def __init__(self, device: Device) -> None:
        self._device = device
        config = device.regmap["TAGGER_CONFIG"].decode(device.regmap["TAGGER_CONFIG"].reset)
        self.n_channels = config["n_channels"]
        self.word_width = config["word_width"]
        self.code_count = 1 << max(1, (self.word_width - 1).bit_length())
        self.period_ps = device.regmap["PERIOD_NUM"].reset / device.regmap["PERIOD_DEN"].reset

    def _check_channel(self, channel: int) -> None:
        if not 0 <= channel < self.n_channels:
            raise DeviceError(f"channel {channel} out of range 0..{self.n_channels - 1}")

    def set_channel(self, channel: int, *, enable: bool | None = None,
                    delay_ps: int | None = None, dead_time_cycles: int | None = None) -> None:
        """Change a channel's enable, input delay (ps, signed) and dead time (cycles)."""
        self._check_channel(channel)
        d = self._device
        if enable is not None:
            d.write(f"CH{channel}_CONTROL", enable=int(enable))
        if delay_ps is not None:
            d.write(f"CH{channel}_DELAY", ps=int(delay_ps))
        if dead_time_cycles is not None:
            d.write(f"CH{channel}_DEAD_TIME", cycles=int(dead_time_cycles))

    def set_running(self, run: bool) -> None:
        self._device.modify("CONTROL", run=int(run))

    def set_tag_stream(self, on: bool) -> None:
        """Send every tag on ``m_axis`` (off: tags only feed classification and histograms)."""
        self._device.modify("CONTROL", tag_stream=int(on))

    def set_framing(self, frame_words: int, flush_cycles: int) -> None:
        """TLAST every ``frame_words`` tags, and after ``flush_cycles`` idle cycles."""
        self._device.write("FRAME_WORDS", value=frame_words)
        self._device.write("FLUSH_CYCLES", value=flush_cycles)

    def write_calibration(self, channel: int, fine_ps: np.ndarray) -> None:
        """Write a channel's calibration table: the fine time (ps) of every raw code.

        Safe while tagging: each entry changes atomically, and tags use the old or the new
        value of an entry, never a mix.

        Raises
        ------
        DeviceError
            If the table has the wrong length or a value is out of range.
        """
        self._check_channel(channel)
        fine_ps = np.asarray(fine_ps, dtype=np.float64)
        if fine_ps.shape != (self.code_count,) and fine_ps.shape != (self.word_width,):
            raise DeviceError(f"calibration table needs {self.word_width} entries, "
                              f"got {fine_ps.shape}")
        fixed = np.round(fine_ps * (1 << CAL_FRAC_BITS)).astype(np.int64)
        if fixed.min() < 0 or fixed.max() >= 1 << CAL_WIDTH:
            raise DeviceError(f"calibration values must lie in [0, {(1 << CAL_WIDTH) >> 4}) ps")
        d = self._device
        d.write("CAL_ADDR", code=0, channel=channel)
        offset = d.regmap["CAL_DATA"].offset
        for value in fixed:
            d.write32(offset, int(value))
        logger.info("calibration written for channel %d (%d codes)", channel, len(fixed))

    def counters(self, channel: int) -> ChannelCounters:
        self._check_channel(channel)
        d = self._device
        return ChannelCounters(d.read(f"CH{channel}_EVENTS"), d.read(f"CH{channel}_SUPPRESSED"),
                               d.read(f"CH{channel}_DROPPED"))

    def clear_counters(self) -> None:
        self._device.write("COMMAND", clear_counters=1)

    def overflow_flags(self, *, clear: bool = True) -> int:
        """Per-channel sticky overflow flags (bit n = channel n); cleared after reading."""
        flags = self._device.read_fields("STATUS")["overflow"]
        if clear and flags:
            self._device.write("STATUS", overflow=flags)
        return flags

    def check_overflow(self) -> None:
        """Raise :class:`TaggerOverflow` (with drop counts) if any channel dropped events."""
        flags = self.overflow_flags()
        if flags:
            dropped = {ch: self.counters(ch).dropped for ch in range(self.n_channels)
                       if flags >> ch & 1}
            raise TaggerOverflow(f"event FIFO overflow, dropped events per channel: {dropped}")

    def preload_time(self, cycle: int, time_ps: int, remainder: int = 0) -> None:
        """Load the coarse counter and time base (test hook; also aligns to an epoch)."""
        d = self._device
        d.write("PRELOAD_CYCLE", value=cycle)
        d.write("PRELOAD_TIME", value=time_ps)
        d.write("PRELOAD_TIME_REM", value=remainder)
        d.write("COMMAND", preload_time=1)
