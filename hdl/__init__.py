"""Gateware of the tbqkd receiver core.

Modules that import Amaranth (``tagger``, ``axil``, ``top``, ``build`` …) are imported explicitly.
The single sources of truth that the host also needs are pure Python and import no Amaranth:
:mod:`tbqkd.hdl.regmap` (the register table), :mod:`tbqkd.hdl.records` (stream record layouts)
and :mod:`tbqkd.hdl.golden` (bit-exact numpy reference models of each block).
"""
