"""Input front ends: detector pins to one ``W``-bit sample word per clock cycle (bit 0 earliest).

In simulation (and for vendor-independent synthesis reports) the sample words are top-level
inputs that the testbench drives from true event times (:mod:`tbqkd.sim.frontend`). Elaborated
with ``primitives="xc7"`` the front ends instantiate Xilinx 7-series primitives:

* :class:`OversamplingFrontend` — one ``ISERDESE2`` in NETWORKING/DDR mode, ``W`` = 8 samples per
  ``aclk`` cycle from a ``serdes`` clock at 4 × ``aclk`` (both from one MMCM). UG471: the bit
  received first leaves on Q8, so the word is ``Cat(Q8 … Q1)``.
* :class:`DelayLineFrontend` — a chain of ``W/4`` ``CARRY4`` cells fed by the pin through
  CYINIT, every carry output captured by an ``FDRE`` on ``aclk``. Tap ``k`` is ``CO[k % 4]`` of
  cell ``k // 4``; bit ``j`` of the word is tap ``W − 1 − j`` (the tap the input reached last is
  the newest sample). Placement (one column, ``LOC``/``RLOC``) belongs in the board constraints.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["OversamplingFrontend", "DelayLineFrontend"]


class OversamplingFrontend(wiring.Component):
    """ISERDESE2 8:1 DDR oversampling of one input pin."""

    def __init__(self, width: int = 8) -> None:
        if width != 8:
            raise ValueError("the ISERDESE2 front end delivers 8 samples per cycle")
        super().__init__({"pin": In(1), "serdes_clk": In(1), "word": Out(width)})

    def elaborate(self, platform) -> Module:
        m = Module()
        q = [Signal(name=f"q{i}") for i in range(1, 9)]
        m.submodules.iserdes = Instance(
            "ISERDESE2",
            p_DATA_RATE="DDR", p_DATA_WIDTH=8, p_INTERFACE_TYPE="NETWORKING",
            p_IOBDELAY="NONE", p_NUM_CE=1, p_SERDES_MODE="MASTER",
            i_D=self.pin, i_DDLY=Const(0), i_CLK=self.serdes_clk, i_CLKB=~self.serdes_clk,
            i_CLKDIV=ClockSignal(), i_CLKDIVP=Const(0), i_OCLK=Const(0), i_OCLKB=Const(0),
            i_RST=ResetSignal(), i_CE1=Const(1), i_CE2=Const(1), i_BITSLIP=Const(0),
            i_DYNCLKSEL=Const(0), i_DYNCLKDIVSEL=Const(0), i_OFB=Const(0),
            i_SHIFTIN1=Const(0), i_SHIFTIN2=Const(0),
            **{f"o_Q{i}": q[i - 1] for i in range(1, 9)},
        )
        m.d.comb += self.word.eq(Cat(*reversed(q)))
        return m


class DelayLineFrontend(wiring.Component):
    """CARRY4 tapped delay line with sampling flip-flops."""

    def __init__(self, width: int) -> None:
        if width % 4:
            raise ValueError("a CARRY4 delay line has a multiple of 4 taps")
        self._width = width
        super().__init__({"pin": In(1), "word": Out(width)})

    def elaborate(self, platform) -> Module:
        m = Module()
        n_cells = self._width // 4
        carry = [Signal(4, name=f"co{i}") for i in range(n_cells)]
        for i in range(n_cells):
            m.submodules[f"carry{i}"] = Instance(
                "CARRY4",
                i_CI=Const(0) if i == 0 else carry[i - 1][3],
                i_CYINIT=self.pin if i == 0 else Const(0),
                i_DI=Const(0, 4), i_S=Const(0b1111, 4), o_CO=carry[i],
            )
        taps = Cat(*carry)
        sampled = Signal(self._width)
        for k in range(self._width):
            m.submodules[f"tap{k}"] = Instance(
                "FDRE", p_INIT=0, i_C=ClockSignal(), i_CE=Const(1), i_R=Const(0),
                i_D=taps[k], o_Q=sampled[k])
        m.d.comb += self.word.eq(Cat(*(sampled[self._width - 1 - j]
                                       for j in range(self._width))))
        return m
