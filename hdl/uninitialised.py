"""Verilog with chosen memories left uninitialised.

Amaranth 0.5 gives every memory an initialiser (a ``$meminit_v2`` cell; all zeros for
``init=[]``), and Yosys's ``write_verilog`` writes it as one line per entry in an ``initial``
block. For the large memories whose contents are never observed before being written (the
transmitter's state ring, the sifter's pending store) those lines only cost: 131 072 of them
kept Yosys's Verilog front end busy for more than 5 minutes, and the 25 slices of the pending
store (409 600 lines) made ``synth_xilinx`` of the receiver 5x slower.
:func:`verilog_without_initialisers` removes those memories' initialiser cells from the RTLIL
and converts the rest exactly as :func:`amaranth.back.verilog.convert` does.
"""

from __future__ import annotations

import re

from amaranth.back import rtlil, verilog
from amaranth.hdl import Elaboratable

__all__ = ["verilog_without_initialisers", "PENDING_STORE_MEMORIES"]

#: Names of the sifter's pending-store memories (:class:`~tbqkd.hdl.sifter.PendingStore`).
PENDING_STORE_MEMORIES = r"pending_slice\d+"

_MEMINIT_CELL = re.compile(r"^(?:  attribute [^\n]*\n)*  cell \$meminit_v2 \S+\n"
                           r"(?:    [^\n]*\n)*?  end\n", re.M)


def verilog_without_initialisers(design: Elaboratable, name: str,
                                 memories: str) -> tuple[str, int]:
    """Verilog of ``design`` (top module ``name``, no ``src`` attributes) without the
    initialisers of the memories whose name fully matches the regular expression
    ``memories``; returns the text and the number of initialiser cells removed."""
    text = rtlil.convert(design, name=name, emit_src=False)
    memid = re.compile(rf'parameter \\MEMID "\\\\(?:{memories})"\n')
    removed = 0

    def drop(match: re.Match) -> str:
        nonlocal removed
        if memid.search(match.group(0)):
            removed += 1
            return ""
        return match.group(0)

    stripped = _MEMINIT_CELL.sub(drop, text)
    # The same Yosys script as amaranth.back.verilog.convert (private in Amaranth 0.5).
    return verilog._convert_rtlil_text(stripped), removed
