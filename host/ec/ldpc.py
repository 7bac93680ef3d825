"""Blind, rate-adaptive LDPC syndrome reconciliation (Martinez-Mateo, Elkouss, Martin 2012).

Alice splits her key into frames of ``n`` payload bits. Each frame is a word of an LDPC code of
``N = n + d`` variables and ``m`` checks (:mod:`.codes`): ``n`` key bits and ``d`` *punctured*
positions that Alice fills with secret random bits. With ``h = h(qber)``, ``m = f_max n h`` and
``d = (f_max - f_min) n h``, so the first attempt runs at efficiency ``f_min``. ``f_max``
defaults to 1.20 where ``h >= 0.25`` (QBER above about 4.2 %) and to 1.32 below, where the
codes need more margin.

Protocol:

1. Alice sends ``ldpc_syndromes``: the code description (public: a function of the public QBER
   estimate and key length), the ``m``-bit syndrome of every frame, and the confirmation
   parities.
2. Bob decodes each frame (layered sum-product; punctured bits start with zero LLR) and
   answers ``ldpc_status``: one bit per pending frame, set if the decoded word satisfies all
   checks.
3. For each failed frame Alice sends, in ``ldpc_reveal``, the values of the next ``d / steps``
   punctured bits (they become *shortened*: known to Bob). Bob decodes again. Steps 2-3 repeat
   until every frame decodes or all ``d`` bits are revealed.
4. *Rescue steps* (at most ``rescue_steps``): with all punctured bits revealed, Bob's status
   also lists, for each frame that still fails, up to ``rescue_checks`` of the checks his
   decoded word leaves unsatisfied; Alice reveals the values of every not yet known variable
   of those checks, and Bob decodes again. A frame stuck in a trapping set (a few unsatisfied
   checks that no amount of random revelation reaches) is freed by a few dozen bits.
   The last ``ldpc_status`` is ``final`` and says whether the confirmation parities matched.

Leakage per frame: ``m - d + revealed`` (revealed padding and key bits alike). The ``d`` secret
padding bits mask ``d`` syndrome bits because the punctured columns have full column rank
(untainted puncturing), and every revealed padding bit removes one bit of that mask. Bob's
status bits, his lists of checks (their full encoded length: a function of his key, so counted)
and the confirmation parities (both ways) are added. Frame padding for a key that does not fill
the last frame uses public zeros (shortened from the start), which leak nothing.
"""

from __future__ import annotations

import math
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from ..protocol import Message, ProtocolError
from . import ReconcilerSide, binary_entropy
from ._common import MAX_KEY_BITS, confirm_parities, expect_message, field_bits, field_int, pack
from .codes import MAX_CODE_VARS, LdpcCode, get_code

__all__ = ["LdpcOptions", "LdpcAlice", "LdpcBob", "FramePlan", "plan_frames", "decode_frame"]

#: LLR of known (shortened) bits: the decoder treats them as certain.
_KNOWN_LLR = 60.0
#: Iterations without fewer unsatisfied checks after which an attempt is abandoned.
_PATIENCE = 8
#: Automatic ``f_max`` (QBER above / below the entropy threshold) and that threshold.
_AUTO_F_MAX = (1.20, 1.32)
_AUTO_F_MAX_ENTROPY = 0.25
#: Random-subset parities of the whole key that Alice sends so that Bob can confirm success.
_CONFIRM_BITS = 32
#: Hard limits on the rescue steps (checked on both sides).
_MAX_RESCUE_STEPS = 16
_MAX_RESCUE_CHECKS = 255


