"""The reference-model backend of :class:`tbqkd.host.device.Device`: the core as fast numpy.

:class:`ModelDevice` behaves, at the register and stream level, like the compiled core of
:class:`tbqkd.sim.device.VerilatorDevice`, but computes what the core emits from event times
with the golden models' arithmetic (:mod:`tbqkd.hdl.golden`, ``golden_classifier``,
``golden_histogram``, ``golden_sifter``, ``golden_phase``), vectorised: the tagger's codes come
straight from the front end's geometry (no sample words), dead time, serialisation and the
phase error windows are numba loops, the sifter joins in-order answers in bulk and falls back
to the exact sequential join rule for protocol errors, full stores and the lag limit.

Time. The device keeps the core's cycle counter. A register access takes the cycles the
AXI4-Lite bank takes (2, and a read waits until 4 cycles after the last write took effect),
so ``CYCLE`` reads what the RTL reads. :meth:`ModelDevice.feed_events` advances the clock to
the cycle after the last sample word of the clicks, processes them at once, and (``drain``)
lets the output framers' flush time-out pass. Answers queued with :meth:`write_stream` are
taken one per cycle while the clock runs in :meth:`feed` / :meth:`feed_events`, like the
Verilator model's input stream.

What the model does not reproduce is listed in ``docs/CORE.md`` ("Reference-model backend").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
from tbqkd.hdl.config import CAL_FRAC_BITS, SLOT_CONSTANTS_LATENCY, TaggerConfig
from tbqkd.hdl.golden import encode_words
from tbqkd.hdl.golden_classifier import CLASSIFIER_LATENCY, ClassifierConfig, ClassifierModel
from tbqkd.hdl.golden_histogram import HistogramModel, SpareState
from tbqkd.hdl.golden_phase import COUNT_MAX, SpiDacModel, WindowMode
from tbqkd.hdl.golden_sifter import COUNTERS as SIFT_COUNTERS
from tbqkd.hdl.records import (
    ANNOUNCE,
    ANSWER,
    PHASE_BITS,
    PHASE_WINDOW,
    SEQ_BITS,
    SIFTED,
    SLOT_BITS,
    STREAMS,
    TAG,
    Basis,
    Role,
)
from tbqkd.hdl.registers import (
    COUNTER_READ_LATENCY,
    DAC_SAFE_VALUE,
    HISTOGRAM_BINS,
    PENDING_DEPTH,
    bank_counters,
    core_regmap,
)
from tbqkd.host.device import Device, DeviceError

from . import _model_kernels as kernels
from .device import check_answers, take_records
from .frontend import DelayLineFrontend
from .verilator import RunResult

__all__ = ["ModelDevice", "open_model_device", "event_rate", "TAG_LATENCY"]

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_SLOT_MASK = (1 << SLOT_BITS) - 1
_SEQ_MOD = 1 << SEQ_BITS

#: Cycles from a sample word to its tag at the classifier and histogram inputs (idle tagger).
TAG_LATENCY = 23
#: AXI4-Lite timing of the register bank: cycles per access, and the cycles after a write took
#: effect before a read is accepted (``tbqkd.hdl.axil.READ_AFTER_WRITE``).
_ACCESS_CYCLES = 2
_READ_AFTER_WRITE = 4
#: An answer transferred in cycle ``a`` is joined in ``a + 2`` and gives its X event to the
#: error-signal unit in ``a + 3``.
_JOIN_LATENCY = 2
_X_EVENT_LATENCY = 3
#: A framer holds its newest record until ``FLUSH_CYCLES`` idle cycles have passed; the record
#: then moves this many cycles after its source (tag: serialiser output; announcement:
#: detection at the sifter; sifted record: answer transfer) plus ``FLUSH_CYCLES``.
_TAG_HOLD = -1
_ANNOUNCE_HOLD = 5
_SIFTED_HOLD = 6
#: Largest cycle span processed with one int64 base (k·step of the slot clock stays < 2^63).
_SEGMENT_CYCLES = 1 << 30


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass
class _Clock:
    """Time base and slot clock: the state at ``origin`` and the constants since then."""

    origin: int = 0          # cycle counter value at the origin
    time: int = 0            # TIME at the origin, ps
    rem: int = 0             # time remainder at the origin (1/period_den ps)
    slot: int = 0
    acc: int = 0             # slot clock offset·den + rem at the origin
    step: int = 1
    wrap: int = 1
    den: int = 1
    #: The slot clock before ``origin`` when it changed constants there (a write of the slot
    #: period takes effect a few cycles after the write, :data:`SLOT_CONSTANTS_LATENCY`).
    before: _Clock | None = None

    def time_at(self, cycle: int, num: int, den: int) -> int:
        return (self.time + (self.rem + (cycle - self.origin) * num) // den) & _MASK64

    def slot_state(self, cycle: int) -> tuple[int, int]:
        """``(slot, acc)`` of the slot clock in ``cycle``."""
        if self.before is not None and cycle < self.origin:
            return self.before.slot_state(cycle)
        slots, acc = divmod(self.acc + (cycle - self.origin) * self.step, self.wrap)
        return (self.slot + slots) & _SLOT_MASK, acc

    def first_cycle_at_slot(self, slot: int) -> int:
        """The first cycle whose slot counter has reached ``slot`` (no 48-bit wrap)."""
        if self.before is not None:
            cycle = self.before.first_cycle_at_slot(slot)
            if cycle < self.origin:
                return cycle
        need = (slot - self.slot) * self.wrap - self.acc
        return self.origin + max(0, -(-need // self.step))


@dataclass
class _Store:
    """The sifter's pending store (oldest first) and its announced prefix."""

    seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    basis: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bit: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.seq)

    def append(self, seq, slot, basis, bit) -> None:
        self.seq = np.concatenate([self.seq, seq])
        self.slot = np.concatenate([self.slot, slot])
        self.basis = np.concatenate([self.basis, basis])
        self.bit = np.concatenate([self.bit, bit])

    def drop(self, count: int) -> None:
        self.seq, self.slot = self.seq[count:], self.slot[count:]
        self.basis, self.bit = self.basis[count:], self.bit[count:]


