"""AXI4-Lite register bank generated from a :class:`~tbqkd.hdl.regmap.RegisterMap`.

One transaction at a time per direction. Latency: a write is accepted in the cycle both AW and W
are valid (``awready``/``wready`` high that cycle) and answered on B one cycle later; a read is
accepted in the cycle AR is valid and answered on R one cycle later (a counter's low word:
:data:`~tbqkd.hdl.counters.READ_LATENCY` cycles more), except within
:data:`READ_AFTER_WRITE` cycles of a write, when ``arready`` waits, so that a read sees every
effect of an earlier write that the core shows within that time. Unmapped addresses and writes
to read-only registers answer ``SLVERR``; their writes have no effect.

For each register the bank exposes signals that the core drives or uses:

* ``rw``: ``bank.value[name]``, the held value (reset from the table); only the bits of the
  register's fields are stored, the others read as 0. Reads answer from a block-RAM copy of
  every ``rw`` word (see :meth:`RegisterBank._rw_copy`), not from these flip-flops.
* ``ro``: ``bank.value[name]``, driven by the core; 64-bit ones latch their high word when the
  low word is read (one latch for all of them: a high word read that does not follow its own
  low word answers ``SLVERR``).
* ``wp``: ``bank.strobe[name]``, the written value for exactly one cycle (zero otherwise).
* counters (64-bit ``ro`` registers named in ``counters``): ``bank.count[name]``, the
  register's increment (one bit, counted in the cycle it is high), and
  ``bank.count_clear[name]`` (the register becomes the increment of that cycle: "clear, then
  add"). They are kept in a :class:`~tbqkd.hdl.counters.CounterBank`, not in flip-flops the
  core drives; a read of such a low word is answered
  :data:`~tbqkd.hdl.counters.READ_LATENCY` cycles later than the others, with the count of the
  cycle the read was accepted in.

Every writable register also has ``bank.written[name]``, high for the one cycle after a write
(when ``value``/``strobe`` already show the written data).
* ``rc``: ``bank.set[name]``, driven by the core (bits to set); ``bank.value[name]`` the flags.
"""

from __future__ import annotations

from collections.abc import Iterable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .counters import CounterBank
from .regmap import Register, RegisterMap

__all__ = ["AXI4LiteSignature", "RegisterBank", "forward_flat_axi4lite", "READ_AFTER_WRITE",
           "RESP_OKAY", "RESP_SLVERR"]

#: Cycles after a write during which no read is accepted: registers derived from written ones
#: with up to this latency (the histogram read port: 2) read consistently right after the write.
READ_AFTER_WRITE = 4

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


def AXI4LiteSignature(addr_width: int) -> wiring.Signature:  # noqa: N802 (a signature factory)
    """AXI4-Lite subordinate port, as seen by the subordinate (32-bit data)."""
    return wiring.Signature({
        "awaddr": In(addr_width), "awprot": In(3), "awvalid": In(1), "awready": Out(1),
        "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(addr_width), "arprot": In(3), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
    })


def forward_flat_axi4lite(m: Module, outer, inner, addr_width: int, *,
                          prefix: str = "s_axi_") -> None:
    """Connect flat top-level ports ``<prefix><name>`` of ``outer`` to ``inner``'s AXI4-Lite
    members of the same names (``inner`` is a subordinate port or flat ports of a child)."""
    for name, member in AXI4LiteSignature(addr_width).members.items():
        port = getattr(outer, f"{prefix}{name}")
        child = getattr(inner, name) if hasattr(inner, name) else \
            getattr(inner, f"{prefix}{name}")
        m.d.comb += child.eq(port) if member.flow == In else port.eq(child)


