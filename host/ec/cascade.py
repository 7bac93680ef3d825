"""Cascade with all blocks bisected in parallel (one message per round in each direction).

Parameters follow Martinez-Mateo et al., "Demystifying the information reconciliation protocol
Cascade" (QIC 15, 2015), option 7 (``k1 = 2**ceil(log2(1/qber))``, ``k2 = 4 k1``, then ``n/2``),
or Yan et al. (2008) (``k1 = ceil(0.73/qber)``, ``k2 = 2 k1``, then ``n/2``); 16 passes, a fresh
public random order per pass after the first (a permutation, or a random split into two blocks
where the block size is at least ``n/2``), and reuse of every parity Alice already disclosed
(the sub-blocks of the bisection tree).

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
from ._common import (
    MAX_KEY_BITS,
    confirm_parities,
    expect_message,
    field_bits,
    field_packed,
    mix64,
    pack,
    popcount64,
)

__all__ = ["CascadeOptions", "CascadeAlice", "CascadeBob", "cascade_block_sizes"]

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
# Pass orders. Pass 0 keeps the key order (_IDENTITY). A pass with more than two blocks gets a
# Fisher-Yates permutation (_SHUFFLED; rows of `perm` / `pos`). A pass with two blocks (block
# size k >= n/2) only needs a uniformly random split (_SPLIT): block 0 is a random k-subset kept
# as a bit mask (one uint64 word per 64 key bits), block 1 the rest, each in key order. Ranks
# and positions inside a split block come from prefix popcounts of the mask, and range parities
# are computed 64 bits at a time on the bit-packed key.

_IDENTITY, _SHUFFLED, _SPLIT = 0, 1, 2
#: Rows of the int64 `meta` table (one column per pass).
_KIND, _K, _SLOT, _BLOCK_OFF = range(4)
#: Entries of the int64 `st` (scalar state) array: current pass, top-level round or not, active
#: ranges, protocol finished, undisclosed queries of the next round, bits corrected in the last
#: round (-1: inconsistent flags), flags in the last round.
_ST_PASS, _ST_TOP, _ST_ACT_LEN, _ST_DONE, _ST_UNKNOWN, _ST_CORRECTED, _ST_FLAGS = range(7)

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _below(r, bound):
    """Map the random word ``r`` to ``[0, bound)`` (Lemire multiply-shift on its top 32 bits)."""
    return np.int64(((r >> np.uint64(32)) * np.uint64(bound)) >> np.uint64(32))


@numba.njit(cache=True, inline="always")
def _select_in_word(v, r):
    """Bit index of the ``r``-th (from 0) set bit of ``v``."""
    for _ in range(r):
        v &= v - np.uint64(1)
    return popcount64((v & (np.uint64(0) - v)) - np.uint64(1))


@numba.njit(cache=True)
def _build_orders(n, seed, meta, perm, pos, masks, counts):
    """Fill the public order of every pass from ``seed`` (see the section comment).

    Random words: splitmix64 of ``base + i`` with a base derived from (seed, pass, purpose);
    ranges by Lemire's multiply-shift on 32-bit halves (bias below ``n / 2**32``; the orders
    only need to be public and well mixed). A split pass draws a uniformly random mask, then
    removes random members (or adds random non-members) until block 0 holds exactly ``k``
    bits; the result is invariant under relabelling the positions, hence a uniform
    ``k``-subset.
    """
    golden = np.uint64(0x9E3779B97F4A7C15)
    words = masks.shape[1]
    tail = n - 64 * (words - 1)
    last = _ALL if tail == 64 else (np.uint64(1) << np.uint64(tail)) - np.uint64(1)
    for j in range(1, meta.shape[1]):
        base = mix64(np.uint64(seed) + np.uint64(j) * golden) * np.uint64(2)
        if meta[_KIND, j] == _SHUFFLED:
            row = perm[meta[_SLOT, j]]
            inv = pos[meta[_SLOT, j]]
            for t in range(n):
                row[t] = t
            for t in range(n - 1, 0, -1):
                if t & 1 or t == n - 1:
                    r64 = mix64(base + np.uint64(t) * golden)
                    r32 = r64 >> np.uint64(32)
                else:
                    r32 = r64 & np.uint64(0xFFFFFFFF)
                r = np.int64((r32 * np.uint64(t + 1)) >> np.uint64(32))
                row[t], row[r] = row[r], row[t]
            for t in range(n):
                inv[row[t]] = t
        elif meta[_KIND, j] == _SPLIT:
            m = masks[j]
            total = 0
            for w in range(words):
                m[w] = mix64(base + np.uint64(w) * golden)
            m[words - 1] &= last
            for w in range(words):
                total += popcount64(m[w])
            want = meta[_K, j]
            draw = base + np.uint64(1)
            while total != want:
                draw += golden
                x = _below(mix64(draw), n)
                bit = np.uint64(1) << np.uint64(x & 63)
                member = (m[x >> 6] & bit) != 0
                if total > want and member:
                    m[x >> 6] ^= bit
                    total -= 1
                elif total < want and not member:
                    m[x >> 6] ^= bit
                    total += 1
            c = 0
            for w in range(words):
                counts[j, w] = c
                c += popcount64(m[w])
            counts[j, words] = c


@numba.njit(cache=True)
def _key_words(key, perm):
    """The key bit-packed (row 0) and in the order of each shuffled pass (rows 1, 2, ...)."""
    n = key.size
    words = np.zeros((1 + perm.shape[0], (n + 63) // 64), dtype=np.uint64)
    for row in range(1 + perm.shape[0]):
        for w in range(words.shape[1]):
            acc = np.uint64(0)
            for b in range(min(64, n - 64 * w)):
                t = 64 * w + b
                x = t if row == 0 else perm[row - 1, t]
                acc |= np.uint64(key[x]) << np.uint64(b)
            words[row, w] = acc
    return words


@numba.njit(cache=True, inline="always")
def _word_parity(kw, row, masks, j, mode, a, b):
    """Parity of bits ``[a, b)`` of row ``row`` of ``kw`` that are in: all (mode 0), the mask
    of pass ``j`` (1) or outside it (2). Bits of ``kw`` beyond the key are zero."""
    if a >= b:
        return np.uint8(0)
    wa = a >> 6
    wb = (b - 1) >> 6
    acc = np.uint64(0)
    for w in range(wa, wb + 1):
        v = kw[row, w]
        if mode == 1:
            v &= masks[j, w]
        elif mode == 2:
            v &= ~masks[j, w]
        if w == wa:
            v &= _ALL << np.uint64(a & 63)
        if w == wb:
            v &= _ALL >> np.uint64(63 - ((b - 1) & 63))
        acc ^= v
    return np.uint8(popcount64(acc) & 1)


@numba.njit(cache=True, inline="always")
def _select(masks, counts, j, side, r):
    """Position of the member of rank ``r`` of split block ``side`` (0: in the mask, 1: not)."""
    lo = 0
    hi = masks.shape[1] - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        c = counts[j, mid] if side == 0 else 64 * mid - counts[j, mid]
        if c <= r:
            lo = mid
        else:
            hi = mid - 1
    c = counts[j, lo] if side == 0 else 64 * lo - counts[j, lo]
    v = masks[j, lo] if side == 0 else ~masks[j, lo]
    return 64 * lo + _select_in_word(v, r - c)


# ----------------------------------------------------------------------------------------------
# Protocol kernels. `act` rows are (pass, global block, lo, hi, dead) of the active ranges.
#
# Disclosed parities are remembered by *place*: the ranges ever queried are the top-level blocks
# and left halves of bisected ranges. A left half [lo, mid) is identified by its end `mid`, the
# split point of its parent; split points are interior to their range, so they are distinct
# within a block and never equal a block start, which identifies the block itself. Query `node`
# = pass * n + place indexes two bitsets: `known[0]` (disclosed) and `known[1]` (the parity).

_PASS, _BLOCK, _LO, _HI, _DEAD = range(5)


@numba.njit(cache=True, inline="always")
def _is_known(known, node):
    return (known[0, node >> 6] >> np.uint64(node & 63)) & np.uint64(1)


@numba.njit(cache=True, inline="always")
def _known_parity(known, node):
    return np.uint8((known[1, node >> 6] >> np.uint64(node & 63)) & np.uint64(1))


@numba.njit(cache=True, inline="always")
def _set_known(known, node, parity):
    bit = np.uint64(node & 63)
    known[0, node >> 6] |= np.uint64(1) << bit
    known[1, node >> 6] |= np.uint64(parity) << bit


@numba.njit(cache=True)
def _parities(q, skip_known, known, meta, key, kw, perm, masks, counts):
    """Parity of each query's places ``[lo, hi)`` in its pass's order (one block each); with
    ``skip_known``, queries whose parity is already known are left out (their entry is 0).

    The per-kind code is written out in the loop: helper calls taking many arrays cost an
    atomic reference-count pair per array in numba.
    """
    n = key.size
    out = np.zeros(q.shape[0], dtype=np.uint8)
    for i in range(q.shape[0]):
        if skip_known and _is_known(known, q[i, 3]):
            continue
        j = q[i, 0]
        lo = q[i, 1]
        hi = q[i, 2]
        kind = meta[_KIND, j]
        if kind == _IDENTITY:
            out[i] = _word_parity(kw, 0, masks, j, 0, lo, hi)
        elif kind == _SHUFFLED:
            out[i] = _word_parity(kw, 1 + meta[_SLOT, j], masks, j, 0, lo, hi)
        else:
            k = meta[_K, j]
            side = 0 if lo < k else 1
            base = 0 if side == 0 else k
            size = k if side == 0 else n - k
            a = _select(masks, counts, j, side, lo - base)
            b = n if hi - base >= size else _select(masks, counts, j, side, hi - base)
            out[i] = _word_parity(kw, 0, masks, j, 1 + side, a, b)
    return out


@numba.njit(cache=True)
def _make_queries(st, act, meta, n):
    """Queries of this round as (pass, lo, hi, node) rows."""
    cur_pass = st[_ST_PASS]
    if st[_ST_TOP]:
        size = meta[_K, cur_pass]
        count = (n + size - 1) // size
        q = np.empty((count, 4), dtype=np.int64)
        for b in range(count):
            q[b, 0] = cur_pass
            q[b, 1] = b * size
            q[b, 2] = min((b + 1) * size, n)
            q[b, 3] = cur_pass * n + b * size
        return q
    act_len = st[_ST_ACT_LEN]
    q = np.empty((act_len, 4), dtype=np.int64)
    for i in range(act_len):
        j = act[i, _PASS]
        lo = act[i, _LO]
        mid = lo + (act[i, _HI] - lo + 1) // 2
        q[i, 0] = j
        q[i, 1] = lo
        q[i, 2] = mid
        q[i, 3] = j * n + mid
    return q


@numba.njit(cache=True)
def _disclose(alice, q, known, meta, key, kw, perm, masks, counts):
    """Queries whose parity Alice has not disclosed yet: Alice computes those parities (and
    marks them disclosed); Bob only counts them. Returns (parities, count)."""
    if alice:
        all_bits = _parities(q, True, known, meta, key, kw, perm, masks, counts)
    out = np.empty(q.shape[0], dtype=np.uint8)
    used = 0
    for i in range(q.shape[0]):
        if not _is_known(known, q[i, 3]):
            if alice:
                _set_known(known, q[i, 3], all_bits[i])
                out[used] = all_bits[i]
            used += 1
    return out[:used], used


@numba.njit(cache=True, inline="always")
def _push_root(act, act_len, active_of_block, j, gb, lo, hi):
    act[act_len, _PASS] = j
    act[act_len, _BLOCK] = gb
    act[act_len, _LO] = lo
    act[act_len, _HI] = hi
    act[act_len, _DEAD] = 0
    active_of_block[gb] = act_len
    return act_len + 1


@numba.njit(cache=True)
def _apply_flags(flags, q, st, act, active_of_block, odd, meta, perm, pos, masks, counts, key,
                 kw, flip):
    """Advance the shared state by one round of Bob's flags; return the bits corrected.

    Returns -1 if the flags are inconsistent (more corrections than key bits, which honest
    parities never cause).
    """
    n = key.size
    cur_pass = st[_ST_PASS]
    act_len = st[_ST_ACT_LEN]
    if st[_ST_TOP]:
        j = cur_pass
        for b in range(q.shape[0]):
            gb = meta[_BLOCK_OFF, j] + b
            odd[gb] = flags[b]
            if flags[b]:
                act_len = _push_root(act, act_len, active_of_block, j, gb, q[b, 1], q[b, 2])
    else:
        for i in range(act_len):
            if flags[i]:
                act[i, _HI] = q[i, 2]
            else:
                act[i, _LO] = q[i, 2]
    corrected = 0
    changed = True
    while changed:
        changed = False
        sweep = act_len
        for i in range(sweep):
            if act_len + cur_pass + 2 > act.shape[0]:
                break  # compact first; the outer loop comes back here
            if act[i, _DEAD]:
                continue
            if act[i, _HI] - act[i, _LO] != 1:
                continue
            j = act[i, _PASS]
            t = act[i, _LO]
            kind = meta[_KIND, j]
            if kind == _IDENTITY:
                x = t
            elif kind == _SHUFFLED:
                x = np.int64(perm[meta[_SLOT, j], t])
            elif t < meta[_K, j]:
                x = _select(masks, counts, j, 0, t)
            else:
                x = _select(masks, counts, j, 1, t - meta[_K, j])
            if corrected >= n:
                st[_ST_ACT_LEN] = act_len
                return -1
            if flip:
                key[x] ^= 1
                kw[0, x >> 6] ^= np.uint64(1) << np.uint64(x & 63)
                for slot in range(pos.shape[0]):
                    y = pos[slot, x]
                    kw[1 + slot, y >> 6] ^= np.uint64(1) << np.uint64(y & 63)
            corrected += 1
            changed = True
            for jj in range(cur_pass + 1):
                k = meta[_K, jj]
                kind = meta[_KIND, jj]
                if kind == _IDENTITY:
                    t = x
                elif kind == _SHUFFLED:
                    t = np.int64(pos[meta[_SLOT, jj], x])
                else:
                    m = masks[jj, x >> 6]
                    bit = np.uint64(x & 63)
                    t = counts[jj, x >> 6] + popcount64(m & ((np.uint64(1) << bit) - np.uint64(1)))
                    if not (m >> bit) & np.uint64(1):
                        t = k + x - t
                gb = meta[_BLOCK_OFF, jj] + t // k
                odd[gb] ^= 1
                ai = active_of_block[gb]
                if ai >= 0 and act[ai, _LO] <= t < act[ai, _HI]:
                    act[ai, _DEAD] = 1
                    active_of_block[gb] = -1
                    ai = -1
                if odd[gb] and ai < 0:
                    lo = (t // k) * k
                    act_len = _push_root(act, act_len, active_of_block, jj, gb, lo,
                                         min(lo + k, n))
        # compact, keeping order (both sides do the same)
        w = 0
        for i in range(act_len):
            if act[i, _DEAD]:
                continue
            if w != i:
                for c in range(5):
                    act[w, c] = act[i, c]
                active_of_block[act[w, _BLOCK]] = w
            w += 1
        act_len = w
    st[_ST_ACT_LEN] = act_len
    return corrected


@numba.njit(cache=True, inline="always")
def _unpack(data, count):
    """First ``count`` bits of ``data``, MSB first within each byte (as ``np.unpackbits``)."""
    out = np.empty(count, dtype=np.uint8)
    for i in range(count):
        out[i] = (data[i >> 3] >> (7 - (i & 7))) & 1
    return out


@numba.njit(cache=True, inline="always")
def _pack(bits):
    """Inverse of :func:`_unpack` (as ``np.packbits``)."""
    out = np.zeros((bits.size + 7) // 8, dtype=np.uint8)
    for i in range(bits.size):
        out[i >> 3] |= bits[i] << (7 - (i & 7))
    return out


@numba.njit(cache=True)
def _round(alice, data, q, st, arrays):
    """One round for one side: Bob turns Alice's new parities (packed in ``data``) into flags,
    Alice takes Bob's flags (packed in ``data``); both advance and build the next queries.

    Returns ``(packed flags, next queries, Alice's next parities packed)``; the counts and the
    bits corrected (-1 if the flags are inconsistent) are left in ``st``. ``arrays`` is the
    side's state, a tuple (dispatching one tuple costs less than eleven array arguments).
    """
    meta, key, kw, perm, pos, masks, counts, known, odd, active_of_block, act = arrays
    n = key.size
    st[_ST_FLAGS] = q.shape[0]
    if alice:
        flags = _unpack(data, q.shape[0])
    else:
        bits = _unpack(data, st[_ST_UNKNOWN])
        flags = _parities(q, False, known, meta, key, kw, perm, masks, counts)
        used = 0
        for i in range(q.shape[0]):
            node = q[i, 3]
            if not _is_known(known, node):
                _set_known(known, node, bits[used])
                used += 1
            flags[i] ^= _known_parity(known, node)
    corrected = _apply_flags(flags, q, st, act, active_of_block, odd, meta, perm, pos, masks,
                             counts, key, kw, not alice)
    st[_ST_CORRECTED] = corrected
    st[_ST_UNKNOWN] = 0
    empty = np.empty(0, dtype=np.uint8)
    if corrected < 0:
        return _pack(flags), q, empty
    st[_ST_TOP] = 0
    if st[_ST_ACT_LEN] == 0:
        st[_ST_PASS] += 1
        st[_ST_TOP] = 1
        if st[_ST_PASS] == meta.shape[1]:
            st[_ST_DONE] = 1
            return _pack(flags), q[:0], empty
    nq = _make_queries(st, act, meta, n)
    out, st[_ST_UNKNOWN] = _disclose(alice, nq, known, meta, key, kw, perm, masks, counts)
    return _pack(flags), nq, _pack(out)


# ----------------------------------------------------------------------------------------------

_FLAG_FIELDS = {"round": int, "count": int, "bits": bytes, "final": bool, "confirmed": bool}
_PARITY_FIELDS = {"round": int, "count": int, "bits": bytes}
_FIRST_PARITY_FIELDS = {**_PARITY_FIELDS, "confirm": bytes}


class _CascadeSide(ReconcilerSide):
    """State shared by both sides; subclasses define who speaks when."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: CascadeOptions, alice: bool) -> None:
        n = key.size
        if n > MAX_KEY_BITS:
            raise ValueError(f"key of {n} bits exceeds the {MAX_KEY_BITS}-bit limit")
        self._key = key.copy()
        words = (n + 63) // 64
        self._options = options
        self._seed = seed
        self._alice = alice
        self._n = n
        passes = options.passes
        k = cascade_block_sizes(n, qber_estimate, options)
        kinds = np.where(2 * k >= n, _SPLIT, _SHUFFLED)
        kinds[0] = _IDENTITY
        shuffled = kinds == _SHUFFLED
        nblocks = (n + k - 1) // k
        meta = np.empty((4, passes), dtype=np.int64)
        meta[_KIND] = kinds
        meta[_K] = k
        meta[_SLOT] = np.where(shuffled, np.cumsum(shuffled) - 1, -1)
        meta[_BLOCK_OFF] = np.cumsum(nblocks) - nblocks
        self._meta = meta
        self._perm = np.empty((int(shuffled.sum()), n), dtype=np.int32)
        self._pos = np.empty_like(self._perm)
        # Rows of non-split passes are never read.
        self._masks = np.empty((passes, words), dtype=np.uint64)
        self._counts = np.empty((passes, words + 1), dtype=np.int64)
        _build_orders(n, seed & 0x7FFFFFFFFFFFFFFF, meta, self._perm, self._pos, self._masks,
                      self._counts)
        self._kw = _key_words(self._key, self._perm)
        self._known = np.zeros((2, (passes * n + 63) // 64), dtype=np.uint64)
        total_blocks = int(nblocks.sum())
        self._odd = np.zeros(total_blocks, dtype=np.uint8)
        self._active_of_block = np.full(total_blocks, -1, dtype=np.int64)
        self._act = np.empty((total_blocks + 2 * passes + 4, 5), dtype=np.int64)
        self._arrays = (meta, self._key, self._kw, self._perm, self._pos, self._masks,
                        self._counts, self._known, self._odd, self._active_of_block, self._act)
        self._st = np.zeros(7, dtype=np.int64)
        self._st[_ST_TOP] = 1
        self._queries = _make_queries(self._st, self._act, meta, n)
        pending, self._st[_ST_UNKNOWN] = _disclose(
            alice, self._queries, self._known, meta, self._key, self._kw, self._perm,
            self._masks, self._counts)
        self._pending = pack(pending)
        self._round = 0
        self._max_rounds = _ROUNDS_PER_LEVEL * passes * (math.ceil(math.log2(n + 1)) + 1)
        self._alice_bits = 0
        self._bob_bits = 0
        self._messages = 0
        self._corrected = 0
        self._done = False
        self._success = False

    def _advance(self, data: np.ndarray) -> bytes:
        """Run one round on the packed ``data`` (Bob: Alice's parities; Alice: Bob's flags);
        return the packed flags.

        Raises
        ------
        ProtocolError
            If the flags are inconsistent or the rounds exceed what an honest peer needs.
        """
        st = self._st
        flags, self._queries, pending = _round(self._alice, data, self._queries, st,
                                               self._arrays)
        state = st.tolist()
        corrected, count, done = state[_ST_CORRECTED], state[_ST_FLAGS], state[_ST_DONE]
        if corrected < 0:
            raise ProtocolError("cascade: parities and flags are inconsistent (more "
                                "corrections than key bits)")
        self._corrected += corrected
        if self._round >= self._max_rounds:
            raise ProtocolError(f"cascade: more than {self._max_rounds} rounds, the peer's "
                                "flags or parities cannot be honest")
        self._pending = pending.tobytes()
        self._bob_bits += count
        self._round += 1
        self._done = bool(done)
        return flags.tobytes()


class CascadeAlice(_CascadeSide):
    """Alice's side of Cascade: answers parity queries of her (reference) key."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: CascadeOptions | None = None) -> None:
        super().__init__(key, qber_estimate, seed=seed, options=options or CascadeOptions(),
                         alice=True)

    def start(self) -> list[Message]:
        confirm = confirm_parities(self._key, self._seed, self._options.confirm_bits)
        self._alice_bits += confirm.size
        message = self._parities_message()
        message["confirm"] = pack(confirm)
        return [message]

    def _parities_message(self) -> Message:
        count = int(self._st[_ST_UNKNOWN])
        self._alice_bits += count
        self._messages += 1
        return {"type": "cascade_parities", "round": self._round, "count": count,
                "bits": self._pending}

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("cascade: message received after the end of the protocol")
        expect_message(message, "cascade_flags", _FLAG_FIELDS)
        if message["round"] != self._round:
            raise ProtocolError(f"cascade_flags for round {message['round']}, "
                                f"expected {self._round}")
        expected = self._queries.shape[0]
        if message["count"] != expected:
            raise ProtocolError(f"cascade_flags holds {message['count']} flags, "
                                f"{expected} expected")
        data = field_packed(message, "bits", expected)
        self._messages += 1
        self._advance(data)
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
                         alice=False)
        self._confirm: np.ndarray | None = None

    def start(self) -> list[Message]:
        return []

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("cascade: message received after the end of the protocol")
        first = self._confirm is None
        expect_message(message, "cascade_parities",
                       _FIRST_PARITY_FIELDS if first else _PARITY_FIELDS)
        if message["round"] != self._round:
            raise ProtocolError(f"cascade_parities for round {message['round']}, "
                                f"expected {self._round}")
        unknown = int(self._st[_ST_UNKNOWN])
        if message["count"] != unknown:
            raise ProtocolError(f"cascade_parities holds {message['count']} parities, "
                                f"{unknown} expected")
        data = field_packed(message, "bits", unknown)
        if first:
            self._confirm = field_bits(message, "confirm", self._options.confirm_bits)
            self._alice_bits += self._confirm.size
        self._messages += 1
        self._alice_bits += unknown
        round_sent = self._round
        count = self._queries.shape[0]
        flags = self._advance(data)
        confirmed = False
        if self._done:
            mine = confirm_parities(self._key, self._seed, self._options.confirm_bits)
            confirmed = bool(np.array_equal(mine, self._confirm))
            self._success = confirmed
            self._bob_bits += 1
        self._messages += 1
        return [{"type": "cascade_flags", "round": round_sent, "count": count,
                 "bits": flags, "final": self._done, "confirmed": confirmed}]
