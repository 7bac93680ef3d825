"""Blind LDPC reconciliation: correctness, framing, leakage accounting, property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tbqkd.host.ec import binary_entropy, make_reconciler
from tbqkd.host.ec.ldpc import LdpcOptions, plan_frames
from tbqkd.host.protocol import ProtocolError, deliver_until_quiet, run_in_memory


def reconcile(alice_key, bob_key, qber, seed=5, **options):
    options.setdefault("private_seed", 99)
    alice = make_reconciler("ldpc", "alice", alice_key, qber, seed=seed, **options)
    bob = make_reconciler("ldpc", "bob", bob_key, qber, seed=seed, **options)
    return run_in_memory(alice, bob)


@pytest.mark.parametrize("qber", [0.02, 0.05, 0.10])
def test_corrects_every_error(qber, noisy_pair):
    alice_key, bob_key = noisy_pair(20_000, qber, seed=int(qber * 1000))
    res_a, res_b, messages = reconcile(alice_key, bob_key, qber)
    assert res_a.success and res_b.success
    np.testing.assert_array_equal(res_b.key, alice_key)
    assert res_b.errors_corrected == int((alice_key ^ bob_key).sum())
    assert res_a.leaked_bits == res_b.leaked_bits
    assert res_b.messages == messages
    f = res_b.leaked_bits / (alice_key.size * binary_entropy(qber))
    assert 1.0 < f < 1.55


def test_leakage_is_syndrome_net_of_padding_plus_reveals_and_status(noisy_pair):
    alice_key, bob_key = noisy_pair(8000, 0.04, seed=2)
    options = LdpcOptions(private_seed=1)
    plan = plan_frames(8000, 0.04, options)
    res_a, res_b, messages = reconcile(alice_key, bob_key, 0.04, private_seed=1)
    status_messages = messages // 2
    assert status_messages - 1 <= plan.steps          # no rescue step on this block
    reveals = sum(plan.reveal_counts()[: status_messages - 1])
    expected_alice = plan.frames * (plan.n_checks - plan.punctured + reveals) + 32
    assert res_b.leaked_bits_alice == expected_alice
    # Bob: one status bit per pending frame per attempt, plus the final confirmation bit.
    assert res_b.leaked_bits == expected_alice + status_messages * plan.frames + 1


def recorded(side, log):
    """``side`` with every message it receives appended to ``log``."""
    receive = side.receive

    def logging_receive(message):
        log.append(message)
        return receive(message)

    side.receive = logging_receive
    return side


def test_rescue_steps_free_a_frame_stuck_in_a_trapping_set():
    # A 5 % frame (bench seed 1047) whose decoder stalls with two unsatisfied checks however
    # many punctured bits are revealed: an error-floor event, not a short margin.
    rng = np.random.default_rng(1047)
    alice_key = rng.integers(0, 2, 100_000, dtype=np.uint8)
    bob_key = alice_key ^ (rng.random(100_000) < 0.05).astype(np.uint8)
    _, without, _ = reconcile(alice_key, bob_key, 0.05, seed=1047, private_seed=1047,
                              rescue_steps=0)
    assert not without.success
    to_alice, to_bob = [], []
    alice = recorded(make_reconciler("ldpc", "alice", alice_key, 0.05, seed=1047,
                                     private_seed=1047), to_alice)
    bob = recorded(make_reconciler("ldpc", "bob", bob_key, 0.05, seed=1047,
                                   private_seed=1047), to_bob)
    res_a, res_b, _ = run_in_memory(alice, bob)
    assert res_a.success and res_b.success
    np.testing.assert_array_equal(res_b.key, alice_key)
    plan = plan_frames(100_000, 0.05, LdpcOptions())
    rescues = [m for m in to_bob if m["type"] == "ldpc_reveal" and m["step"] > plan.steps]
    lists = [m for m in to_alice if m["targets"]]
    assert len(rescues) == len(lists) >= 1
    checks = np.frombuffer(lists[0]["targets"], dtype="<u4")
    assert 1 <= checks.size <= plan.rescue_checks == 16
    # Every bit is counted: Bob's lists at their encoded length, Alice's values one each.
    list_bits = sum(plan.check_count_bits + np.frombuffer(m["targets"], "<u4").size
                    * plan.check_index_bits for m in lists)
    revealed = sum(8 * len(m["bits"]) for m in rescues)        # an upper bound (byte padding)
    assert res_b.leaked_bits - res_b.leaked_bits_alice == len(to_alice) + 1 + list_bits
    base = plan.n_checks + 32                                   # all punctured bits revealed
    assert base < res_b.leaked_bits_alice <= base + revealed
    assert res_b.leaked_bits_alice - without.leaked_bits_alice < 300    # a few dozen checks' worth
    assert res_a.leaked_bits == res_b.leaked_bits


def test_alice_rejects_malformed_rescue_lists(noisy_pair):
    # 3.9 % errors against a 3 % estimate: every punctured bit revealed, then rescue steps.
    alice_key, bob_key = noisy_pair(20_000, 0.039, seed=4)
    alice = make_reconciler("ldpc", "alice", alice_key, 0.03, seed=5, private_seed=99)
    bob = make_reconciler("ldpc", "bob", bob_key, 0.03, seed=5, private_seed=99)
    plan = plan_frames(20_000, 0.03, LdpcOptions())
    (message,) = alice.start()
    (status,) = bob.receive(message)
    while not status["targets"]:
        assert not status["final"] and status["step"] < plan.steps
        (message,) = alice.receive(status)
        (status,) = bob.receive(message)
    assert status["step"] == plan.steps
    checks = np.frombuffer(status["targets"], "<u4")
    assert checks.size == plan.rescue_checks       # hundreds unsatisfied: the first 16 listed
    for bad, match in [
        ({**status, "targets": status["targets"][:-4]}, "bytes"),
        ({**status, "target_counts": b"\x00"}, "outside"),
        ({**status, "target_counts": bytes([plan.rescue_checks + 1])}, "outside"),
        ({**status, "target_counts": b"\x10\x10"}, "2 frames"),
        ({**status, "targets": checks[::-1].astype("<u4").tobytes()}, "increase"),
        ({**status, "targets": (checks + plan.n_checks).astype("<u4").tobytes()}, "below"),
        ({**status, "step": status["step"] - 1, "targets": b"", "target_counts": b""},
         "step"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            alice.receive(bad)
    # The genuine status still works after the rejected ones.
    (reveal,) = alice.receive(status)
    assert reveal["type"] == "ldpc_reveal" and reveal["step"] == plan.steps + 1
    bob.receive(reveal)


def test_key_split_into_frames_with_zero_padding(noisy_pair):
    alice_key, bob_key = noisy_pair(25_003, 0.03, seed=4)
    res_a, res_b, _ = reconcile(alice_key, bob_key, 0.03, max_frame_bits=10_000,
                                min_frame_bits=4096)
    plan = plan_frames(25_003, 0.03, LdpcOptions(max_frame_bits=10_000, min_frame_bits=4096))
    assert plan.frames == 3 and plan.frames * plan.frame_bits > 25_003
    assert res_b.success
    np.testing.assert_array_equal(res_b.key, alice_key)


def test_frames_decoded_in_threads_give_the_same_messages(noisy_pair):
    alice_key, bob_key = noisy_pair(40_000, 0.03, seed=12)
    transcripts, keys = [], []
    for threads in (1, 3):
        options = {"max_frame_bits": 10_000, "min_frame_bits": 4096, "private_seed": 99,
                   "threads": threads}
        alice = make_reconciler("ldpc", "alice", alice_key, 0.03, seed=5, **options)
        bob = make_reconciler("ldpc", "bob", bob_key, 0.03, seed=5, **options)
        sent: list = []

        def recording(side, sent=sent):
            def receive(message):
                replies = side.receive(message)
                sent.extend(replies)
                return replies
            return receive

        deliver_until_quiet(alice.start(), bob.start(), recording(alice), recording(bob),
                            limit=1000)
        assert bob.result().success
        transcripts.append(sent)
        keys.append(bob.result().key)
    assert len(transcripts[0]) > 2  # some frames failed and were decoded again
    assert transcripts[0] == transcripts[1]
    np.testing.assert_array_equal(keys[1], alice_key)
    with pytest.raises(ValueError, match="threads"):
        LdpcOptions(threads=0)


def test_hopeless_error_rate_reports_failure(noisy_pair):
    alice_key, bob_key = noisy_pair(4000, 0.25, seed=8)
    res_a, res_b, _ = reconcile(alice_key, bob_key, 0.02)
    assert not res_b.success and not res_a.success


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 4000), error_rate=st.floats(0.0, 0.2),
       qber=st.floats(0.005, 0.15), seed=st.integers(0, 2**31 - 1))
def test_property_success_means_equal_keys(n, error_rate, qber, seed, noisy_pair):
    alice_key, bob_key = noisy_pair(n, error_rate, seed)
    res_a, res_b, _ = reconcile(alice_key, bob_key, qber, seed=seed % 7)
    assert res_a.success == res_b.success
    assert res_a.leaked_bits == res_b.leaked_bits
    if res_b.success:
        np.testing.assert_array_equal(res_b.key, alice_key)


def test_automatic_f_max_depends_on_the_error_rate():
    options = LdpcOptions()
    for qber, f_max in ((0.05, 1.20), (0.11, 1.20), (0.01, 1.32), (0.02, 1.32)):
        plan = plan_frames(100_000, qber, options)
        h = binary_entropy(qber)
        assert plan.n_checks == pytest.approx(f_max * 100_000 * h, abs=1)
        assert plan.punctured == pytest.approx((f_max - options.f_min) * 100_000 * h, abs=1)
    explicit = plan_frames(100_000, 0.05, LdpcOptions(f_max=1.5))
    assert explicit.n_checks == pytest.approx(1.5 * 100_000 * binary_entropy(0.05), abs=1)
    with pytest.raises(ValueError):
        LdpcOptions(f_min=1.4)  # above the automatic f_max
