"""Host software: configures the core, runs the link, distils key.

Pure Python + numpy, valid on Python 3.10 (the PYNQ image); imports nothing from amaranth or
cocotb. Hardware definitions come from the amaranth-free modules :mod:`tbqkd.hdl.regmap` and
:mod:`tbqkd.hdl.records`.
"""
