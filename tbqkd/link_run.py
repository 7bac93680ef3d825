"""``tbqkd run`` / ``tbqkd simulate``: the whole link, its live view, run folder and summary.

Builds Bob's station (the twin into the Verilator model or the reference model, or a PYNQ
board), brings the receiver up (:func:`tbqkd.host.link.bring_up`), then runs Alice's and Bob's
nodes over an in-memory authenticated channel step by step: sifting, phase feedback, blocks of
distillation into the two key stores. Everything measured goes to ``metrics.jsonl`` in the run
folder, which :mod:`tbqkd.host.report` turns into plots and an offline HTML report.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.records import Role

if TYPE_CHECKING:
    from tbqkd.host.device import Device
    from tbqkd.host.distill import DistillConfig
    from tbqkd.host.link import BringUp, Station
    from tbqkd.sim.twin import Scenario

__all__ = ["RunOptions", "RunError", "LinkSetup", "open_link", "parse_eve", "run_link",
           "serve_board", "serve_alice", "make_alice", "start_transmitter",
           "transmitter_settings", "distill_config",
           "BACKENDS"]

BACKENDS = ("verilator", "model", "pynq")
ROLES = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.OFF]
PRE_SHARED_KEY_BYTES = 32_768   # 16 KiB of pad per direction: above the refill target
MAX_STEP_S = 0.5                 # two steps per 1 s feedback window at 120 km
ANNOUNCEMENTS_PER_STEP = 12_000  # inside the core's pending store (16 384 records)


class RunError(ValueError):
    """A setting is wrong or a backend is not available: one line saying what and how to fix."""


@dataclass(frozen=True)
class RunOptions:
    backend: str = "verilator"
    scenario: str = "paper-120km"
    distance_km: float | None = None
    duration_s: float = 60.0
    seed: int = 1
    feedback: bool = True
    eve: str | None = None
    run_dir: Path | None = None
    block_bits: int = 1_000_000
    min_block_bits: int = 20_000
    ec_method: str = "ldpc"
    feedback_window_s: float = 1.0
    live: bool = True
    report: bool = True
    bitfile: str | None = None      # pynq: this node's bitstream (default: bitstreams/<board>/)
    qrng: str | None = None         # pynq, Alice: random-bit device or file (else the OS's)
    slot_divider: int = 1           # pynq, Alice: fabric clocks per slot, as her bitstream's clock
    sync_search_s: float | None = None   # how well Bob knows when Alice's slot 0 left (default:
    #                                      SYNC_SEARCH_S on a board, exact in simulation)
    board: str | None = None        # pynq: HOST:PORT of this node's board server (tbqkd board)
    board_key: str | None = None    # pynq: the board link's key file


def parse_eve(spec: str | None) -> float:
    """``intercept-resend:FRACTION`` → the fraction of slots Eve attacks (0 without Eve)."""
    if not spec:
        return 0.0
    kind, _, value = spec.partition(":")
    if kind != "intercept-resend":
        raise RunError(f"unknown attack {kind!r}; use --eve intercept-resend:FRACTION")
    try:
        fraction = float(value)
    except ValueError:
        raise RunError(f"--eve {spec}: FRACTION must be a number in [0, 1]") from None
    if not 0 <= fraction <= 1:
        raise RunError(f"--eve {spec}: FRACTION must be in [0, 1]")
    return fraction


def _check(options: RunOptions):
    from tbqkd.sim.twin import Scenario, ScenarioError

    if options.backend not in BACKENDS:
        raise RunError(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKENDS)}")
    if not options.duration_s > 0:
        raise RunError(f"--duration must be positive, got {options.duration_s}")
    if options.distance_km is not None and options.distance_km < 0:
        raise RunError(f"--distance-km must not be negative, got {options.distance_km}")
    if options.sync_search_s is not None and not 0 <= options.sync_search_s <= 3600:
        raise RunError(f"--sync-search-s must be in [0, 3600] s, got {options.sync_search_s}")
    if options.block_bits < options.min_block_bits:
        raise RunError("--block-bits must be at least the minimum block size "
                       f"({options.min_block_bits})")
    overrides = {}
    if options.distance_km is not None:
        overrides["distance_km"] = options.distance_km
    fraction = parse_eve(options.eve)
    if fraction:
        overrides["intercept_resend_fraction"] = fraction
    try:
        return Scenario.load(options.scenario, **overrides)
    except ScenarioError as error:
        raise RunError(f"{error}") from None


def _open_device(backend: str, config: TaggerConfig):
    from tbqkd.host.device import DeviceError

    try:
        if backend == "verilator":
            from tbqkd.sim.device import open_verilator_device
            return open_verilator_device(config)
        if backend == "model":
            from tbqkd.sim.model_device import open_model_device
            return open_model_device(config)
        raise RunError(f"unknown backend {backend!r}")
    except (DeviceError, OSError) as error:
        raise RunError(f"backend {backend} not available: {error}") from None


def _open_board(options: RunOptions):
    """Bob's receiver overlay on this PYNQ board (pynq is imported only here)."""
    from tbqkd.host.device import DeviceError

    try:
        from tbqkd.host.pynq_overlay import TbqkdOverlay

        return TbqkdOverlay(options.bitfile)
    except (DeviceError, OSError, ImportError) as error:
        raise RunError(f"backend pynq not available: {error} (on a PC use --backend verilator "
                       "or model; on a board see docs/DEPLOY.md)") from None


