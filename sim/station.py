"""Bob's station in simulation: the twin's light into a receiver core (Verilator or model).

The twin runs in steps of link time (its chunks). Each step's detector events go through the
front-end model into the core, whose clock is then run to the end of the step, so answers
queued meanwhile are consumed while the next step's events arrive — as on hardware, where
sifting trails detection by the classical round trip. The DAC value the core drives on its SPI
pins (decoded from the pins on the Verilator backend) sets the twin's phase actuator for the
following steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from tbqkd.hdl.config import TaggerConfig
from tbqkd.host.device import DeviceError
from tbqkd.host.link import Station, StepData
from tbqkd.host.receiver import ReceiverInterface
from tbqkd.host.tagger import TaggerInterface

from .frontend import make_frontend
from .twin import Channel, Chunk, Twin

__all__ = ["TwinStation"]

_START_MARGIN_CYCLES = 1_000
_SKIP_MIN_CYCLES = 64
#: The core's clock is left this far before the end of a step: the host's register accesses
#: between steps clock the model (about 5 cycles each) without light, and must not run past
#: the next step's first click. Clicks that nevertheless fall into time the host spent on
#: registers (long calibration table writes, histogram read-out in the bring-up) cannot be
#: interleaved with the accesses by the simulator: they are dropped and counted in
#: ``events_missed`` (on hardware the core would have tagged them).
_HOST_MARGIN_CYCLES = 4_096


class TwinStation(Station):
    """The twin's detections fed into ``device`` (a VerilatorDevice or a ModelDevice).

    Parameters
    ----------
    device
        The core; it must offer ``feed_events``, ``feed``, ``cycle`` and ``dac``.
    twin
        A fresh twin; it runs for ``duration_s`` in steps of ``step_s``.
    """

    def __init__(self, device, twin: Twin, config: TaggerConfig, *, duration_s: float,
                 step_s: float, frontend_seed: int = 0) -> None:
        self.device = device
        self.twin = twin
        self.config = config
        self.receiver = ReceiverInterface(device)
        self.tagger = TaggerInterface(device)
        self.frontend = make_frontend(config.frontend, config.word_width, config.period_ps,
                                      seed=frontend_seed)
        if hasattr(device, "skip_min"):
            device.skip_min = _SKIP_MIN_CYCLES     # skip idle spans instead of clocking them
        self.step_s = step_s
        self.duration_s = duration_s
        period = config.period_ps
        start_cycle = device.cycle + _START_MARGIN_CYCLES
        self._time_base = int(start_cycle * period)
        if self._time_base != start_cycle * period:
            raise DeviceError("the station needs a clock period of whole picoseconds")
        self._chunks: Iterator[Chunk] = twin.chunks(duration_s, step_s)
        self._cycle_den = period.denominator
        self._cycle_num = period.numerator
        self.link_time_s = 0.0
        self.events_missed = 0
        self.events_gated = 0          # detector clicks while the detectors were gated off
        self._gated = False
        self._dac_frames = device.dac()[2]
        self._dac_pending: int | None = None

    @property
    def time_base_ps(self) -> int:
        return self._time_base

    def _cycle_at(self, time_ps: int) -> int:
        return -(-(time_ps * self._cycle_den) // self._cycle_num)

    def advance(self) -> StepData:
        if self._dac_pending is not None:      # the frame leaves in the step's first µs
            self.twin.set_actuator(self._dac_pending)
        chunk = next(self._chunks)               # StopIteration ends the run
        times = chunk.time_ps + self._time_base
        channels = chunk.channel
        if self._gated:
            keep = channels == Channel.REF
            self.events_gated += int((~keep).sum())
            times, channels = times[keep], channels[keep]
        late = (times * self._cycle_den) // self._cycle_num < self.device.cycle + 2
        if late.any():                           # see _HOST_MARGIN_CYCLES
            self.events_missed += int(late.sum())
            times, channels = times[~late], channels[~late]
        if times.size:
            self.device.feed_events(self.frontend, times, channels, drain=False)
        end = self._cycle_at(chunk.end_ps + self._time_base) - _HOST_MARGIN_CYCLES
        if end > self.device.cycle:
            self.device.feed(None, end - self.device.cycle)
        if self._dac_pending is not None:
            self._check_dac_frame(self._dac_pending)
        period = self.twin.scenario.period_ps_fraction()
        slots = chunk.end_slot - chunk.first_slot
        self.link_time_s = float(chunk.end_slot * period) * 1e-12
        mid = float((chunk.first_slot + chunk.end_slot) / 2 * period)
        detections = int((channels != Channel.REF).sum())
        return StepData(self.link_time_s, float(slots * period) * 1e-12, detections, slots,
                        true_phase_rad=_wrap(self.twin.phase_rad(mid)))

    def gate_detectors(self, gated: bool) -> None:
        """Detectors off: their clicks do not reach the core (counted in ``events_gated``)."""
        self._gated = bool(gated)

    def apply_dac(self) -> None:
        """The DAC value just written reaches the phase shifter at the start of the next step.

        The twin's actuator takes the written code; after the step, the frame the core sent on
        its SPI pins (decoded, :mod:`tbqkd.sim.dac`) must carry exactly that code.
        """
        self._dac_pending = self.receiver.dac_value

    def _check_dac_frame(self, code: int) -> None:
        word, bits, frames = self.device.dac()
        sent = (word >> 4) & 0xFFFF if bits == 32 else word & 0xFFFF
        if frames == self._dac_frames or sent != code:
            raise DeviceError(f"the DAC pins carried {sent:#06x} (frame {frames}), the host "
                              f"wrote {code:#06x}")
        self._dac_frames = frames
        self._dac_pending = None

    def finish(self) -> None:
        self.device.feed(None, 100_000, drain=True)


def _wrap(phase: float) -> float:
    return float(math.remainder(phase, 2 * math.pi))

