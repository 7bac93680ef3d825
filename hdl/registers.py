"""The receiver core's register table: the tagger's registers plus those of part 2.

Pure Python (no Amaranth), like :mod:`tbqkd.hdl.config`: the host builds the same table from the
same :class:`TaggerConfig`. Part 2 adds the classifier and lock monitor, the live histograms,
the sifter, the phase error signal and the DAC (phase actuator).
"""

from __future__ import annotations

from .config import TaggerConfig, add_slot_registers, add_tagger_registers
from .golden_phase import DAC8568_FRAME_BITS, DAC8568_SUFFIX_BITS, dac8568_prefix
from .records import PHASE_BITS, Role
from .regmap import Field, RegisterMap

__all__ = ["core_regmap", "add_classifier_registers", "add_histogram_registers",
           "add_sifter_registers", "add_phase_registers", "add_dac_registers",
           "SIFTER_COUNTERS", "HISTOGRAM_BINS", "PENDING_DEPTH", "DAC_SAFE_VALUE",
           "bank_counters", "COUNTER_READ_LATENCY"]

#: Bins per channel of the live histograms.
HISTOGRAM_BINS = 1024
#: Records the sifter's pending store holds (10 ms of detections at 10^6 per second).
PENDING_DEPTH = 16384
#: The value the DAC is set to after reset (mid-scale).
DAC_SAFE_VALUE = 0x8000

#: The sifter's 64-bit counters, in register order (``SIFT_<NAME>``).
SIFTER_COUNTERS = ("detections", "announced", "answers", "sifted_z", "sifted_x", "mismatch",
                   "dropped_full", "expired", "err_extra", "err_missing", "err_slot",
                   "err_early")

#: Extra cycles a read of a counter kept in the register bank's counter bank takes
#: (:class:`tbqkd.hdl.counters.CounterBank`): it answers with the count of the cycle the read
#: was accepted in, ``COUNTER_READ_LATENCY`` cycles later than the other registers.
COUNTER_READ_LATENCY = 4


def bank_counters(n_channels: int) -> tuple[str, ...]:
    """The event counters the register bank keeps in its counter bank: every 64-bit counter
    that counts at most one event per cycle (``CHn_SUPPRESSED`` counts up to a word's edges
    per cycle and stays in the tagger)."""
    per_channel = [f"CH{ch}_{name}" for ch in range(n_channels)
                   for name in ("EVENTS", "DROPPED", "EARLY_COUNT", "LATE_COUNT",
                                "MIDDLE_COUNT", "OUTSIDE_COUNT")]
    return ("TAGS_OUT", "FRAMES_OUT", *per_channel, "LOCK_VIOLATIONS", "CLASS_BAD_CHANNEL",
            "CLASS_BAD_PHASE", "HIST_OUTSIDE", "HIST_SKIPPED",
            *(f"SIFT_{name.upper()}" for name in SIFTER_COUNTERS))


def add_core_command_registers(regs: RegisterMap.Builder) -> None:
    g = "core"
    regs.align(0x10)
    regs.add("CORE_COMMAND", "wp", "Commands of part 2 (write 1 to a bit)", group=g, fields=[
        Field("align", 0, 1, "the next reference-channel event defines slot 0 (SLOT_BASE)"),
        Field("clear_lost_lock", 1, 1, "clear CORE_STATUS.lost_lock"),
        Field("hist_swap", 2, 1, "make the accumulating histograms the snapshot (after a "
              "running clear, as soon as it ends)"),
        Field("hist_release", 3, 1, "done reading the snapshot: clear it in the background"),
        Field("sift_restart", 4, 1, "empty the sifter's pending store; sequence numbers restart "
              "at 0 (both sides, at the start of a session)"),
        Field("clear_protocol_error", 5, 1, "clear CORE_STATUS.protocol_error"),
        Field("irq_ack", 6, 1, "acknowledge the error-signal window interrupt"),
        Field("clear_counters", 7, 1, "zero the classifier, histogram-outside and sifter "
              "counters")])
    regs.add("CORE_STATUS", "ro", "Status of part 2", group=g, fields=[
        Field("aligned", 0, 1, "slot 0 has been set by a reference event since CORE_COMMAND."
              "align"),
        Field("lost_lock", 1, 1, "sticky: a reference event was further than LOCK_THRESHOLD "
              "from REF_PHASE"),
        Field("protocol_error", 2, 1, "sticky: the answer stream was too long, too short or "
              "out of order (see the SIFT_ERR_* counters)"),
        Field("hist_clearing", 3, 1, "the histogram bank being released is being cleared"),
        Field("hist_swap_pending", 4, 1, "a swap waits for the clear to end"),
        Field("hist_snapshot_valid", 5, 1, "the snapshot bank holds a swapped-out histogram"),
        Field("dac_busy", 6, 1, "the DAC master is sending or has a write queued"),
        Field("irq", 7, 1, "an error-signal window completed and is not acknowledged")])


