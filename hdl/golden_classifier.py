"""Bit-exact numpy reference model of the :class:`~tbqkd.hdl.classifier.Classifier` (no Amaranth).

The model works per record: timing does not change what the block outputs, as long as the
control pulses (``align``, ``clear_counters``, ``clear_lost_lock``) are placed between the same
events. A pulse in cycle *t* acts on every event presented in cycle *t* or later and on none
presented before; call the matching method between two :meth:`ClassifierModel.run` calls.
Configuration is quasi-static: the model applies the current :class:`ClassifierConfig` to a
whole ``run`` batch (change it only while no event is in flight in the RTL).

Arithmetic, exactly as in the gateware (``P`` = ``slot_period``, ``ch`` the event's channel):

1. ``p0 = phase − delay[ch]`` (exact); if ``p0 < 0``: ``p0 += P``, ``slot −= 1``; elif
   ``p0 >= P``: ``p0 −= P``, ``slot += 1`` (one correction only); ``p = p0 mod 2**24`` and
   ``slot mod 2**48``. With valid input (``phase < P``, ``|delay| < P``) ``p`` is in ``[0, P)``.
2. Bin: EARLY if ``early_start <= p < early_start + early_width`` (the end is computed without
   overflow), else LATE (same test), else MIDDLE, else NONE. Overlaps resolve early > late >
   middle; a width of 0 turns a window off.
3. Key value by role: Z → basis Z, ``bit = (bin == LATE)``, key for EARLY/LATE; X_PLUS / X_MINUS
   → basis X, ``bit`` 0 / 1 (the detector), key for MIDDLE only; MONITOR, REFERENCE and the
   unused role codes 6, 7 → basis 0, bit 0, never key; OFF → no output, not counted.
4. Reference events (role REFERENCE): if alignment is armed, the event's slot becomes
   ``slot_base`` and ``aligned`` rises. Every event's ``slot`` out is ``slot − slot_base``
   (mod ``2**48``), with the ``slot_base`` in force after the events before it.
5. Lock monitor, on each reference event: ``raw = p − ref_phase``; ``offset = raw − P`` if
   ``2·raw > P``, ``raw + P`` if ``2·raw <= −P``, else ``raw`` — so the offset lies in
   ``(−P/2, P/2]`` and a reference near the slot boundary does not jump by a whole slot.
   ``|offset| > lock_threshold`` is a violation (``lost_lock`` sticky, ``lock_violations``
   counts). Windows of ``2**ref_window_log2`` offsets (a window closes when its count reaches
   at least that size, so shrinking the size mid-window closes it at the next reference)
   latch ``lock_offset = sum >> log2`` (arithmetic shift, i.e. floor division, kept to
   :data:`LOCK_OFFSET_BITS` signed bits, which only a window closed late can exceed) and
   ``lock_spread = max − min`` and count ``lock_windows``.

Bad input is counted, never silent: an event on a channel ``>= n_channels`` is dropped and
counted in ``bad_channel``; an event whose input phase is ``>= slot_period`` (upstream promises
it never is) is processed by the same arithmetic and counted in ``bad_phase``.

``clear_counters`` zeroes the per-channel counters, ``bad_channel``, ``bad_phase``,
``lock_violations`` and ``lock_windows`` and discards the lock monitor's partial window (the
latched ``lock_offset``/``lock_spread`` stay). ``align`` re-arms the alignment and drops
``aligned`` until the next reference event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .records import PHASE_BITS, SLOT_BITS, Basis, Bin, Role

__all__ = ["ClassifierConfig", "ClassifiedEvents", "ClassifierModel", "CLASSIFIER_LATENCY",
           "LOCK_OFFSET_BITS", "LOCK_WINDOWS_BITS", "wrap_offset"]

#: Cycles from an event on the inputs to its record on the outputs (``o_valid``).
CLASSIFIER_LATENCY = 5

_SLOT_MASK = (1 << SLOT_BITS) - 1
_PHASE_MASK = (1 << PHASE_BITS) - 1
_WINDOWS = ("early", "late", "middle")

#: Width of the signed lock offsets (``lock_offset``) and of ``lock_spread`` (unsigned).
LOCK_OFFSET_BITS = PHASE_BITS + 2
#: Width of the ``lock_windows`` count (wraps).
LOCK_WINDOWS_BITS = 32
_WINDOWS_MASK = (1 << LOCK_WINDOWS_BITS) - 1


def _to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass
class ClassifierConfig:
    """The block's configuration inputs (one value per channel for the per-channel ones)."""

    n_channels: int
    slot_period: int
    role: list[int] = field(default_factory=list)
    delay: list[int] = field(default_factory=list)
    early_start: list[int] = field(default_factory=list)
    early_width: list[int] = field(default_factory=list)
    late_start: list[int] = field(default_factory=list)
    late_width: list[int] = field(default_factory=list)
    middle_start: list[int] = field(default_factory=list)
    middle_width: list[int] = field(default_factory=list)
    ref_phase: int = 0
    ref_window_log2: int = 0
    lock_threshold: int = 0

    PER_CHANNEL = ("role", "delay", "early_start", "early_width", "late_start", "late_width",
                   "middle_start", "middle_width")

    def __post_init__(self) -> None:
        for name in self.PER_CHANNEL:
            values = list(getattr(self, name)) or [0] * self.n_channels
            if len(values) != self.n_channels:
                raise ValueError(f"{name}: {len(values)} values for {self.n_channels} channels")
            setattr(self, name, [int(v) for v in values])
        self.validate()

    def validate(self) -> None:
        """Check that every value fits its port.

        Raises
        ------
        ValueError
            If a value does not fit the width of its port.
        """
        unsigned = {"slot_period": PHASE_BITS, "ref_phase": PHASE_BITS, "ref_window_log2": 5,
                    "lock_threshold": PHASE_BITS}
        for name, bits in unsigned.items():
            if not 0 <= getattr(self, name) < 1 << bits:
                raise ValueError(f"{name}={getattr(self, name)} does not fit {bits} bits")
        for name in self.PER_CHANNEL:
            for ch, v in enumerate(getattr(self, name)):
                if name == "role":
                    lo, hi = 0, 8
                elif name == "delay":
                    lo, hi = -(1 << (PHASE_BITS - 1)), 1 << (PHASE_BITS - 1)
                else:
                    lo, hi = 0, 1 << PHASE_BITS
                if not lo <= v < hi:
                    raise ValueError(f"{name}[{ch}]={v} out of range [{lo}, {hi})")

    def with_channel(self, ch: int, **values: int) -> ClassifierConfig:
        """A copy with some per-channel values of channel ``ch`` replaced."""
        changes = {}
        for name, value in values.items():
            if name not in self.PER_CHANNEL:
                raise ValueError(f"{name} is not a per-channel setting")
            column = list(getattr(self, name))
            column[ch] = value
            changes[name] = column
        return replace(self, **changes)


