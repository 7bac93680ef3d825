"""The line-rate sifter: joins Bob's announced detections with Alice's answers.

Data path, one clock domain (``sync``), one record per clock on every port::

    detection ─▶ pending store (block RAM ring, seq mod depth) ─▶ announcer ─▶ TagFramer ─▶ announce
                         │ (oldest announced record)
    answer ─▶ answer FIFO ─▶ join ─▶ sifted FIFO ─▶ TagFramer ─▶ sifted
                              └────▶ x_valid / x_bob_bit / x_alice_bit (1-cycle pulse)

The pending store is a ring (address = seq mod depth) with three pointers: ``wr`` (next
sequence number), ``ann`` (next record to announce) and ``head`` (oldest record not yet answered
or discarded), ``head ≤ ann ≤ wr``. The announcement queue *is* the store, so back-pressure on
``announce`` only delays announcements; the store's capacity is the only limit.

Join rule (never silently misaligned): an answer is only ever joined with the record whose
sequence number it echoes. With ``d = (answer.seq − head) mod 2^32``: ``d ≥ 2^31`` → older than
every pending record (duplicate, or for an expired/discarded record): ``err_extra``, answer
discarded. ``d`` beyond the records already announced → ``err_early``, answer discarded.
``0 < d`` → the record at ``head`` got no answer: discarded, ``err_missing``, one per cycle, and
the answer waits. ``d = 0`` → slot equal: a match (same basis: Z → sifted record, X → X pulse;
else ``mismatch``); slot different: ``err_slot``, record and answer discarded. Every protocol
error sets the sticky ``protocol_error`` (cleared by ``clear_error``). "Announced" means taken
from the store by the announcer; up to three such records may still be on their way out.

Lag limit: a detection that finds ``max_pending`` (≠ 0) records pending expires the oldest one
(``expired``), so that a silent or lost Alice costs old records, never the link: detection and
announcement go on. A later answer to an expired record is older than ``head``: ``err_extra``.
If the join consumes the oldest record in the same cycle, nothing is expired. With
``max_pending = 0`` the store fills instead and new detections are dropped (``dropped_full``,
no sequence number, so answers stay aligned).

``restart`` empties the store, restarts sequence numbers at 0 (a detection in the same cycle
gets 0) and flushes answers accepted but not yet joined (they belong to the old session; they
are counted in ``answers`` only). Records already taken by the announcer still leave. Counters
are kept. ``detections`` counts every ``det_valid``, dropped ones included; ``announced`` counts
``announce`` transfers; ``answers`` counts ``answer`` transfers.

Latency (measured in simulation): a detection presented in cycle ``c`` is on ``announce`` in
cycle ``c + 4`` on an idle stream, if the framer does not hold it back (it holds the newest
record until the next one, the end of a frame or ``flush_cycles`` idle cycles, see
:class:`~tbqkd.hdl.tagger.TagFramer`). An answer transferred in cycle ``a`` is joined in cycle
``a + 2``; its X pulse is in ``a + 3``; its sifted record is on ``sifted`` in ``a + 6`` (same
hold-back). Missing records are discarded one per cycle before the answer is joined. The join
stalls (and ``ans_tready`` drops once the 4-entry answer FIFO is full) only while the sifted
stream back-pressures.

Resources: the store has one write and two read ports (announcer and join), so synthesis keeps
two copies of it: 2 × 16384 × 50 bits by default (measured with Yosys ``synth_xilinx`` at
depth 1024: 6 RAMB18E1, about 700 LUTs besides the 12 64-bit counters).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, ResetSignal, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .golden_sifter import COUNTERS
from .layouts import struct_layout
from .records import ANNOUNCE, ANSWER, SEQ_BITS, SIFTED, SLOT_BITS
from .tagger import TagFramer

__all__ = ["Sifter", "PENDING_ENTRY"]

#: One record of the pending store.
PENDING_ENTRY = data.StructLayout({"slot": SLOT_BITS, "basis": 1, "bit": 1})

_ANSWER_FIELDS = data.StructLayout({"seq": SEQ_BITS, "slot": SLOT_BITS, "basis": 1, "x_bit": 1})
_SIFT_FIELDS = data.StructLayout({"slot": SLOT_BITS, "bit": 1})


class Sifter(wiring.Component):
    """Line-rate sifter with a pending store of ``pending_depth`` records (module docstring).

    Parameters
    ----------
    pending_depth:
        Capacity of the pending store (block RAM; ≥ 10^4 for 10 ms at 10^6/s). Any depth
        works; a power of two saves the address wrap logic, a depth such as 10 240 saves block
        RAM (the store is 50 bits wide).
    counters:
        Keep the 64-bit counters (``COUNTERS``) here. Either way each leaves as its
        increment ``<name>_inc``, zero in a ``clear_counters`` cycle (a clear drops the counts
        of its own cycle), with ``counts_clear``: the counter is
        ``count <= clear ? inc : count + inc``; the receiver core counts them in its register
        bank (``counters=False``).

    Raises
    ------
    ValueError
        If ``pending_depth`` is not between 4 and 2^20.
    """

    def __init__(self, pending_depth: int = 16384, *, counters: bool = True) -> None:
        if not 4 <= pending_depth <= 1 << 20:
            raise ValueError(f"pending_depth={pending_depth} must be in [4, 2^20]")
        self._depth = pending_depth
        self._counters = counters
        limit_bits = max(16, pending_depth.bit_length())
        ports = {
            # detections (no back-pressure)
            "det_valid": In(1), "det_slot": In(SLOT_BITS), "det_basis": In(1), "det_bit": In(1),
            # announcements to Alice
            "ann_tdata": Out(ANNOUNCE.width), "ann_tvalid": Out(1), "ann_tready": In(1),
            "ann_tlast": Out(1),
            # Alice's answers
            "ans_tdata": In(ANSWER.width), "ans_tvalid": In(1), "ans_tready": Out(1),
            # sifted Z key
            "sift_tdata": Out(SIFTED.width), "sift_tvalid": Out(1), "sift_tready": In(1),
            "sift_tlast": Out(1),
            # sifted X events (to the error-signal unit)
            "x_valid": Out(1), "x_bob_bit": Out(1), "x_alice_bit": Out(1),
            # controls
            "frame_words": In(16), "flush_cycles": In(24), "max_pending": In(limit_bits),
            "restart": In(1), "clear_counters": In(1), "clear_error": In(1),
            # status
            "pending": Out(SEQ_BITS), "protocol_error": Out(1),
        }
        if counters:
            ports.update({name: Out(64) for name in COUNTERS})
        ports.update({f"{name}_inc": Out(1) for name in COUNTERS})
        ports["counts_clear"] = Out(1)
        super().__init__(ports)

    @property
    def pending_depth(self) -> int:
        return self._depth

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self._depth
        pow2 = (depth & (depth - 1)) == 0
        restart = self.restart

        wr = Signal(SEQ_BITS)       # next sequence number
        ann = Signal(SEQ_BITS)      # next record to announce
        head = Signal(SEQ_BITS)     # oldest pending record
        pending = Signal(SEQ_BITS)
        announced_pending = Signal(SEQ_BITS)
        m.d.comb += [pending.eq(wr - head), announced_pending.eq(ann - head),
                     self.pending.eq(pending)]

        # Ring addresses of the three pointers (seq mod depth): slices of the sequence numbers
        # for a power-of-two depth, else counters of their own that wrap at depth.
        def ring(seq: Signal, name: str):
            if pow2:
                return seq[:depth.bit_length() - 1], None
            addr = Signal(range(depth), name=f"{name}_addr")
            return addr, Mux(addr == depth - 1, 0, addr + 1)

        wr_addr, wr_addr_inc = ring(wr, "wr")
        ann_addr, ann_addr_inc = ring(ann, "ann")
        head_addr, head_addr_inc = ring(head, "head")

        m.submodules.store = store = memory.Memory(shape=PENDING_ENTRY, depth=depth, init=[])
        w_port = store.write_port()
        # Both read ports are non-transparent: a record is read by the announcer at the
        # earliest one cycle after it was written, and by the join only once announced.
        r_ann = store.read_port()
        r_head = store.read_port()

        # --- join decisions (needed by the detection side for the lag limit) ----------------
        m.submodules.answers = ans_fifo = ResetInserter(restart)(
            fifo.SyncFIFOBuffered(width=_ANSWER_FIELDS.size, depth=4))
        m.submodules.sifted = sift_fifo = fifo.SyncFIFOBuffered(width=_SIFT_FIELDS.size, depth=4)
        ans_in = Signal(struct_layout(ANSWER))
        m.d.comb += ans_in.eq(self.ans_tdata)
        m.d.comb += [
            self.ans_tready.eq(ans_fifo.w_rdy & ~restart),
            ans_fifo.w_en.eq(self.ans_tvalid & self.ans_tready),
            ans_fifo.w_data.eq(Cat(ans_in.seq, ans_in.slot, ans_in.basis, ans_in.x_bit)),
        ]
        answer = Signal(_ANSWER_FIELDS)
        m.d.comb += answer.eq(ans_fifo.r_data)
        record = Signal(PENDING_ENTRY)
        m.d.comb += record.eq(r_head.data)

        d = Signal(SEQ_BITS)
        m.d.comb += d.eq(answer.seq - head)
        go = Signal()
        m.d.comb += go.eq(ans_fifo.r_rdy & sift_fifo.w_rdy & ~restart)
        older, early, missing, here = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            older.eq(d[-1]),
            early.eq(~d[-1] & (d >= announced_pending)),
            missing.eq(~d[-1] & (d < announced_pending) & (d != 0)),
            here.eq(~d[-1] & (d < announced_pending) & (d == 0)),
        ]
        slot_ok = Signal()
        basis_ok = Signal()
        m.d.comb += [slot_ok.eq(record.slot == answer.slot),
                     basis_ok.eq(record.basis == answer.basis)]
        ev = {name: Signal(name=f"ev_{name}") for name in
              ("extra", "early", "missing", "slot", "mismatch", "z", "x")}
        m.d.comb += [
            ev["extra"].eq(go & older),
            ev["early"].eq(go & early),
            ev["missing"].eq(go & missing),
            ev["slot"].eq(go & here & ~slot_ok),
            ev["mismatch"].eq(go & here & slot_ok & ~basis_ok),
            ev["z"].eq(go & here & slot_ok & basis_ok & (answer.basis == 0)),
            ev["x"].eq(go & here & slot_ok & basis_ok & (answer.basis == 1)),
        ]
        consume = Signal()          # the join discards or uses the record at head
        m.d.comb += [
            consume.eq(ev["missing"] | (go & here)),
            ans_fifo.r_en.eq(go & ~missing),
            sift_fifo.w_en.eq(ev["z"]),
            sift_fifo.w_data.eq(Cat(record.slot, record.bit)),
        ]
        m.d.sync += [self.x_valid.eq(ev["x"]), self.x_bob_bit.eq(record.bit),
                     self.x_alice_bit.eq(answer.x_bit)]

        # --- detections: lag limit, full store, write ---------------------------------------
        limit_hit = Signal()
        full = Signal()
        m.d.comb += [limit_hit.eq((self.max_pending != 0) & (pending >= self.max_pending)),
                     full.eq(pending >= depth)]
        accept, drop, expire = Signal(), Signal(), Signal()
        m.d.comb += [
            accept.eq(self.det_valid & (restart | limit_hit | ~full)),
            drop.eq(self.det_valid & ~restart & ~limit_hit & full),
            # The join freeing the oldest record this cycle makes the room just as well.
            expire.eq(self.det_valid & ~restart & limit_hit & ~consume),
        ]
        m.d.comb += [
            w_port.addr.eq(Mux(restart, 0, wr_addr)),
            w_port.data.eq(Cat(self.det_slot, self.det_basis, self.det_bit)),
            w_port.en.eq(accept),
        ]

        # --- announcer: store → output register → framer ------------------------------------
        m.submodules.ann_framer = ann_framer = TagFramer()
        out_valid = Signal()
        out_seq = Signal(SEQ_BITS)
        advance, skip, take = Signal(), Signal(), Signal()
        m.d.comb += [
            advance.eq(~out_valid | ann_framer.i_ready),
            skip.eq(expire & (ann == head)),            # expiring a record never announced
            take.eq(advance & (ann != wr) & ~skip & ~restart),
            r_ann.addr.eq(ann_addr), r_ann.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += out_valid.eq(take)
        with m.If(take):
            m.d.sync += out_seq.eq(ann)
        out_record = Signal(PENDING_ENTRY)
        ann_word = Signal(struct_layout(ANNOUNCE))
        m.d.comb += [out_record.eq(r_ann.data),
                     ann_word.seq.eq(out_seq), ann_word.slot.eq(out_record.slot),
                     ann_word.basis.eq(out_record.basis)]
        m.d.comb += [
            ann_framer.i_data.eq(ann_word), ann_framer.i_valid.eq(out_valid),
            ann_framer.frame_words.eq(self.frame_words),
            ann_framer.flush_cycles.eq(self.flush_cycles),
            ann_framer.flush.eq(0), ann_framer.upstream_empty.eq(1),
            self.ann_tdata.eq(ann_framer.tdata), self.ann_tvalid.eq(ann_framer.tvalid),
            self.ann_tlast.eq(ann_framer.tlast), ann_framer.tready.eq(self.ann_tready),
        ]

        # --- pointers -----------------------------------------------------------------------
        head_next = Signal(SEQ_BITS)
        m.d.comb += head_next.eq(Mux(restart | ResetSignal(), 0, head + (consume | expire)))
        m.d.sync += head.eq(head_next)
        with m.If(restart):
            m.d.sync += [wr.eq(self.det_valid), ann.eq(0)]
        with m.Else():
            m.d.sync += [wr.eq(wr + accept), ann.eq(ann + (take | skip))]
        if pow2:
            m.d.comb += r_head.addr.eq(head_next[:depth.bit_length() - 1])
        else:
            head_addr_next = Signal(range(depth))
            m.d.comb += head_addr_next.eq(Mux(restart | ResetSignal(), 0,
                                              Mux(consume | expire, head_addr_inc, head_addr)))
            m.d.sync += head_addr.eq(head_addr_next)
            m.d.comb += r_head.addr.eq(head_addr_next)
            with m.If(restart):
                m.d.sync += [wr_addr.eq(self.det_valid), ann_addr.eq(0)]
            with m.Else():
                with m.If(accept):
                    m.d.sync += wr_addr.eq(wr_addr_inc)
                with m.If(take | skip):
                    m.d.sync += ann_addr.eq(ann_addr_inc)

        # --- sifted stream ------------------------------------------------------------------
        m.submodules.sift_framer = sift_framer = TagFramer()
        m.d.comb += [
            sift_framer.i_data.eq(Cat(sift_fifo.r_data, Const(0, 128 - _SIFT_FIELDS.size))),
            sift_framer.i_valid.eq(sift_fifo.r_rdy), sift_fifo.r_en.eq(sift_framer.i_ready),
            sift_framer.frame_words.eq(self.frame_words),
            sift_framer.flush_cycles.eq(self.flush_cycles),
            sift_framer.flush.eq(0), sift_framer.upstream_empty.eq(1),
            self.sift_tdata.eq(sift_framer.tdata[:SIFTED.width]),
            self.sift_tvalid.eq(sift_framer.tvalid), self.sift_tlast.eq(sift_framer.tlast),
            sift_framer.tready.eq(self.sift_tready),
        ]

        # --- counters and status ------------------------------------------------------------
        increments = {
            "detections": self.det_valid, "announced": ann_framer.sent,
            "answers": ans_fifo.w_en, "sifted_z": ev["z"], "sifted_x": ev["x"],
            "mismatch": ev["mismatch"], "dropped_full": drop, "expired": expire,
            "err_extra": ev["extra"], "err_missing": ev["missing"], "err_slot": ev["slot"],
            "err_early": ev["early"],
        }
        m.d.comb += self.counts_clear.eq(self.clear_counters)
        for name in COUNTERS:
            m.d.comb += getattr(self, f"{name}_inc").eq(increments[name] & ~self.clear_counters)
            if not self._counters:
                continue
            counter = getattr(self, name)
            with m.If(self.clear_counters):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + increments[name])
        error = Signal()
        m.d.comb += error.eq(ev["extra"] | ev["early"] | ev["missing"] | ev["slot"])
        with m.If(error):
            m.d.sync += self.protocol_error.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += self.protocol_error.eq(0)
        return m