def _step_s(twin) -> float:
    """A step short enough that its announcements fit the core's pending store."""
    exp = twin.expected()
    rate = sum(exp.click_rate_hz) + 1.0
    step = min(MAX_STEP_S, ANNOUNCEMENTS_PER_STEP / rate)
    return float(max(step, 1e-4))


#: Seconds within which Bob knows when Alice's slot 0 left, on boards (two hosts started
#: together by hand, or clocks kept by NTP): the slot synchronisation searches this far.
SYNC_SEARCH_S = 1.0


def _sync_search(options: RunOptions, scenario) -> int:
    """Reference periods either side of the nominal slot offset for the synchronisation."""
    seconds = options.sync_search_s
    if seconds is None:
        seconds = SYNC_SEARCH_S if options.backend == "pynq" else 0.0
    period_s = scenario.reference.divider / scenario.source.pulse_rate_hz
    return max(2, math.ceil(seconds / period_s))


def _bring_up_seconds(twin, scenario, step_s: float) -> float:
    """Link time the bring-up needs (TDC, histograms, alignment, sync sample), with a margin."""
    from tbqkd.host.link import HISTOGRAM_DETECTIONS, TDC_MIN_HITS
    from tbqkd.host.slot_sync import SYNC_SAMPLE_DETECTIONS

    rate = sum(twin.expected().click_rate_hz)
    reference_rate = scenario.source.pulse_rate_hz / scenario.reference.divider
    seconds = (2 * TDC_MIN_HITS * 3 + HISTOGRAM_DETECTIONS + 3 * SYNC_SAMPLE_DETECTIONS) / rate \
        + 1.2 * TDC_MIN_HITS / reference_rate + 2 * scenario.reference.divider \
        / scenario.source.pulse_rate_hz
    return 1.3 * seconds + 6 * step_s


class _Live:
    """The live view: one rich table, refreshed a few times a second."""

    def __init__(self, console, enabled: bool, title: str) -> None:
        self._enabled = enabled
        self._title = title
        self._console = console
        self._live = None
        self._last = 0.0

    def __enter__(self) -> _Live:
        if self._enabled:
            from rich.live import Live
            self._live = Live(console=self._console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, make_state, *, force: bool = False) -> None:
        """Show ``make_state()`` (called only when a refresh is due)."""
        if self._live is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        state = make_state()
        from rich.table import Table

        table = Table(title=self._title, show_header=False, min_width=60)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for name, value in state.items():
            table.add_row(name, value)
        self._live.update(table)


def _fmt(value, spec: str = ".3g", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{spec}}{unit}"


@dataclass
class LinkSetup:
    """Bob's side of a run before the link starts: the core, the station feeding it, and the
    nominal link (scenario) the calibration starts from.

    Made by :func:`open_link`; :meth:`calibrate` brings the receiver up. Hand it to
    :func:`run_link` to run the link on this station without a second bring-up (the
    getting-started notebook looks at the calibration first).
    """

    options: RunOptions
    scenario: Scenario
    config: TaggerConfig
    device: Device
    station: Station
    step_s: float
    up: BringUp | None = None

    def calibrate(self) -> BringUp:
        """Run the bring-up (:func:`tbqkd.host.link.bring_up`) once; return its result."""
        from tbqkd.host.link import bring_up
        from tbqkd.sim.twin.channel import LinkBudget

        if self.up is None:
            scenario = self.scenario
            self.up = bring_up(
                self.station, roles=ROLES[:self.config.n_channels],
                slot_period_ps=scenario.period_ps_fraction(),
                bin_separation_ps=scenario.alice.time_bin_separation_ps,
                expected_delay_ps=LinkBudget.of(scenario).fibre_delay_ps,
                divider=scenario.reference.divider, visibility=scenario.bob.visibility)
        return self.up

    def close(self) -> None:
        self.device.close()


