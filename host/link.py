"""The QKD link: Alice's and Bob's nodes, Bob's receiver station, bring-up and the run loop.

Two node objects share nothing but frames of one :class:`~tbqkd.host.auth.AuthenticatedChannel`
(sans-I/O: frames in, frames out; :func:`exchange` carries them in one process, ``tbqkd node``
over TCP). Per step of link time::

    Bob                                         Alice
    the core tags, classifies, announces
    announce (batch, slots, bases)      ->      her basis per slot; keeps her sifted Z bits
                                        <-      answer (batch, bases)
    answers into the core; it sifts during the next step (sifted Z, X error-signal windows)
    ...
    block_ready (batches, n_z, X stats) ->      both run one distillation block
    <> block_start, ec, verify, pa, ack         (tbqkd.host.distill), keys into the stores

``announce`` and ``answer`` travel with deferred tags: each side's next ordinary frame
(``block_ready`` for Bob, ``block_start`` for Alice) authenticates all of them, so one tag
covers a block's sifting and no key is derived from an unverified transcript.

Bob's hardware and optics are a :class:`Station` (the twin with the Verilator or model backend
in :mod:`tbqkd.sim.station`, or a PYNQ board). :func:`bring_up` calibrates the receiver through
its live data (TDC code density, histograms → delays and windows, reference alignment).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tbqkd.hdl.records import Basis, Role

from .auth import AuthenticatedChannel
from .calibration import Calibration, apply_calibration, calibrate_windows
from .distill import BlockInput, BlockOutcome, DistillConfig, DistillNode, XStatistics
from .feedback import PhaseController
from .keystore import KeyStore
from .protocol import Message, ProtocolError, deliver_until_quiet, pack_bits, unpack_bits
from .receiver import ReceiverInterface
from .slot_code import pack_slots, unpack_slots
from .slot_sync import (
    STATE_BASIS,
    STATE_BIT,
    SYNC_MIN_COMPARED,
    SYNC_SAMPLE_DETECTIONS,
    SyncResult,
    SyncSample,
    find_slot_offset,
)
from .tagger import TaggerInterface, decode_tags
from .tdc_calibration import CalibrationError, code_density

__all__ = ["LinkError", "LinkSettings", "Station", "StepData", "AliceNode", "BobNode",
           "exchange", "bring_up", "BringUp", "STATE_BASIS", "STATE_BIT"]

_logger = logging.getLogger(__name__)

#: Phase-error windows of this many sifted X events: fine enough to split them between steps.
PHASE_WINDOW_EVENTS = 16


class LinkError(ProtocolError):
    """The link cannot go on: bring-up failed, or the core and the host disagree."""


@dataclass(frozen=True)
class LinkSettings:
    """What both nodes agree on before the link starts.

    ``z_pulse_fraction`` is the share of slots Alice prepares in the Z basis: the multi-photon
    bound of the key length counts every multi-photon pulse she prepared in Z. Bob's basis
    split is passive, so it does not thin them out: Eve can send a multi-photon pulse on as
    several photons, one of which then reaches the Z detector almost surely.
    """

    block_bits: int = 1_000_000        # sifted Z bits per distillation block (closed at a batch)
    min_block_bits: int = 20_000       # the last, partial block is distilled if this long
    z_pulse_fraction: float = 0.8      # Alice's P(Z): her Z-basis pulses per slot
    divider: int = 65_536              # slots per reference pulse
    sync_search: int = 2               # Bob's slot 0 is known to ± this many reference pulses

    def __post_init__(self) -> None:
        if self.block_bits < 1 or self.min_block_bits < 1:
            raise ValueError("block sizes must be positive")
        if not 0 < self.z_pulse_fraction <= 1:
            raise ValueError("z_pulse_fraction must be in (0, 1]")
        if self.divider < 1:
            raise ValueError("divider must be positive")
        if self.sync_search < 0:
            raise ValueError("sync_search must not be negative")


@dataclass
class StepData:
    """What one step of link time delivered at Bob's station."""

    link_time_s: float                 # at the end of the step
    duration_s: float
    detections: int                    # detector clicks (reference excluded)
    slots: int                         # Alice's pulse slots the step spans
    true_phase_rad: float | None = None  # simulation only: the interferometer phase


