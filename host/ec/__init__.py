"""Error correction (information reconciliation) for key distillation.

Two methods, each a pair of sans-I/O :class:`~tbqkd.host.protocol.ProtocolSide` objects:

- ``"ldpc"``: blind, rate-adaptive syndrome decoding with irregular girth-6 LDPC codes
  (:mod:`.ldpc`, codes from :mod:`.codes`). One-way apart from one status bit per frame and
  attempt.
- ``"cascade"``: interactive Cascade with all blocks bisected in parallel (:mod:`.cascade`).

Alice holds the reference key; Bob ends with the corrected key. Both sides' :meth:`result` is a
:class:`ReconcileResult`. The leakage it reports counts every key-dependent bit disclosed in
*either* direction (see ``docs/ERROR_CORRECTION.md``); ``leaked_bits_alice`` is the part
disclosed by Alice alone, the figure the Cascade literature quotes.

Example
-------
>>> alice = make_reconciler("cascade", "alice", key_a, 0.03, seed=7)
>>> bob = make_reconciler("cascade", "bob", key_b, 0.03, seed=7)
>>> res_a, res_b, _ = run_in_memory(alice, bob)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import ProtocolSide

__all__ = ["ReconcileResult", "ReconcilerSide", "make_reconciler", "binary_entropy", "METHODS"]

METHODS = ("ldpc", "cascade")


@dataclass(frozen=True)
class ReconcileResult:
    """Outcome of one reconciliation for one side.

    Attributes
    ----------
    key
        The side's key after reconciliation (``uint8`` 0/1). Alice's is her input key; Bob's is
        his corrected key.
    success
        The decoder's own claim that Bob's key equals Alice's (LDPC: every frame's syndrome
        matched; Cascade: the protocol ran to the end) *and* the confirmation parities matched.
        It is not a substitute for verification by universal hashing.
    leaked_bits
        Key-dependent bits disclosed in both directions (syndrome bits net of secret padding,
        revealed bits, parities, Bob's flags and status bits, confirmation parities).
    leaked_bits_alice
        The part of ``leaked_bits`` disclosed by Alice.
    messages
        Messages exchanged, both directions.
    round_trips
        Alice-to-Bob-to-Alice exchanges (``ceil(messages / 2)``).
    errors_corrected
        Bits Bob flipped, or ``None`` where the method cannot know (not used today).
    """

    key: np.ndarray
    success: bool
    leaked_bits: int
    leaked_bits_alice: int
    messages: int
    round_trips: int
    errors_corrected: int | None


class ReconcilerSide(ProtocolSide):
    """What every reconciler side shares: ``done`` and the :class:`ReconcileResult` it reports.

    Subclasses keep ``_key``, ``_success``, ``_done``, ``_alice_bits``, ``_bob_bits``,
    ``_messages`` and ``_corrected`` (``None`` where the side cannot know) up to date.
    """

    @property
    def done(self) -> bool:
        return self._done

    def result(self) -> ReconcileResult:
        if not self._done:
            raise RuntimeError("reconciliation not finished")
        return ReconcileResult(
            key=self._key.copy(), success=self._success,
            leaked_bits=self._alice_bits + self._bob_bits, leaked_bits_alice=self._alice_bits,
            messages=self._messages, round_trips=(self._messages + 1) // 2,
            errors_corrected=self._corrected)


def binary_entropy(p: float) -> float:
    """Binary entropy ``h(p)`` in bits (0 at p = 0 or 1)."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-p * np.log2(p) - (1.0 - p) * np.log2(1.0 - p))


def make_reconciler(method: str, role: str, key: np.ndarray, qber_estimate: float, *,
                    seed: int, **options) -> ProtocolSide:
    """Build one side of a reconciliation.

    Parameters
    ----------
    method
        ``"ldpc"`` or ``"cascade"``.
    role
        ``"alice"`` (reference key) or ``"bob"`` (key to correct).
    key
        The side's sifted key, 0/1 values of any integer dtype.
    qber_estimate
        The QBER estimate both sides agreed on, in (0, 0.5).
    seed
        Public shared randomness (Cascade permutations, confirmation subsets); both sides must
        use the same value.
    **options
        Method options (see :class:`.cascade.CascadeOptions` and :class:`.ldpc.LdpcOptions`).

    Raises
    ------
    ValueError
        If ``method``, ``role``, ``key`` or ``qber_estimate`` is invalid.
    """
    key = validate_key(key)
    if not 0.0 < qber_estimate < 0.5:
        raise ValueError(f"qber_estimate must be in (0, 0.5), got {qber_estimate}")
    if role not in ("alice", "bob"):
        raise ValueError(f"role must be 'alice' or 'bob', got {role!r}")
    if method == "cascade":
        from .cascade import CascadeAlice, CascadeBob, CascadeOptions
        opts = CascadeOptions(**options)
        side_class = CascadeAlice if role == "alice" else CascadeBob
        return side_class(key, qber_estimate, seed=seed, options=opts)
    if method == "ldpc":
        from .ldpc import LdpcAlice, LdpcBob, LdpcOptions
        opts = LdpcOptions(**options)
        if role == "alice":
            return LdpcAlice(key, qber_estimate, seed=seed, options=opts)
        return LdpcBob(key, seed=seed, options=opts)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def validate_key(key: np.ndarray) -> np.ndarray:
    """Return ``key`` as a contiguous ``uint8`` 0/1 array.

    Raises
    ------
    ValueError
        If the key is empty, not one-dimensional, or holds values other than 0 and 1.
    """
    array = np.asarray(key)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"key must be a non-empty 1-D array, got shape {array.shape}")
    if array.dtype.kind not in "biu":
        raise ValueError(f"key must hold integers 0/1, got dtype {array.dtype}")
    if int(array.max()) > 1 or int(array.min()) < 0:
        raise ValueError("key must hold only 0 and 1")
    return np.ascontiguousarray(array, dtype=np.uint8)