@dataclass(frozen=True)
class LdpcOptions:
    """Blind LDPC parameters.

    Attributes
    ----------
    f_min, f_max
        Efficiency of the first attempt and of the last one (all punctured bits revealed).
        ``f_max=None`` picks it from the QBER (see :func:`plan_frames`).
    steps
        Revelation steps between ``f_min`` and ``f_max``.
    max_frame_bits
        Largest frame payload; longer keys are split into equal frames.
    min_frame_bits
        Smallest frame payload; shorter keys are padded with public zeros.
    max_iterations
        Decoder iterations per attempt (an attempt also stops when it stalls).
    warm_start
        Resume each new attempt from the decoder messages of the previous one.
    rescue_steps, rescue_checks
        Steps after all punctured bits are revealed in which Bob names up to
        ``rescue_checks`` unsatisfied checks per failing frame and Alice reveals their
        variables: the frame-error fallback (0 turns it off).
    code_seed
        Seed of the code construction (public; Alice announces it).
    private_seed
        Seed of Alice's secret padding bits. ``None`` (the default, and the only secure
        choice) draws them from the operating system; tests fix it for reproducibility.
    threads
        Frames Bob decodes at once (threads; the decoder releases the GIL). ``None`` uses
        every CPU the process may run on. The result does not depend on it.
    """

    f_min: float = 1.04
    f_max: float | None = None
    steps: int = 20
    max_frame_bits: int = 100_000
    min_frame_bits: int = 10_000
    max_iterations: int = 80
    warm_start: bool = True
    rescue_steps: int = 4
    rescue_checks: int = 16
    code_seed: int = 1
    private_seed: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        top = max(_AUTO_F_MAX) if self.f_max is None else self.f_max
        if not 0.5 <= self.f_min < top <= 4.0:
            raise ValueError(f"need 0.5 <= f_min < f_max <= 4, got {self.f_min}, {top}")
        if not 1 <= self.steps <= 64:
            raise ValueError(f"steps must be in [1, 64], got {self.steps}")
        if not 0 <= self.rescue_steps <= _MAX_RESCUE_STEPS:
            raise ValueError(f"rescue_steps must be in [0, {_MAX_RESCUE_STEPS}], "
                             f"got {self.rescue_steps}")
        if not 1 <= self.rescue_checks <= _MAX_RESCUE_CHECKS:
            raise ValueError(f"rescue_checks must be in [1, {_MAX_RESCUE_CHECKS}], "
                             f"got {self.rescue_checks}")
        if not 64 <= self.min_frame_bits <= self.max_frame_bits <= MAX_CODE_VARS // 2:
            raise ValueError("need 64 <= min_frame_bits <= max_frame_bits <= "
                             f"{MAX_CODE_VARS // 2}")
        if not 0 <= self.code_seed <= 0x7FFFFFFF:
            raise ValueError(f"code_seed must be in [0, 2**31), got {self.code_seed}")
        if not 1 <= self.max_iterations <= 1000:
            raise ValueError(f"max_iterations must be in [1, 1000], got {self.max_iterations}")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise ValueError(f"threads must be None or in [1, 256], got {self.threads}")


@dataclass(frozen=True)
class FramePlan:
    """How a key is cut into frames and which code carries them (all public)."""

    key_bits: int
    frames: int
    frame_bits: int
    n_checks: int
    punctured: int
    steps: int
    code_seed: int
    rescue_steps: int = 0
    rescue_checks: int = 1

    @property
    def n_vars(self) -> int:
        return self.frame_bits + self.punctured

    @property
    def last_step(self) -> int:
        """Number of revelation steps, punctured and rescue together."""
        return self.steps + self.rescue_steps

    @property
    def check_index_bits(self) -> int:
        """Bits that describe one check of a rescue list."""
        return max(1, (self.n_checks - 1).bit_length())

    @property
    def check_count_bits(self) -> int:
        """Bits that describe how many checks a rescue list holds."""
        return self.rescue_checks.bit_length()

    def reveal_counts(self) -> list[int]:
        """Punctured bits revealed at each step (they sum to ``punctured``)."""
        base, extra = divmod(self.punctured, self.steps)
        return [base + (1 if i < extra else 0) for i in range(self.steps)]



