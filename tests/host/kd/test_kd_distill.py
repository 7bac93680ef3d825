"""Block pipeline end to end: identical keys of the promised length, or no key on both sides."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kd_ec_double import make_double_reconciler
from tbqkd.host import distill, finite_key, messages
from tbqkd.host.auth import AuthenticatedChannel
from tbqkd.host.ec import make_reconciler
from tbqkd.host.keystore import KeyStore
from tbqkd.host.protocol import run_in_memory

PSK = bytes(np.random.default_rng(1).integers(0, 256, 1 << 16, dtype=np.uint8))
LOOSE = finite_key.AbortThresholds(min_x_detections=10)


def _random_bytes(seed: int):
    rng = np.random.default_rng(seed)
    return lambda count: rng.bytes(count)


def _nodes(config=None, *, factory=make_reconciler, alice_store=None, bob_store=None,
           pool_target_bits=65_536, psk=PSK):
    config = config or distill.DistillConfig(thresholds=LOOSE)
    alice = distill.DistillNode("alice", AuthenticatedChannel("alice", psk), config,
                                keystore=alice_store, reconciler_factory=factory,
                                random_bytes=_random_bytes(1),
                                auth_pool_target_bits=pool_target_bits)
    bob = distill.DistillNode("bob", AuthenticatedChannel("bob", psk), config,
                              keystore=bob_store, reconciler_factory=factory,
                              random_bytes=_random_bytes(2), auth_pool_target_bits=pool_target_bits)
    return alice, bob


def _inputs(block_id=1, n=20_000, errors=0, seed=0, x=(5_000, 50), pulses=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    b = a.copy()
    b[rng.choice(n, errors, replace=False)] ^= 1
    stats = distill.XStatistics(*x)
    return (distill.BlockInput(block_id, a, stats, pulses),
            distill.BlockInput(block_id, b, stats, pulses))


def test_clean_block_gives_identical_keys_of_the_promised_length():
    alice, bob = _nodes()
    out_a, out_b = distill.run_block(alice, bob, *_inputs())
    assert out_a.status == out_b.status == "key"
    assert np.array_equal(out_a.key, out_b.key)
    assert out_a.key_bits == out_a.report.key_bits > 0
    assert alice.accounts.blocks_with_key == bob.accounts.blocks_with_key == 1


def test_block_sides_run_as_protocol_sides_without_transport():
    config = distill.DistillConfig(thresholds=LOOSE)
    a_in, b_in = _inputs(errors=20)
    alice = distill.AliceBlock(a_in, config, reconciler_factory=make_reconciler,
                               random_bytes=_random_bytes(3))
    bob = distill.BobBlock(b_in, config, reconciler_factory=make_reconciler,
                           random_bytes=_random_bytes(4))
    out_a, out_b, count = run_in_memory(alice, bob)
    assert out_a.status == out_b.status == "key" and np.array_equal(out_a.key, out_b.key)
    assert out_a.errors_corrected == 20 and count > 4


def test_outcomes_and_accounts_never_show_key_bits():
    alice, bob = _nodes()
    out_a, _ = distill.run_block(alice, bob, *_inputs())
    bits = "".join(map(str, out_a.key[:48]))
    for text in (repr(out_a), str(out_a), repr(alice), repr(alice.accounts)):
        assert bits not in text and "array(" not in text


def test_logs_never_show_key_bits(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    with KeyStore(tmp_path / "a.db") as store_a, KeyStore(tmp_path / "b.db") as store_b:
        alice, bob = _nodes(alice_store=store_a, bob_store=store_b)
        out_a, _ = distill.run_block(alice, bob, *_inputs(errors=3),
                                     wire=_corrupt("tamper", 5))
        out_a, _ = distill.run_block(alice, bob, *_inputs(block_id=2, errors=3))
        store_a.take()
    assert out_a.status == "key" and caplog.records
    bits = "".join(map(str, out_a.key[:48]))
    packed = np.packbits(out_a.key).tobytes()[:6]
    assert bits not in caplog.text and packed.hex() not in caplog.text
    assert str(list(packed)) not in caplog.text


def test_one_error_per_parity_block_is_corrected():
    alice, bob = _nodes(factory=make_double_reconciler)
    # The double corrects one error per parity block: errors far apart are all fixed.
    a_in, b_in = _inputs()
    bits = b_in.sifted_z.copy()
    bits[[10, 5_000, 15_000]] ^= 1
    out_a, out_b = distill.run_block(alice, bob, a_in,
                                     distill.BlockInput(1, bits, b_in.x_stats, 0))
    assert out_a.status == "key" and np.array_equal(out_a.key, out_b.key)
    assert out_a.errors_corrected == 3
    assert out_a.report.qber_z == pytest.approx(3 / 20_000)


def test_residual_errors_fail_verification_and_yield_no_key():
    alice, bob = _nodes(factory=make_double_reconciler)
    a_in, b_in = _inputs()
    bits = b_in.sifted_z.copy()
    bits[[100, 101]] ^= 1  # two errors in one parity block: the double cannot see them
    out_a, out_b = distill.run_block(alice, bob, a_in,
                                     distill.BlockInput(1, bits, b_in.x_stats, 0))
    assert out_a.status == "verify_failed" and out_a.key is None
    assert out_b.key is None and out_b.status == "aborted"
    assert alice.accounts.blocks_verify_failed == 1
    assert alice.accounts.distilled_bits == bob.accounts.distilled_bits == 0


def test_thresholds_abort_both_sides():
    config = distill.DistillConfig(thresholds=finite_key.AbortThresholds(min_x_detections=10,
                                                                         max_qber_z=0.001))
    alice, bob = _nodes(config)
    out_a, out_b = distill.run_block(alice, bob, *_inputs(errors=0, x=(5_000, 1_500)))
    assert out_a.key is None and out_b.key is None
    assert "phase-error bound" in out_a.reason and "phase-error bound" in out_b.reason


def test_inputs_that_differ_abort():
    alice, bob = _nodes()
    a_in, b_in = _inputs()
    b_in = distill.BlockInput(1, b_in.sifted_z, distill.XStatistics(5_000, 51), 0)
    out_a, out_b = distill.run_block(alice, bob, a_in, b_in)
    assert out_a.key is None and out_b.key is None
    assert "e_x" in out_b.reason


def test_keys_go_to_the_store_and_auth_key_is_refilled(tmp_path):
    with KeyStore(tmp_path / "a.db") as store_a, KeyStore(tmp_path / "b.db") as store_b:
        psk = PSK[:16 + 2 * 1600]  # 100 frames per direction: needs refills to go on
        alice, bob = _nodes(alice_store=store_a, bob_store=store_b, pool_target_bits=12_800,
                            psk=psk)
        for block in range(6):
            out_a, out_b = distill.run_block(alice, bob, *_inputs(block_id=block, seed=block,
                                                                  errors=1))
            assert out_a.status == "key" and np.array_equal(out_a.key, out_b.key)
        acc_a, acc_b = alice.accounts, bob.accounts
        assert acc_a == acc_b
        assert acc_a.auth_refill_bits > 0
        assert acc_a.stored_bits == acc_a.distilled_bits - acc_a.auth_refill_bits
        assert acc_a.net_key_bits == acc_a.distilled_bits - acc_a.auth_consumed_bits
        assert store_a.available_bits() == store_b.available_bits() == acc_a.stored_bits
        key_a, key_b = store_a.take(), store_b.take()
        assert key_a.block_id == key_b.block_id and np.array_equal(key_a.bits, key_b.bits)


def _corrupt(kind: str, target: int):
    """A wire that damages Alice's frame number ``target`` in the given way."""
    state = {"count": 0, "held": None}

    def wire(direction: int, frame: bytes) -> list[bytes]:
        if direction != 0:
            return [frame]
        index = state["count"]
        state["count"] += 1
        if index != target:
            if kind == "reorder" and state["held"] is not None:
                held, state["held"] = state["held"], None
                return [frame, held]
            return [frame]
        if kind == "tamper":
            damaged = bytearray(frame)
            damaged[-20] ^= 0x04
            return [bytes(damaged)]
        if kind == "replay":
            return [frame, frame]
        if kind == "truncate":
            return [frame[:-7]]
        if kind == "oversize":
            return [frame + bytes(messages.MAX_FRAME_BYTES)]
        if kind == "reorder":
            state["held"] = frame
            return []
        raise AssertionError(kind)

    return wire


