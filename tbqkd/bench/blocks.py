"""Receiver blocks alone: ECP5-85 fmax of the classifier, histograms, error signal, sifter."""

from __future__ import annotations

import time

from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.synth import NEXTPNR_PLACER_OPTIONS, block_fmax, receiver_blocks

from .synth import late_at_goal


def run(quick: bool = False, seed: int = 1) -> dict:
    """Each block of :func:`~tbqkd.hdl.synth.receiver_blocks` placed and routed on its own
    (about a minute each): ``<block>_fmax_mhz`` and ``<block>_late_endpoints`` (endpoints
    later than 5 ns, the 200 MHz goal's period). ``quick`` measures the classifier only."""
    config = TaggerConfig()
    names = ["classifier"] if quick else list(receiver_blocks(config))
    result: dict = {"fmax_part": f"LFE5U-85F-8 (CABGA756), nextpnr-ecp5, seed {seed}, "
                                 + " ".join(NEXTPNR_PLACER_OPTIONS)}
    started = time.perf_counter()
    for name in names:
        result[f"{name}_fmax_mhz"] = block_fmax(config, name, seed=seed)
        result[f"{name}_late_endpoints"] = late_at_goal(f"nextpnr-ecp5-block-{name}.log")
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result
