"""Messages, frames and Wegman-Carter authentication: good frames pass, bad ones fail clearly."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from tbqkd.host import messages, polyhash, verify
from tbqkd.host.auth import (
    MAX_SKIPPED_FRAMES,
    AuthenticatedChannel,
    AuthenticationError,
    KeyExhaustedError,
)
from tbqkd.host.messages import MessageError

PSK = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
ABORT = {"type": "abort", "block_id": 3, "reason": "test"}


def _pair(psk: bytes = PSK):
    return AuthenticatedChannel("alice", psk), AuthenticatedChannel("bob", psk)


def test_every_type_round_trips():
    alice, bob = _pair()
    samples = [
        {"type": "block_start", "block_id": 1, "n_z": 10, "n_x": 5, "e_x": 0, "pulses": 99,
         "qber_prior": 0.02, "method": "cascade", "ec_seed": 7},
        {"type": "ec", "block_id": 1, "body": {"type": "x", "bits": b"\x01\x02", "n": [1, 2]}},
        {"type": "verify", "block_id": 1, "ec_success": True, "errors_corrected": 3,
         "hash_seed": b"12345678", "tag": b"abcdefgh"},
        {"type": "pa", "block_id": 1, "key_bits": 5, "seed": b"\xff\x00"},
        ABORT,
        {"type": "ack", "block_id": 1, "key_bits": 5},
        {"type": "sync", "slot_offset": 65536, "divider": 65536, "search": 2,
         "qber_estimate": 0.012, "count": 2, "first_slot": 7, "slots": b"zz", "bits": b"\x40"},
        {"type": "sync_result", "found": True, "slot_offset": 131072, "compared": 1500,
         "errors": 30, "reason": ""},
        {"type": "announce", "batch": 0, "count": 2, "first_slot": 5, "slots": b"zz",
         "bases": b"\x80"},
        {"type": "answer", "batch": 0, "count": 2, "bases": b"\x40"},
        {"type": "block_ready", "block_id": 0, "first_batch": 0, "end_batch": 3, "n_z": 10,
         "n_x": 4, "e_x": 1, "pulses": 1000},
    ]
    assert {m["type"] for m in samples} == set(messages.MESSAGE_TYPES)
    for message in samples:
        assert bob.open(alice.seal(message)) == message
        assert alice.open(bob.seal(message)) == message


@pytest.mark.parametrize("bad, match", [
    ({"type": "nope", "block_id": 1}, "unknown message type"),
    ({"type": "abort", "block_id": 1}, "missing fields"),
    ({"type": "abort", "block_id": 1, "reason": "x", "extra": 1}, "unexpected"),
    ({"type": "abort", "block_id": True, "reason": "x"}, "must be int"),
    ({"type": "abort", "block_id": -1, "reason": "x"}, "negative"),
    ({"type": "abort", "block_id": 1, "reason": "x" * 2000}, "longer than"),
    ({"type": "ec", "block_id": 1, "body": {"no_type": 1}}, "string 'type'"),
])
def test_invalid_messages_are_refused_on_sending(bad, match):
    alice, _ = _pair()
    with pytest.raises(MessageError, match=match):
        alice.seal(bad)


def test_tampering_anywhere_fails_authentication():
    alice, bob = _pair()
    frame = alice.seal({"type": "pa", "block_id": 2, "key_bits": 9, "seed": b"\x00" * 40})
    for position in range(len(frame)):
        forged = bytearray(frame)
        forged[position] ^= 0x10
        with pytest.raises((AuthenticationError, MessageError)):
            bob.open(bytes(forged))
    assert bob.failures == len(frame)
    assert bob.open(frame)["key_bits"] == 9  # the genuine frame still passes


def test_tampered_body_fails_the_tag_not_the_parser():
    alice, bob = _pair()
    frame = bytearray(alice.seal(ABORT))
    frame[messages.HEADER_BYTES + 3] ^= 0x01
    with pytest.raises(AuthenticationError, match="tag mismatch"):
        bob.open(bytes(frame))


def test_replay_and_reorder_fail():
    alice, bob = _pair()
    first, second = alice.seal(ABORT), alice.seal(ABORT)
    bob.open(first)
    with pytest.raises(AuthenticationError, match="replayed"):
        bob.open(first)
    bob.open(second)
    alice2, bob2 = _pair()
    first, second = alice2.seal(ABORT), alice2.seal(ABORT)
    bob2.open(second)  # a lost frame is skipped ...
    with pytest.raises(AuthenticationError, match="replayed or reordered"):
        bob2.open(first)  # ... but the older one can no longer be accepted


def test_counter_jump_is_bounded():
    alice, bob = _pair()
    frames = [alice.seal(ABORT) for _ in range(MAX_SKIPPED_FRAMES + 2)]
    with pytest.raises(AuthenticationError, match="jumps"):
        bob.open(frames[-1])


def test_reflected_frame_fails():
    alice, _ = _pair()
    frame = alice.seal(ABORT)
    with pytest.raises(AuthenticationError, match="reflected"):
        alice.open(frame)


def test_truncated_oversized_and_foreign_frames_fail_parsing():
    alice, bob = _pair()
    frame = alice.seal(ABORT)
    for cut in (0, 5, messages.HEADER_BYTES, len(frame) - 1):
        with pytest.raises(MessageError, match="truncated"):
            bob.open(frame[:cut])
    with pytest.raises(MessageError, match="over-long"):
        bob.open(frame + b"\x00")
    with pytest.raises(MessageError, match="exceeds"):
        bob.open(b"\x00" * (messages.MAX_FRAME_BYTES + 1))
    with pytest.raises(MessageError, match="must be bytes"):
        bob.open("not a frame")
    with pytest.raises(MessageError, match="magic"):
        bob.open(b"XX" + frame[2:])
    with pytest.raises(MessageError, match="wire version"):
        bob.open(frame[:2] + bytes([messages.WIRE_VERSION + 1]) + frame[3:])
    assert bob.open(frame) == ABORT


def test_oversized_message_is_refused_on_sending(monkeypatch):
    monkeypatch.setattr(messages, "MAX_FRAME_BYTES", 1000)
    alice, _ = _pair()
    with pytest.raises(MessageError, match="frame limit"):
        alice.seal({"type": "pa", "block_id": 1, "key_bits": 1, "seed": b"\x00" * 2000})


def test_authenticated_garbage_body_fails_parsing():
    # A peer with the key but a broken serialiser: the tag passes, the schema check does not.
    alice, bob = _pair()
    body = msgpack.packb({"type": "abort", "block_id": "one", "reason": "x"})
    frame = messages.Frame(0, 0, body, b"")
    tag = alice._tag(frame.signed_bytes, alice._pools[0].peek(16))
    with pytest.raises(MessageError, match="must be int"):
        bob.open(frame.signed_bytes + tag)


def test_key_accounting_exhaustion_and_refill():
    psk = PSK[:16 + 2 * 32]  # two frames per direction
    alice, bob = _pair(psk)
    assert alice.consumed_bits == bob.consumed_bits == 128
    for _ in range(2):
        bob.open(alice.seal(ABORT))
    assert alice.consumed_bits == bob.consumed_bits == 128 + 2 * 128
    with pytest.raises(KeyExhaustedError):
        alice.seal(ABORT)
    fresh = bytes(range(64))
    alice.refill(fresh)
    bob.refill(fresh)
    assert bob.open(alice.seal(ABORT)) == ABORT
    assert alice.pad_bits_available(0) == bob.pad_bits_available(0) == 8 * 16


def test_different_keys_do_not_authenticate():
    alice, _ = _pair()
    other = AuthenticatedChannel("bob", bytes(len(PSK)))
    with pytest.raises(AuthenticationError):
        other.open(alice.seal(ABORT))


def test_polyhash_matches_reference():
    rng = np.random.default_rng(4)

    def reference(data: bytes, key: int) -> int:
        acc = 0
        for i in range(0, len(data), 7):
            acc = (acc + int.from_bytes(data[i:i + 7], "little")) * key % polyhash.PRIME
        return (acc + 8 * len(data)) * key % polyhash.PRIME

    for size in (0, 1, 7, 8, 13, 700):
        data = rng.bytes(size)
        keys = [int(k) for k in rng.integers(0, polyhash.PRIME, 3)] + [polyhash.PRIME - 1]
        assert polyhash.polyhash(data, keys) == [reference(data, k) for k in keys]
    assert polyhash.polyhash(b"\x00", [5]) != polyhash.polyhash(b"\x00\x00", [5])


def test_verification_hash_detects_differences_and_meets_eps_cor():
    rng = np.random.default_rng(8)
    key = rng.integers(0, 2, 100_000, dtype=np.uint8)
    source = np.random.default_rng(9)
    function = verify.draw_verification_hash(key.size, 1e-15,
                                             random_bytes=lambda n: source.bytes(n))
    assert function.collision_probability(key.size) <= 1e-15
    assert function.tag_bits == 64 * len(function.keys)
    same = verify.VerificationHash.from_seed_bytes(function.seed_bytes())
    assert same.tag(key) == function.tag(key)
    for position in (0, 777, key.size - 1):
        flipped = key.copy()
        flipped[position] ^= 1
        assert function.tag(flipped) != function.tag(key)
    assert function.tag(key[:-1]) != function.tag(key)
    with pytest.raises(ValueError):
        verify.VerificationHash.from_seed_bytes(b"\xff" * 8)


ANNOUNCE = {"type": "announce", "batch": 0, "count": 3, "first_slot": 7, "slots": b"abc",
            "bases": b"\xa0"}


def test_deferred_frames_cost_no_pad_and_are_covered_by_the_next_ordinary_frame():
    alice, bob = _pair()
    used = alice.consumed_bits
    frames = [alice.seal({**ANNOUNCE, "batch": b}, deferred=True) for b in range(5)]
    assert alice.consumed_bits == used
    assert [bob.open(f)["batch"] for f in frames] == list(range(5))
    assert bob.deferred_pending == (5, 0)
    assert bob.open(alice.seal(ABORT)) == ABORT
    assert bob.deferred_pending == (0, 0) and alice.deferred_pending == (0, 0)
    assert bob.consumed_bits == alice.consumed_bits


def test_a_tampered_deferred_frame_fails_the_next_ordinary_frame():
    alice, bob = _pair()
    frame = bytearray(alice.seal(ANNOUNCE, deferred=True))
    frame[bytes(frame).index(b"abc")] ^= 1            # inside the announced slot bytes
    bob.open(bytes(frame))                            # accepted provisionally ...
    with pytest.raises(AuthenticationError, match="covering 1 deferred"):
        bob.open(alice.seal(ABORT))                   # ... and caught by the next tag


def test_a_lost_or_injected_deferred_frame_is_caught():
    alice, bob = _pair()
    alice.seal(ANNOUNCE, deferred=True)               # lost on the way
    with pytest.raises(AuthenticationError, match="deferred frame counter"):
        bob.open(alice.seal(ANNOUNCE, deferred=True))
    alice, bob = _pair()
    mallory, _ = _pair(bytes(len(PSK)))               # knows the format, not the key
    alice.seal(ANNOUNCE, deferred=True)               # replaced on the way by Mallory's
    bob.open(mallory.seal({**ANNOUNCE, "first_slot": 8}, deferred=True))
    with pytest.raises(AuthenticationError, match="tag mismatch"):
        bob.open(alice.seal(ABORT))


def test_only_sifting_messages_may_be_deferred():
    alice, bob = _pair()
    with pytest.raises(MessageError, match="cannot be deferred"):
        alice.seal(ABORT, deferred=True)
    frame = alice.seal(ABORT)
    stripped = frame[:-messages.TAG_BYTES] + bytes(messages.TAG_BYTES)
    with pytest.raises(AuthenticationError, match="without a tag"):
        bob.open(stripped)
