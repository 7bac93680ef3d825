"""Slot synchronisation by correlation: Alice finds Bob's slot 0 in her numbering."""

from __future__ import annotations

import numpy as np
import pytest
from tbqkd.host.protocol import ProtocolError
from tbqkd.host.slot_sync import (
    STATE_BASIS,
    STATE_BIT,
    SYNC_MIN_COMPARED,
    SyncSample,
    find_slot_offset,
)

DIVIDER = 1024


def _alice(seed: int = 1, slots: int = 1 << 22, p_z: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.random(slots) < p_z
    return np.where(z, rng.integers(0, 2, slots), 2).astype(np.uint8)


def _sample(alice: np.ndarray, true_offset: int, n: int, qber: float, seed: int = 2):
    """Bob's Z detections (his numbering) of slots Alice sent, flipped at rate ``qber``."""
    rng = np.random.default_rng(seed)
    bob_slots = np.sort(rng.choice(np.arange(10_000, 200_000), n, replace=False))
    state = alice[bob_slots + true_offset]
    bits = np.where(STATE_BASIS[state] == 0, STATE_BIT[state], rng.integers(0, 2, n))
    flips = rng.random(n) < qber
    return bob_slots, (bits ^ flips).astype(np.uint8)


def _lookup(alice: np.ndarray, known_from: int = 0, calls: list | None = None):
    def states(slots: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(int(slots[0]))
        if slots.min() < known_from or slots.max() >= alice.size:
            raise ProtocolError("no state recorded for some slots")
        return alice[slots]
    return states


@pytest.mark.parametrize("k, qber", [(0, 0.02), (3, 0.02), (-5, 0.02), (40, 0.02),
                                     (-2, 0.25)])    # 25 %: a full intercept-resend attack
def test_the_offset_is_found_whole_reference_periods_away_from_the_nominal_one(k, qber):
    alice = _alice(seed=1 + abs(k))
    true = 100 * DIVIDER
    slots, bits = _sample(alice, true, 2_000, qber=qber, seed=2 + abs(k))
    result = find_slot_offset(_lookup(alice), slots, bits, nominal=true - k * DIVIDER,
                              divider=DIVIDER, search=40)
    assert result.found and result.slot_offset == true
    assert result.compared >= SYNC_MIN_COMPARED
    assert abs(result.error_rate - qber) < 0.03
    assert result.tried == 2 * abs(k) + (k <= 0)       # nearest first: 0, +1, -1, +2, ...


def test_no_candidate_matches_when_the_offset_is_outside_the_search():
    alice = _alice(seed=5)
    true = 50 * DIVIDER
    slots, bits = _sample(alice, true, 2_000, qber=0.02, seed=6)
    result = find_slot_offset(_lookup(alice), slots, bits, nominal=true + 10 * DIVIDER,
                              divider=DIVIDER, search=6)
    assert not result.found and result.tried == 13
    assert 0.4 < result.error_rate < 0.6                    # the best of them: chance
    assert "no offset within ±6 reference periods" in result.reason


def test_bits_unrelated_to_alice_never_synchronise():
    alice = _alice(seed=7)
    slots = np.arange(20_000, 22_000)
    bits = np.random.default_rng(8).integers(0, 2, slots.size).astype(np.uint8)
    result = find_slot_offset(_lookup(alice), slots, bits, nominal=300 * DIVIDER,
                              divider=DIVIDER, search=200)
    assert not result.found and result.tried == 401


def test_candidates_alice_has_no_states_for_are_skipped_and_counted():
    alice = _alice(seed=9)
    true = 30 * DIVIDER
    slots, bits = _sample(alice, true, 2_000, qber=0.02, seed=10)
    calls: list[int] = []
    # her history starts at slot true + 10 000: the nearer, lower candidates have no states
    result = find_slot_offset(_lookup(alice, known_from=true + 10_000, calls=calls), slots,
                              bits, nominal=true - 2 * DIVIDER, divider=DIVIDER, search=3)
    assert result.found and result.slot_offset == true
    assert result.unknown == 3 and result.tried == 4      # 0, +1, -1 unknown; +2 matches
    nothing = find_slot_offset(_lookup(alice, known_from=alice.size), slots, bits,
                               nominal=true, divider=DIVIDER, search=1)
    assert not nothing.found and nothing.unknown == 3 and "no states" in nothing.reason


def test_candidates_before_alices_slot_zero_are_not_tried():
    alice = _alice(seed=11)
    slots, bits = _sample(alice, 0, 2_000, qber=0.02, seed=12)
    calls: list[int] = []
    result = find_slot_offset(_lookup(alice, calls=calls), slots, bits, nominal=0,
                              divider=100_000, search=2)
    assert result.found and result.slot_offset == 0 and len(calls) == 1
    assert min(calls) >= 0


def test_a_small_sample_is_refused_without_looking_up_states():
    alice = _alice()
    slots, bits = _sample(alice, 0, 500, qber=0.0)
    calls: list[int] = []
    result = find_slot_offset(_lookup(alice, calls=calls), slots, bits, nominal=0,
                              divider=DIVIDER, search=1)
    assert not result.found and calls == [] and "500 detections" in result.reason


@pytest.mark.parametrize("slots, bits, divider, search, match", [
    (np.arange(3), np.zeros(2), DIVIDER, 1, "one bit per slot"),
    (np.arange(3), np.array([0, 2, 1]), DIVIDER, 1, "0 or 1"),
    (np.arange(3), np.zeros(3), 0, 1, "divider"),
    (np.arange(3), np.zeros(3), DIVIDER, -1, "search"),
])
def test_malformed_samples_and_settings_are_refused(slots, bits, divider, search, match):
    with pytest.raises(ValueError, match=match):
        find_slot_offset(_lookup(_alice(slots=64)), slots, bits, nominal=0, divider=divider,
                         search=search)


def test_a_sample_needs_one_bit_per_slot():
    with pytest.raises(ValueError, match="one bit per slot"):
        SyncSample(np.arange(4), np.zeros(3, np.uint8))
    assert len(SyncSample(np.arange(4), np.zeros(4, np.uint8))) == 4
