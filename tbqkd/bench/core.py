"""Verilator model of the whole core: events per second at 120 km rates (idle skipping) and at
line rate, and lost events."""

from __future__ import annotations

import time

import numpy as np

from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.records import Role
from tbqkd.host.receiver import ReceiverInterface, Window
from tbqkd.host.tagger import TaggerInterface, decode_tags
from tbqkd.sim.device import open_verilator_device
from tbqkd.sim.frontend import make_frontend
from tbqkd.sim.twin import Scenario, Twin

#: Twin channel → core role (the twin's channel numbers are the core's).
ROLES = (Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.OFF)


def _calibrated(config: TaggerConfig, device, seed: int):
    frontend = make_frontend(config.frontend, config.word_width, config.period_ps, seed=seed)
    tagger = TaggerInterface(device)
    for ch in range(config.n_channels):
        tagger.write_calibration(ch, frontend.ideal_fine_ps())
    return frontend, tagger


def link_120km(config: TaggerConfig, link_seconds: float) -> dict:
    """The paper-120km twin through the whole core with idle skipping, answering every
    announcement, one twin chunk (one second of link time) per round."""
    device = open_verilator_device(config)
    frontend, tagger = _calibrated(config, device, seed=1)
    rx = ReceiverInterface(device)
    tagger.set_tag_stream(False)
    for ch, role in enumerate(ROLES):     # the paper's bins: 0, 4 and 8 ns after the pulse
        rx.set_channel_role(ch, role, early=Window(0, 2000), middle=Window(4000, 2000),
                            late=Window(8000, 2000))
    rx.set_phase_window(events=100)
    device.skip_min = 64
    twin = Twin(Scenario.load("paper-120km"), seed=7)
    rng = np.random.default_rng(11)
    detections = answered = 0
    twin_s = core_s = 0.0
    tic = time.perf_counter()
    chunks = twin.chunks(link_seconds, 1.0)
    while True:
        t0 = time.perf_counter()
        chunk = next(chunks, None)
        twin_s += time.perf_counter() - t0
        if chunk is None:
            break
        t0 = time.perf_counter()
        keep = chunk.channel < config.n_channels
        device.feed_events(frontend, chunk.time_ps[keep], chunk.channel[keep], drain=False)
        ann = rx.read_announcements()
        # Alice's bases: random (this bench measures throughput; the link checks the key)
        rx.send_answers(ann["seq"], ann["slot"], rng.integers(0, 2, len(ann["seq"])))
        detections += int(keep.sum())
        answered += len(ann["seq"])
        core_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    device.feed(None, 10_000, drain=True)
    core_s += time.perf_counter() - t0
    wall_s = time.perf_counter() - tic
    accepted = sum(tagger.counters(ch).events for ch in range(config.n_channels))
    dropped = sum(tagger.counters(ch).dropped for ch in range(config.n_channels))
    suppressed = sum(tagger.counters(ch).suppressed for ch in range(config.n_channels))
    counters = rx.sifter_counters()
    windows = rx.read_phase_windows()
    result = {
        "link_seconds": link_seconds,
        "detections": detections,
        "events_per_s": detections / core_s,
        "events_per_s_with_twin": detections / wall_s,
        "link_seconds_per_s": link_seconds / core_s,
        "lost": detections - accepted - suppressed,
        "dropped_counted": dropped,
        "suppressed_by_dead_time": suppressed,
        "announced": counters["announced"],
        "answered": answered,
        "sifted_z": counters["sifted_z"],
        "sifted_x": counters["sifted_x"],
        "phase_windows": len(windows["index"]),
        "cycles_advanced": device.model.cycle,
        "cycles_clocked": device.cycles_clocked,
        "idle_skips": device.skips,
        "twin_s": twin_s,
        "core_s": core_s,
    }
    device.close()
    return result


def line_rate(config: TaggerConfig, events: int) -> dict:
    """Every channel once every ``n`` cycles (its minimum dead time), staggered: one event per
    cycle in aggregate, the core's bound; tags on m_axis, never back-pressured."""
    n = config.n_channels
    device = open_verilator_device(config)
    frontend, tagger = _calibrated(config, device, seed=1)
    rng = np.random.default_rng(3)
    period = float(config.period_ps)
    start = device.model.cycle + 16
    k = np.arange(events)
    t = ((start + k) * period + rng.uniform(0.05, 0.95, events) * period).astype(np.int64)
    tic = time.perf_counter()
    cycles_run = device.feed_events(frontend, t, (k % n).astype(np.uint8), chunk=50_000)
    wall_s = time.perf_counter() - tic
    tags = decode_tags(device.read_stream())
    dropped = sum(tagger.counters(ch).dropped for ch in range(n))
    model_s = device.model_seconds
    device.close()
    return {"line_rate_events_per_s": events / wall_s,
            "line_rate_events_per_s_in_model": events / model_s,
            "line_rate_cycles_per_s": cycles_run / model_s,
            "line_rate_lost": events - len(tags["timestamp"]),
            "line_rate_dropped_counted": dropped}


def run(quick: bool = False) -> dict:
    config = TaggerConfig()
    result = link_120km(config, 10.0 if quick else 60.0)
    result.update(line_rate(config, 50_000 if quick else 500_000))
    result["backend"] = ("verilator (ctypes shim, one call per block of sample words); "
                         "events_per_s counts everything but the twin: sample words from event "
                         "times, the model, reading announcements, writing answers")
    return result