@dataclass
class ClassifiedEvents:
    """Records the block outputs, one per event of a non-OFF channel, in input order.

    ``index``: position of the source event in the input batch. ``key``: the ``o_key`` flag;
    ``mid_valid``/``mid_minus``: the middle-bin click outputs of that cycle.
    """

    index: np.ndarray
    slot: np.ndarray
    phase: np.ndarray
    channel: np.ndarray
    bin: np.ndarray
    basis: np.ndarray
    bit: np.ndarray
    key: np.ndarray
    mid_valid: np.ndarray
    mid_minus: np.ndarray

    FIELDS = ("slot", "phase", "channel", "bin", "basis", "bit", "key", "mid_valid", "mid_minus")

    def __len__(self) -> int:
        return len(self.index)

    def rows(self) -> list[tuple[int, ...]]:
        """One tuple per record, fields in :attr:`FIELDS` order (for record-by-record checks)."""
        return list(zip(*(getattr(self, f).tolist() for f in self.FIELDS), strict=True))

    @classmethod
    def concatenate(cls, parts: list[ClassifiedEvents]) -> ClassifiedEvents:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return cls(*(empty for _ in range(10)))
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in ("index",) + cls.FIELDS})


def wrap_offset(raw: np.ndarray, slot_period: int) -> np.ndarray:
    """Bring ``p − ref_phase`` into ``(−P/2, P/2]`` with one correction of ``±P``."""
    raw = np.asarray(raw, dtype=np.int64)
    period = np.int64(slot_period)
    return np.where(2 * raw > period, raw - period,
                    np.where(2 * raw <= -period, raw + period, raw))


