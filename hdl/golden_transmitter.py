"""Bit-exact, cycle-accurate reference model of the transmitter core (no Amaranth).

:class:`TransmitterModel` takes, cycle by cycle, what the gateware
(:class:`tbqkd.hdl.transmitter.Transmitter`) takes — the configuration, command pulses, the
random-bit beat offered on ``s_axis_random`` and the announcement transferred on
``s_axis_announce`` (if any) — and returns the outputs of that cycle: ``rnd_ready``, the
modulator pins, the reference pin and the slot counter. Answers, sifted key records and the
counters are per record: the gateware produces the same records in the same order; when they
leave the core depends on its output framers and back-pressure, which the model does not time.

Cycle behaviour (``t`` is a clock cycle; every output is a register, so it shows at ``t + 1``
what cycle ``t`` decided):

* **Slot clock.** ``phase`` counts fabric clocks in the slot; a slot starts in every cycle with
  ``run``, no ``restart`` and ``phase = 0``; ``phase`` then steps to 1, …, k − 1 and back to 0
  (k = ``slot_divider``, 0 acting as 1). Without ``run``, ``phase`` stays 0, so the first
  cycle of ``run`` starts a slot. ``slot`` counts slots started since reset or ``restart``.
* **State of a slot** (decided in its start cycle). Pattern mode: 2-bit state ``i`` of
  ``pattern``, ``i`` stepping through ``0 … pattern_length − 1``. Random mode, ``n =
  basis_bits`` clamped to 1..16: if the random buffer holds ``n + 1`` bits, they are consumed
  (oldest first): the first ``n`` bits, read as a number ``r`` (first bit = LSB), choose X when
  ``r < x_threshold``; the next bit is the Z bit (|e> 0, |l> 1) or, four-state, the X bit (|+>
  0, |−> 1); three-state X is always |+> (the bit is consumed all the same). Otherwise the slot is
  vacuum (all pins low) and ``random_underruns`` counts it: bits are never reused.
* **Random buffer.** 128 bits; ``rnd_ready = (bits buffered ≤ 64)``; a beat transferred in
  cycle ``t`` is appended after the bits cycle ``t``'s slot start consumed.
* **Pins.** ``mod_early``/``mod_late``/``mod_phase`` at ``t + 1`` are the levels of the slot's
  state (:data:`~tbqkd.hdl.tx_records.STATE_PINS`) if ``mod_delay ≤ phase(t) < mod_delay +
  mod_width``, else 0; ``reference`` at ``t + 1`` is 1 in the start cycle of a slot with
  ``slot ≡ 0 (mod ref_divider)`` (never with ``ref_divider = 0``).
* **Ring.** The start cycle of slot ``s`` writes its state (or "vacuum") at ``s mod depth``. An
  announcement transferred in cycle ``t`` (``S`` = ``slot`` in cycle ``t``) finds its slot in
  the ring iff ``S − depth ≤ slot < S``. Then: a sent state → an answer (seq, slot, Alice's
  basis, ``x_bit`` = 1 for |−>), and if both bases are Z a sifted record (slot, Alice's bit);
  a vacuum slot → no answer, ``err_vacuum``. Not in the ring → no answer, ``err_out_of_ring``
  and the sticky ``protocol_error``. Answers are never given for a state Alice does not have.
* **Announcement latency** (:data:`ANSWER_LATENCY`). The gateware decides in a pipeline: an
  announcement transferred in cycle ``a`` (in-ring check against ``S`` of cycle ``a``, ring
  read at the end of ``a``) has its answer and sifted record in the output FIFOs, and
  ``answers``/``sifted_z``/``err_vacuum``/``err_out_of_ring``/``protocol_error`` stepped, in
  cycle ``a + 3`` if the output FIFOs had room (later under back-pressure, which also holds
  the input); ``announcements`` steps in ``a + 1``. The model applies all of it in cycle
  ``a``. ``clear_counters``/``clear_error`` in cycle ``c`` apply to every announcement
  transferred in cycles up to ``c``, in the model and in the gateware alike (an announcement
  still in flight at ``c`` is not counted / does not set ``protocol_error`` when it is
  written), so records, counters and ``protocol_error`` equal the gateware's as soon as the
  announcements in flight are written, whatever the commands' and back-pressure's timing.
* ``restart`` (a pulse): ``slot``, ``phase``, the pattern index and the reference divider go to
  0 and no slot starts in that cycle; the ring's old entries are out of range from then on.
* **State stream** (``state_stream``): the codes of 16 consecutive slots started with
  ``state_stream`` set make one ``STATES`` record, queued in the start cycle of the 16th; a
  group is started afresh (a partial one discarded) by ``restart`` or while ``state_stream``
  is 0, so a record always covers slots ``16 j … 16 j + 15`` of one session only if the stream
  was enabled at a slot multiple of 16 (``first_slot`` says which slots it covers). A record
  that finds the 16-deep queue full is dropped and counted in ``states_dropped`` (not
  modelled: the model assumes the queue never fills).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .golden_sifter import Announcement, SiftedKey
from .records import SEQ_BITS, SLOT_BITS
from .tx_records import (
    RANDOM_BITS,
    STATE_BASIS,
    STATE_BIT,
    STATE_PINS,
    STATES_PER_RECORD,
    state_code,
)
from .tx_registers import (
    DEFAULT_PATTERN,
    DEFAULT_X_THRESHOLD,
    REF_DIVIDER_DEFAULT,
    RING_DEPTH,
    TX_COUNTERS,
)

__all__ = ["TxConfig", "Answer", "StatesRecord", "CycleOutputs", "TransmitterModel",
           "random_states", "pins_of", "POOL_BITS", "ANSWER_LATENCY"]

#: Capacity of the random-bit buffer.
POOL_BITS = 2 * RANDOM_BITS

#: Clocks from an announcement's transfer to its answer in the output FIFO (and its counters
#: stepped) without back-pressure: taken, ring read, registered, written.
ANSWER_LATENCY = 3


@dataclass(frozen=True)
class TxConfig:
    """The transmitter's configuration inputs (the register fields of the same names)."""

    run: int = 0
    four_state: int = 0
    pattern_mode: int = 0
    slot_divider: int = 1
    basis_bits: int = 16
    x_threshold: int = DEFAULT_X_THRESHOLD
    pattern: int = DEFAULT_PATTERN
    pattern_length: int = 4
    ref_divider: int = REF_DIVIDER_DEFAULT
    mod_delay: int = 0
    mod_width: int = 0xFFFF
    state_stream: int = 0

    def with_(self, **changes: int) -> TxConfig:
        return replace(self, **changes)

    @property
    def n_basis_bits(self) -> int:
        """``basis_bits`` clamped to 1..16, as the gateware uses it."""
        return min(max(self.basis_bits, 1), 16)


