"""LDPC frame error rate: a campaign of many 10^5-bit frames at one QBER."""

from __future__ import annotations

import os
import time

import numpy as np
from scipy.stats import beta

from tbqkd.bench import BenchParameterError
from tbqkd.host.ec import binary_entropy, make_reconciler
from tbqkd.host.ec.ldpc import LdpcOptions, plan_frames
from tbqkd.host.protocol import run_in_memory

__all__ = ["run"]


def run(quick: bool = False, qber: float = 0.05, frames: int | None = None,
        first_seed: int = 100_000) -> dict:
    """Reconcile ``frames`` fresh BSC key pairs of 10^5 bits at ``qber`` with the LDPC defaults.

    A frame fails when Bob ends without Alice's key (decoder failure or a wrong word caught
    by the confirmation parities). Reported: failures, the frame error rate and its one-sided
    95 % Clopper-Pearson upper bound, the efficiency's median / 90th percentile / maximum,
    and how many frames needed the rescue steps (all punctured bits revealed, then the
    variables of checks Bob names). Seeds ``first_seed`` onwards (the ``ec`` benchmark uses
    0-11). ``quick``: 10^4 bits and 20 frames unless ``frames`` is given (default 1000).
    """
    n = 10_000 if quick else 100_000
    frames = (20 if quick else 1000) if frames is None else frames
    valid = (isinstance(qber, (int, float)) and 0.0 < qber < 0.5
             and isinstance(frames, int) and frames >= 1 and isinstance(first_seed, int))
    if not valid:
        raise BenchParameterError("need 0 < qber < 0.5, an integer frames >= 1 and an integer "
                                  f"first_seed, got {qber!r}, {frames!r}, {first_seed!r}")
    plan = plan_frames(n, qber, LdpcOptions())
    failures = rescued = 0
    efficiencies = []
    start = time.perf_counter()
    for seed in range(first_seed, first_seed + frames):
        rng = np.random.default_rng(seed)
        alice_key = rng.integers(0, 2, n, dtype=np.uint8)
        bob_key = alice_key ^ (rng.random(n) < qber).astype(np.uint8)
        alice = make_reconciler("ldpc", "alice", alice_key, qber, seed=seed, private_seed=seed)
        bob = make_reconciler("ldpc", "bob", bob_key, qber, seed=seed, private_seed=seed)
        _, result, messages = run_in_memory(alice, bob)
        if messages // 2 - 1 > plan.steps:
            rescued += 1
        if result.success and np.array_equal(result.key, alice_key):
            h = binary_entropy(float(np.mean(alice_key ^ bob_key)))
            efficiencies.append(result.leaked_bits / (n * h))
        else:
            failures += 1
    seconds = time.perf_counter() - start
    f = np.array(efficiencies)
    return {
        "qber": qber, "block_bits": n, "frames": frames, "failures": failures,
        "fer": failures / frames,
        "fer_95_upper": round(float(beta.ppf(0.95, failures + 1, frames - failures))
                              if failures < frames else 1.0, 6),
        "rescued_frames": rescued,
        "f_median": round(float(np.median(f)), 4) if f.size else None,
        "f_p90": round(float(np.percentile(f, 90)), 4) if f.size else None,
        "f_max": round(float(f.max()), 4) if f.size else None,
        "seconds": round(seconds, 1), "mbit_per_s": round(frames * n / seconds / 1e6, 4),
        "first_seed": first_seed, "load_average": os.getloadavg()[0],
    }
