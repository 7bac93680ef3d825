"""Cascade with all blocks bisected in parallel (one message per round in each direction).

Parameters follow Martinez-Mateo et al., "Demystifying the information reconciliation protocol
Cascade" (QIC 15, 2015), option 7 (``k1 = 2**ceil(log2(1/qber))``, ``k2 = 4 k1``, then ``n/2``),
or Yan et al. (2008) (``k1 = ceil(0.73/qber)``, ``k2 = 2 k1``, then ``n/2``); 16 passes, a fresh
public random permutation per pass after the first, and reuse of every parity Alice already
disclosed (the sub-blocks of the bisection tree).

Protocol (both sides mirror one deterministic state; only Bob flips bits):

1. Alice sends ``cascade_parities``: her parity of every *query* whose parity she has not
   disclosed before. Queries are, at the start of a pass, all top-level blocks of that pass;
   otherwise the left half of every *active* range (a range known to hold an odd number of
   errors). The first message also carries the confirmation parities.
2. Bob answers ``cascade_flags``: one bit per query, set when his parity differs from Alice's.
   For a top-level block this marks it active; for a left half it tells which half holds the
   error. Both sides then descend, and a range of one bit is an error: Bob flips it, and every
   block of an earlier pass containing it changes parity (the *cascade*) and becomes active if
   its parity now differs.
3. When no range is active the next pass starts; after the last pass Bob's final
   ``cascade_flags`` carries ``confirmed`` (the confirmation parities matched).

Round trips per pass grow with ``log2(block size)`` plus the depth of the cascade, not with the
number of errors. Leakage: every parity Alice sends and every flag Bob sends (both directions),
plus the confirmation parities and Bob's ``confirmed`` bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ..protocol import Message, ProtocolError
from . import ReconcilerSide
from ._common import MAX_KEY_BITS, confirm_parities, expect_message, field_bits, pack

__all__ = ["CascadeOptions", "CascadeAlice", "CascadeBob", "cascade_block_sizes"]

_PASS, _BLOCK, _NODE, _LO, _HI, _DEAD = range(6)
#: Rounds per pass and per bisection level after which the peer is deemed misbehaving;
#: honest runs use a few (log2 of the block size plus the depth of the cascade).
_ROUNDS_PER_LEVEL = 64


@dataclass(frozen=True)
class CascadeOptions:
    """Cascade parameters.

    Attributes
    ----------
    schedule
        Block sizes per pass. ``"demystifying"`` (default; option 7 of Martinez-Mateo et al.):
        ``k1 = 2**ceil(log2(1/qber))``, ``k2 = 4 k1``, then ``n/2``; lowest leakage, more
        round trips. ``"yan"`` (Yan et al.): ``k1 = ceil(0.73/qber)``, ``k2 = 2 k1``, then
        ``n/2``; about 10x fewer round trips, a few percent more leakage.
    passes
        Number of passes.
    confirm_bits
        Random-subset parities Alice sends up front so that Bob can confirm the result.
    """

    schedule: str = "demystifying"
    passes: int = 16
    confirm_bits: int = 32

    def __post_init__(self) -> None:
        if self.schedule not in ("demystifying", "yan"):
            raise ValueError(f"schedule must be 'demystifying' or 'yan', got {self.schedule!r}")
        if not 2 <= self.passes <= 64:
            raise ValueError(f"passes must be in [2, 64], got {self.passes}")
        if not 0 <= self.confirm_bits <= 256:
            raise ValueError(f"confirm_bits must be in [0, 256], got {self.confirm_bits}")


def cascade_block_sizes(n: int, qber: float, options: CascadeOptions) -> np.ndarray:
    """Block size of each pass for an ``n``-bit key (see :class:`CascadeOptions`)."""
    half = max(1, (n + 1) // 2)
    if options.schedule == "yan":
        first = max(2, math.ceil(0.73 / qber))
        second = 2 * first
    else:
        first = 2 ** math.ceil(math.log2(1.0 / qber))
        second = 4 * first
    sizes = [first, second] + [half] * (options.passes - 2)
    return np.array([min(size, half) for size in sizes], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# numba kernels. `act` rows are (pass, global block, node, lo, hi, dead) of the active ranges.

@numba.njit(cache=True, inline="always")
def _next_random(state):
    """xorshift64* step; returns 32 random bits."""
    mask = np.uint64(0xFFFFFFFFFFFFFFFF)
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= (x << np.uint64(25)) & mask
    x ^= x >> np.uint64(27)
    state[0] = x
    return ((x * np.uint64(0x2545F4914F6CDD1D)) & mask) >> np.uint64(32)


@numba.njit(cache=True)
def _permutations(n, passes, seed, k, perm, pos):
    """Fill ``perm[j]`` with the public pseudo-random order of pass ``j`` and ``pos[j]`` with
    its inverse.

    Pass 0 keeps the key order. A pass with more than two blocks gets a Fisher-Yates
    permutation. A pass with two blocks (block size ``>= n/2``) only needs a uniformly random
    split: the first block is a random ``k``-subset (Knuth's selection sampling) and each block
    keeps key order inside. Whether a pass detects a set of errors depends only on the split,
    so this is as good for Cascade as a full shuffle and much cheaper. Random numbers:
    xorshift64* seeded by splitmix64 of (seed, pass), ranges by Lemire's multiply-shift (bias
    below 2**-6 for n < 2**26; the orders only need to be public and well mixed).
    """
    mask = np.uint64(0xFFFFFFFFFFFFFFFF)
    for t in range(n):
        perm[0, t] = t
        pos[0, t] = t
    state = np.empty(1, dtype=np.uint64)
    for j in range(1, passes):
        z = (np.uint64(seed) + np.uint64(j) * np.uint64(0x9E3779B97F4A7C15)) & mask
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & mask
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & mask
        state[0] = (z ^ (z >> np.uint64(31))) | np.uint64(1)
        row = perm[j]
        if 2 * k[j] >= n:
            need = k[j]
            first = 0
            second = k[j]
            for t in range(n):
                left = n - t
                if np.int64((_next_random(state) * np.uint64(left)) >> np.uint64(32)) < need:
                    row[first] = t
                    first += 1
                    need -= 1
                else:
                    row[second] = t
                    second += 1
        else:
            for t in range(n):
                row[t] = t
            for t in range(n - 1, 0, -1):
                r = np.int64((_next_random(state) * np.uint64(t + 1)) >> np.uint64(32))
                row[t], row[r] = row[r], row[t]
        for t in range(n):
            pos[j, row[t]] = t


@numba.njit(cache=True)
def _range_parity(key, perm_row, lo, hi):
    s = 0
    for t in range(lo, hi):
        s ^= key[perm_row[t]]
    return s


@numba.njit(cache=True)
def _make_queries(top, cur_pass, act, act_len, k, block_off, node_off, node_stride, n):
    """Queries of this round as (pass, lo, hi, known-parity index) rows."""
    if top:
        size = k[cur_pass]
        count = (n + size - 1) // size
        q = np.empty((count, 4), dtype=np.int64)
        for b in range(count):
            q[b, 0] = cur_pass
            q[b, 1] = b * size
            q[b, 2] = min((b + 1) * size, n)
            q[b, 3] = node_off[cur_pass] + b * node_stride[cur_pass] + 1
        return q
    q = np.empty((act_len, 4), dtype=np.int64)
    for i in range(act_len):
        j = act[i, _PASS]
        lo = act[i, _LO]
        hi = act[i, _HI]
        local_block = act[i, _BLOCK] - block_off[j]
        q[i, 0] = j
        q[i, 1] = lo
        q[i, 2] = lo + (hi - lo + 1) // 2
        q[i, 3] = node_off[j] + local_block * node_stride[j] + 2 * act[i, _NODE]
    return q


@numba.njit(cache=True)
def _query_parities(key, perm, q):
    out = np.empty(q.shape[0], dtype=np.uint8)
    for i in range(q.shape[0]):
        out[i] = _range_parity(key, perm[q[i, 0]], q[i, 1], q[i, 2])
    return out


@numba.njit(cache=True)
def _fill_known(known, q, bits):
    """Record Alice's parities for the queries not yet known; return how many bits were used."""
    used = 0
    for i in range(q.shape[0]):
        if known[q[i, 3]] < 0:
            if used >= bits.size:
                return -1
            known[q[i, 3]] = bits[used]
            used += 1
    return used