class ClassifierModel:
    """The classifier on batches of events; keeps counters and lock-monitor state between them.

    Public state mirrors the block's outputs: ``early``, ``late``, ``middle``, ``outside``
    (per-channel counts), ``bad_channel``, ``bad_phase``, ``slot_base``, ``aligned``,
    ``lock_offset``, ``lock_spread``, ``lock_windows``, ``lost_lock``, ``lock_violations``.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.reset()

    # --- control pulses -------------------------------------------------------------------
    def reset(self) -> None:
        """Synchronous reset: everything zero, alignment not armed."""
        n = self.config.n_channels
        self.early = np.zeros(n, dtype=np.int64)
        self.late = np.zeros(n, dtype=np.int64)
        self.middle = np.zeros(n, dtype=np.int64)
        self.outside = np.zeros(n, dtype=np.int64)
        self.bad_channel = 0
        self.bad_phase = 0
        self.slot_base = 0
        self.aligned = False
        self.armed = False
        self.lock_offset = 0
        self.lock_spread = 0
        self.lock_windows = 0
        self.lost_lock = False
        self.lock_violations = 0
        self._window: list[int] = []            # offsets of the open lock window

    def align(self) -> None:
        """``align`` pulse: the next reference event sets slot 0."""
        self.armed = True
        self.aligned = False

    def clear_counters(self) -> None:
        """``clear_counters`` pulse (see the module docstring for what it clears)."""
        for counts in (self.early, self.late, self.middle, self.outside):
            counts[:] = 0
        self.bad_channel = self.bad_phase = 0
        self.lock_violations = self.lock_windows = 0
        self._window = []

    def clear_lost_lock(self) -> None:
        self.lost_lock = False

    # --- data path ------------------------------------------------------------------------
    def delayed(self, slot, phase, channel) -> tuple[np.ndarray, np.ndarray]:
        """Slot and phase after the channel delay and the wrap (channels must be valid)."""
        c = self.config
        slot = np.asarray(slot, dtype=np.int64)
        phase = np.asarray(phase, dtype=np.int64)
        delay = np.asarray(c.delay, dtype=np.int64)[np.asarray(channel, dtype=np.int64)]
        p0 = phase - delay
        period = np.int64(c.slot_period)
        under = p0 < 0
        over = ~under & (p0 >= period)
        p = np.where(under, p0 + period, np.where(over, p0 - period, p0)) & _PHASE_MASK
        slot = (slot - under + over) & _SLOT_MASK
        return slot, p

    def bins(self, p: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Bin of each delayed phase ``p`` with the windows of its channel."""
        c = self.config
        result = np.full(len(p), Bin.NONE, dtype=np.int64)
        for name, code in reversed(list(zip(_WINDOWS, (Bin.EARLY, Bin.LATE, Bin.MIDDLE),
                                            strict=True))):
            start = np.asarray(getattr(c, f"{name}_start"), dtype=np.int64)[channel]
            width = np.asarray(getattr(c, f"{name}_width"), dtype=np.int64)[channel]
            result = np.where((p >= start) & (p < start + width), code, result)
        return result

    def run(self, slot, phase, channel) -> ClassifiedEvents:
        """Classify a batch of events presented in this order; update counters and state.

        Raises
        ------
        ValueError
            If the arrays differ in length or a value does not fit its input port.
        """
        c = self.config
        slot = np.asarray(slot, dtype=np.int64)
        phase = np.asarray(phase, dtype=np.int64)
        channel = np.asarray(channel, dtype=np.int64)
        if not len(slot) == len(phase) == len(channel):
            raise ValueError("slot, phase and channel differ in length")
        for name, values, bits in (("slot", slot, SLOT_BITS), ("phase", phase, PHASE_BITS),
                                   ("channel", channel, 8)):
            if len(values) and (values.min() < 0 or values.max() >= 1 << bits):
                raise ValueError(f"{name} does not fit {bits} bits")
        good_channel = channel < c.n_channels
        self.bad_channel += int((~good_channel).sum())
        index = np.flatnonzero(good_channel)
        slot, phase, channel = slot[index], phase[index], channel[index]
        role = np.asarray(c.role, dtype=np.int64)[channel]
        live = role != Role.OFF
        index, slot, phase, channel, role = (a[live] for a in (index, slot, phase, channel,
                                                                 role))
        self.bad_phase += int((phase >= c.slot_period).sum())

        slot, p = self.delayed(slot, phase, channel)
        bins = self.bins(p, channel)
        is_z = role == Role.Z
        is_x = (role == Role.X_PLUS) | (role == Role.X_MINUS)
        basis = np.where(is_x, Basis.X, Basis.Z).astype(np.int64)
        bit = np.where(is_z, bins == Bin.LATE, role == Role.X_MINUS).astype(np.int64)
        key = (is_z & ((bins == Bin.EARLY) | (bins == Bin.LATE))) | (is_x & (bins == Bin.MIDDLE))
        mid_valid = is_x & (bins == Bin.MIDDLE)
        mid_minus = mid_valid & (role == Role.X_MINUS)

        for name, code in (("early", Bin.EARLY), ("late", Bin.LATE), ("middle", Bin.MIDDLE),
                           ("outside", Bin.NONE)):
            getattr(self, name)[:] += np.bincount(channel[bins == code],
                                                  minlength=c.n_channels)

        slot_out = self._align(slot, role)
        self._lock_monitor(p[role == Role.REFERENCE])
        return ClassifiedEvents(index=index, slot=slot_out, phase=p, channel=channel, bin=bins,
                                basis=basis, bit=bit, key=key.astype(np.int64),
                                mid_valid=mid_valid.astype(np.int64),
                                mid_minus=mid_minus.astype(np.int64))

    def _align(self, slot: np.ndarray, role: np.ndarray) -> np.ndarray:
        base = np.full(len(slot), self.slot_base, dtype=np.int64)
        refs = np.flatnonzero(role == Role.REFERENCE)
        if self.armed and len(refs):
            first = refs[0]
            self.slot_base = int(slot[first])
            self.armed = False
            self.aligned = True
            base[first:] = self.slot_base
        return (slot - base) & _SLOT_MASK

    def _lock_monitor(self, p: np.ndarray) -> None:
        c = self.config
        if not len(p):
            return
        offsets = wrap_offset(p - c.ref_phase, c.slot_period)
        violations = np.abs(offsets) > c.lock_threshold
        self.lock_violations += int(violations.sum())
        self.lost_lock = self.lost_lock or bool(violations.any())
        size = 1 << c.ref_window_log2
        pending = self._window + offsets.tolist()
        first = max(size - len(self._window), 1)  # a window closes once its count >= size
        if len(pending) < len(self._window) + first:
            self._window = pending
            return
        cut = len(self._window) + first
        rest = np.asarray(pending[cut:], dtype=np.int64)
        whole = len(rest) // size
        last = rest[(whole - 1) * size:whole * size] if whole else \
            np.asarray(pending[:cut], dtype=np.int64)
        self.lock_windows = (self.lock_windows + 1 + whole) & _WINDOWS_MASK
        self.lock_offset = _to_signed(int(last.sum()) >> c.ref_window_log2, LOCK_OFFSET_BITS)
        self.lock_spread = int(last.max() - last.min())
        self._window = rest[whole * size:].tolist()
