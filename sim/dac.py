"""What the phase shifter's DAC receives: an SPI decoder of the pins with datasheet checks.

:class:`SpiDacDecoder` takes the SPI pins (``sclk``, ``mosi``, ``sync_n``) sampled once per
fabric cycle, as the DAC would see them, and returns the frames the DAC latched: bits are shifted
in on SCLK falling edges while SYNC is low, and a frame is latched when SYNC rises after exactly
``frame_bits`` bits. It checks every timing rule of :class:`DacTiming` (the DAC8568 and AD5686
datasheet minima) and the frame length; a violation is recorded (and raised in ``strict`` mode),
and a frame of the wrong length is not latched, as the DACs abort it. Pure Python/numpy; used by
the cocotb tests and by the host side of the Verilator model.

Pin samples are at the fabric clock: an edge seen between samples ``k − 1`` and ``k`` happened at
time ``k × clock_ns``, so every duration is a whole number of clock periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DacTiming", "DAC8568", "AD5686", "DacFrame", "TimingViolation", "SpiTimingError",
           "SpiDacDecoder"]


@dataclass(frozen=True)
class DacTiming:
    """Framing and minimum times (ns) of a DAC's serial interface (datasheet numbering)."""

    name: str
    frame_bits: int
    suffix_bits: int
    t1_sclk_period: float      #: SCLK cycle time
    t2_sclk_high: float        #: SCLK high time
    t3_sclk_low: float         #: SCLK low time
    t4_sync_setup: float       #: SYNC falling edge to first SCLK falling edge
    t5_data_setup: float       #: MOSI stable before an SCLK falling edge
    t6_data_hold: float        #: MOSI stable after an SCLK falling edge
    t7_sync_hold: float        #: last SCLK falling edge to SYNC rising edge
    t8_sync_high: float        #: SYNC high time between frames


#: TI DAC8568 (timing requirements, VDD 2.7-5.5 V): 32-bit frame, 4 feature bits after the data.
DAC8568 = DacTiming("DAC8568", 32, 4, t1_sclk_period=20, t2_sclk_high=10, t3_sclk_low=10,
                    t4_sync_setup=13, t5_data_setup=5, t6_data_hold=4.5, t7_sync_hold=0,
                    t8_sync_high=80)
#: Analog Devices AD5686/AD5686R (timing characteristics, VDD 2.7-5.5 V): 24-bit frame.
AD5686 = DacTiming("AD5686", 24, 0, t1_sclk_period=20, t2_sclk_high=10, t3_sclk_low=10,
                   t4_sync_setup=10, t5_data_setup=5, t6_data_hold=5, t7_sync_hold=10,
                   t8_sync_high=30)


@dataclass(frozen=True)
class DacFrame:
    """One frame the DAC latched; cycles are sample indices (SYNC falling and rising)."""

    word: int
    value: int
    prefix: int
    suffix: int
    start_cycle: int
    end_cycle: int


@dataclass(frozen=True)
class TimingViolation:
    """One broken rule: ``rule`` is the datasheet symbol (``t1`` …) or ``frame_length``."""

    cycle: int
    rule: str
    measured: float
    limit: float

    def __str__(self) -> str:
        unit = "bits" if self.rule == "frame_length" else "ns"
        return f"cycle {self.cycle}: {self.rule} {self.measured:g} {unit} (limit {self.limit:g})"


class SpiTimingError(ValueError):
    """A strict decoder saw the interface break a datasheet rule."""