def plan_frames(key_bits: int, qber: float, options: LdpcOptions) -> FramePlan:
    """Frame and code parameters for a key of ``key_bits`` bits at ``qber``.

    ``f_max=None`` (default): 1.20 where ``h(qber) >= 0.25``, 1.32 below. At QBER 5-11 % the
    optimised codes need f <= 1.13 and less puncturing decodes better; at 1-2 % the
    {2, 3, D} codes need up to about 1.25.

    The QBER is rounded up to a multiple of 0.1 % so that nearby estimates share cached codes;
    the code seed is fixed (:attr:`LdpcOptions.code_seed`), not the per-block seed, so a link
    with a constant block size uses a handful of codes, built once.
    """
    frames = max(1, math.ceil(key_bits / options.max_frame_bits))
    frame_bits = max(options.min_frame_bits, math.ceil(key_bits / frames))
    qber = min(0.45, math.ceil(qber * 1000 - 1e-9) / 1000)
    h = binary_entropy(qber)
    f_max = options.f_max
    if f_max is None:
        f_max = _AUTO_F_MAX[0] if h >= _AUTO_F_MAX_ENTROPY else _AUTO_F_MAX[1]
        f_max = max(f_max, options.f_min + 0.05)
    n_checks = max(16, math.ceil(f_max * frame_bits * h))
    punctured = min(n_checks // 3, max(options.steps,
                                       math.ceil((f_max - options.f_min) *
                                                 frame_bits * h)))
    steps = min(options.steps, punctured)
    return FramePlan(key_bits, frames, frame_bits, n_checks, punctured, steps,
                     options.code_seed, options.rescue_steps, options.rescue_checks)


_PHI_SCALE = 256.0
_PHI_MAX = 30.0
#: phi(x) = -log(tanh(x/2)) sampled at the centres of steps of 1/256 on [0, 30).
_PHI_TABLE = (lambda x: np.log((np.exp(x) + 1.0) / np.expm1(x)))(
    (np.arange(int(_PHI_MAX * _PHI_SCALE)) + 0.5) / _PHI_SCALE).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _sum_product(row_ptr, col_idx, syndrome, llr, max_iter, patience, table, msg):
    """Layered sum-product in the phi form, ``phi`` tabulated.

    ``msg`` holds the check-to-variable messages and is updated in place, so a later call can
    resume from it (warm start after more bits become known). Stops when every check is
    satisfied or when the number of unsatisfied checks has not improved for ``patience``
    iterations. Returns (hard decision, iterations, satisfied).

    Signs are products of +-1 (``copysign``) rather than branches: a message's sign is close to
    a coin flip on unreliable bits, and the mispredicted branches cost about a quarter of the
    time (same messages bit for bit).
    """
    m = row_ptr.size - 1
    total = llr.copy()
    for t in range(col_idx.size):
        total[col_idx[t]] += msg[t]
    max_deg = 0
    for c in range(m):
        max_deg = max(max_deg, row_ptr[c + 1] - row_ptr[c])
    q = np.empty(max_deg, dtype=np.float32)
    f = np.empty(max_deg, dtype=np.float32)
    hard = np.zeros(llr.size, dtype=np.uint8)
    last = table.size - 1
    one = np.float32(1.0)
    zero = np.float32(0.0)
    best = m + 1
    since_best = 0
    for it in range(max_iter):
        for c in range(m):
            start = row_ptr[c]
            degree = row_ptr[c + 1] - start
            acc = zero
            sign = -one if syndrome[c] else one
            for k in range(degree):
                t = start + k
                value = total[col_idx[t]] - msg[t]
                q[k] = value
                sign *= math.copysign(one, value)
                magnitude = table[min(int(abs(value) * _PHI_SCALE), last)]
                f[k] = magnitude
                acc += magnitude
            for k in range(degree):
                t = start + k
                value = q[k]
                magnitude = table[min(int(max(acc - f[k], zero) * _PHI_SCALE), last)]
                out = math.copysign(magnitude, value) * sign
                msg[t] = out
                total[col_idx[t]] = value + out
        for v in range(llr.size):
            hard[v] = 1 if total[v] < 0 else 0
        unsatisfied = 0
        for c in range(m):
            s = syndrome[c]
            for t in range(row_ptr[c], row_ptr[c + 1]):
                s ^= hard[col_idx[t]]
            unsatisfied += s
        if unsatisfied == 0:
            return hard, it + 1, True
        if unsatisfied < best:
            best = unsatisfied
            since_best = 0
        else:
            since_best += 1
            if since_best >= patience:
                return hard, it + 1, False
    return hard, max_iter, False