@dataclass(frozen=True)
class Answer:
    """Alice → Bob (``ANSWER``): the announcement's ``seq`` and ``slot``, her basis and X bit."""

    seq: int
    slot: int
    basis: int
    x_bit: int


@dataclass(frozen=True)
class StatesRecord:
    """16 consecutive slots' codes (``STATES``): ``codes[i]`` is slot ``first_slot + i``."""

    first_slot: int
    codes: tuple[int, ...]


@dataclass(frozen=True)
class CycleOutputs:
    """The registered outputs during one cycle."""

    rnd_ready: int
    mod_early: int
    mod_late: int
    mod_phase: int
    reference: int
    slot: int


def pins_of(state: int | None) -> tuple[int, int, int]:
    """``(mod_early, mod_late, mod_phase)`` of a state code (``None``: vacuum)."""
    return (0, 0, 0) if state is None else STATE_PINS[state]


def _state_from_bits(bits: int, cfg: TxConfig) -> int:
    n = cfg.n_basis_bits
    x = (bits & ((1 << n) - 1)) < cfg.x_threshold
    value = (bits >> n) & 1
    if not x:
        return value
    return 2 | value if cfg.four_state else 2


def random_states(words: Iterable[int], cfg: TxConfig, n_slots: int) -> list[int]:
    """The random-mode states of the first slots that ``words`` (64-bit beats) pay for.

    Returns at most ``n_slots`` states: as many as the bits allow without an underrun.
    """
    stream, have, out = 0, 0, []
    c = cfg.n_basis_bits + 1
    words = iter(words)
    while len(out) < n_slots:
        if have < c:
            word = next(words, None)
            if word is None:
                break
            stream |= int(word) << have
            have += RANDOM_BITS
            continue
        out.append(_state_from_bits(stream, cfg))
        stream >>= c
        have -= c
    return out


