"""Shared fixture for the error-correction tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def _noisy_pair(n: int, qber: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    return alice, bob


@pytest.fixture(scope="session")
def noisy_pair() -> Callable[[int, float, int], tuple[np.ndarray, np.ndarray]]:
    """``noisy_pair(n, qber, seed)``: Alice's random key and Bob's copy through a BSC."""
    return _noisy_pair