@numba.njit(cache=True)
def _unknown_parities(key, perm, q, known):
    """Alice: parities of the queries she has not disclosed yet (and mark them disclosed)."""
    out = np.empty(q.shape[0], dtype=np.uint8)
    used = 0
    for i in range(q.shape[0]):
        if known[q[i, 3]] < 0:
            p = _range_parity(key, perm[q[i, 0]], q[i, 1], q[i, 2])
            known[q[i, 3]] = p
            out[used] = p
            used += 1
    return out[:used]


@numba.njit(cache=True)
def _push_root(act, act_len, active_of_block, j, gb, lo, hi):
    act[act_len, _PASS] = j
    act[act_len, _BLOCK] = gb
    act[act_len, _NODE] = 1
    act[act_len, _LO] = lo
    act[act_len, _HI] = hi
    act[act_len, _DEAD] = 0
    active_of_block[gb] = act_len
    return act_len + 1


@numba.njit(cache=True)
def _apply_flags(flags, q, top, cur_pass, act, act_len, active_of_block, odd, perm, pos, k,
                 block_off, key, flip, n):
    """Advance the shared state by one round of Bob's flags; return (act_len, corrected).

    ``corrected`` is -1 if the flags are inconsistent (some bit would be corrected twice in
    one round, which honest parities never cause).
    """
    if top:
        j = cur_pass
        for b in range(q.shape[0]):
            gb = block_off[j] + b
            odd[gb] = flags[b]
            if flags[b]:
                act_len = _push_root(act, act_len, active_of_block, j, gb, q[b, 1], q[b, 2])
    else:
        for i in range(act_len):
            mid = q[i, 2]
            if flags[i]:
                act[i, _NODE] = 2 * act[i, _NODE]
                act[i, _HI] = mid
            else:
                act[i, _NODE] = 2 * act[i, _NODE] + 1
                act[i, _LO] = mid
    corrected = 0
    changed = True
    while changed:
        changed = False
        sweep = act_len
        for i in range(sweep):
            if act_len + cur_pass + 2 > act.shape[0]:
                break  # compact first; the outer loop comes back here
            if act[i, _DEAD] or act[i, _HI] - act[i, _LO] != 1:
                continue
            x = perm[act[i, _PASS], act[i, _LO]]
            if corrected >= n:
                return act_len, -1
            if flip:
                key[x] ^= 1
            corrected += 1
            changed = True
            for jj in range(cur_pass + 1):
                t = pos[jj, x]
                gb = block_off[jj] + t // k[jj]
                odd[gb] ^= 1
                ai = active_of_block[gb]
                if ai >= 0 and act[ai, _LO] <= t < act[ai, _HI]:
                    act[ai, _DEAD] = 1
                    active_of_block[gb] = -1
                    ai = -1
                if odd[gb] and ai < 0:
                    lo = (t // k[jj]) * k[jj]
                    act_len = _push_root(act, act_len, active_of_block, jj, gb, lo,
                                         min(lo + k[jj], n))
        # compact, keeping order (both sides do the same)
        w = 0
        for i in range(act_len):
            if act[i, _DEAD]:
                continue
            if w != i:
                for c in range(6):
                    act[w, c] = act[i, c]
            active_of_block[act[w, _BLOCK]] = w
            w += 1
        act_len = w
    return act_len, corrected


# ----------------------------------------------------------------------------------------------

class _CascadeSide(ReconcilerSide):
    """State shared by both sides; subclasses define who speaks when."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: CascadeOptions, flip: bool) -> None:
        n = key.size
        if n > MAX_KEY_BITS:
            raise ValueError(f"key of {n} bits exceeds the {MAX_KEY_BITS}-bit limit")
        self._key = key.copy()
        self._options = options
        self._seed = seed
        self._flip = flip
        self._n = n
        self._k = cascade_block_sizes(n, qber_estimate, options)
        passes = options.passes
        self._perm = np.empty((passes, n), dtype=np.int32)
        self._pos = np.empty((passes, n), dtype=np.int32)
        _permutations(n, passes, seed & 0x7FFFFFFFFFFFFFFF, self._k, self._perm, self._pos)
        nblocks = (n + self._k - 1) // self._k
        self._block_off = np.concatenate(([0], np.cumsum(nblocks)))[:-1].astype(np.int64)
        depth = np.ceil(np.log2(np.maximum(self._k, 1))).astype(np.int64)
        self._node_stride = (2 ** (depth + 1)).astype(np.int64)
        sizes = nblocks * self._node_stride
        self._node_off = np.concatenate(([0], np.cumsum(sizes)))[:-1].astype(np.int64)
        self._known = np.full(int(sizes.sum()), -1, dtype=np.int8)
        total_blocks = int(nblocks.sum())
        self._odd = np.zeros(total_blocks, dtype=np.uint8)
        self._active_of_block = np.full(total_blocks, -1, dtype=np.int64)
        self._act = np.zeros((total_blocks + 2 * passes + 4, 6), dtype=np.int64)
        self._act_len = 0
        self._pass = 0
        self._top = True
        self._queries = self._next_queries()
        self._round = 0
        self._max_rounds = _ROUNDS_PER_LEVEL * passes * (math.ceil(math.log2(n + 1)) + 1)
        self._alice_bits = 0
        self._bob_bits = 0
        self._messages = 0
        self._corrected = 0
        self._done = False
        self._success = False

    def _next_queries(self) -> np.ndarray:
        return _make_queries(self._top, self._pass, self._act, self._act_len, self._k,
                             self._block_off, self._node_off, self._node_stride, self._n)

    def _advance(self, flags: np.ndarray) -> None:
        """Apply Bob's flags for the current queries and compute the next queries."""
        self._act_len, corrected = _apply_flags(
            flags, self._queries, self._top, self._pass, self._act, self._act_len,
            self._active_of_block, self._odd, self._perm, self._pos, self._k, self._block_off,
            self._key, self._flip, self._n)
        if corrected < 0:
            raise ProtocolError("cascade: parities and flags are inconsistent (a bit would be "
                                "corrected twice in one round)")
        self._corrected += corrected
        if self._round >= self._max_rounds:
            raise ProtocolError(f"cascade: more than {self._max_rounds} rounds, the peer's "
                                "flags or parities cannot be honest")
        self._bob_bits += flags.size
        self._round += 1
        self._top = False
        if self._act_len == 0:
            self._pass += 1
            self._top = True
            if self._pass == self._options.passes:
                self._done = True
                return
        self._queries = self._next_queries()



class CascadeAlice(_CascadeSide):
    """Alice's side of Cascade: answers parity queries of her (reference) key."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: CascadeOptions | None = None) -> None:
        super().__init__(key, qber_estimate, seed=seed, options=options or CascadeOptions(),
                         flip=False)

    def start(self) -> list[Message]:
        confirm = confirm_parities(self._key, self._seed, self._options.confirm_bits)
        self._alice_bits += confirm.size
        message = self._parities_message()
        message["confirm"] = pack(confirm)
        return [message]

    def _parities_message(self) -> Message:
        bits = _unknown_parities(self._key, self._perm, self._queries, self._known)
        self._alice_bits += bits.size
        self._messages += 1
        return {"type": "cascade_parities", "round": self._round, "count": int(bits.size),
                "bits": pack(bits)}

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("cascade: message received after the end of the protocol")
        expect_message(message, "cascade_flags",
                       {"round": int, "count": int, "bits": bytes, "final": bool,
                        "confirmed": bool})
        if message["round"] != self._round:
            raise ProtocolError(f"cascade_flags for round {message['round']}, "
                                f"expected {self._round}")
        expected = self._queries.shape[0]
        if message["count"] != expected:
            raise ProtocolError(f"cascade_flags holds {message['count']} flags, "
                                f"{expected} expected")
        flags = field_bits(message, "bits", expected)
        self._messages += 1
        self._advance(flags)
        if message["final"] != self._done:
            raise ProtocolError(f"cascade_flags final={message['final']} but Alice's state "
                                f"says final={self._done}")
        if self._done:
            self._bob_bits += 1
            self._success = message["confirmed"]
            return []
        return [self._parities_message()]


class CascadeBob(_CascadeSide):
    """Bob's side of Cascade: compares parities, flags mismatches, corrects his key."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: CascadeOptions | None = None) -> None:
        super().__init__(key, qber_estimate, seed=seed, options=options or CascadeOptions(),
                         flip=True)
        self._confirm: np.ndarray | None = None

    def start(self) -> list[Message]:
        return []

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("cascade: message received after the end of the protocol")
        fields = {"round": int, "count": int, "bits": bytes}
        if self._confirm is None:
            fields["confirm"] = bytes
        expect_message(message, "cascade_parities", fields)
        if message["round"] != self._round:
            raise ProtocolError(f"cascade_parities for round {message['round']}, "
                                f"expected {self._round}")
        queries = self._queries
        unknown = int(np.count_nonzero(self._known[queries[:, 3]] < 0))
        if message["count"] != unknown:
            raise ProtocolError(f"cascade_parities holds {message['count']} parities, "
                                f"{unknown} expected")
        bits = field_bits(message, "bits", unknown)
        if self._confirm is None:
            self._confirm = field_bits(message, "confirm", self._options.confirm_bits)
            self._alice_bits += self._confirm.size
        self._messages += 1
        self._alice_bits += unknown
        _fill_known(self._known, queries, bits)
        alice = self._known[queries[:, 3]].astype(np.uint8)
        flags = alice ^ _query_parities(self._key, self._perm, queries)
        round_sent = self._round
        self._advance(flags)
        confirmed = False
        if self._done:
            mine = confirm_parities(self._key, self._seed, self._options.confirm_bits)
            confirmed = bool(np.array_equal(mine, self._confirm))
            self._success = confirmed
            self._bob_bits += 1
        self._messages += 1
        return [{"type": "cascade_flags", "round": round_sent, "count": int(flags.size),
                 "bits": pack(flags), "final": self._done, "confirmed": confirmed}]
