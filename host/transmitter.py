"""Alice's transmitter core from the host: registers, random bits in, every slot's state out.

The transmitter (:mod:`tbqkd.hdl.transmitter`, docs/CORE.md "Transmitter core") prepares one
state per slot from random bits the host streams into ``s_axis_random``, and with
``CONTROL.state_stream`` sends every slot's state on ``m_axis_states`` (``STATES`` records of
16 slots). Its on-chip ring answers only round trips up to 1.7 ms; a deployed link's round
trip through both hosts is tens of ms, so Alice answers Bob in software from the streamed
states::

    from tbqkd.host.pynq_overlay import TransmitterOverlay
    from tbqkd.host.transmitter import AliceTransmitter, RandomSource, TransmitterSettings

    overlay = TransmitterOverlay("/home/xilinx/tbqkd/tbqkd_alice.bit")
    alice_tx = AliceTransmitter(overlay.core, RandomSource.from_path("/dev/qrandom0"),
                                history_s=1.0, slot_rate_hz=75.947e6)
    alice_tx.start(TransmitterSettings(p_z=0.8, slot_divider=4))
    ...                                  # every step of the link:
    alice_tx.service()                   # random bits in, states out, counters checked
    node = AliceNode(channel, config, alice_tx.states)   # her answers come from the history

Parts: :class:`TransmitterDevice` (registers by name and the DMAs, on the machinery the
receiver's :class:`~tbqkd.host.pynq_device.PynqDevice` uses), :class:`RandomSource` (a QRNG
device or file, or the OS generator, which is **not for production keys**),
:class:`StateHistory` (the states by slot for a bounded window; never a guess) and
:class:`AliceTransmitter`, which runs the three together.

Python 3.10, no Amaranth: the register table and record layouts are the pure-Python tables of
:mod:`tbqkd.hdl.tx_registers` and :mod:`tbqkd.hdl.tx_records`.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tbqkd.hdl.ip import TX_DMA_CHANNELS, TX_VLNV
from tbqkd.hdl.tx_records import STATES, STATES_PER_RECORD
from tbqkd.hdl.tx_registers import (
    REF_DIVIDER_DEFAULT,
    RING_DEPTH,
    TX_COUNTERS,
    transmitter_regmap,
)

from .device import DeviceError
from .protocol import ProtocolError
from .pynq_device import AxiCoreDevice, overlay_core

__all__ = ["TransmitterDevice", "TransmitterSettings", "RandomSource", "RandomSourceError",
           "NotForProductionWarning", "OS_RANDOM_WARNING", "StateHistory", "AliceTransmitter",
           "TransmitterStatus",
           "RANDOM_STREAM", "STATES_STREAM"]

logger = logging.getLogger(__name__)

RANDOM_STREAM = "s_axis_random"
STATES_STREAM = "m_axis_states"

#: What the OS generator's source says, in the log, the warning and the run log.
OS_RANDOM_WARNING = ("random bits from the operating system's generator (os.urandom): "
                     "NOT FOR PRODUCTION KEYS; use a QRNG (RandomSource.from_path)")

_MAX_BASIS_BITS = 16


def _log(level: int, message: str, *args: object) -> None:
    logger.log(level, message, *args)


# --- the core -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransmitterSettings:
    """How the transmitter prepares its states (the registers :meth:`TransmitterDevice.
    configure` writes).

    ``p_z``: probability of the Z basis, realised as ``X_THRESHOLD = round((1 − p_z) ·
    2^basis_bits)`` (each slot consumes ``basis_bits + 1`` random bits); ``four_state``: X
    states are |+> or |-> (default: the three-state protocol, X always |+>);
    ``slot_divider``: fabric clocks per slot; ``ref_divider``: slots per reference pulse (0
    off; the link's ``LinkSettings.divider``); ``mod_delay_cycles`` / ``mod_width_cycles`` /
    ``mod_fine_taps``: modulator pulse timing; ``state_stream``: every slot's state on
    ``m_axis_states`` (needed by :class:`StateHistory`); ``pattern``: up to 16 state codes
    (0 |e>, 1 |l>, 2 |+>, 3 |->) sent in a loop instead of random states (alignment);
    ``frame_words`` / ``flush_cycles``: output framing (``None``: leave as is).

    Raises
    ------
    ValueError
        If a value is outside what the registers hold.
    """

    p_z: float = 0.8
    four_state: bool = False
    basis_bits: int = 16
    slot_divider: int = 1
    ref_divider: int = REF_DIVIDER_DEFAULT
    mod_delay_cycles: int = 0
    mod_width_cycles: int = 0xFFFF
    mod_fine_taps: int = 0
    state_stream: bool = True
    pattern: tuple[int, ...] | None = None
    frame_words: int | None = None
    flush_cycles: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_z <= 1.0:
            raise ValueError(f"p_z={self.p_z} is not a probability")
        if not 1 <= self.basis_bits <= _MAX_BASIS_BITS:
            raise ValueError(f"basis_bits={self.basis_bits} outside 1..{_MAX_BASIS_BITS}")
        for name, bits in (("slot_divider", 16), ("mod_delay_cycles", 16),
                           ("mod_width_cycles", 16), ("mod_fine_taps", 9), ("ref_divider", 32)):
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{name}={value} does not fit {bits} bits")
        if self.slot_divider < 1:
            raise ValueError("slot_divider must be at least 1")
        if self.pattern is not None and (not 1 <= len(self.pattern) <= 16
                                         or any(s not in (0, 1, 2, 3) for s in self.pattern)):
            raise ValueError(f"pattern {self.pattern}: 1 to 16 state codes in 0..3")
        if self.frame_words is not None and not 1 <= self.frame_words < 1 << 16:
            raise ValueError(f"frame_words={self.frame_words} outside 1..65535")
        if self.flush_cycles is not None and not 0 <= self.flush_cycles < 1 << 24:
            raise ValueError(f"flush_cycles={self.flush_cycles} does not fit 24 bits")

    @property
    def x_threshold(self) -> int:
        """``X_THRESHOLD``: X when the ``basis_bits``-bit random number is below it."""
        return round((1.0 - self.p_z) * (1 << self.basis_bits))

    @property
    def bits_per_slot(self) -> int:
        """Random bits one random-mode slot consumes."""
        return self.basis_bits + 1


class TransmitterDevice(AxiCoreDevice):
    """The transmitter core behind its AXI4-Lite window and AXI DMAs.

    Parameters
    ----------
    mmio
        The core's register window (``read(offset)``, ``write(offset, value)``).
    dmas
        Stream port prefix → AXI DMA driver, for the ports of
        :data:`tbqkd.hdl.ip.TX_DMA_CHANNELS`.
    ring_depth
        The core's elaboration parameter (its ``RING_DEPTH`` register; part of the table's ID).
    options
        ``allocate``, ``buffer_bytes``, ``poll_s`` of
        :class:`~tbqkd.host.pynq_device.AxiCoreDevice`.

    Raises
    ------
    DeviceError
        If a DMA lacks the channel its stream needs.
    """

    def __init__(self, mmio: Any, dmas: Mapping[str, Any] | None = None, *,
                 ring_depth: int = RING_DEPTH, **options: Any) -> None:
        super().__init__(mmio, transmitter_regmap(ring_depth), dmas, routes=TX_DMA_CHANNELS,
                         **options)
        self._ring_depth = ring_depth

    @classmethod
    def from_overlay(cls, overlay: Any, *, ring_depth: int | None = None,
                     core: str | None = None, dma_names: Mapping[str, str | None] | None = None,
                     check: bool = True, **options: Any) -> TransmitterDevice:
        """The transmitter of a loaded ``pynq.Overlay`` (IP type :data:`~tbqkd.hdl.ip.TX_VLNV`,
        or the one named ``core``), with the DMAs ``dma_<stream>`` (or ``dma_names``).

        ``ring_depth`` defaults to what the core's ``RING_DEPTH`` register reads.

        Raises
        ------
        DeviceError
            If the core or a DMA named in ``dma_names`` is missing.
        DeviceMismatch
            If ``check`` and the core's ID does not match the transmitter's register table.
        """
        ip, dmas = overlay_core(overlay, vlnv=TX_VLNV, routes=TX_DMA_CHANNELS, core=core,
                                dma_names=dma_names)
        if ring_depth is None:
            offset = transmitter_regmap()["RING_DEPTH"].offset   # same for every depth
            ring_depth = int(ip.read(offset))
        device = cls(ip, dmas, ring_depth=ring_depth, **options)
        if check:
            device.check_identity()
        return device

    @property
    def ring_depth(self) -> int:
        """Slots the core's state ring keeps."""
        return self._ring_depth

    def running(self) -> bool:
        """Whether the slot clock runs (``STATUS.running``)."""
        return bool(self.read_fields("STATUS")["running"])

    def configure(self, settings: TransmitterSettings) -> None:
        """Write ``settings`` into the core, leaving it stopped (``CONTROL.run`` 0).

        Raises
        ------
        DeviceError
            If the core is running (stop it first) or a register write fails.
        """
        if self.running():
            raise DeviceError("the transmitter is running: stop() it before configure()")
        s = settings
        self.write("SLOT_DIVIDER", cycles=s.slot_divider)
        self.write("BASIS_BITS", bits=s.basis_bits)
        self.write("X_THRESHOLD", threshold=s.x_threshold)
        self.write("REF_DIVIDER", slots=s.ref_divider)
        self.write("MOD_DELAY", cycles=s.mod_delay_cycles)
        self.write("MOD_WIDTH", cycles=s.mod_width_cycles)
        self.write("MOD_FINE_DELAY", taps=s.mod_fine_taps)
        if s.pattern is not None:
            self.write("PATTERN", states=sum(state << 2 * i for i, state in enumerate(s.pattern)))
            self.write("PATTERN_LENGTH", slots=len(s.pattern))
        if s.frame_words is not None:
            self.write("FRAME_WORDS", value=s.frame_words)
        if s.flush_cycles is not None:
            self.write("FLUSH_CYCLES", value=s.flush_cycles)
        self.write("CONTROL", run=0, four_state=int(s.four_state),
                   pattern_mode=int(s.pattern is not None), state_stream=int(s.state_stream))

    def start(self) -> None:
        """Start a session: slot counter, counters and the protocol error to 0, then run.

        The first slot (slot 0) starts in the first clock of ``run``; feed random bits before
        (the core buffers 128, the DMA holds the rest), or the first slots go out empty.
        """
        self.write("COMMAND", restart=1, clear_counters=1, clear_error=1)
        self.modify("CONTROL", run=1)

    def stop(self) -> None:
        """Stop the slot clock (the session's slot numbering stays; :meth:`start` restarts)."""
        self.modify("CONTROL", run=0)

    def counters(self) -> dict[str, int]:
        """The core's counters (:data:`~tbqkd.hdl.tx_registers.TX_COUNTERS`) and ``slot``,
        the slots sent this session."""
        values = {name: self.read(name.upper()) for name in TX_COUNTERS}
        values["slot"] = self.read("SLOT")
        return values

    def status(self) -> dict[str, int]:
        """``STATUS``: ``running``, ``protocol_error``, ``random_bits`` buffered."""
        return self.read_fields("STATUS")

    def __enter__(self) -> TransmitterDevice:
        return self


