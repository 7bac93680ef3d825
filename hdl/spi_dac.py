"""SPI master for the 16-bit DAC that drives the interferometer's phase shifter.

:class:`SpiDac` writes 16-bit values to a DAC8568-class (32-bit frame) or AD5686-class (24-bit
frame) DAC. Golden model: :class:`tbqkd.hdl.golden_phase.SpiDacModel`; pin decoder and the
datasheet timing limits: :mod:`tbqkd.sim.dac`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SpiDac"]


def _frame_bit(position, prefix, value, suffix, suffix_bits, data_end):
    """Bit ``position`` (0 = LSB) of the frame word ``prefix | value | suffix``;
    ``data_end`` = ``suffix_bits + 16``."""
    in_suffix = position < suffix_bits
    in_value = position < data_end
    value_index = (position - suffix_bits)[:4]
    prefix_index = (position - data_end)[:4]
    return Mux(in_suffix, suffix.bit_select(position[:4], 1),
               Mux(in_value, value.bit_select(value_index, 1),
                   prefix.bit_select(prefix_index, 1)))


class SpiDac(wiring.Component):
    """SPI master for one 16-bit DAC write per frame, with a safe value after reset.

    Frame
        ``frame_bits`` bits, MSB first: the low ``frame_bits − 16 − suffix_bits`` bits of
        ``prefix`` (command/address), the 16 bits of ``value``, then the low ``suffix_bits``
        bits of ``suffix``. DAC8568: ``frame_bits`` 32, prefix = 4 prefix + 4 control + 4
        address bits, ``suffix_bits`` 4 (feature bits). AD5686: ``frame_bits`` 24, prefix = 4
        command + 4 address bits, ``suffix_bits`` 0. A write with framing outside
        ``16 + suffix_bits <= frame_bits <= 32`` sends nothing and counts in ``rejected``.
    Timing (``d`` = ``clock_div``, 0 acts as 1; one unit = one fabric cycle)
        Both DACs shift data in on the **falling** edge of SCLK, so MOSI changes on the rising
        edge and is stable for ``d`` cycles on either side of each falling edge. ``cpol`` sets
        the SCLK idle level (1: SPI mode 2, 0: mode 0 with the same sampling edge); both DACs
        accept either. SYNC (``sync_n``) falls with the first bit on MOSI; SCLK stays at its
        idle level for ``d`` (lead), then each bit is ``d`` high and ``d`` low; after the last
        falling edge SCLK stays low ``d`` and at idle ``d`` (tail) before SYNC rises. SYNC
        then stays high at least ``sync_high_cycles + 1``. So: SCLK period 2d, SYNC falling to
        first SCLK falling edge 2d, last falling edge to SYNC rising 2d, frame
        ``(2·frame_bits + 2)·d`` cycles with SYNC low.
        Datasheet minima (DAC8568 / AD5686, VDD 2.7–5.5 V; see :mod:`tbqkd.sim.dac`): t1 SCLK
        period 20 ns, t2/t3 SCLK high/low 10 ns, t4 SYNC to SCLK falling setup 13 / 10 ns,
        t5/t6 data setup/hold 5 / 4.5–5 ns, t8 SYNC high 80 / 30 ns. At 250 MHz (4 ns)
        ``clock_div`` = 3 meets them all (period 24 ns, 41.7 MHz; setup 24 ns; hold 12 ns) and
        the default ``sync_high_cycles`` = 25 gives SYNC high ≥ 104 ns. The configuration
        inputs are registered (a change applies one cycle later) and latched when a frame
        starts.
    Writes
        A ``write`` pulse when idle starts a frame in the next cycle (``sync_n`` low after the
        edge). A write while busy is queued: the latest value wins and is sent after the
        current frame and its SYNC high time. ``busy`` is high while a frame runs, during the
        SYNC high time after it and while a write is queued; ``done`` pulses in the cycle SYNC
        rises (the DAC latched the frame) and ``writes`` counts completed frames.
        Out of reset the master is in the SYNC high time (so a reset in mid-frame still gives
        the DAC its minimum SYNC high time) with one write of ``safe_value`` queued: the DAC is
        set to it once, ``sync_high_cycles + 1`` cycles after reset, with the framing inputs of
        that cycle (their register reset values). A host write before then replaces it
        (latest value wins, as for any queued write).
        ``ldac_n`` is held low: both DACs then update on the frame itself (write-and-update
        commands), which is what a phase loop wants.
    """

    def __init__(self, *, safe_value: int = 0x8000, sync_high_cycles: int = 25) -> None:
        if not 0 <= safe_value < 1 << 16:
            raise ValueError(f"safe_value {safe_value:#x} does not fit 16 bits")
        if not 1 <= sync_high_cycles < 1 << 16:
            raise ValueError(f"sync_high_cycles {sync_high_cycles} must be 1..65535")
        self._safe_value = safe_value
        self._sync_high_cycles = sync_high_cycles
        super().__init__({
            # configuration
            "frame_bits": In(6), "prefix": In(16), "suffix_bits": In(5), "suffix": In(16),
            "clock_div": In(8), "cpol": In(1),
            # host side
            "value": In(16), "write": In(1),
            "busy": Out(1), "done": Out(1), "writes": Out(32), "rejected": Out(32),
            # pins
            "sclk": Out(1), "mosi": Out(1), "sync_n": Out(1, init=1), "ldac_n": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        pending = Signal(init=1)
        pending_value = Signal(16, init=self._safe_value)
        count = Signal(16, init=self._sync_high_cycles - 1)
        bits_left = Signal(6)
        div = Signal(8)
        cpol = Signal()
        m.d.comb += self.ldac_n.eq(0)

        # The configuration is registered (it applies one cycle after the inputs change), with
        # what a frame start needs already derived: the framing check and where the first bit
        # comes from.
        cfg_frame_bits, cfg_prefix = Signal(6), Signal(16)
        cfg_clock_div, cfg_cpol = Signal(8), Signal()
        cfg_suffix, cfg_suffix_bits = Signal(16), Signal(5)
        cfg_ok, cfg_first_in_prefix, cfg_first_index = Signal(), Signal(), Signal(4)
        m.d.sync += [
            cfg_frame_bits.eq(self.frame_bits), cfg_prefix.eq(self.prefix),
            cfg_suffix.eq(self.suffix), cfg_suffix_bits.eq(self.suffix_bits),
            cfg_clock_div.eq(Mux(self.clock_div == 0, 1, self.clock_div)),
            cfg_cpol.eq(self.cpol),
            cfg_ok.eq((self.frame_bits <= 32) & (self.frame_bits >= 16 + self.suffix_bits)),
            cfg_first_in_prefix.eq(self.frame_bits > 16 + self.suffix_bits),
            cfg_first_index.eq((self.frame_bits - 17 - self.suffix_bits)[:4]),
        ]

        # No barrel shifter: each MOSI bit is selected from the frame's fields (latched when it
        # starts) by its position in the word. ``position`` is the index of the next bit; that
        # bit is registered in ``next_mosi``, ready before the next rising SCLK edge since
        # ``position`` changes at most every second cycle.
        prefix_f, value_f, suffix_f = Signal(16), Signal(16), Signal(16)
        suffix_bits_f, data_end_f = Signal(5), Signal(6)
        position = Signal(6)
        next_mosi = Signal()
        m.d.sync += next_mosi.eq(_frame_bit(position, prefix_f, value_f, suffix_f,
                                            suffix_bits_f, data_end_f))
        start_value = Signal(16)
        m.d.comb += start_value.eq(Mux(self.write, self.value, pending_value))
        first_bit = Signal()
        m.d.comb += first_bit.eq(Mux(cfg_first_in_prefix,
                                     cfg_prefix.bit_select(cfg_first_index, 1), start_value[15]))

        m.d.sync += self.done.eq(0)
        with m.If(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.If(self.write):             # queued while busy; overridden below when idle
            m.d.sync += [pending.eq(1), pending_value.eq(self.value)]

        with m.FSM(init="GAP", name="phase") as fsm:
            with m.State("IDLE"):
                m.d.sync += self.sclk.eq(cfg_cpol)
                with m.If(self.write | pending):
                    m.d.sync += pending.eq(0)
                    with m.If(cfg_ok):
                        m.d.sync += [prefix_f.eq(cfg_prefix), value_f.eq(start_value),
                                     suffix_f.eq(cfg_suffix), suffix_bits_f.eq(cfg_suffix_bits),
                                     data_end_f.eq(cfg_suffix_bits + 16),
                                     position.eq(cfg_frame_bits - 2),
                                     bits_left.eq(cfg_frame_bits),
                                     div.eq(cfg_clock_div), cpol.eq(cfg_cpol),
                                     self.sync_n.eq(0), self.mosi.eq(first_bit),
                                     count.eq(cfg_clock_div - 1)]
                        m.next = "LEAD"
                    with m.Else():
                        m.d.sync += self.rejected.eq(self.rejected + 1)
            with m.State("LEAD"), m.If(count == 0):
                m.d.sync += [self.sclk.eq(1), count.eq(div - 1)]
                m.next = "HIGH"
            with m.State("HIGH"), m.If(count == 0):
                m.d.sync += [self.sclk.eq(0), bits_left.eq(bits_left - 1),
                             count.eq(div - 1)]
                m.next = "LOW"
            with m.State("LOW"), m.If(count == 0):
                m.d.sync += count.eq(div - 1)
                with m.If(bits_left != 0):
                    m.d.sync += [position.eq(position - 1), self.mosi.eq(next_mosi),
                                 self.sclk.eq(1)]
                    m.next = "HIGH"
                with m.Else():
                    m.d.sync += self.sclk.eq(cpol)
                    m.next = "TAIL"
            with m.State("TAIL"), m.If(count == 0):
                m.d.sync += [self.sync_n.eq(1), self.mosi.eq(0),
                             count.eq(self._sync_high_cycles - 1),
                             self.writes.eq(self.writes + 1), self.done.eq(1)]
                m.next = "GAP"
            with m.State("GAP"), m.If(count == 0):
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | pending)
        return m
