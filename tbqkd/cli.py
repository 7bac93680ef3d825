"""The ``tbqkd`` command-line tool.

Subcommands are thin: each parses options and calls one library function. Heavy imports
(amaranth, numba, the Verilator model) happen inside the commands, so ``tbqkd --help`` is fast.
"""

from __future__ import annotations

import json
import platform
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="tbqkd: time-bin QKD receiver core, host software and digital twin.")


def fail(message: str) -> None:
    """Print one clear line on stderr and exit with status 2."""
    typer.echo(f"tbqkd: error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def bench(name: str = typer.Argument("", help="benchmark name (see --list)"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
          quick: bool = typer.Option(False, "--quick", help="smaller sizes, for smoke tests"),
          list_: bool = typer.Option(False, "--list", help="list the benchmarks")) -> None:
    """Run one benchmark and print its figures."""
    from tbqkd import bench as benches

    if list_ or not name:
        for bench_name, summary in sorted(benches.available().items()):
            typer.echo(f"{bench_name:10s} {summary}")
        return
    try:
        result = benches.run(name, quick=quick)
    except KeyError:
        fail(f"unknown benchmark {name!r}; `tbqkd bench --list` shows the names")
    result.setdefault("machine", f"{platform.machine()} {platform.processor() or ''}".strip())
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:24s} {value}")


@app.command()
def demo(cycles: int = typer.Option(200_000, help="clock cycles of tagger time to run"),
         seed: int = typer.Option(1, help="random seed")) -> None:
    """The main job: run the core on the Verilator model with simulated clicks."""
    from tbqkd.demo import run_demo

    run_demo(cycles=cycles, seed=seed)


@app.command()
def twin(scenario: str = typer.Option("paper-120km", help="scenario name or .toml path"),
         duration: float = typer.Option(..., help="link time to simulate (s)"),
         out: str = typer.Option(..., help="events file to write (.npz, see docs/TWIN.md)"),
         distance_km: float = typer.Option(None, "--distance-km", help="override fibre length"),
         seed: int = typer.Option(0, help="random seed"),
         chunk_s: float = typer.Option(1.0, "--chunk-s", help="chunk length (s of link time)"),
         plot: str = typer.Option(None, help="also draw arrival-time histograms to FILE.png")
         ) -> None:
    """Run the digital twin of the optics and write its detection events to a file."""
    from tbqkd.sim.twin import Scenario, ScenarioError
    from tbqkd.sim.twin.io import simulate_to_file

    try:
        overrides = {} if distance_km is None else {"distance_km": distance_km}
        link = Scenario.load(scenario, **overrides)
        summary = simulate_to_file(link, duration, out, seed=seed, chunk_s=chunk_s, plot=plot)
    except (ScenarioError, OSError) as error:
        fail(str(error))
    lost = sum(summary["lost_dead_time"])
    typer.echo(f"{summary['events']} events ({lost} lost to dead time) written to {out}")


def main() -> None:
    """Entry point of the ``tbqkd`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
