"""The announced slots' Rice code (tbqkd.host.slot_code): exact round trips, strict decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tbqkd.host.protocol import ProtocolError
from tbqkd.host.slot_code import ESCAPE_ONES, MAX_K, pack_slots, unpack_slots


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=60))
def test_any_int64_slots_round_trip(slots):
    """Unsorted, repeated, extreme: every list comes back as it went (escapes included)."""
    slots = np.array(slots, np.int64)
    first, body = pack_slots(slots)
    assert np.array_equal(unpack_slots(first, body, slots.size), slots)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**48 - 10**7), st.floats(1.0, 1e6), st.integers(1, 3000),
       st.integers(0, 2**32 - 1))
def test_announced_slots_round_trip_compactly(start, mean_gap, count, seed):
    """Increasing slots with geometric gaps (Bob's detections) round-trip in at most a few
    bits above the gaps' entropy."""
    rng = np.random.default_rng(seed)
    slots = start + np.cumsum(rng.geometric(1 / mean_gap, count) - 1)
    first, body = pack_slots(slots)
    assert first == slots[0]
    assert np.array_equal(unpack_slots(first, body, count), slots)
    entropy_bits = np.log2(np.e * mean_gap) if mean_gap > 2 else 2.0
    assert 8 * len(body) <= count * (entropy_bits + 2.5) + 16


def test_the_48_bit_counter_wrap_and_a_long_gap_are_escapes():
    slots = np.array([2**48 - 3, 2**48 - 1, 0, 2, 2 + 2**40], np.int64)
    first, body = pack_slots(slots)
    assert np.array_equal(unpack_slots(first, body, slots.size), slots)
    k = body[0]
    assert 0 <= k <= MAX_K
    # the two escapes (the wrap, the 2^40 gap) carry 48 + 64 bits each
    assert 8 * len(body) >= 8 + 2 * (ESCAPE_ONES + 64)


def test_empty_lists():
    assert pack_slots(np.zeros(0, np.int64)) == (0, b"")
    assert unpack_slots(0, b"", 0).size == 0
    with pytest.raises(ProtocolError, match="for 0 slots"):
        unpack_slots(0, b"\x03", 0)


def _body(slots):
    return pack_slots(np.array(slots, np.int64))[1]


@pytest.mark.parametrize("make, count, message", [
    (lambda b: b[:-1], 200, "fewer bits"),                     # truncated
    (lambda b: b + b"\x00", 200, "bytes after"),               # one byte too many
    (lambda b: bytes([MAX_K + 1]) + b[1:], 200, "Rice parameter"),
    (lambda b: b, 201, "fewer bits"),                          # claims one slot more
    (lambda b: b, 8 * 10**9, "cannot hold"),                   # refused before allocating
    (lambda b: b, -1, "cannot hold"),
    (lambda b: b"", 5, "cannot hold"),
])
def test_malformed_bodies_are_refused(make, count, message):
    slots = np.cumsum(np.random.default_rng(3).geometric(1 / 4600, 200))
    body = make(_body(slots))
    with pytest.raises(ProtocolError, match=message):
        unpack_slots(0, body, count)


def test_a_nonzero_pad_is_refused():
    slots = [0, 1, 2]                       # k = 0: three short codes, then the pad
    body = _body(slots)
    assert unpack_slots(0, body, 3).tolist() == slots
    bits = 8 * (len(body) - 1)
    used = 1 + 2 + 2                        # 0 -> "0", 1 -> "10", 1 -> "10"
    assert bits > used
    with pytest.raises(ProtocolError, match="non-zero pad"):
        unpack_slots(0, body[:-1] + bytes([body[-1] | 1]), 3)


@pytest.mark.parametrize("first", [2**63, -2**63 - 1, 2**64 - 1])
def test_a_first_slot_beyond_int64_is_refused(first):
    body = _body([1, 2, 3])
    assert unpack_slots(2**63 - 1, body, 3)[0] == 2**63 - 1      # the edge itself is fine
    with pytest.raises(ProtocolError, match="first slot"):
        unpack_slots(first, body, 3)
