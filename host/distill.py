"""Key distillation per block: error correction, verification, privacy amplification.

Alice's and Bob's sides share nothing but messages (:mod:`tbqkd.host.messages`). Two layers:

* :class:`AliceBlock` / :class:`BobBlock` are :class:`~tbqkd.host.protocol.ProtocolSide` objects
  for one block, speaking message dicts. Flow (``->``: Alice to Bob)::

      -> block_start  sizes, X-basis statistics, EC method/seed/prior
      <> ec           error-correction messages (``make_reconciler``), wrapped with the block id
      <- verify       Bob's EC outcome, a fresh public hash seed and Bob's tag
      -> pa           key length from the finite-key formula and a fresh Toeplitz seed
                      (or ``abort`` with a reason: EC failed, tags differ, thresholds, l <= 0)
      <- ack          Bob stored his key

* :class:`DistillNode` is one party as a whole: it authenticates every message
  (:class:`~tbqkd.host.auth.AuthenticatedChannel`), runs one block side at a time, stores keys
  (:class:`~tbqkd.host.keystore.KeyStore`), refills the authentication key from distilled key
  and keeps the accounts. It takes and returns frames (``bytes``) only, so the same node runs
  over :func:`run_block` in one process or over TCP.

A bad frame (tampered, replayed, reordered, truncated, oversized) or a protocol violation aborts
the block: the node records the reason, answers with an authenticated ``abort`` when it can,
and outputs no key.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import finite_key, privacy, verify
from .auth import AuthenticatedChannel
from .keystore import KeyStore
from .messages import MessageError
from .protocol import (
    Message,
    ProtocolError,
    ProtocolSide,
    deliver_until_quiet,
    pack_bits,
    unpack_bits,
)

__all__ = ["XStatistics", "BlockInput", "DistillConfig", "BlockOutcome", "AliceBlock",
           "BobBlock", "NodeAccounts", "DistillNode", "run_block", "ProtocolError"]

_logger = logging.getLogger(__name__)

RandomBytes = Callable[[int], bytes]
ReconcilerFactory = Callable[..., ProtocolSide]


def _log(level: int, message: str, *args: object) -> None:
    _logger.log(level, message, *args)


@dataclass(frozen=True)
class XStatistics:
    """X-basis statistics of a block: detections where Alice sent |+> and Bob measured X."""

    detections: int
    errors: int

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.detections:
            raise ValueError(f"need 0 <= errors <= detections, got {self}")


@dataclass(frozen=True)
class BlockInput:
    """One side's input for a block: sifted Z bits, X statistics, Z-basis pulses sent."""

    block_id: int
    sifted_z: np.ndarray = field(repr=False)
    x_stats: XStatistics
    pulses: int = 0

    def __repr__(self) -> str:
        return (f"BlockInput(block_id={self.block_id}, n_z={len(self.sifted_z)}, "
                f"x_stats={self.x_stats}, pulses={self.pulses})")


@dataclass(frozen=True)
class DistillConfig:
    """Settings both sides must share (Bob checks the ones Alice announces)."""

    method: str = "ldpc"      # about half Cascade's honest leakage, far fewer messages
    security: finite_key.SecurityParameters = field(
        default_factory=finite_key.SecurityParameters)
    source: finite_key.SourceParameters = field(default_factory=finite_key.SourceParameters)
    thresholds: finite_key.AbortThresholds = field(default_factory=finite_key.AbortThresholds)
    qber_prior: float = 0.02
    ec_options: dict[str, Any] = field(default_factory=dict)
    max_block_bits: int = 10_000_000


@dataclass
class BlockOutcome:
    """What one side got from a block. ``key`` is ``None`` unless ``status == "key"``.

    ``status`` is ``"running"``, ``"key"``, ``"aborted"`` (thresholds, bad frame, peer abort,
    input mismatch; see ``reason``), ``"ec_failed"`` or ``"verify_failed"``. ``report`` holds
    every term of the key-length computation (Alice only).
    """

    block_id: int
    status: str = "running"
    reason: str = ""
    key: np.ndarray | None = field(default=None, repr=False)
    report: finite_key.KeyLengthReport | None = None
    leaked_ec_bits: int = 0
    errors_corrected: int = 0
    ec_messages: int = 0

    @property
    def key_bits(self) -> int:
        """Length of the distilled key (0 without key)."""
        return 0 if self.key is None else int(self.key.size)


