"""The error-correction benchmarks' command line: parameters and the campaign's fields."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tbqkd.cli import app


def test_fer_campaign_reports_counts_that_add_up():
    result = CliRunner().invoke(app, ["bench", "fer", "--quick", "--json",
                                      "-p", "qber=0.03", "--param", "frames=6"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["qber"] == 0.03 and figures["frames"] == 6 and figures["block_bits"] == 10_000
    assert figures["failures"] == 0 and figures["fer"] == 0.0
    assert 0.3 < figures["fer_95_upper"] < 0.5      # Clopper-Pearson: 1 - 0.05 ** (1 / 6)
    assert 1.0 < figures["f_median"] <= figures["f_p90"] <= figures["f_max"] < 1.6
    assert 0 <= figures["rescued_frames"] <= 6


def test_bench_parameters_are_checked_before_running():
    runner = CliRunner()
    unknown = runner.invoke(app, ["bench", "fer", "-p", "frame=3"])
    assert unknown.exit_code == 2 and "unknown parameter(s) frame" in unknown.output
    assert "fer takes qber, frames, first_seed" in unknown.output
    malformed = runner.invoke(app, ["bench", "fer", "-p", "frames"])
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output
    for bad in ("qber=0.7", "qber=low", "frames=0", "frames=2.5"):
        out_of_range = runner.invoke(app, ["bench", "fer", "-p", bad])
        assert out_of_range.exit_code == 2 and "0 < qber < 0.5" in out_of_range.output, bad
    no_params = runner.invoke(app, ["bench", "pa", "-p", "size=3"])
    assert no_params.exit_code == 2 and "pa takes none" in no_params.output
