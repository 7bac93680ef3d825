"""Bob's station on a board, with the board stood in: the receiver's reference model behind
pynq's MMIO and DMAs (loaded through ``TbqkdOverlay`` over a stand-in ``pynq``), fed by the
twin. The station's injected ``sleep`` is what lets time pass: it runs the twin's optics (a
:class:`~tbqkd.sim.station.TwinStation` on the same core) for that long, and the injected clock
reads the twin's link time.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types

import numpy as np
import pytest
from board_standin import PlDevice, bitstream, full_design, make_fake_pynq
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.records import Role
from tbqkd.host.board import NO_GATE_HOOK_WARNING, BoardStation
from tbqkd.host.device import DeviceError
from tbqkd.host.link import bring_up
from tbqkd.sim.model_device import open_model_device
from tbqkd.sim.pynq_shim import MmioShim
from tbqkd.sim.station import TwinStation
from tbqkd.sim.twin import Scenario, Twin

STEP_S = 0.02
ROLES = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.OFF]


class LoggingMmio(MmioShim):
    """The register window, logging writes as ``(register, value)``."""

    def __init__(self, device) -> None:
        super().__init__(device)
        self.writes: list[tuple[str, int]] = []
        self._names = {r.offset + 4 * w: r.name for r in device.regmap for w in range(r.words)}

    def write(self, offset, data) -> None:
        self.writes.append((self._names[offset], data))
        super().write(offset, data)


class Optics:
    """The twin's light into the core: the clock and the sleep the board station is given."""

    def __init__(self, model, twin: Twin, duration_s: float) -> None:
        self.twin_station = TwinStation(model, twin, model.config, duration_s=duration_s,
                                        step_s=STEP_S, frontend_seed=2)
        self.steps: list = []
        self.sleeps: list[float] = []
        self.shift_s = 0.0

    def clock(self) -> float:
        return self.twin_station.link_time_s + self.shift_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        until = self.clock() + seconds
        while self.clock() < until - 1e-9:
            self.steps.append(self.twin_station.advance())


@pytest.fixture
def board(monkeypatch, tmp_path):
    """(overlay module over a stand-in pynq, the model core, its logging MMIO, a board path)."""
    designs: dict[str, dict] = {}
    monkeypatch.setitem(sys.modules, "pynq", make_fake_pynq(designs, PlDevice()))
    for name in ("tbqkd.host.pynq_overlay", "tbqkd.host.pynq_driver"):
        sys.modules.pop(name, None)
    model = open_model_device(TaggerConfig())
    mmio = LoggingMmio(model)
    path = bitstream(tmp_path / "bob")
    designs[str(path.resolve())] = full_design(model, mmio=mmio)[0]
    try:
        module = importlib.import_module("tbqkd.host.pynq_overlay")
        overlay = module.TbqkdOverlay(path)
        yield types.SimpleNamespace(overlay=overlay, model=model, mmio=mmio)
        overlay.close()
    finally:
        model.close()
        for name in ("tbqkd.host.pynq_overlay", "tbqkd.host.pynq_driver"):
            sys.modules.pop(name, None)
            vars(sys.modules["tbqkd.host"]).pop(name.rpartition(".")[2], None)


def bright_twin(seed: int = 3) -> Twin:
    return Twin(Scenario.load("paper-120km", distance_km=80.0), seed=seed)


def test_a_step_is_real_time_read_from_the_core_counters(board):
    twin = bright_twin()
    optics = Optics(board.model, twin, duration_s=1.0)
    board.overlay.receiver.set_slot_period(twin.scenario.period_ps_fraction())   # Alice's
    station = BoardStation(board.overlay.core, step_s=STEP_S, duration_s=5 * STEP_S,
                           clock=optics.clock, sleep=optics.sleep)
    now = board.model.read("TIME")                  # the core's time base, a few accesses on
    assert 0 < now - station.time_base_ps < 100 * board.model.config.period_ps
    assert station.receiver.device is board.overlay.core
    steps = []
    with pytest.raises(StopIteration):
        while True:
            steps.append(station.advance())
    assert len(steps) == 5 and len(optics.steps) == 5
    assert optics.sleeps == pytest.approx([STEP_S] * 5, rel=1e-6)
    # The core's time runs a fibre delay behind Alice's slots (the twin's link time): the
    # first step, from the station's start, spans that much more.
    delay_s = twin.budget.fibre_delay_ps * 1e-12
    slot_s = float(twin.scenario.period_ps_fraction()) * 1e-12
    for i, (mine, light) in enumerate(zip(steps, optics.steps, strict=True)):
        extra = delay_s if i == 0 else 0.0
        assert mine.duration_s == pytest.approx(light.duration_s + extra, abs=2e-5)
        assert mine.slots == pytest.approx(mine.duration_s / slot_s, abs=1)
        assert mine.link_time_s == pytest.approx(light.link_time_s + delay_s, abs=2e-5)
        assert mine.detections == pytest.approx(light.detections, rel=0.05)
    accepted = sum(board.model.read(f"CH{c}_EVENTS") for c in range(1, 5))
    assert sum(s.detections for s in steps) == accepted    # the core was fresh at the start
    assert sum(s.detections for s in steps) > 5_000
    assert optics.twin_station.events_missed == 0
    # nothing written on the way, and the DAC is the core's business
    writes = list(board.mmio.writes)
    station.apply_dac()
    assert board.mmio.writes == writes