def open_link(options: RunOptions) -> LinkSetup:
    """Open the backend's core and build Bob's station for a run of ``options``.

    Raises
    ------
    RunError
        On a bad setting or a backend that is not available.
    """
    from tbqkd.sim.station import TwinStation
    from tbqkd.sim.twin import Twin

    scenario = _check(options)
    config = TaggerConfig()
    twin = Twin(scenario, seed=options.seed)     # on a board: its expected rates only
    step_s = _step_s(twin)
    duration_s = _bring_up_seconds(twin, scenario, step_s) + options.duration_s
    if options.backend == "pynq":
        from tbqkd.host.board import BoardStation
        from tbqkd.host.device import DeviceError
        from tbqkd.host.remote import RemoteDevice

        try:
            device = RemoteDevice(_board_client(options)) if options.board else \
                _open_board(options).core
        except DeviceError as error:
            raise RunError(f"--board {options.board}: {error}") from None
        station = BoardStation(device, step_s=step_s, duration_s=duration_s)
    else:
        device = _open_device(options.backend, config)
        station = TwinStation(device, twin, config, duration_s=duration_s, step_s=step_s,
                              frontend_seed=options.seed)
    return LinkSetup(options, scenario, config, device, station, step_s)


def run_link(options: RunOptions, *, console=None, alice_address: str | None = None,
             psk: bytes | None = None, setup: LinkSetup | None = None) -> dict:
    """Run the link as ``options`` say; return the summary (the ``--json`` object).

    Alice runs in this process, or in another one serving at ``alice_address`` (``tbqkd node
    alice``); both need the same pre-shared key ``psk`` then. ``setup`` is a station opened
    (and perhaps calibrated) by :func:`open_link` with the same options; by default the run
    opens its own. The run closes the device at the end.

    Raises
    ------
    RunError
        On a bad setting or a backend that is not available.
    """
    from rich.console import Console

    from tbqkd.host.auth import AuthenticatedChannel
    from tbqkd.host.feedback import FeedbackConfig, PhaseController
    from tbqkd.host.keystore import KeyStore
    from tbqkd.host.link import BobNode, LinkSettings, exchange
    from tbqkd.host.report import RunLog, write_report

    console = console or Console(stderr=True)
    scenario = _check(options)
    wall = time.perf_counter()
    run_dir = Path(options.run_dir or Path("runs") / _dt.datetime.now().strftime(
        "%Y%m%d-%H%M%S"))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"run folder {run_dir} exists and is not empty; choose another --out")
    if options.backend == "pynq" and alice_address is None:
        raise RunError("on boards Alice runs on her own board: start `tbqkd node alice --backend "
                       "pynq --listen HOST:PORT` there and `tbqkd node bob --backend pynq "
                       "--connect HOST:PORT` here (docs/DEPLOY.md)")
    if setup is None:
        setup = open_link(options)
    elif setup.options != options:
        raise RunError("the station was opened for other run options")
    station, device, step_s = setup.station, setup.device, setup.step_s
    log = RunLog(run_dir)
    from tbqkd import __version__
    log.write({"type": "run", "started": _dt.datetime.now(_dt.timezone.utc).isoformat(),
               "backend": options.backend, "scenario": scenario.name,
               "distance_km": scenario.channel.distance_km, "duration_s": options.duration_s,
               "seed": options.seed, "feedback": options.feedback, "eve": options.eve,
               "tbqkd_version": __version__})
    rx = station.receiver
    if setup.up is None:
        with console.status(f"bringing the receiver up ({options.backend} backend)"):
            setup.calibrate()
    up = setup.up
    link_start_s = station.link_time_s
    log.write({"type": "calibration", **up.calibration.to_dict(),
               "tdc_hits": up.tdc_hits, "slot_offset": up.slot_offset,
               "detection_rate_hz": up.detection_rate_hz, "step_s": step_s})
    _save_histograms(log, up, scenario)
    for note in up.notes:
        log.write({"type": "warning", "t_s": link_start_s, "kind": "calibration",
                   "message": note})

    actuator = scenario.actuator
    codes = 1 << actuator.dac_bits
    mid_code = codes // 2
    controller = None
    if options.feedback:
        controller = PhaseController(FeedbackConfig(
            codes_per_rad=codes / actuator.range_rad, dac_bits=actuator.dac_bits,
            fringe_amplitude=scenario.bob.visibility / 2), mid_code)

    if psk is None:
        if alice_address is not None:
            raise RunError("a remote Alice needs the pre-shared key: --psk FILE")
        psk = secrets.token_bytes(PRE_SHARED_KEY_BYTES)   # both ends in this process
    distill = distill_config(options, scenario)
    a = scenario.alice
    settings = LinkSettings(block_bits=options.block_bits, min_block_bits=options.min_block_bits,
                            z_pulse_fraction=a.p_early + a.p_late,
                            divider=scenario.reference.divider,
                            sync_search=_sync_search(options, scenario))
    bob_store = KeyStore(run_dir / "bob_keys.sqlite")
    bob = BobNode(AuthenticatedChannel("bob", psk), distill, station, settings,
                  slot_offset=up.slot_offset, sync_sample=up.sync_sample,
                  qber_estimate=_qber_prior(up.calibration),
                  controller=controller, keystore=bob_store)
    bob.feedback_window_steps = max(1, round(options.feedback_window_s / step_s))
    alice = alice_store = client = None
    if alice_address is None:
        alice, alice_store = make_alice(options, scenario, psk, run_dir)

        def carry(frames: list[bytes]) -> None:
            exchange(alice, bob, frames)
    else:
        import asyncio

        from tbqkd.host.transport import BobClient, parse_address

        loop = asyncio.new_event_loop()
        try:
            client = BobClient(*parse_address(alice_address), bob.receive)
            loop.run_until_complete(client.connect())
        except (ValueError, ConnectionError) as error:
            raise RunError(str(error)) from None

        def carry(frames: list[bytes]) -> None:
            while frames:
                loop.run_until_complete(client.exchange(frames))
                frames = bob.abort_stalled_block()
            bob._note_outcome()
    bob.set_code(mid_code if controller is None else controller.code)
    carry(bob.start())
    bring_up_s = time.perf_counter() - wall
    log.write({"type": "sync", "slot_offset": bob.slot_offset,
               "nominal_slot_offset": up.slot_offset, "sample": len(up.sync_sample),
               "compared": bob.sync_result["compared"], "errors": bob.sync_result["errors"]})

    blocks_logged = 0
    title = (f"tbqkd link — {scenario.name}, {scenario.channel.distance_km:g} km, "
             f"{options.backend} backend")
    warned_lock = reference_lost = False
    steps = 0
    with _Live(console, options.live, title) as live:
        while station.link_time_s - link_start_s < options.duration_s - 1e-9:
            try:
                frames = bob.step()
            except StopIteration:
                break
            carry(frames)
            frames = bob.maybe_block()
            if frames:
                carry(frames)
            blocks_logged = _log_blocks(log, bob, blocks_logged, station.link_time_s)
            m = bob.step_metrics
            locked = True if controller is None else bool(controller.locked)
            if not locked and not warned_lock:
                log.write({"type": "warning", "t_s": m["t_s"], "kind": "lost_lock",
                           "message": "interferometer phase out of lock"})
            warned_lock = not locked
            steps += 1
            if steps % bob.feedback_window_steps == 0 and not reference_lost \
                    and rx.status()["lost_lock"]:
                reference_lost = True
                log.write({"type": "warning", "t_s": m["t_s"], "kind": "reference_lock",
                           "message": "the reference moved beyond LOCK_THRESHOLD (sticky)"})
            secret = bob.distill.accounts.stored_bits
            log.write({"type": "window", "t_s": m["t_s"], "dt_s": m["dt_s"],
                       "detections": m["detections"], "sifted_z": m["sifted_z"],
                       "sifted_x": m["sifted_x"], "x_errors": m["x_errors"],
                       "qber_x": m["x_errors"] / m["sifted_x"] if m["sifted_x"] else None,
                       "dac_code": bob.issued_code, "phase_rad": m["phase_rad"],
                       "locked": locked, "secret_bits": secret})
            live.update(lambda m=m, lost=reference_lost: _live_state(
                bob, station, link_start_s, m, controller, wall, lost))
        bob.finish()
        while True:
            frames = bob.maybe_block(final=True)
            if not frames:
                break
            carry(frames)
        blocks_logged = _log_blocks(log, bob, blocks_logged, station.link_time_s)
        live.update(lambda: _live_state(bob, station, link_start_s, bob.step_metrics,
                                        controller, wall, reference_lost), force=True)
    if client is not None:
        loop.run_until_complete(client.close())
        loop.close()
    summary = _summary(options, scenario, bob, alice, station, link_start_s, controller,
                       time.perf_counter() - wall, alice_store, bob_store)
    summary["bring_up_wall_s"] = round(bring_up_s, 3)
    log.write({"type": "summary", **summary})
    log.close()
    if alice_store is not None:
        alice_store.close()
    bob_store.close()
    device.close()
    if options.report:
        write_report(run_dir)
    summary["run_dir"] = str(run_dir)
    return summary


