"""The transmitter core's register table (Alice), in the declarative style of the receiver's.

Pure Python (no Amaranth): the host builds the same table. Its ``ID`` register (a CRC-32 of the
table) differs from the receiver's, so a host cannot mistake one core for the other.
"""

from __future__ import annotations

from .regmap import Field, RegisterMap

__all__ = ["transmitter_regmap", "TX_COUNTERS", "RING_DEPTH", "DEFAULT_X_THRESHOLD",
           "DEFAULT_PATTERN", "REF_DIVIDER_DEFAULT"]

#: Slots the state ring keeps (2^17: 1.73 ms at 75.947 MHz; 512 kbit of block RAM).
RING_DEPTH = 1 << 17
#: P(X) = X_THRESHOLD / 2^BASIS_BITS: 13107 / 65536 = 0.2, i.e. P(Z) = 0.8 (three-state default).
DEFAULT_X_THRESHOLD = 13107
#: The alignment pattern after reset: |e>, |l>, |+>, |+> (2 bits a state, slot 0 in bits 1:0).
DEFAULT_PATTERN = 0b10_10_01_00
#: The reference pin pulses every 65 536 slots.
REF_DIVIDER_DEFAULT = 1 << 16

#: The transmitter's 64-bit counters, in register order (``<NAME>`` upper case).
TX_COUNTERS = ("random_words", "random_underruns", "states_e", "states_l", "states_plus",
               "states_minus", "announcements", "answers", "sifted_z", "err_out_of_ring",
               "err_vacuum", "states_dropped")

_COUNTER_TEXT = {
    "random_words": "Random beats taken from s_axis_random",
    "random_underruns": "Random-mode slots sent as vacuum: not enough random bits",
    "states_e": "Slots sent as |e>", "states_l": "Slots sent as |l>",
    "states_plus": "Slots sent as |+>", "states_minus": "Slots sent as |->",
    "announcements": "Announcements taken from s_axis_announce",
    "answers": "Answers produced (to m_axis_answer)",
    "sifted_z": "Sifted Z records produced (to m_axis_sifted)",
    "err_out_of_ring": "Announcements of a slot not in the ring (no answer; protocol error)",
    "err_vacuum": "Announcements of a vacuum slot (no answer)",
    "states_dropped": "STATES records lost because m_axis_states was full",
}


def transmitter_regmap(ring_depth: int = RING_DEPTH) -> RegisterMap:
    """The register table of the transmitter core built with a ``ring_depth``-slot ring."""
    regs = RegisterMap.Builder()
    g = "transmitter"
    regs.add("CONTROL", "rw", "Transmitter control", group=g, fields=[
        Field("run", 0, 1, "the slot clock runs: one state per slot"),
        Field("four_state", 1, 1, "random mode: X states are |+> or |-> (0: three-state "
              "protocol, always |+>)"),
        Field("pattern_mode", 2, 1, "states from PATTERN instead of random bits (alignment)"),
        Field("state_stream", 3, 1, "send every slot's state on m_axis_states, 16 slots a "
              "record (for answering in software beyond the ring)")])
    regs.add("COMMAND", "wp", "Commands (write 1 to a bit)", group=g, fields=[
        Field("restart", 0, 1, "slot counter, pattern index and reference divider to 0 (the "
              "start of a session; the ring then holds no state until slots are sent)"),
        Field("clear_counters", 1, 1, "zero the counters"),
        Field("clear_error", 2, 1, "clear STATUS.protocol_error")])
    regs.add("STATUS", "ro", "Status", group=g, fields=[
        Field("running", 0, 1, "CONTROL.run as applied"),
        Field("protocol_error", 1, 1, "sticky: an announcement named a slot not in the ring"),
        Field("random_bits", 8, 8, "random bits buffered (0..128)")])
    regs.add("RING_DEPTH", "ro", "Slots the state ring keeps (elaboration parameter)",
             group=g, fields=[Field("slots", 0, 32, reset=ring_depth)])
    regs.align(0x10)
    regs.add("SLOT_DIVIDER", "rw", "Fabric clocks per slot, k (0 acts as 1); the fabric clock "
             "is locked to k times the pulse rate", group=g,
             fields=[Field("cycles", 0, 16, reset=1)])
    regs.add("BASIS_BITS", "rw", "Random bits compared with X_THRESHOLD, n (clamped to 1..16); "
             "each random-mode slot consumes n + 1 bits", group=g,
             fields=[Field("bits", 0, 5, reset=16)])
    regs.add("X_THRESHOLD", "rw", "Random mode: X basis when the n-bit number is below this "
             "(P(X) = threshold / 2^n)", group=g,
             fields=[Field("threshold", 0, 17, reset=DEFAULT_X_THRESHOLD)])
    regs.add("PATTERN", "rw", "Pattern mode: state of pattern slot i in bits 2i+1:2i (0 e, "
             "1 l, 2 +, 3 -)", group=g, fields=[Field("states", 0, 32, reset=DEFAULT_PATTERN)])
    regs.add("PATTERN_LENGTH", "rw", "Pattern mode: slots before the pattern repeats (0 acts "
             "as 1, above 16 as 16)", group=g, fields=[Field("slots", 0, 5, reset=4)])
    regs.add("REF_DIVIDER", "rw", "The reference pin pulses at slots 0 mod this (0: off)",
             group=g, fields=[Field("slots", 0, 32, reset=REF_DIVIDER_DEFAULT)])
    regs.add("MOD_DELAY", "rw", "Modulator pins: fabric clocks from the slot start to the "
             "pulse (within the slot)", group=g, fields=[Field("cycles", 0, 16)])
    regs.add("MOD_WIDTH", "rw", "Modulator pins: pulse width in fabric clocks (cut at the end "
             "of the slot)", group=g, fields=[Field("cycles", 0, 16, reset=0xFFFF)])
    regs.add("MOD_FINE_DELAY", "rw", "Fine delay taps for an output delay or MMCM phase shift "
             "outside the core (stored only)", group=g, fields=[Field("taps", 0, 9)])
    regs.add("FRAME_WORDS", "rw", "Records per output frame: TLAST on every FRAME_WORDS-th "
             "answer or sifted record", group=g, fields=[Field("value", 0, 16, reset=256)])
    regs.add("FLUSH_CYCLES", "rw", "Idle cycles after which a partial frame is closed",
             group=g, fields=[Field("value", 0, 24, reset=4096)])
    regs.align(0x10)
    regs.add("SLOT", "ro", "Slots sent since reset or COMMAND.restart", width=64, group=g)
    for name in TX_COUNTERS:
        regs.add(name.upper(), "ro", _COUNTER_TEXT[name], width=64, group=g)
    return regs.build()
