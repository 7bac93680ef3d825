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


def _orders(n, qber, seed, schedule="yan"):
    """A Cascade side's public pass orders, spelled out as explicit place -> position arrays."""
    side = make_reconciler("cascade", "alice", np.zeros(n, dtype=np.uint8), qber, seed=seed,
                           schedule=schedule)
    meta, orders = side._meta, []
    for j in range(meta.shape[1]):
        kind, k, slot = meta[0, j], meta[1, j], meta[2, j]
        if kind == 0:
            orders.append(np.arange(n))
        elif kind == 1:
            orders.append(side._perm[slot].astype(np.int64))
        else:
            words = side._masks[j]
            member = ((words[np.arange(n) >> 6] >> (np.arange(n) & 63).astype(np.uint64))
                      & np.uint64(1)).astype(bool)
            assert member.sum() == k  # block 0 holds exactly k positions
            orders.append(np.concatenate([np.flatnonzero(member), np.flatnonzero(~member)]))
    return side, orders


@pytest.mark.parametrize("n, qber", [(1, 0.05), (2, 0.3), (63, 0.05), (64, 0.01),
                                     (1000, 0.05), (20_001, 0.02)])
def test_pass_orders_are_permutations_shared_by_both_sides(n, qber):
    side, orders = _orders(n, qber, seed=5)
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
    for slot in range(side._perm.shape[0]):
        np.testing.assert_array_equal(side._pos[slot][side._perm[slot]], np.arange(n))
    # Bob derives the same orders from the same seed; another seed gives other orders.
    _, again = _orders(n, qber, seed=5)
    for a, b in zip(orders, again, strict=True):
        np.testing.assert_array_equal(a, b)
    if n >= 1000:
        _, other = _orders(n, qber, seed=6)
        assert not np.array_equal(orders[-1], other[-1])
        assert not np.array_equal(orders[1], other[1])


def test_split_passes_put_every_bit_in_either_block_equally_often():
    n, hits = 200, np.zeros(200)
    for seed in range(400):
        side, orders = _orders(n, 0.05, seed)
        hits[orders[5][:side._meta[1, 5]]] += 1
    # 400 draws of a uniform 100-subset: each count ~ Binomial(400, 1/2), sd 10.
    assert np.all(np.abs(hits - 200) < 60) and abs(hits.mean() - 200) < 1e-9


@pytest.mark.parametrize("n", [1, 77, 5000])
def test_range_parities_match_the_explicit_orders(n):
    from tbqkd.host.ec.cascade import _parities
    rng = np.random.default_rng(n)
    key = rng.integers(0, 2, n, dtype=np.uint8)
    side, orders = _orders(n, 0.05, seed=9)
    side = make_reconciler("cascade", "bob", key, 0.05, seed=9, schedule="yan")
    rows = []
    for j in range(len(orders)):
        k = int(side._meta[1, j])
        for _ in range(40):
            block = rng.integers(0, (n + k - 1) // k)
            start, end = block * k, min((block + 1) * k, n)
            lo = int(rng.integers(start, end))
            hi = int(rng.integers(lo, end + 1))
            rows.append((j, lo, hi, 0))
    q = np.array(rows, dtype=np.int64)
    got = _parities(q, False, side._known, side._meta, side._key, side._kw, side._perm,
                    side._masks, side._counts)
    want = [int(key[orders[j][lo:hi]].sum() & 1) for j, lo, hi, _ in rows]
    np.testing.assert_array_equal(got, want)


def test_confirmation_parities_catch_any_single_bit_difference():
    from tbqkd.host.ec._common import confirm_parities
    key = np.random.default_rng(4).integers(0, 2, 1000, dtype=np.uint8)
    base = confirm_parities(key, 17, 64)
    assert base.shape == (64,) and set(np.unique(base)) <= {0, 1}
    np.testing.assert_array_equal(base, confirm_parities(key.copy(), 17, 64))
    assert not np.array_equal(base, confirm_parities(key, 18, 64))
    for x in (0, 63, 64, 500, 999):
        other = key.copy()
        other[x] ^= 1
        # Each subset holds bit x with probability 1/2: about 32 of 64 parities change.
        assert 10 < int((confirm_parities(other, 17, 64) != base).sum()) < 54
