"""Irregular LDPC codes for syndrome reconciliation: construction, puncturing order, disk cache.

Construction (:func:`build_code`), deterministic from ``(n_vars, n_checks, seed)``:

- Variable degrees from :func:`degree_distribution`, by design rate ``1 - n_checks / n_vars``:
  up to rate 0.72 a distribution optimised for the BSC with an EXIT-chart linear program
  (degrees 2, 3, 7-10 and 30; table :data:`_OPTIMISED`); above, degrees {2, 3, D} with
  ``lambda_2`` at 85 % of the BSC stability bound ``1 / (rho'(1) * 2 sqrt(p (1-p)))`` (capped
  at 0.30), ``lambda_3 = 0.25`` and the rest on ``D = 12`` (on 10^5-bit frames at 1-3 % QBER,
  24 frames on three codes each, D = 12 needed 0.011-0.033 less efficiency than D = 10, and
  D = 13 to 20 or the optimised degree-20/30 distributions were worse at 1 %, where checks of
  40-60 edges make the girth-6 placement fail). Checks are concentrated on two consecutive
  degrees.
- Degree-2 variables form a zig-zag chain (variable ``i`` on checks ``i`` and ``i+1``), as in
  irregular repeat-accumulate codes, so they close no cycle among themselves (no low-weight
  codewords from degree-2 cycles).
- The other edges grow progressively, highest-degree variables first, each to a random free
  check socket that is neither a neighbour of the variable nor two hops away (PEG-like girth-6
  rule, Hu-Eleftheriou-Arnold 2005, with random rather than exhaustive candidate search); when
  no such socket is found among 64 random tries, any socket that is not yet a neighbour.
- Above rate 0.72 the degree-3 variables are also *ACE-conditioned* (Tian, Jones, Villasenor,
  Wesel, IEEE Trans. Commun. 52 (2004); in PEG form, Xiao and Banihashemi, IEEE Commun. Lett.
  8 (2004)): an edge is not placed where it would close a cycle through at most five
  variables whose ACE (sum of degree - 2) is below 3, i.e. a short cycle made only of chain
  variables and one other degree-3 variable. Two such cycles sharing their degree-3 variables
  form a low-weight codeword; one of weight 6 (two degree-3 variables, two pairs of chain
  variables) made a 1 % frame of code version 4 decode to a wrong word. When the 64 random
  tries find no socket, a scan of the free sockets looks for one before the rule is dropped.

The puncturing order (:attr:`LdpcCode.puncture_order`) is *untainted* (Elkouss et al. 2012): no
check has two punctured neighbours. The punctured columns of the parity-check matrix then have
disjoint non-empty supports, hence full column rank, which is what makes secret random padding
bits mask exactly one syndrome bit each (see the leakage accounting in ``ldpc.py``).

Codes are cached in memory and on disk (``build/ldpc_codes/`` in the source tree, or
``$TBQKD_LDPC_CACHE``) as ``.npz`` keyed by their parameters and :data:`CODE_VERSION`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

__all__ = ["LdpcCode", "build_code", "get_code", "degree_distribution", "CODE_VERSION",
           "MAX_CODE_VARS"]

#: Bump when the construction changes: cached codes of other versions are ignored.
CODE_VERSION = 5
#: Largest code (variable nodes) a message may ask for.
MAX_CODE_VARS = 1 << 21


@dataclass(frozen=True)
class LdpcCode:
    """A binary LDPC code as a parity-check matrix in CSR form (rows are checks).

    Attributes
    ----------
    n_vars, n_checks
        Matrix shape (columns, rows).
    row_ptr, col_idx
        CSR structure: check ``c`` involves variables ``col_idx[row_ptr[c]:row_ptr[c+1]]``.
    puncture_order
        Variables that may be punctured, in order (untainted: no check has two of them).
    """

    n_vars: int
    n_checks: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    puncture_order: np.ndarray

    def syndrome(self, word: np.ndarray) -> np.ndarray:
        """Syndrome ``H @ word mod 2`` of a 0/1 word of ``n_vars`` bits."""
        return _syndrome(self.row_ptr, self.col_idx, np.ascontiguousarray(word, np.uint8))


#: Variable-degree distributions (edge perspective) optimised for the BSC, by design rate:
#: EXIT-chart linear programs (Gaussian approximation of the check-node messages, exact BSC
#: channel term, stability and ``lambda_2 / 2 <= 1 - R`` constraints; degrees 2-30 allowed,
#: checks concentrated on two degrees). Their asymptotic efficiency is 1.01-1.07; on
#: 10^5-bit frames they beat the {2, 3, D} family by 0.01-0.02 in f at QBER 5-11 %. Above
#: rate 0.72 the approximation is optimistic for degree-30 nodes (measured f 1.24-1.27 at 1 %
#: QBER instead of 1.17), so high rates keep the family of :func:`_stability_family`.
_OPTIMISED = (
    (0.40, {2: 0.2260, 3: 0.2442, 7: 0.0437, 8: 0.2326, 30: 0.2536}),
    (0.50, {2: 0.1939, 3: 0.2438, 7: 0.0043, 8: 0.2847, 30: 0.2732}),
    (0.60, {2: 0.1655, 3: 0.2429, 8: 0.2816, 10: 0.0149, 30: 0.2951}),
    (0.70, {2: 0.1157, 3: 0.2763, 8: 0.1979, 10: 0.0752, 30: 0.3350}),
)
#: Highest design rate served from :data:`_OPTIMISED`.
_OPTIMISED_MAX_RATE = 0.72
#: ACE conditioning of the high-rate codes (above :data:`_OPTIMISED_MAX_RATE`): no cycle
#: through at most ``1 + vars`` variables whose ACE (sum of degree - 2) is below ``eta``.
_ACE = (3, 4)


def degree_distribution(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Variable degrees and their edge-perspective fractions for a code of design ``rate``.

    Rates up to 0.72 take the optimised entry of nearest rate; higher rates the
    stability-limited {2, 3, D} family.
    """
    if rate <= _OPTIMISED_MAX_RATE:
        _, table = min(_OPTIMISED, key=lambda entry: abs(entry[0] - rate))
        degrees = np.array(list(table), dtype=np.int64)
        lam = np.array(list(table.values()))
        return degrees, lam / lam.sum()
    return _stability_family(rate)


