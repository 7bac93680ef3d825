"""Bad input: malformed, oversized and unexpected messages raise ProtocolError."""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.host.ec import make_reconciler
from tbqkd.host.protocol import ProtocolError, run_in_memory

METHOD_OPTIONS = {"cascade": {}, "ldpc": {"private_seed": 3}}


def sides(method, noisy_pair, n=12_000, qber=0.04):
    alice_key, bob_key = noisy_pair(n, qber, seed=21)
    options = METHOD_OPTIONS[method]
    alice = make_reconciler(method, "alice", alice_key, qber, seed=1, **options)
    bob = make_reconciler(method, "bob", bob_key, qber, seed=1, **options)
    return alice, bob


def first_exchange(method, noisy_pair):
    """Alice's first message and Bob's answer to it (on fresh sides)."""
    alice, bob = sides(method, noisy_pair)
    (to_bob,) = alice.start()
    (to_alice,) = bob.receive(dict(to_bob))
    return to_bob, to_alice


PACKED_FIELD = {"cascade": "bits", "ldpc": "syndromes"}


@pytest.mark.parametrize("method", ["cascade", "ldpc"])
@pytest.mark.parametrize("mutate, match", [
    (lambda m, f: [1, 2], "expected a dict"),
    (lambda m, f: {**m, "type": "bogus"}, "expected a"),
    (lambda m, f: {k: v for k, v in m.items() if k != f}, "lacks field"),
    (lambda m, f: {**m, "surprise": 1}, "unknown fields"),
    (lambda m, f: {**m, f: m[f] + b"\0" * 64}, "bytes"),
    (lambda m, f: {**m, f: m[f][:-1]}, "bytes"),
    (lambda m, f: {**m, f: "text"}, "must be bytes"),
    (lambda m, f: {**m, "confirm": b""}, "confirm"),
])
def test_bob_rejects_bad_first_message(method, mutate, match, noisy_pair):
    to_bob, _ = first_exchange(method, noisy_pair)
    bad = mutate(dict(to_bob), PACKED_FIELD[method])
    _, bob = sides(method, noisy_pair)
    with pytest.raises(ProtocolError, match=match):
        bob.receive(bad)
    # The rejected message changed nothing: the genuine one still works.
    (reply,) = bob.receive(dict(to_bob))
    assert reply["type"] in ("cascade_flags", "ldpc_status")


@pytest.mark.parametrize("method", ["cascade", "ldpc"])
def test_alice_rejects_bad_replies(method, noisy_pair):
    _, reply = first_exchange(method, noisy_pair)
    for bad, match in [
        ({**reply, "count": reply["count"] + 8}, "expected|pending"),
        ({**reply, "step" if method == "ldpc" else "round": 5}, "expected"),
        ({**reply, "final": 1}, "must be bool"),
        ({**reply, "count": True}, "must be an int"),
        ({**reply, "ok" if method == "ldpc" else "bits": b"\xff" * 4096}, "bytes"),
        ({"type": reply["type"]}, "lacks field"),
    ]:
        alice, _ = sides(method, noisy_pair)
        alice.start()
        with pytest.raises(ProtocolError, match=match):
            alice.receive(bad)


@pytest.mark.parametrize("method", ["cascade", "ldpc"])
def test_messages_after_the_end_are_rejected(method, noisy_pair):
    alice, bob = sides(method, noisy_pair)
    res_a, res_b, _ = run_in_memory(alice, bob)
    assert res_b.success
    with pytest.raises(ProtocolError, match="after the end"):
        bob.receive({"type": "anything"})
    with pytest.raises(ProtocolError, match="after the end"):
        alice.receive({"type": "anything"})


def test_ldpc_bob_rejects_inconsistent_code_parameters(noisy_pair):
    to_bob, _ = first_exchange("ldpc", noisy_pair)
    for field, value, match in [
        ("key_bits", 999, "key_bits"),
        ("frames", 7, "do not fit"),
        ("n_checks", 10**9, "n_checks"),
        ("punctured", to_bob["n_checks"], "punctured"),
        ("steps", 0, "steps"),
        ("rescue_steps", -1, "rescue_steps"),
        ("rescue_steps", 17, "rescue_steps"),
        ("rescue_checks", 0, "rescue_checks"),
        ("rescue_checks", 256, "rescue_checks"),
        ("qber_ppm", 600_000, "qber_ppm"),
    ]:
        _, bob = sides("ldpc", noisy_pair)
        with pytest.raises(ProtocolError, match=match):
            bob.receive({**to_bob, field: value})


def test_ldpc_alice_rejects_rescue_lists_before_the_rescue_steps(noisy_pair):
    _, reply = first_exchange("ldpc", noisy_pair)
    alice, _ = sides("ldpc", noisy_pair)
    alice.start()
    with pytest.raises(ProtocolError, match="lists rescue checks at step 0"):
        alice.receive({**reply, "target_counts": b"\x01", "targets": bytes(4)})


@pytest.mark.parametrize("method", ["cascade", "ldpc"])
def test_factory_rejects_bad_arguments(method):
    key = np.zeros(100, dtype=np.uint8)
    with pytest.raises(ValueError, match="role"):
        make_reconciler(method, "eve", key, 0.02, seed=1)
    with pytest.raises(ValueError, match="qber"):
        make_reconciler(method, "bob", key, 0.6, seed=1)
    with pytest.raises(ValueError, match="0 and 1"):
        make_reconciler(method, "bob", key + 2, 0.02, seed=1)
    with pytest.raises(ValueError, match="non-empty"):
        make_reconciler(method, "bob", key[:0], 0.02, seed=1)
    with pytest.raises(ValueError, match="method"):
        make_reconciler("turbo", "bob", key, 0.02, seed=1)
    with pytest.raises(TypeError):
        make_reconciler(method, "bob", key, 0.02, seed=1, no_such_option=3)


def test_cascade_alice_survives_a_lying_bob(noisy_pair):
    """Flags that contradict themselves end in ProtocolError or completion, never a hang."""
    alice_key, _ = noisy_pair(300, 0.0, seed=5)
    alice = make_reconciler("cascade", "alice", alice_key, 0.05, seed=2, passes=4)
    (message,) = alice.start()
    rng = np.random.default_rng(0)
    for _ in range(20_000):
        count = alice._queries.shape[0]  # what an honest Bob would answer
        flags = rng.integers(0, 2, count, dtype=np.uint8)
        reply = {"type": "cascade_flags", "round": message["round"], "count": count,
                 "bits": np.packbits(flags).tobytes(), "final": False, "confirmed": False}
        try:
            out = alice.receive(reply)
        except ProtocolError as error:
            assert any(word in str(error) for word in ("final", "inconsistent", "honest"))
            return
        if not out:
            break
        (message,) = out
    else:
        pytest.fail("protocol did not terminate")
