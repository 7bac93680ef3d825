"""Live per-channel arrival-phase histograms in block RAM, double-buffered for snapshots.

Data path, one clock domain (``sync``), one event per cycle, no back-pressure::

    valid/channel/phase (+ enable, offset, shift, bank) ─▶ S0 regs ─▶ S1: phase − offset
    ─▶ S2: >> shift, range checks, counters ─▶ R: BRAM read ─▶ D: BRAM out regs, hazard compare
    ─▶ I: forward-or-read value, saturating +1 ─▶ W: BRAM write

Every per-event input (``enable``, ``offset``, ``shift`` and the accumulating bank) is
captured together with the event in S0, so an event is binned with the settings of the cycle it
was presented in. The whole block is one read-modify-write pipeline shared by all channels
(address ``{channel, bin}``), with the block's own timing constants in
:mod:`tbqkd.hdl.golden_histogram` (the bit-exact, cycle-accurate model of this block).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .golden_histogram import (
    SETTLE_CYCLES,
    SHIFT_BITS,
    SpareState,
    channel_bits,
    check_parameters,
)
from .records import PHASE_BITS

__all__ = ["PhaseHistogram"]


def _channel_groups(n_channels: int) -> list[tuple[int, int]]:
    """``(first channel, size)`` of the groups a bank's memories hold: the powers of two
    that make up ``n_channels``, largest first (so each group starts at a multiple of its
    size, and a channel's place in its group is its low bits)."""
    groups, start = [], 0
    for bit in reversed(range(n_channels.bit_length())):
        if n_channels >> bit & 1:
            groups.append((start, 1 << bit))
            start += 1 << bit
    return groups


class PhaseHistogram(wiring.Component):
    """Arrival-phase histograms of ``n_channels`` channels, ``bins`` saturating counts each.

    Binning: an event (``valid`` high, ``enable`` high) of ``channel`` at ``phase`` ps goes to
    bin ``(phase − offset) >> shift``. Events with ``phase < offset`` or a bin ``≥ bins`` are
    counted in ``outside``; events with ``channel ≥ n_channels`` (possible only when
    ``n_channels`` is not a power of two) in ``bad_channel``; nothing is dropped silently.
    Counts saturate at ``2**count_bits − 1``.

    Hazards: an event's RAM read (stage R) does not yet see the writes of the three events
    before it; the I stage takes the value from the newest of those in-flight writes to the
    same bank and address instead of the RAM (comparisons registered one stage earlier), so
    events on one bin count exactly at every distance, including back to back.

    ``release`` is a Verilog keyword: in generated Verilog the port is the escaped identifier
    ``\\release`` (Verilator and Vivado accept it).

    Double buffering: two banks of ``n_channels × bins`` words; one accumulates, the other
    (the *spare*) is clean, being cleared, or holds the frozen snapshot.

    * ``swap`` pulse: if the spare is clean the swap executes in that cycle: events presented
      up to and including that cycle are in the snapshot, later ones in the other bank (none
      lost, none counted twice). Otherwise (clearing, snapshot not yet released, reset-time
      clear) the swap is held, ``swap_pending`` high, and executes in the first cycle the spare
      is clean; further swap pulses while one is pending are merged into it.
    * ``snapshot_valid`` rises :data:`SETTLE_CYCLES` cycles after the swap, when the old bank's
      last writes have landed; ``swaps`` counts in the same cycle. Only then is ``read_data``
      the frozen snapshot.
    * ``release`` pulse: the host is done with the snapshot; the block zeroes the spare, one
      word per cycle (``n_channels × bins`` cycles). ``clearing`` is high from the next cycle
      until the clear is done. A release during settling is held until the snapshot is
      complete; a release with no snapshot held is ignored.
    * Reset: both banks are zeroed in parallel (``n_channels × bins`` cycles, ``clearing``
      high). Events presented meanwhile are **not binned**; they are counted in ``skipped``
      (a swap during that time is held as pending).

    Host read port: ``read_addr = {channel, bin}`` (``bin`` in the low ``log2(bins)`` bits);
    ``read_data`` shows that word of the snapshot bank two cycles later (an address with
    ``channel ≥ n_channels`` reads 0): a bank and group select after the RAMs' output
    registers, so ``read_data`` is combinational from registers. Reads never disturb the
    event pipeline.

    Latencies (cycles after the event is presented): ``outside``/``bad_channel`` 3,
    ``skipped`` 1, the count in RAM 7. Each of these three counters also leaves as its
    increment ``<name>_inc`` (high in the cycle before the count changes); with
    ``counters=False`` the block keeps only the increments (the receiver core counts them in
    its register bank).

    Raises
    ------
    ValueError
        If ``n_channels < 1``, ``bins`` is not a power of two in ``[2, 2**24]``, or
        ``count_bits`` is not in ``[1, 64]``.
    """

    def __init__(self, n_channels: int, bins: int = 1024, count_bits: int = 32, *,
                 counters: bool = True) -> None:
        check_parameters(n_channels, bins, count_bits)
        self._counters = counters
        self._n_channels = n_channels
        self._bins = bins
        self._count_bits = count_bits
        self._bin_bits = bins.bit_length() - 1
        self._channel_bits = channel_bits(n_channels)
        super().__init__({
            # events
            "valid": In(1), "channel": In(self._channel_bits), "phase": In(PHASE_BITS),
            # configuration
            "enable": In(1), "offset": In(PHASE_BITS), "shift": In(SHIFT_BITS),
            # snapshot control and host read port
            "swap": In(1), "release": In(1),
            "read_addr": In(self._bin_bits + self._channel_bits),
            "read_data": Out(count_bits),
            # status and counters
            "clearing": Out(1), "swap_pending": Out(1), "snapshot_valid": Out(1),
            "swaps": Out(32),
            **({"outside": Out(64), "bad_channel": Out(64), "skipped": Out(64)}
               if counters else {}),
            "outside_inc": Out(1), "bad_channel_inc": Out(1), "skipped_inc": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        n, nb, cb = self._n_channels, self._bin_bits, self._count_bits
        words = n * self._bins
        cbits = self._channel_bits

        # Each bank is one memory per group of channels, the groups' sizes the powers of two
        # that make up ``n`` (5 channels: 4 + 1), so that every memory is a power of two deep
        # and maps to block RAMs with no multiplexer after them (the whole bank in one memory
        # of 5 x 1024 words became 1K x 18 blocks behind a 5-way multiplexer on the ECP5):
        # its read data goes straight into a register, the RAM's own output register, and one
        # group and bank select follows, as small as the bank select alone was. A read of the
        # word written in the same cycle may return either value (``no_rw_check``): the event
        # pipeline takes that word from its write in flight instead (``from_d3``), and the
        # host reads the spare bank, whose writes (settling, clearing) come before a valid
        # snapshot.
        groups = _channel_groups(n)
        banks = [[memory.Memory(shape=unsigned(cb), depth=size * self._bins, init=[],
                                attrs={"no_rw_check": 1}) for _, size in groups]
                 for _ in range(2)]
        for b, bank in enumerate(banks):
            for g, mem in enumerate(bank):
                m.submodules[f"bank{b}_group{g}"] = mem
        wports = [[mem.write_port() for mem in bank] for bank in banks]
        # read ports: synchronous, not transparent
        rports = [[mem.read_port() for mem in bank] for bank in banks]

        def group_addr(addr: Value, size: int) -> Value:
            """The word of ``addr = {channel, bin}`` in its group's memory."""
            return Cat(addr[:nb], addr[nb:nb + size.bit_length() - 1])

        def in_group(channel: Value, start: int, size: int) -> Value:
            return (channel >= start) & (channel < start + size)

        def select(values: list, channel: Value, bank: Value) -> Value:
            """``values[bank][group of channel]`` (a channel >= n: the last group, unused)."""
            def one(bank_values: list) -> Value:
                out = bank_values[0]
                for (start, _), value in zip(groups[1:], bank_values[1:], strict=True):
                    out = Mux(channel >= start, value, out)
                return out
            return Mux(bank, one(values[1]), one(values[0]))

        # ---- control: bank roles, clear engine, swap/release --------------------------------
        initialising = Signal(init=1)        # reset-time clear of both banks
        clear_addr = Signal(range(words))
        acc_bank = Signal()
        spare = Signal(2, init=SpareState.CLEAN)
        release_held = Signal()
        settle = Signal(range(SETTLE_CYCLES))
        spare_clearing = Signal()
        m.d.comb += spare_clearing.eq(spare == SpareState.CLEARING)

        with m.If(initialising | spare_clearing):
            with m.If(clear_addr == words - 1):
                m.d.sync += clear_addr.eq(0)
                with m.If(initialising):
                    m.d.sync += initialising.eq(0)
                with m.Else():
                    m.d.sync += spare.eq(SpareState.CLEAN)
            with m.Else():
                m.d.sync += clear_addr.eq(clear_addr + 1)
        with m.If(settle != 0):
            m.d.sync += settle.eq(settle - 1)
            with m.If(settle == 1):
                m.d.sync += self.swaps.eq(self.swaps + 1)
        with m.If((spare == SpareState.SNAPSHOT) & (self.release | release_held)):
            with m.If(settle == 0):
                m.d.sync += [spare.eq(SpareState.CLEARING), release_held.eq(0)]
            with m.Else():
                m.d.sync += release_held.eq(1)
        with m.If(~initialising & (spare == SpareState.CLEAN)
                  & (self.swap | self.swap_pending)):
            m.d.sync += [acc_bank.eq(~acc_bank), spare.eq(SpareState.SNAPSHOT),
                         settle.eq(SETTLE_CYCLES - 1), self.swap_pending.eq(0)]
        with m.Elif(self.swap):
            m.d.sync += self.swap_pending.eq(1)
        m.d.comb += [
            self.clearing.eq(initialising | spare_clearing | release_held),
            self.snapshot_valid.eq((spare == SpareState.SNAPSHOT) & (settle == 0)),
        ]

        # ---- S0: capture the event with the settings and the bank of its cycle -------------
        accepted = Signal()
        m.d.comb += accepted.eq(self.valid & self.enable)
        m.d.comb += self.skipped_inc.eq(accepted & initialising)
        valid0, bank0 = Signal(), Signal()
        channel0, phase0 = Signal(self._channel_bits), Signal(PHASE_BITS)
        offset0, shift0 = Signal(PHASE_BITS), Signal(SHIFT_BITS)
        m.d.sync += [valid0.eq(accepted & ~initialising), bank0.eq(acc_bank),
                     channel0.eq(self.channel), phase0.eq(self.phase),
                     offset0.eq(self.offset), shift0.eq(self.shift)]

        # ---- S1: phase − offset; bit PHASE_BITS is the borrow (phase < offset) --------------
        valid1, bank1 = Signal(), Signal()
        channel1, shift1 = Signal(self._channel_bits), Signal(SHIFT_BITS)
        delta1 = Signal(PHASE_BITS + 1)
        m.d.sync += [valid1.eq(valid0), bank1.eq(bank0), channel1.eq(channel0),
                     shift1.eq(shift0), delta1.eq(phase0 - offset0)]

        # ---- S2: bin, range checks and counters ---------------------------------------------
        shifted = Signal(PHASE_BITS)
        m.d.comb += shifted.eq(delta1[:PHASE_BITS] >> shift1)
        in_range = Signal()
        m.d.comb += in_range.eq(~delta1[PHASE_BITS] & (shifted[nb:] == 0))
        channel_ok = Signal()
        m.d.comb += channel_ok.eq(Const(1) if n == 1 << self._channel_bits else channel1 < n)
        m.d.comb += [self.outside_inc.eq(valid1 & channel_ok & ~in_range),
                     self.bad_channel_inc.eq(valid1 & ~channel_ok)]
        if self._counters:
            for name in ("outside", "bad_channel", "skipped"):
                counter = getattr(self, name)
                m.d.sync += counter.eq(counter + getattr(self, f"{name}_inc"))
        hit2, bank2 = Signal(), Signal()
        addr2 = Signal(nb + self._channel_bits)
        m.d.sync += [hit2.eq(valid1 & channel_ok & in_range), bank2.eq(bank1),
                     addr2.eq(Cat(shifted[:nb], channel1))]

        # ---- R: read the count. A bank's read port serves the host unless an event of that
        # bank is here (which happens to the snapshot bank only while it settles).
        for b, ports in enumerate(rports):
            addr = Mux(hit2 & (bank2 == b), addr2, self.read_addr)
            m.d.comb += [port.addr.eq(group_addr(addr, size))
                         for port, (_, size) in zip(ports, groups, strict=True)]

        # ---- D: BRAM data registered; hazard comparisons against the writes that will be in
        # flight when this event computes (distance 1: now in I; 2: now in W; 3: written now).
        hit3, bank3 = Signal(), Signal()
        addr3 = Signal.like(addr2)
        m.d.sync += [hit3.eq(hit2), bank3.eq(bank2), addr3.eq(addr2)]
        # Each bank's RAM output goes straight into a register (no mux after the slow BRAM
        # clock-to-out); the bank is selected in the next stage.
        stored = [[Signal(cb, name=f"stored{b}_{g}") for g in range(len(groups))]
                  for b in range(2)]
        for regs, ports in zip(stored, rports, strict=True):
            m.d.sync += [reg.eq(port.data) for reg, port in zip(regs, ports, strict=True)]
        hit4, bank4 = Signal(), Signal()
        addr4 = Signal.like(addr2)
        m.d.sync += [hit4.eq(hit3), bank4.eq(bank3), addr4.eq(addr3)]
        write5, bank5 = Signal(), Signal()
        addr5, value5 = Signal.like(addr2), Signal(cb)
        write6, bank6 = Signal(), Signal()
        addr6, value6 = Signal.like(addr2), Signal(cb)
        write7, bank7 = Signal(), Signal()
        addr7, value7 = Signal.like(addr2), Signal(cb)
        key3 = Cat(addr3, bank3)
        from_d1, from_d2, from_d3 = Signal(), Signal(), Signal()
        m.d.sync += [
            from_d1.eq(hit4 & (Cat(addr4, bank4) == key3)),
            from_d2.eq(write5 & (Cat(addr5, bank5) == key3)),
            from_d3.eq(write6 & (Cat(addr6, bank6) == key3)),
        ]

        # ---- I: newest value of this word, saturating increment -----------------------------
        current = Signal(cb)
        m.d.comb += current.eq(Mux(from_d1, value5, Mux(from_d2, value6, Mux(
            from_d3, value7, select(stored, addr4[nb:], bank4)))))
        incremented = Signal(cb + 1)           # the carry out is the saturation test
        m.d.comb += incremented.eq(current + 1)
        m.d.sync += [write5.eq(hit4), bank5.eq(bank4), addr5.eq(addr4),
                     value5.eq(Mux(incremented[cb], current, incremented[:cb]))]
        # history of the last two writes, for forwarding only
        m.d.sync += [write6.eq(write5), bank6.eq(bank5), addr6.eq(addr5), value6.eq(value5),
                     write7.eq(write6), bank7.eq(bank6), addr7.eq(addr6), value7.eq(value6)]

        # ---- W: write the count, or a zero of the clear engine ------------------------------
        # The clear of the spare starts only after it settled (no event writes to it remain),
        # and the reset-time clear runs while no event is in the pipeline.
        spare_bank = Signal()
        m.d.comb += spare_bank.eq(~acc_bank)
        for b, ports in enumerate(wports):
            for port, (start, size) in zip(ports, groups, strict=True):
                event_write = write5 & (bank5 == b) & in_group(addr5[nb:], start, size)
                clear_write = ((initialising | (spare_clearing & (spare_bank == b)))
                               & in_group(clear_addr[nb:], start, size))
                with m.If(event_write):
                    m.d.comb += [port.addr.eq(group_addr(addr5, size)), port.data.eq(value5),
                                 port.en.eq(1)]
                with m.Elif(clear_write):
                    m.d.comb += [port.addr.eq(group_addr(clear_addr, size)), port.data.eq(0),
                                 port.en.eq(1)]

        # ---- host read data: the snapshot bank's output register, two cycles after the
        # address (the bank and the address check are delayed to match).
        read_bank = [Signal(name=f"read_bank{i}") for i in (1, 2)]
        read_channel = [Signal(cbits, name=f"read_channel{i}") for i in (1, 2)]
        read_ok = [Signal(name=f"read_ok{i}") for i in (1, 2)]
        m.d.sync += [read_bank[0].eq(spare_bank), read_bank[1].eq(read_bank[0]),
                     read_channel[0].eq(self.read_addr[nb:]), read_channel[1].eq(read_channel[0]),
                     read_ok[0].eq(self.read_addr[nb:] < n), read_ok[1].eq(read_ok[0])]
        m.d.comb += self.read_data.eq(Mux(read_ok[1],
                                          select(stored, read_channel[1], read_bank[1]), 0))
        return m
