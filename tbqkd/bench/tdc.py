"""Delay-line TDC precision after code-density calibration (RMS timestamp error, ps)."""

from __future__ import annotations

import time

import numpy as np

from tbqkd.hdl.config import TaggerConfig
from tbqkd.host.tagger import TaggerInterface, decode_tags
from tbqkd.host.tdc_calibration import code_density
from tbqkd.sim.device import open_verilator_device
from tbqkd.sim.frontend import DelayLineFrontend


def _random_hits(rng, start_cycle: int, count: int, spacing_cycles: int, period: float,
                 n_channels: int):
    """One hit every ``spacing_cycles`` cycles, round-robin over channels, uniform phase."""
    k = np.arange(count)
    t = (start_cycle + spacing_cycles * k) * period + rng.uniform(0, period, count)
    return t.astype(np.int64), (k % n_channels).astype(np.uint8)


def _tag(device, frontend, t, ch):
    """Tag hits through the Verilator model; all of them must come out."""
    device.feed_events(frontend, t, ch)
    tags = decode_tags(device.read_stream())
    if len(tags["timestamp"]) != len(t):
        raise RuntimeError(f"{len(t)} hits but {len(tags['timestamp'])} tags")
    return tags


def run(quick: bool = False) -> dict:
    test_events = 20_000 if quick else 100_000
    hits = test_events * (1 if quick else 5)    # calibration: 10^5 hits per channel
    config = TaggerConfig()                      # 256 taps, 4000 ps clock, 4 + 1 channels
    frontend = DelayLineFrontend.random(config.word_width, config.period_ps, low_ps=5,
                                        high_ps=40, seed=2026)
    rng = np.random.default_rng(7)
    period = float(config.period_ps)
    device = open_verilator_device(config)
    tagger = TaggerInterface(device)
    spacing = config.min_dead_time + 3           # well inside the line rate
    wall = time.perf_counter()
    n_ch = config.n_channels

    # 1. Calibration run: raw codes of uncorrelated hits (the table is still all zeros).
    t, ch = _random_hits(rng, device.model.cycle + 16, hits, spacing, period, n_ch)
    tags = _tag(device, frontend, t, ch)
    tables = {}
    for c in range(n_ch):
        codes = tags["code"][tags["channel"] == c]
        tables[c] = code_density(codes, tagger.code_count, period)
        tagger.write_calibration(c, tables[c].fine_ps)
    # The constant offset (cycle window start vs. true time) is what the channel delay
    # register corrects; estimate it from the calibration run only.
    fine = np.array([tables[c].fine_ps[k] for c, k in zip(tags["channel"], tags["code"],
                                                           strict=True)])
    raw = tags["timestamp"].astype(np.int64) + np.round(fine).astype(np.int64)
    offsets = {c: float(np.mean(raw[tags["channel"] == c] - t[tags["channel"] == c]))
               for c in range(n_ch)}
    for c in range(n_ch):
        tagger.set_channel(c, delay_ps=-round(offsets[c]))

    # 2. Fresh events: timestamps against true times.
    t, ch = _random_hits(rng, device.model.cycle + 16, test_events, spacing, period, n_ch)
    tags = _tag(device, frontend, t, ch)
    err = tags["timestamp"].astype(np.int64) - t
    wall = time.perf_counter() - wall
    device.close()
    per_channel = {c: float(np.sqrt(np.mean(err[tags["channel"] == c] ** 2)))
                   for c in range(n_ch)}
    return {
        "rms_error_ps": float(np.sqrt(np.mean(err.astype(np.float64) ** 2))),
        "rms_error_ps_per_channel": per_channel,
        "mean_error_ps": float(err.mean()),
        "max_abs_error_ps": int(np.abs(err).max()),
        "quantisation_rms_ps": float(np.mean([tables[c].quantisation_rms_ps
                                              for c in range(n_ch)])),
        "calibration_hits": hits, "test_events": test_events,
        "taps": config.word_width, "tap_delay_range_ps": [5, 40],
        "line_span_ps": float(frontend.tap_delays_ps.sum()), "clock_period_ps": period,
        "backend": "verilator", "wall_s": round(wall, 2),
    }
