"""The link: wall time per link time of `paper-120km` through the model and Verilator backends.

The issue's figures are six hours of link time through ``tbqkd simulate`` (``model_wall_s``)
and through the Verilator backend (``verilator_wall_s``). Six hours take far longer than a
benchmark run can on this machine today (a quarter of an hour on the model, many hours on
Verilator), so each backend runs a measured stretch of link time, bring-up and distillation
included, and the six-hour figures are extrapolated from the measured wall time per link
second after bring-up (``*_six_hours_est_s``); ``model_wall_s``/``verilator_wall_s`` are the
measured runs themselves, with their link time in ``*_link_s``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

__all__ = ["run"]

SIX_HOURS_S = 6 * 3600.0


def _one(backend: str, duration_s: float, seed: int) -> dict:
    from tbqkd.link_run import RunOptions, run_link

    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(backend=backend, duration_s=duration_s, seed=seed,
                             block_bits=100_000_000, min_block_bits=10_000, live=False,
                             report=False, run_dir=Path(tmp) / "run")
        start = time.perf_counter()
        summary = run_link(options)
        wall = time.perf_counter() - start
    bring_up = summary["bring_up_wall_s"]
    return {"wall_s": wall, "link_s": summary["duration_s"], "bring_up_s": bring_up,
            "per_link_s": (wall - bring_up) / summary["duration_s"], "summary": summary}


def run(quick: bool = False) -> dict:
    """Run each backend for a stretch of link time and extrapolate to six hours.

    Per link second: the run's wall time after bring-up (device opened, histograms taken,
    windows placed, slot offset found: the summary's ``bring_up_wall_s``), distillation of
    the one block at the end included, divided by the link time. Six hours: the bring-up
    plus that rate times 21 600 s.
    """
    model_s, verilator_s = (20.0, 2.0) if quick else (300.0, 20.0)
    _one("model", 1.0, seed=3)                       # warm-up: numba compilation and caches
    model = _one("model", model_s, seed=1)
    verilator = _one("verilator", verilator_s, seed=1)
    s = model["summary"]
    v = verilator["summary"]
    return {
        "scenario": "paper-120km",
        "model_wall_s": round(model["wall_s"], 1), "model_link_s": round(model["link_s"], 1),
        "model_bring_up_s": round(model["bring_up_s"], 1),
        "model_wall_per_link_s": round(model["per_link_s"], 4),
        "model_six_hours_est_s": round(model["bring_up_s"]
                                       + model["per_link_s"] * SIX_HOURS_S),
        "verilator_wall_s": round(verilator["wall_s"], 1),
        "verilator_link_s": round(verilator["link_s"], 2),
        "verilator_bring_up_s": round(verilator["bring_up_s"], 1),
        "verilator_wall_per_link_s": round(verilator["per_link_s"], 3),
        "verilator_six_hours_est_s": round(verilator["bring_up_s"]
                                           + verilator["per_link_s"] * SIX_HOURS_S),
        "detections_per_s": round(s["detections_per_s"]),
        "sifted_bps": round(s["sifted_bps"]), "qber_z": s["qber_z"], "qber_x": s["qber_x"],
        "ec_efficiency": s["ec_efficiency"], "secret_bits": s["secret_bits"],
        "verilator_qber_x": v["qber_x"], "verilator_sifted_bps": round(v["sifted_bps"]),
        "goal_model_s": 120, "goal_verilator_s": 1200,
    }
