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


_BENCH_PARAMS = typer.Option([], "--param", "-p", metavar="NAME=VALUE",
                             help="a parameter of the benchmark's run() (repeatable; "
                                  "e.g. fer: -p qber=0.01 -p frames=3000)")


@app.command()
def bench(name: str = typer.Argument("", help="benchmark name (see --list)"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
          quick: bool = typer.Option(False, "--quick", help="smaller sizes, for smoke tests"),
          params: list[str] = _BENCH_PARAMS,
          list_: bool = typer.Option(False, "--list", help="list the benchmarks")) -> None:
    """Run one benchmark and print its figures."""
    from tbqkd import bench as benches

    if list_ or not name:
        for bench_name, summary in sorted(benches.available().items()):
            typer.echo(f"{bench_name:10s} {summary}")
        return
    try:
        result = benches.run(name, quick=quick, params=dict(_bench_param(p) for p in params))
    except KeyError:
        fail(f"unknown benchmark {name!r}; `tbqkd bench --list` shows the names")
    except benches.BenchParameterError as error:
        fail(f"bench {name}: {error}")
    result.setdefault("machine", f"{platform.machine()} {platform.processor() or ''}".strip())
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:24s} {value}")


def _bench_param(text: str) -> tuple[str, int | float | str]:
    """``NAME=VALUE`` with the value read as an int, else a float, else kept as text."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        fail(f"--param wants NAME=VALUE, got {text!r}")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


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


def _link_command(backend: str, scenario: str, distance_km: float | None, duration: float,
                  seed: int, no_feedback: bool, eve: str | None, as_json: bool, out: str | None,
                  block_bits: int, ec: str, live: bool, min_block_bits: int = 20_000) -> None:
    from tbqkd.link_run import RunError, RunOptions, run_link

    options = RunOptions(backend=backend, scenario=scenario, distance_km=distance_km,
                         duration_s=duration, seed=seed, feedback=not no_feedback, eve=eve,
                         run_dir=out, block_bits=block_bits, min_block_bits=min_block_bits,
                         ec_method=ec, live=live and not as_json)
    from tbqkd.host.device import DeviceError
    from tbqkd.host.protocol import ProtocolError

    try:
        summary = run_link(options)
    except RunError as error:
        fail(str(error))
    except (ProtocolError, DeviceError) as error:      # the link stopped: say why, no trace
        fail(f"the link stopped: {type(error).__name__}: {error}")
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"run folder: {summary['run_dir']} (report.html, metrics.jsonl, key stores)")
    for key in ("distance_km", "duration_s", "detections_per_s", "sifted_bps", "qber_z",
                "qber_x", "skr_bps", "skr_asymptotic_bps", "ec_efficiency", "secret_bits",
                "aborted_blocks", "keys_identical"):
        value = summary[key]
        typer.echo(f"{key:22s} {value:.6g}" if isinstance(value, float) else
                   f"{key:22s} {value}")


_BACKEND = typer.Option("verilator", help="verilator | model | pynq")
_SCENARIO = typer.Option("paper-120km", help="twin scenario name or .toml path")
_DISTANCE = typer.Option(None, "--distance-km", help="override the fibre length (km)")
_DURATION = typer.Option(60.0, help="link time to run after bring-up (s)")
_SEED = typer.Option(1, help="random seed of the twin and Alice's states")
_NO_FEEDBACK = typer.Option(False, "--no-feedback", help="leave the phase actuator alone")
_EVE = typer.Option(None, help="eavesdropper, e.g. intercept-resend:0.2")
_JSON = typer.Option(False, "--json", help="print one JSON object (no live view)")
_OUT = typer.Option(None, help="run folder (default runs/<date-time>)")
_BLOCK = typer.Option(1_000_000, "--block-bits", help="sifted Z bits per distillation block")
_EC = typer.Option("ldpc", help="error correction: ldpc | cascade")
_LIVE = typer.Option(True, "--live/--no-live", help="live view while running")
_MIN_BLOCK = typer.Option(20_000, "--min-block-bits",
                          help="the last, partial block is distilled if at least this long")


@app.command()
def run(backend: str = _BACKEND, scenario: str = _SCENARIO, distance_km: float = _DISTANCE,
        duration: float = _DURATION, seed: int = _SEED, no_feedback: bool = _NO_FEEDBACK,
        eve: str = _EVE, as_json: bool = _JSON, out: str = _OUT, block_bits: int = _BLOCK,
        ec: str = _EC, live: bool = _LIVE, min_block_bits: int = _MIN_BLOCK) -> None:
    """Run the QKD link: Bob's core (Verilator model by default) fed by the twin, with Alice."""
    _link_command(backend, scenario, distance_km, duration, seed, no_feedback, eve, as_json,
                  out, block_bits, ec, live, min_block_bits)


@app.command()
def simulate(scenario: str = _SCENARIO, distance_km: float = _DISTANCE,
             duration: float = _DURATION, seed: int = _SEED, no_feedback: bool = _NO_FEEDBACK,
             eve: str = _EVE, as_json: bool = _JSON, out: str = _OUT, block_bits: int = _BLOCK,
             ec: str = _EC, live: bool = _LIVE, min_block_bits: int = _MIN_BLOCK) -> None:
    """`tbqkd run` on the reference-model backend (bit-exact with the core, much faster)."""
    _link_command("model", scenario, distance_km, duration, seed, no_feedback, eve, as_json,
                  out, block_bits, ec, live, min_block_bits)


_RUN_DIR = typer.Argument(..., help="a run folder written by tbqkd run")
_COMPARE = typer.Option([], help="other run folders to compare with, e.g. the same run with "
                        "--no-feedback (repeatable)")


