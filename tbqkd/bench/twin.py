"""Digital twin: detection events generated per second, and the six-hour 120 km run."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

__all__ = ["run"]

SIX_HOURS_S = 6 * 3600.0
CHUNK_S = 10.0


def _generate(scenario, duration_s: float, chunk_s: float,
              seed: int = 1) -> tuple[int, float, float]:
    """Events generated, wall seconds, CPU seconds."""
    from tbqkd.sim.twin import Twin

    twin = Twin(scenario, seed=seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    events = 0
    for chunk in twin.chunks(duration_s, chunk_s):
        events += len(chunk)
    return events, time.perf_counter() - start, time.process_time() - start_cpu


def _child(duration_s: float) -> None:
    """Entry point of the subprocess that runs the paper scenario (own peak RSS)."""
    from tbqkd.sim.twin import Scenario

    scenario = Scenario.load("paper-120km")
    _generate(scenario, 1.0, 1.0, seed=2)  # load the compiled kernels
    events, seconds, cpu_seconds = _generate(scenario, duration_s, CHUNK_S)
    print(json.dumps({"events": events, "seconds": seconds, "cpu_seconds": cpu_seconds}))


def run(quick: bool = False) -> dict:
    """Measure ``detections_per_s`` (high-rate link, one core) and the six-hour 120 km run.

    ``detections_per_s`` runs the paper scenario at 0 km (about 6e6 detections per second
    of link time), so the generator is measured rather than the skipping of empty slots. The
    six-hour run is a separate process, so ``peak_rss_mb`` is its own peak memory (chunks of
    10 s of link time). Everything runs on one core. ``quick`` runs two minutes of link time
    and scales the time up. The ``*_cpu_*`` figures use process CPU time: on a shared machine
    they show what a free core would do. ``load_average`` is the machine's one-minute load
    average before and after the measurement.
    """
    from tbqkd.sim.twin import Scenario

    load_before = os.getloadavg()[0]
    dense = Scenario.load("paper-120km", distance_km=0.0)
    _generate(dense, 0.01, 0.01)  # compile or load the kernels
    rates, cpu_rates = [], []
    for seed in (1, 2, 3):
        events, seconds, cpu_seconds = _generate(dense, 0.05 if quick else 0.5, 0.05, seed=seed)
        rates.append(events / seconds)
        cpu_rates.append(events / cpu_seconds)
    rates.sort()
    cpu_rates.sort()
    duration_s = 120.0 if quick else SIX_HOURS_S
    child = subprocess.run(
        [sys.executable, "-c", f"from tbqkd.bench.twin import _child; _child({duration_s})"],
        capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = SIX_HOURS_S / duration_s
    return {
        "detections_per_s": round(rates[1]),
        "detections_per_cpu_s": round(cpu_rates[1]),
        "six_hour_120km_s": round(result["seconds"] * scale, 2),
        "six_hour_120km_cpu_s": round(result["cpu_seconds"] * scale, 2),
        "six_hour_events": round(result["events"] * scale),
        "six_hour_extrapolated": quick,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "chunk_s": CHUNK_S,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
