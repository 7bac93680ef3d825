"""Elaboration parameters of the receiver core and the register table they imply.

Pure Python (no Amaranth): the host builds the same :class:`RegisterMap` from the same
:class:`TaggerConfig` that the gateware was elaborated with, and the ``ID`` register (a hash of
the table) tells it whether they match.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

from .regmap import Field, RegisterMap

__all__ = ["TaggerConfig", "FRONTEND_KINDS", "add_tagger_registers",
           "add_slot_registers", "SlotClockConstants", "slot_clock_constants",
           "CAL_FRAC_BITS", "CAL_WIDTH", "OFFSET_WIDTH", "SLOT_REM_WIDTH",
           "SLOT_CONSTANTS_LATENCY"]

FRONTEND_KINDS = ("oversampling", "delay_line")

#: Calibrated fine times are unsigned fixed point: ``CAL_WIDTH`` bits, ``CAL_FRAC_BITS`` of them
#: fractional, in picoseconds (resolution 1/16 ps, range 0 to 65 535.9375 ps).
CAL_FRAC_BITS = 4
CAL_WIDTH = 20

#: The slot clock keeps the phase of each cycle's start within its slot in the same 1/16 ps
#: units, ``OFFSET_WIDTH`` bits (slot periods up to 2^24 ps = 16.7 µs), plus an exact remainder
#: of ``SLOT_REM_WIDTH`` bits (see :func:`slot_clock_constants`).
OFFSET_WIDTH = 28
SLOT_REM_WIDTH = 32
#: Cycles from a slot-clock constant register's new value to the slot clock running on it
#: (:class:`tbqkd.hdl.slots.SlotClock`; a preload one cycle earlier already uses it).
SLOT_CONSTANTS_LATENCY = 3


@dataclass(frozen=True)
class TaggerConfig:
    """Parameters of the time-tagger.

    Parameters
    ----------
    n_channels:
        Input channels, reference included (channel 0 is Alice's clock reference by convention).
    frontend:
        ``"oversampling"`` (ISERDES-style, ``word_width`` equally spaced samples per cycle) or
        ``"delay_line"`` (carry-chain thermometer code of ``word_width`` taps).
    word_width:
        Samples (or taps) per channel per clock cycle, ``W``.
    period_num, period_den:
        The clock period is exactly ``period_num / period_den`` picoseconds.
    fifo_depth:
        Entries of the event FIFO (one entry per cycle with at least one accepted event).
    slot_num, slot_den:
        Reset value of Alice's slot (pulse) period, exactly ``slot_num / slot_den`` ps; the host
        may program any other (see :func:`slot_clock_constants`). The default is the reference
        experiment's 75.947 MHz pulse rate.
    min_dead_time:
        Reset value of every channel's dead time, in cycles; at this setting the aggregate rate
        of all channels together can reach, but not exceed, one event per cycle.
    """

    n_channels: int = 5
    frontend: str = "delay_line"
    word_width: int = 256
    period_num: int = 4000
    period_den: int = 1
    fifo_depth: int = 512
    slot_num: int = 1_000_000_000
    slot_den: int = 75_947

    def __post_init__(self) -> None:
        if not 1 <= self.n_channels <= 32:
            raise ValueError(f"n_channels must be 1..32, not {self.n_channels}")
        if self.frontend not in FRONTEND_KINDS:
            raise ValueError(f"frontend must be one of {FRONTEND_KINDS}, not {self.frontend!r}")
        if not 2 <= self.word_width <= 256:
            raise ValueError(f"word_width must be 2..256, not {self.word_width}")
        if self.period_num <= 0 or not 1 <= self.period_den < 1 << 16:
            raise ValueError("clock period must be positive with 1 <= period_den < 65536")
        if self.period_ps >= 1 << (CAL_WIDTH - CAL_FRAC_BITS):
            raise ValueError("clock period exceeds the calibration table's range")
        if self.fifo_depth < 4 or self.fifo_depth & (self.fifo_depth - 1):
            raise ValueError("fifo_depth must be a power of two >= 4")
        slot_clock_constants(self.period_ps, self.slot_period)      # validates the slot period

    @property
    def slot_period(self) -> Fraction:
        return Fraction(self.slot_num, self.slot_den)

    @property
    def period_ps(self) -> Fraction:
        return Fraction(self.period_num, self.period_den)

    @property
    def period_int_ps(self) -> int:
        """Whole picoseconds added to the time base every cycle."""
        return self.period_num // self.period_den

    @property
    def period_rem(self) -> int:
        """Remainder (in 1/period_den ps) carried by the fractional accumulator."""
        return self.period_num % self.period_den

    @property
    def code_bits(self) -> int:
        """Bits of a raw fine code (codes run from 0 to ``word_width`` - 1)."""
        return max(1, math.ceil(math.log2(self.word_width)))

    @property
    def channel_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.n_channels)))

    @property
    def min_dead_time(self) -> int:
        return self.n_channels

    def time_at_cycle(self, cycle: int) -> int:
        """Integer picoseconds of the start of ``cycle``: ``floor(cycle * period)``."""
        return (cycle * self.period_num) // self.period_den

    def as_dict(self) -> dict:
        return asdict(self)


def add_tagger_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    """Add the tagger's registers to a register-table builder."""
    g = "tagger"
    regs.add("TAGGER_CONFIG", "ro", "Elaboration parameters of the tagger", group=g, fields=[
        Field("n_channels", 0, 6, "input channels, reference included",
              reset=config.n_channels),
        Field("frontend", 6, 2, "0 oversampling, 1 delay line",
              reset=FRONTEND_KINDS.index(config.frontend)),
        Field("word_width", 8, 9, "samples per channel per cycle", reset=config.word_width),
        Field("fifo_depth_log2", 17, 5, "log2 of the event FIFO depth",
              reset=config.fifo_depth.bit_length() - 1)])
    regs.add("PERIOD_NUM", "ro", "Clock period numerator: period = NUM / DEN ps", group=g,
             fields=[Field("value", 0, 32, reset=config.period_num)])
    regs.add("PERIOD_DEN", "ro", "Clock period denominator", group=g,
             fields=[Field("value", 0, 16, reset=config.period_den)])
    regs.add("CONTROL", "rw", "Global control", group=g, fields=[
        Field("run", 0, 1, "accept events (0: every channel is ignored)", reset=1),
        Field("tag_stream", 1, 1, "send every tag on m_axis (0: tags go only to classification "
              "and the histograms, and m_axis back-pressure cannot stall them)", reset=1)])
    regs.add("COMMAND", "wp", "Commands (write 1 to a bit)", group=g, fields=[
        Field("clear_counters", 0, 1, "zero every event, suppressed, dropped and tag counter"),
        Field("preload_time", 1, 1, "load CYCLE, the time base and its remainder from the "
              "PRELOAD_* registers (test hook)"),
        Field("flush", 2, 1, "close the current output frame (TLAST) as soon as possible")])
    regs.add("STATUS", "rc", "Sticky flags (write 1 to clear)", group=g, fields=[
        Field("overflow", 0, config.n_channels,
              "per channel: an event was dropped because the event FIFO was full")])
    regs.add("FRAME_WORDS", "rw", "Tags per output frame: TLAST on every FRAME_WORDS-th tag",
             group=g, fields=[Field("value", 0, 16, reset=256)])
    regs.add("FLUSH_CYCLES", "rw", "Idle cycles after which a partial frame is closed "
             "(TLAST on the last tag sent)", group=g, fields=[Field("value", 0, 24, reset=4096)])
    regs.add("CAL_ADDR", "rw", "Calibration table write address; auto-increments the code on "
             "each CAL_DATA write", group=g, fields=[
                 Field("code", 0, 8, "raw fine code"),
                 Field("channel", 8, 5, "channel")])
    regs.add("CAL_DATA", "wp", "Write a calibration entry: fine time of code CAL_ADDR.code on "
             "channel CAL_ADDR.channel, in 1/16 ps", group=g,
             fields=[Field("fine", 0, CAL_WIDTH)])
    regs.add("PRELOAD_TIME_REM", "rw", "Preload value of the fractional remainder "
             "(0 <= REM < PERIOD_DEN)", group=g, fields=[Field("value", 0, 16)])
    regs.add("CYCLE", "ro", "Coarse cycle counter (low word latches the high word)",
             width=64, group=g)
    regs.add("TIME", "ro", "Time base in ps: floor(CYCLE * period) (+ preload)", width=64,
             group=g)
    regs.add("PRELOAD_CYCLE", "rw", "Preload value of CYCLE", width=64, group=g)
    regs.add("PRELOAD_TIME", "rw", "Preload value of TIME in ps", width=64, group=g)
    regs.add("TAGS_OUT", "ro", "Tags sent on m_axis", width=64, group=g)
    regs.add("FRAMES_OUT", "ro", "Frames (TLAST) sent on m_axis", width=64, group=g)
    for ch in range(config.n_channels):
        gc = f"channel{ch}"
        regs.align(0x40)
        regs.add(f"CH{ch}_CONTROL", "rw", f"Channel {ch} control", group=gc, fields=[
            Field("enable", 0, 1, "accept events on this channel", reset=1)])
        regs.add(f"CH{ch}_DELAY", "rw", f"Channel {ch} input delay in ps, added to every "
                 "timestamp (skew correction)", group=gc,
                 fields=[Field("ps", 0, 32, signed=True)])
        regs.add(f"CH{ch}_DEAD_TIME", "rw", f"Channel {ch} dead time in cycles: a rising edge "
                 "fewer cycles after the last accepted one is suppressed and counted", group=gc,
                 fields=[Field("cycles", 0, 24, reset=config.min_dead_time)])
        regs.add(f"CH{ch}_EVENTS", "ro", f"Channel {ch} events accepted into the FIFO",
                 width=64, group=gc)
        regs.add(f"CH{ch}_SUPPRESSED", "ro", f"Channel {ch} rising edges suppressed by dead "
                 "time (including a second edge within one sample word)", width=64, group=gc)
        regs.add(f"CH{ch}_DROPPED", "ro", f"Channel {ch} events dropped because the event "
                 "FIFO was full", width=64, group=gc)


@dataclass(frozen=True)
class SlotClockConstants:
    """What the slot clock adds each cycle and where it wraps, in ``1/16 ps + rem/den`` units.

    The slot clock keeps the phase of the current cycle's start within its slot as ``offset``
    (1/16 ps) plus ``rem / den`` of a 1/16 ps, with ``den = period_den × slot_den``: every
    cycle it adds one clock period (``step_int``, ``step_rem``) and, when it reaches one slot
    period (``wrap_int``, ``wrap_rem``), subtracts it and counts a slot. Both periods are exact
    in these units, so the slot count never drifts from Alice's pulse count, however long the
    run.
    """

    step_int: int
    step_rem: int
    wrap_int: int
    wrap_rem: int
    den: int

    @property
    def step(self) -> int:
        """One clock period in units of 1/(16·den) ps."""
        return self.step_int * self.den + self.step_rem

    @property
    def wrap(self) -> int:
        """One slot period in units of 1/(16·den) ps."""
        return self.wrap_int * self.den + self.wrap_rem

    @property
    def slot_period_ps(self) -> int:
        """The slot period in whole picoseconds (rounded down)."""
        return self.wrap_int >> CAL_FRAC_BITS


def slot_clock_constants(clock_period_ps: Fraction,
                         slot_period_ps: Fraction) -> SlotClockConstants:
    """Slot-clock register values for exact clock and slot periods in ps.

    Raises
    ------
    ValueError
        If the slot is shorter than a clock period (at most one slot boundary per cycle), longer
        than 2^24 ps, or the common denominator does not fit in 32 bits.
    """
    clock_period_ps, slot_period_ps = Fraction(clock_period_ps), Fraction(slot_period_ps)
    scale = 1 << CAL_FRAC_BITS
    den = clock_period_ps.denominator * slot_period_ps.denominator
    if den >= 1 << SLOT_REM_WIDTH:
        raise ValueError(f"slot clock denominator {den} does not fit in {SLOT_REM_WIDTH} bits")
    if slot_period_ps < clock_period_ps:
        raise ValueError(f"slot period {float(slot_period_ps)} ps is shorter than the clock "
                         f"period {float(clock_period_ps)} ps")
    if slot_period_ps >= 1 << (OFFSET_WIDTH - CAL_FRAC_BITS):
        raise ValueError(f"slot period {float(slot_period_ps)} ps exceeds "
                         f"{1 << (OFFSET_WIDTH - CAL_FRAC_BITS)} ps")
    step = clock_period_ps * scale * den
    wrap = slot_period_ps * scale * den
    assert step.denominator == 1 and wrap.denominator == 1
    step_int, step_rem = divmod(int(step), den)
    wrap_int, wrap_rem = divmod(int(wrap), den)
    return SlotClockConstants(step_int, step_rem, wrap_int, wrap_rem, den)


def add_slot_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    """Registers of the slot clock: Alice's slot period and the slot counter."""
    g = "slots"
    k = slot_clock_constants(config.period_ps, config.slot_period)
    regs.align(0x10)
    regs.add("SLOT_STEP_INT", "rw", "Slot clock: clock period, whole 1/16 ps", group=g,
             fields=[Field("value", 0, OFFSET_WIDTH, reset=k.step_int)])
    regs.add("SLOT_STEP_REM", "rw", "Slot clock: clock period, remainder in 1/(16·SLOT_DEN) ps",
             group=g, fields=[Field("value", 0, SLOT_REM_WIDTH, reset=k.step_rem)])
    regs.add("SLOT_WRAP_INT", "rw", "Slot clock: slot period, whole 1/16 ps", group=g,
             fields=[Field("value", 0, OFFSET_WIDTH, reset=k.wrap_int)])
    regs.add("SLOT_WRAP_REM", "rw", "Slot clock: slot period, remainder in 1/(16·SLOT_DEN) ps",
             group=g, fields=[Field("value", 0, SLOT_REM_WIDTH, reset=k.wrap_rem)])
    regs.add("SLOT_DEN", "rw", "Slot clock: denominator of the remainders", group=g,
             fields=[Field("value", 0, SLOT_REM_WIDTH, reset=k.den)])
    regs.add("PRELOAD_SLOT_OFFSET", "rw", "Preload value of the slot clock's offset (phase of "
             "the cycle start in its slot, 1/16 ps); loaded by COMMAND.preload_time", group=g,
             fields=[Field("value", 0, OFFSET_WIDTH)])
    regs.add("PRELOAD_SLOT_REM", "rw", "Preload value of the slot clock's remainder", group=g,
             fields=[Field("value", 0, SLOT_REM_WIDTH)])
    regs.add("SLOT_RANGE_ERRORS", "ro", "Tags whose phase stayed outside the slot after "
             "applying the channel delay (|CHn_DELAY| above one slot period); dropped from "
             "classification", group=g)
    regs.add("PRELOAD_SLOT", "rw", "Preload value of the slot counter", width=64, group=g)
    regs.add("SLOT", "ro", "Slot counter: slots since the slot clock was preloaded (low word "
             "latches the high word)", width=64, group=g)