def decode_frame(code: LdpcCode, syndrome: np.ndarray, llr: np.ndarray,
                 max_iterations: int = 80, messages: np.ndarray | None = None
                 ) -> tuple[np.ndarray, bool]:
    """Decode one word from its syndrome and per-bit LLRs (positive means 0).

    ``messages`` (float32, one per edge) carries the decoder state between calls; ``None``
    starts from scratch. Returns the hard decision and whether it satisfies every check.
    """
    if messages is None:
        messages = np.zeros(code.col_idx.size, dtype=np.float32)
    hard, _, ok = _sum_product(code.row_ptr, code.col_idx, syndrome.astype(np.uint8),
                               llr.astype(np.float32), max_iterations, _PATIENCE, _PHI_TABLE,
                               messages)
    return hard, bool(ok)


def _usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Frames:
    """Index bookkeeping shared by both sides: where key bits and punctured bits sit."""

    def __init__(self, plan: FramePlan) -> None:
        self.plan = plan
        try:
            self.code = get_code(plan.n_vars, plan.n_checks, plan.code_seed)
        except ValueError as error:
            raise ProtocolError(f"ldpc: unusable code parameters: {error}") from error
        if self.code.puncture_order.size < plan.punctured:
            raise ProtocolError(f"ldpc: code has {self.code.puncture_order.size} puncturable "
                                f"positions, {plan.punctured} requested")
        self.punctured = self.code.puncture_order[: plan.punctured]
        mask = np.ones(plan.n_vars, dtype=bool)
        mask[self.punctured] = False
        self.key_slots = np.flatnonzero(mask)

    def frame_words(self, key: np.ndarray) -> np.ndarray:
        """Key bits of each frame (rows), the last padded with zeros."""
        plan = self.plan
        padded = np.zeros(plan.frames * plan.frame_bits, dtype=np.uint8)
        padded[: key.size] = key
        return padded.reshape(plan.frames, plan.frame_bits)

    def pad_counts(self) -> np.ndarray:
        """Zero-padding bits (public, shortened) at the end of each frame."""
        plan = self.plan
        counts = np.zeros(plan.frames, dtype=np.int64)
        counts[-1] = plan.frames * plan.frame_bits - plan.key_bits
        return counts

    def rescue_variables(self, frame: int, checks: np.ndarray,
                         known: dict[int, np.ndarray]) -> np.ndarray:
        """Variables of ``checks`` that Bob does not know yet in ``frame``, in increasing order.

        ``known`` holds each side's per-frame mask (both sides keep one and update it the same
        way); a frame's mask starts, at its first rescue step, with what Bob knows then: every
        punctured bit and the zero padding. The returned variables are marked known.
        """
        mask = known.get(frame)
        if mask is None:
            mask = known[frame] = np.zeros(self.plan.n_vars, dtype=bool)
            mask[self.punctured] = True
            pad = int(self.pad_counts()[frame])
            if pad:
                mask[self.key_slots[self.plan.frame_bits - pad:]] = True
        code = self.code
        variables = np.unique(np.concatenate(
            [code.col_idx[code.row_ptr[c]:code.row_ptr[c + 1]] for c in checks]))
        variables = variables[~mask[variables]].astype(np.int64)
        mask[variables] = True
        return variables


def _pack_rescue_lists(lists: list[np.ndarray]) -> tuple[bytes, bytes]:
    """Bob's rescue lists as (one count byte per frame, little-endian uint32 check indices)."""
    counts = np.array([checks.size for checks in lists], dtype=np.uint8)
    indices = np.concatenate(lists).astype("<u4") if lists else np.zeros(0, "<u4")
    return counts.tobytes(), indices.tobytes()


