"""Privacy amplification: Toeplitz-hashing input Mbit/s (one core) at 1e6- and 1e7-bit blocks."""

from __future__ import annotations

import functools
import statistics
import time

import numpy as np

__all__ = ["run"]

#: Output length over input length of the benchmark blocks (m = n / 2).
COMPRESSION = 0.5


def _median_seconds(function, bits, seed, output_bits, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        function(bits, seed, output_bits)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def run(quick: bool = False) -> dict:
    """Time :func:`toeplitz_hash` on random 1e6- and 1e7-bit blocks, and each method alone.

    ``mbit_per_s`` is the default method on wall time (median of 5 runs; 1 with ``quick``),
    ``cpu_mbit_per_s`` the same on process CPU time (what the code costs when the machine is
    shared); the slower alternative methods run once per size (not at all with ``quick``).
    """
    from tbqkd.host import _gf2poly, privacy

    methods = {
        "additive_fft": functools.partial(privacy.toeplitz_hash_packed, method="additive_fft"),
        "karatsuba": functools.partial(privacy.toeplitz_hash_packed, method="karatsuba"),
        "float_fft": privacy.toeplitz_hash_fft,
    }
    rng = np.random.default_rng(1)
    repeats = 1 if quick else 5
    if quick:  # the default method only: no JIT compilation of the others
        methods = {"additive_fft": methods["additive_fft"]}
    warm = rng.integers(0, 2, 40_000, dtype=np.uint8)  # above the Karatsuba size
    for function in (privacy.toeplitz_hash, *methods.values()):  # JIT, FFT plans
        function(warm, np.ones(40_000 + 19_999, dtype=np.uint8), 20_000)
    result: dict = {"mbit_per_s": {}, "seconds": {}, "cpu_mbit_per_s": {},
                    "methods_mbit_per_s": {}}
    for label, size in (("1e6", 10**6), ("1e7", 10**7)):
        output_bits = int(size * COMPRESSION)
        bits = rng.integers(0, 2, size, dtype=np.uint8)
        seed = rng.integers(0, 2, privacy.seed_bits_for(size, output_bits), dtype=np.uint8)
        seconds, cpu = _median_seconds(privacy.toeplitz_hash, bits, seed, output_bits, repeats)
        result["mbit_per_s"][label] = round(size / seconds / 1e6, 2)
        result["seconds"][label] = round(seconds, 4)
        result["cpu_mbit_per_s"][label] = round(size / max(cpu, 1e-9) / 1e6, 2)
        for name, function in methods.items():
            runs = repeats if name == "additive_fft" else 1
            seconds, _ = _median_seconds(function, bits, seed, output_bits, runs)
            result["methods_mbit_per_s"].setdefault(name, {})[label] = round(size / seconds / 1e6,
                                                                              2)
    result.update({"compression": COMPRESSION, "repeats": repeats, "quick": quick,
                   "pclmul": _gf2poly.HAVE_PCLMUL, "goal_mbit_per_s": 30})
    return result
