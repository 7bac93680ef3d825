"""The whole link: Bob's core (reference model) fed by the twin, Alice, distillation, key stores.

These run the real parts end to end — bring-up on live histograms, sifting through the core's
streams, phase feedback, LDPC, privacy amplification — on a short, bright link (65 km) so that
a few seconds of link time give several blocks with finite-key secret key.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import subprocess
import sys
import time

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.host.auth import AuthenticatedChannel
from tbqkd.host.keystore import KeyStore, NoKeyAvailableError
from tbqkd.host.link import AliceNode, BobNode, LinkError, LinkSettings, bring_up, exchange
from tbqkd.host.report import read_log
from tbqkd.sim.model_device import open_model_device
from tbqkd.sim.station import TwinStation
from tbqkd.sim.twin import Scenario, Twin
from tbqkd.sim.twin.alice import CounterAlice
from typer.testing import CliRunner

from tbqkd.link_run import ROLES, RunError, RunOptions, distill_config, run_link

BRIGHT = {"distance_km": 65.0}


def _drain_keys(path) -> list[np.ndarray]:
    keys = []
    with KeyStore(path) as store:
        while True:
            try:
                keys.append(store.take().bits)
            except NoKeyAvailableError:
                return keys


def test_run_on_the_model_backend_ends_with_identical_secret_keys(tmp_path):
    options = RunOptions(backend="model", duration_s=1.6, seed=3, block_bits=50_000,
                         min_block_bits=20_000, live=False, run_dir=tmp_path / "run",
                         **BRIGHT)
    summary = run_link(options)
    assert summary["keys_identical"] is True
    assert summary["blocks"] >= 2 and summary["aborted_blocks"] == 0
    assert summary["secret_bits"] > 10_000
    assert 0.005 < summary["qber_z"] < 0.03 and 0.08 < summary["qber_x"] < 0.13
    assert 1.0 < summary["ec_efficiency"] < 1.5
    assert 0 < summary["bring_up_wall_s"] < summary["wall_s"]
    expected = Twin(Scenario.load("paper-120km", **BRIGHT)).expected()
    assert summary["detections_per_s"] == pytest.approx(sum(expected.click_rate_hz), rel=0.1)
    assert summary["skr_asymptotic_bps"] > summary["skr_bps"] > 0
    run = tmp_path / "run"
    alice, bob = _drain_keys(run / "alice_keys.sqlite"), _drain_keys(run / "bob_keys.sqlite")
    assert len(alice) == len(bob) == summary["blocks"]
    assert all(np.array_equal(a, b) for a, b in zip(alice, bob, strict=True))
    assert sum(k.size for k in bob) == summary["secret_bits"]
    log = read_log(run)
    assert len(log["window"]) >= 20 and len(log["block"]) == summary["blocks"]
    assert log["summary"][0]["secret_bits"] == summary["secret_bits"]
    assert all(w["locked"] for w in log["window"])
    assert (run / "report.html").stat().st_size > 10_000


def _brought_up(seed: int, duration_s: float, delay_error_s: float = 0.0):
    """Bob's station (model core + twin) brought up as the run does it; ``delay_error_s``
    misleads his estimate of when Alice's slot 0 left."""
    scenario = Scenario.load("paper-120km", **BRIGHT)
    config = TaggerConfig()
    twin = Twin(scenario, seed=seed)
    station = TwinStation(open_model_device(config), twin, config, duration_s=duration_s,
                          step_s=0.03)
    up = bring_up(station, roles=ROLES, slot_period_ps=scenario.period_ps_fraction(),
                  bin_separation_ps=4000.0,
                  expected_delay_ps=twin.budget.fibre_delay_ps + delay_error_s * 1e12,
                  divider=scenario.reference.divider, visibility=scenario.bob.visibility)
    return scenario, station, up


def _nodes(tmp_path, scenario, station, up, seed: int, block_bits: int, sync_search: int = 2):
    options = RunOptions(backend="model", block_bits=block_bits, min_block_bits=block_bits)
    distill = distill_config(options, scenario)
    psk = secrets.token_bytes(4096)
    alice = AliceNode(AuthenticatedChannel("alice", psk), distill,
                      CounterAlice(scenario.alice, seed).states,
                      keystore=KeyStore(tmp_path / "a.sqlite"))
    settings = LinkSettings(block_bits=block_bits, min_block_bits=block_bits,
                            z_pulse_fraction=0.8, divider=scenario.reference.divider,
                            sync_search=sync_search)
    bob = BobNode(AuthenticatedChannel("bob", psk), distill, station, settings,
                  slot_offset=up.slot_offset, sync_sample=up.sync_sample,
                  keystore=KeyStore(tmp_path / "b.sqlite"))
    bob.set_code(1 << 15)
    return alice, bob