@dataclass
class SpiDacDecoder:
    """Decodes per-cycle SPI pin samples into latched DAC frames, checking ``timing``.

    Feed samples with :meth:`sample` (one cycle) or :meth:`feed` (arrays, any chunking). The bus
    starts idle (SYNC high, SCLK and MOSI low), so a frame that opens at the very first sample
    is seen. :attr:`frames` and :attr:`violations` accumulate.
    """

    timing: DacTiming
    clock_ns: float = 4.0
    strict: bool = False
    frames: list[DacFrame] = field(default_factory=list)
    violations: list[TimingViolation] = field(default_factory=list)
    cycle: int = 0
    _pins: tuple[int, int, int] = (0, 0, 1)
    _bits: list[int] | None = None          # None: no frame open
    _sync_fall: int = -1
    _sync_rise: int | None = None
    _last_fall: int | None = None
    _last_rise: int | None = None
    _mosi_change: int | None = None

    @property
    def values(self) -> list[int]:
        """The 16-bit values latched so far, in order."""
        return [f.value for f in self.frames]

    def sample(self, sclk: int, mosi: int, sync_n: int) -> DacFrame | None:
        """Take one cycle's pin levels; return the frame latched at this sample, if any.

        Raises
        ------
        SpiTimingError
            In ``strict`` mode, at the first violated rule.
        """
        pins = (int(sclk) & 1, int(mosi) & 1, int(sync_n) & 1)
        latched = None
        if pins != self._pins:
            latched = self._edges(self._pins, pins)
        self._pins = pins
        self.cycle += 1
        return latched

    def feed(self, sclk: np.ndarray, mosi: np.ndarray, sync_n: np.ndarray) -> list[DacFrame]:
        """Take consecutive per-cycle samples (equal-length arrays); return the frames latched.

        Only the samples where a pin changes are visited, so long idle spans cost nothing.

        Raises
        ------
        ValueError
            If the arrays differ in length.
        SpiTimingError
            In ``strict`` mode, at the first violated rule.
        """
        pins = np.stack([np.asarray(a, dtype=np.uint8) & 1 for a in (sclk, mosi, sync_n)])
        if pins.ndim != 2:
            raise ValueError("sclk, mosi and sync_n must be 1-d arrays of equal length")
        n = pins.shape[1]
        if n == 0:
            return []
        first = self.cycle
        prev = np.empty_like(pins)
        prev[:, 1:] = pins[:, :-1]
        prev[:, 0] = self._pins
        changed = np.flatnonzero((prev != pins).any(axis=0))
        latched = []
        for k in changed.tolist():
            self.cycle = first + k
            frame = self._edges(tuple(prev[:, k].tolist()), tuple(pins[:, k].tolist()))
            if frame is not None:
                latched.append(frame)
        self._pins = tuple(pins[:, -1].tolist())
        self.cycle = first + n
        return latched

    # -- edge handling ------------------------------------------------------------------------

    def _check(self, rule: str, cycles: int, limit: float) -> None:
        measured = cycles * self.clock_ns
        if measured < limit:
            self._violate(rule, measured, limit)

    def _violate(self, rule: str, measured: float, limit: float) -> None:
        v = TimingViolation(self.cycle, rule, measured, limit)
        self.violations.append(v)
        if self.strict:
            raise SpiTimingError(f"{self.timing.name}: {v}")

    def _edges(self, old: tuple[int, ...], new: tuple[int, ...]) -> DacFrame | None:
        t, k = self.timing, self.cycle
        (sclk0, mosi0, sync0), (sclk1, mosi1, sync1) = old, new
        latched = None
        if sync0 and not sync1:                                  # SYNC falls: frame opens
            if self._sync_rise is not None:
                self._check("t8", k - self._sync_rise, t.t8_sync_high)
            self._bits, self._sync_fall = [], k
            self._last_fall = self._last_rise = None
        in_frame = self._bits is not None
        if in_frame and mosi1 != mosi0:
            if self._last_fall is not None:
                self._check("t6", k - self._last_fall, t.t6_data_hold)
            self._mosi_change = k
        if in_frame and sclk0 and not sclk1:                     # falling edge: shift in
            if not self._bits:
                self._check("t4", k - self._sync_fall, t.t4_sync_setup)
            setup_from = self._sync_fall if self._mosi_change is None \
                else max(self._sync_fall, self._mosi_change)
            self._check("t5", k - setup_from, t.t5_data_setup)
            if self._last_rise is not None:
                self._check("t2", k - self._last_rise, t.t2_sclk_high)
            if self._last_fall is not None:
                self._check("t1", k - self._last_fall, t.t1_sclk_period)
            self._bits.append(mosi0)
            self._last_fall = k
        if in_frame and sclk1 and not sclk0:                     # rising edge
            if self._last_fall is not None:
                self._check("t3", k - self._last_fall, t.t3_sclk_low)
            self._last_rise = k
        if in_frame and sync1 and not sync0:                     # SYNC rises: latch
            bits = self._bits
            if self._last_fall is not None:
                self._check("t7", k - self._last_fall, t.t7_sync_hold)
            self._bits, self._sync_rise = None, k
            if len(bits) != t.frame_bits:
                self._violate("frame_length", len(bits), t.frame_bits)
            else:
                word = int("".join(map(str, bits)), 2)
                sb = t.suffix_bits
                latched = DacFrame(word=word, value=(word >> sb) & 0xFFFF,
                                   prefix=word >> (16 + sb), suffix=word & ((1 << sb) - 1),
                                   start_cycle=self._sync_fall, end_cycle=k)
                self.frames.append(latched)
        elif not in_frame and sync1 and not sync0:
            self._sync_rise = k
        return latched
