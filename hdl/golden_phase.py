"""Bit-exact, cycle-accurate reference models of the phase error unit and the SPI DAC master.

:class:`PhaseErrorModel` is the golden model of :class:`tbqkd.hdl.phase_error.PhaseErrorUnit`
and :class:`SpiDacModel` that of :class:`tbqkd.hdl.spi_dac.SpiDac`. Both are stepped once per
clock cycle with the values the block's inputs have in that cycle, and return the values its
outputs (all registered) have right after that cycle's rising edge. Pure Python: no Amaranth.

The DAC framing helpers (:func:`dac8568_prefix`, :func:`ad5686_prefix`) give the command and
address bits that go in front of the 16 data bits, so that the host and the tests build frames
the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .records import PHASE_WINDOW, SLOT_BITS

__all__ = ["PhaseErrorModel", "PhaseErrorOutputs", "SpiDacModel", "SpiDacOutputs",
           "WindowMode", "COUNT_MAX", "frame_word", "framing_valid", "dac8568_prefix",
           "ad5686_prefix", "DAC8568_FRAME_BITS", "DAC8568_SUFFIX_BITS", "AD5686_FRAME_BITS"]

SLOT_MASK = (1 << SLOT_BITS) - 1
#: Window counts saturate at this value instead of wrapping.
COUNT_MAX = (1 << 32) - 1


class WindowMode:
    """Values of the ``mode`` input of the phase error unit."""

    SLOTS = 0   #: a window is ``window_slots`` slots long
    EVENTS = 1  #: a window closes after its ``window_events``-th sifted X event


def _reached(slot: int, end_slot: int) -> bool:
    """``slot`` is at or past ``end_slot``, modulo 2^48 (half the range counts as "past")."""
    return ((slot - end_slot) & SLOT_MASK) < 1 << (SLOT_BITS - 1)


@dataclass
class PhaseErrorOutputs:
    """Outputs of the phase error unit right after one clock edge."""

    snap_index: int
    snap_x_sifted: int
    snap_x_errors: int
    snap_mid_plus: int
    snap_mid_minus: int
    snap_end_slot: int
    irq: int
    win_tvalid: int
    win_tdata: int
    win_dropped: int


@dataclass
class PhaseErrorModel:
    """Golden model of ``PhaseErrorUnit`` (see there for the behaviour it defines).

    ``fifo_depth`` is the depth of the record FIFO behind the stream's output register. A
    window found complete in one step is held in :attr:`detected` and closes (snapshot, irq,
    FIFO) in the next step, as in the RTL. :attr:`closed` collects every closed window and
    :attr:`sent` the records transferred on the stream (``win_tvalid & win_tready`` at an
    edge), as dicts of :data:`PHASE_WINDOW` fields.
    """

    fifo_depth: int = 4
    running: int = 0
    end_slot: int = 0
    past_end: int = 0
    events_left: int = 0
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    index: int = 0
    snapshot: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    irq: int = 0
    detected: dict[str, int] | None = None      # closes (is emitted) at the next edge
    fifo: deque = field(default_factory=deque)
    out_valid: int = 0
    out_data: int = 0
    dropped: int = 0
    sent: list[dict[str, int]] = field(default_factory=list)
    closed: list[dict[str, int]] = field(default_factory=list)

    def step(self, *, slot: int, x_valid: int = 0, x_bob_bit: int = 0, x_alice_bit: int = 0,
             mid_valid: int = 0, mid_minus: int = 0, mode: int = WindowMode.SLOTS,
             window_slots: int = 1, window_events: int = 1, four_state: int = 0,
             enable: int = 1, irq_ack: int = 0, win_tready: int = 1) -> PhaseErrorOutputs:
        """Advance one clock cycle with these input values; return the outputs after the edge."""
        error = x_bob_bit ^ x_alice_bit if four_state else x_bob_bit
        inc = (x_valid, x_valid & error, mid_valid & (mid_minus ^ 1), mid_valid & mid_minus)
        window_slots = window_slots or 1
        window_events = window_events or 1
        record = None
        if not enable:
            self.running = self.past_end = 0
            self.counts = [0, 0, 0, 0]
        else:
            base = self.counts if self.running else [0, 0, 0, 0]
            total = [min(c + i, COUNT_MAX) for c, i in zip(base, inc, strict=True)]
            if mode == WindowMode.SLOTS:
                complete = bool(self.running) and (slot == self.end_slot
                                                   or bool(self.past_end))
                window = base            # the boundary cycle starts the next window
                carry = list(inc)
            else:
                left = self.events_left if self.running else window_events
                complete = bool(x_valid) and left == 1
                window = total           # the N-th event and its cycle complete this window
                carry = [0, 0, 0, 0]
            self.past_end = int(bool(self.running) and not complete
                                and _reached(slot, self.end_slot))
            if complete or not self.running:
                self.events_left = (window_events - carry[0] if complete else
                                    window_events - x_valid) & COUNT_MAX
            else:
                self.events_left = (self.events_left - x_valid) & COUNT_MAX
            if complete:
                record = {"index": self.index, "x_sifted": window[0], "x_errors": window[1],
                          "mid_plus": window[2], "mid_minus": window[3], "end_slot": slot}
                self.counts = carry
                self.index = (self.index + 1) & 0xFFFF_FFFF
            else:
                self.counts = total
            if complete or not self.running:
                self.end_slot = (slot + window_slots) & SLOT_MASK
            self.running = 1

        # stream output register and the FIFO behind it (state before the edge decides)
        transfer = self.out_valid and win_tready
        if transfer:
            self.sent.append(PHASE_WINDOW.unpack(self.out_data))
        pop = bool(self.fifo) and (not self.out_valid or transfer)
        if pop:
            self.out_data = self.fifo.popleft()
            self.out_valid = 1
        elif transfer:
            self.out_valid = 0

        record, self.detected = self.detected, record
        if record is not None:
            self.closed.append(record)
            if len(self.fifo) == self.fifo_depth:
                self.fifo.popleft()      # keep the newest records
                self.dropped = min(self.dropped + 1, COUNT_MAX)
            self.fifo.append(PHASE_WINDOW.pack(**record))
            self.snapshot = tuple(record[k] for k in ("index", "x_sifted", "x_errors",
                                                      "mid_plus", "mid_minus", "end_slot"))
            self.irq = 1
        elif irq_ack:
            self.irq = 0
        return self.outputs()

    def outputs(self) -> PhaseErrorOutputs:
        s = self.snapshot
        return PhaseErrorOutputs(
            snap_index=s[0], snap_x_sifted=s[1], snap_x_errors=s[2], snap_mid_plus=s[3],
            snap_mid_minus=s[4], snap_end_slot=s[5], irq=self.irq, win_tvalid=self.out_valid,
            win_tdata=self.out_data if self.out_valid else 0, win_dropped=self.dropped)


# ---------------------------------------------------------------------------------------------
# SPI DAC

#: DAC8568: 4 prefix + 4 control + 4 address bits, 16 data bits, 4 feature bits.
DAC8568_FRAME_BITS = 32
DAC8568_SUFFIX_BITS = 4
#: AD5686: 4 command + 4 address bits, 16 data bits.
AD5686_FRAME_BITS = 24


def dac8568_prefix(channel: int, control: int = 0b0011) -> int:
    """The 12 bits before the data of a DAC8568 frame (default: write and update channel).

    Raises
    ------
    ValueError
        If ``channel`` is not 0..7 (A..H) or 15 (all) or ``control`` does not fit 4 bits.
    """
    if channel not in (*range(8), 15) or not 0 <= control < 16:
        raise ValueError(f"DAC8568: bad channel {channel} or control {control}")
    return (control << 4) | channel


def ad5686_prefix(channel_mask: int, command: int = 0b0011) -> int:
    """The 8 bits before the data of an AD5686 frame (default: write and update DAC n).

    ``channel_mask`` selects DACs A..D (bit 0 = A), as the AD5686's address nibble does.

    Raises
    ------
    ValueError
        If ``channel_mask`` or ``command`` does not fit 4 bits, or no channel is selected.
    """
    if not 0 < channel_mask < 16 or not 0 <= command < 16:
        raise ValueError(f"AD5686: bad channel mask {channel_mask} or command {command}")
    return (command << 4) | channel_mask


def framing_valid(frame_bits: int, suffix_bits: int) -> bool:
    """The SPI master sends a frame only when 16 + suffix_bits <= frame_bits <= 32."""
    return 16 + suffix_bits <= frame_bits <= 32


def frame_word(value: int, *, frame_bits: int, prefix: int, suffix_bits: int = 0,
               suffix: int = 0) -> int:
    """The ``frame_bits``-bit word sent MSB first: prefix, 16 data bits, suffix bits.

    Prefix bits that do not fit in ``frame_bits - 16 - suffix_bits`` are not sent; only the
    low ``suffix_bits`` bits of ``suffix`` are.
    """
    word = (prefix << (16 + suffix_bits)) | ((value & 0xFFFF) << suffix_bits) \
        | (suffix & ((1 << suffix_bits) - 1))
    return word & ((1 << frame_bits) - 1)


@dataclass
class SpiDacOutputs:
    """Outputs of the SPI DAC master right after one clock edge."""

    sclk: int
    mosi: int
    sync_n: int
    busy: int
    done: int
    writes: int
    rejected: int


class _Phase:
    IDLE, LEAD, HIGH, LOW, TAIL, GAP = range(6)


@dataclass
class SpiDacModel:
    """Golden model of ``SpiDac`` (see there for the frame timing it defines).

    Starts like the RTL out of reset: in the SYNC high time, one write of ``safe_value``
    pending.
    :attr:`frames` lists ``(word, frame_bits)`` of every frame started.
    """

    safe_value: int = 0x8000
    sync_high_cycles: int = 25
    phase: int = _Phase.GAP
    count: int = -1
    pending: int = 1
    pending_value: int = -1
    shift: int = 0
    bits_left: int = 0
    div: int = 1
    cpol: int = 0
    sclk: int = 0
    mosi: int = 0
    sync_n: int = 1
    done: int = 0
    writes: int = 0
    rejected: int = 0
    frames: list[tuple[int, int]] = field(default_factory=list)
    #: the configuration inputs of the previous cycle (the RTL registers them), reset to 0
    config: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("frame_bits", "prefix", "suffix_bits", "suffix", "clock_div", "cpol"), 0))

    def __post_init__(self) -> None:
        if self.pending_value < 0:
            self.pending_value = self.safe_value
        if self.count < 0:               # out of reset: in the SYNC high time
            self.count = self.sync_high_cycles - 1

    def wait(self, cycles: int) -> int:
        """Let up to ``cycles`` cycles pass in which only a countdown runs; return how many.

        Exactly what :meth:`step` without a write and with the configuration inputs of the
        cycle before (``**self.config``) does in those cycles: the count goes down, ``done``
        drops, nothing else changes. Stops (returning fewer) where a step would do more: at
        the end of a count, or when idle (then the caller knows nothing will change either,
        unless a write is pending).
        """
        if cycles <= 0 or self.count == 0 or self.phase == _Phase.IDLE:
            return 0
        skip = min(cycles, self.count)
        self.count -= skip
        self.done = 0
        return skip

    def step(self, *, write: int = 0, value: int = 0, frame_bits: int = 24, prefix: int = 0,
             suffix_bits: int = 0, suffix: int = 0, clock_div: int = 1,
             cpol: int = 0) -> SpiDacOutputs:
        """Advance one clock cycle with these input values; return the outputs after the edge.

        The configuration inputs act one cycle late (they are registered in the RTL).
        """
        new_config = {"frame_bits": frame_bits, "prefix": prefix, "suffix_bits": suffix_bits,
                      "suffix": suffix, "clock_div": clock_div, "cpol": cpol}
        c = self.config
        frame_bits, prefix, suffix_bits = c["frame_bits"], c["prefix"], c["suffix_bits"]
        suffix, clock_div, cpol = c["suffix"], c["clock_div"], c["cpol"]
        self.config = new_config
        self.done = 0
        p = _Phase
        if self.phase == p.IDLE:
            self.sclk = cpol
            if write or self.pending:
                start_value = value if write else self.pending_value
                self.pending = 0
                if framing_valid(frame_bits, suffix_bits):
                    word = frame_word(start_value, frame_bits=frame_bits, prefix=prefix,
                                      suffix_bits=suffix_bits, suffix=suffix)
                    self.frames.append((word, frame_bits))
                    self.shift = (word << (32 - frame_bits)) & 0xFFFF_FFFF
                    self.bits_left = frame_bits
                    self.div = clock_div or 1
                    self.cpol = cpol
                    self.sync_n = 0
                    self.mosi = self.shift >> 31
                    self.phase, self.count = p.LEAD, self.div - 1
                else:
                    self.rejected = (self.rejected + 1) & 0xFFFF_FFFF
        else:
            if write:
                self.pending, self.pending_value = 1, value
            if self.count:
                self.count -= 1
            elif self.phase in (p.LEAD, p.LOW) and (self.phase == p.LEAD or self.bits_left):
                if self.phase == p.LOW:
                    self.shift = (self.shift << 1) & 0xFFFF_FFFF
                    self.mosi = self.shift >> 31
                self.sclk = 1
                self.phase, self.count = p.HIGH, self.div - 1
            elif self.phase == p.HIGH:
                self.sclk = 0
                self.bits_left -= 1
                self.phase, self.count = p.LOW, self.div - 1
            elif self.phase == p.LOW:
                self.sclk = self.cpol
                self.phase, self.count = p.TAIL, self.div - 1
            elif self.phase == p.TAIL:
                self.sync_n, self.mosi, self.done = 1, 0, 1
                self.writes = (self.writes + 1) & 0xFFFF_FFFF
                self.phase, self.count = p.GAP, self.sync_high_cycles - 1
            else:                                  # end of GAP
                self.phase = p.IDLE
        busy = int(self.phase != p.IDLE or self.pending)
        return SpiDacOutputs(sclk=self.sclk, mosi=self.mosi, sync_n=self.sync_n, busy=busy,
                             done=self.done, writes=self.writes, rejected=self.rejected)