def _bench_link(tmp_path, seed: int, duration_s: float, block_bits: int):
    """Bob's station brought up, and both nodes, as the run builds them."""
    scenario, station, up = _brought_up(seed, duration_s)
    return _nodes(tmp_path, scenario, station, up, seed, block_bits)


def _run_steps(alice, bob, steps: int, wire=None) -> None:
    exchange(alice, bob, bob.start(), wire=wire)
    for _ in range(steps):
        exchange(alice, bob, bob.step(), wire=wire)
        exchange(alice, bob, bob.maybe_block(), wire=wire)


def test_a_tampered_sifting_message_costs_its_block_and_nothing_else(tmp_path):
    alice, bob = _bench_link(tmp_path, seed=5, duration_s=20.0, block_bits=40_000)
    tampered = {"done": False}

    def wire(direction: int, frame: bytes) -> list[bytes]:
        # the 12th announcement (deferred tag) gets one slot byte flipped on the way
        if direction == 1 and b"announce" in frame and b'\xa5batch\x0b' in frame \
                and not tampered["done"]:
            tampered["done"] = True
            frame = bytearray(frame)
            frame[-40] ^= 0x10
            return [bytes(frame)]
        return [frame]

    _run_steps(alice, bob, 60, wire)
    assert tampered["done"]
    status = {o.block_id: o.status for o in bob.outcomes}
    assert status[0] == "aborted" and len(status) >= 2, status
    assert all(s == "key" for b, s in status.items() if b > 0), status
    assert alice.rejected_frames >= 1 and alice.discarded_bits > 0
    keys_a = {o.block_id: o.key for o in alice.outcomes if o.key is not None}
    keys_b = {o.block_id: o.key for o in bob.outcomes if o.key is not None}
    assert set(keys_a) == set(keys_b) == set(status) - {0}
    assert all(np.array_equal(keys_a[b], keys_b[b]) for b in keys_a)


def test_alice_finds_the_slot_offset_when_bobs_start_time_is_periods_off(tmp_path):
    """Bob believes Alice started 5 ms later than she did (6 reference periods at 65 536 slots
    of 13.2 ns): his nominal offset is wrong; Alice finds the true one from his sample."""
    scenario, station, up = _brought_up(seed=6, duration_s=8.0, delay_error_s=5e-3)
    divider = scenario.reference.divider
    assert len(up.sync_sample) >= 2_000
    for sub in ("narrow", "wide"):
        (tmp_path / sub).mkdir()
    # a search too narrow to reach it: the link stops before the first announcement
    alice, bob = _nodes(tmp_path / "narrow", scenario, station, up, seed=6, block_bits=40_000,
                        sync_search=2)
    with pytest.raises(LinkError, match="slot synchronisation failed: no offset within ±2"):
        exchange(alice, bob, bob.start())
    assert alice.sync_result is not None and not alice.sync_result.found
    with pytest.raises(LinkError, match="no slot synchronisation"):
        bob.step()
    # wide enough: sifting works on the offset Alice found
    alice, bob = _nodes(tmp_path / "wide", scenario, station, up, seed=6, block_bits=40_000,
                        sync_search=10)
    exchange(alice, bob, bob.start())
    assert bob.slot_offset == up.slot_offset + 6 * divider
    assert bob.sync_result["errors"] < 0.05 * bob.sync_result["compared"]
    for _ in range(8):
        exchange(alice, bob, bob.step())
    assert bob.totals.sifted_z > 1_000 and bob.totals.mismatched_batches == 0
    assert bob.totals.x_errors < 0.2 * bob.totals.sifted_x


