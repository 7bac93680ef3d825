"""Record layouts, state codes and stream table of the transmitter core (Alice).

Pure Python (no Amaranth). The classical side reuses :data:`~tbqkd.hdl.records.ANNOUNCE`
(Bob → Alice) and :data:`~tbqkd.hdl.records.ANSWER` (Alice → Bob); Alice's sifted key has the
same layout as Bob's (:data:`~tbqkd.hdl.records.SIFTED`: slot and bit), so the two keys can be
compared record by record.
"""

from __future__ import annotations

from enum import IntEnum

from .records import ANNOUNCE, ANSWER, SIFTED, RecordLayout, StreamPort

__all__ = ["TxState", "STATE_BASIS", "STATE_BIT", "STATE_PINS", "RANDOM_WORD", "RANDOM_BITS",
           "STATES", "STATES_PER_RECORD", "state_code", "TX_STREAMS"]


class TxState(IntEnum):
    """The state Alice prepares in a slot (the codes of ``host.link.AliceNode``'s ``states``)."""

    E = 0        #: |e>: light in the early time bin (Z, bit 0)
    L = 1        #: |l>: light in the late time bin (Z, bit 1)
    PLUS = 2     #: |+>: both bins, relative phase 0 (X, bit 0)
    MINUS = 3    #: |->: both bins, relative phase π (X, bit 1; four-state protocol only)


#: Basis (0 Z, 1 X) and bit of each :class:`TxState`, indexed by the code.
STATE_BASIS = (0, 0, 1, 1)
STATE_BIT = (0, 1, 0, 1)

#: Modulator pin levels ``(mod_early, mod_late, mod_phase)`` of each :class:`TxState`; a vacuum
#: slot (random underrun) drives all three low.
STATE_PINS = ((1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1))

#: Width of one random-bit beat on ``s_axis_random``.
RANDOM_BITS = 64

#: One beat of random bits (``s_axis_random``): consumed LSB first, beats in order.
RANDOM_WORD = RecordLayout("random", (("bits", RANDOM_BITS),), RANDOM_BITS)

#: Slots per ``STATES`` record.
STATES_PER_RECORD = 16

#: Alice's record of what she sent (``m_axis_states``, optional): 16 consecutive slots from
#: ``first_slot``, a 4-bit code each in ``codes`` (slot ``first_slot + i`` in bits
#: ``4i+3:4i``): :func:`state_code`. For answering in software when the round trip is
#: longer than the ring.
STATES = RecordLayout("states", (("first_slot", 48), ("codes", 4 * STATES_PER_RECORD)), 128)


def state_code(state: int | None) -> int:
    """The 4-bit code of a slot in :data:`STATES`: 0 vacuum, ``4 + state`` for a sent state."""
    return 0 if state is None else 4 | state


#: The transmitter's AXI4-Stream ports (``<prefix>_tdata``/``_tvalid``/``_tready``/``_tlast``).
TX_STREAMS = (
    StreamPort("s_axis_random", RANDOM_WORD, "in"),     # random bits from the host (QRNG)
    StreamPort("s_axis_announce", ANNOUNCE, "in"),      # Bob's announcements
    StreamPort("m_axis_answer", ANSWER, "out"),         # Alice's answers, to Bob
    StreamPort("m_axis_sifted", SIFTED, "out"),         # Alice's sifted Z key
    StreamPort("m_axis_states", STATES, "out"),         # every slot's state (CONTROL.state_stream)
)