class ModelDevice(Device):
    """The receiver core as a register-level behavioural model (module docstring).

    Parameters
    ----------
    config:
        The elaboration parameters; the register table is ``core_regmap(config)``.
    """

    def __init__(self, config: TaggerConfig | None = None) -> None:
        config = config or TaggerConfig()
        super().__init__(core_regmap(config))
        self._bank_counters = frozenset(bank_counters(config.n_channels))
        self.config = config
        self._by_offset = {}
        for reg in self.regmap:
            for w in range(reg.words):
                self._by_offset[reg.offset + 4 * w] = (reg, w)
        self._record_bytes = {p.prefix: p.record.nbytes for p in STREAMS}
        self._ro = self._ro_getters()
        self.events_fed = 0         # clicks given to feed_events since construction
        self.answers_taken = 0      # answer records taken from the input stream
        self.reset()

    # --- reset and time -------------------------------------------------------------------
    def reset(self) -> None:
        """Synchronous reset of the whole core (like ``VerilatorModel.reset()``)."""
        c = self.config
        n = c.n_channels
        self._cycle = 0
        self._values = {r.name: r.reset for r in self.regmap if r.access == "rw"}
        self._status = 0
        self._high_latch: tuple[int, int] | None = None   # (offset of the high word, value)
        self._settle_until = 0                 # reads are accepted from this cycle on
        self._streams = {p.prefix: bytearray() for p in STREAMS if p.direction == "out"}
        self._answers = np.zeros(0, dtype=np.uint8)
        self._cal = np.zeros((n, 1 << c.code_bits), dtype=np.int64)
        self._cal_code = 0
        self._events = np.zeros(n, np.int64)
        self._suppressed = np.zeros(n, np.int64)
        self._last_accept = np.full(n, kernels.NO_EDGE, np.int64)
        self._tags_out = self._frames_out = self._frame_fill = 0
        self._range_errors = 0
        self._serial_free = 0
        self._clock = _Clock()
        self._load_slot_constants(rebase=False)
        self._classifier_registers = ["SLOT_WRAP_INT", "REF_PHASE", "LOCK_WINDOW",
                                      "LOCK_THRESHOLD"] + [
            f"CH{ch}_{name}" for ch in range(n) for name in (
                "ROLE", "PHASE_DELAY", "EARLY_START", "EARLY_WIDTH", "LATE_START",
                "LATE_WIDTH", "MIDDLE_START", "MIDDLE_WIDTH")]
        self._classifier_cache = None
        self._classifier = ClassifierModel(self._classifier_config())
        self._hist = HistogramModel(n, HISTOGRAM_BINS)
        self._banks = np.zeros((2, n * HISTOGRAM_BINS), np.uint64)
        self._hist_cycle = 0                   # the cycle the histogram control has reached
        self._hist_init_cycle = self._banks.shape[1]   # events before it: reset-time clear
        self._hist_outside = self._hist_skipped = 0
        self._sift = dict.fromkeys(SIFT_COUNTERS, 0)
        self._store = _Store()
        self._next_seq = 0
        self._protocol_error = False
        self._phase_reset()
        self._dac = SpiDacModel(safe_value=DAC_SAFE_VALUE)
        self._dac_cycle = 0
        self._dac_writes_seen = 0
        self._dac_last = (0, 0)
        self._dac_frames = 0

    @property
    def cycle(self) -> int:
        """The core's clock cycle count (its time base is ``cycle × period``)."""
        return self._cycle

    @property
    def answers_pending(self) -> int:
        return len(self._answers) // ANSWER.nbytes

    def _advance(self, cycles: int) -> None:
        """Let ``cycles`` clock cycles pass without events (control state machines move)."""
        self._cycle += cycles
        self._run_histogram_control(self._cycle)
        self._run_dac(self._cycle)
        self._phase_events(self._cycle)

    # --- registers ------------------------------------------------------------------------
    def read32(self, offset: int) -> int:
        reg, word = self._lookup(offset)
        self._cycle_to(max(self._cycle, self._settle_until))
        self._phase_events(self._cycle)
        try:
            return self._read_register(reg, word, offset)
        finally:
            # a counter's low word is answered by the counter bank, later (tbqkd.hdl.axil)
            counter = word == 0 and reg.name in self._bank_counters
            self._advance(_ACCESS_CYCLES + (COUNTER_READ_LATENCY if counter else 0))

    def write32(self, offset: int, value: int) -> None:
        reg, word = self._lookup(offset)
        if reg.access == "ro":
            self._advance(_ACCESS_CYCLES)
            raise DeviceError(f"AXI4-Lite write to {offset:#06x} answered resp=0b10 "
                              f"(register {reg.name} is read-only)")
        value &= _MASK32
        # the write takes effect at this cycle's edge: the core sees it from the next cycle
        self._run_histogram_control(self._cycle + 1)
        self._run_dac(self._cycle + 1)
        if reg.access == "rw":
            old = self._values[reg.name]
            shift = 32 * word
            new = (old & ~(_MASK32 << shift)) | (value << shift)
            new &= reg.field_mask                       # bits outside the fields read as 0
            self._write_rw(reg.name, old, new)
        elif reg.access == "rc":
            self._status &= ~value
        else:
            self._command(reg.name, value)
        self._settle_until = self._cycle + 1 + _READ_AFTER_WRITE
        self._advance(_ACCESS_CYCLES)

    def _cycle_to(self, cycle: int) -> None:
        if cycle > self._cycle:
            self._advance(cycle - self._cycle)

    def _lookup(self, offset: int):
        try:
            return self._by_offset[offset]
        except KeyError:
            self._advance(_ACCESS_CYCLES)
            raise DeviceError(f"AXI4-Lite access to {offset:#06x} answered resp=0b10 "
                              "(no register there)") from None

    def _read_register(self, reg, word: int, offset: int) -> int:
        if reg.access == "wp":
            return 0
        if reg.latched and word == 1:
            # One latch for every 64-bit counter (tbqkd.hdl.axil): the high word answers only
            # right after its own low word was read.
            if self._high_latch is None or self._high_latch[0] != offset:
                raise DeviceError(f"AXI4-Lite read of {offset:#06x} answered resp=0b10 (the high "
                                  f"word of {reg.name} without its low word read before it)")
            return self._high_latch[1]
        if reg.access == "rw":
            value = self._values[reg.name]
        elif reg.access == "rc":
            value = self._status
        elif reg.name in self._ro:
            value = self._ro[reg.name]() & ((1 << reg.width) - 1)
        else:
            value = reg.reset if reg.name != "ID" else self.regmap.hash
        if reg.latched:
            self._high_latch = (offset + 4, value >> 32)
        return (value >> (32 * word)) & _MASK32

    def _write_rw(self, name: str, old: int, new: int) -> None:
        if name in ("SLOT_STEP_INT", "SLOT_STEP_REM", "SLOT_WRAP_INT", "SLOT_WRAP_REM",
                    "SLOT_DEN"):
            self._values[name] = new
            self._load_slot_constants(rebase=True)
        elif name == "PHASE_CONTROL":
            self._phase_events(self._cycle)
            self._values[name] = new
            self._phase_control_written()
        elif name == "DAC_VALUE":
            self._values[name] = new
            self._dac_step(write=1)
        elif name == "CAL_ADDR":
            self._values[name] = new
            self._cal_code = new & 0xFF
        else:
            self._values[name] = new

    def _command(self, name: str, value: int) -> None:
        reg = self.regmap[name]
        bits = reg.decode(value)
        if name == "CAL_DATA":
            channel = (self._values["CAL_ADDR"] >> 8) & 0x1F
            code = self._cal_code & ((1 << self.config.code_bits) - 1)
            if channel < self.config.n_channels:
                self._cal[channel, code] = value & ((1 << 20) - 1)
            self._cal_code = (self._cal_code + 1) & 0xFF
        elif name == "COMMAND":
            if bits["clear_counters"]:
                self._events[:] = 0
                self._suppressed[:] = 0
                self._tags_out = self._frames_out = 0
            if bits["preload_time"]:
                self._preload()
        elif name == "CORE_COMMAND":
            self._core_command(bits)

    def _core_command(self, bits: dict[str, int]) -> None:
        cls = self._classifier
        if bits["clear_counters"]:
            cls.clear_counters()
            self._hist_outside = 0
            self._sift = dict.fromkeys(SIFT_COUNTERS, 0)
        if bits["align"]:
            cls.align()
        if bits["clear_lost_lock"]:
            cls.clear_lost_lock()
        if bits["hist_swap"] or bits["hist_release"]:
            self._histogram_control(swap=bits["hist_swap"], release=bits["hist_release"])
        if bits["sift_restart"]:
            self._store = _Store()
            self._next_seq = 0
        if bits["clear_protocol_error"]:
            self._protocol_error = False
        if bits["irq_ack"]:
            self._phase_events(self._cycle)
            self._irq = False

    def _ro_getters(self) -> dict:
        """Functions giving the value of each core-driven read-only register."""
        v = self
        getters = {
            "CYCLE": lambda: v._cycle & _MASK64,
            "TIME": lambda: v._clock.time_at(v._cycle, v.config.period_num,
                                             v.config.period_den),
            "TAGS_OUT": lambda: v._tags_out, "FRAMES_OUT": lambda: v._frames_out,
            "SLOT": lambda: v._clock.slot_state(v._cycle)[0],
            "SLOT_RANGE_ERRORS": lambda: v._range_errors,
            "LOCK_OFFSET": lambda: v._classifier.lock_offset & _MASK32,
            "LOCK_SPREAD": lambda: v._classifier.lock_spread,
            "LOCK_WINDOWS": lambda: v._classifier.lock_windows,
            "SLOT_BASE": lambda: v._classifier.slot_base,
            "LOCK_VIOLATIONS": lambda: v._classifier.lock_violations,
            "CLASS_BAD_CHANNEL": lambda: v._classifier.bad_channel,
            "CLASS_BAD_PHASE": lambda: v._classifier.bad_phase,
            "HIST_DATA": v._hist_data, "HIST_SWAPS": lambda: v._hist.swaps,
            "HIST_OUTSIDE": lambda: v._hist_outside, "HIST_SKIPPED": lambda: v._hist_skipped,
            "SIFT_PENDING": lambda: len(v._store),
            "CORE_STATUS": v._core_status,
            "PHASE_INDEX": lambda: v._snapshot[0], "PHASE_X_SIFTED": lambda: v._snapshot[1],
            "PHASE_X_ERRORS": lambda: v._snapshot[2], "PHASE_MID_PLUS": lambda: v._snapshot[3],
            "PHASE_MID_MINUS": lambda: v._snapshot[4],
            "PHASE_END_SLOT": lambda: v._snapshot[5], "PHASE_DROPPED": lambda: 0,
            "DAC_WRITES": lambda: v._dac.writes, "DAC_REJECTED": lambda: v._dac.rejected,
        }
        for name in SIFT_COUNTERS:
            getters[f"SIFT_{name.upper()}"] = (lambda n: lambda: v._sift[n])(name)
        for ch in range(self.config.n_channels):
            getters[f"CH{ch}_EVENTS"] = (lambda c: lambda: int(v._events[c]))(ch)
            getters[f"CH{ch}_SUPPRESSED"] = (lambda c: lambda: int(v._suppressed[c]))(ch)
            getters[f"CH{ch}_DROPPED"] = lambda: 0
            for b in ("early", "late", "middle", "outside"):
                getters[f"CH{ch}_{b.upper()}_COUNT"] = \
                    (lambda c, name: lambda: int(getattr(v._classifier, name)[c]))(ch, b)
        return getters

    def _core_status(self) -> int:
        h = self._hist
        flags = {"aligned": self._classifier.aligned, "lost_lock": self._classifier.lost_lock,
                 "protocol_error": self._protocol_error, "hist_clearing": h.clearing,
                 "hist_swap_pending": h.swap_pending, "hist_snapshot_valid": h.snapshot_valid,
                 "dac_busy": self._dac_busy(), "irq": self._irq}
        reg = self.regmap["CORE_STATUS"]
        return sum(int(bool(flag)) << reg.field(name).lsb for name, flag in flags.items())

    # --- streams --------------------------------------------------------------------------
    def read_stream(self, max_bytes: int | None = None, *, stream: str = "m_axis") -> bytes:
        return take_records(self._streams, stream, max_bytes)

    def write_stream(self, data: bytes, *, stream: str = "s_axis_answer") -> None:
        check_answers(data, stream)
        self._answers = np.concatenate([self._answers, np.frombuffer(data, np.uint8)])

    # --- running the clock ----------------------------------------------------------------
    def feed(self, words, cycles: int, *, ready_percent: int = 100, seed: int = 0,
             drain: bool = False) -> RunResult:
        """Advance by ``cycles`` cycles; answers queued are taken one per cycle.

        Only ``words=None`` is supported (use :meth:`feed_events` for clicks). ``drain``: then
        let the flush time-out pass, as the Verilator backend does. Returns what the run did
        (``cycles`` advanced, ``answers_sent``; no words, nothing clocked).

        Raises
        ------
        DeviceError
            If sample words are given, ``cycles`` is negative or back-pressure is requested.
        """
        if words is not None:
            raise DeviceError("the model device takes clicks (feed_events), not sample words")
        if ready_percent != 100:
            raise DeviceError("the model device has no output back-pressure")
        if cycles < 0:
            raise DeviceError(f"cannot run {cycles} cycles")
        start, taken = self._cycle, self.answers_taken
        self._process(start, start + cycles, empty=True)
        if drain:
            self._drain()
        return RunResult(self._cycle - start, 0, 0, answers_sent=self.answers_taken - taken)

    def feed_events(self, frontend, time_ps: np.ndarray, channel: np.ndarray, *,
                    chunk: int = 0, ready_percent: int = 100, seed: int = 0,
                    drain: bool = True) -> int:
        """Tag clicks at ``time_ps`` (ps, cycle × period time base) on ``channel``.

        Same meaning as :meth:`tbqkd.sim.device.VerilatorDevice.feed_events`: the clock runs to
        the cycle after the last sample word of the clicks. ``chunk`` is accepted for
        compatibility (the model needs no chunking). Returns the cycles run.

        Raises
        ------
        DeviceError
            If arrays differ in length, a channel does not exist, or a click's first sample
            word would be in a cycle that has already passed.
        """
        if ready_percent != 100:
            raise DeviceError("the model device has no output back-pressure")
        time_ps = np.asarray(time_ps)
        channel = np.asarray(channel)
        if time_ps.shape != channel.shape or time_ps.ndim != 1:
            raise DeviceError("time_ps and channel must be 1-D arrays of one length")
        start = self._cycle
        if not len(time_ps):
            if drain:
                self._drain()
            return self._cycle - start
        if channel.min() < 0 or channel.max() >= self.config.n_channels:
            raise DeviceError(f"channel out of range 0..{self.config.n_channels - 1}")
        order = np.argsort(time_ps, kind="stable")
        time_ps, channel = time_ps[order], channel[order].astype(np.int64)
        cycle, chan, code, extra, hit, first_word = self._hits(frontend, time_ps, channel)
        if first_word < self._cycle:
            raise DeviceError(f"{self._cycle - first_word} cycles of sample words were "
                              "scheduled for cycles that had already passed")
        end = int(cycle.max()) + 1 if len(cycle) else self._cycle
        end = max(end, self._last_word_cycle + 1, self._cycle)
        self.events_fed += len(time_ps)
        self._pending_hits = (cycle, chan, code, extra, hit)
        self._process(start, end, empty=False)
        if drain:
            self._drain()
        return self._cycle - start

    def _drain(self) -> None:
        """Clock until the core has been quiet for the flush time-out plus 64 cycles.

        Like the Verilator backend: read ``FLUSH_CYCLES``, then run until no stream has moved
        for that long (at most twice as long). A framer holds its newest record back until
        the flush time-out, so the last move is that release.
        """
        idle = self.read("FLUSH_CYCLES") + 64
        start = self._cycle
        last_answer = self._answer(start, start + 2 * idle)
        flush = self._values["FLUSH_CYCLES"]
        moves = [r + flush for r in self._held.values()] + [self._last_window + 2]
        if last_answer is not None:
            moves.append(last_answer)
        last = max(m for m in moves)
        end = start + idle if last < start else last + 1 + idle
        self._cycle_to(min(end, start + 2 * idle))

    # --- the tagger -----------------------------------------------------------------------
    def _hits(self, frontend, time_ps, channel):
        """Every sample word's hit: ``(cycle, channel, code, extra, hit, first word cycle)``.

        Isolated clicks on a delay-line front end without bubbles: straight from the click
        time and the taps (:func:`kernels.click_hits`). Clicks of a channel close enough to
        share or touch a word, and every click on other front ends: through the sample words
        and the golden encoder. Sets the cycle of the last non-zero sample word.
        """
        offsets = np.ascontiguousarray(frontend.sample_offsets_ps(), dtype=np.float64)
        num, den = frontend.period_ps.numerator, frontend.period_ps.denominator
        period = float(frontend.period_ps)
        pw = float(frontend.pulse_width_ps)
        lo = int(np.floor((offsets.min() - pw) / period)) - 1
        hi = int(np.ceil(offsets.max() / period)) + 1
        fast = isinstance(frontend, DelayLineFrontend) and not frontend._has_post_process(None) \
            and np.issubdtype(time_ps.dtype, np.integer)
        n = len(time_ps)
        if fast:
            reach = pw + float(offsets.max() - offsets.min()) + 3 * period
            cycle, code, near, cycle0, resid, ok = kernels.click_hits(
                time_ps.astype(np.int64), channel, num, den, offsets, period, pw, -hi, -lo,
                reach, self.config.n_channels)
            any_near = bool(near.any())
            iso = ~near if any_near else slice(None)
            if not (ok[iso] if any_near else ok).all():
                raise DeviceError("front end produced a pulse without a hit")
            last_word = self._last_word(cycle0[iso][-8:], resid[iso][-8:], offsets, period,
                                        pw, -lo) if not any_near or iso.any() else None
        else:
            near = np.ones(n, dtype=bool)
            iso = ~near
            last_word = None
            cycle = code = np.zeros(n, np.int64)
        if near.any():
            wc, wch, wcode, wextra, whit, first, last = self._word_hits(
                frontend, time_ps[near], channel[near])
            last_word = last if last_word is None else max(last_word, last)
            cycle = np.concatenate([cycle[iso], wc])
            chan = np.concatenate([channel[iso], wch])
            code = np.concatenate([code[iso], wcode])
            extra = np.concatenate([np.zeros(int(iso.sum()), np.int64), wextra])
            hit = np.concatenate([np.ones(int(iso.sum()), bool), whit])
            order = np.lexsort((chan, cycle))
            cycle, chan, code, extra, hit = (a[order] for a in (cycle, chan, code, extra, hit))
            first_word = min(first, int(cycle[0])) if len(cycle) else first
        else:
            chan, extra, hit = channel, np.zeros(n, np.int64), np.ones(n, bool)
            # time order is cycle order; one cycle may hold clicks of several channels
            same = cycle[1:] == cycle[:-1]
            if (same & (chan[1:] < chan[:-1])).any():
                order = np.lexsort((chan, cycle))
                cycle, chan, code = cycle[order], chan[order], code[order]
            first_word = int(cycle[0])       # a delay line's first non-zero word is the hit
        self._last_word_cycle = last_word if last_word is not None else int(cycle[-1])
        return cycle, chan, code, extra, hit, first_word

    @staticmethod
    def _last_word(cycle0, resid, offsets, period, pulse_width, k_max) -> int | None:
        """The last cycle with a non-zero sample word of these pulses (front-end float ops)."""
        best = None
        s0 = float(offsets[0])
        for c0, r in zip(cycle0.tolist(), resid.tolist(), strict=True):
            k = k_max
            while k > -k_max and not (r - k * period) + pulse_width > s0:
                k -= 1
            best = c0 + k if best is None else max(best, c0 + k)
        return best

    def _word_hits(self, frontend, time_ps, channel):
        """Hits of clicks through the sample words, as the golden tagger encodes them."""
        words = frontend.words(time_ps, channel)
        bits = words.bits() if len(words) else np.zeros((0, self.config.word_width), np.uint8)
        cyc = np.asarray(words.cycle, np.int64)
        ch = np.asarray(words.channel, np.int64)
        order = np.lexsort((cyc, ch))
        prev_last = np.zeros(len(cyc), np.uint8)
        same = (ch[order][1:] == ch[order][:-1]) & (cyc[order][1:] == cyc[order][:-1] + 1)
        prev_last[order[1:][same]] = bits[order[:-1][same], -1]
        hit, code, extra = encode_words(bits, prev_last, self.config.frontend)
        keep = hit | (extra > 0)
        first, last = (int(cyc[0]), int(cyc[-1])) if len(cyc) else (self._cycle, self._cycle)
        return cyc[keep], ch[keep], code[keep], extra[keep], hit[keep], first, last

    def _process(self, start: int, end: int, *, empty: bool) -> None:
        """Run cycles ``start`` … ``end − 1`` with the pending hits (if any) and answers."""
        if not empty:
            cycle, chan, code, extra, hit = self._pending_hits
            self._pending_hits = None
            self._tag(cycle, chan, code, extra, hit)
        self._answer(start, end)
        self._cycle_to(end)
        self._phase_events(self._cycle)

    def _tag(self, cycle, chan, code, extra, hit) -> None:
        c = self.config
        run = self._values["CONTROL"] & 1
        enabled = np.array([run and self._values[f"CH{ch}_CONTROL"] & 1
                            for ch in range(c.n_channels)], dtype=np.bool_)
        dead = np.array([self._values[f"CH{ch}_DEAD_TIME"] & 0xFFFFFF
                         for ch in range(c.n_channels)], np.int64)
        accepted = kernels.dead_time_gate(cycle, chan, hit, extra, enabled, dead,
                                          self._last_accept, self._events, self._suppressed)
        if not accepted.all():
            cycle, chan, code = cycle[accepted], chan[accepted], code[accepted]
        if not len(cycle):
            return
        delay = np.array([_signed(self._values[f"CH{ch}_DELAY"], 32)
                          for ch in range(c.n_channels)], np.int64)[chan]
        cal = self._cal[chan, code]
        arrival, self._serial_free = kernels.serialise(cycle, TAG_LATENCY, self._serial_free)
        if int(cycle[-1]) - int(cycle[0]) < _SEGMENT_CYCLES:
            base = int(cycle[0])
            stamp, slot, phase = self._stamp(base, cycle - base, cal, delay)
        else:       # segments short enough that cycle offsets times the slot step fit int64
            parts, seg_start = [], 0
            while seg_start < len(cycle):
                base = int(cycle[seg_start])
                seg_end = int(np.searchsorted(cycle, base + _SEGMENT_CYCLES))
                sl = slice(seg_start, seg_end)
                parts.append(self._stamp(base, cycle[sl] - base, cal[sl], delay[sl]))
                seg_start = seg_end
            stamp, slot, phase = (np.concatenate(p) for p in zip(*parts, strict=True))
        good = phase >= 0
        bad = len(good) - int(np.count_nonzero(good))
        self._range_errors = (self._range_errors + bad) & _MASK32
        if self._values["CONTROL"] >> 1 & 1:
            self._streams["m_axis"] += TAG.encode(timestamp=stamp, channel=chan, code=code)
            self._held["m_axis"] = int(arrival[-1]) + _TAG_HOLD
            self._frame(len(stamp))
        if bad:
            arrival, slot, phase, chan = arrival[good], slot[good], phase[good], chan[good]
        self._histogram_events(arrival, chan, phase)
        self._classify(arrival, slot, phase, chan)

    def _stamp(self, base: int, k: np.ndarray, cal: np.ndarray, delay: np.ndarray,
               clk: _Clock | None = None):
        """Timestamps and (slot, phase) of tags in cycles ``base + k`` (exact integers, ``k``
        ascending)."""
        c, clk = self.config, clk or self._clock
        if clk.before is not None and base < clk.origin:
            cut = int(np.searchsorted(k, clk.origin - base))
            if cut == len(k):
                return self._stamp(base, k, cal, delay, clk.before)
            second = self._stamp(clk.origin, k[cut:] - (clk.origin - base), cal[cut:],
                                 delay[cut:], replace(clk, before=None))
            if cut == 0:
                return second
            first = self._stamp(base, k[:cut], cal[:cut], delay[:cut], clk.before)
            return tuple(np.concatenate(p) for p in zip(first, second, strict=True))
        t_base = clk.time_at(base, c.period_num, c.period_den)
        rem_base = (clk.rem + (base - clk.origin) * c.period_num) % c.period_den
        slot_base, acc_base = clk.slot_state(base)
        t_off, slots, phase = kernels.stamp_slots(
            k, cal, delay, rem_base, c.period_num, c.period_den, acc_base, clk.step, clk.wrap,
            clk.den, self._values["SLOT_WRAP_INT"], CAL_FRAC_BITS)
        stamp = np.uint64(t_base) + t_off.astype(np.uint64) \
            if self._values["CONTROL"] >> 1 & 1 else t_off     # mod 2^64 like the RTL
        return stamp, (slots + slot_base) & _SLOT_MASK, phase

    def _frame(self, tags: int) -> None:
        """TLAST bookkeeping of ``m_axis``: every FRAME_WORDS-th tag, and at the flush."""
        words = max(1, self._values["FRAME_WORDS"] & 0xFFFF)
        total = self._frame_fill + tags
        self._frames_out += total // words
        self._frame_fill = total % words
        self._tags_out += tags
        if self._frame_fill:                     # the flush time-out closes the partial frame
            self._frames_out += 1
            self._frame_fill = 0

    # --- slot constants, preload ----------------------------------------------------------
    def _load_slot_constants(self, *, rebase: bool) -> None:
        v = self._values
        den = v["SLOT_DEN"] or 1
        step = v["SLOT_STEP_INT"] * den + v["SLOT_STEP_REM"]
        wrap = v["SLOT_WRAP_INT"] * den + v["SLOT_WRAP_REM"]
        clk = self._clock
        if not rebase:
            clk.step, clk.wrap, clk.den = max(step, 1), max(wrap, 1), den
            return
        # The register holds the value from the next cycle; the slot clock runs on it
        # SLOT_CONSTANTS_LATENCY cycles later, from the state it has reached then.
        switch = self._cycle + 1 + SLOT_CONSTANTS_LATENCY
        if clk.before is not None and clk.origin <= self._cycle:
            clk.before = None                    # an earlier change has taken effect
        slot, acc = clk.slot_state(switch)
        offset, rem = divmod(acc, clk.den)
        c = self.config
        self._clock = _Clock(origin=switch, time=clk.time_at(switch, c.period_num, c.period_den),
                             rem=(clk.rem + (switch - clk.origin) * c.period_num) % c.period_den,
                             slot=slot, acc=offset * den + rem, step=max(step, 1),
                             wrap=max(wrap, 1), den=den, before=clk)

    def _preload(self) -> None:
        v = self._values
        target = v["PRELOAD_CYCLE"]
        den = self._clock.den
        self._clock = _Clock(origin=target, time=v["PRELOAD_TIME"], rem=v["PRELOAD_TIME_REM"],
                             slot=v["PRELOAD_SLOT"] & _SLOT_MASK,
                             acc=v["PRELOAD_SLOT_OFFSET"] * den + v["PRELOAD_SLOT_REM"],
                             step=self._clock.step, wrap=self._clock.wrap, den=den)
        shift = target - (self._cycle + 1)     # the counter reads PRELOAD_CYCLE next cycle
        self._cycle += shift
        for attr in ("_hist_cycle", "_hist_init_cycle", "_dac_cycle", "_settle_until",
                     "_serial_free"):
            setattr(self, attr, getattr(self, attr) + shift)
        seen = self._last_accept != kernels.NO_EDGE
        self._last_accept[seen] += shift

    # --- classifier -----------------------------------------------------------------------
    def _classifier_config(self) -> ClassifierConfig:
        v = self._values
        names = self._classifier_registers
        state = tuple(v[name] for name in names)
        if self._classifier_cache is not None and self._classifier_cache[0] == state:
            return self._classifier_cache[1]
        config = self._build_classifier_config()
        self._classifier_cache = (state, config)
        self._classifier_arrays = (
            np.array([config.early_start, config.late_start, config.middle_start],
                     np.int64).T.copy(),
            np.array([config.early_width, config.late_width, config.middle_width],
                     np.int64).T.copy(),
            np.asarray(config.delay, np.int64))
        self._roles = np.asarray(config.role, np.int64)
        size = min(config.slot_period, 1 << 16)      # a table for the phases that occur
        self._bin_table = kernels.bin_table(*self._classifier_arrays[:2], size)
        return config

    def _build_classifier_config(self) -> ClassifierConfig:
        v, n = self._values, self.config.n_channels
        per = {name: [] for name in ClassifierConfig.PER_CHANNEL}
        for ch in range(n):
            per["role"].append(v[f"CH{ch}_ROLE"] & 7)
            per["delay"].append(_signed(v[f"CH{ch}_PHASE_DELAY"], PHASE_BITS))
            for w in ("early", "late", "middle"):
                per[f"{w}_start"].append(v[f"CH{ch}_{w.upper()}_START"] & 0xFFFFFF)
                per[f"{w}_width"].append(v[f"CH{ch}_{w.upper()}_WIDTH"] & 0xFFFFFF)
        return ClassifierConfig(n, (v["SLOT_WRAP_INT"] >> CAL_FRAC_BITS) & 0xFFFFFF,
                                ref_phase=v["REF_PHASE"] & 0xFFFFFF,
                                ref_window_log2=v["LOCK_WINDOW"] & 0x1F,
                                lock_threshold=v["LOCK_THRESHOLD"] & 0xFFFFFF, **per)

    def _classify(self, arrival, slot, phase, channel) -> None:
        """Classifier: reference events through the golden model (alignment, lock monitor),
        the others through :func:`kernels.classify`."""
        if not len(arrival):
            return
        cls = self._classifier
        cls.config = config = self._classifier_config()
        starts, widths, delays = self._classifier_arrays
        counts = np.zeros((config.n_channels, 4), np.int64)
        (k_cycle, k_slot, basis, bit, position, m_cycle, m_minus, refs,
         bad_phase) = kernels.classify(arrival, slot, phase, channel, self._roles, delays,
                                       starts, widths, self._bin_table, config.slot_period,
                                       CLASSIFIER_LATENCY, counts)
        for b, name in enumerate(("early", "late", "middle", "outside")):
            getattr(cls, name)[:] += counts[:, b]
        cls.bad_phase += bad_phase
        base_before, armed = cls.slot_base, cls.armed
        if len(refs):
            cls.run(slot[refs], phase[refs], channel[refs])
        base = np.int64(cls.slot_base)
        if armed and len(refs):        # events before the aligning reference: the old base
            base = np.where(position < refs[0], np.int64(base_before), base)
        self._detections(k_cycle, (k_slot - base) & _SLOT_MASK, basis, bit)
        self._mid_cycles.append(m_cycle)
        self._mid_minus.append(m_minus)

    # --- histogram ------------------------------------------------------------------------
    def _run_histogram_control(self, cycle: int) -> None:
        if cycle > self._hist_cycle and self._hist.quiet:     # nothing to run: just time
            self._hist.cycle += cycle - self._hist_cycle
            self._hist_cycle = cycle
        elif cycle > self._hist_cycle:
            before = self._hist.accumulating_bank
            self._hist.run(cycle - self._hist_cycle, [], [], [])
            self._hist_cycle = cycle
            self._hist_sync_banks(before)

    def _histogram_control(self, *, swap: int, release: int) -> None:
        before = self._hist.accumulating_bank
        was_snapshot = self._hist.spare_state == SpareState.SNAPSHOT
        self._hist.run(1, [], [], [], swaps_at=[0] if swap else [],
                       releases_at=[0] if release else [])
        self._hist_cycle += 1
        self._hist_sync_banks(before, was_snapshot)

    def _hist_sync_banks(self, before: int, was_snapshot: bool = True) -> None:
        """Zero our copy of a bank when the control model starts clearing it."""
        h = self._hist
        if h.accumulating_bank != before:
            return
        if was_snapshot and h.spare_state != SpareState.SNAPSHOT:
            self._banks[1 - h.accumulating_bank] = 0

    def _histogram_events(self, arrival, channel, phase) -> None:
        ctrl = self._hist_control_fields()
        if not ctrl["enable"] or not len(arrival):
            return
        outside, skipped = kernels.histogram_add(
            self._banks[self._hist.accumulating_bank], arrival, channel, phase, ctrl["offset"],
            ctrl["shift"], HISTOGRAM_BINS, self._hist_init_cycle, np.uint64(_MASK32))
        self._hist_outside = (self._hist_outside + outside) & _MASK64
        self._hist_skipped = (self._hist_skipped + skipped) & _MASK64

    def _hist_control_fields(self) -> dict[str, int]:
        v = self._values["HIST_CONTROL"]
        return {"enable": v & 1, "shift": (v >> 1) & 0x1F,
                "offset": self._values["HIST_OFFSET"] & 0xFFFFFF}

    def _hist_data(self) -> int:
        addr = self._values["HIST_ADDR"]
        b, ch = addr & 0x3FF, (addr >> 10) & 0x1F
        h = self._hist
        if ch >= self.config.n_channels or h.spare_state != SpareState.SNAPSHOT:
            return 0
        return int(self._banks[1 - h.accumulating_bank][ch * HISTOGRAM_BINS + b])

    # --- sifter ---------------------------------------------------------------------------
    def _detections(self, when, slot, basis, bit) -> None:
        self._det_queue.append((when, slot, basis, bit))

    def _answer(self, start: int, end: int) -> int | None:
        """Join the detections of this run with the answers taken in cycles start … end−1.

        Returns the cycle the last answer was taken in (None: no answer).
        """
        dets = self._det_queue
        self._det_queue = []
        if dets:
            d_cycle, d_slot, d_basis, d_bit = (np.concatenate(p) for p in zip(*dets,
                                                                              strict=True))
        else:
            d_cycle = d_slot = d_basis = d_bit = np.zeros(0, np.int64)
        n_ans = min(self.answers_pending, max(0, end - start))
        if n_ans:
            raw = self._answers[:n_ans * ANSWER.nbytes]
            self._answers = self._answers[n_ans * ANSWER.nbytes:]
            ans = {k: a.astype(np.int64) for k, a in ANSWER.decode(raw.tobytes()).items()}
            a_cycle = start + np.arange(n_ans, dtype=np.int64)
            self.answers_taken += n_ans
        else:
            ans = None
            a_cycle = np.zeros(0, np.int64)
        if (len(d_cycle) or n_ans) and \
                not self._sift_fast(d_cycle, d_slot, d_basis, d_bit, a_cycle, ans):
            self._sift_exact(d_cycle, d_slot, d_basis, d_bit, a_cycle, ans)
        return int(a_cycle[-1]) if n_ans else None

    def _announce(self, seq, slot, basis, when: int) -> None:
        self._streams["m_axis_announce"] += ANNOUNCE.encode(seq=seq, slot=slot, basis=basis)
        self._held["m_axis_announce"] = when + _ANNOUNCE_HOLD

    def _limit(self) -> tuple[int, int]:
        return self._values["SIFT_MAX_PENDING"] & 0xFFFF, PENDING_DEPTH

    def _sift_fast(self, d_cycle, d_slot, d_basis, d_bit, a_cycle, ans) -> bool:
        """Bulk join when nothing expires, nothing is dropped and every answer is in order."""
        max_pending, depth = self._limit()
        p0, nd, na = len(self._store), len(d_cycle), len(a_cycle)
        # pending each detection finds: answers of the same cycle join first
        answered = np.searchsorted(a_cycle + _JOIN_LATENCY, d_cycle, side="right")
        found = p0 + np.arange(nd) - answered
        limit = max_pending if max_pending else depth
        if nd and found.max() >= limit:
            return False
        if na:
            if na > p0 + nd:
                return False
            head = int(self._store.seq[0]) if p0 else self._next_seq
            want = (head + np.arange(na)) % _SEQ_MOD
            # a detection is announced (joinable) once it is in the store before the answer
            det_before = np.searchsorted(d_cycle, a_cycle, side="left")
            if (np.arange(na) >= p0 + det_before).any() or (ans["seq"] != want).any():
                return False
            joined = np.concatenate([self._store.slot[:na], d_slot[:max(0, na - p0)]])
            if (joined != ans["slot"]).any():
                return False
        seqs = (self._next_seq + np.arange(nd)) % _SEQ_MOD
        self._next_seq = (self._next_seq + nd) % _SEQ_MOD
        self._store.append(seqs, d_slot, d_basis, d_bit)
        if nd:
            self._announce(seqs, d_slot, d_basis, int(d_cycle[-1]))
        s = self._sift
        s["detections"] += nd
        s["announced"] += nd
        if not na:
            return True
        st = self._store
        same = st.basis[:na] == ans["basis"]
        z = same & (ans["basis"] == Basis.Z)
        x = same & (ans["basis"] == Basis.X)
        self._streams["m_axis_sifted"] += SIFTED.encode(slot=st.slot[:na][z], bit=st.bit[:na][z])
        if z.any():
            self._held["m_axis_sifted"] = int(a_cycle[z][-1]) + _SIFTED_HOLD
        self._x_cycles.append(a_cycle[x] + _X_EVENT_LATENCY)
        self._x_bob.append(st.bit[:na][x])
        self._x_alice.append(ans["x_bit"][x])
        s["answers"] += na
        s["sifted_z"] += int(z.sum())
        s["sifted_x"] += int(x.sum())
        s["mismatch"] += int((~same).sum())
        st.drop(na)
        return True

    def _sift_exact(self, d_cycle, d_slot, d_basis, d_bit, a_cycle, ans) -> None:
        """The join rule operation by operation (golden sifter semantics), in cycle order.

        Answers joined in the same cycle as a detection go first (the join frees room before
        the lag limit is checked). The store is a deque here; records go out in batches.
        """
        max_pending, depth = self._limit()
        s = self._sift
        st = self._store
        store = deque(zip(st.seq.tolist(), st.slot.tolist(), st.basis.tolist(),
                          st.bit.tolist(), strict=True))
        ops = sorted([(int(c), 1, i) for i, c in enumerate(d_cycle)]
                     + [(int(c) + _JOIN_LATENCY, 0, j) for j, c in enumerate(a_cycle)])
        announced, sifted, x_events = [], [], []
        if ans is not None:
            a_seq, a_slot, a_basis, a_x = (ans[k].tolist() for k in ("seq", "slot", "basis",
                                                                      "x_bit"))
        next_seq, last_announce, last_z = self._next_seq, None, None
        for cycle, kind, i in ops:
            if kind == 1:                                  # a detection
                s["detections"] += 1
                if max_pending and len(store) >= max_pending:
                    store.popleft()
                    s["expired"] += 1
                elif len(store) >= depth:
                    s["dropped_full"] += 1
                    continue
                record = (next_seq, int(d_slot[i]), int(d_basis[i]), int(d_bit[i]))
                store.append(record)
                announced.append(record)
                last_announce = cycle
                next_seq = (next_seq + 1) % _SEQ_MOD
                continue
            s["answers"] += 1                               # an answer, joined in ``cycle``
            head = store[0][0] if store else next_seq
            d = (a_seq[i] - head) % _SEQ_MOD
            if d >= _SEQ_MOD // 2:
                self._sift_error("err_extra")
                continue
            if d >= len(store):
                self._sift_error("err_early")
                continue
            for _ in range(d):
                store.popleft()
                self._sift_error("err_missing")
            _, slot, basis, bit = store.popleft()
            if slot != a_slot[i]:
                self._sift_error("err_slot")
            elif basis != a_basis[i]:
                s["mismatch"] += 1
            elif basis == Basis.Z:
                sifted.append((slot, bit))
                last_z = cycle - _JOIN_LATENCY
                s["sifted_z"] += 1
            else:
                x_events.append((cycle + 1, bit, a_x[i]))
                s["sifted_x"] += 1
        self._next_seq = next_seq
        self._store = _Store(*(np.array(column, dtype=np.int64).reshape(-1)
                               for column in (zip(*store, strict=True) if store
                                              else ([], [], [], []))))
        if announced:
            seq, slot, basis, _ = (np.array(c, np.int64) for c in zip(*announced, strict=True))
            self._announce(seq, slot, basis, last_announce)
            s["announced"] += len(announced)
        if sifted:
            slot, bit = (np.array(c, np.int64) for c in zip(*sifted, strict=True))
            self._streams["m_axis_sifted"] += SIFTED.encode(slot=slot, bit=bit)
            self._held["m_axis_sifted"] = last_z + _SIFTED_HOLD
        if x_events:
            cycle, bob, alice = (np.array(c, np.int64) for c in zip(*x_events, strict=True))
            self._x_cycles.append(cycle)
            self._x_bob.append(bob)
            self._x_alice.append(alice)

    def _sift_error(self, counter: str) -> None:
        self._sift[counter] += 1
        self._protocol_error = True

    # --- phase error unit -----------------------------------------------------------------
    def _phase_reset(self) -> None:
        self._det_queue: list = []
        self._mid_cycles: list = []
        self._mid_minus: list = []
        self._x_cycles: list = []
        self._x_bob: list = []
        self._x_alice: list = []
        self._phase_state = np.zeros(7, np.int64)
        self._held: dict[str, int] = {}        # framed stream -> cycle its last record is ready
        self._last_window = -(1 << 62)
        self._snapshot = (0, 0, 0, 0, 0, 0)
        self._irq = False
        self._phase_start = None
        self._slot_window = None            # [end_slot, counts] in slots mode
        self._phase_control_written()

    def _phase_fields(self) -> dict[str, int]:
        v = self._values["PHASE_CONTROL"]
        return {"enable": v & 1, "mode": v >> 1 & 1, "four_state": v >> 2 & 1}

    def _relative_slot(self, cycle: int) -> int:
        """The error-signal unit's slot input in ``cycle``: last cycle's slot − SLOT_BASE."""
        return (self._clock.slot_state(cycle - 1)[0] - self._classifier.slot_base) & _SLOT_MASK

    def _phase_control_written(self) -> None:
        f = self._phase_fields()
        if not f["enable"]:
            self._phase_state[:6] = 0
            self._slot_window = None
            return
        if f["mode"] == WindowMode.SLOTS and self._slot_window is None:
            length = (self._values["PHASE_WINDOW_SLOTS"] & ((1 << 48) - 1)) or 1
            # the write takes effect in the next cycle, which starts the window
            self._slot_window = [(self._relative_slot(self._cycle + 1) + length) & _SLOT_MASK,
                                 [0, 0, 0, 0]]

    def _phase_inputs(self, end: int):
        """Pop the error-signal inputs of cycles before ``end``, cycle-ordered."""
        if not any(len(a) for a in self._mid_cycles) and \
                not any(len(a) for a in self._x_cycles):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        mc = np.concatenate(self._mid_cycles) if self._mid_cycles else np.zeros(0, np.int64)
        mm = np.concatenate(self._mid_minus) if self._mid_minus else np.zeros(0, np.int64)
        xc = np.concatenate(self._x_cycles) if self._x_cycles else np.zeros(0, np.int64)
        xb = np.concatenate(self._x_bob) if self._x_bob else np.zeros(0, np.int64)
        xa = np.concatenate(self._x_alice) if self._x_alice else np.zeros(0, np.int64)
        cycle = np.concatenate([mc, xc])
        kind = np.concatenate([np.zeros(len(mc), np.int64), np.ones(len(xc), np.int64)])
        first = np.concatenate([mm, xb]).astype(np.int64)
        alice = np.concatenate([np.zeros(len(mc), np.int64), xa]).astype(np.int64)
        order = np.lexsort((kind, cycle))
        cycle, kind, first, alice = cycle[order], kind[order], first[order], alice[order]
        cut = int(np.searchsorted(cycle, end))
        later = slice(cut, None)
        self._mid_cycles = [cycle[later][kind[later] == 0]]
        self._mid_minus = [first[later][kind[later] == 0]]
        self._x_cycles = [cycle[later][kind[later] == 1]]
        self._x_bob = [first[later][kind[later] == 1]]
        self._x_alice = [alice[later][kind[later] == 1]]
        return cycle[:cut], kind[:cut], first[:cut], alice[:cut]

    def _phase_events(self, end: int) -> None:
        cycle, kind, first, alice = self._phase_inputs(end)
        f = self._phase_fields()
        if not f["enable"]:
            return
        if f["mode"] == WindowMode.SLOTS:
            self._run_phase_slots(end, cycle, kind, first, alice, f["four_state"])
            return
        if not len(cycle):
            return
        if f["mode"] == WindowMode.EVENTS:
            events = (self._values["PHASE_WINDOW_EVENTS"] & _MASK32) or 1
            out = np.zeros((int((kind == 1).sum()) + 1, 6), np.int64)
            n = kernels.event_windows(kind, cycle, first, alice, f["four_state"], events,
                                      self._phase_state, out)
            rows = np.zeros((n, 7), np.int64)
            rows[:, :6] = out[:n]
            rows[:, 6] = [self._relative_slot(int(c)) for c in out[:n, 0]]
            self._close_windows(rows)

    def _run_phase_slots(self, until: int, cycle=None, kind=None, first=None, alice=None,
                         four_state=0) -> None:
        """Close every slots-mode window complete before cycle ``until``; count inputs."""
        window = getattr(self, "_slot_window", None)
        if window is None:
            return
        if cycle is None:
            cycle = np.zeros(0, np.int64)
            kind = first = alice = cycle
        length = (self._values["PHASE_WINDOW_SLOTS"] & ((1 << 48) - 1)) or 1
        done = 0
        while True:
            end_slot = window[0]
            absolute = end_slot + self._classifier.slot_base
            complete = self._clock.first_cycle_at_slot(absolute) + 1
            stop = min(complete, until)
            cut = int(np.searchsorted(cycle, stop)) if len(cycle) else 0
            self._add_counts(window[1], kind[done:cut], first[done:cut], alice[done:cut],
                             four_state)
            done = cut
            if complete >= until:
                return
            counts = window[1]
            self._close_window(complete, int(self._phase_state[6]), *counts, end_slot)
            self._phase_state[6] = (self._phase_state[6] + 1) & _MASK32
            window[0] = (end_slot + length) & _SLOT_MASK
            window[1] = [0, 0, 0, 0]

    @staticmethod
    def _add_counts(counts, kind, first, alice, four_state) -> None:
        if not len(kind):
            return
        x = kind == 1
        err = (first ^ alice) & 1 if four_state else first & 1
        inc = (int(x.sum()), int((x & (err == 1)).sum()), int((~x & (first == 0)).sum()),
               int((~x & (first == 1)).sum()))
        for i in range(4):
            counts[i] = min(counts[i] + inc[i], COUNT_MAX)

    def _close_window(self, complete, index, x_sifted, x_errors, mid_plus, mid_minus,
                      end_slot) -> None:
        """Latch and send the window found complete in cycle ``complete``."""
        self._close_windows(np.array([[complete, index, x_sifted, x_errors, mid_plus,
                                       mid_minus, end_slot]], dtype=np.int64))

    def _close_windows(self, rows: np.ndarray) -> None:
        """Latch and send windows ``[complete cycle, index, counts ×4, end slot]`` in order."""
        if not len(rows):
            return
        self._snapshot = tuple(int(x) for x in rows[-1, 1:])
        self._irq = True
        self._last_window = max(self._last_window, int(rows[-1, 0]))
        names = ("index", "x_sifted", "x_errors", "mid_plus", "mid_minus", "end_slot")
        self._streams["m_axis_phase"] += PHASE_WINDOW.encode(
            **{k: rows[:, i + 1].astype(np.uint64) for i, k in enumerate(names)})

    # --- DAC ------------------------------------------------------------------------------
    def _dac_inputs(self) -> dict[str, int]:
        v = self._values
        config = v["DAC_CONFIG"]
        return {"frame_bits": config & 0x3F, "suffix_bits": config >> 6 & 0x1F,
                "clock_div": config >> 11 & 0xFF, "cpol": config >> 19 & 1,
                "prefix": v["DAC_PREFIX"] & 0xFFFF, "suffix": v["DAC_SUFFIX"] & 0xFFFF}

    def _dac_busy(self) -> bool:
        return self._dac.phase != 0 or bool(self._dac.pending)

    def _dac_step(self, write: int = 0) -> None:
        inputs = self._dac_inputs()
        self._dac.step(write=write, value=self._values["DAC_VALUE"] & 0xFFFF, **inputs)
        self._dac_cycle += 1
        if self._dac.writes != self._dac_writes_seen:
            self._dac_writes_seen = self._dac.writes
            self._dac_frames += 1
            self._dac_last = self._dac.frames[-1]

    def _run_dac(self, cycle: int) -> None:
        inputs = self._dac_inputs()
        while self._dac_cycle < cycle:
            d = self._dac
            if d.config == inputs:               # settled inputs: skip what only counts down
                if d.phase == 0 and not d.pending:
                    self._dac_cycle = cycle      # idle: nothing changes
                    return
                self._dac_cycle += d.wait(cycle - self._dac_cycle)
                if self._dac_cycle == cycle:
                    return
            self._dac_step()

    def dac(self) -> tuple[int, int, int]:
        """The last frame the DAC received: ``(word, bits, frames so far)``."""
        self._run_dac(self._cycle)
        word, bits = self._dac_last
        return word, bits, self._dac_frames

    def close(self) -> None:
        """Release the model's buffers (nothing else to close)."""
        self._streams = {p.prefix: bytearray() for p in STREAMS if p.direction == "out"}