BAD_FRAMES = [(kind, clue, target)
              for kind, clue in [("tamper", "tag mismatch"), ("replay", "replayed"),
                                 ("truncate", "truncated"), ("oversize", "exceeds")]
              for target in (0, 1, 3)]
# Alice's first two frames leave together, so only they can arrive swapped.
BAD_FRAMES.append(("reorder", "protocol error", 0))


@pytest.mark.parametrize("kind, clue, target", BAD_FRAMES)
def test_bad_frames_yield_no_key(kind, clue, target):
    # Cascade: enough messages on a one-error block that Alice's 4th frame exists
    alice, bob = _nodes(distill.DistillConfig(method="cascade", thresholds=LOOSE))
    out_a, out_b = distill.run_block(alice, bob, *_inputs(errors=1),
                                     wire=_corrupt(kind, target))
    assert out_a.key is None and out_b.key is None
    assert out_b.status == "aborted"
    assert clue in out_b.reason
    assert bob.accounts.frames_rejected + alice.accounts.frames_rejected >= 1
    # The channel stays usable: the next block distils normally.
    out_a, out_b = distill.run_block(alice, bob, *_inputs(block_id=2, errors=1))
    assert out_a.status == "key" and np.array_equal(out_a.key, out_b.key)


def _property_case(factory, n, rate, seed, x_rate):
    config = distill.DistillConfig(qber_prior=min(0.2, max(rate, 0.01)), thresholds=LOOSE)
    alice, bob = _nodes(config, factory=factory)
    n_x = max(20, n // 4)
    a_in, b_in = _inputs(n=n, errors=int(rate * n), seed=seed, x=(n_x, int(x_rate * n_x)))
    out_a, out_b = distill.run_block(alice, bob, a_in, b_in)
    if out_a.key is None or out_b.key is None:
        assert out_a.key is None and out_b.key is None
        assert out_a.status != "key" and out_b.status != "key"
    else:
        assert np.array_equal(out_a.key, out_b.key)
        assert out_a.key_bits == out_a.report.key_bits > 0
    return out_a.status


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(200, 8_000), rate=st.floats(0.0, 0.15), seed=st.integers(0, 2**31),
       x_rate=st.floats(0.0, 0.15))
