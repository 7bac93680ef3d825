"""Event files, the arrival-time plot, the `tbqkd twin` command and the bench module."""

from __future__ import annotations

import json

import numpy as np
from tbqkd.sim.twin import TRUTH_FIELDS, Scenario, Twin
from tbqkd.sim.twin.io import read_events, simulate_to_file
from typer.testing import CliRunner

from tbqkd.cli import app


def test_file_holds_the_same_events_as_the_chunks(tmp_path):
    scenario = Scenario.load("paper-120km", distance_km=50)
    summary = simulate_to_file(scenario, 0.05, tmp_path / "ev.npz", seed=4, chunk_s=0.01)
    arrays, meta = read_events(tmp_path / "ev.npz")
    chunks = list(Twin(scenario, seed=4).chunks(0.05, 0.01))
    for name in TRUTH_FIELDS:
        assert np.array_equal(arrays[name], np.concatenate([getattr(c, name) for c in chunks]))
    assert meta["events"] == summary["events"] == arrays["time_ps"].size > 1000
    assert meta["channels"] == {"REF": 0, "Z": 1, "X_PLUS": 2, "X_MINUS": 3}
    assert meta["period_ps"] == "1000000000/75947"
    assert Scenario.from_dict(meta["scenario"]) == scenario


def test_cli_writes_events_and_plot(tmp_path):
    out, png = tmp_path / "run.npz", tmp_path / "hist.png"
    result = CliRunner().invoke(app, ["twin", "--scenario", "paper-120km", "--duration", "0.05",
                                      "--distance-km", "60", "--seed", "3", "--out", str(out),
                                      "--plot", str(png)])
    assert result.exit_code == 0, result.output
    arrays, meta = read_events(out)
    assert meta["scenario"]["channel"]["distance_km"] == 60
    assert meta["seed"] == 3
    assert np.all(np.diff(arrays["time_ps"]) >= 0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{arrays['time_ps'].size} events" in result.output


def test_cli_reports_bad_scenario(tmp_path):
    result = CliRunner().invoke(app, ["twin", "--scenario", "nope", "--duration", "1",
                                      "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2
    assert "no scenario 'nope'" in result.output


def test_cli_reports_missing_output_folder_before_running(tmp_path):
    result = CliRunner().invoke(app, ["twin", "--duration", "1000",
                                      "--out", str(tmp_path / "no" / "x.npz")])
    assert result.exit_code == 2
    assert "no such directory" in result.output


def test_bench_quick_reports_the_figures():
    from tbqkd.bench import twin as bench

    result = bench.run(quick=True)
    json.dumps(result)
    for key in ("detections_per_s", "six_hour_120km_s", "peak_rss_mb"):
        assert result[key] > 0