def _qber_prior(calibration) -> float:
    """The first block's error-correction prior: the histogram estimate of the Z error rate
    plus a margin for what histograms cannot show (the encoder's extinction): LDPC recovers
    cheaply from an overestimate, not from an underestimate."""
    return float(min(0.25, max(0.005, 1.3 * calibration.qber_z + 0.002)))


def _save_histograms(log, up, scenario) -> None:
    n = up.histograms.shape[0]
    windows = np.zeros((n, 3, 2), np.int64)
    delays = np.zeros(n, np.int64)
    roles = np.zeros(n, np.int64)
    for plan in up.calibration.channels:
        delays[plan.channel] = plan.delay_ps
        roles[plan.channel] = int(plan.role)
        for i, window in enumerate((plan.early, plan.late, plan.middle)):
            if window is not None:
                windows[plan.channel, i] = (window.start_ps, window.width_ps)
    log.save_histograms(up.histograms, offset_ps=up.histogram_offset_ps,
                        bin_ps=up.histogram_bin_ps,
                        slot_period_ps=float(scenario.period_ps_fraction()), roles=roles,
                        windows=windows, delays_ps=delays)


def _block_qber(bob, outcome) -> float | None:
    """The block's Z error rate from error correction (``None`` if EC did not run or failed)."""
    n_z = bob.block_inputs.get(outcome.block_id, (0, 0, 0))[0]
    # Bob learns that error correction failed only as Alice's abort: without key, a block's
    # error count is known only if it found errors (an error-free block ends with key)
    if not n_z or not (outcome.status == "key" or outcome.errors_corrected > 0):
        return None
    return outcome.errors_corrected / n_z


