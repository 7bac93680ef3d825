"""Synthesis: xc7z020 resources (Yosys synth_xilinx) and ECP5-85 fmax (nextpnr-ecp5), both cores."""

from __future__ import annotations

import json
import time

from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.synth import (
    LOG_DIR,
    NEXTPNR_PLACER_OPTIONS,
    ecp5_fmax,
    late_endpoints,
    tagger_fmax,
    transmitter_fmax,
    transmitter_utilisation,
    xilinx_utilisation,
)
from tbqkd.hdl.tx_registers import RING_DEPTH

#: xc7z020 (PYNQ-Z2) capacity, for the percentages.
XC7Z020 = {"luts": 53_200, "ffs": 106_400, "brams": 140, "dsps": 220}


def late_at_goal(log_name: str, goal_mhz: float = 200.0) -> int:
    """Endpoints later than the goal's period in the timing report kept beside ``log_name``."""
    report = json.loads((LOG_DIR / log_name).with_suffix(".report.json").read_text())
    return len(late_endpoints(report, 1000.0 / goal_mhz))


def run(quick: bool = False) -> dict:
    config = TaggerConfig()                 # 4 detectors + reference, 256-tap delay line
    started = time.perf_counter()
    xc7 = xilinx_utilisation(config)
    tagger = xilinx_utilisation(config, tagger_only=True)
    xilinx_s = time.perf_counter() - started
    fmax = None if quick else ecp5_fmax(config)
    tagger_mhz = None if quick else tagger_fmax(config)
    tx_started = time.perf_counter()
    tx = transmitter_utilisation(RING_DEPTH)
    tx_xilinx_s = time.perf_counter() - tx_started
    tx_fmax = None if quick else transmitter_fmax(RING_DEPTH)
    return {
        "design": "tbqkd_rx (whole receiver core: tagger, slots, classifier, histograms, "
                  "sifter, error signal, DAC), 5 channels, delay_line W=256, front-end "
                  "primitives excluded",
        "luts": xc7.luts, "ffs": xc7.ffs, "brams": xc7.brams, "dsps": xc7.dsps,
        "brams_percent": round(100 * xc7.brams / XC7Z020["brams"], 1),
        "luts_percent": round(100 * xc7.luts / XC7Z020["luts"], 1),
        "tagger_luts": tagger.luts, "tagger_ffs": tagger.ffs, "tagger_brams": tagger.brams,
        "tagger_dsps": tagger.dsps, "tagger_fmax_mhz": tagger_mhz,
        "tagger_late_endpoints": None if quick else late_at_goal(
            "nextpnr-ecp5-tbqkd_tagger_synth.log"),
        "fmax_mhz": fmax,
        "late_endpoints": None if quick else late_at_goal("nextpnr-ecp5.log"),
        "fmax_part": "LFE5U-85F-8 (CABGA756), nextpnr-ecp5, seed 1, "
                     + " ".join(NEXTPNR_PLACER_OPTIONS),
        "xilinx_part": "xc7z020 (Yosys synth_xilinx -family xc7)",
        "tx_design": f"tbqkd_tx (whole transmitter core with its register bank), state ring "
                     f"{RING_DEPTH} slots x 3 bits; fmax through the few-pin PinHarness",
        "tx_luts": tx.luts, "tx_ffs": tx.ffs, "tx_brams": tx.brams, "tx_dsps": tx.dsps,
        "tx_luts_percent": round(100 * tx.luts / XC7Z020["luts"], 1),
        "tx_brams_percent": round(100 * tx.brams / XC7Z020["brams"], 1),
        "tx_fmax_mhz": tx_fmax,
        "wall_s": round(time.perf_counter() - started, 1), "xilinx_wall_s": round(xilinx_s, 1),
        "tx_xilinx_wall_s": round(tx_xilinx_s, 1),
    }