def _unpack_rescue_lists(message: Message, frames: int, plan: FramePlan) -> list[np.ndarray]:
    """Check and split the rescue lists of ``frames`` failing frames.

    Raises
    ------
    ProtocolError
        If a count is zero or above ``rescue_checks``, the index bytes do not match the counts,
        or a frame's checks are not strictly increasing below ``n_checks``.
    """
    counts = np.frombuffer(message["target_counts"], dtype=np.uint8).astype(np.int64)
    if counts.size != frames:
        raise ProtocolError(f"ldpc_status lists checks for {counts.size} frames, "
                            f"{frames} failing")
    if np.any(counts < 1) or np.any(counts > plan.rescue_checks):
        raise ProtocolError(f"ldpc_status: a frame lists outside [1, {plan.rescue_checks}] "
                            "checks")
    raw = message["targets"]
    if len(raw) != 4 * int(counts.sum()):
        raise ProtocolError(f"ldpc_status field 'targets' has {len(raw)} bytes, "
                            f"{4 * int(counts.sum())} expected")
    indices = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    lists = np.split(indices, np.cumsum(counts)[:-1])
    for checks in lists:
        if checks[-1] >= plan.n_checks or np.any(np.diff(checks) <= 0):
            raise ProtocolError("ldpc_status: rescue checks must increase strictly and lie "
                                f"below {plan.n_checks}")
    return lists


def _rescue_list_bits(lists: list[np.ndarray], plan: FramePlan) -> int:
    """Disclosed bits of Bob's rescue lists: a count and the indices for each frame."""
    return sum(plan.check_count_bits + checks.size * plan.check_index_bits for checks in lists)


