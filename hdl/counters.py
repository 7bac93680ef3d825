"""Event counters whose upper bits live in a RAM: many wide counters, read one at a time.

A core with dozens of 64-bit event counters pays for them twice in flip-flops: once for the
counters and once for the register bank's read multiplexer over all their bits (about half a
LUT per counted bit on the xc7). :class:`CounterBank` keeps only the low ``low_bits`` of each
counter in flip-flops, with one *pending carry* flag; the upper bits sit in one RAM word per
counter. A round-robin service pipeline visits every counter in turn and adds its pending carry
to its RAM word. Reads pick the low bits and flags of one counter and its RAM word, so the read
multiplexer covers ``low_bits + 2`` bits per counter instead of ``width``.

Exactness: a counter's low bits wrap at most once per ``2 ** low_bits`` cycles (one count per
cycle at most), and the service reaches every counter well within that (see
:meth:`CounterBank.low_bits_for`), so a pending carry is always added before the next one can
occur. The flags change only at the clock edge where the service's RAM write lands, so the RAM
word plus the flags describe the count exactly in every cycle; reads need no forwarding.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .registers import COUNTER_READ_LATENCY

__all__ = ["CounterBank", "READ_LATENCY", "count_reference"]

#: Cycles from ``read_en`` to ``read_valid`` (``read_data`` is the count of the read_en cycle).
READ_LATENCY = COUNTER_READ_LATENCY


class CounterBank(wiring.Component):
    """``n`` counters of ``width`` bits, each counting its ``inc`` bit, cleared by ``clear``.

    Counting: in every cycle, counter *k* becomes ``inc[k]`` if ``clear[k]`` is high ("clear,
    then add": the event of the clear's cycle counts), else its value plus ``inc[k]``, modulo
    ``2 ** width``; like a plain register ``count <= clear ? inc : count + inc``.

    Reading: ``read_en`` for one cycle with ``read_addr``; :data:`READ_LATENCY` cycles later
    ``read_valid`` is high for one cycle and ``read_data`` holds the value counter
    ``read_addr`` had in the cycle of ``read_en`` (it keeps it until the next read completes).
    A read takes the RAM port from the service for one cycle, so ``read_en`` may be high in at
    most every other cycle; the low bits are sized for that (:meth:`low_bits_for`).
    """

    def __init__(self, n: int, *, width: int = 64) -> None:
        if n < 2:
            raise ValueError(f"a counter bank needs at least 2 counters, not {n}")
        self._n = n
        self._width = width
        self.low_bits = self.low_bits_for(n)
        if width <= self.low_bits:
            raise ValueError(f"width {width} must exceed the {self.low_bits} low bits")
        super().__init__({
            "inc": In(n), "clear": In(n),
            "read_en": In(1), "read_addr": In(range(n)),
            "read_valid": Out(1), "read_data": Out(width),
        })

    @staticmethod
    def low_bits_for(n: int) -> int:
        """Low bits per counter for ``n`` counters.

        The service advances in every cycle without a read, so with reads in at most every
        other cycle it comes back to a counter within ``2 n`` cycles; the RAM write of the
        visit lands 2 cycles later. A counter's low bits wrap again no sooner than
        ``2 ** low`` cycles after a carry, so ``2 ** low >= 2 n + 2`` leaves at most one carry
        pending per counter.
        """
        return (2 * n + 1).bit_length()

    def elaborate(self, platform) -> Module:
        m = Module()
        n, low_bits = self._n, self.low_bits
        high_bits = self._width - low_bits

        # Every input is registered first (the increments come from logic all over the core,
        # and the low-bit incrementers are not where its paths should end). Reads are delayed
        # with the counts, so a read still answers the count of its own read_en cycle, one
        # cycle later (READ_LATENCY includes it).
        inc, clear = Signal(n), Signal(n)
        read_en, read_addr = Signal(), Signal(range(n))
        m.d.sync += [inc.eq(self.inc), clear.eq(self.clear), read_en.eq(self.read_en),
                     read_addr.eq(self.read_addr)]

        low = Array(Signal(low_bits, name=f"low{k}") for k in range(n))
        carry = Array(Signal(name=f"carry{k}") for k in range(n))
        # RAM word not yet valid (after reset or a clear): the upper bits read as zero
        zero = Array(Signal(init=1, name=f"zero{k}") for k in range(n))

        m.submodules.high = high = memory.Memory(shape=high_bits, depth=n, init=[])
        rd, wr = high.read_port(), high.write_port()   # rd: synchronous, not transparent

        # --- service: S0 reads the RAM word of counter `pointer` (unless a read has the port),
        # S1 registers it, S2 writes word + carry and retires the flags it used.
        pointer = Signal(range(n))
        s1_valid, s1_addr, s1_carry, s1_zero, s1_cleared = (
            Signal(), Signal(range(n)), Signal(), Signal(), Signal())
        s2_valid, s2_addr, s2_carry, s2_cleared = Signal(), Signal(range(n)), Signal(), Signal()
        s2_word = Signal(high_bits)
        service = ~read_en
        with m.If(service):
            m.d.sync += pointer.eq(Mux(pointer == n - 1, 0, pointer + 1))
        m.d.comb += [rd.addr.eq(Mux(service, pointer, read_addr)), rd.en.eq(1)]
        m.d.sync += [
            s1_valid.eq(service), s1_addr.eq(pointer), s1_carry.eq(carry[pointer]),
            s1_zero.eq(zero[pointer]), s1_cleared.eq(clear.bit_select(pointer, 1)),
            s2_valid.eq(s1_valid), s2_addr.eq(s1_addr), s2_carry.eq(s1_carry),
            s2_word.eq(Mux(s1_zero, 0, rd.data)),
            # a clear after S0 voids the service: the flags it captured are stale
            s2_cleared.eq(s1_cleared | clear.bit_select(s1_addr, 1)),
        ]
        retire = Signal()
        m.d.comb += [
            retire.eq(s2_valid & ~s2_cleared),
            wr.addr.eq(s2_addr), wr.data.eq(s2_word + s2_carry), wr.en.eq(retire),
        ]

        for k in range(n):
            total = Signal(low_bits + 1, name=f"total{k}")
            retired = Signal(name=f"retired{k}")
            m.d.comb += [total.eq(low[k] + inc[k]), retired.eq(retire & (s2_addr == k))]
            with m.If(clear[k]):
                m.d.sync += [low[k].eq(inc[k]), carry[k].eq(0), zero[k].eq(1)]
            with m.Else():
                m.d.sync += [low[k].eq(total[:low_bits]),
                             carry[k].eq((carry[k] & ~(retired & s2_carry)) | total[low_bits])]
                with m.If(retired):
                    m.d.sync += zero[k].eq(0)

        # --- reads: R0 captures the low bits and flags and reads the RAM, R1 picks the upper
        # bits, R2 adds the pending carry.
        r1_valid, r1_low, r1_carry, r1_zero = (
            Signal(), Signal(low_bits), Signal(), Signal())
        r2_valid, r2_low, r2_carry = Signal(), Signal(low_bits), Signal()
        r2_high = Signal(high_bits)
        m.d.sync += [
            r1_valid.eq(read_en),
            r2_valid.eq(r1_valid), self.read_valid.eq(r2_valid),
        ]
        with m.If(read_en):
            m.d.sync += [r1_low.eq(low[read_addr]), r1_carry.eq(carry[read_addr]),
                         r1_zero.eq(zero[read_addr])]
        with m.If(r1_valid):
            m.d.sync += [r2_low.eq(r1_low), r2_carry.eq(r1_carry),
                         r2_high.eq(Mux(r1_zero, 0, rd.data))]
        with m.If(r2_valid):
            m.d.sync += self.read_data.eq(Cat(r2_low, r2_high + r2_carry))
        return m


def count_reference(inc: np.ndarray, clear: np.ndarray, *, width: int = 64) -> np.ndarray:
    """Golden model: the value of each counter in each cycle.

    ``inc`` and ``clear`` are ``(cycles, n)`` arrays of 0/1; the result ``(cycles, n)`` holds
    what counter *k* reads in cycle *t* (the count of cycles ``< t``, since its last clear
    with the clear's own cycle counted), as :class:`CounterBank` reports for a read in
    cycle *t*.
    """
    inc = np.asarray(inc, dtype=np.uint64)
    clear = np.asarray(clear, dtype=bool)
    cycles, n = inc.shape
    out = np.zeros((cycles, n), dtype=np.uint64)
    value = np.zeros(n, dtype=np.uint64)
    mask = np.uint64((1 << width) - 1) if width < 64 else np.uint64(0xFFFF_FFFF_FFFF_FFFF)
    for t in range(cycles):
        out[t] = value
        value = np.where(clear[t], inc[t], value + inc[t]) & mask
    return out
