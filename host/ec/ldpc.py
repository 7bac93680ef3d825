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
   until every frame decodes or all ``d`` bits are revealed; the last ``ldpc_status`` is
   ``final`` and says whether the confirmation parities matched.

Leakage per frame: ``m - d + revealed``. The ``d`` secret padding bits mask ``d`` syndrome bits
because the punctured columns have full column rank (untainted puncturing), and every revealed
padding bit removes one bit of that mask. Bob's status bits and the confirmation parities (both
ways) are added. Frame padding for a key that does not fill the last frame uses public zeros
(shortened from the start), which leak nothing.
"""

from __future__ import annotations

import math
import secrets
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
    code_seed
        Seed of the code construction (public; Alice announces it).
    private_seed
        Seed of Alice's secret padding bits. ``None`` (the default, and the only secure
        choice) draws them from the operating system; tests fix it for reproducibility.
    """

    f_min: float = 1.04
    f_max: float | None = None
    steps: int = 20
    max_frame_bits: int = 100_000
    min_frame_bits: int = 10_000
    max_iterations: int = 80
    warm_start: bool = True
    code_seed: int = 1
    private_seed: int | None = None

    def __post_init__(self) -> None:
        top = max(_AUTO_F_MAX) if self.f_max is None else self.f_max
        if not 0.5 <= self.f_min < top <= 4.0:
            raise ValueError(f"need 0.5 <= f_min < f_max <= 4, got {self.f_min}, {top}")
        if not 1 <= self.steps <= 64:
            raise ValueError(f"steps must be in [1, 64], got {self.steps}")
        if not 64 <= self.min_frame_bits <= self.max_frame_bits <= MAX_CODE_VARS // 2:
            raise ValueError("need 64 <= min_frame_bits <= max_frame_bits <= "
                             f"{MAX_CODE_VARS // 2}")
        if not 0 <= self.code_seed <= 0x7FFFFFFF:
            raise ValueError(f"code_seed must be in [0, 2**31), got {self.code_seed}")
        if not 1 <= self.max_iterations <= 1000:
            raise ValueError(f"max_iterations must be in [1, 1000], got {self.max_iterations}")


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

    @property
    def n_vars(self) -> int:
        return self.frame_bits + self.punctured

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
                     options.code_seed)


_PHI_SCALE = 256.0
_PHI_MAX = 30.0
#: phi(x) = -log(tanh(x/2)) sampled at the centres of steps of 1/256 on [0, 30).
_PHI_TABLE = (lambda x: np.log((np.exp(x) + 1.0) / np.expm1(x)))(
    (np.arange(int(_PHI_MAX * _PHI_SCALE)) + 0.5) / _PHI_SCALE).astype(np.float32)


@numba.njit(cache=True, inline="always")
def _phi(table, x):
    i = int(x * _PHI_SCALE)
    if i >= table.size:
        i = table.size - 1
    return table[i]