class Station(ABC):
    """Bob's receiver: the core behind a :class:`ReceiverInterface`, and the optics feeding it."""

    receiver: ReceiverInterface
    tagger: TaggerInterface

    @abstractmethod
    def advance(self) -> StepData:
        """Let one step of link time pass; the core tags and classifies what arrives.

        Raises
        ------
        StopIteration
            When the link time of the run is over.
        """

    @abstractmethod
    def finish(self) -> None:
        """Let the core work off what is queued (answers, partial frames) at the end."""

    @abstractmethod
    def gate_detectors(self, gated: bool) -> None:
        """Switch the single-photon detectors off (``True``) or on, e.g. by their bias.

        The bring-up calibrates the reference channel's TDC with the detectors off.
        """

    @abstractmethod
    def apply_dac(self) -> None:
        """The DAC value just written to the core reaches the phase shifter.

        On hardware the core drives the DAC itself (nothing to do); a simulated station hands
        the value to the twin.
        """

    @property
    @abstractmethod
    def time_base_ps(self) -> int:
        """Bob's time (core time base, ps) at link time 0."""


# --- wire encoding of the sifting batches (slots: tbqkd.host.slot_code) -------------------
def _bases(data: bytes, count: int) -> np.ndarray:
    if len(data) != -(-count // 8):
        raise ProtocolError(f"{len(data)} basis bytes for {count} slots")
    return unpack_bits(data, count)


# --- the nodes --------------------------------------------------------------------------
class _Node:
    def __init__(self, role: str, channel: AuthenticatedChannel, config: DistillConfig,
                 keystore: KeyStore | None, **distill_options) -> None:
        self.role = role
        self.channel = channel
        self.distill = DistillNode(role, channel, config, keystore=keystore, **distill_options)
        self.outcomes: list[BlockOutcome] = []
        self.rejected_frames = 0

    def _open(self, frame: bytes) -> Message | None:
        try:
            return self.channel.open(frame)
        except ProtocolError as error:
            self.rejected_frames += 1
            _logger.warning("%s: rejected frame: %s", self.role, error)
            self._after_reject(error)
            return None

    def _after_reject(self, error: Exception) -> None:
        self._pending_out = self.distill.reject(error)

    def _distill(self, message: Message) -> list[bytes]:
        frames = self.distill.handle(message)
        self._note_outcome()
        return frames

    def _note_outcome(self) -> None:
        outcome = self.distill.last_outcome
        if outcome is not None and (not self.outcomes or self.outcomes[-1] is not outcome):
            self.outcomes.append(outcome)


class AliceNode(_Node):
    """Alice: answers Bob's announcements with her bases and distils blocks with him.

    ``states(slots)`` gives her state (0 |e>, 1 |l>, 2 |+>, 3 |->) for each of her slots: her
    transmitter's record of what it sent (the twin's Alice in simulation). Bob's ``sync``
    sample must give ``sync_min_compared`` comparisons at the offset she accepts
    (:func:`tbqkd.host.slot_sync.find_slot_offset`).
    """

    def __init__(self, channel: AuthenticatedChannel, config: DistillConfig,
                 states: Callable[[np.ndarray], np.ndarray], *, keystore: KeyStore | None = None,
                 sync_min_compared: int = SYNC_MIN_COMPARED, **distill_options) -> None:
        super().__init__("alice", channel, config, keystore, **distill_options)
        self._states = states
        self._sync_min_compared = sync_min_compared
        self._slot_offset: int | None = None
        self.sync_result: SyncResult | None = None
        self._bits: dict[int, np.ndarray] = {}     # batch -> her sifted Z bits
        self._next_batch = 0
        self._first_open_batch = 0
        self.discarded_bits = 0      # sifted bits of blocks Bob closed but that never started

    def receive(self, frame: bytes) -> list[bytes]:
        """Consume one frame from Bob; return the frames to send back."""
        self._pending_out: list[bytes] = []
        message = self._open(frame)
        if message is None:
            return self._pending_out
        kind = message["type"]
        try:
            if kind == "sync":
                return [self._sync(message)]
            if kind == "announce":
                try:
                    return [self._answer(message)]
                except ProtocolError as error:
                    return [self._refuse(message, error)]
            if kind == "block_ready":
                return self._begin_block(message)
        except ProtocolError as error:
            _logger.warning("alice: %s", error)
            self.rejected_frames += 1
            return self.distill.abort_block(str(error))
        return self._distill(message)

    def _sync(self, message: Message) -> bytes:
        """Find the slot offset from Bob's sample; until one is found, announcements fail."""
        count = message["count"]
        slots = unpack_slots(message["first_slot"], message["slots"], count)
        bits = _bases(message["bits"], count)
        try:
            result = find_slot_offset(self._states, slots, bits,
                                      nominal=message["slot_offset"],
                                      divider=message["divider"], search=message["search"],
                                      min_compared=self._sync_min_compared)
        except ValueError as error:
            raise ProtocolError(f"sync: {error}") from None
        self.sync_result = result
        self._slot_offset = result.slot_offset if result.found else None
        if result.found:
            _logger.info("alice: slot offset %d (%d of %d sample bits differ, %d candidates)",
                         result.slot_offset, result.errors, result.compared, result.tried)
            if 0.0 < message["qber_estimate"] < 0.5 and not self.outcomes:
                self.distill.set_qber_prior(message["qber_estimate"])
        else:
            _logger.warning("alice: slot synchronisation failed: %s", result.reason)
        return self.channel.seal({"type": "sync_result", "found": result.found,
                                  "slot_offset": int(result.slot_offset),
                                  "compared": result.compared, "errors": result.errors,
                                  "reason": result.reason})

    def _answer(self, message: Message) -> bytes:
        if self._slot_offset is None:
            raise ProtocolError("announce before sync")
        batch, count = message["batch"], message["count"]
        if batch != self._next_batch:
            raise ProtocolError(f"announce of batch {batch}, expected {self._next_batch}")
        slots = unpack_slots(message["first_slot"], message["slots"], count)
        bob_basis = _bases(message["bases"], count)
        states = np.asarray(self._states(slots + self._slot_offset), dtype=np.int64)
        if states.shape != slots.shape or ((states < 0) | (states > 3)).any():
            raise ProtocolError("no state recorded for some announced slots")
        basis = STATE_BASIS[states]
        keep = (basis == Basis.Z) & (bob_basis == Basis.Z)
        self._bits[batch] = STATE_BIT[states[keep]]
        self._next_batch += 1
        return self.channel.seal({"type": "answer", "batch": batch, "count": count,
                                  "bases": pack_bits(basis)}, deferred=True)

    def _refuse(self, message: Message, error: ProtocolError) -> bytes:
        """An announcement Alice cannot use: answer it with no bases; the batch yields nothing."""
        batch = message["batch"]
        if batch != self._next_batch:
            raise error
        _logger.warning("alice: batch %d refused: %s", batch, error)
        self.rejected_frames += 1
        self._bits[batch] = np.zeros(0, np.uint8)
        self._next_batch += 1
        return self.channel.seal({"type": "answer", "batch": batch, "count": 0, "bases": b""},
                                 deferred=True)

    def _begin_block(self, message: Message) -> list[bytes]:
        first, end = message["first_batch"], message["end_batch"]
        if first < self._first_open_batch or not first < end <= self._next_batch:
            raise ProtocolError(f"block of batches [{first}, {end}) does not follow "
                                f"[.., {self._first_open_batch}) / {self._next_batch} answered")
        for batch in range(self._first_open_batch, first):   # a block that failed to start
            self.discarded_bits += self._bits.pop(batch).size
        bits = [self._bits.pop(b) for b in range(first, end)]
        self._first_open_batch = end
        sifted = np.concatenate(bits) if bits else np.zeros(0, np.uint8)
        if sifted.size != message["n_z"]:
            raise ProtocolError(f"Bob has {message['n_z']} sifted Z bits in batches "
                                f"[{first}, {end}), Alice {sifted.size}: sifting out of step")
        block = BlockInput(message["block_id"], sifted,
                           XStatistics(message["n_x"], message["e_x"]), message["pulses"])
        frames = self.distill.begin_block(block)
        self._note_outcome()
        return frames


@dataclass
class _Batch:
    seq: np.ndarray
    slot: np.ndarray
    basis: np.ndarray
    slots_spanned: int
    alice: np.ndarray | None = None
    sifted_expected: int = -1


@dataclass
class BobTotals:
    """Running totals at Bob (counts since the start of sifting)."""

    detections: int = 0
    announcements: int = 0
    sifted_z: int = 0
    sifted_x: int = 0
    x_errors: int = 0
    slots: int = 0
    mismatched_batches: int = 0
    refused_batches: int = 0


class BobNode(_Node):
    """Bob: drives the station step by step, sifts with Alice, closes blocks, runs feedback."""

    def __init__(self, channel: AuthenticatedChannel, config: DistillConfig, station: Station,
                 settings: LinkSettings, *, slot_offset: int, sync_sample: SyncSample,
                 qber_estimate: float = 0.0,
                 controller: PhaseController | None = None, keystore: KeyStore | None = None,
                 **distill_options) -> None:
        super().__init__("bob", channel, config, keystore, **distill_options)
        self.station = station
        self.settings = settings
        self.controller = controller
        self.totals = BobTotals()
        self._slot_offset = slot_offset
        self._sync_sample = sync_sample
        self.sync_result: Message | None = None     # Alice's ``sync_result`` once found
        self._qber_estimate = float(qber_estimate)
        self._batch = 0
        self._awaiting: deque[int] = deque()      # batches announced, not answered
        self._batches: dict[int, _Batch] = {}
        self._answered: deque[int] = deque()       # answered, sifted records not all read
        self._sifted: dict[int, np.ndarray] = {}   # batch -> Bob's sifted bits (complete)
        self._x_stats: dict[int, list[int]] = {}   # batch -> [x_sifted, x_errors]
        # (batch, last slot) of the latest batches: X windows close at most two steps late
        self._slot_ranges: deque[tuple[int, int]] = deque(maxlen=8)
        self._ready_bits = 0                       # complete sifted bits not in a block
        self._sifted_buffer = {"slot": np.zeros(0, np.uint64), "bit": np.zeros(0, np.uint64)}
        self._first_open_batch = 0
        self._block_id = 0
        self._window_x = [0, 0]
        self._window_steps = 0
        self._issued_code: int | None = None
        self._batch_code: dict[int, int | None] = {}
        self.feedback_window_steps = 1
        self.step_metrics: dict = {}
        self.block_inputs: dict[int, tuple[int, int, int]] = {}   # id -> (n_z, n_x, e_x)

    def start(self) -> list[bytes]:
        """The frames that open the link: the nominal slot offset, the sample Alice finds the
        true one with (:mod:`tbqkd.host.slot_sync`) and the QBER estimate."""
        sample = self._sync_sample
        first, packed = pack_slots(sample.slots)
        return [self.channel.seal({"type": "sync", "slot_offset": int(self._slot_offset),
                                   "divider": self.settings.divider,
                                   "search": self.settings.sync_search,
                                   "qber_estimate": self._qber_estimate,
                                   "count": len(sample), "first_slot": first, "slots": packed,
                                   "bits": pack_bits(np.asarray(sample.bits, np.uint8))})]

    @property
    def slot_offset(self) -> int:
        """Alice's slot = Bob's + this (Alice's finding once she answered the sync)."""
        return self._slot_offset

    # --- one step ---------------------------------------------------------------------
    def step(self) -> list[bytes]:
        """Let one step of link time pass; return the announcement for Alice.

        Raises
        ------
        StopIteration
            When the station's link time is over.
        LinkError
            If the core's sifted records disagree with what the bases say.
        """
        if self.sync_result is None:
            raise LinkError("no slot synchronisation yet: carry start()'s frames to Alice first")
        if self._awaiting:
            raise ProtocolError(f"batch {self._awaiting[0]} not answered yet")
        step = self.station.advance()
        rx = self.receiver
        self.totals.detections += step.detections
        self.totals.slots += step.slots
        before = (self.totals.sifted_z, self.totals.sifted_x, self.totals.x_errors)
        self._collect()
        ann = rx.read_announcements()
        batch = self._batch
        self._batch += 1
        slots = ann["slot"].astype(np.int64)
        self._batches[batch] = _Batch(ann["seq"], ann["slot"], ann["basis"].astype(np.uint8),
                                      step.slots)
        self._x_stats.setdefault(batch, [0, 0])
        last = int(slots[-1]) if slots.size else (self._slot_ranges[-1][1]
                                                    if self._slot_ranges else -1)
        self._slot_ranges.append((batch, last))
        self.totals.announcements += slots.size
        self._awaiting.append(batch)
        self._batch_code[batch] = self._issued_code
        self._feedback_step(batch - 1 if batch else None)
        self.step_metrics = {
            "t_s": step.link_time_s, "dt_s": step.duration_s, "detections": step.detections,
            "sifted_z": self.totals.sifted_z - before[0],
            "sifted_x": self.totals.sifted_x - before[1],
            "x_errors": self.totals.x_errors - before[2],
            "phase_rad": step.true_phase_rad,
        }
        first, packed = pack_slots(slots)
        return [self.channel.seal({"type": "announce", "batch": batch, "count": int(slots.size),
                                   "first_slot": first, "slots": packed,
                                   "bases": pack_bits(self._batches[batch].basis)},
                                  deferred=True)]

    @property
    def receiver(self) -> ReceiverInterface:
        return self.station.receiver

    def _collect(self) -> None:
        """Read what the core sifted and the X windows it closed; complete answered batches."""
        rx = self.receiver
        windows = rx.read_phase_windows()
        ends = np.array([end for _, end in self._slot_ranges], dtype=np.int64)
        for x, e, end in zip(windows["x_sifted"].tolist(), windows["x_errors"].tolist(),
                             windows["end_slot"].astype(np.int64).tolist(), strict=True):
            index = int(np.searchsorted(ends, end, side="left"))
            batch = self._slot_ranges[min(index, len(self._slot_ranges) - 1)][0]
            batch = max(batch, self._first_open_batch)   # its batch is in a block already
            stats = self._x_stats.setdefault(batch, [0, 0])
            stats[0] += x
            stats[1] += e
            self.totals.sifted_x += x
            self.totals.x_errors += e
        sifted = rx.read_sifted()
        buffer = self._sifted_buffer
        for name in ("slot", "bit"):
            buffer[name] = np.concatenate([buffer[name], sifted[name]])
        while self._answered:
            batch = self._answered[0]
            info = self._batches[batch]
            need = info.sifted_expected
            if buffer["slot"].size < need:
                break
            got_slots = buffer["slot"][:need]
            want = (info.slot[(info.basis == Basis.Z) & (info.alice == Basis.Z)]
                    if info.alice.size else info.slot[:0])
            if not np.array_equal(got_slots, want):
                self.totals.mismatched_batches += 1
                raise LinkError(f"batch {batch}: the core sifted slots other than the bases "
                                "select; sifting is out of step")
            self._sifted[batch] = buffer["bit"][:need].astype(np.uint8)
            self._ready_bits += need
            self.totals.sifted_z += need
            for name in ("slot", "bit"):
                buffer[name] = buffer[name][need:]
            self._answered.popleft()
            info.seq = info.slot = info.basis = info.alice = None   # done: free the arrays

    def _feedback_step(self, finished_batch: int | None) -> None:
        """Feed the controller whole windows of batches that ran with the code it issued.

        A window is ``feedback_window_steps`` batches. The code returned acts from the next
        step; the batch already under way meanwhile ran with the previous code, so it is left
        out (its code differs from the one issued).
        """
        if self.controller is None or finished_batch is None:
            return
        code = self._batch_code.pop(finished_batch, None)
        x = self._x_stats.get(finished_batch, [0, 0])
        if code != self._issued_code:
            return
        self._window_x[0] += x[0]
        self._window_x[1] += x[1]
        self._window_steps += 1
        if self._window_steps < self.feedback_window_steps:
            return
        new = int(self.controller.update(int(self._window_x[0]), int(self._window_x[1]),
                                         code_in_effect=code))
        self._window_x = [0, 0]
        self._window_steps = 0
        self.set_code(new)

    @property
    def issued_code(self) -> int:
        """The phase shifter's DAC code last written (-1 before any)."""
        return -1 if self._issued_code is None else self._issued_code

    def set_code(self, code: int) -> None:
        """Write the phase shifter's DAC code; it acts from the next step."""
        self._issued_code = int(code)
        self.receiver.set_dac(int(code))
        self.station.apply_dac()

    # --- frames from Alice --------------------------------------------------------------
    def receive(self, frame: bytes) -> list[bytes]:
        """Consume one frame from Alice; return the frames to send back."""
        self._pending_out: list[bytes] = []
        message = self._open(frame)
        if message is None:
            return self._pending_out
        if message["type"] == "sync_result":
            if not message["found"]:
                raise LinkError(f"slot synchronisation failed: {message['reason']}")
            self.sync_result = message
            self._slot_offset = message["slot_offset"]
            return []
        if message["type"] == "answer":
            try:
                self._take_answer(message)
            except ProtocolError as error:
                self.rejected_frames += 1
                raise LinkError(f"bad answer from Alice: {error}") from None
            return []
        return self._distill(message)

    def _take_answer(self, message: Message) -> None:
        if not self._awaiting or message["batch"] != self._awaiting[0]:
            raise ProtocolError(f"answer to batch {message['batch']}, expected "
                                f"{self._awaiting[0] if self._awaiting else 'none'}")
        batch = self._awaiting.popleft()
        info = self._batches[batch]
        if message["count"] == 0 and info.slot.size:      # Alice refused the batch
            self.totals.refused_batches += 1
            self.receiver.restart_sifting()               # drop its pending records
            info.alice = np.zeros(0, np.uint8)
            info.sifted_expected = 0
            self._answered.append(batch)
            return
        if message["count"] != info.slot.size:
            raise ProtocolError(f"answer has {message['count']} bases for {info.slot.size} "
                                "announcements")
        alice = _bases(message["bases"], info.slot.size).astype(np.uint8)
        info.alice = alice
        info.sifted_expected = int(((info.basis == Basis.Z) & (alice == Basis.Z)).sum())
        self.receiver.send_answers(info.seq, info.slot, alice)
        self._answered.append(batch)

    # --- blocks --------------------------------------------------------------------------
    def maybe_block(self, *, final: bool = False) -> list[bytes]:
        """Close a block when enough sifted bits are complete (``final``: whatever is left,
        if at least ``min_block_bits``); return ``block_ready`` and Bob's distillation start."""
        need = self.settings.min_block_bits if final else self.settings.block_bits
        if not self.distill.block_done or self._ready_bits < need:
            return []
        end = self._first_open_batch
        count = 0
        while end in self._sifted and count < self.settings.block_bits:
            count += self._sifted[end].size
            end += 1
        enough = count >= (self.settings.min_block_bits if final else self.settings.block_bits)
        if not enough or end == self._first_open_batch:
            return []
        first = self._first_open_batch
        batches = range(first, end)
        bits = np.concatenate([self._sifted.pop(b) for b in batches])
        n_x = sum(self._x_stats.get(b, [0, 0])[0] for b in batches)
        e_x = sum(self._x_stats.pop(b, [0, 0])[1] for b in batches)
        slots = sum(self._batches.pop(b).slots_spanned for b in batches)
        self._ready_bits -= int(bits.size)
        pulses = int(round(slots * self.settings.z_pulse_fraction))
        self._first_open_batch = end
        block_id = self._block_id
        self._block_id += 1
        ready = self.channel.seal({"type": "block_ready", "block_id": block_id,
                                   "first_batch": first, "end_batch": end,
                                   "n_z": int(bits.size), "n_x": int(n_x), "e_x": int(e_x),
                                   "pulses": pulses})
        self.block_inputs[block_id] = (int(bits.size), int(n_x), int(e_x))
        frames = self.distill.begin_block(BlockInput(block_id, bits, XStatistics(n_x, e_x),
                                                     pulses))
        return [ready, *frames]

    def abort_stalled_block(self) -> list[bytes]:
        """After an exchange went quiet: a block still running cannot finish (a frame was
        rejected on the way); abort it (no key) and return the abort for Alice."""
        if self.distill.block_done:
            return []
        frames = self.distill.abort_block("the exchange stopped before the block ended")
        self._note_outcome()
        return frames

    def finish(self) -> None:
        """End of link time: the core works off the queued answers; complete what it can."""
        self.station.finish()
        self._collect()


def exchange(alice: AliceNode, bob: BobNode, frames_to_alice: list[bytes], *,
             wire: Callable[[int, bytes], list[bytes]] | None = None,
             max_frames: int = 1_000_000) -> int:
    """Carry frames between the nodes in one process until both are quiet; return the count.

    ``wire(direction, frame)`` may alter, drop or duplicate frames (tests; direction 0 is
    Alice to Bob).
    """
    delivered = deliver_until_quiet([], frames_to_alice, alice.receive, bob.receive,
                                    limit=max_frames, wire=wire,
                                    on_quiet=bob.abort_stalled_block)
    bob._note_outcome()
    alice._note_outcome()
    return delivered


# --- bring-up ---------------------------------------------------------------------------
@dataclass
class BringUp:
    """What the receiver bring-up measured and set."""

    tdc_hits: list[int]
    tdc_rms_ps: list[float]
    histograms: np.ndarray
    histogram_offset_ps: int
    histogram_bin_ps: int
    calibration: Calibration
    slot_base: int
    slot_offset: int
    sync_sample: SyncSample
    detection_rate_hz: float
    steps: int = 0
    notes: list[str] = field(default_factory=list)


def _advance(station: Station, seconds: float = 0.0, *, detections: int = 0,
             max_seconds: float = 60.0) -> tuple[int, float, int]:
    """Advance one step, or more: at least ``seconds``, and until ``detections`` clicks arrived
    (within ``max_seconds``)."""
    seen, elapsed, steps = 0, 0.0, 0
    while not steps or (elapsed < seconds - 1e-12 or seen < detections) \
            and elapsed < max_seconds:
        data = station.advance()
        seen += data.detections
        elapsed += data.duration_s
        steps += 1
    return seen, elapsed, steps


def _tdc_tables(tagger: TaggerInterface, tags: dict, channels: list[int],
                hits: list[int], rms: list[float]) -> None:
    for channel in channels:
        codes = tags["code"][tags["channel"] == channel]
        hits[channel] = int(codes.size)
        try:
            table = code_density(codes, tagger.code_count, tagger.period_ps,
                                 min_hits=TDC_MIN_HITS)
        except CalibrationError:
            continue
        tagger.write_calibration(channel, table.fine_ps)
        rms[channel] = float(table.quantisation_rms_ps)


#: Hits per channel for the code-density calibration (about 8 per code of a 256-tap line:
#: the fine-time error stays below ~2 % of the clock period).
TDC_MIN_HITS = 2_000
#: Detections for the window-placement histograms.
HISTOGRAM_DETECTIONS = 150_000


def bring_up(station: Station, *, roles: list[Role], slot_period_ps, bin_separation_ps: float,
             expected_delay_ps: float, divider: int, visibility: float = 0.81,
             histogram_detections: int = HISTOGRAM_DETECTIONS,
             sync_detections: int = SYNC_SAMPLE_DETECTIONS,
             max_seconds: float = 60.0) -> BringUp:
    """Calibrate Bob's receiver on live light and align it to Alice's slots.

    1. TDC code density from the raw tag stream: the detectors until each has
       :data:`TDC_MIN_HITS` hits, then the reference channel with the detectors gated off
       (:meth:`Station.gate_detectors`), as it sees only one pulse in ``divider``.
    2. Histograms until ``histogram_detections`` clicks; delays, windows and reference phase
       maximising the estimated key rate (:func:`tbqkd.host.calibration.calibrate_windows`).
    3. Alignment, detectors gated off: sifting restarts, the next reference pulse becomes
       Bob's slot 0; its slot on Bob's clock and
       the nominal fibre delay ``expected_delay_ps`` give Alice's number for it (a multiple of
       ``divider``), hence the nominal ``slot_offset`` (Alice's slot = Bob's + offset).
    4. A public sample of ``sync_detections`` Z-basis detections (Bob answers his own
       announcements), with which Alice corrects the offset by whole reference periods
       (:mod:`tbqkd.host.slot_sync`); then sifting restarts for the key.

    Raises
    ------
    LinkError
        If a step finds too little light or no reference.
    """
    rx, tagger = station.receiver, station.tagger
    device = rx.device
    rx.set_slot_period(slot_period_ps)
    period = float(slot_period_ps)
    n_channels = len(roles)
    for channel in range(n_channels):
        rx.set_channel_role(channel, Role.OFF)
    used = [c for c, role in enumerate(roles) if role != Role.OFF]
    detectors = [c for c in used if roles[c] != Role.REFERENCE]
    references = [c for c in used if roles[c] == Role.REFERENCE]
    # 1. TDC code density from the raw tags
    hits, rms = [0] * n_channels, [float("nan")] * n_channels
    tagger.set_tag_stream(True)
    _advance(station, detections=TDC_MIN_HITS * 2 * len(detectors), max_seconds=max_seconds)
    _tdc_tables(tagger, decode_tags(device.read_stream(stream="m_axis")), detectors, hits, rms)
    station.gate_detectors(True)
    reference_rate = 1e12 / (period * divider)
    _advance(station, 1.2 * TDC_MIN_HITS / reference_rate, max_seconds=max_seconds)
    station.gate_detectors(False)
    _tdc_tables(tagger, decode_tags(device.read_stream(stream="m_axis")), references, hits, rms)
    tagger.set_tag_stream(False)
    notes = [f"channel {c}: only {hits[c]} hits for the TDC calibration, kept its table"
             for c in used if math.isnan(rms[c])]
    # 2. Histograms → delays and windows
    bin_log2 = 4
    rx.set_histogram(offset_ps=0, bin_log2_ps=bin_log2)
    rx.histogram()                                  # drop what counted before calibration
    detections, elapsed, _ = _advance(station, detections=histogram_detections,
                                      max_seconds=max_seconds)
    counts = rx.histogram()
    try:
        calibration = calibrate_windows(counts, roles=roles, offset_ps=0, bin_ps=1 << bin_log2,
                                        slot_period_ps=period,
                                        bin_separation_ps=bin_separation_ps,
                                        visibility=visibility)
    except ValueError as error:
        raise LinkError(f"window calibration failed: {error}") from None
    apply_calibration(rx, calibration)
    # 3. Alignment on the next reference pulse, with the detectors gated off: no announcement
    #    may straddle the restart of sifting or the change of slot numbering.
    station.gate_detectors(True)
    _advance(station)                                 # let the core's stream framers flush
    for read in (rx.read_announcements, rx.read_sifted, rx.read_phase_windows):
        read()
    rx.restart_sifting()
    rx.set_phase_window(events=PHASE_WINDOW_EVENTS)
    rx.clear_lost_lock()
    rx.align()
    steps = 0
    while not rx.lock_status().aligned:
        _advance(station)
        steps += 1
        if steps > 1000:
            raise LinkError("no reference pulse: cannot align the slots (check channel 0)")
    station.gate_detectors(False)
    slot_base = rx.lock_status().slot_base
    since_start = slot_base * period - station.time_base_ps - expected_delay_ps
    k = round(since_start / (divider * period))
    # 4. The public sample for the slot synchronisation, then sifting restarts for the key.
    sample = _sync_sample(station, sync_detections, max_seconds)
    return BringUp(hits, rms, counts, 0, 1 << bin_log2, calibration, slot_base, k * divider,
                   sample, detections / elapsed if elapsed else 0.0, steps, notes)


#: Steps allowed for the core to hand out its last records after the detectors are gated.
_FLUSH_STEPS = 50


def _sync_sample(station: Station, detections: int, max_seconds: float) -> SyncSample:
    """Bob's Z-basis detections for :func:`tbqkd.host.slot_sync.find_slot_offset`.

    Bob answers his own announcements with his own bases, so the core sifts every Z-basis
    detection (slot, bit); the sample is disclosed, so sifting restarts after it (detectors
    gated, every answer taken, nothing pending) and none of it becomes key.
    """
    rx = station.receiver
    slots: list[np.ndarray] = []
    bits: list[np.ndarray] = []

    def take() -> int:
        announced = rx.read_announcements()
        if announced["seq"].size:
            rx.send_answers(announced["seq"], announced["slot"], announced["basis"])
        sifted = rx.read_sifted()
        slots.append(sifted["slot"].astype(np.int64))
        bits.append(sifted["bit"].astype(np.uint8))
        return int(announced["seq"].size + sifted["slot"].size)

    have, elapsed = 0, 0.0
    while have < detections and elapsed < max_seconds:
        elapsed += _advance(station)[1]
        take()
        have = sum(s.size for s in slots)
    station.gate_detectors(True)
    for _ in range(_FLUSH_STEPS):
        _advance(station)
        if not take() and rx.sifter_counters()["pending"] == 0:
            break
    else:
        raise LinkError("the core kept sifted records pending after the synchronisation sample")
    if have < detections:
        raise LinkError(f"only {have} Z-basis detections in {elapsed:.3g} s for the slot "
                        f"synchronisation sample ({detections} needed)")
    rx.read_phase_windows()
    rx.restart_sifting()
    rx.set_phase_window(events=PHASE_WINDOW_EVENTS)      # the sample's X events are not kept
    rx.clear_counters()
    station.gate_detectors(False)
    return SyncSample(np.concatenate(slots)[:detections], np.concatenate(bits)[:detections])