def _ec_message(block_id: int, body: Message) -> Message:
    return {"type": "ec", "block_id": block_id, "body": body}


def _default_reconciler_factory() -> ReconcilerFactory:
    from .ec import make_reconciler

    return make_reconciler


def _random_bits(random_bytes: RandomBytes, count: int) -> np.ndarray:
    return unpack_bits(random_bytes(-(-count // 8)), count)


def _check_input(block: BlockInput, config: DistillConfig) -> np.ndarray:
    bits = np.asarray(block.sifted_z)
    if bits.ndim != 1 or bits.size == 0 or bits.size > config.max_block_bits:
        raise ValueError(f"block {block.block_id}: sifted key must be 1-D with 1 to "
                         f"{config.max_block_bits} bits, got shape {bits.shape}")
    if np.any(bits > 1) or np.any(bits < 0):
        raise ValueError(f"block {block.block_id}: sifted key must hold only 0 and 1")
    return bits.astype(np.uint8)


class _BlockSide(ProtocolSide):
    """Shared state and helpers of both block sides."""

    def __init__(self, role: str, block: BlockInput, config: DistillConfig,
                 reconciler_factory: ReconcilerFactory | None, random_bytes: RandomBytes) -> None:
        self._role = role
        self._block = block
        self._bits = _check_input(block, config)
        self._config = config
        self._factory = reconciler_factory or _default_reconciler_factory()
        self._random_bytes = random_bytes
        self._reconciler: ProtocolSide | None = None
        self._outcome = BlockOutcome(block.block_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(block_id={self._block.block_id}, " \
               f"status={self._outcome.status!r})"

    @property
    def done(self) -> bool:
        return self._outcome.status != "running"

    def result(self) -> BlockOutcome:
        if not self.done:
            raise ProtocolError("block not finished")
        return self._outcome

    def _finish(self, status: str, reason: str = "") -> None:
        self._outcome.status = status
        self._outcome.reason = reason
        if status != "key":
            self._outcome.key = None
        _log(logging.INFO, "%s block %d: %s %s", self._role, self._block.block_id, status, reason)

    def _abort(self, reason: str, *, status: str = "aborted") -> list[Message]:
        self._finish(status, reason)
        return [{"type": "abort", "block_id": self._block.block_id, "reason": reason}]

    def _expect_block(self, message: Message) -> None:
        if message.get("block_id") != self._block.block_id:
            raise ProtocolError(f"message for block {message.get('block_id')}, "
                                f"this is block {self._block.block_id}")

    def _run_ec(self, body: Message) -> list[Message]:
        if self._reconciler is None or self._reconciler.done:
            raise ProtocolError("error-correction message outside error correction")
        replies = self._reconciler.receive(body)
        return [_ec_message(self._block.block_id, reply) for reply in replies]

    def abort_locally(self, reason: str) -> list[Message]:
        """End the block without key (e.g. a bad frame); return the abort for the peer."""
        if self.done:
            return []
        return self._abort(reason)


class AliceBlock(_BlockSide):
    """Alice's side of one block: leads, decides the key length, chooses the PA seed.

    Raises
    ------
    ValueError
        If the input block is malformed.
    """

    def __init__(self, block: BlockInput, config: DistillConfig, *,
                 reconciler_factory: ReconcilerFactory | None = None,
                 random_bytes: RandomBytes = secrets.token_bytes,
                 qber_prior: float | None = None) -> None:
        super().__init__("alice", block, config, reconciler_factory, random_bytes)
        self._qber_prior = config.qber_prior if qber_prior is None else qber_prior
        self._pending_key: np.ndarray | None = None

    def start(self) -> list[Message]:
        ec_seed = int.from_bytes(self._random_bytes(4), "little")
        block = self._block
        announce = {"type": "block_start", "block_id": block.block_id, "n_z": int(self._bits.size),
                    "n_x": block.x_stats.detections, "e_x": block.x_stats.errors,
                    "pulses": block.pulses, "qber_prior": float(self._qber_prior),
                    "method": self._config.method, "ec_seed": ec_seed}
        self._reconciler = self._factory(self._config.method, "alice", self._bits,
                                         self._qber_prior, seed=ec_seed,
                                         **self._config.ec_options)
        first = [_ec_message(block.block_id, m) for m in self._reconciler.start()]
        return [announce, *first]

    def receive(self, message: Message) -> list[Message]:
        if self.done:
            raise ProtocolError(f"block {self._block.block_id} is finished; got {message['type']}")
        self._expect_block(message)
        kind = message["type"]
        if kind == "ec":
            return self._run_ec(message["body"])
        if kind == "abort":
            self._finish("aborted", f"Bob aborted: {message['reason']}")
            return []
        if kind == "verify" and self._pending_key is None:
            return self._on_verify(message)
        if kind == "ack" and self._pending_key is not None:
            if message["key_bits"] != self._pending_key.size:
                return self._abort("Bob acknowledged a key of another length")
            self._outcome.key = self._pending_key
            self._finish("key")
            return []
        raise ProtocolError(f"unexpected {kind} message in Alice's block state")

    def _on_verify(self, message: Message) -> list[Message]:
        if self._reconciler is None or not self._reconciler.done:
            raise ProtocolError("verify message before error correction finished")
        ec = self._reconciler.result()
        self._outcome.leaked_ec_bits = int(ec.leaked_bits)
        self._outcome.errors_corrected = int(message["errors_corrected"])
        self._outcome.ec_messages = int(ec.messages)
        if not (ec.success and message["ec_success"]):
            return self._abort("error correction failed", status="ec_failed")
        try:
            hash_function = verify.VerificationHash.from_seed_bytes(message["hash_seed"])
        except ValueError as error:
            raise MessageError(f"verify.hash_seed: {error}") from None
        if hash_function.collision_probability(self._bits.size) > self._config.security.eps_cor:
            return self._abort("verification hash too weak for eps_cor")
        if hash_function.tag(ec.key) != message["tag"]:
            return self._abort("verification failed: keys differ after error correction",
                               status="verify_failed")
        block = self._block
        report = finite_key.secret_key_length(
            n_z=int(self._bits.size), errors_z=self._outcome.errors_corrected,
            n_x=block.x_stats.detections, e_x=block.x_stats.errors, pulses=block.pulses,
            leak_ec_bits=self._outcome.leaked_ec_bits, leak_verify_bits=hash_function.tag_bits,
            source=self._config.source, security=self._config.security,
            thresholds=self._config.thresholds)
        self._outcome.report = report
        if report.abort_reason is not None:
            return self._abort(report.abort_reason)
        seed = _random_bits(self._random_bytes, privacy.seed_bits_for(self._bits.size,
                                                                      report.key_bits))
        self._pending_key = privacy.toeplitz_hash(np.asarray(ec.key, dtype=np.uint8), seed,
                                                  report.key_bits)
        return [{"type": "pa", "block_id": block.block_id, "key_bits": report.key_bits,
                 "seed": pack_bits(seed)}]


class BobBlock(_BlockSide):
    """Bob's side of one block: follows Alice, sends the verification tag, applies her PA seed.

    Raises
    ------
    ValueError
        If the input block is malformed.
    """

    def __init__(self, block: BlockInput, config: DistillConfig, *,
                 reconciler_factory: ReconcilerFactory | None = None,
                 random_bytes: RandomBytes = secrets.token_bytes) -> None:
        super().__init__("bob", block, config, reconciler_factory, random_bytes)
        self._verified = False

    def start(self) -> list[Message]:
        return []

    def receive(self, message: Message) -> list[Message]:
        if self.done:
            raise ProtocolError(f"block {self._block.block_id} is finished; got {message['type']}")
        self._expect_block(message)
        kind = message["type"]
        if kind == "block_start" and self._reconciler is None:
            return self._on_start(message)
        if kind == "ec":
            return self._after_ec(self._run_ec(message["body"]))
        if kind == "abort":
            self._finish("aborted", f"Alice aborted: {message['reason']}")
            return []
        if kind == "pa" and self._verified:
            return self._on_pa(message)
        raise ProtocolError(f"unexpected {kind} message in Bob's block state")

    def _on_start(self, message: Message) -> list[Message]:
        block = self._block
        mine = {"n_z": int(self._bits.size), "n_x": block.x_stats.detections,
                "e_x": block.x_stats.errors, "pulses": block.pulses,
                "method": self._config.method}
        differing = sorted(name for name, value in mine.items() if message[name] != value)
        if differing:
            return self._abort(f"block inputs differ from Alice's: {differing}")
        if not 0.0 < message["qber_prior"] < 0.5:
            raise MessageError("block_start.qber_prior must be in (0, 0.5)")
        try:
            self._reconciler = self._factory(self._config.method, "bob", self._bits,
                                             message["qber_prior"], seed=message["ec_seed"],
                                             **self._config.ec_options)
        except ValueError as error:
            raise MessageError(f"block_start: reconciler refused the parameters: {error}") \
                from None
        first = [_ec_message(block.block_id, m) for m in self._reconciler.start()]
        return self._after_ec(first)

    def _after_ec(self, outgoing: list[Message]) -> list[Message]:
        if self._reconciler is None or not self._reconciler.done or self._verified:
            return outgoing
        ec = self._reconciler.result()
        self._verified = True
        self._corrected = np.asarray(ec.key, dtype=np.uint8)
        if self._corrected.shape != self._bits.shape:
            raise ProtocolError("error correction returned a key of another length")
        # Bob knows his input and his corrected key: the Z-basis error count is exact once
        # verification confirms the corrected key.
        errors = int(np.count_nonzero(self._corrected != self._bits))
        self._outcome.leaked_ec_bits = int(ec.leaked_bits)
        self._outcome.errors_corrected = errors
        self._outcome.ec_messages = int(ec.messages)
        hash_function = verify.draw_verification_hash(self._bits.size,
                                                      self._config.security.eps_cor,
                                                      random_bytes=self._random_bytes)
        return [*outgoing, {"type": "verify", "block_id": self._block.block_id,
                            "ec_success": bool(ec.success),
                            "errors_corrected": errors,
                            "hash_seed": hash_function.seed_bytes(),
                            "tag": hash_function.tag(self._corrected)}]

    def _on_pa(self, message: Message) -> list[Message]:
        n = int(self._bits.size)
        key_bits = message["key_bits"]
        if not 1 <= key_bits <= n:
            raise MessageError(f"pa.key_bits {key_bits} outside [1, {n}]")
        seed_bits = privacy.seed_bits_for(n, key_bits)
        if len(message["seed"]) != -(-seed_bits // 8):
            raise MessageError(f"pa.seed has {len(message['seed'])} bytes, "
                               f"{-(-seed_bits // 8)} expected")
        seed = unpack_bits(message["seed"], seed_bits)
        self._outcome.key = privacy.toeplitz_hash(self._corrected, seed, key_bits)
        self._finish("key")
        return [{"type": "ack", "block_id": self._block.block_id, "key_bits": key_bits}]


@dataclass
class NodeAccounts:
    """Running totals of one node (bits unless named otherwise)."""

    blocks: int = 0
    blocks_with_key: int = 0
    blocks_aborted: int = 0
    blocks_ec_failed: int = 0
    blocks_verify_failed: int = 0
    frames_rejected: int = 0
    distilled_bits: int = 0
    auth_refill_bits: int = 0
    stored_bits: int = 0
    auth_consumed_bits: int = 0

    @property
    def net_key_bits(self) -> int:
        """Distilled key minus the authentication key consumed (may be negative early on)."""
        return self.distilled_bits - self.auth_consumed_bits


class DistillNode:
    """One party of the distillation: frames in, frames out, keys into the store.

    Parameters
    ----------
    role
        ``"alice"`` or ``"bob"``.
    channel
        This party's end of the authenticated channel (it owns the authentication key).
    config
        Shared settings.
    keystore
        Where keys go; ``None`` keeps them only in :attr:`last_outcome`.
    auth_pool_target_bits
        After each block with key, the authentication pad pools are topped up to this many bits
        per direction from the front of the distilled key; the rest is stored.
    """

    def __init__(self, role: str, channel: AuthenticatedChannel, config: DistillConfig, *,
                 keystore: KeyStore | None = None,
                 reconciler_factory: ReconcilerFactory | None = None,
                 random_bytes: RandomBytes = secrets.token_bytes,
                 auth_pool_target_bits: int = 65_536) -> None:
        if role not in ("alice", "bob"):
            raise ValueError(f"role must be 'alice' or 'bob', got {role!r}")
        self._role = role
        self._channel = channel
        self._config = config
        self._keystore = keystore
        self._factory = reconciler_factory
        self._random_bytes = random_bytes
        self._pool_target_bytes = auth_pool_target_bits // 8
        self._side: _BlockSide | None = None
        self._qber_prior = config.qber_prior
        self._accounts = NodeAccounts(auth_consumed_bits=channel.consumed_bits)
        self._outcome: BlockOutcome | None = None

    def __repr__(self) -> str:
        return f"DistillNode(role={self._role!r}, accounts={self._accounts})"

    @property
    def accounts(self) -> NodeAccounts:
        """Running totals, with the authentication key consumed so far."""
        self._accounts.auth_consumed_bits = self._channel.consumed_bits
        return self._accounts

    @property
    def block_done(self) -> bool:
        """True when no block is running."""
        return self._side is None or self._side.done

    @property
    def last_outcome(self) -> BlockOutcome | None:
        """Outcome of the last finished block."""
        return self._outcome

    def set_qber_prior(self, qber: float) -> None:
        """The error rate the next block's error correction starts from (until a block has
        measured one).

        Raises
        ------
        ValueError
            If ``qber`` is not in (0, 0.5).
        """
        if not 0.0 < qber < 0.5:
            raise ValueError(f"a QBER prior must be in (0, 0.5), got {qber}")
        self._qber_prior = float(qber)

    def begin_block(self, block: BlockInput) -> list[bytes]:
        """Start a block with this side's input; return the frames to send (none for Bob).

        Bob must begin a block before Alice's first frame of it arrives.

        Raises
        ------
        ProtocolError
            If a block is still running.
        ValueError
            If the input is malformed.
        """
        if not self.block_done:
            raise ProtocolError("a block is still running")
        self._outcome = None
        if self._role == "alice":
            self._side = AliceBlock(block, self._config, reconciler_factory=self._factory,
                                    random_bytes=self._random_bytes, qber_prior=self._qber_prior)
        else:
            self._side = BobBlock(block, self._config, reconciler_factory=self._factory,
                                  random_bytes=self._random_bytes)
        self._accounts.blocks += 1
        return self._send(self._side.start())

    def receive(self, frame: bytes) -> list[bytes]:
        """Consume one frame from the peer; return the frames to send back.

        A frame that fails parsing or authentication, or a message the protocol does not allow
        here, aborts the running block (reason in :attr:`last_outcome`) and is answered with an
        authenticated ``abort``. Frames arriving with no block running are counted and dropped.
        """
        try:
            message = self._channel.open(frame)
        except ProtocolError as error:
            return self.reject(error)
        return self.handle(message)

    def reject(self, error: Exception) -> list[bytes]:
        """Count a frame that failed parsing or authentication; abort the running block."""
        self._accounts.frames_rejected += 1
        side = self._side
        if side is None or side.done:
            return []
        return self._fail(side, f"bad frame: {error}")

    def handle(self, message: Message) -> list[bytes]:
        """Consume one authenticated message of the distillation; return the frames to send.

        For transports that open frames themselves (the link shares the channel with sifting).
        """
        side = self._side
        if side is None or side.done:
            self._accounts.frames_rejected += 1
            _log(logging.WARNING, "%s: %s message with no block running", self._role,
                 message["type"])
            return []
        try:
            replies = side.receive(message)
        except ProtocolError as error:
            return self._fail(side, f"protocol error: {error}")
        try:
            return self._send(replies)
        except ProtocolError as error:
            return self._fail(side, f"cannot send: {error}")

    def abort_block(self, reason: str) -> list[bytes]:
        """Abort the running block (e.g. the link timed out); return the abort for the peer."""
        if self.block_done:
            return []
        return self._fail(self._side, reason)

    def _fail(self, side: _BlockSide, reason: str) -> list[bytes]:
        replies = side.abort_locally(reason)
        try:
            return self._send(replies)
        except ProtocolError:
            if self._outcome is None and side.done:
                self._conclude(side)
            return []

    def _send(self, replies: list[Message]) -> list[bytes]:
        frames = [self._channel.seal(message) for message in replies]
        side = self._side
        if side is not None and side.done and self._outcome is None:
            self._conclude(side)
        return frames

    def _conclude(self, side: _BlockSide) -> None:
        outcome = side.result()
        self._outcome = outcome
        accounts = self._accounts
        counters = {"key": "blocks_with_key", "ec_failed": "blocks_ec_failed",
                    "verify_failed": "blocks_verify_failed"}
        name = counters.get(outcome.status, "blocks_aborted")
        setattr(accounts, name, getattr(accounts, name) + 1)
        # The error count is known once the block got through error correction: with key, or
        # verified and then aborted on a threshold (Alice's report exists), or failing
        # verification (Bob's count against a wrong word: still the best estimate there is).
        counted = outcome.status in ("key", "verify_failed") or outcome.report is not None
        if outcome.errors_corrected and counted:
            self._qber_prior = min(0.25, max(0.005, outcome.errors_corrected / len(side._bits)))
        elif outcome.status == "ec_failed":     # the prior was too low for the code: raise it
            self._qber_prior = min(0.25, 1.5 * self._qber_prior)
        if outcome.key is None:
            return
        key = outcome.key
        accounts.distilled_bits += key.size
        refill = self._refill_bits(key.size)
        if refill:
            self._channel.refill_bits(key[:refill])
            accounts.auth_refill_bits += refill
        rest = key[refill:]
        if rest.size and self._keystore is not None:
            self._keystore.store(outcome.block_id, rest)
        accounts.stored_bits += int(rest.size)

    def _refill_bits(self, available_bits: int) -> int:
        deficit = max(self._pool_target_bytes - self._channel.pad_bits_available(d) // 8
                      for d in (0, 1))
        usable = available_bits // 16 * 16
        return min(max(deficit, 0) * 16, usable)


def run_block(alice: DistillNode, bob: DistillNode, alice_input: BlockInput,
              bob_input: BlockInput, *,
              wire: Callable[[int, bytes], list[bytes]] | None = None,
              max_frames: int = 1_000_000) -> tuple[BlockOutcome, BlockOutcome]:
    """Run one block between two nodes in one process (in-memory, in-order channel).

    ``wire(direction, frame)`` may replace, drop, duplicate or reorder frames (tests); it
    returns the frames to deliver (direction 0: Alice to Bob).

    Raises
    ------
    ProtocolError
        If the nodes stall or exceed ``max_frames``.
    """
    to_alice = bob.begin_block(bob_input)
    to_bob = alice.begin_block(alice_input)
    deliver_until_quiet(to_bob, to_alice, alice.receive, bob.receive, limit=max_frames,
                        wire=wire)
    if not (alice.block_done and bob.block_done):
        raise ProtocolError("block stalled: no frame in flight but a side is not done")
    return alice.last_outcome, bob.last_outcome