def _log_blocks(log, bob, done: int, t_s: float) -> int:
    for outcome in bob.outcomes[done:]:
        n_z, n_x, e_x = bob.block_inputs.get(outcome.block_id, (0, 0, 0))
        qber_z = _block_qber(bob, outcome)
        h = _h(qber_z) if qber_z else 0.0
        f = outcome.leaked_ec_bits / (n_z * h) if n_z and h > 0 else None
        status = {"key": "ok", "ec_failed": "failed", "verify_failed": "failed"}.get(
            outcome.status, "aborted")
        log.write({"type": "block", "block_id": outcome.block_id, "t_s": t_s,
                   "status": status, "n_bits": int(n_z), "qber_z": qber_z,
                   "qber_x": e_x / n_x if n_x else None, "ec_efficiency": f,
                   "leaked_bits": int(outcome.leaked_ec_bits),
                   "secret_bits": int(outcome.key_bits), "reason": outcome.reason})
        if status != "ok":
            log.write({"type": "warning", "t_s": t_s, "kind": "aborted_block",
                       "message": f"block {outcome.block_id}: {outcome.reason}"})
        done += 1
    return done


def _h(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _qber_z(bob) -> float | None:
    counted = [(o.errors_corrected, bob.block_inputs[o.block_id][0]) for o in bob.outcomes
               if _block_qber(bob, o) is not None]
    n = sum(size for _, size in counted)
    return sum(errors for errors, _ in counted) / n if n else None


def _live_state(bob, station, start_s, m, controller, wall, reference_lost: bool) -> dict:
    t = max(station.link_time_s - start_s, 1e-9)
    tot = bob.totals
    dt = m.get("dt_s") or 1.0
    secret = bob.distill.accounts.stored_bits
    blocks = bob.outcomes
    aborted = sum(o.status != "key" for o in blocks)
    warnings = []
    if tot.mismatched_batches:
        warnings.append("sifting out of step")
    if controller is not None and not controller.locked:
        warnings.append("phase out of lock")
    if aborted:
        warnings.append(f"{aborted} aborted blocks")
    if reference_lost:
        warnings.append("reference lock lost")
    qz = _qber_z(bob)
    return {
        "link time": f"{t:,.1f} s  (wall {time.perf_counter() - wall:,.0f} s)",
        "detections/s": _fmt(m.get("detections", 0) / dt, ",.0f"),
        "sifted Z bits/s": _fmt(tot.sifted_z / t, ",.0f"),
        "QBER Z (blocks)": _fmt(100 * qz if qz is not None else None, ".2f", " %"),
        "QBER X": _fmt(100 * tot.x_errors / tot.sifted_x if tot.sifted_x else None, ".2f", " %"),
        "phase (true) / DAC": (f"{_fmt(m.get('phase_rad'), '+.3f', ' rad')} / "
                               f"{bob.issued_code}"),
        "blocks (key / all)": f"{sum(o.status == 'key' for o in blocks)} / {len(blocks)}",
        "secret bits (stored)": f"{secret:,}",
        "key rate": _fmt(secret / t, ",.1f", " bit/s"),
        "warnings": ", ".join(warnings) or "none",
    }


def _summary(options, scenario, bob, alice, station, start_s, controller, wall_s,
             alice_store, bob_store) -> dict:
    from tbqkd.host.finite_key import asymptotic_key_fraction, multiphoton_probability

    t = max(station.link_time_s - start_s, 1e-9)
    tot = bob.totals
    qber_z = _qber_z(bob)
    qber_x = tot.x_errors / tot.sifted_x if tot.sifted_x else None
    corrected = [o for o in bob.outcomes if _block_qber(bob, o) is not None]
    leaked = sum(o.leaked_ec_bits for o in corrected)
    n_ec = sum(bob.block_inputs[o.block_id][0] for o in corrected)
    f = leaked / (n_ec * _h(qber_z)) if n_ec and qber_z else None
    secret = bob.distill.accounts.stored_bits
    skr_asym = None
    if qber_z is not None and qber_x is not None and tot.sifted_z:
        source = bob.distill._config.source
        pulses = tot.slots * bob.settings.z_pulse_fraction
        multi = min(1.0, multiphoton_probability(source) * pulses / tot.sifted_z)
        skr_asym = asymptotic_key_fraction(qber_z, qber_x, multi, f or 1.0) * tot.sifted_z / t
    stats = controller.stats if controller is not None else {}
    summary = {
        "backend": options.backend, "scenario": scenario.name,
        "distance_km": scenario.channel.distance_km, "duration_s": round(t, 6),
        "detections_per_s": tot.detections / t, "sifted_bps": tot.sifted_z / t,
        "qber_z": qber_z, "qber_x": qber_x, "skr_bps": secret / t,
        "skr_asymptotic_bps": skr_asym, "ec_efficiency": f, "secret_bits": int(secret),
        "aborted_blocks": int(sum(o.status != "key" for o in bob.outcomes)),
        "blocks": len(bob.outcomes),
        "auth_consumed_bits": int(bob.distill.accounts.auth_consumed_bits),
        "feedback": options.feedback, "feedback_stats": stats,
        "wall_s": round(wall_s, 3),
        "clicks_missed_in_bring_up": int(getattr(station, "events_missed", 0)),
    }
    if alice is not None:
        summary["keys_identical"] = _stores_match(alice, bob, alice_store, bob_store)
        summary["alice_secret_bits"] = int(alice.distill.accounts.stored_bits)
    return summary


def _stores_match(alice, bob, alice_store, bob_store) -> bool:
    """Both sides distilled the same keys bit for bit, and both stores list the same keys."""
    same_keys = all(
        (a.key is None) == (b.key is None) and (a.key is None or np.array_equal(a.key, b.key))
        for a, b in zip(alice.outcomes, bob.outcomes, strict=True))
    listed = [(k.block_id, k.size_bits) for k in alice_store.list_keys()]
    return same_keys and listed == [(k.block_id, k.size_bits) for k in bob_store.list_keys()]


def distill_config(options: RunOptions, scenario) -> DistillConfig:
    """The distillation settings both nodes derive from the same run options."""
    from tbqkd.host.distill import DistillConfig
    from tbqkd.sim.twin.analytic import security_parameters, source_parameters

    return DistillConfig(method=options.ec_method, source=source_parameters(scenario),
                         security=security_parameters(scenario),
                         max_block_bits=max(10_000_000, options.block_bits * 2))


def make_alice(options: RunOptions, scenario, psk: bytes, run_dir: Path, states=None):
    """Alice's node and key store. Her ``states`` (slots → states) default to the twin's Alice
    of the same seed; on a board they come from her transmitter (:func:`start_transmitter`)."""
    from tbqkd.host.auth import AuthenticatedChannel
    from tbqkd.host.keystore import KeyStore
    from tbqkd.host.link import AliceNode

    if states is None:
        from tbqkd.sim.twin.alice import CounterAlice

        states = CounterAlice(scenario.alice, options.seed).states
    store = KeyStore(Path(run_dir) / "alice_keys.sqlite")
    node = AliceNode(AuthenticatedChannel("alice", psk), distill_config(options, scenario),
                     states, keystore=store)
    return node, store


#: Seconds of slots Alice's host keeps: the longest sifting round trip she can answer.
STATE_HISTORY_S = 2.0
#: Seconds between two turns of the transmitter's host loop (random bits in, states out).
TRANSMITTER_SERVICE_S = 0.001


def transmitter_settings(options: RunOptions, scenario) -> dict:
    """What Alice's transmitter is configured with, from the scenario (plain values: they
    travel to a board server as they are)."""
    a = scenario.alice
    return {"p_z": a.p_early + a.p_late, "four_state": a.protocol == "four-state",
            "slot_divider": options.slot_divider, "ref_divider": scenario.reference.divider,
            "pulse_rate_hz": scenario.source.pulse_rate_hz}


def _open_transmitter(options: RunOptions):
    """Alice's transmitter overlay and random source on this board.

    Raises
    ------
    RunError
        If the overlay, the core or the random source is not available.
    """
    from tbqkd.host.device import DeviceError
    from tbqkd.host.transmitter import RandomSource, RandomSourceError

    try:
        from tbqkd.host.pynq_overlay import TransmitterOverlay

        overlay = TransmitterOverlay(options.bitfile)
        source = RandomSource.from_path(options.qrng) if options.qrng else \
            RandomSource.os_generator()
    except (DeviceError, RandomSourceError, OSError, ImportError, ValueError) as error:
        raise RunError(f"Alice's transmitter not available: {error} (docs/DEPLOY.md)") from None
    return overlay.core, source


def _run_transmitter(core, source, settings: dict):
    """An :class:`~tbqkd.host.transmitter.AliceTransmitter` on ``core``, configured from
    :func:`transmitter_settings` and running."""
    from tbqkd.host.transmitter import AliceTransmitter, StateHistory, TransmitterSettings

    tx = AliceTransmitter(core, source, StateHistory.for_seconds(STATE_HISTORY_S,
                                                                 settings["pulse_rate_hz"]))
    tx.start(TransmitterSettings(p_z=settings["p_z"], four_state=settings["four_state"],
                                 slot_divider=settings["slot_divider"],
                                 ref_divider=settings["ref_divider"]))
    return tx


def start_transmitter(options: RunOptions, scenario):
    """Alice's transmitter core on this PYNQ board, configured from the scenario and running.

    Random bits come from ``options.qrng`` (a QRNG device or file) or, labelled not for
    production keys, from the OS generator.

    Raises
    ------
    RunError
        If the overlay, the core or the random source is not available.
    """
    from tbqkd.host.device import DeviceError
    from tbqkd.host.transmitter import RandomSourceError

    core, source = _open_transmitter(options)
    try:
        return _run_transmitter(core, source, transmitter_settings(options, scenario))
    except (DeviceError, RandomSourceError, ValueError) as error:
        raise RunError(f"Alice's transmitter not available: {error} (docs/DEPLOY.md)") from None


class _AliceBoard:
    """Alice's board serving her PC's node: the transmitter starts when the node says how."""

    def __init__(self, core, source) -> None:
        self._core = core
        self._source = source
        self.tx = None

    def start(self, settings: dict) -> bool:
        if self.tx is not None:
            self.tx.stop()
        self.tx = None
        try:
            self.tx = _run_transmitter(self._core, self._source, dict(settings))
        except (KeyError, TypeError) as error:
            raise ValueError(f"transmitter settings incomplete: {error}") from None
        return True

    def states(self, slots):
        from tbqkd.host.protocol import ProtocolError

        if self.tx is None:
            raise ProtocolError("the transmitter has not been started")
        return self.tx.fresh_states(slots)

    def service(self) -> None:
        if self.tx is not None:
            self.tx.service()


def _read_key(path: str | None, what: str) -> bytes:
    """A key file's bytes (``tbqkd node psk FILE`` makes one).

    Raises
    ------
    RunError
        If there is no file, it cannot be read, or it is shorter than 32 bytes.
    """
    if not path:
        raise RunError(f"the {what} needs a key file: --board-key FILE (tbqkd node psk FILE)")
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RunError(f"cannot read the {what} key {path}: {error.strerror}") from None
    if len(data) < 32:
        raise RunError(f"the {what} key {path} has {len(data)} bytes; at least 32 are needed")
    return data


def _board_client(options: RunOptions):
    """The board link to this node's board server (``options.board``)."""
    from tbqkd.host.remote import BoardClient, RemoteError
    from tbqkd.host.transport import parse_address

    key = _read_key(options.board_key, "board link")
    try:
        return BoardClient(*parse_address(options.board), key)
    except (ValueError, RemoteError) as error:
        raise RunError(f"--board {options.board}: {error}") from None


def serve_board(options: RunOptions, role: str, listen: str) -> dict:
    """``tbqkd board``: on the board, serve its core to the node on a companion computer
    (:mod:`tbqkd.host.remote`) until stopped; return what was served. Needs neither numba
    nor a scenario: the node configures what the board runs.

    Bob's board serves the receiver's registers and streams; Alice's board starts her
    transmitter with the settings her node sends (:func:`transmitter_settings`), services it
    between requests (random bits in, states out) and serves its states.

    Raises
    ------
    RunError
        On a bad setting or address, or a core that is not available.
    """
    from tbqkd.host.remote import BoardServer, receiver_calls, transmitter_calls
    from tbqkd.host.transport import parse_address

    if role not in ("alice", "bob"):
        raise RunError(f"unknown role {role!r}; use alice or bob")
    key = _read_key(options.board_key, "board link")
    try:
        host, port = parse_address(listen)
    except ValueError as error:
        raise RunError(str(error)) from None
    alice = None
    if role == "bob":
        device = _open_board(options).core
        server = BoardServer(receiver_calls(device), key, info={
            "role": "bob", "regmap_hash": device.regmap.hash,
            "config": TaggerConfig().as_dict()})
    else:
        alice = _AliceBoard(*_open_transmitter(options))
        server = BoardServer(transmitter_calls(alice.states, alice.start), key,
                             info={"role": "alice"}, idle=alice.service,
                             idle_s=TRANSMITTER_SERVICE_S)
    from tbqkd.host.device import DeviceError

    try:
        server.serve(host, port)
    except OSError as error:
        raise RunError(f"cannot listen on {listen}: {error}") from None
    except DeviceError as error:             # the transmitter failed (e.g. the QRNG ran dry)
        raise RunError(f"the board stopped: {error}") from None
    except KeyboardInterrupt:
        pass
    finally:
        if alice is not None and alice.tx is not None:
            alice.tx.stop()
    return {"role": role, "requests": server.requests, "refused_links": server.refused}


def serve_alice(options: RunOptions, listen: str, psk: bytes, *, console=None) -> dict:
    """``tbqkd node alice``: serve Alice to one Bob until he says goodbye; return her totals.

    Raises
    ------
    RunError
        On a bad setting or address.
    """
    import asyncio

    from tbqkd.host.transport import AliceServer, parse_address

    scenario = _check(options)
    run_dir = Path(options.run_dir or Path("runs") / (
        _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-alice"))
    try:
        host, port = parse_address(listen)
    except ValueError as error:
        raise RunError(str(error)) from None
    tx = states = None
    if options.backend == "pynq" and options.board:       # the transmitter runs on the board
        from tbqkd.host.device import DeviceError
        from tbqkd.host.remote import RemoteStates

        try:
            states = RemoteStates(_board_client(options))
            states.start(transmitter_settings(options, scenario))
        except DeviceError as error:
            raise RunError(str(error)) from None
    elif options.backend == "pynq":
        tx = start_transmitter(options, scenario)
        states = tx.fresh_states
    run_dir.mkdir(parents=True, exist_ok=True)
    node, store = make_alice(options, scenario, psk, run_dir, states=states)
    server = AliceServer(node.receive)

    async def keep_transmitter_fed() -> None:
        while True:                  # random bits in, states out, between Bob's requests
            tx.service()
            await asyncio.sleep(TRANSMITTER_SERVICE_S)

    async def main() -> None:
        tcp = await asyncio.start_server(server.handle, host, port)
        feeder = asyncio.ensure_future(keep_transmitter_fed()) if tx is not None else None
        async with tcp:
            finished = asyncio.ensure_future(server.finished.wait())
            waits = [finished] + ([feeder] if feeder is not None else [])
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()       # the transmitter failed: the run stops

    try:
        asyncio.run(main())
    except OSError as error:
        raise RunError(f"cannot listen on {listen}: {error}") from None
    finally:
        store.close()
        if tx is not None:
            tx.stop()
            (run_dir / "transmitter.json").write_text(json.dumps(tx.run_log(), default=str))
    accounts = node.distill.accounts
    return {"role": "alice", "blocks": len(node.outcomes),
            "blocks_with_key": accounts.blocks_with_key, "secret_bits": accounts.stored_bits,
            "requests": server.requests, "resent_replies": server.resent,
            "connections": server.connections, "run_dir": str(run_dir)}