def test_gating_without_a_hook_disables_the_detector_channels_once_said(board, caplog):
    caplog.set_level(logging.WARNING, "tbqkd.host.board")
    optics = Optics(board.model, bright_twin(), duration_s=1.0)
    core = board.overlay.core
    core.write("CH2_CONTROL", enable=0)                  # the user's choice: channel 2 off
    station = BoardStation(core, step_s=STEP_S, clock=optics.clock, sleep=optics.sleep)
    station.gate_detectors(True)
    assert [core.read_fields(f"CH{c}_CONTROL")["enable"] for c in range(5)] == [1, 0, 0, 0, 0]
    gated = station.advance()
    assert gated.detections == 0 and gated.slots > 0
    station.gate_detectors(True)                         # again: nothing more is written
    station.gate_detectors(False)
    assert [core.read_fields(f"CH{c}_CONTROL")["enable"] for c in range(5)] == [1, 1, 0, 1, 1]
    assert station.advance().detections > 1000
    assert caplog.text.count(NO_GATE_HOOK_WARNING) == 1
    assert board.model.read("CH0_EVENTS") > 0            # the reference was never gated


def test_gating_with_a_hook_leaves_the_core_alone(board, caplog):
    optics = Optics(board.model, bright_twin(), duration_s=1.0)
    calls: list[bool] = []
    station = BoardStation(board.overlay.core, step_s=STEP_S, clock=optics.clock,
                           sleep=optics.sleep, gate_hook=calls.append)
    writes = len(board.mmio.writes)
    station.gate_detectors(True)
    station.gate_detectors(False)
    assert calls == [True, False] and station.gated is False
    assert len(board.mmio.writes) == writes and NO_GATE_HOOK_WARNING not in caplog.text


def test_a_late_host_is_counted_not_caught_up_and_bad_settings_are_refused(board):
    optics = Optics(board.model, bright_twin(), duration_s=1.0)
    station = BoardStation(board.overlay.core, step_s=STEP_S, clock=optics.clock,
                           sleep=optics.sleep)
    station.advance()
    optics.shift_s += 5 * STEP_S                          # the host was busy for 5 steps
    station.advance()
    assert station.late_steps == 1 and len(optics.sleeps) == 1
    station.advance()
    assert len(optics.sleeps) == 2                        # on time again from here
    with pytest.raises(DeviceError, match="detector channel 7"):
        BoardStation(board.overlay.core, step_s=STEP_S, detector_channels=[1, 7])
    with pytest.raises(DeviceError, match="step_s"):
        BoardStation(board.overlay.core, step_s=0)


def test_bring_up_on_the_board_station_aligns_to_alices_slots(board):
    twin = bright_twin(seed=5)
    scenario = twin.scenario
    optics = Optics(board.model, twin, duration_s=6.0)
    station = BoardStation(board.overlay.core, step_s=STEP_S, clock=optics.clock,
                           sleep=optics.sleep,
                           time_base_ps=optics.twin_station.time_base_ps)
    up = bring_up(station, roles=ROLES, slot_period_ps=scenario.period_ps_fraction(),
                  bin_separation_ps=scenario.alice.time_bin_separation_ps,
                  expected_delay_ps=twin.budget.fibre_delay_ps,
                  divider=scenario.reference.divider, visibility=scenario.bob.visibility)
    assert station.receiver.lock_status().aligned
    assert up.notes == [] and min(up.tdc_hits[:4]) >= 2000
    light = sum(s.detections for s in optics.steps) / sum(s.duration_s for s in optics.steps)
    assert up.detection_rate_hz == pytest.approx(light, rel=0.05) and light > 50_000
    # Bob's slot s is Alice's slot s + offset: the reference pulse that defined Bob's slot 0
    # left Alice at a multiple of the divider, a fibre delay before it arrived.
    period = float(scenario.period_ps_fraction())
    arrival = up.slot_base * period - optics.twin_station.time_base_ps
    alice_slot = (arrival - twin.budget.fibre_delay_ps) / period
    assert up.slot_offset % scenario.reference.divider == 0
    assert abs(alice_slot - up.slot_offset) < 2
    assert not station.gated and optics.twin_station.events_gated == 0
    assert station.steps == len(optics.steps)
    assert np.isfinite(up.tdc_rms_ps[1:4]).all()
