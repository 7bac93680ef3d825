"""The time-tagger: sample words in, calibrated 64-bit picosecond time tags out.

Data path, one clock domain (``sync``), fully pipelined at one sample word per channel per cycle::

    words ─▶ input regs ─▶ FirstEdgeEncoder ×N ─▶ ChannelGate ×N ─▶ event FIFO (one entry per
    cycle: time base, channel mask, codes) ─▶ serialiser (one tag per cycle, channel order)
    ─▶ calibration RAM + channel delay ─▶ output FIFO ─┬▶ TagFramer (TLAST) ─▶ m_axis
                                                       └▶ ph_* (slot, phase sum) ─▶ SlotMapper
                                                          (outside: receiver top, part 2)

Latency from a sample word to its tag on ``m_axis`` is about 20 cycles when idle (plus the framer's
look-ahead, see :class:`TagFramer`). The 64-bit additions of the timestamp are made in 32-bit
halves (carry select), so no carry chain is longer than 40 bits, and every block-RAM output goes
straight into a register.

Throughput and loss: every stage before the event FIFO takes all channels every cycle; the
serialiser emits one tag per cycle. So the core sustains an aggregate of one event per cycle
with zero loss, plus bursts up to ``fifo_depth`` cycles' worth of events. Each channel's dead
time resets to ``n_channels`` cycles, the setting at which all channels together can just reach
that bound. When the event FIFO is full, the events of that cycle are dropped, counted per
channel, and flag ``STATUS.overflow``: no event is lost silently.

Ordering guarantee: tags leave in order of detection cycle, and within one cycle in increasing
channel order. Timestamps of one channel are therefore non-decreasing (mod 2^64); across
channels, order holds up to the difference of their programmed delays plus one clock period.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .config import (
    CAL_FRAC_BITS,
    CAL_WIDTH,
    OFFSET_WIDTH,
    SLOT_REM_WIDTH,
    TaggerConfig,
    slot_clock_constants,
)
from .layouts import struct_layout
from .records import SLOT_BITS, TAG
from .slots import PHASE_SUM_WIDTH, SlotClock

__all__ = ["popcount", "popcount_levels", "FirstEdgeEncoder", "ChannelGate", "TimeBase",
           "TagFramer", "Tagger", "CollisionFreeFIFO", "ENCODER_LATENCY",
           "CAL_LOOKUP_LATENCY"]

#: Cycles from a sample word to the encoder's outputs: the delay-line encoder's ones count has a
#: register after every level of its counter tree (each level is one 6-input lookup, about 2.7 ns
#: through the ECP5's 4-input LUTs and routing) and one after the final addition.
ENCODER_LATENCY = 8


class CollisionFreeFIFO(wiring.Component):
    """A synchronous FIFO with the ports and the cycle behaviour of Amaranth's
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered` (``depth - 1`` entries in block RAM plus the
    RAM's read register; ``r_data`` valid while ``r_rdy``), built for the clock rate:

    * Its storage tells synthesis that a read never meets a write to the same entry (Yosys
      attribute ``no_rw_check``). That is true by construction: an entry is read only when the
      inner level is not zero and written only when it is below the inner depth, so the two
      addresses are equal only when one of the two cannot happen. Without the attribute, Yosys
      puts a read-during-write bypass behind the block RAM's read data (one LUT per bit), and
      the RAM's output cannot use its own register (see :mod:`tbqkd.hdl.ecp5`).
    * Whether the inner level is zero and whether it is full are flip-flops, updated with the
      level from comparisons made beside it: ``w_rdy`` is a register, and between ``r_en`` and
      the RAM's read enable and pointers there is one gate, not a comparison of the level.
    * ``empty`` (``level`` is 0, beyond ``SyncFIFOBuffered``'s ports) is one gate from those
      flip-flops, with no adder before it.

    ``tests/hdl/test_fifo.py`` compares it with ``SyncFIFOBuffered`` cycle by cycle.
    """

    def __init__(self, *, width: int, depth: int) -> None:
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        self.width, self.depth = width, depth
        super().__init__({"w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
                          "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
                          "level": Out(range(depth + 1)), "empty": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        inner = self.depth - 1
        m.submodules.storage = storage = memory.Memory(shape=self.width, depth=inner, init=[],
                                                       attrs={"no_rw_check": 1})
        w_port, r_port = storage.write_port(), storage.read_port()
        level = Signal(range(inner + 1))
        empty, full = Signal(init=1), Signal()
        produce, consume = Signal(range(inner)), Signal(range(inner))
        do_write, do_read = Signal(), Signal()
        m.d.comb += [
            self.w_rdy.eq(~full),
            do_write.eq(self.w_en & ~full),
            do_read.eq(~empty & (~self.r_rdy | self.r_en)),
            w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(do_write),
            r_port.addr.eq(consume), r_port.en.eq(do_read), self.r_data.eq(r_port.data),
            self.level.eq(level + self.r_rdy), self.empty.eq(empty & ~self.r_rdy),
        ]

        def advance(pointer: Signal) -> Value:
            return Mux(pointer == inner - 1, 0, pointer + 1)

        with m.If(do_write):
            m.d.sync += produce.eq(advance(produce))
        with m.If(do_read):
            m.d.sync += [consume.eq(advance(consume)), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(do_write & ~do_read):
            m.d.sync += [level.eq(level + 1), empty.eq(0), full.eq(level == inner - 1)]
        with m.Elif(do_read & ~do_write):
            m.d.sync += [level.eq(level - 1), empty.eq(level == 1), full.eq(0)]
        return m


#: Cycles from a sample word at the tagger's input to its calibration lookup (stage L2) when the
#: pipeline is idle. A calibration write in that cycle or before reaches the event's tag; a
#: later one does not (tests/hdl/test_tagger_calibration_write.py pins it).
CAL_LOOKUP_LATENCY = ENCODER_LATENCY + 6


def _lowest_one(m: Module, bits: Value) -> Signal:
    """The index of the lowest set bit of ``bits`` (0 when none is set)."""
    index = Signal(range(max(len(bits), 2)))
    for i in reversed(range(len(bits))):
        with m.If(bits[i]):
            m.d.comb += index.eq(i)
    return index


def _issue_step(m: Module, mask: Value, name: str) -> tuple[Value, Value, Value]:
    """After the lowest event of ``mask`` issues: the events left, the lowest of them, and
    whether at most one is left.

    For up to 6 channels these are lookup tables of the mask (a LUT and its multiplexers on
    the ECP5), not a subtraction, a mask and a priority encoder in series.
    """
    n = len(mask)
    if n > 6:
        after = Signal(n, name=f"{name}_after")
        m.d.comb += after.eq(mask & (mask - 1))
        return after, _lowest_one(m, after), (after & (after - 1)) == 0

    def lowest(value: int) -> int:
        return (value & -value).bit_length() - 1 if value else 0

    def table(function, width: int) -> Value:
        return Array(Const(function(v & (v - 1)), width) for v in range(1 << n))[mask]

    return (table(lambda after: after, n),
            table(lowest, max(1, (n - 1).bit_length())),
            table(lambda after: (after & (after - 1)) == 0, 1))


def _count_ones_small(bits: list) -> object:
    """Ones among at most 6 bits, as a lookup table: one 6-input LUT per result bit."""
    table = Array(Const(bin(i).count("1"), 3) for i in range(1 << len(bits)))
    return table[Cat(*bits)]


def _compress(m: Module, columns: list[list], name: str) -> list[list]:
    """One level of the counter tree: each column cut into pieces of at most 6 bits; a piece
    of 3 or more is replaced by its count, whose bits go to this column and the next ones."""
    out: list[list] = [[] for _ in range(len(columns) + 2)]
    for weight, column in enumerate(columns):
        for start in range(0, len(column), 6):
            piece = column[start:start + 6]
            if len(piece) < 3:
                out[weight].extend(piece)
                continue
            # a signal per count: the next level indexes lookups with these bits, and nested
            # lookup expressions would be copied, not shared, by the Verilog back end
            count = Signal(len(piece).bit_length(), name=f"{name}_w{weight}_{start}")
            m.d.comb += count.eq(_count_ones_small(piece))
            for j in range(len(piece).bit_length()):
                out[weight + j].append(count[j])
    while out and not out[-1]:
        out.pop()
    return out


def popcount_levels(n: int) -> int:
    """Compression levels :func:`popcount` uses for ``n`` bits (the final addition excluded)."""
    heights, levels = [n], 0
    while max(heights) > 2:
        new = [0] * (len(heights) + 2)
        for weight, h in enumerate(heights):
            full, rest = divmod(h, 6)
            pieces = [6] * full + ([rest] if rest else [])
            for k in pieces:
                if k < 3:
                    new[weight] += k
                else:
                    for j in range(k.bit_length()):
                        new[weight + j] += 1
        heights = new
        while heights and not heights[-1]:
            heights.pop()
        levels += 1
    return levels


def popcount(m: Module, bits, *, stages: int = 0, name: str = "popcount") -> object:
    """Count the ones of ``bits``: a tree of 6:3 counters, then one two-row addition.

    The bits are kept in columns of equal weight. Each level cuts every column into pieces of
    at most 6 bits and replaces each piece of 3 or more by its ones count (a lookup, one LUT6
    per result bit), whose bits join the columns of weight ``w``, ``2w``, ``4w``; when no column
    holds more than two bits, the two rows are added. Each 6:3 counter removes three bits for
    three LUTs, as an adder does one bit per LUT, and the tree needs no adder over the pieces'
    counts (which cost about a third more LUTs for 256 bits). ``stages``: pipeline registers
    placed evenly between the levels (one cycle of latency each); the final addition is
    combinational after the last of them.
    """
    columns = [[b for b in bits]]
    levels = popcount_levels(len(columns[0]))
    # registers after these levels (0: the bits themselves; a level may take several)
    cuts = [min(round((i + 1) * (levels + 1) / (stages + 1)), levels) for i in range(stages)]
    for level in range(levels + 1):
        while cuts and cuts[0] == level:
            cuts.pop(0)
            registered = []
            for weight, column in enumerate(columns):
                if not column:
                    registered.append([])
                    continue
                r = Signal(len(column), name=f"{name}_l{level}_w{weight}")
                m.d.sync += r.eq(Cat(*column))
                registered.append([r[i] for i in range(len(column))])
            columns = registered
        if level < levels:
            columns = _compress(m, columns, f"{name}_l{level + 1}")
    rows = [Cat(*(column[i] if i < len(column) else Const(0, 1) for column in columns))
            for i in range(2)]
    return rows[0] + rows[1]


class FirstEdgeEncoder(wiring.Component):
    """Find the hit in one channel's sample word; registered, latency :data:`ENCODER_LATENCY`.

    ``oversampling``: the code is the index of the first rising edge, including an edge at the
    word boundary (the previous word's last sample low, this word's first sample high); other
    rising edges in the word are counted in ``extra``. ``delay_line``: a hit is the newest
    sample going high (previous word's last sample low); the code is ``W − popcount(word)``,
    the position of the transition of a clean thermometer code. Counting ones instead of looking
    for the first transition makes the encoder immune to bubbles (isolated wrong samples next to
    the transition), the usual fault of carry-chain TDCs.
    """

    def __init__(self, width: int, kind: str) -> None:
        if kind not in ("oversampling", "delay_line"):
            raise ValueError(f"unknown front-end kind {kind!r}")
        self._width = width
        self._kind = kind
        code_bits = max(1, (width - 1).bit_length())
        super().__init__({
            "word": In(width),
            "hit": Out(1), "code": Out(code_bits), "extra": Out(code_bits + 1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        w = self._width
        prev_last = Signal()
        m.d.sync += prev_last.eq(self.word[w - 1])
        if self._kind == "oversampling":
            # stage 1: rising edges; stage 2: first edge and edge count; stage 3: registered;
            # then delayed to ENCODER_LATENCY, the delay-line encoder's latency.
            rising = Signal(w)
            m.d.sync += rising.eq(self.word & ~Cat(prev_last, self.word[:-1]))
            count = popcount(m, rising)
            hit2, code2 = Signal(), Signal.like(self.code)
            extra2 = Signal.like(self.extra)
            with m.If(count != 0):
                m.d.sync += extra2.eq(count - 1)
            with m.Else():
                m.d.sync += extra2.eq(0)
            m.d.sync += hit2.eq(rising.any())
            code = Signal.like(self.code)
            for i in reversed(range(w)):
                with m.If(rising[i]):
                    m.d.comb += code.eq(i)
            m.d.sync += code2.eq(code)
            out = Cat(hit2, code2, extra2)
            for i in range(ENCODER_LATENCY - 3):
                delayed = Signal(len(out), name=f"out_d{i}")
                m.d.sync += delayed.eq(out)
                out = delayed
            m.d.sync += Cat(self.hit, self.code, self.extra).eq(out)
        else:
            # A ones count of the zeros, a register after every level of the counter tree:
            # W − popcount(word) is the number of zeros, so no subtraction follows the count
            # (at most W − 1 when there is a hit).
            hits = [Signal(name=f"hit{i}") for i in range(1, ENCODER_LATENCY)]
            m.d.sync += hits[0].eq(self.word[w - 1] & ~prev_last)
            for a, b in zip(hits, hits[1:], strict=False):
                m.d.sync += b.eq(a)
            m.d.sync += self.hit.eq(hits[-1])
            zeros = popcount(m, ~self.word, stages=ENCODER_LATENCY - 1, name="zeros")
            m.d.sync += self.code.eq(Mux(hits[-1], zeros, 0))
            m.d.sync += self.extra.eq(0)
        return m


class ChannelGate(wiring.Component):
    """Enable and non-extending dead time of one channel; registered, latency 1.

    An edge is accepted when the channel is enabled and at least ``dead_time`` cycles have
    passed since its last accepted edge. ``suppressed`` is the number of edges dropped by the
    dead time this cycle (a rejected hit plus the encoder's extra edges): 0, 1 or more.
    ``expire`` ends the dead time at once (simulation: idle time was skipped). A new
    ``dead_time`` takes effect two cycles after it changes: the comparison with it is made a
    cycle ahead, on the next count, so that no wide comparison sits before ``accept``.
    """

    def __init__(self, code_bits: int) -> None:
        super().__init__({
            "hit": In(1), "code": In(code_bits), "extra": In(code_bits + 1),
            "enable": In(1), "dead_time": In(24), "expire": In(1),
            "accept": Out(1), "accept_code": Out(code_bits), "suppressed": Out(code_bits + 2),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        top = (1 << 24) - 1
        since = Signal(24, init=top)              # cycles since the last accepted edge
        at_top = Signal(init=1)                   # since == top (it stays there), registered
        ready = Signal(init=1)                    # since >= dead_time, registered with since
        # dead_time - 1 and whether dead_time is 0 or at most 1, registered: the next count
        # since + 1 reaches dead_time exactly when since >= dead_time - 1 (or dead_time is 0).
        limit, limit_zero, limit_one = Signal(24), Signal(), Signal()
        m.d.sync += [limit.eq(self.dead_time - 1), limit_zero.eq(self.dead_time == 0),
                     limit_one.eq(self.dead_time <= 1)]
        accept = Signal()
        m.d.comb += accept.eq(self.hit & self.enable & ready)
        # the saturating increment is prepared beside the comparison, not after it
        since_inc = Signal(24)
        m.d.comb += since_inc.eq(Mux(at_top, since, since + 1))
        with m.If(accept):
            m.d.sync += [since.eq(1), at_top.eq(0), ready.eq(limit_one)]
        with m.Elif(self.expire):                 # the Verilator model skipped idle time
            m.d.sync += [since.eq(top), at_top.eq(1), ready.eq(1)]
        with m.Else():
            m.d.sync += [since.eq(since_inc), at_top.eq(at_top | (since == top - 1)),
                         ready.eq(at_top | limit_zero | (since >= limit))]
        m.d.sync += [
            self.accept.eq(accept),
            self.accept_code.eq(self.code),
            self.suppressed.eq(Mux(self.enable,
                                   self.extra + (self.hit & ~ready), 0)),
        ]
        return m


class TimeBase(wiring.Component):
    """Coarse cycle counter and the exact time base ``floor(cycle × num / den)`` in ps.

    Each cycle adds ``num // den`` ps and carries ``num % den`` into a remainder; when the
    remainder reaches ``den`` one more picosecond is added. ``preload`` loads all three (a test
    hook, and a way to align the time base to an external epoch).
    """

    def __init__(self, config: TaggerConfig) -> None:
        self._config = config
        super().__init__({
            "preload": In(1), "preload_cycle": In(64), "preload_time": In(64),
            "preload_rem": In(16),
            "cycle": Out(64), "time": Out(64), "rem": Out(16),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        with m.If(self.preload):
            m.d.sync += [self.cycle.eq(self.preload_cycle), self.time.eq(self.preload_time),
                         self.rem.eq(self.preload_rem)]
        with m.Else():
            m.d.sync += self.cycle.eq(self.cycle + 1)
            if c.period_den == 1:
                m.d.sync += self.time.eq(self.time + c.period_int_ps)
            else:
                wrap = Signal()
                m.d.comb += wrap.eq(self.rem >= c.period_den - c.period_rem)
                with m.If(wrap):
                    m.d.sync += [self.time.eq(self.time + c.period_int_ps + 1),
                                 self.rem.eq(self.rem + c.period_rem - c.period_den)]
                with m.Else():
                    m.d.sync += [self.time.eq(self.time + c.period_int_ps),
                                 self.rem.eq(self.rem + c.period_rem)]
        return m


class TagFramer(wiring.Component):
    """Puts 128-bit tags on an AXI4-Stream with TLAST framing that an AXI DMA accepts.

    TLAST marks every ``frame_words``-th tag, and also the last tag sent before the stream goes
    idle for ``flush_cycles`` cycles, so a DMA transfer always completes. A ``flush`` pulse
    closes the frame as soon as every tag already in the core has been sent: the framer waits
    until ``upstream_empty`` (nothing left in the tagger's pipeline and FIFOs) and marks the
    last tag. ``upstream_empty`` is registered first (it is a wide AND of the tagger's flags,
    and the flush test feeds the framer's load decision): the framer acts on the cycle before,
    when nothing upstream also means nothing can reach its input in this cycle. To know
    whether a tag is the last one, the framer holds one tag back until the next arrives or
    the idle time expires (``expire``: at once; simulation skipped idle time).
    Throughput one tag per cycle; TVALID/TDATA/TLAST stay stable until TREADY (AXI4-Stream
    rules). The end-of-frame and time-out comparisons are made one cycle ahead, on the next
    values of the counters, so that no wide comparison sits between TREADY and the output
    register; ``frame_words`` and ``flush_cycles`` take effect one tag or idle cycle after
    they change. ``i_ready_early`` equals ``i_ready`` whenever ``i_valid`` is high, and depends
    only on registers and ``tready`` (not on ``i_valid``, the time-out or ``upstream_empty``):
    a read enable for a source FIFO, which ignores it when it has nothing to give.
    """

    def __init__(self) -> None:
        super().__init__({
            "i_data": In(128), "i_valid": In(1), "i_ready": Out(1), "i_ready_early": Out(1),
            "frame_words": In(16), "flush_cycles": In(24), "flush": In(1),
            "upstream_empty": In(1), "expire": In(1),
            "tdata": Out(128), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
            "sent": Out(1), "sent_last": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        held = Signal(128)
        held_valid = Signal()
        # Idle cycles since the last tag left (saturating), kept with idle + 1 and a "full"
        # flag as registers, so that the next time-out test is one comparison from registers.
        idle, idle_plus1, idle_full = Signal(24), Signal(24, init=1), Signal()
        flush_pending = Signal()

        # The tags sent in this frame ("count") are held as count + 1, + 2, + 3 (registers, not
        # adders in series), so that "count >= frame_words - 1 - j" is one comparison each:
        # reach[j] = count_plus[j] >= frame_words (true for every count when frame_words <=
        # j + 1).
        count_plus = [Signal(17, init=j + 1, name=f"count_plus{j + 1}") for j in range(3)]
        reach = [plus >= self.frame_words for plus in count_plus]

        transfer = Signal()
        m.d.comb += transfer.eq(self.tvalid & self.tready)
        m.d.comb += [self.sent.eq(transfer), self.sent_last.eq(transfer & self.tlast)]
        with m.If(transfer):
            m.d.sync += self.tvalid.eq(0)
            m.d.sync += [plus.eq(Mux(self.tlast, j + 1, plus + 1))
                         for j, plus in enumerate(count_plus)]
        can_load = Signal()
        m.d.comb += can_load.eq(~self.tvalid | transfer)
        m.d.comb += self.i_ready_early.eq(~held_valid | can_load)
        # The frame ends at the tag loaded when count (as it will be then) >= frame_words - 1
        # (0 for frame_words 0). count then is one of three values (0 after TLAST,
        # count + 1 after a transfer, count otherwise); both comparisons, for the next tag and
        # the one after, are registered, each selected from the candidates' comparisons.
        at_limit, next_at_limit, limit_zero = Signal(), Signal(), Signal()
        m.d.sync += [
            at_limit.eq(Mux(transfer, Mux(self.tlast, self.frame_words <= 1, reach[1]),
                            reach[0])),
            next_at_limit.eq(Mux(transfer, Mux(self.tlast, self.frame_words <= 2, reach[2]),
                                 reach[1])),
            limit_zero.eq(self.frame_words <= 1),
        ]
        end_frame = Signal()
        m.d.comb += end_frame.eq(Mux(transfer, Mux(self.tlast, limit_zero, next_at_limit),
                                     at_limit))
        with m.If(self.flush):
            m.d.sync += flush_pending.eq(1)

        idle_done = Signal()           # idle >= flush_cycles, registered with idle
        # The output register follows the held tag whenever it may change (TDATA and TLAST are
        # free while TVALID is low), and the held tag takes the input whenever one comes; so
        # their 129 clock enables do not wait for the time-out and flush tests, only TVALID,
        # the idle count and the flags do.
        upstream_empty = Signal()      # upstream_empty of the cycle before (docstring)
        m.d.sync += upstream_empty.eq(self.upstream_empty)
        with m.If(~held_valid | (can_load & self.i_valid)):
            m.d.sync += held.eq(self.i_data)
        with m.If(held_valid & can_load):
            m.d.sync += [self.tdata.eq(held), self.tlast.eq(end_frame | ~self.i_valid)]
            flushing = flush_pending & upstream_empty
            timed_out = idle_done | flushing | self.expire
            with m.If(end_frame | self.i_valid | timed_out):
                m.d.sync += [self.tvalid.eq(1), idle.eq(0), idle_plus1.eq(1), idle_full.eq(0),
                             idle_done.eq(self.flush_cycles == 0)]
                with m.If(~self.i_valid & upstream_empty):        # nothing left: flushed
                    m.d.sync += flush_pending.eq(0)
                m.d.comb += self.i_ready.eq(1)
                m.d.sync += held_valid.eq(self.i_valid)
            with m.Else():                 # one more idle cycle (idle_next = idle + 1 or full)
                with m.If(idle_full):
                    m.d.sync += idle_done.eq(idle >= self.flush_cycles)
                with m.Else():
                    m.d.sync += [idle.eq(idle_plus1), idle_plus1.eq(idle_plus1 + 1),
                                 idle_full.eq(idle_plus1.all()),
                                 idle_done.eq(idle_plus1 >= self.flush_cycles)]
        with m.Elif(~held_valid):
            m.d.comb += self.i_ready.eq(1)
            m.d.sync += [held_valid.eq(self.i_valid), idle.eq(0), idle_plus1.eq(1),
                         idle_full.eq(0), idle_done.eq(self.flush_cycles == 0)]
        return m


class Tagger(wiring.Component):
    """The time-tagger of :class:`TaggerConfig` ``config`` (see the module docstring).

    Ports: ``words`` (one ``W``-bit sample word per channel per cycle), the register-facing
    controls and counters, the framed tag stream (``tdata``/``tvalid``/``tready``/``tlast``),
    and every tag's slot and unreduced phase sum (``ph_*``, one per cycle as tags leave the
    output FIFO, no back-pressure) for the :class:`~tbqkd.hdl.slots.SlotMapper` of the
    receiver core. The calibration table is written through ``cal_we``/``cal_channel``/
    ``cal_code``/``cal_fine`` while tagging continues (a true dual-port RAM: the lookup never
    stalls). ``sim_hooks``: add the simulation-only ``skip*`` ports (idle skipping in the
    Verilator model); without them those paths do not exist.

    Event counts leave as increments, counted by the register bank's counter bank:
    ``events_inc``/``dropped_inc`` (per channel: an accepted event stored, or lost to a full
    event FIFO), ``tags_inc``/``frames_inc`` (a tag, a frame's last tag sent). They are zero
    in a ``clear_counters`` cycle: a clear drops the counts of its own cycle, so the counters
    (``count <= clear ? inc : count + inc``) start from zero. ``suppressed`` (edges inside
    the dead time, up to many per cycle) is counted here.
    """

    def __init__(self, config: TaggerConfig, *, sim_hooks: bool = False) -> None:
        self._config = config
        self._sim_hooks = sim_hooks
        skip = {"skip": In(1), "skip_cycle": In(64), "skip_time": In(64), "skip_rem": In(16),
                "skip_slot": In(SLOT_BITS), "skip_slot_offset": In(OFFSET_WIDTH),
                "skip_slot_rem": In(SLOT_REM_WIDTH)} if sim_hooks else {}
        n, w, cb = config.n_channels, config.word_width, config.code_bits
        super().__init__({
            "words": In(data.ArrayLayout(unsigned(w), n)),
            # controls
            "run": In(1), "enable": In(n), "delay_ps": In(data.ArrayLayout(unsigned(32), n)),
            "dead_time": In(data.ArrayLayout(unsigned(24), n)),
            "clear_counters": In(1), "preload": In(1), "preload_cycle": In(64),
            "preload_time": In(64), "preload_rem": In(16),
            "cal_we": In(1), "cal_channel": In(5), "cal_code": In(cb),
            "cal_fine": In(CAL_WIDTH),
            "frame_words": In(16), "flush_cycles": In(24), "flush": In(1),
            "tag_stream": In(1),
            # simulation only: jump across idle time in one cycle
            **skip,
            # slot clock
            "slot_step_int": In(OFFSET_WIDTH), "slot_step_rem": In(SLOT_REM_WIDTH),
            "slot_wrap_int": In(OFFSET_WIDTH), "slot_wrap_rem": In(SLOT_REM_WIDTH),
            "slot_den": In(SLOT_REM_WIDTH), "preload_slot": In(SLOT_BITS),
            "preload_slot_offset": In(OFFSET_WIDTH), "preload_slot_rem": In(SLOT_REM_WIDTH),
            # status and counters
            "cycle": Out(64), "time": Out(64), "time_rem": Out(16), "slot": Out(SLOT_BITS),
            "slot_offset": Out(OFFSET_WIDTH), "slot_rem": Out(SLOT_REM_WIDTH),
            "events_inc": Out(n), "dropped_inc": Out(n),
            "suppressed": Out(data.ArrayLayout(unsigned(64), n)),
            "overflow": Out(n),
            "tags_inc": Out(1), "frames_inc": Out(1),
            # tag stream
            "tdata": Out(128), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
            # every tag as (slot, phase sum in 1/16 ps), one per cycle, no back-pressure
            "ph_valid": Out(1), "ph_slot": Out(SLOT_BITS), "ph_sum": Out(signed(PHASE_SUM_WIDTH)),
            "ph_channel": Out(8),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self._config
        n, w, cb = c.n_channels, c.word_width, c.code_bits

        if self._sim_hooks:
            skip, skip_cycle, skip_time, skip_rem = (self.skip, self.skip_cycle,
                                                     self.skip_time, self.skip_rem)
            skip_slot, skip_offset, skip_slot_rem = (self.skip_slot, self.skip_slot_offset,
                                                     self.skip_slot_rem)
        else:
            skip = skip_cycle = skip_time = skip_rem = Const(0)
            skip_slot = skip_offset = skip_slot_rem = Const(0)

        m.submodules.time_base = tb = TimeBase(c)
        m.d.comb += [tb.preload.eq(self.preload | skip),
                     tb.preload_cycle.eq(Mux(skip, skip_cycle, self.preload_cycle)),
                     tb.preload_time.eq(Mux(skip, skip_time, self.preload_time)),
                     tb.preload_rem.eq(Mux(skip, skip_rem, self.preload_rem)),
                     self.cycle.eq(tb.cycle), self.time.eq(tb.time), self.time_rem.eq(tb.rem)]

        m.submodules.slot_clock = sc = SlotClock(
            slot_clock_constants(c.period_ps, c.slot_period), held_preload=not self._sim_hooks)
        m.d.comb += [sc.step_int.eq(self.slot_step_int), sc.step_rem.eq(self.slot_step_rem),
                     sc.wrap_int.eq(self.slot_wrap_int), sc.wrap_rem.eq(self.slot_wrap_rem),
                     sc.den.eq(self.slot_den), sc.preload.eq(self.preload | skip),
                     sc.preload_slot.eq(Mux(skip, skip_slot, self.preload_slot)),
                     sc.preload_offset.eq(Mux(skip, skip_offset, self.preload_slot_offset)),
                     sc.preload_rem.eq(Mux(skip, skip_slot_rem, self.preload_slot_rem)),
                     self.slot.eq(sc.slot), self.slot_offset.eq(sc.offset),
                     self.slot_rem.eq(sc.rem)]

        # Stage 0: register the sample words with the time base (and slot) of their cycle.
        words_q = Signal.like(self.words)
        stamp = data.StructLayout({"time": 64, "slot": SLOT_BITS, "offset": OFFSET_WIDTH})
        time_pipe = [Signal(stamp, name=f"stamp_s{i}") for i in range(ENCODER_LATENCY + 2)]
        m.d.sync += [words_q.eq(self.words), time_pipe[0].time.eq(tb.time),
                     time_pipe[0].slot.eq(sc.slot), time_pipe[0].offset.eq(sc.offset)]
        for a, b in zip(time_pipe, time_pipe[1:], strict=False):
            m.d.sync += b.eq(a)
        # Which of the stages before the event FIFO may hold a hit (for the framer's flush),
        # registered per channel alongside words_q. A delay-line word holds a hit exactly when
        # its newest sample is high and the previous word's was low (the encoder's test), one
        # gate per channel; an oversampling word (a few samples) when any sample is high.
        channel_busy = Signal(n)
        if c.frontend == "delay_line":
            m.d.sync += channel_busy.eq(Cat(*(self.words[ch][w - 1] & ~words_q[ch][w - 1]
                                              for ch in range(n))))
        else:
            m.d.sync += channel_busy.eq(Cat(*(self.words[ch].any() for ch in range(n))))
        words_busy = Signal()
        m.d.comb += words_busy.eq(channel_busy.any())
        busy_pipe = Signal(ENCODER_LATENCY + 1)
        m.d.sync += busy_pipe.eq(Cat(words_busy, busy_pipe[:-1]))
        pipe_busy = Signal()            # busy_pipe.any(), registered with it
        m.d.sync += pipe_busy.eq(words_busy | busy_pipe[:-1].any())

        # A skip of idle time reaches the gates with the (empty) words that follow it, after
        # every word before it: its dead time ends exactly between them.
        skip_pipe = Signal(ENCODER_LATENCY + 1)
        m.d.sync += skip_pipe.eq(Cat(skip, skip_pipe[:-1]))
        skip_at_gate = skip_pipe[-1]

        # Stages 1..ENCODER_LATENCY + 1: encoders and gates.
        accept = Signal(n)
        codes = [Signal(cb, name=f"code{ch}") for ch in range(n)]
        for ch in range(n):
            enc = FirstEdgeEncoder(w, c.frontend)
            gate = ChannelGate(cb)
            m.submodules[f"encoder{ch}"] = enc
            m.submodules[f"gate{ch}"] = gate
            m.d.comb += [
                enc.word.eq(words_q[ch]),
                gate.hit.eq(enc.hit), gate.code.eq(enc.code), gate.extra.eq(enc.extra),
                gate.enable.eq(self.enable[ch] & self.run),
                gate.dead_time.eq(self.dead_time[ch]), gate.expire.eq(skip_at_gate),
                accept[ch].eq(gate.accept), codes[ch].eq(gate.accept_code),
            ]
            with m.If(self.clear_counters):
                m.d.sync += self.suppressed[ch].eq(0)
            with m.Else():
                m.d.sync += self.suppressed[ch].eq(self.suppressed[ch] + gate.suppressed)
        event_time = time_pipe[-1]

        # The event FIFO: one entry per cycle that has at least one accepted event.
        entry = data.StructLayout({"time": 64, "slot": SLOT_BITS, "offset": OFFSET_WIDTH,
                                   "mask": n, "single": 1, "first": range(n),
                                   "codes": data.ArrayLayout(cb, n)})
        m.submodules.events = ev_fifo = CollisionFreeFIFO(
            width=entry.size, depth=c.fifo_depth)
        push = Signal(entry)
        m.d.comb += [push.time.eq(event_time.time), push.slot.eq(event_time.slot),
                     push.offset.eq(event_time.offset), push.mask.eq(accept),
                     push.single.eq((accept & (accept - 1)) == 0),
                     push.first.eq(_lowest_one(m, accept))]
        for ch in range(n):
            m.d.comb += push.codes[ch].eq(codes[ch])
        m.d.comb += [ev_fifo.w_data.eq(push), ev_fifo.w_en.eq(accept.any())]
        full = ~ev_fifo.w_rdy
        counting = ~self.clear_counters
        m.d.comb += [self.events_inc.eq(Mux(counting & ~full, accept, 0)),
                     self.dropped_inc.eq(Mux(counting & full, accept, 0))]
        m.d.comb += self.overflow.eq(Mux(full, accept, 0))

        # Serialiser: the head entry's events, one per cycle, lowest channel first. It issues
        # only when the output FIFO has room for everything in flight (credit), so the
        # calibration pipeline never has to stall.
        out_depth = 8
        out_entry = data.StructLayout({"tag": struct_layout(TAG), "slot": SLOT_BITS,
                                       "phase_sum": signed(PHASE_SUM_WIDTH)})
        m.submodules.out = out_fifo = CollisionFreeFIFO(width=out_entry.size, depth=out_depth)
        # The head entry is registered straight from the FIFO's block RAM (on the ECP5 that is
        # the RAM's own output register, see tbqkd.hdl.ecp5): it is reloaded in the cycle its
        # last event issues, so single-event entries still go one per cycle.
        head = Signal(entry)
        head_valid = Signal()
        # The head entry's events not yet issued (a mask), and whether that is only one (the
        # entry's last), kept in registers: the event FIFO's read enable is one gate from
        # registers. Both from the entry just loaded (the block RAM's bits, straight into
        # registers) or after an issue, selected by which happened last (``fresh``): no logic
        # between the RAM's output and a register, so the register can be the RAM's own.
        only_one = Signal()
        loaded_mask, issued_mask = Signal(n), Signal(n)
        loaded_single, issued_single, fresh = Signal(), Signal(), Signal()
        m.d.comb += only_one.eq(Mux(fresh, loaded_single, issued_single))
        # The channel to issue, likewise: the entry's first (computed before the FIFO), or the
        # lowest one left after an issue, registered.
        loaded_first, issued_first = Signal(range(n)), Signal(range(n))
        sel = Signal(range(n))
        m.d.comb += sel.eq(Mux(fresh, loaded_first, issued_first))
        valid = [Signal(name=f"valid{i}") for i in (1, 2, 3, 4, 5)]   # calibration stages
        # Tags issued and not yet out of the output FIFO (those in the calibration stages plus
        # the FIFO's level), counted in a register, and whether there is room for one more,
        # registered with it: the sum of the FIFO's level and the stage flags, and its
        # comparison, are no longer in front of the read enable of the event FIFO.
        in_flight = Signal(range(out_depth + 1))
        has_room = Signal(init=1)
        issue, popped = Signal(), Signal()
        m.d.comb += [issue.eq(head_valid & has_room),
                     popped.eq(out_fifo.r_rdy & out_fifo.r_en)]
        in_flight_next = Signal.like(in_flight)
        m.d.comb += in_flight_next.eq(in_flight + issue - popped)
        out_idle = Signal(init=1)       # in_flight == 0, registered with it
        m.d.sync += [in_flight.eq(in_flight_next), has_room.eq(in_flight_next < out_depth),
                     out_idle.eq(in_flight_next == 0)]
        load = Signal()                 # the head register is free after this cycle
        m.d.comb += [load.eq(~head_valid | (issue & only_one)), ev_fifo.r_en.eq(load)]
        # (The event FIFO's output is its block RAM's: it goes straight into registers, so the
        # entry carries whether its mask has a single event.)
        # After an issue: from the loaded entry's mask or from the mask left by the last issue.
        loaded_step = _issue_step(m, loaded_mask, "loaded")
        issued_step = _issue_step(m, issued_mask, "issued")
        after_issue, after_first, after_single = (Mux(fresh, a, b) for a, b in
                                                  zip(loaded_step, issued_step, strict=True))
        with m.If(load):
            m.d.sync += [head_valid.eq(ev_fifo.r_rdy), head.eq(ev_fifo.r_data),
                         loaded_mask.eq(entry(ev_fifo.r_data).mask),
                         loaded_single.eq(entry(ev_fifo.r_data).single),
                         loaded_first.eq(entry(ev_fifo.r_data).first), fresh.eq(1)]
        with m.Elif(issue):
            m.d.sync += [issued_mask.eq(after_issue), fresh.eq(0),
                         issued_first.eq(after_first), issued_single.eq(after_single)]

        # Calibration lookup and timestamp assembly, stages L1..L5. No carry chain is longer
        # than 40 bits and none follows a multiplexer of more than two inputs. The RAM is read
        # from registers (L2) and its answer goes straight into a register (L3), which on the
        # ECP5 is the RAM's own output register (tbqkd.hdl.ecp5): the RAM's clock-to-out as
        # Yosys maps it, 4.26 ns, no longer starts a path.
        # The read port is not transparent: a lookup in the cycle of a write to the same entry
        # takes the written value from the bypass below (selected in L4), so the RAM's answer
        # in that cycle does not matter (``no_rw_check``) and nothing sits between the RAM and
        # its register.
        m.submodules.cal = cal = memory.Memory(shape=CAL_WIDTH, depth=n << cb, init=[],
                                               attrs={"no_rw_check": 1})
        cal_w = cal.write_port()
        cal_r = cal.read_port()
        m.d.comb += [cal_w.addr.eq(Cat(self.cal_code, self.cal_channel[:c.channel_bits])),
                     cal_w.data.eq(self.cal_fine),
                     cal_w.en.eq(self.cal_we & (self.cal_channel < n))]
        head_codes = Array(head.codes[ch] for ch in range(n))
        delays = Array(self.delay_ps[ch] for ch in range(n))
        # L1: the channel, its code, and the time base registered.
        time1 = Signal(64)
        chan1, code1 = Signal(c.channel_bits), Signal(cb)
        slot1, offset1 = Signal(SLOT_BITS), Signal(OFFSET_WIDTH)
        m.d.sync += [valid[0].eq(issue), chan1.eq(sel), code1.eq(head_codes[sel]),
                     time1.eq(head.time), slot1.eq(head.slot), offset1.eq(head.offset)]
        # L2: the RAM read from registers; the channel's delay.
        m.d.comb += cal_r.addr.eq(Cat(code1, chan1))
        time2, delay2 = Signal(64), Signal(32)
        chan2, code2 = Signal(c.channel_bits), Signal(cb)
        slot2, offset2 = Signal(SLOT_BITS), Signal(OFFSET_WIDTH)
        m.d.sync += [valid[1].eq(valid[0]), chan2.eq(chan1), code2.eq(code1),
                     time2.eq(time1), delay2.eq(delays[chan1]), slot2.eq(slot1),
                     offset2.eq(offset1)]
        # The write of the read's cycle, for the bypass: it hits when it wrote the entry read.
        write_addr2, write_fine2 = Signal.like(cal_w.addr), Signal(CAL_WIDTH)
        write_en2 = Signal()
        bypass3, bypass_fine3 = Signal(), Signal(CAL_WIDTH)
        m.d.sync += [write_addr2.eq(cal_w.addr), write_en2.eq(cal_w.en),
                     write_fine2.eq(cal_w.data),
                     bypass3.eq(write_en2 & (write_addr2 == Cat(code2, chan2))),
                     bypass_fine3.eq(write_fine2)]
        # L3: time base + delay in 32-bit halves: the low half with its carry out, the high
        # half minus the delay's sign (its sign extension is all ones or zeros); the slot
        # phase offset + 16 x delay; the RAM's answer, straight into a register.
        lo3, hi3 = Signal(33), Signal(32)
        ram_fine3 = Signal(CAL_WIDTH)
        chan3, code3 = Signal(c.channel_bits), Signal(cb)
        slot3, psum3 = Signal(SLOT_BITS), Signal(signed(PHASE_SUM_WIDTH))
        m.d.sync += [valid[2].eq(valid[1]), chan3.eq(chan2), code3.eq(code2),
                     lo3.eq(time2[:32] + delay2), hi3.eq(time2[32:] - delay2[31]),
                     ram_fine3.eq(cal_r.data), slot3.eq(slot2),
                     psum3.eq(offset2 + (delay2.as_signed() << CAL_FRAC_BITS))]
        # L4: the fine time (the RAM's, or the bypass's); the high half of time + delay, and
        # that plus one (carry select for L5).
        lo4, hi4, hi4_inc = Signal(32), Signal(32), Signal(32)
        fine4 = Signal(CAL_WIDTH)
        chan4, code4 = Signal(c.channel_bits), Signal(cb)
        slot4, psum4 = Signal(SLOT_BITS), Signal(signed(PHASE_SUM_WIDTH))
        m.d.sync += [valid[3].eq(valid[2]), chan4.eq(chan3), code4.eq(code3),
                     fine4.eq(Mux(bypass3, bypass_fine3, ram_fine3)),
                     lo4.eq(lo3[:32]), hi4.eq(hi3 + lo3[32]),
                     hi4_inc.eq(hi3 + Mux(lo3[32], 2, 1)), slot4.eq(slot3), psum4.eq(psum3)]
        # L5: + fine time rounded to whole picoseconds, on the low half. The rounding bit
        # enters as the carry into an extra low bit (1 + round carries exactly when round is 1),
        # so the sum is one carry chain; its carry out selects the high half.
        ts5 = Signal(64)
        chan5, code5 = Signal(c.channel_bits), Signal(cb)
        slot5, psum5 = Signal(SLOT_BITS), Signal(signed(PHASE_SUM_WIDTH))
        rounded_lo = Cat(Const(1, 1), lo4) + Cat(fine4[CAL_FRAC_BITS - 1],
                                                  fine4[CAL_FRAC_BITS:])
        m.d.sync += [valid[4].eq(valid[3]), chan5.eq(chan4), code5.eq(code4),
                     ts5.eq(Cat(rounded_lo[1:33], Mux(rounded_lo[33], hi4_inc, hi4))),
                     slot5.eq(slot4), psum5.eq(psum4 + fine4)]
        out_w = Signal(out_entry)
        m.d.comb += [out_w.tag.timestamp.eq(ts5), out_w.tag.channel.eq(chan5),
                     out_w.tag.code.eq(code5), out_w.slot.eq(slot5), out_w.phase_sum.eq(psum5)]
        m.d.comb += [out_fifo.w_data.eq(out_w), out_fifo.w_en.eq(valid[4])]
        out_r = Signal(out_entry)
        m.d.comb += out_r.eq(out_fifo.r_data)

        # Every tag also leaves on ph_* (to the slot mapper) as it leaves the output FIFO. With
        # the tag stream off, tags leave at one per cycle whatever m_axis does.
        m.d.comb += [self.ph_valid.eq(out_fifo.r_rdy & out_fifo.r_en),
                     self.ph_slot.eq(out_r.slot), self.ph_sum.eq(out_r.phase_sum),
                     self.ph_channel.eq(out_r.tag.channel)]

        # Framing onto the AXI4-Stream.
        m.submodules.framer = framer = TagFramer()
        m.d.comb += [
            framer.i_data.eq(out_r.tag), framer.i_valid.eq(out_fifo.r_rdy & self.tag_stream),
            out_fifo.r_en.eq(Mux(self.tag_stream, framer.i_ready_early, 1)),
            framer.frame_words.eq(self.frame_words), framer.flush_cycles.eq(self.flush_cycles),
            framer.flush.eq(self.flush), framer.expire.eq(skip),
            framer.upstream_empty.eq(~words_busy & ~pipe_busy & ~accept.any() & ev_fifo.empty
                                     & ~head_valid & out_idle),
            self.tdata.eq(framer.tdata), self.tvalid.eq(framer.tvalid),
            self.tlast.eq(framer.tlast), framer.tready.eq(self.tready),
        ]
        m.d.comb += [self.tags_inc.eq(framer.sent & counting),
                     self.frames_inc.eq(framer.sent_last & counting)]
        return m