def open_model_device(config: TaggerConfig | None = None) -> ModelDevice:
    """A reference-model core for ``config``, reset, with its ID checked."""
    device = ModelDevice(config)
    device.check_identity()
    return device


def event_rate(duration_s: float = 30.0, *, chunk_s: float = 1.0, seed: int = 1,
               scenario: str = "paper-120km") -> dict:
    """Events per second of :meth:`ModelDevice.feed_events` plus answer processing.

    Runs ``duration_s`` of the twin's ``scenario`` through a model device configured like the
    link (Z, X+, X− roles, reference, 1 s error-signal windows), one ``chunk_s`` chunk at a
    time: feed the clicks, read the announcements, answer each with a fixed function of the
    slot, read the sifted key and windows. The twin's own time is not counted. Returns the
    event count, the model's wall time and the median per-chunk rate.
    """
    import time

    from tbqkd.host.receiver import ReceiverInterface, Window
    from tbqkd.host.tagger import TaggerInterface

    from .frontend import make_frontend
    from .twin import Scenario, Twin

    config = TaggerConfig()
    frontend = make_frontend(config.frontend, config.word_width, config.period_ps, seed=8)
    device = open_model_device(config)
    tagger, rx = TaggerInterface(device), ReceiverInterface(device)
    for ch in range(config.n_channels):
        tagger.write_calibration(ch, frontend.ideal_fine_ps())
    tagger.set_tag_stream(False)
    windows = {"early": Window(0, 3_000), "middle": Window(3_000, 4_000),
               "late": Window(7_000, 3_500)}
    for ch, role in enumerate((Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS)):
        rx.set_channel_role(ch, role, **windows)
    rx.set_reference(1_200, threshold_ps=300)
    rx.set_phase_window(slots=75_947_000)
    device.feed(None, 6_000)
    rx.align()
    shift = (device.cycle + 100) * config.period_num
    events, wall, rates = 0, 0.0, []
    for chunk in Twin(Scenario.load(scenario), seed=seed).chunks(duration_s, chunk_s):
        t = chunk.time_ps.astype(np.int64) + shift
        tic = time.perf_counter()
        device.feed_events(frontend, t, chunk.channel, drain=False)
        ann = rx.read_announcements()
        basis = (ann["slot"] * np.uint64(0x9E3779B1) >> np.uint64(7)) & np.uint64(1)
        rx.send_answers(ann["seq"], ann["slot"], basis)
        rx.read_sifted()
        rx.read_phase_windows()
        took = time.perf_counter() - tic
        events, wall = events + len(t), wall + took
        rates.append(len(t) / took)
    return {"events": events, "model_wall_s": wall, "events_per_s": events / wall,
            "median_chunk_events_per_s": float(np.median(rates)),
            "sifted_z": rx.sifter_counters()["sifted_z"]}