def add_classifier_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    """Time-bin windows per channel and the reference lock monitor."""
    g = "classifier"
    regs.align(0x10)
    regs.add("REF_PHASE", "rw", "Expected phase of the reference channel in its slot, ps",
             group=g, fields=[Field("ps", 0, PHASE_BITS)])
    regs.add("LOCK_THRESHOLD", "rw", "Lost lock when a reference event is further than this "
             "from REF_PHASE, ps", group=g, fields=[Field("ps", 0, PHASE_BITS, reset=500)])
    regs.add("LOCK_WINDOW", "rw", "Reference events per lock-monitor window: 2^log2", group=g,
             fields=[Field("log2", 0, 5, reset=8)])
    regs.add("LOCK_OFFSET", "ro", "Mean offset of the reference from REF_PHASE over the last "
             "window, ps (two's complement)", group=g,
             fields=[Field("ps", 0, PHASE_BITS + 2, signed=True)])
    regs.add("LOCK_SPREAD", "ro", "Max − min offset over the last window, ps", group=g,
             fields=[Field("ps", 0, PHASE_BITS + 2)])
    regs.add("LOCK_WINDOWS", "ro", "Completed lock-monitor windows", group=g)
    regs.add("SLOT_BASE", "ro", "Slot counter value of the reference event that defined slot 0",
             width=64, group=g)
    regs.add("LOCK_VIOLATIONS", "ro", "Reference events beyond LOCK_THRESHOLD", width=64,
             group=g)
    regs.add("CLASS_BAD_CHANNEL", "ro", "Events on a channel the classifier does not have",
             width=64, group=g)
    regs.add("CLASS_BAD_PHASE", "ro", "Events whose phase was not below the slot period",
             width=64, group=g)
    roles = ", ".join(f"{r.value} {r.name.lower()}" for r in Role)
    for ch in range(config.n_channels):
        gc = f"class{ch}"
        regs.align(0x40)
        regs.add(f"CH{ch}_ROLE", "rw", f"Channel {ch} role: {roles}", group=gc,
                 fields=[Field("role", 0, 3, reset=Role.REFERENCE if ch == 0 else Role.OFF)])
        regs.add(f"CH{ch}_PHASE_DELAY", "rw", f"Channel {ch} delay subtracted from the phase "
                 "before the windows, ps (|delay| < slot period)", group=gc,
                 fields=[Field("ps", 0, PHASE_BITS, signed=True)])
        for window in ("EARLY", "LATE", "MIDDLE"):
            regs.add(f"CH{ch}_{window}_START", "rw", f"Channel {ch} {window.lower()} window "
                     "start, ps in the slot", group=gc, fields=[Field("ps", 0, PHASE_BITS)])
            regs.add(f"CH{ch}_{window}_WIDTH", "rw", f"Channel {ch} {window.lower()} window "
                     "width, ps (0: off)", group=gc, fields=[Field("ps", 0, PHASE_BITS)])
        for counter in ("EARLY", "LATE", "MIDDLE", "OUTSIDE"):
            what = "in no window (dropped)" if counter == "OUTSIDE" else \
                f"in the {counter.lower()} window"
            regs.add(f"CH{ch}_{counter}_COUNT", "ro", f"Channel {ch} events {what}",
                     width=64, group=gc)


def add_histogram_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    g = "histogram"
    regs.align(0x10)
    regs.add("HIST_CONTROL", "rw", "Live phase histograms", group=g, fields=[
        Field("enable", 0, 1, "count events", reset=1),
        Field("shift", 1, 5, "bin width: 2^shift ps", reset=4)])
    regs.add("HIST_OFFSET", "rw", "Phase of bin 0's left edge, ps", group=g,
             fields=[Field("ps", 0, PHASE_BITS)])
    regs.add("HIST_ADDR", "rw", f"Snapshot read address: bin (0..{HISTOGRAM_BINS - 1}) and "
             "channel", group=g, fields=[Field("bin", 0, 10), Field("channel", 10, 5)])
    regs.add("HIST_DATA", "ro", "Snapshot count of HIST_ADDR (saturating)", group=g)
    regs.add("HIST_SWAPS", "ro", "Snapshots taken", group=g)
    regs.add("HIST_OUTSIDE", "ro", "Events outside the histogram range", width=64, group=g)
    regs.add("HIST_SKIPPED", "ro", "Events not binned because the accumulating bank was still "
             "being cleared after reset", width=64, group=g)


