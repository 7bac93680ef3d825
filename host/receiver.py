"""Host API of the receiver core's part 2: slots, time-bin windows, lock monitor, histograms,
sifting streams, the phase error signal and the phase-shifter DAC.

Everything goes through a :class:`~tbqkd.host.device.Device` by register name; record layouts
come from :mod:`tbqkd.hdl.records`. Pure Python 3.10, no gateware imports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from tbqkd.hdl.config import CAL_FRAC_BITS, slot_clock_constants
from tbqkd.hdl.golden_phase import (
    AD5686_FRAME_BITS,
    DAC8568_FRAME_BITS,
    DAC8568_SUFFIX_BITS,
    ad5686_prefix,
    dac8568_prefix,
)
from tbqkd.hdl.records import ANNOUNCE, ANSWER, PHASE_WINDOW, SIFTED, Role
from tbqkd.hdl.registers import HISTOGRAM_BINS, SIFTER_COUNTERS

from .device import Device, DeviceError

__all__ = ["ReceiverInterface", "LockStatus", "Window", "DAC_FRAMINGS"]

#: SPI framings of the supported DACs: (frame_bits, suffix_bits, prefix) for DAC channel A with
#: the write-and-update command, from the framing definitions next to the gateware.
DAC_FRAMINGS = {"dac8568": (DAC8568_FRAME_BITS, DAC8568_SUFFIX_BITS, dac8568_prefix(0)),
                "ad5686": (AD5686_FRAME_BITS, 0, ad5686_prefix(1))}


@dataclass(frozen=True)
class Window:
    """A time-bin window: ``start_ps <= phase < start_ps + width_ps`` (width 0: off)."""

    start_ps: int
    width_ps: int


@dataclass(frozen=True)
class LockStatus:
    """The reference lock monitor (see the classifier)."""

    aligned: bool
    lost_lock: bool
    offset_ps: int        # mean offset of the last window
    spread_ps: int        # max - min offset of the last window
    windows: int
    violations: int
    slot_base: int


class ReceiverInterface:
    """Configure and read part 2 of a receiver core through a :class:`Device`."""

    def __init__(self, device: Device) -> None:
        self._device = device
        regmap = device.regmap
        self.n_channels = regmap["TAGGER_CONFIG"].decode(regmap["TAGGER_CONFIG"].reset)[
            "n_channels"]
        self.clock_period_ps = Fraction(regmap["PERIOD_NUM"].reset, regmap["PERIOD_DEN"].reset)

    @property
    def device(self) -> Device:
        return self._device

    def _check_channel(self, channel: int) -> None:
        if not 0 <= channel < self.n_channels:
            raise DeviceError(f"channel {channel} out of range 0..{self.n_channels - 1}")

    def _command(self, **bits: int) -> None:
        self._device.write("CORE_COMMAND", **bits)

    # --- slots ------------------------------------------------------------------------------
    def set_slot_period(self, slot_period_ps: Fraction) -> None:
        """Program Alice's pulse period in ps, exactly (75.947 MHz: ``Fraction(10**9, 75947)``).

        The slot clock runs on it from ``SLOT_CONSTANTS_LATENCY`` cycles after the last write,
        from the phase it has reached. A period with another ``SLOT_DEN`` passes through
        intermediate register combinations while it is written: :meth:`align` again after it.

        Raises
        ------
        DeviceError
            If the period cannot be represented (see :func:`slot_clock_constants`).
        """
        try:
            k = slot_clock_constants(self.clock_period_ps, Fraction(slot_period_ps))
        except ValueError as exc:
            raise DeviceError(str(exc)) from None
        d = self._device
        d.write("SLOT_DEN", value=k.den)
        d.write("SLOT_STEP_INT", value=k.step_int)
        d.write("SLOT_STEP_REM", value=k.step_rem)
        d.write("SLOT_WRAP_INT", value=k.wrap_int)
        d.write("SLOT_WRAP_REM", value=k.wrap_rem)

    @property
    def slot_period_ps(self) -> Fraction:
        d = self._device
        den = d.read("SLOT_DEN")
        wrap = d.read("SLOT_WRAP_INT") * den + d.read("SLOT_WRAP_REM")
        return Fraction(wrap, den << CAL_FRAC_BITS)

    # --- classification ---------------------------------------------------------------------
    def set_channel_role(self, channel: int, role: Role, *, delay_ps: int = 0,
                         early: Window | None = None, late: Window | None = None,
                         middle: Window | None = None) -> None:
        """A channel's role, phase delay and windows (windows not given are switched off)."""
        self._check_channel(channel)
        d = self._device
        d.write(f"CH{channel}_ROLE", role=int(Role(role)))
        d.write(f"CH{channel}_PHASE_DELAY", ps=int(delay_ps))
        for name, window in (("EARLY", early), ("LATE", late), ("MIDDLE", middle)):
            window = window or Window(0, 0)
            d.write(f"CH{channel}_{name}_START", ps=int(window.start_ps))
            d.write(f"CH{channel}_{name}_WIDTH", ps=int(window.width_ps))

    def bin_counts(self, channel: int) -> dict[str, int]:
        """A channel's classified events per bin (``outside``: in no window, dropped)."""
        self._check_channel(channel)
        return {b: self._device.read(f"CH{channel}_{b.upper()}_COUNT")
                for b in ("early", "late", "middle", "outside")}

    def clear_counters(self) -> None:
        """Zero the classifier, histogram-outside and sifter counters."""
        self._command(clear_counters=1)

    # --- reference and lock -----------------------------------------------------------------
    def set_reference(self, phase_ps: int, *, threshold_ps: int | None = None,
                      window_log2: int | None = None) -> None:
        d = self._device
        d.write("REF_PHASE", ps=int(phase_ps))
        if threshold_ps is not None:
            d.write("LOCK_THRESHOLD", ps=int(threshold_ps))
        if window_log2 is not None:
            d.write("LOCK_WINDOW", log2=int(window_log2))

    def align(self) -> None:
        """The next reference event defines slot 0."""
        self._command(align=1)

    def clear_lost_lock(self) -> None:
        self._command(clear_lost_lock=1)

    def status(self) -> dict[str, int]:
        return self._device.read_fields("CORE_STATUS")

    def lock_status(self) -> LockStatus:
        d = self._device
        status = self.status()
        return LockStatus(bool(status["aligned"]), bool(status["lost_lock"]),
                          d.read_fields("LOCK_OFFSET")["ps"], d.read("LOCK_SPREAD"),
                          d.read("LOCK_WINDOWS"), d.read("LOCK_VIOLATIONS"), d.read("SLOT_BASE"))

    # --- histograms -------------------------------------------------------------------------
    def set_histogram(self, *, offset_ps: int = 0, bin_log2_ps: int = 4,
                      enable: bool = True) -> None:
        """Bin ``k`` of every channel covers phases ``offset + k·2^bin_log2_ps`` ps onwards."""
        self._device.write("HIST_OFFSET", ps=int(offset_ps))
        self._device.write("HIST_CONTROL", enable=int(enable), shift=int(bin_log2_ps))

    def histogram(self, *, timeout_s: float = 5.0) -> np.ndarray:
        """Take a consistent snapshot of every channel's histogram: ``(n_channels, bins)``.

        Counting continues into the other bank meanwhile; no event is lost or counted twice.

        Raises
        ------
        DeviceError
            If the snapshot does not become readable within ``timeout_s``.
        """
        d = self._device
        self._command(hist_swap=1)
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if status["hist_snapshot_valid"] and not status["hist_swap_pending"]:
                break
            if time.monotonic() > deadline:
                raise DeviceError("histogram snapshot did not become readable")
        counts = np.zeros((self.n_channels, HISTOGRAM_BINS), dtype=np.uint32)
        for ch in range(self.n_channels):
            for b in range(HISTOGRAM_BINS):
                d.write("HIST_ADDR", bin=b, channel=ch)
                counts[ch, b] = d.read("HIST_DATA")
        self._command(hist_release=1)
        return counts

    # --- sifting ----------------------------------------------------------------------------
    def read_announcements(self) -> dict[str, np.ndarray]:
        """Announcements received so far (``seq``, ``slot``, ``basis``) for Alice."""
        return ANNOUNCE.decode(self._device.read_stream(stream="m_axis_announce"))

    def send_answers(self, seq: np.ndarray, slot: np.ndarray, basis: np.ndarray,
                     x_bit: np.ndarray | None = None) -> None:
        """Give the core Alice's answers, in announcement order."""
        x_bit = np.zeros(len(seq), np.uint64) if x_bit is None else x_bit
        self._device.write_stream(ANSWER.encode(seq=seq, slot=slot, basis=basis, x_bit=x_bit),
                                  stream="s_axis_answer")

    def read_sifted(self) -> dict[str, np.ndarray]:
        """Sifted Z-basis key records (``slot``, ``bit``) received so far."""
        return SIFTED.decode(self._device.read_stream(stream="m_axis_sifted"))

    def sifter_counters(self) -> dict[str, int]:
        counters = {name: self._device.read(f"SIFT_{name.upper()}") for name in SIFTER_COUNTERS}
        counters["pending"] = self._device.read("SIFT_PENDING")
        return counters

    def restart_sifting(self, *, max_pending: int | None = None) -> None:
        """Empty the pending store; sequence numbers restart at 0."""
        if max_pending is not None:
            self._device.write("SIFT_MAX_PENDING", records=int(max_pending))
        self._command(sift_restart=1)

    def clear_protocol_error(self) -> None:
        self._command(clear_protocol_error=1)

    # --- phase error signal -----------------------------------------------------------------
    def set_phase_window(self, *, slots: int | None = None, events: int | None = None,
                         four_state: bool = False) -> None:
        """Windows of ``slots`` slots or of ``events`` sifted X events (give one)."""
        if (slots is None) == (events is None):
            raise DeviceError("give either slots or events")
        d = self._device
        d.write("PHASE_CONTROL", enable=0)         # lengths change with the unit stopped
        if slots is not None:
            d.write("PHASE_WINDOW_SLOTS", slots=int(slots))
        else:
            d.write("PHASE_WINDOW_EVENTS", events=int(events))
        d.write("PHASE_CONTROL", enable=1, mode=int(events is not None),
                four_state=int(four_state))

    def read_phase_windows(self) -> dict[str, np.ndarray]:
        """Completed error-signal windows received on ``m_axis_phase`` so far."""
        return PHASE_WINDOW.decode(self._device.read_stream(stream="m_axis_phase"))

    def last_phase_window(self) -> dict[str, int]:
        d = self._device
        return {"index": d.read("PHASE_INDEX"), "x_sifted": d.read("PHASE_X_SIFTED"),
                "x_errors": d.read("PHASE_X_ERRORS"), "mid_plus": d.read("PHASE_MID_PLUS"),
                "mid_minus": d.read("PHASE_MID_MINUS"), "end_slot": d.read("PHASE_END_SLOT")}

    def ack_phase_irq(self) -> None:
        self._command(irq_ack=1)

    # --- phase actuator ---------------------------------------------------------------------
    def set_dac_framing(self, kind: str = "dac8568", *, clock_div: int = 4) -> None:
        """Framing of the DAC on the SPI pins: ``"dac8568"`` or ``"ad5686"``."""
        try:
            frame_bits, suffix_bits, prefix = DAC_FRAMINGS[kind]
        except KeyError:
            raise DeviceError(f"unknown DAC {kind!r}; known: {sorted(DAC_FRAMINGS)}") from None
        self._device.write("DAC_PREFIX", bits=prefix)
        self._device.write("DAC_CONFIG", frame_bits=frame_bits, suffix_bits=suffix_bits,
                           clock_div=clock_div, cpol=1)

    def set_dac(self, code: int) -> None:
        """Send ``code`` (0..65535) to the phase shifter's DAC (queued while busy)."""
        if not 0 <= code < 1 << 16:
            raise DeviceError(f"DAC code {code} out of range 0..65535")
        self._device.write("DAC_VALUE", code=int(code))

    @property
    def dac_value(self) -> int:
        return self._device.read_fields("DAC_VALUE")["code"]