def test_property_identical_keys_of_promised_length_or_both_abort(n, rate, seed, x_rate):
    _property_case(make_reconciler, n, rate, seed, x_rate)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(200, 8_000), rate=st.floats(0.0, 0.01), seed=st.integers(0, 2**31))
def test_property_with_the_test_double_reconciler(n, rate, seed):
    # The double leaves residual errors often: exercises the verify-failed branch.
    _property_case(make_double_reconciler, n, rate, seed, 0.01)


def test_property_cases_do_produce_keys():
    statuses = [_property_case(make_reconciler, 8_000, rate, 5, rate) for rate in
                (0.0, 0.01, 0.02, 0.2)]
    assert statuses[:3] == ["key"] * 3 and statuses[3] != "key"


def test_lost_frame_stalls_until_the_link_aborts():
    # Cascade: Bob's first reply is the only frame in flight, so its loss stalls the block
    alice, bob = _nodes(distill.DistillConfig(method="cascade", thresholds=LOOSE))
    drop_first_reply = {"dropped": False}

    def wire(direction, frame):
        if direction == 1 and not drop_first_reply["dropped"]:
            drop_first_reply["dropped"] = True
            return []
        return [frame]

    with pytest.raises(distill.ProtocolError, match="stalled"):
        distill.run_block(alice, bob, *_inputs(errors=1), wire=wire)
    frames = alice.abort_block("timeout waiting for Bob")
    assert alice.last_outcome.status == "aborted" and alice.last_outcome.key is None
    for frame in frames:
        bob.receive(frame)
    assert bob.block_done and bob.last_outcome.key is None
    assert "timeout" in bob.last_outcome.reason