class LdpcAlice(ReconcilerSide):
    """Alice's side: sends syndromes, reveals punctured bits of frames Bob could not decode."""

    def __init__(self, key: np.ndarray, qber_estimate: float, *, seed: int,
                 options: LdpcOptions | None = None) -> None:
        if key.size > MAX_KEY_BITS:
            raise ValueError(f"key of {key.size} bits exceeds the {MAX_KEY_BITS}-bit limit")
        self._key = key.copy()
        self._seed = seed
        self._options = options or LdpcOptions()
        self._plan = plan_frames(key.size, qber_estimate, self._options)
        self._qber_ppm = min(499_999, max(1, round(qber_estimate * 1e6)))
        self._frames = _Frames(self._plan)
        private = self._options.private_seed
        rng = np.random.default_rng(secrets.randbits(128) if private is None else private)
        self._padding = rng.integers(0, 2, size=(self._plan.frames, self._plan.punctured),
                                     dtype=np.uint8)
        self._pending = np.arange(self._plan.frames)
        self._revealed = np.zeros(self._plan.frames, dtype=np.int64)
        self._known: dict[int, np.ndarray] = {}     # per frame, from the first rescue step
        self._corrected = None        # Alice cannot know how many bits Bob flips
        self._step = 0
        self._alice_bits = 0
        self._bob_bits = 0
        self._messages = 0
        self._done = False
        self._success = False

    def start(self) -> list[Message]:
        plan, frames = self._plan, self._frames
        words = np.zeros((plan.frames, plan.n_vars), dtype=np.uint8)
        words[:, frames.key_slots] = frames.frame_words(self._key)
        words[:, frames.punctured] = self._padding
        syndromes = np.stack([frames.code.syndrome(word) for word in words])
        confirm = confirm_parities(self._key, self._seed, _CONFIRM_BITS)
        self._alice_bits += plan.frames * (plan.n_checks - plan.punctured) + confirm.size
        self._messages += 1
        return [{"type": "ldpc_syndromes", "key_bits": plan.key_bits, "frames": plan.frames,
                 "frame_bits": plan.frame_bits, "n_checks": plan.n_checks,
                 "punctured": plan.punctured, "steps": plan.steps,
                 "rescue_steps": plan.rescue_steps, "rescue_checks": plan.rescue_checks,
                 "code_seed": plan.code_seed,
                 "qber_ppm": self._qber_ppm,
                 "syndromes": pack(syndromes.ravel()), "confirm": pack(confirm)}]

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("ldpc: message received after the end of the protocol")
        expect_message(message, "ldpc_status", {"step": int, "count": int, "ok": bytes,
                                                "final": bool, "confirmed": bool,
                                                "target_counts": bytes, "targets": bytes})
        if message["step"] != self._step:
            raise ProtocolError(f"ldpc_status for step {message['step']}, expected {self._step}")
        if message["count"] != self._pending.size:
            raise ProtocolError(f"ldpc_status covers {message['count']} frames, "
                                f"{self._pending.size} pending")
        plan = self._plan
        ok = field_bits(message, "ok", self._pending.size).astype(bool)
        pending = self._pending[~ok]
        final = pending.size == 0 or self._step >= plan.last_step
        if message["final"] != final:
            raise ProtocolError(f"ldpc_status final={message['final']}, expected {final}")
        rescue = not final and self._step >= plan.steps
        if rescue:
            lists = _unpack_rescue_lists(message, pending.size, plan)
        elif message["target_counts"] or message["targets"]:
            raise ProtocolError(f"ldpc_status lists rescue checks at step {self._step}")
        self._messages += 1
        self._bob_bits += ok.size
        self._pending = pending
        if final:
            self._bob_bits += 1
            self._success = self._pending.size == 0 and message["confirmed"]
            self._done = True
            return []
        if rescue:
            self._bob_bits += _rescue_list_bits(lists, plan)
            values = np.concatenate([self._rescue_values(frame, checks)
                                     for frame, checks in zip(pending, lists, strict=True)])
        else:
            count = plan.reveal_counts()[self._step]
            start = self._revealed[self._pending[0]]
            values = self._padding[self._pending, start:start + count]
            self._revealed[self._pending] += count
        self._alice_bits += values.size
        self._step += 1
        self._messages += 1
        return [{"type": "ldpc_reveal", "step": self._step, "count": int(self._pending.size),
                 "bits": pack(values.ravel())}]

    def _rescue_values(self, frame: int, checks: np.ndarray) -> np.ndarray:
        """Values of the not yet known variables of ``checks`` in ``frame``'s word."""
        frames = self._frames
        variables = frames.rescue_variables(frame, checks, self._known)
        word = np.zeros(self._plan.n_vars, dtype=np.uint8)
        word[frames.key_slots] = frames.frame_words(self._key)[frame]
        word[frames.punctured] = self._padding[frame]
        return word[variables]