def _stability_family(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Degrees {2, 3, D}: ``lambda_2`` at 85 % of the BSC stability bound, ``lambda_3 = 0.25``."""
    top = 8 if rate <= 0.6 else 12
    degrees = np.array([2, 3, top])
    # Design crossover: where the code would run at efficiency 1.1.
    target = (1.0 - rate) / 1.1
    p = _inverse_binary_entropy(target)
    lam2 = 0.30
    for _ in range(20):
        lam = np.array([lam2, 0.25, 0.75 - lam2])
        mean_var = 1.0 / float(np.sum(lam / degrees))
        mean_check = mean_var / (1.0 - rate)
        bound = 1.0 / ((mean_check - 1.0) * 2.0 * math.sqrt(p * (1.0 - p)))
        lam2 = min(0.30, 0.85 * bound)
    return degrees, np.array([lam2, 0.25, 0.75 - lam2])


def _inverse_binary_entropy(h: float) -> float:
    lo, hi = 1e-9, 0.5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        value = -mid * math.log2(mid) - (1 - mid) * math.log2(1 - mid)
        lo, hi = (mid, hi) if value < h else (lo, mid)
    return 0.5 * (lo + hi)


def _variable_degrees(n_vars: int, n_checks: int) -> tuple[np.ndarray, int]:
    """Node degrees (chain variables first, then decreasing degree) and the chain length."""
    rate = 1.0 - n_checks / n_vars
    degrees, lam = degree_distribution(rate)
    degrees = np.minimum(np.asarray(degrees, dtype=np.int64), max(2, n_checks))
    node = (lam / degrees) / np.sum(lam / degrees)
    counts = np.floor(node * n_vars).astype(np.int64)
    chain = int(np.argmax(degrees == 2)) if np.any(degrees == 2) else -1
    # Rounding remainder and chain overflow go to the lowest degree outside the chain.
    low = min((i for i in range(degrees.size) if i != chain), key=lambda i: degrees[i])
    counts[low] += n_vars - counts.sum()
    n2 = 0
    if chain >= 0:
        n2 = min(int(counts[chain]), n_checks - 1)
        counts[low] += counts[chain] - n2
        counts[chain] = n2
    order = [chain] if chain >= 0 else []
    order += [int(i) for i in np.argsort(-degrees, kind="stable") if i != chain]
    out = np.concatenate([np.full(counts[i], degrees[i]) for i in order]).astype(np.int64)
    return out, n2


@numba.njit(cache=True)
def _xorshift(state):
    x = state[0]
    x ^= (x << np.uint64(13)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    x ^= x >> np.uint64(7)
    x ^= (x << np.uint64(17)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    state[0] = x
    return x


@numba.njit(cache=True)
def _randint(state, n):
    return np.int64(_xorshift(state) % np.uint64(n))


@numba.njit(cache=True)
def _stamp_low_ace(v, start, budget, max_vars, var_deg, n_chain, check_vars, check_deg,
                   var_checks, var_cnt, low, frontier, following):
    """Stamp ``low[c] = v`` on every check ``c`` that a path from check ``start`` reaches
    through at most ``max_vars`` variables (other than ``v``) whose ACE sum is at most
    ``budget``: an edge ``v - c`` would close a cycle of at most ``max_vars + 1`` variables
    with ACE ``(deg v - 2) + sum``. ``frontier``/``following`` are scratch rows of
    (check, ACE used) pairs."""
    size = 1
    frontier[0, 0] = start
    frontier[0, 1] = 0
    for depth in range(max_vars):
        more = depth + 1 < max_vars
        grown = 0
        for i in range(size):
            x = frontier[i, 0]
            used = frontier[i, 1]
            if used == budget:
                # Only ACE-0 (chain) variables are left: variable j sits on checks j, j+1.
                for w, y in ((x - 1, x - 1), (x, x + 1)):
                    if 0 <= w < n_chain and w != v:
                        low[y] = v
                        if more and grown < following.shape[0]:
                            following[grown, 0] = y
                            following[grown, 1] = used
                            grown += 1
                continue
            for t in range(check_deg[x]):
                w = check_vars[x, t]
                ace = var_deg[w] - 2
                if w == v or used + ace > budget:
                    continue
                for s in range(var_cnt[w]):
                    y = var_checks[w, s]
                    if y == x:
                        continue
                    low[y] = v
                    if more and grown < following.shape[0]:
                        following[grown, 0] = y
                        following[grown, 1] = used + ace
                        grown += 1
        frontier, following = following, frontier
        size = grown
        if size == 0:
            break


@numba.njit(cache=True)
def _construct(var_deg, n_chain, n_checks, seed, ace_eta, ace_vars):
    n_vars = var_deg.size
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x1234567)
    if state[0] == 0:
        state[0] = np.uint64(1)
    edges = 0
    max_dv = 0
    for v in range(n_vars):
        edges += var_deg[v]
        max_dv = max(max_dv, var_deg[v])
    target = np.full(n_checks, edges // n_checks, dtype=np.int64)
    target[: edges - (edges // n_checks) * n_checks] += 1
    max_dc = int(target.max()) + 2
    check_vars = np.full((n_checks, max_dc), -1, dtype=np.int64)
    check_deg = np.zeros(n_checks, dtype=np.int64)
    var_checks = np.full((n_vars, max_dv), -1, dtype=np.int64)
    var_cnt = np.zeros(n_vars, dtype=np.int64)

    for v in range(n_chain):
        for c in (v, v + 1):
            check_vars[c, check_deg[c]] = v
            check_deg[c] += 1
            var_checks[v, var_cnt[v]] = c
            var_cnt[v] += 1
    pool = np.empty(edges - 2 * n_chain, dtype=np.int64)
    fill = 0
    for c in range(n_checks):
        for _ in range(target[c] - check_deg[c]):
            if fill < pool.size:
                pool[fill] = c
                fill += 1
    pool_len = fill
    near = np.full(n_checks, -1, dtype=np.int64)   # stamp: within two hops of variable v
    direct = np.full(n_checks, -1, dtype=np.int64)  # stamp: neighbour of variable v
    low = np.full(n_checks, -1, dtype=np.int64)     # stamp: closes a low-ACE cycle with v
    frontier = np.empty((8192, 2), dtype=np.int64)
    following = np.empty((8192, 2), dtype=np.int64)
    for v in range(n_chain, n_vars):
        budget = ace_eta - 1 - (var_deg[v] - 2)
        for _e in range(var_deg[v]):
            if pool_len == 0:
                break
            pick = np.int64(-1)
            for _try in range(64):
                r = _randint(state, pool_len)
                c = pool[r]
                if direct[c] != v and near[c] != v and low[c] != v:
                    pick = r
                    break
            if pick < 0 and budget >= 0:
                start = _randint(state, pool_len)
                for off in range(pool_len):
                    r = (start + off) % pool_len
                    c = pool[r]
                    if direct[c] != v and near[c] != v and low[c] != v:
                        pick = r
                        break
            if pick < 0:
                start = _randint(state, pool_len)
                for off in range(pool_len):
                    r = (start + off) % pool_len
                    if direct[pool[r]] != v:
                        pick = r
                        break
            if pick < 0:
                break
            c = pool[pick]
            pool[pick] = pool[pool_len - 1]
            pool_len -= 1
            if check_deg[c] >= max_dc:
                continue
            check_vars[c, check_deg[c]] = v
            check_deg[c] += 1
            var_checks[v, var_cnt[v]] = c
            var_cnt[v] += 1
            direct[c] = v
            for t in range(check_deg[c]):
                u = check_vars[c, t]
                for s in range(var_cnt[u]):
                    near[var_checks[u, s]] = v
            if budget >= 0 and var_cnt[v] < var_deg[v]:
                _stamp_low_ace(v, c, budget, ace_vars, var_deg, n_chain, check_vars,
                               check_deg, var_checks, var_cnt, low, frontier, following)
    row_ptr = np.zeros(n_checks + 1, dtype=np.int64)
    for c in range(n_checks):
        row_ptr[c + 1] = row_ptr[c] + check_deg[c]
    col_idx = np.empty(row_ptr[n_checks], dtype=np.int32)
    for c in range(n_checks):
        for t in range(check_deg[c]):
            col_idx[row_ptr[c] + t] = check_vars[c, t]
    # Untainted puncturing candidates: degree-2 variables first, in random order.
    order = np.arange(n_vars)
    for i in range(n_vars - 1, 0, -1):
        j = _randint(state, i + 1)
        order[i], order[j] = order[j], order[i]
    tainted = np.zeros(n_checks, dtype=np.uint8)
    punct = np.empty(n_vars, dtype=np.int64)
    count = 0
    for want_low in (True, False):
        for i in range(n_vars):
            v = order[i]
            if (var_cnt[v] == 2) != want_low or var_cnt[v] == 0:
                continue
            ok = True
            for s in range(var_cnt[v]):
                if tainted[var_checks[v, s]]:
                    ok = False
            if ok:
                for s in range(var_cnt[v]):
                    tainted[var_checks[v, s]] = 1
                punct[count] = v
                count += 1
    return row_ptr, col_idx, punct[:count].copy()


@numba.njit(cache=True)
def _syndrome(row_ptr, col_idx, word):
    m = row_ptr.size - 1
    out = np.zeros(m, dtype=np.uint8)
    for c in range(m):
        s = 0
        for t in range(row_ptr[c], row_ptr[c + 1]):
            s ^= word[col_idx[t]]
        out[c] = s
    return out


def build_code(n_vars: int, n_checks: int, seed: int) -> LdpcCode:
    """Construct the code ``(n_vars, n_checks, seed)`` (deterministic; see the module doc).

    Raises
    ------
    ValueError
        If the shape is out of range (``2 <= n_checks < n_vars <= MAX_CODE_VARS``).
    """
    if not 2 <= n_checks < n_vars <= MAX_CODE_VARS:
        raise ValueError(f"code shape ({n_checks} checks, {n_vars} variables) out of range")
    degrees, n_chain = _variable_degrees(n_vars, n_checks)
    eta, ace_vars = _ACE if 1.0 - n_checks / n_vars > _OPTIMISED_MAX_RATE else (0, 0)
    row_ptr, col_idx, punct = _construct(degrees, n_chain, n_checks, seed & (2**63 - 1),
                                         eta, ace_vars)
    return LdpcCode(n_vars, n_checks, row_ptr, col_idx, punct)


_MEMORY: dict[tuple[int, int, int], LdpcCode] = {}


def _cache_dir() -> Path | None:
    env = os.environ.get("TBQKD_LDPC_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "build" / "ldpc_codes"
    return None


def get_code(n_vars: int, n_checks: int, seed: int) -> LdpcCode:
    """The code ``(n_vars, n_checks, seed)``, from memory, the disk cache, or built and cached.

    Raises
    ------
    ValueError
        If the shape is out of range (see :func:`build_code`).
    """
    key = (n_vars, n_checks, seed)
    code = _MEMORY.get(key)
    if code is not None:
        return code
    folder = _cache_dir()
    path = folder / f"v{CODE_VERSION}_{n_vars}_{n_checks}_{seed}.npz" if folder else None
    if path is not None and path.exists():
        try:
            with np.load(path) as data:
                code = LdpcCode(n_vars, n_checks, data["row_ptr"], data["col_idx"],
                                data["puncture_order"])
        except (OSError, ValueError, KeyError):
            code = None
    if code is None:
        code = build_code(n_vars, n_checks, seed)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, row_ptr=code.row_ptr, col_idx=code.col_idx,
                         puncture_order=code.puncture_order)
                os.replace(tmp, path)
            except OSError:
                pass
    if len(_MEMORY) >= 32:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = code
    return code