def test_lost_frame_out_of_two_aborts_the_block():
    """LDPC: Bob answers with two frames; losing the first is a protocol error, no key."""
    alice, bob = _nodes(distill.DistillConfig(method="ldpc", thresholds=LOOSE))
    replies = []

    def wire(direction, frame):
        if direction == 1:
            replies.append(frame)
            if len(replies) == 1:
                return []
        return [frame]

    out_a, out_b = distill.run_block(alice, bob, *_inputs(errors=1), wire=wire)
    assert len(replies) >= 2
    assert out_a.key is None and out_b.key is None
    assert out_a.status == out_b.status == "aborted" and "protocol error" in out_a.reason


def test_malformed_block_input_is_refused():
    alice, _ = _nodes()
    with pytest.raises(ValueError, match="only 0 and 1"):
        alice.begin_block(distill.BlockInput(1, np.array([0, 2, 1]), distill.XStatistics(1, 0)))
    with pytest.raises(ValueError):
        distill.XStatistics(5, 6)
    text = repr(distill.BlockInput(1, np.ones(8, dtype=np.uint8), distill.XStatistics(1, 0)))
    assert "n_z=8" in text and "[1" not in text


@pytest.mark.parametrize("method", ["cascade", "ldpc"])
def test_with_the_real_error_correction(method):
    config = distill.DistillConfig(method=method, qber_prior=0.03, thresholds=LOOSE)
    alice, bob = _nodes(config)
    out_a, out_b = distill.run_block(alice, bob, *_inputs(n=20_000, errors=600,
                                                          x=(5_000, 150)))
    if method == "ldpc" and out_a.status == "ec_failed":
        pytest.xfail("LDPC did not converge on this block (its own issue)")
    assert out_a.status == out_b.status == "key"
    assert np.array_equal(out_a.key, out_b.key)
    assert out_a.errors_corrected == 600
    assert out_a.leaked_ec_bits > 20_000 * finite_key.binary_entropy(0.03)


def test_a_block_aborted_after_verification_still_sets_the_prior():
    """The Z error count of a verified block is exact even when a threshold then aborts it
    (as a 120 km link's short blocks do on the phase-error bound): the next block uses it."""
    strict = finite_key.AbortThresholds(min_x_detections=10, max_phase_error=0.01)
    alice, bob = _nodes(distill.DistillConfig(method="cascade", thresholds=strict))
    alice.set_qber_prior(0.02)
    out_a, out_b = distill.run_block(alice, bob, *_inputs(n=20_000, errors=600,
                                                          x=(5_000, 150)))
    assert out_a.status == out_b.status == "aborted" and "phase-error" in out_a.reason
    assert out_a.key is None and out_b.key is None
    assert alice._qber_prior == pytest.approx(0.03)


def test_a_prior_too_low_for_the_code_is_raised_after_a_failed_block():
    """LDPC from a 0.5 % prior on 4 % errors fails; the next blocks start from higher priors
    until one decodes, and from then on the measured error rate is the prior."""
    config = distill.DistillConfig(method="ldpc", thresholds=LOOSE)
    alice, bob = _nodes(config)
    alice.set_qber_prior(0.005)
    statuses = []
    for block_id in range(1, 8):
        out_a, out_b = distill.run_block(alice, bob, *_inputs(block_id, 20_000, 800, block_id))
        statuses.append(out_a.status)
        assert (out_a.key is None) == (out_b.key is None)
        if out_a.status == "key":
            assert np.array_equal(out_a.key, out_b.key)
            break
    assert statuses[0] == "ec_failed" and statuses[-1] == "key", statuses
    assert alice._qber_prior == pytest.approx(0.04, abs=0.005)
    with pytest.raises(ValueError, match="in \\(0, 0.5\\)"):
        alice.set_qber_prior(0.7)