@pytest.mark.parametrize("args, message", [
    (["board", "carol", "--listen", "127.0.0.1:9", "--board-key", "PSK"], "unknown role 'carol'"),
    (["board", "bob", "--listen", "127.0.0.1:9"], "needs a key file"),
    (["board", "bob", "--listen", "127.0.0.1:9", "--board-key", "PSK"],
     "backend pynq not available"),
    (["board", "bob", "--listen", "127.0.0.1", "--board-key", "PSK"], "must be HOST:PORT"),
])
def test_board_server_settings_give_one_clear_line(args, message, tmp_path):
    from tbqkd.cli import app

    if "pynq not available" in message and importlib.util.find_spec("pynq") is not None:
        pytest.skip("pynq is installed here: the board backend would try to load a bitstream")
    key = tmp_path / "key"
    key.write_bytes(secrets.token_bytes(64))
    result = CliRunner().invoke(app, [str(key) if a == "PSK" else a for a in args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.mark.parametrize("args, message", [
    (["run", "--scenario", "no-such-link"], "no scenario 'no-such-link'"),
    (["run", "--distance-km", "-5"], "must not be negative"),
    (["run", "--duration", "0"], "--duration must be positive"),
    (["run", "--eve", "beamsplit:0.3"], "unknown attack 'beamsplit'"),
    (["run", "--eve", "intercept-resend:1.5"], "must be in [0, 1]"),
    (["run", "--backend", "fpga"], "unknown backend 'fpga'"),
    (["run", "--backend", "pynq"], "Alice runs on her own board"),
    (["node", "bob", "--backend", "pynq", "--connect", "127.0.0.1:9", "--psk", "PSK"],
     "backend pynq not available"),
    (["node", "alice", "--backend", "pynq", "--listen", "127.0.0.1:9", "--psk", "PSK"],
     "Alice's transmitter not available"),
    (["node", "bob", "--connect", "localhost:1"], "pre-shared key"),
    (["node", "bob", "--backend", "pynq", "--connect", "127.0.0.1:9", "--psk", "PSK",
      "--board", "127.0.0.1:9"], "needs a key file: --board-key FILE"),
    (["node", "bob", "--backend", "pynq", "--connect", "127.0.0.1:9", "--psk", "PSK",
      "--board", "127.0.0.1:9", "--board-key", "PSK"], "cannot reach the board at 127.0.0.1:9"),
    (["node", "alice", "--backend", "pynq", "--listen", "127.0.0.1:9", "--psk", "PSK",
      "--board", "nowhere", "--board-key", "PSK"], "must be HOST:PORT"),
])
def test_bad_settings_give_one_clear_line_and_a_nonzero_exit(args, message, tmp_path):
    """``PSK`` stands for a valid pre-shared key file; the pynq cases run where pynq is not
    installed (a PC): the board backend must then say so in one line."""
    from tbqkd.cli import app

    if "pynq" in args and importlib.util.find_spec("pynq") is not None:
        pytest.skip("pynq is installed here: the board backend would try to load a bitstream")
    psk = tmp_path / "psk"
    psk.write_bytes(secrets.token_bytes(2048))
    args = [str(psk) if a == "PSK" else a for a in args]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tbqkd: error:") and message in lines[0], \
        result.output
    assert not (tmp_path / "r").exists()


def test_run_error_is_a_value_error():
    with pytest.raises(RunError, match="unknown backend"):
        run_link(RunOptions(backend="abacus"))


def test_alice_and_bob_as_two_processes_over_tcp(tmp_path):
    """`tbqkd node alice` and `tbqkd node bob` on this machine; the keys in both stores agree."""
    psk = tmp_path / "psk"
    tbqkd = [sys.executable, "-m", "tbqkd"]
    subprocess.run([*tbqkd, "node", "psk", str(psk)], check=True, capture_output=True)
    assert psk.stat().st_mode & 0o777 == 0o600
    common = ["--backend", "model", "--distance-km", "65", "--duration", "1.0", "--seed", "7",
              "--block-bits", "40000", "--psk", str(psk), "--json"]
    port = 20_000 + secrets.randbelow(20_000)
    alice = subprocess.Popen([*tbqkd, "node", "alice", "--listen", f"127.0.0.1:{port}",
                              "--out", str(tmp_path / "alice"), *common],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    bob = subprocess.run([*tbqkd, "node", "bob", "--connect", f"127.0.0.1:{port}",
                          "--out", str(tmp_path / "bob"), *common],
                         capture_output=True, text=True, timeout=600)
    out, err = alice.communicate(timeout=60)
    assert bob.returncode == 0, bob.stderr[-2000:]
    assert alice.returncode == 0, err[-2000:]
    bob_summary = json.loads(bob.stdout.strip().splitlines()[-1])
    alice_summary = json.loads(out.strip().splitlines()[-1])
    assert bob_summary["secret_bits"] > 0
    assert alice_summary["secret_bits"] == bob_summary["secret_bits"]
    alice_keys = _drain_keys(tmp_path / "alice" / "alice_keys.sqlite")
    bob_keys = _drain_keys(tmp_path / "bob" / "bob_keys.sqlite")
    assert len(alice_keys) == len(bob_keys) >= 1
    assert all(np.array_equal(a, b) for a, b in zip(alice_keys, bob_keys, strict=True))


def test_an_intercept_resend_eavesdropper_raises_qber_x_and_no_key_leaves(tmp_path):
    options = RunOptions(backend="model", duration_s=1.5, seed=4, block_bits=50_000,
                         min_block_bits=20_000, live=False, report=False,
                         eve="intercept-resend:0.3", run_dir=tmp_path / "run", **BRIGHT)
    summary = run_link(options)
    assert summary["qber_x"] > 0.13         # about 0.10 without Eve; 30 % intercept-resend: 0.15
    assert summary["blocks"] >= 1 and summary["aborted_blocks"] == summary["blocks"]
    assert summary["secret_bits"] == 0
    # a block whose error correction failed has no known error rate: none is invented
    assert summary["qber_z"] is None or summary["qber_z"] > 0.04