class RegisterBank(wiring.Component):
    """The register bank of ``regmap`` behind an AXI4-Lite port ``bus``; the registers named
    in ``counters`` are event counters kept in the bank itself (module docstring)."""

    def __init__(self, regmap: RegisterMap, *, counters: Iterable[str] = ()) -> None:
        self._regmap = regmap
        self._counters = tuple(counters)
        self.value: dict[str, Signal] = {}
        self.strobe: dict[str, Signal] = {}
        self.set: dict[str, Signal] = {}
        self.written: dict[str, Signal] = {}
        self.count: dict[str, Signal] = {}
        self.count_clear: dict[str, Signal] = {}
        for name in self._counters:
            if not regmap[name].latched:
                raise ValueError(f"counter {name} is not a 64-bit read-only register")
            self.count[name] = Signal(name=f"{name.lower()}_inc")
            self.count_clear[name] = Signal(name=f"{name.lower()}_clear")
        for reg in regmap:
            if reg.name == "ID" or reg.name in self.count:
                continue
            if reg.access in ("rw", "wp"):
                self.written[reg.name] = Signal(name=f"{reg.name.lower()}_written")
            if reg.access == "wp":
                self.strobe[reg.name] = Signal(reg.width, name=f"{reg.name.lower()}_strobe")
                continue
            init = reg.reset if reg.access == "rw" else 0
            self.value[reg.name] = Signal(reg.width, init=init, name=reg.name.lower())
            if reg.access == "rc":
                self.set[reg.name] = Signal(reg.width, name=f"{reg.name.lower()}_set")
        super().__init__({"bus": In(AXI4LiteSignature(regmap.addr_width))})

    def elaborate(self, platform) -> Module:
        m = Module()
        bus, regmap = self.bus, self._regmap

        # Constant registers (ID, and ro registers whose fields are elaboration parameters such
        # as VERSION) read their table value; the core may not drive them.
        constant = {"ID": regmap.hash}
        for reg in regmap:
            if reg.access == "ro" and reg.name != "ID" and reg.reset:
                constant[reg.name] = reg.reset
                m.d.comb += self.value[reg.name].eq(reg.reset)

        # --- writes ------------------------------------------------------------------------
        for sig in (*self.strobe.values(), *self.written.values()):
            m.d.sync += sig.eq(0)
        for name, set_bits in self.set.items():
            m.d.sync += self.value[name].eq(self.value[name] | set_bits)

        write_word = Signal(regmap.addr_width - 2)
        m.d.comb += write_word.eq(bus.awaddr[2:])
        rw_write = Signal()           # do_write to a word of an rw register
        do_write = Signal()
        m.d.comb += do_write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid)
        m.d.comb += [bus.awready.eq(do_write), bus.wready.eq(do_write)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(do_write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(RESP_SLVERR)]
            with m.Switch(write_word):
                for reg in regmap:
                    if reg.access == "ro":
                        continue
                    for w in range(reg.words):
                        with m.Case((reg.offset >> 2) + w):
                            m.d.sync += bus.bresp.eq(RESP_OKAY)
                            if reg.name in self.written:
                                m.d.sync += self.written[reg.name].eq(1)
                            if reg.access == "rw":
                                m.d.comb += rw_write.eq(1)
                                self._write_fields(m, reg, w)
                            elif reg.access == "wp":
                                m.d.sync += self.strobe[reg.name][32 * w:32 * w + 32].eq(
                                    bus.wdata)
                            elif reg.access == "rc":
                                part = slice(32 * w, 32 * w + 32)
                                flags = self.value[reg.name]
                                m.d.sync += flags[part].eq(
                                    (flags[part] | self.set[reg.name][part]) & ~bus.wdata)

        # --- reads -------------------------------------------------------------------------
        # The read data is a binary multiplexer tree on the word address, not a comparison per
        # register: a subtree with registers on one side only has no multiplexer (its value
        # elsewhere is masked by an exact one-bit tree of the mapped words), about four
        # register bits per LUT.
        #
        # One latch serves the high words of all 64-bit read-only registers: reading the low
        # word of one latches its high word and the address of that high word; reading a high
        # word answers the latch if the address matches and SLVERR otherwise, so a high word
        # never pairs with another register's low word.
        read_word = Signal(regmap.addr_width - 2)
        m.d.comb += read_word.eq(bus.araddr[2:])
        # 64-bit read-only registers: their own tree on the doubleword address, 64 bits wide
        # (the low word answers, the high word goes to the latch).
        data, okay, wide, rw_words, counter_words = {}, {}, {}, {}, {}
        for reg in regmap:
            if reg.name in self.count:
                counter_words[reg.offset >> 2] = self._counters.index(reg.name)
                continue
            for w in range(reg.words):
                index = (reg.offset >> 2) + w
                if reg.latched:
                    wide[index >> 1] = self.value[reg.name]
                    continue
                okay[index] = 1
                if reg.access == "rw":
                    rw_words[index] = (reg, w)
                elif reg.name in constant:
                    data[index] = (constant[reg.name] >> (32 * w)) & 0xFFFF_FFFF
                elif reg.access != "wp":
                    data[index] = self.value[reg.name][32 * w:32 * w + 32]
        high_latch = Signal(32)
        high_word = Signal.like(read_word)
        high_valid = Signal()
        # A read is accepted only READ_AFTER_WRITE cycles after the last write took effect, so
        # that it sees what the write caused in the core (e.g. a histogram read port moved).
        settle = Signal(range(READ_AFTER_WRITE + 1))
        with m.If(do_write):
            m.d.sync += settle.eq(READ_AFTER_WRITE)
        with m.Elif(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        counter_wait = Signal()       # a counter read is under way in the counter bank
        do_read = Signal()
        m.d.comb += [do_read.eq(bus.arvalid & ~bus.rvalid & ~counter_wait & (settle == 0)),
                     bus.arready.eq(do_read)]
        is_counter = _word_mux(read_word, {i: 1 for i in counter_words}, 1)
        counter_word = Signal.like(read_word)
        counter_data = self._counter_bank(m, do_read & is_counter, read_word, counter_words)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        read_rw = Signal()            # the answer comes from the copy of the rw words
        rw_answer = self._rw_copy(m, rw_words, write_word, rw_write, read_word, do_read)
        rdata = Signal(32)            # the answer of every other word
        m.d.comb += bus.rdata.eq(Mux(read_rw, rw_answer, rdata))
        with m.If(do_read):
            m.d.sync += read_rw.eq(_word_mux(read_word, {i: 1 for i in rw_words}, 1))
            is_wide_low = _word_mux(read_word, {i << 1: 1 for i in wide}, 1)
            is_data = _word_mux(read_word, {i: 1 for i in data}, 1)
            # high_word only ever holds a latched register's high word
            high_ok = high_valid & (high_word == read_word)
            wide_word = _dense_mux(m, read_word[1:], wide, 64)
            data_word = _word_mux(read_word, data, 32, exact=False)
            with m.If(is_counter):
                m.d.sync += [counter_wait.eq(1), counter_word.eq(read_word)]
            with m.Else():
                m.d.sync += [
                    bus.rvalid.eq(1),
                    bus.rresp.eq(Mux(high_ok | is_wide_low | _word_mux(read_word, okay, 1),
                                     RESP_OKAY, RESP_SLVERR)),
                    rdata.eq(Mux(high_ok, high_latch, 0) | Mux(is_wide_low, wide_word[:32], 0)
                             | Mux(is_data, data_word, 0)),
                ]
                with m.If(is_wide_low):
                    m.d.sync += [high_latch.eq(wide_word[32:]), high_word.eq(read_word | 1),
                                 high_valid.eq(1)]
        if counter_data is not None:
            valid, value = counter_data
            with m.If(valid):
                m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(RESP_OKAY), rdata.eq(value[:32]),
                             counter_wait.eq(0), high_latch.eq(value[32:]),
                             high_word.eq(counter_word | 1), high_valid.eq(1)]
        return m

    def _counter_bank(self, m: Module, read_en: Value, read_word: Value,
                      counter_words: dict[int, int]) -> tuple[Value, Value] | None:
        """The counters' :class:`CounterBank`, read at ``read_word`` when ``read_en``;
        returns its ``(read_valid, read_data)``, or ``None`` without counters."""
        if not self._counters:
            return None
        m.submodules.counters = bank = CounterBank(len(self._counters))
        for k, name in enumerate(self._counters):
            m.d.comb += [bank.inc[k].eq(self.count[name]),
                         bank.clear[k].eq(self.count_clear[name])]
        number = Signal.like(bank.read_addr)
        with m.Switch(read_word):
            for word, k in counter_words.items():
                with m.Case(word):
                    m.d.comb += number.eq(k)
        m.d.comb += [bank.read_en.eq(read_en), bank.read_addr.eq(number)]
        return bank.read_valid, bank.read_data

    def _rw_copy(self, m: Module, rw_words: dict[int, tuple[Register, int]], write_word: Value,
                 rw_write: Value, read_word: Value, do_read: Value) -> Value:
        """A block-RAM copy of the ``rw`` words, which answers their reads; returns the answer.

        A multiplexer tree over every stored ``rw`` bit costs about a thousand LUTs in the
        receiver; the copy costs block RAM (the words as written, and a ROM of each word's
        reset value and field mask with a read port for writes and one for reads: four RAMB18
        on the xc7z020). A reset does not reach block RAM, so one flip-flop per word records whether
        it was written since reset: a word that was not answers its reset value, and its first
        write stores the bytes WSTRB leaves out from the reset value too. The copy is written
        one cycle after the write (the ROM is read in between), well before the next read
        (:data:`READ_AFTER_WRITE`). The answer is masked to the fields. The read ports advance
        only on an accepted read, so the answer holds until R completes.
        """
        if not rw_words:
            return Const(0, 32)
        bits = max(rw_words).bit_length()
        depth = 1 << bits
        reset, fields = [0] * depth, [0] * depth
        for index, (reg, w) in rw_words.items():
            reset[index] = (reg.reset >> (32 * w)) & 0xFFFF_FFFF
            fields[index] = (reg.field_mask >> (32 * w)) & 0xFFFF_FFFF
        m.submodules.rw_copy = copy = memory.Memory(shape=32, depth=depth, init=reset)
        m.submodules.rw_table = table = memory.Memory(
            shape=64, depth=depth, init=[f | r << 32 for f, r in zip(fields, reset, strict=True)])
        store, read = copy.write_port(granularity=8), copy.read_port()
        table_w, table_r = table.read_port(), table.read_port()

        written = {i: Signal(name=f"rw{i}_written") for i in rw_words}
        with m.If(rw_write), m.Switch(write_word):
            for index, flag in written.items():
                with m.Case(index):
                    m.d.sync += flag.eq(1)
        # The write, one cycle late: address, data, strobes, and whether it is the first.
        # A first write stores all four bytes, even with no strobe set (it marks the word
        # written, so the copy must hold the reset value from then on).
        pending, addr, data = Signal(), Signal(bits), Signal(32)
        strobes, first = Signal(4), Signal()
        m.d.sync += pending.eq(rw_write)
        with m.If(rw_write):
            m.d.sync += [addr.eq(write_word[:bits]), data.eq(self.bus.wdata),
                         strobes.eq(self.bus.wstrb),
                         first.eq(~_word_mux(write_word, written, 1, exact=False))]
        reset_w = table_w.data[32:]
        m.d.comb += [
            table_w.addr.eq(write_word[:bits]), table_w.en.eq(rw_write),
            store.addr.eq(addr),
            store.data.eq(Cat(Mux(strobes[b], data[8 * b:8 * b + 8], reset_w[8 * b:8 * b + 8])
                              for b in range(4))),
            store.en.eq(Mux(pending, Mux(first, 0b1111, strobes), 0)),
            read.addr.eq(read_word[:bits]), read.en.eq(do_read),
            table_r.addr.eq(read_word[:bits]), table_r.en.eq(do_read),
        ]
        read_written = Signal()
        with m.If(do_read):
            m.d.sync += read_written.eq(_word_mux(read_word, written, 1, exact=False))
        return Mux(read_written, read.data, table_r.data[32:]) & table_r.data[:32]

    def _write_fields(self, m: Module, reg: Register, word: int) -> None:
        """Write the field bits of word ``word`` of ``rw`` register ``reg``, byte by byte as
        WSTRB allows. Bits outside every field are not stored: they read as zero."""
        value, wdata, wstrb = self.value[reg.name], self.bus.wdata, self.bus.wstrb
        for byte in range(4):
            low = 32 * word + 8 * byte
            runs = _field_runs(reg, low, low + 8)
            if not runs:
                continue
            with m.If(wstrb[byte]):
                for start, stop in runs:
                    m.d.sync += value[start:stop].eq(wdata[start - 32 * word:stop - 32 * word])


def _word_mux(select: Value, words: dict[int, Value | int], width: int, *,
              exact: bool = True) -> Value:
    """``words[select]`` as a binary multiplexer tree on the bits of ``select``.

    ``exact``: zero where ``select`` is not a key. Otherwise the value there is unspecified,
    which lets a subtree with keys on one side only skip its multiplexer: the caller masks the
    result with an exact ``okay`` tree.
    """
    def tree(bit: int, base: int) -> Value | None:
        if not any(base <= i < base + (1 << (bit + 1)) for i in words):
            return None
        if bit < 0:
            return Const(words[base], width) if isinstance(words[base], int) else words[base]
        high, low = tree(bit - 1, base + (1 << bit)), tree(bit - 1, base)
        if high is None or low is None:
            if exact:
                return Mux(select[bit], Const(0, width) if high is None else high,
                           Const(0, width) if low is None else low)
            return low if high is None else high
        return Mux(select[bit], high, low)

    top = max(words, default=0).bit_length()
    if top > len(select):
        raise ValueError(f"word {max(words)} is beyond a {len(select)}-bit address")
    result = tree(top - 1, 0) if words else None
    if result is None:
        return Const(0, width)
    if exact and len(select) > top:
        return Mux(select[top:] == 0, result, 0)
    return result


def _dense_mux(m: Module, select: Value, words: dict[int, Value | int], width: int) -> Value:
    """``words[select]``, unspecified where ``select`` is not a key (the caller masks it).

    The keys are numbered densely first (a small decoder of ``select``), and the multiplexer
    tree runs on that number: a sparse key set (e.g. three counters in each channel's 64-byte
    block) would otherwise leave half-empty multiplexers at the bottom of the tree. For the
    receiver's 59 64-bit registers this saved about 160 LUTs (of about 2 000 in that tree);
    for trees whose leaves are mostly constants it costs more than it saves.
    """
    keys = sorted(words)
    if len(keys) <= 1:
        return _word_mux(select, words, width, exact=False)
    number = Signal(range(len(keys)))
    with m.Switch(select):
        for n, key in enumerate(keys):
            with m.Case(key):
                m.d.comb += number.eq(n)
    return _word_mux(number, {n: words[key] for n, key in enumerate(keys)}, width, exact=False)


def _field_runs(reg: Register, low: int, high: int) -> list[tuple[int, int]]:
    """Bit ranges ``[start, stop)`` of ``reg``'s fields within bits ``[low, high)``."""
    runs = []
    for field in sorted(reg.fields, key=lambda f: f.lsb):
        start, stop = max(low, field.lsb), min(high, field.lsb + field.width)
        if start < stop:
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], stop)
            else:
                runs.append((start, stop))
    return runs