# --- random bits ----------------------------------------------------------------------------
class RandomSourceError(DeviceError):
    """The random source failed or ran dry: no more random bits for the transmitter."""


class NotForProductionWarning(UserWarning):
    """Random bits that must not make production keys (the OS generator)."""


class RandomSource:
    """Where the transmitter's random bits come from.

    Parameters
    ----------
    read
        ``read(n) -> bytes``: up to ``n`` fresh random bytes (fewer is allowed, none means the
        source is dry).
    name
        What the run log records as the source.
    production
        Whether keys made from these bits may be used (a QRNG: ``True``; the OS generator:
        ``False``, see :meth:`os_generator`).
    """

    def __init__(self, read: Callable[[int], bytes], *, name: str, production: bool) -> None:
        self._read = read
        self.name = name
        self.production = production
        self.bytes_read = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> RandomSource:
        """A QRNG character device (e.g. ``/dev/qrandom0``) or a file of random bytes.

        Raises
        ------
        RandomSourceError
            If the path cannot be opened for reading.
        """
        try:
            handle = open(path, "rb", buffering=0)      # noqa: SIM115 (kept open: a stream)
        except OSError as exc:
            raise RandomSourceError(f"random source {path}: {exc}") from None
        source = cls(handle.read, name=os.fspath(path), production=True)
        source._handle = handle
        return source

    @classmethod
    def os_generator(cls) -> RandomSource:
        """The operating system's generator (``secrets``): **not for production keys**.

        Says so in the log and as a :class:`NotForProductionWarning`; :meth:`describe` records
        ``production_keys: false`` for the run log.
        """
        _log(logging.WARNING, "%s", OS_RANDOM_WARNING)
        warnings.warn(OS_RANDOM_WARNING, NotForProductionWarning, stacklevel=2)
        return cls(secrets.token_bytes, name="os.urandom", production=False)

    def read(self, nbytes: int) -> bytes:
        """Exactly ``nbytes`` random bytes.

        Raises
        ------
        RandomSourceError
            If the source fails or runs dry first (the bytes it gave are counted, not used).
        """
        chunks, have = [], 0
        while have < nbytes:
            try:
                chunk = self._read(nbytes - have)
            except OSError as exc:
                raise RandomSourceError(f"random source {self.name}: {exc}") from None
            if not chunk:
                self.bytes_read += have
                raise RandomSourceError(f"random source {self.name} ran dry after "
                                        f"{self.bytes_read} bytes")
            chunks.append(chunk)
            have += len(chunk)
        self.bytes_read += have
        return b"".join(chunks)[:nbytes]

    def describe(self) -> dict[str, object]:
        """For the run log: the source, whether its keys are for production, and why not."""
        info: dict[str, object] = {"random_source": self.name, "production_keys": self.production,
                                   "random_bytes": self.bytes_read}
        if not self.production:
            info["warning"] = OS_RANDOM_WARNING
        return info

    def close(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()


# --- the states, by slot --------------------------------------------------------------------
_VACUUM = 0          # STATES code of a slot sent empty (random underrun)
_UNKNOWN = 1         # not a code the core sends: "no record for this slot"
_UNKNOWN_BYTE = _UNKNOWN | _UNKNOWN << 4
_CODES_BYTES = 4 * STATES_PER_RECORD // 8
_SLOT_MASK = np.uint64((1 << 48) - 1)
_NIBBLE_BIT = {bit: np.uint64(int(f"{1 << bit:x}" * 16, 16)) for bit in range(4)}


def _codes_valid(packed: np.ndarray) -> np.ndarray:
    """Per record of 16 codes (``uint64``): every code is one the core sends (0 vacuum, 4..7
    a state), never 1..3 or 8..15."""
    low3 = packed & (_NIBBLE_BIT[0] | _NIBBLE_BIT[1] | _NIBBLE_BIT[2])
    nonzero = (low3 | low3 >> np.uint64(1) | low3 >> np.uint64(2)) & _NIBBLE_BIT[0]
    state_bit = (packed >> np.uint64(2)) & _NIBBLE_BIT[0]
    return ((packed & _NIBBLE_BIT[3]) == 0) & ((nonzero & ~state_bit) == 0)


class StateHistory:
    """Alice's state in every slot of a bounded window, from the ``STATES`` records.

    Kept as the records carry them: one 4-bit code a slot (0 vacuum, 4 + state), two slots a
    byte, in a ring of ``window_slots`` slots (rounded up to a multiple of 16), so a window of
    one second at 75.947 MHz takes 38 MB. :meth:`states` is the callable
    :class:`tbqkd.host.link.AliceNode` takes.

    Records must come in slot order. A record that does not (it overlaps slots already kept),
    carries a code the core never sends, sets the record's spare bits, or reaches beyond the
    core's slot counter is refused and counted (``malformed_records``); slots skipped between
    records (records the core dropped, ``STATES_DROPPED``) are kept as unknown (``gap_slots``).

    Raises
    ------
    ValueError
        If ``window_slots`` is not positive.
    """

    def __init__(self, window_slots: int) -> None:
        if window_slots < 1:
            raise ValueError(f"window_slots={window_slots} must be positive")
        self.window_slots = -(-window_slots // STATES_PER_RECORD) * STATES_PER_RECORD
        self._ring = np.full(self.window_slots // 2, _UNKNOWN_BYTE, np.uint8)
        self.reset()

    @classmethod
    def for_seconds(cls, seconds: float, slot_rate_hz: float) -> StateHistory:
        """A history of ``seconds`` of slots at ``slot_rate_hz``."""
        return cls(max(1, int(np.ceil(seconds * slot_rate_hz))))

    def reset(self) -> None:
        """A new session (the core restarted its slot numbering): forget every state."""
        self._ring[:] = _UNKNOWN_BYTE
        self._end = 0
        self.records = 0
        self.malformed_records = 0
        self.gap_slots = 0
        self.refused = {"old": 0, "future": 0, "vacuum": 0, "lost": 0}

    @property
    def end_slot(self) -> int:
        """One past the newest slot kept."""
        return self._end

    @property
    def first_slot(self) -> int:
        """The oldest slot still in the window."""
        return max(0, self._end - self.window_slots)

    # --- input ----------------------------------------------------------------------------
    def add(self, data: bytes, *, slot_limit: int | None = None) -> int:
        """Take whole ``STATES`` records (raw stream bytes); return the slots added.

        ``slot_limit``: the core's slot counter read after the records; a record reaching
        beyond it cannot be genuine (a corrupted ``first_slot`` would otherwise make every
        later record look out of order) and is refused as malformed.

        Raises
        ------
        ValueError
            If ``data`` is not a whole number of records (nothing is taken then).
        """
        raw = np.frombuffer(data, np.uint8)
        if raw.size % STATES.nbytes:
            raise ValueError(f"{raw.size} bytes is not a whole number of {STATES.nbytes}-byte "
                             "STATES records")
        if not raw.size:
            return 0
        words = raw.view("<u8").reshape(-1, 2)            # STATES: first_slot, codes, spare
        first = (words[:, 0] & _SLOT_MASK).astype(np.int64)
        packed = (words[:, 0] >> np.uint64(48)) | ((words[:, 1] & _SLOT_MASK) << np.uint64(16))
        good = _codes_valid(packed) & (words[:, 1] >> np.uint64(48) == 0)
        if slot_limit is not None:
            good &= first + STATES_PER_RECORD <= slot_limit
        codes = packed.astype("<u8").view(np.uint8).reshape(-1, _CODES_BYTES)  # 2 slots a byte
        expected = self._end + STATES_PER_RECORD * np.arange(first.size)
        before = self._end
        if good.all() and np.array_equal(first, expected) and self._end % 2 == 0:
            self._write_bytes(self._end, codes.reshape(-1))           # the usual case
            self._end += STATES_PER_RECORD * first.size
            self.records += first.size
        else:
            for row, slot, ok in zip(codes, first.tolist(), good.tolist(), strict=True):
                self._add_one(row, slot, ok)
        return self._end - before

    def _add_one(self, codes: np.ndarray, slot: int, ok: bool) -> None:
        if not ok or slot < self._end:
            self.malformed_records += 1
            _log(logging.WARNING, "STATES record for slot %d refused: %s", slot,
                 "a code the core never sends, spare bits set, or slots the core has not "
                 "sent yet" if not ok else
                 f"slots before {self._end} are kept already (records out of order)")
            return
        if slot > self._end:
            self.gap_slots += slot - self._end
            self._fill_unknown(self._end, slot)
        per_slot = np.empty(STATES_PER_RECORD, np.uint8)
        per_slot[0::2], per_slot[1::2] = codes & 0xF, codes >> 4
        self._write_slots(slot, per_slot)
        self._end = slot + STATES_PER_RECORD
        self.records += 1

    def _fill_unknown(self, start: int, end: int) -> None:
        start = max(start, end - self.window_slots)
        if end > start:
            self._write_slots(start, np.full(end - start, _UNKNOWN, np.uint8))

    def _write_bytes(self, slot: int, packed: np.ndarray) -> None:
        """Store two-slots-a-byte codes from even ``slot`` on (the newest window's worth)."""
        keep = self._ring.size
        if packed.size > keep:
            slot += 2 * (packed.size - keep)
            packed = packed[-keep:]
        at = (slot % self.window_slots) // 2
        head = min(packed.size, keep - at)
        self._ring[at:at + head] = packed[:head]
        self._ring[:packed.size - head] = packed[head:]

    def _write_slots(self, slot: int, codes: np.ndarray) -> None:
        """Store one code per slot from ``slot`` on, any alignment."""
        if codes.size > self.window_slots:
            slot += codes.size - self.window_slots
            codes = codes[-self.window_slots:]
        index = (slot + np.arange(codes.size)) % self.window_slots
        for parity in (0, 1):                  # one nibble of each byte per pass: no clashes
            pick = index % 2 == parity
            at, shift = index[pick] // 2, 4 * parity
            self._ring[at] = (self._ring[at] & (0xF0 >> shift)) | (codes[pick] << shift)

    # --- look-up --------------------------------------------------------------------------
    def codes(self, slots: np.ndarray) -> np.ndarray:
        """The raw codes of ``slots`` (0 vacuum, 1 unknown, 4 + state) for slots in the window;
        slots outside it read as unknown."""
        slots = np.asarray(slots, dtype=np.int64)
        inside = (slots >= self.first_slot) & (slots < self._end)
        index = np.where(inside, slots, 0) % self.window_slots
        codes = (self._ring[index // 2] >> (4 * (index % 2)).astype(np.uint8)) & 0xF
        return np.where(inside, codes, _UNKNOWN).astype(np.uint8)

    def states(self, slots: np.ndarray) -> np.ndarray:
        """Alice's state (0 |e>, 1 |l>, 2 |+>, 3 |->) in each of ``slots``.

        Raises
        ------
        ProtocolError
            If any slot has no known state: older than the window, not streamed yet, sent
            empty (random underrun) or lost (a record dropped or refused). Nothing is
            guessed; the counts go to ``refused``.
        """
        slots = np.asarray(slots, dtype=np.int64)
        codes = self.codes(slots)
        bad = codes < 4
        if not bad.any():
            return (codes - 4).astype(np.uint8)
        kinds = {"old": int((bad & (slots < self.first_slot)).sum()),
                 "future": int((bad & (slots >= self._end)).sum()),
                 "vacuum": int((codes == _VACUUM).sum())}
        kinds["lost"] = int(bad.sum()) - sum(kinds.values())
        for kind, n in kinds.items():
            self.refused[kind] += n
        raise ProtocolError(
            f"{int(bad.sum())} of {slots.size} slots have no state: {kinds['old']} older than "
            f"the window (from slot {self.first_slot}), {kinds['future']} not streamed yet "
            f"(up to slot {self._end}), {kinds['vacuum']} sent empty (random underrun), "
            f"{kinds['lost']} lost (STATES records dropped or refused)")


# --- all of Alice's transmitter ----------------------------------------------------------------
@dataclass
class TransmitterStatus:
    """What :meth:`AliceTransmitter.service` saw: the core's counters and the host's."""

    counters: dict[str, int]
    random_bytes_sent: int
    state_records: int
    malformed_records: int
    gap_slots: int
    end_slot: int


class AliceTransmitter:
    """Alice's transmitter run from the host: configure, keep it fed, keep its states.

    Parameters
    ----------
    device
        The core (:class:`TransmitterDevice`, e.g. ``TransmitterOverlay(...).core``).
    source
        The random bits (:class:`RandomSource`).
    history
        Where the states are kept (:class:`StateHistory`); give its window in slots, e.g.
        ``StateHistory.for_seconds(1.0, slot_rate_hz)``: the longest sifting round trip Alice
        can answer.
    settle_s, sleep
        After stopping the slot clock, how long the core needs to close its last output frame
        (``FLUSH_CYCLES`` fabric clocks, well below the default 10 ms), and how to wait.
    """

    def __init__(self, device: TransmitterDevice, source: RandomSource,
                 history: StateHistory, *, settle_s: float = 0.01,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.device = device
        self.source = source
        self.history = history
        self.settle_s = settle_s
        self._sleep = sleep
        self._random_bytes_sent = 0
        self._underruns_seen = 0
        self._dropped_seen = 0
        self.discarded_records = 0       # records of an earlier session found at a start
        self._status: TransmitterStatus | None = None

    def start(self, settings: TransmitterSettings) -> None:
        """Start a session: stop the last one (if running), configure the core, drop what is
        left of the last session's states, hand it random bits, run.

        Slot numbering restarts at 0 and the history is emptied: records still on their way
        from an earlier session would otherwise be taken for the new one's slots.

        Raises
        ------
        DeviceError
            From the core or the DMA.
        RandomSourceError
            If the source cannot give the first random bits.
        ValueError
            If ``settings`` do not stream the states (the history would stay empty).
        """
        if not settings.state_stream:
            raise ValueError("AliceTransmitter answers from the streamed states: "
                             "state_stream must be on")
        if self.device.running():
            self.stop()
        self.device.configure(settings)
        while True:                                   # the stopped session's leftovers
            data = self.device.read_stream(stream=STATES_STREAM)
            if not data:
                break
            self.discarded_records += len(data) // STATES.nbytes
        self.history.reset()
        self._underruns_seen = self._dropped_seen = 0
        self._feed_random()
        self.device.start()
        _log(logging.INFO, "transmitter started (P(Z) %.3f, %s-state, random bits from %s)",
             settings.p_z, "four" if settings.four_state else "three", self.source.name)

    def _feed_random(self) -> int:
        """Offer the random stream one transfer when its DMA is free; return bytes handed."""
        if self.device.stream_in_flight(RANDOM_STREAM):
            return 0
        size = self.device.stream_stats()[RANDOM_STREAM]["transfer_bytes"]
        sent = self.device.try_write_stream(self.source.read(size), stream=RANDOM_STREAM)
        self._random_bytes_sent += sent
        return sent

    def service(self) -> TransmitterStatus:
        """One turn of the host loop: random bits in, states into the history, counters.

        Call it at least every few milliseconds of slots (the DMA transfer of random bits lasts
        ``transfer_bytes · 8 / (bits_per_slot · slot rate)``). New random underruns (slots sent
        empty) and dropped ``STATES`` records are logged as warnings; their slots will be
        refused by :meth:`states`.

        Raises
        ------
        DeviceError
            From the core or a DMA.
        RandomSourceError
            If the random source fails or runs dry.
        """
        self._feed_random()
        self._take_states()
        counters = self.device.counters()
        underruns = counters["random_underruns"] - self._underruns_seen
        if underruns > 0:
            _log(logging.WARNING, "%d slots sent empty: the random bits did not keep up "
                 "(%d this session)", underruns, counters["random_underruns"])
        dropped = counters["states_dropped"] - self._dropped_seen
        if dropped > 0:
            _log(logging.WARNING, "%d STATES records dropped by the core: the host did not "
                 "read m_axis_states fast enough", dropped)
        self._underruns_seen = counters["random_underruns"]
        self._dropped_seen = counters["states_dropped"]
        h = self.history
        self._status = TransmitterStatus(counters, self._random_bytes_sent, h.records,
                                         h.malformed_records, h.gap_slots, h.end_slot)
        return self._status

    def states(self, slots: np.ndarray) -> np.ndarray:
        """Alice's states for ``slots``: :meth:`StateHistory.states` (``AliceNode``'s callable).

        Raises
        ------
        ProtocolError
            If a slot has no known state (see :meth:`StateHistory.states`).
        """
        return self.history.states(slots)

    def fresh_states(self, slots: np.ndarray) -> np.ndarray:
        """:meth:`service`, then :meth:`states`: the callable for an ``AliceNode`` whose loop
        has no other place to service the transmitter (the newest slots are in the history).

        Raises
        ------
        ProtocolError
            If a slot has no known state.
        DeviceError
            From the core or a DMA (``AliceNode`` does not catch it: the link stops).
        """
        self.service()
        return self.states(slots)

    def stop(self) -> None:
        """Stop the slot clock, let the core flush its last ``STATES`` frame (``settle_s``)
        and take it into the history: the session's states stay answerable."""
        self.device.stop()
        self._sleep(self.settle_s)
        self._take_states()

    def _take_states(self) -> None:
        chunks = []
        while True:
            data = self.device.read_stream(stream=STATES_STREAM)
            if not data:
                break
            chunks.append(data)
        if chunks:                    # the slot counter, read after: no genuine record beyond
            self.history.add(b"".join(chunks), slot_limit=self.device.read("SLOT"))

    def run_log(self) -> dict[str, object]:
        """One record for the run log: the random source (and whether its keys are for
        production), the last counters, the history's refusals."""
        status = self._status
        record: dict[str, object] = {"type": "transmitter", **self.source.describe(),
                                     "random_bytes_sent": self._random_bytes_sent,
                                     "discarded_records": self.discarded_records,
                                     "history_window_slots": self.history.window_slots,
                                     "refused_slots": dict(self.history.refused)}
        if status is not None:
            record.update(counters=status.counters, state_records=status.state_records,
                          malformed_records=status.malformed_records,
                          gap_slots=status.gap_slots)
        return record