def add_sifter_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    g = "sifter"
    regs.align(0x10)
    regs.add("SIFT_MAX_PENDING", "rw", "Lag limit: with this many records awaiting Alice's "
             "answer, a new detection expires the oldest (0: no limit but the store)", group=g,
             fields=[Field("records", 0, 16, reset=PENDING_DEPTH - 1)])
    regs.add("SIFT_PENDING", "ro", "Records awaiting an answer", group=g)
    for name in SIFTER_COUNTERS:
        regs.add(f"SIFT_{name.upper()}", "ro", f"Sifter counter: {name.replace('_', ' ')}",
                 width=64, group=g)


def add_phase_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    g = "phase"
    regs.align(0x10)
    regs.add("PHASE_CONTROL", "rw", "Phase error signal", group=g, fields=[
        Field("enable", 0, 1, "count", reset=1),
        Field("mode", 1, 1, "window of 0: PHASE_WINDOW_SLOTS slots, 1: PHASE_WINDOW_EVENTS "
              "sifted X events"),
        Field("four_state", 2, 1, "error when Bob's X bit differs from Alice's (0: three-state "
              "protocol, every X− click is an error)")])
    regs.add("PHASE_WINDOW_EVENTS", "rw", "Window length in sifted X events", group=g,
             fields=[Field("events", 0, 32, reset=1000)])
    regs.add("PHASE_WINDOW_SLOTS", "rw", "Window length in slots (reset: one second at "
             "75.947 MHz)", width=64, group=g, fields=[Field("slots", 0, 48, reset=75_947_000)])
    for name in ("INDEX", "X_SIFTED", "X_ERRORS", "MID_PLUS", "MID_MINUS"):
        regs.add(f"PHASE_{name}", "ro", f"Last completed window: {name.lower().replace('_', ' ')}",
                 group=g)
    regs.add("PHASE_DROPPED", "ro", "Window records dropped because m_axis_phase was full",
             group=g)
    regs.add("PHASE_END_SLOT", "ro", "Last completed window: the slot it closed at", width=64,
             group=g)


def add_dac_registers(regs: RegisterMap.Builder, config: TaggerConfig) -> None:
    g = "dac"
    regs.align(0x10)
    regs.add("DAC_CONFIG", "rw", "SPI framing of the phase-shifter DAC (reset: DAC8568)",
             group=g, fields=[
                 Field("frame_bits", 0, 6, "bits per frame: 32 DAC8568, 24 AD5686",
                       reset=DAC8568_FRAME_BITS),
                 Field("suffix_bits", 6, 5, "bits after the data word",
                       reset=DAC8568_SUFFIX_BITS),
                 Field("clock_div", 11, 8, "SCLK half period in clock cycles", reset=4),
                 Field("cpol", 19, 1, "SCLK idle level", reset=1)])
    regs.add("DAC_PREFIX", "rw", "Bits sent before the data word, MSB first (DAC8568: prefix, "
             "control 0011 = write and update, address)", group=g,
             fields=[Field("bits", 0, 16, reset=dac8568_prefix(0))])
    regs.add("DAC_SUFFIX", "rw", "Bits sent after the data word (DAC8568: feature bits)",
             group=g, fields=[Field("bits", 0, 16)])
    regs.add("DAC_VALUE", "rw", "Phase-shifter code: a write sends it to the DAC (queued while "
             f"busy; {DAC_SAFE_VALUE:#06x} after reset)", group=g,
             fields=[Field("code", 0, 16, reset=DAC_SAFE_VALUE)])
    regs.add("DAC_WRITES", "ro", "Frames sent to the DAC", group=g)
    regs.add("DAC_REJECTED", "ro", "Writes refused because DAC_CONFIG's framing is invalid",
             group=g)


def core_regmap(config: TaggerConfig) -> RegisterMap:
    """The register table of the receiver core elaborated with ``config``."""
    regs = RegisterMap.Builder()
    add_tagger_registers(regs, config)
    add_slot_registers(regs, config)
    add_core_command_registers(regs)
    add_classifier_registers(regs, config)
    add_histogram_registers(regs, config)
    add_sifter_registers(regs, config)
    add_phase_registers(regs, config)
    add_dac_registers(regs, config)
    return regs.build()