@app.command()
def report(run_dir: str = _RUN_DIR, compare: list[str] = _COMPARE) -> None:
    """(Re)write a run folder's plots and offline HTML report, optionally comparing runs."""
    from pathlib import Path

    from tbqkd.host.report import RunLogError, write_report

    try:
        path = write_report(Path(run_dir), compare=[Path(c) for c in compare])
    except (RunLogError, OSError) as error:
        fail(str(error))
    typer.echo(f"wrote {path}")


def _read_psk(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        fail(f"cannot read the pre-shared key {path}: {error.strerror}")
    if len(data) < 1024:
        fail(f"pre-shared key {path} has {len(data)} bytes; make one with `tbqkd node psk FILE`")
    return data


_BITFILE = typer.Option(None, help="pynq: this node's bitstream (.hwh beside it)")
_QRNG = typer.Option(None, help="pynq, alice: random-bit device or file (default: the OS "
                     "generator, not for production keys)")
_SLOT_DIVIDER = typer.Option(1, help="pynq, alice: fabric clocks per pulse slot (the "
                             "bitstream's --aclk-mhz / --ref-clk-mhz)")
_BOARD_KEY = typer.Option(None, "--board-key", help="the board link's key file (tbqkd node psk "
                          "FILE; the same on the board and its node, not the nodes' key)")


@app.command()
def board(role: str = typer.Argument(..., help="alice | bob"),
          listen: str = typer.Option(..., help="HOST:PORT to serve the node on"),
          board_key: str = _BOARD_KEY, bitfile: str = _BITFILE, qrng: str = _QRNG) -> None:
    """On a board: serve its core to the node on a companion computer (`tbqkd node ROLE
    --backend pynq --board HOST:PORT`). Bob's board serves his receiver's registers and
    streams; Alice's runs her transmitter as her node configures it and serves its states.
    Stop with Ctrl-C.
    """
    from tbqkd.link_run import RunError, RunOptions, serve_board

    options = RunOptions(backend="pynq", bitfile=bitfile, qrng=qrng, board_key=board_key)
    try:
        summary = serve_board(options, role, listen)
    except RunError as error:
        fail(str(error))
    typer.echo(json.dumps(summary))


@app.command()
def node(role: str = typer.Argument(..., help="alice | bob | psk"),
         target: str = typer.Argument(None, help="psk: the key file to create"),
         listen: str = typer.Option(None, help="alice: HOST:PORT to listen on"),
         connect: str = typer.Option(None, help="bob: HOST:PORT of Alice"),
         psk: str = typer.Option(None, help="pre-shared key file (same on both nodes)"),
         backend: str = _BACKEND, scenario: str = _SCENARIO, distance_km: float = _DISTANCE,
         duration: float = _DURATION, seed: int = _SEED, no_feedback: bool = _NO_FEEDBACK,
         eve: str = _EVE, as_json: bool = _JSON, out: str = _OUT, block_bits: int = _BLOCK,
         ec: str = _EC,
         bitfile: str = _BITFILE, qrng: str = _QRNG, slot_divider: int = _SLOT_DIVIDER,
         sync_search_s: float = typer.Option(
             None, "--sync-search-s", help="bob: how well (s) the start of Alice's "
             "transmission is known; the slot synchronisation searches that far (default: 1 s "
             "on boards)"),
         board: str = typer.Option(None, help="pynq: HOST:PORT of this node's board, served by "
                                   "`tbqkd board` (the node then runs on this computer)"),
         board_key: str = _BOARD_KEY) -> None:
    """Alice and Bob as two processes over TCP (`tbqkd node psk KEYFILE` makes a shared key).

    With `--backend pynq` each runs on its own board: Alice drives her transmitter core, Bob
    his receiver core and detectors. With `--board HOST:PORT` the node runs on a companion
    computer and its board serves the core (`tbqkd board`): the PYNQ-Z2 has no numba for the
    distillation.
    """
    import os
    import secrets

    from tbqkd.link_run import PRE_SHARED_KEY_BYTES, RunError, RunOptions, run_link, serve_alice

    if role == "psk":
        if not target:
            fail("give the file to create: tbqkd node psk KEYFILE")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            fail(f"cannot create {target}: {error.strerror}")
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(PRE_SHARED_KEY_BYTES))
        typer.echo(f"wrote {PRE_SHARED_KEY_BYTES} random bytes to {target} (mode 600); copy it "
                   "to the other node over a trusted path")
        return
    if role not in ("alice", "bob"):
        fail(f"unknown role {role!r}; use alice, bob or psk")
    if not psk:
        fail("both nodes need the same pre-shared key: --psk FILE (tbqkd node psk FILE)")
    key = _read_psk(psk)
    options = RunOptions(backend=backend, scenario=scenario, distance_km=distance_km,
                         duration_s=duration, seed=seed, feedback=not no_feedback, eve=eve,
                         run_dir=out, block_bits=block_bits, ec_method=ec, live=not as_json,
                         bitfile=bitfile, qrng=qrng, slot_divider=slot_divider,
                         sync_search_s=sync_search_s, board=board, board_key=board_key)
    from tbqkd.host.device import DeviceError
    from tbqkd.host.protocol import ProtocolError

    try:
        if role == "alice":
            if not listen:
                fail("alice needs --listen HOST:PORT")
            summary = serve_alice(options, listen, key)
        else:
            if not connect:
                fail("bob needs --connect HOST:PORT")
            summary = run_link(options, alice_address=connect, psk=key)
    except RunError as error:
        fail(str(error))
    except (ProtocolError, DeviceError, ConnectionError) as error:
        fail(f"the link stopped: {type(error).__name__}: {error}")
    typer.echo(json.dumps(summary) if as_json else "\n".join(
        f"{k:22s} {v}" for k, v in summary.items()))


def main() -> None:
    """Entry point of the ``tbqkd`` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