class LdpcBob(ReconcilerSide):
    """Bob's side: decodes each frame from Alice's syndrome, asks for more bits when it fails."""

    def __init__(self, key: np.ndarray, *, seed: int, options: LdpcOptions | None = None) -> None:
        if key.size > MAX_KEY_BITS:
            raise ValueError(f"key of {key.size} bits exceeds the {MAX_KEY_BITS}-bit limit")
        self._key = key.copy()
        self._seed = seed
        self._options = options or LdpcOptions()
        self._plan: FramePlan | None = None
        self._frames: _Frames | None = None
        self._step = 0
        self._alice_bits = 0
        self._bob_bits = 0
        self._messages = 0
        self._corrected = 0
        self._done = False
        self._success = False

    def start(self) -> list[Message]:
        return []

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("ldpc: message received after the end of the protocol")
        if self._plan is None:
            return self._receive_syndromes(message)
        return self._receive_reveal(message)

    def _receive_syndromes(self, message: Message) -> list[Message]:
        expect_message(message, "ldpc_syndromes", {
            "key_bits": int, "frames": int, "frame_bits": int, "n_checks": int,
            "punctured": int, "steps": int, "rescue_steps": int, "rescue_checks": int,
            "code_seed": int, "qber_ppm": int, "syndromes": bytes, "confirm": bytes})
        key_bits = field_int(message, "key_bits", self._key.size, self._key.size)
        frame_bits = field_int(message, "frame_bits", 1, MAX_CODE_VARS // 2)
        frames = field_int(message, "frames", 1, MAX_KEY_BITS)
        if frames != max(1, math.ceil(key_bits / frame_bits)) or frames * frame_bits < key_bits:
            raise ProtocolError(f"ldpc_syndromes: {frames} frames of {frame_bits} bits do not "
                                f"fit a {key_bits}-bit key")
        n_checks = field_int(message, "n_checks", 2, frame_bits)
        punctured = field_int(message, "punctured", 1, n_checks - 1)
        steps = field_int(message, "steps", 1, min(64, punctured))
        code_seed = field_int(message, "code_seed", 0, 0x7FFFFFFF)
        rescue_steps = field_int(message, "rescue_steps", 0, _MAX_RESCUE_STEPS)
        rescue_checks = field_int(message, "rescue_checks", 1, _MAX_RESCUE_CHECKS)
        plan = FramePlan(key_bits, frames, frame_bits, n_checks, punctured, steps, code_seed,
                         rescue_steps, rescue_checks)
        syndromes = field_bits(message, "syndromes", frames * n_checks)
        self._confirm = field_bits(message, "confirm", _CONFIRM_BITS)
        self._frames = _Frames(plan)
        self._plan = plan
        self._syndromes = syndromes.reshape(frames, n_checks)
        self._known_padding = np.zeros((frames, punctured), dtype=np.uint8)
        self._revealed = 0
        self._known: dict[int, np.ndarray] = {}        # per frame, from the first rescue step
        self._rescue_asked: dict[int, np.ndarray] = {}  # variables asked for, per frame
        self._rescued: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # (variables, values)
        self._pending = np.arange(frames)
        self._decoded = self._frames.frame_words(self._key).copy()
        self._messages_state: dict[int, np.ndarray] = {}
        self._alice_bits += frames * (n_checks - punctured) + _CONFIRM_BITS
        qber = field_int(message, "qber_ppm", 1, 499_999) / 1e6
        self._key_llr = np.float32(np.log((1.0 - qber) / qber))
        self._messages += 1
        return [self._decode_pending()]

    def _receive_reveal(self, message: Message) -> list[Message]:
        plan = self._plan
        expect_message(message, "ldpc_reveal", {"step": int, "count": int, "bits": bytes})
        if message["step"] != self._step:
            raise ProtocolError(f"ldpc_reveal for step {message['step']}, expected {self._step}")
        if message["count"] != self._pending.size:
            raise ProtocolError(f"ldpc_reveal covers {message['count']} frames, "
                                f"{self._pending.size} pending")
        if self._step <= plan.steps:
            count = plan.reveal_counts()[self._step - 1]
            values = field_bits(message, "bits", self._pending.size * count)
            self._known_padding[self._pending, self._revealed:self._revealed + count] = \
                values.reshape(self._pending.size, count)
            self._revealed += count
        else:
            asked = [self._rescue_asked[frame] for frame in self._pending]
            sizes = [variables.size for variables in asked]
            values = field_bits(message, "bits", sum(sizes))
            parts = np.split(values, np.cumsum(sizes)[:-1])
            for frame, variables, part in zip(self._pending, asked, parts, strict=True):
                old_vars, old_values = self._rescued.get(frame, (variables[:0], part[:0]))
                self._rescued[frame] = (np.concatenate([old_vars, variables]),
                                        np.concatenate([old_values, part]))
            self._rescue_asked = {}
        self._alice_bits += values.size
        self._messages += 1
        return [self._decode_pending()]

    def _frame_llr(self, frame: int, words: np.ndarray, pads: np.ndarray) -> np.ndarray:
        """Bob's channel LLRs of ``frame``: key bits from the QBER, known bits certain."""
        plan, frames = self._plan, self._frames
        llr = np.empty(plan.n_vars, dtype=np.float32)
        key_llr = np.where(words[frame] == 0, self._key_llr, -self._key_llr)
        if pads[frame]:
            key_llr[plan.frame_bits - pads[frame]:] = _KNOWN_LLR
        llr[frames.key_slots] = key_llr
        llr[frames.punctured] = 0.0
        known = self._known_padding[frame, :self._revealed]
        llr[frames.punctured[:self._revealed]] = np.where(known == 0, _KNOWN_LLR, -_KNOWN_LLR)
        if frame in self._rescued:
            variables, values = self._rescued[frame]
            llr[variables] = np.where(values == 0, _KNOWN_LLR, -_KNOWN_LLR)
        return llr

    def _decode_all(self, pending: np.ndarray) -> list[tuple[np.ndarray, bool]]:
        """Decode the ``pending`` frames, several at once when threads are allowed.

        Each job builds its frame's LLRs itself, so memory grows with the threads, not with
        the frames; the warm-start messages are looked up before the threads start.
        """
        code, limit = self._frames.code, self._options.max_iterations
        words = self._frames.frame_words(self._key)
        pads = self._frames.pad_counts()
        states: list[np.ndarray | None] = []
        for frame in pending:
            state = None
            if self._options.warm_start:
                state = self._messages_state.get(frame)
                if state is None:
                    state = np.zeros(code.col_idx.size, dtype=np.float32)
                    self._messages_state[frame] = state
            states.append(state)

        def decode(i: int) -> tuple[np.ndarray, bool]:
            frame = pending[i]
            return decode_frame(code, self._syndromes[frame],
                                self._frame_llr(frame, words, pads), limit, states[i])

        threads = min(len(pending), self._options.threads or _usable_cpus())
        if threads <= 1:
            return [decode(i) for i in range(len(pending))]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(decode, range(len(pending))))

    def _decode_pending(self) -> Message:
        plan, frames = self._plan, self._frames
        ok = np.zeros(self._pending.size, dtype=np.uint8)
        step = self._step
        # After this status, is the next step a rescue step (Alice answers a list of checks)?
        rescue_next = plan.steps <= step < plan.last_step
        lists: dict[int, np.ndarray] = {}
        decoded = self._decode_all(self._pending)
        for i, (frame, (hard, success)) in enumerate(zip(self._pending, decoded, strict=True)):
            if success:
                self._messages_state.pop(frame, None)
                ok[i] = 1
                self._decoded[frame] = hard[frames.key_slots]
            elif rescue_next:
                unsatisfied = np.flatnonzero(frames.code.syndrome(hard) ^ self._syndromes[frame])
                lists[frame] = unsatisfied[:plan.rescue_checks]
        self._bob_bits += ok.size
        self._pending = self._pending[ok == 0]
        final = self._pending.size == 0 or step >= plan.last_step
        target_counts = targets = b""
        if not final and rescue_next:
            ordered = [lists[frame] for frame in self._pending]
            target_counts, targets = _pack_rescue_lists(ordered)
            self._bob_bits += _rescue_list_bits(ordered, plan)
            for frame, checks in zip(self._pending, ordered, strict=True):
                self._rescue_asked[frame] = frames.rescue_variables(frame, checks, self._known)
        confirmed = False
        if final:
            self._done = True
            self._bob_bits += 1
            key = self._decoded.ravel()[: plan.key_bits]
            self._corrected = int(np.count_nonzero(key != self._key))
            self._key = key.copy()
            confirmed = bool(np.array_equal(
                confirm_parities(self._key, self._seed, _CONFIRM_BITS), self._confirm))
            self._success = self._pending.size == 0 and confirmed
        else:
            self._step += 1
        self._messages += 1
        return {"type": "ldpc_status", "step": step, "count": int(ok.size), "ok": pack(ok),
                "final": final, "confirmed": confirmed, "target_counts": target_counts,
                "targets": targets}

