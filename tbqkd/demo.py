"""``make demo``: the tagger on the Verilator model, fed simulated clicks, with what it measured.

Until the full link exists this is the main job: build (cached) and load the core, check its
register-map ID, calibrate every channel's delay line by code density, then tag a burst of
simulated detector clicks and a 1/8-divided reference clock, and report rates, counters and the
timing error of every tag against the true click time.
"""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.table import Table

from tbqkd.hdl.config import TaggerConfig
from tbqkd.host.tagger import TaggerInterface, decode_tags
from tbqkd.host.tdc_calibration import code_density
from tbqkd.sim.device import open_verilator_device
from tbqkd.sim.frontend import DelayLineFrontend

__all__ = ["run_demo"]

PULSE_PERIOD_PS = 13_167.08      # 75.947 MHz, the reference experiment's pulse rate


def _feed(device, frontend, t, ch) -> dict[str, np.ndarray]:
    device.feed_events(frontend, t, ch)
    return decode_tags(device.read_stream())


def run_demo(*, cycles: int = 200_000, seed: int = 1, console: Console | None = None) -> dict:
    console = console or Console()
    config = TaggerConfig()
    period = float(config.period_ps)
    rng = np.random.default_rng(seed)
    wall = time.perf_counter()
    with console.status("building and loading the Verilator model (cached after the first run)"):
        device = open_verilator_device(config)
    tagger = TaggerInterface(device)
    console.print(f"[bold]tbqkd[/] receiver core on Verilator: {config.n_channels} channels, "
                  f"{config.frontend} front end, W={config.word_width}, clock {period:.0f} ps; "
                  f"register map ID {device.read('ID'):#010x} checked")
    frontend = DelayLineFrontend.random(config.word_width, config.period_ps, seed=seed)

    # 1. Code-density calibration from hits uncorrelated with the clock.
    n_cal = 20_000 * config.n_channels
    k = np.arange(n_cal)
    t = ((device.model.cycle + 16 + 8 * k) * period + rng.uniform(0, period, n_cal))
    tags = _feed(device, frontend, t.astype(np.int64), (k % config.n_channels).astype(np.uint8))
    quant = []
    for ch in range(config.n_channels):
        table = code_density(tags["code"][tags["channel"] == ch], tagger.code_count, period)
        tagger.write_calibration(ch, table.fine_ps)
        quant.append(table.quantisation_rms_ps)
    console.print(f"calibrated {config.n_channels} delay lines from {n_cal} hits "
                  f"(bin-width limit {np.mean(quant):.1f} ps RMS)")

    # 2. Clicks: reference every 8th pulse on channel 0; detectors with Poisson clicks on a
    #    time-bin grid (early/late bins 2.5 ns apart, 40 ps jitter) plus dark counts.
    start_ps = (device.model.cycle + 32) * period
    span_ps = cycles * period
    ref = start_ps + np.arange(0, span_ps, 8 * PULSE_PERIOD_PS)
    clicks_t, clicks_ch = [ref], [np.zeros(len(ref), np.uint8)]
    for ch in range(1, config.n_channels):
        n_clicks = rng.poisson(span_ps / PULSE_PERIOD_PS * 0.01)
        slots = np.sort(rng.choice(int(span_ps / PULSE_PERIOD_PS), n_clicks, replace=False))
        bins = rng.integers(0, 2, n_clicks) * 2500.0
        clicks_t.append(start_ps + slots * PULSE_PERIOD_PS + 1000 + bins
                        + rng.normal(0, 40, n_clicks))
        clicks_ch.append(np.full(n_clicks, ch, np.uint8))
    t = np.concatenate(clicks_t)
    ch = np.concatenate(clicks_ch)
    keep = np.ones(len(t), bool)
    order = np.lexsort((t, ch))                      # enforce a 50 ns detector dead time
    dt = np.diff(t[order])
    same = np.diff(ch[order]) == 0
    keep[order[1:][same & (dt < 50_000)]] = False
    t, ch = t[keep].astype(np.int64), ch[keep]
    tic = time.perf_counter()
    tags = _feed(device, frontend, t, ch)
    model_s = time.perf_counter() - tic

    # 3. What the core measured. True times sorted the way the core orders its tags.
    order = np.lexsort((ch, t))
    t_sorted, ch_sorted = t[order], ch[order]
    table = Table(title=f"{cycles * period / 1e6:.2f} µs of tagger time "
                        f"({cycles} cycles) in {model_s:.2f} s of wall time")
    for col in ("channel", "clicks", "tags", "rate (MHz)", "dead-time suppressed", "dropped",
                "timing error RMS (ps)"):
        table.add_column(col, justify="right")
    errors = {}
    for c in range(config.n_channels):
        mine = tags["channel"] == c
        truth = t_sorted[ch_sorted == c]
        counters = tagger.counters(c)
        err = tags["timestamp"][mine].astype(np.int64) - truth[:mine.sum()]
        err = err - np.round(np.mean(err))           # the channel delay calibrates the offset
        errors[c] = float(np.sqrt(np.mean(err.astype(float) ** 2))) if len(err) else 0.0
        table.add_row(f"{c}{' (ref)' if c == 0 else ''}", str(len(truth)), str(int(mine.sum())),
                      f"{len(truth) / (cycles * period) * 1e6:.3f}",
                      str(counters.suppressed), str(counters.dropped), f"{errors[c]:.1f}")
    console.print(table)
    lost = len(t) - len(tags["timestamp"])
    console.print(f"tags out: {device.read('TAGS_OUT')} in {device.read('FRAMES_OUT')} DMA "
                  f"frames; lost: {lost}; overflow flags: {tagger.overflow_flags():#x}; "
                  f"wall time {time.perf_counter() - wall:.1f} s")
    device.close()
    return {"tags": len(tags["timestamp"]), "lost": lost, "rms_error_ps": errors}