@numba.njit(cache=True)
def _sum_product(row_ptr, col_idx, syndrome, llr, max_iter, patience, table, msg):
    """Layered sum-product in the phi form, ``phi`` tabulated.

    ``msg`` holds the check-to-variable messages and is updated in place, so a later call can
    resume from it (warm start after more bits become known). Stops when every check is
    satisfied or when the number of unsatisfied checks has not improved for ``patience``
    iterations. Returns (hard decision, iterations, satisfied).
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
    best = m + 1
    since_best = 0
    for it in range(max_iter):
        for c in range(m):
            start = row_ptr[c]
            stop = row_ptr[c + 1]
            acc = np.float32(0.0)
            negative = syndrome[c]
            for t in range(start, stop):
                value = total[col_idx[t]] - msg[t]
                q[t - start] = value
                if value < 0:
                    negative ^= 1
                f[t - start] = _phi(table, abs(value))
                acc += f[t - start]
            for t in range(start, stop):
                value = q[t - start]
                mag = _phi(table, max(acc - f[t - start], np.float32(0.0)))
                neg = negative ^ (1 if value < 0 else 0)
                out = -mag if neg else mag
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
                 "punctured": plan.punctured, "steps": plan.steps, "code_seed": plan.code_seed,
                 "qber_ppm": self._qber_ppm,
                 "syndromes": pack(syndromes.ravel()), "confirm": pack(confirm)}]

    def receive(self, message: Message) -> list[Message]:
        if self._done:
            raise ProtocolError("ldpc: message received after the end of the protocol")
        expect_message(message, "ldpc_status", {"step": int, "count": int, "ok": bytes,
                                                "final": bool, "confirmed": bool})
        if message["step"] != self._step:
            raise ProtocolError(f"ldpc_status for step {message['step']}, expected {self._step}")
        if message["count"] != self._pending.size:
            raise ProtocolError(f"ldpc_status covers {message['count']} frames, "
                                f"{self._pending.size} pending")
        ok = field_bits(message, "ok", self._pending.size).astype(bool)
        self._messages += 1
        self._bob_bits += ok.size
        self._pending = self._pending[~ok]
        exhausted = self._step >= self._plan.steps
        final = self._pending.size == 0 or exhausted
        if message["final"] != final:
            raise ProtocolError(f"ldpc_status final={message['final']}, expected {final}")
        if final:
            self._bob_bits += 1
            self._success = self._pending.size == 0 and message["confirmed"]
            self._done = True
            return []
        counts = self._plan.reveal_counts()
        count = counts[self._step]
        start = self._revealed[self._pending[0]]
        values = self._padding[self._pending, start:start + count]
        self._revealed[self._pending] += count
        self._alice_bits += values.size
        self._step += 1
        self._messages += 1
        return [{"type": "ldpc_reveal", "step": self._step, "count": int(self._pending.size),
                 "bits": pack(values.ravel())}]



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
            "punctured": int, "steps": int, "code_seed": int, "qber_ppm": int,
            "syndromes": bytes, "confirm": bytes})
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
        plan = FramePlan(key_bits, frames, frame_bits, n_checks, punctured, steps, code_seed)
        syndromes = field_bits(message, "syndromes", frames * n_checks)
        self._confirm = field_bits(message, "confirm", _CONFIRM_BITS)
        self._frames = _Frames(plan)
        self._plan = plan
        self._syndromes = syndromes.reshape(frames, n_checks)
        self._known = np.zeros((frames, punctured), dtype=np.uint8)
        self._revealed = 0
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
        count = plan.reveal_counts()[self._step - 1]
        values = field_bits(message, "bits", self._pending.size * count)
        self._known[self._pending, self._revealed:self._revealed + count] = \
            values.reshape(self._pending.size, count)
        self._revealed += count
        self._alice_bits += values.size
        self._messages += 1
        return [self._decode_pending()]

    def _decode_pending(self) -> Message:
        plan, frames = self._plan, self._frames
        words = frames.frame_words(self._key)
        pads = frames.pad_counts()
        ok = np.zeros(self._pending.size, dtype=np.uint8)
        for i, frame in enumerate(self._pending):
            llr = np.empty(plan.n_vars, dtype=np.float32)
            key_llr = np.where(words[frame] == 0, self._key_llr, -self._key_llr)
            if pads[frame]:
                key_llr[plan.frame_bits - pads[frame]:] = _KNOWN_LLR
            llr[frames.key_slots] = key_llr
            llr[frames.punctured] = 0.0
            known = self._known[frame, :self._revealed]
            llr[frames.punctured[:self._revealed]] = np.where(known == 0, _KNOWN_LLR,
                                                              -_KNOWN_LLR)
            if self._options.warm_start:
                state = self._messages_state.get(frame)
                if state is None:
                    state = np.zeros(frames.code.col_idx.size, dtype=np.float32)
                    self._messages_state[frame] = state
            else:
                state = None
            hard, success = decode_frame(frames.code, self._syndromes[frame], llr,
                                         self._options.max_iterations, state)
            if success:
                self._messages_state.pop(frame, None)
                ok[i] = 1
                self._decoded[frame] = hard[frames.key_slots]
        self._bob_bits += ok.size
        step = self._step
        self._pending = self._pending[ok == 0]
        final = self._pending.size == 0 or step >= plan.steps
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
                "final": final, "confirmed": confirmed}

