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
    from tbqkd.host.demo import run_demo

    run_demo(cycles=cycles, seed=seed)


def main() -> None:
    """Entry point of the ``tbqkd`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
