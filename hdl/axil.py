"""AXI4-Lite register bank generated from a :class:`~tbqkd.hdl.regmap.RegisterMap`.

One transaction at a time per direction. Latency: a write is accepted in the cycle both AW and W
are valid (``awready``/``wready`` high that cycle) and answered on B one cycle later; a read is
accepted in the cycle AR is valid and answered on R one cycle later, except within
:data:`READ_AFTER_WRITE` cycles of a write, when ``arready`` waits, so that a read sees every
effect of an earlier write that the core shows within that time. Unmapped addresses and writes
to read-only registers answer ``SLVERR``; their writes have no effect.

For each register the bank exposes signals that the core drives or uses:

* ``rw``: ``bank.value[name]``, the held value (reset from the table).
* ``ro``: ``bank.value[name]``, driven by the core; 64-bit ones latch their high word when the
  low word is read.
* ``wp``: ``bank.strobe[name]``, the written value for exactly one cycle (zero otherwise).

Every writable register also has ``bank.written[name]``, high for the one cycle after a write
(when ``value``/``strobe`` already show the written data).
* ``rc``: ``bank.set[name]``, driven by the core (bits to set); ``bank.value[name]`` the flags.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import RegisterMap

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
    """The register bank of ``regmap`` behind an AXI4-Lite port ``bus``."""

    def __init__(self, regmap: RegisterMap) -> None:
        self._regmap = regmap
        self.value: dict[str, Signal] = {}
        self.strobe: dict[str, Signal] = {}
        self.set: dict[str, Signal] = {}
        self.written: dict[str, Signal] = {}
        for reg in regmap:
            if reg.name == "ID":
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
        do_write = Signal()
        m.d.comb += do_write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid)
        m.d.comb += [bus.awready.eq(do_write), bus.wready.eq(do_write)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        byte_mask = Signal(32)
        m.d.comb += byte_mask.eq(
            sum((bus.wstrb[i].replicate(8) << (8 * i)) for i in range(4)))
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
                            part = slice(32 * w, 32 * w + 32)
                            if reg.access == "rw":
                                old = self.value[reg.name][part]
                                m.d.sync += old.eq((old & ~byte_mask) | (bus.wdata & byte_mask))
                            elif reg.access == "wp":
                                m.d.sync += self.strobe[reg.name][part].eq(bus.wdata)
                            elif reg.access == "rc":
                                flags = self.value[reg.name]
                                m.d.sync += flags[part].eq(
                                    (flags[part] | self.set[reg.name][part]) & ~bus.wdata)

        # --- reads -------------------------------------------------------------------------
        shadows = {reg.name: Signal(32, name=f"{reg.name.lower()}_hi")
                   for reg in regmap if reg.access == "ro" and reg.width == 64}
        read_word = Signal(regmap.addr_width - 2)
        m.d.comb += read_word.eq(bus.araddr[2:])
        # A read is accepted only READ_AFTER_WRITE cycles after the last write took effect, so
        # that it sees what the write caused in the core (e.g. a histogram read port moved).
        settle = Signal(range(READ_AFTER_WRITE + 1))
        with m.If(do_write):
            m.d.sync += settle.eq(READ_AFTER_WRITE)
        with m.Elif(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        do_read = Signal()
        m.d.comb += [do_read.eq(bus.arvalid & ~bus.rvalid & (settle == 0)),
                     bus.arready.eq(do_read)]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(do_read):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0), bus.rresp.eq(RESP_SLVERR)]
            with m.Switch(read_word):
                for reg in regmap:
                    for w in range(reg.words):
                        with m.Case((reg.offset >> 2) + w):
                            m.d.sync += bus.rresp.eq(RESP_OKAY)
                            if reg.name in constant:
                                m.d.sync += bus.rdata.eq((constant[reg.name] >> (32 * w))
                                                         & 0xFFFF_FFFF)
                            elif reg.access == "wp":
                                m.d.sync += bus.rdata.eq(0)
                            elif reg.name in shadows and w == 1:
                                m.d.sync += bus.rdata.eq(shadows[reg.name])
                            else:
                                value = self.value[reg.name]
                                m.d.sync += bus.rdata.eq(value[32 * w:32 * w + 32])
                                if reg.name in shadows:
                                    m.d.sync += shadows[reg.name].eq(value[32:64])
        return m
