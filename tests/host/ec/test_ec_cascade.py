"""Cascade: correctness, leakage accounting, round trips, property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tbqkd.host.ec import binary_entropy, make_reconciler
from tbqkd.host.ec.cascade import CascadeOptions, cascade_block_sizes
from tbqkd.host.protocol import run_in_memory


def reconcile(alice_key, bob_key, qber, seed=11, **options):
    alice = make_reconciler("cascade", "alice", alice_key, qber, seed=seed, **options)
    bob = make_reconciler("cascade", "bob", bob_key, qber, seed=seed, **options)
    return run_in_memory(alice, bob)


@pytest.mark.parametrize("qber", [0.01, 0.03, 0.06, 0.10])
@pytest.mark.parametrize("schedule", ["demystifying", "yan"])
def test_corrects_every_error(qber, schedule, noisy_pair):
    alice_key, bob_key = noisy_pair(20_000, qber, seed=int(qber * 1000))
    res_a, res_b, messages = reconcile(alice_key, bob_key, qber, schedule=schedule)
    assert res_b.success and res_a.success
    np.testing.assert_array_equal(res_b.key, alice_key)
    np.testing.assert_array_equal(res_a.key, alice_key)
    assert res_b.errors_corrected == res_a.errors_corrected == int((alice_key ^ bob_key).sum())
    # Both sides count the same disclosure; Bob's flags are part of it.
    assert res_a.leaked_bits == res_b.leaked_bits > res_b.leaked_bits_alice
    assert res_b.messages == messages
    # Efficiency of Alice's disclosures in the range the literature reports for 2e4 bits.
    f_alice = res_b.leaked_bits_alice / (alice_key.size * binary_entropy(qber))
    assert 1.0 < f_alice < 1.25


def test_round_trips_grow_with_log_n_not_with_errors(noisy_pair):
    # Yan schedule: the first two passes fix nearly everything, the rest are n/2 blocks.
    alice_key, bob_key = noisy_pair(50_000, 0.05, seed=3)
    _, res_b, _ = reconcile(alice_key, bob_key, 0.05, schedule="yan")
    errors = int((alice_key ^ bob_key).sum())
    assert res_b.success
    assert res_b.round_trips < 16 * (math.log2(50_000) + 2)
    assert res_b.round_trips < errors / 10


def test_identical_keys_leak_only_top_level_parities_and_confirmation(noisy_pair):
    alice_key, _ = noisy_pair(4096, 0.0, seed=1)
    options = CascadeOptions()
    res_a, res_b, _ = reconcile(alice_key, alice_key.copy(), 0.02)
    sizes = cascade_block_sizes(4096, 0.02, options)
    top = int(sum(math.ceil(4096 / k) for k in sizes))
    assert res_b.success and res_b.errors_corrected == 0
    assert res_b.leaked_bits_alice == top + options.confirm_bits
    assert res_b.leaked_bits == 2 * top + options.confirm_bits + 1


def test_block_sizes_follow_the_schedules():
    demyst = cascade_block_sizes(100_000, 0.05, CascadeOptions())
    assert list(demyst[:3]) == [32, 128, 50_000]
    yan = cascade_block_sizes(100_000, 0.05, CascadeOptions(schedule="yan"))
    assert list(yan[:3]) == [15, 30, 50_000]
    assert cascade_block_sizes(3, 0.01, CascadeOptions()).max() == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3000), error_rate=st.floats(0.0, 0.25),
       qber=st.floats(0.005, 0.3), seed=st.integers(0, 2**32 - 1),
       schedule=st.sampled_from(["demystifying", "yan"]))
def test_property_success_means_equal_keys(n, error_rate, qber, seed, schedule,
                                           noisy_pair):
    alice_key, bob_key = noisy_pair(n, error_rate, seed)
    res_a, res_b, _ = reconcile(alice_key, bob_key, qber, seed=seed, schedule=schedule)
    assert res_a.success == res_b.success
    assert res_a.leaked_bits == res_b.leaked_bits
    if res_b.success:
        np.testing.assert_array_equal(res_b.key, alice_key)