class TransmitterModel:
    """The transmitter core, cycle by cycle (see the module docstring).

    Parameters
    ----------
    ring_depth:
        Slots the state ring keeps.

    Raises
    ------
    ValueError
        If ``ring_depth`` is not a power of two ≥ 2.
    """

    def __init__(self, ring_depth: int = RING_DEPTH) -> None:
        if ring_depth < 2 or ring_depth & (ring_depth - 1):
            raise ValueError(f"ring_depth={ring_depth} must be a power of two >= 2")
        self.ring_depth = ring_depth
        self.counters = dict.fromkeys(TX_COUNTERS, 0)
        self.protocol_error = False
        self.answers: list[Answer] = []
        self.sifted: list[SiftedKey] = []
        #: Every slot sent since construction: its state code, ``None`` for vacuum.
        self.sent: list[int | None] = []
        #: Every random beat taken, in order.
        self.words: list[int] = []
        #: ``STATES`` records (``state_stream``), assuming ``m_axis_states`` never overflows.
        self.state_records: list[StatesRecord] = []
        self._group: list[int] = []
        self._session = 0            # index in ``sent`` of slot 0 of the current session
        self.phase = 0
        self.slot = 0
        self._ref_count = 0
        self._pattern_index = 0
        self._pool = 0
        self._pool_bits = 0
        self._current: int | None = None
        self._pins = (0, 0, 0)
        self._reference = 0

    @property
    def random_bits(self) -> int:
        """Random bits buffered."""
        return self._pool_bits

    def outputs(self) -> CycleOutputs:
        """The outputs during the coming cycle (before :meth:`step`)."""
        return CycleOutputs(int(self._pool_bits <= RANDOM_BITS), *self._pins, self._reference,
                            self.slot)

    def step(self, cfg: TxConfig, *, restart: int = 0, clear_counters: int = 0,
             clear_error: int = 0, rnd_valid: int = 0, rnd_data: int = 0,
             announce: Announcement | None = None) -> CycleOutputs:
        """Run one clock cycle; return the outputs seen during it.

        ``announce`` is the record transferred on ``s_axis_announce`` in this cycle.

        Raises
        ------
        ValueError
            If a random beat or an announcement field does not fit its width.
        """
        out = self.outputs()
        if not 0 <= rnd_data < 1 << RANDOM_BITS:
            raise ValueError(f"rnd_data={rnd_data} does not fit in {RANDOM_BITS} bits")
        if announce is not None:
            self._announce(announce)
        c = self.counters
        slot_start = bool(cfg.run and not restart and self.phase == 0)
        state = self._current
        consumed = 0
        if slot_start:
            if cfg.pattern_mode:
                state = (cfg.pattern >> (2 * self._pattern_index)) & 3
                length = min(cfg.pattern_length, 16)
                self._pattern_index = 0 if self._pattern_index + 1 >= length else \
                    self._pattern_index + 1
            elif self._pool_bits >= cfg.n_basis_bits + 1:
                consumed = cfg.n_basis_bits + 1
                state = _state_from_bits(self._pool, cfg)
            else:
                state = None
                c["random_underruns"] += 1
            if state is not None:
                c[("states_e", "states_l", "states_plus", "states_minus")[state]] += 1
            self.sent.append(state)
            if cfg.state_stream:
                self._group.append(state_code(state))
                if len(self._group) == STATES_PER_RECORD:
                    self.state_records.append(StatesRecord(self.slot + 1 - STATES_PER_RECORD,
                                                           tuple(self._group)))
                    self._group = []
            self._current = state
            self._reference = int(self._ref_count == 0 and cfg.ref_divider != 0)
            self._ref_count = 0 if self._ref_count + 1 >= cfg.ref_divider else \
                self._ref_count + 1
            self.slot += 1
        else:
            self._reference = 0
        live = cfg.run and not restart
        in_window = cfg.mod_delay <= self.phase < cfg.mod_delay + cfg.mod_width
        self._pins = pins_of(state) if live and in_window else (0, 0, 0)
        # random buffer: consume, then append the beat transferred in this cycle
        pool, bits = self._pool >> consumed, self._pool_bits - consumed
        if rnd_valid and out.rnd_ready:
            pool |= rnd_data << bits
            bits += RANDOM_BITS
            c["random_words"] += 1
            self.words.append(rnd_data)
        self._pool, self._pool_bits = pool, bits
        k = max(cfg.slot_divider, 1)
        self.phase = 0 if not live or self.phase + 1 >= k else self.phase + 1
        if restart or not cfg.state_stream:
            self._group = []
        if restart:
            self.slot, self._ref_count, self._pattern_index = 0, 0, 0
            self._session = len(self.sent)
        if clear_counters:
            self.counters = dict.fromkeys(TX_COUNTERS, 0)
        if clear_error:
            self.protocol_error = False
        return out

    def run(self, cfg: TxConfig, cycles: int, **inputs: int) -> list[CycleOutputs]:
        """:meth:`step` ``cycles`` times with the same inputs."""
        return [self.step(cfg, **inputs) for _ in range(cycles)]

    def session_state(self, slot: int) -> int | None:
        """State of ``slot`` of the current session (``None``: vacuum).

        Raises
        ------
        IndexError
            If the slot has not been sent in this session.
        """
        if not 0 <= slot < self.slot:
            raise IndexError(f"slot {slot} not sent in this session ({self.slot} sent)")
        return self.sent[self._session + slot]

    def _announce(self, ann: Announcement) -> None:
        if not (0 <= ann.seq < 1 << SEQ_BITS and 0 <= ann.slot < 1 << SLOT_BITS
                and ann.basis in (0, 1)):
            raise ValueError(f"announcement fields out of range: {ann}")
        c = self.counters
        c["announcements"] += 1
        if not self.slot - self.ring_depth <= ann.slot < self.slot:
            c["err_out_of_ring"] += 1
            self.protocol_error = True
            return
        state = self.session_state(ann.slot)
        if state is None:
            c["err_vacuum"] += 1
            return
        basis = STATE_BASIS[state]
        self.answers.append(Answer(ann.seq, ann.slot, basis, int(state == 3)))
        c["answers"] += 1
        if basis == 0 and ann.basis == 0:
            self.sifted.append(SiftedKey(ann.slot, STATE_BIT[state]))
            c["sifted_z"] += 1
