"""Bob's station on a board: the receiver core in the PL, light from the real optics.

:class:`BoardStation` is the hardware counterpart of the simulated
:class:`tbqkd.sim.station.TwinStation`: a step of link time is a step of real time, and what
the step delivered is read from the core's own counters (its time base ``TIME``, its slot
counter ``SLOT``, the detector channels' accepted events ``CH<n>_EVENTS``)::

    from tbqkd.host.board import BoardStation
    from tbqkd.host.link import bring_up
    from tbqkd.host.pynq_overlay import TbqkdOverlay

    overlay = TbqkdOverlay("/home/xilinx/tbqkd/tbqkd_bob.bit")
    station = BoardStation(overlay.core, step_s=0.05, duration_s=3600.0,
                           gate_hook=my_detector_bias)        # optional: lab hardware
    up = bring_up(station, roles=..., slot_period_ps=..., ...)

The clock and the sleep are injectable, so tests run steps without waiting (they let a
simulated optics advance instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from .device import Device, DeviceError
from .link import Station, StepData
from .receiver import ReceiverInterface
from .tagger import TaggerInterface

__all__ = ["BoardStation", "NO_GATE_HOOK_WARNING"]

logger = logging.getLogger(__name__)

#: Said once when the detectors are gated without a hook for their bias.
NO_GATE_HOOK_WARNING = ("no detector bias control given (gate_hook): gating the detectors by "
                        "disabling their channel inputs in the core; the detectors themselves "
                        "stay biased and keep clicking")


def _log(level: int, message: str, *args: object) -> None:
    logger.log(level, message, *args)


class BoardStation(Station):
    """Bob's receiver core on a board, stepped in real time.

    Parameters
    ----------
    device
        The receiver core (``TbqkdOverlay(...).core``, a
        :class:`~tbqkd.host.pynq_device.PynqDevice`; any :class:`~tbqkd.host.device.Device`
        with the receiver's registers works).
    step_s
        Real time per :meth:`advance`.
    duration_s
        Link time after which :meth:`advance` raises ``StopIteration`` (``None``: no limit).
    detector_channels
        The channels with single-photon detectors (their events are the step's detections);
        default: every channel but 0, the reference (docs/DEPLOY.md, section 2).
    gate_hook
        ``gate_hook(gated)`` switches the detectors off (``True``) or on, e.g. their bias.
        Without one, :meth:`gate_detectors` disables the detector channels in the core.
    clock, sleep
        Real time in seconds and a way to let it pass (``time.monotonic``, ``time.sleep``).
    finish_s
        Time :meth:`finish` lets the core work off queued answers and partial frames.
    time_base_ps
        Bob's time (the core's ``TIME``) at link time 0. Default: ``TIME`` when the station is
        made. The bring-up's slot alignment needs it to within half a reference period of
        when Alice's slot 0 left (``LinkSettings.divider`` slots): start the station when
        Alice's transmitter starts, or give the time.

    Raises
    ------
    DeviceError
        If a detector channel is not a channel of the core, or ``step_s`` is not positive.
    """

    def __init__(self, device: Device, *, step_s: float, duration_s: float | None = None,
                 detector_channels: Sequence[int] | None = None,
                 gate_hook: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, finish_s: float = 0.05,
                 time_base_ps: int | None = None) -> None:
        if not step_s > 0:
            raise DeviceError(f"step_s={step_s} must be positive")
        self.device = device
        self.receiver = ReceiverInterface(device)
        self.tagger = TaggerInterface(device)
        n = self.tagger.n_channels
        channels = list(range(1, n)) if detector_channels is None else list(detector_channels)
        for channel in channels:
            if not 0 <= channel < n:
                raise DeviceError(f"detector channel {channel} out of range 0..{n - 1}")
        self.detector_channels = tuple(channels)
        self.step_s = float(step_s)
        self.duration_s = duration_s
        self.finish_s = finish_s
        self._gate_hook = gate_hook
        self._clock = clock
        self._sleep = sleep
        self._gated = False
        self._saved_enables: dict[int, bool] = {}
        self._warned_gate = False
        self.late_steps = 0          # steps that began more than a step late (host too slow)
        self.steps = 0
        self._time = device.read("TIME")
        self._time_base = self._time if time_base_ps is None else int(time_base_ps)
        self._slot = device.read("SLOT")
        self._events = self._read_events()
        self.link_time_s = (self._time - self._time_base) * 1e-12
        self._next = clock()

    @property
    def time_base_ps(self) -> int:
        return self._time_base

    def _read_events(self) -> list[int]:
        return [self.device.read(f"CH{c}_EVENTS") for c in self.detector_channels]

    @staticmethod
    def _since(new: int, old: int) -> int:
        """Counter increase; a counter cleared meanwhile counts from 0."""
        return new - old if new >= old else new

    def advance(self) -> StepData:
        """Let one step of real time pass; return the detections and slots it spanned.

        Raises
        ------
        StopIteration
            When ``duration_s`` of link time has passed.
        """
        if self.duration_s is not None and self.link_time_s >= self.duration_s - 1e-12:
            raise StopIteration
        self._next += self.step_s
        wait = self._next - self._clock()
        if wait > 0:
            self._sleep(wait)
        elif wait < -self.step_s:            # fell behind: do not try to catch up
            self.late_steps += 1
            self._next = self._clock()
        now, slot, events = self.device.read("TIME"), self.device.read("SLOT"), \
            self._read_events()
        elapsed = self._since(now, self._time)
        slots = self._since(slot, self._slot)
        detections = sum(self._since(e, old) for e, old in zip(events, self._events,
                                                                  strict=True))
        self._time, self._slot, self._events = now, slot, events
        self.link_time_s = (now - self._time_base) * 1e-12
        self.steps += 1
        return StepData(self.link_time_s, elapsed * 1e-12, detections, slots)

    def finish(self) -> None:
        """Give the core ``finish_s`` to work off queued answers and flush partial frames."""
        self._sleep(self.finish_s)

    def gate_detectors(self, gated: bool) -> None:
        """Detectors off (``True``) or back on: through ``gate_hook``, or else by disabling the
        detector channels in the core (said once, as a warning: the detectors still click)."""
        gated = bool(gated)
        if self._gate_hook is not None:
            self._gate_hook(gated)
            self._gated = gated
            return
        if not self._warned_gate:
            _log(logging.WARNING, "%s", NO_GATE_HOOK_WARNING)
            self._warned_gate = True
        if gated == self._gated:
            return
        for channel in self.detector_channels:
            if gated:
                self._saved_enables[channel] = bool(
                    self.device.read_fields(f"CH{channel}_CONTROL")["enable"])
                self.tagger.set_channel(channel, enable=False)
            else:
                self.tagger.set_channel(channel, enable=self._saved_enables.pop(channel, True))
        self._gated = gated

    @property
    def gated(self) -> bool:
        """Whether the detectors are gated off."""
        return self._gated

    def apply_dac(self) -> None:
        """Nothing to do: the core drives the phase shifter's DAC itself."""
