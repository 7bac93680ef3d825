"""The line-rate sifter: joins Bob's announced detections with Alice's answers.

Data path, one clock domain (``sync``), one record per clock on every port::

    detection ─▶ pending store (block RAM ring, seq mod depth) ─▶ announcer ─▶ TagFramer ─▶ announce
                         │ (prefetch of the oldest records)
                         ▼
                       window (6 records)
                         │
    answer ─▶ answer FIFO ─▶ join ─▶ sifted FIFO ─▶ TagFramer ─▶ sifted
                              └────▶ x_valid / x_bob_bit / x_alice_bit (1-cycle pulse)

The pending store is a ring (address = seq mod depth) with three pointers: ``wr`` (next
sequence number), ``ann`` (next record to announce) and ``head`` (oldest record not yet answered
or discarded), ``head ≤ ann ≤ wr``. The announcement queue *is* the store, so back-pressure on
``announce`` only delays announcements; the store's capacity is the only limit.

The join never reads the store directly: a prefetch copies the oldest records (``head``,
``head + 1``, …, as soon as they are written, announced or not) through a register that is the
block RAM's own output register into a 6-record window, and the join compares the window's
head with the answer, flip-flops against flip-flops. Joining or expiring the record at
``head`` pops the window; a record expired before it reached the window (a lag limit of a few
records) is dropped from the window's front when it arrives. A record is in the window 5 cycles
after its detection, before its announcement can leave; an answer that names it sooner waits.

Join rule (never silently misaligned): an answer is only ever joined with the record whose
sequence number it echoes. With ``d = (answer.seq − head) mod 2^32``: ``d ≥ 2^31`` → older than
every pending record (duplicate, or for an expired/discarded record): ``err_extra``, answer
discarded. ``d`` beyond the records already announced → ``err_early``, answer discarded.
``0 < d`` → the record at ``head`` got no answer: discarded, ``err_missing``, one per cycle, and
the answer waits. ``d = 0`` → slot equal: a match (same basis: Z → sifted record, X → X pulse;
else ``mismatch``); slot different: ``err_slot``, record and answer discarded. Every protocol
error sets the sticky ``protocol_error`` (cleared by ``clear_error``). "Announced" means taken
from the store by the announcer; up to four such records may still be on their way out.

Lag limit: a detection that finds ``max_pending`` (≠ 0) records pending expires the oldest one
(``expired``), so that a silent or lost Alice costs old records, never the link: detection and
announcement go on. A later answer to an expired record is older than ``head``: ``err_extra``.
If the join consumes the oldest record in the same cycle, nothing is expired. A new
``max_pending`` decides from the cycle after it arrives (the test is a flag computed a cycle
ahead). With
``max_pending = 0`` the store fills instead and new detections are dropped (``dropped_full``,
no sequence number, so answers stay aligned).

``restart`` empties the store, restarts sequence numbers at 0 (a detection in the same cycle
gets 0) and flushes answers accepted but not yet joined (they belong to the old session; they
are counted in ``answers`` only). Records already taken by the announcer still leave. Counters
are kept. ``detections`` counts every ``det_valid``, dropped ones included; ``announced`` counts
``announce`` transfers; ``answers`` counts ``answer`` transfers.

Latency (measured in simulation): a detection presented in cycle ``c`` is on ``announce`` in
cycle ``c + 5`` on an idle stream, if the framer does not hold it back (it holds the newest
record until the next one, the end of a frame or ``flush_cycles`` idle cycles, see
:class:`~tbqkd.hdl.tagger.TagFramer`). An answer transferred in cycle ``a`` is joined in cycle
``a + 2``; its X pulse is in ``a + 3``; its sifted record is on ``sifted`` in ``a + 6`` (same
hold-back). Missing records are discarded one per cycle before the answer is joined. The join
stalls (and ``ans_tready`` drops once the 4-entry answer FIFO is full) only while the sifted
stream back-pressures.

Resources: the store has one write and two read ports (announcer and prefetch), so synthesis
keeps two copies of it: 2 × 16384 × 50 bits by default (measured with Yosys ``synth_xilinx`` at
depth 1024: 6 RAMB18E1, about 700 LUTs besides the 12 64-bit counters).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .golden_sifter import COUNTERS
from .layouts import struct_layout
from .records import ANNOUNCE, ANSWER, SEQ_BITS, SIFTED, SLOT_BITS
from .tagger import TagFramer

__all__ = ["Sifter", "PendingStore", "PENDING_ENTRY", "PREFETCH_DEPTH", "STORE_SLICE_BITS"]

#: One record of the pending store.
PENDING_ENTRY = data.StructLayout({"slot": SLOT_BITS, "basis": 1, "bit": 1})

#: Records the join's window holds, those on their way from the store included.
PREFETCH_DEPTH = 6

#: Width of each memory the pending store is built from (:class:`PendingStore`): 16K x 2 is
#: one RAMB36 on the xc7 and two 16K x 1 DP16KD on the ECP5, neither with an output multiplexer.
STORE_SLICE_BITS = 2

_ANSWER_FIELDS = data.StructLayout({"seq": SEQ_BITS, "slot": SLOT_BITS, "basis": 1, "x_bit": 1})
_SIFT_FIELDS = data.StructLayout({"slot": SLOT_BITS, "bit": 1})


class PendingStore(wiring.Component):
    """The pending store: ``depth`` records of :data:`PENDING_ENTRY`, one write port and two
    non-transparent read ports with enables (``write``, ``read[0]``, ``read[1]``).

    Built from memories ``slice_bits`` wide, so that each maps to block RAMs whose
    read data needs no multiplexer in the fabric (on the ECP5 a 16 384-deep slice is one
    16K x 1 ``DP16KD`` per bit; the whole 50-bit record in one memory became 1K x 18 blocks
    behind a 16-way multiplexer): a register that takes the read data directly can then be the
    RAM's own output register.

    A read of the address written in the same cycle may return either record (Yosys attribute
    ``no_rw_check``, so that nothing sits between the RAM and that register): the sifter uses
    a read's data only for a record written in an earlier cycle, except one it then drops
    unused (a full ring whose oldest record expires in that cycle: the announcer skips it, the
    prefetch finds head past it).
    """

    def __init__(self, depth: int, *, slice_bits: int = STORE_SLICE_BITS) -> None:
        if slice_bits < 1:
            raise ValueError(f"slice_bits={slice_bits} must be at least 1")
        self._depth = depth
        self._slice_bits = slice_bits
        port = {"addr": In(range(depth)), "data": In(PENDING_ENTRY), "en": In(1)}
        read = {"addr": In(range(depth)), "data": Out(PENDING_ENTRY), "en": In(1)}
        super().__init__({"write": In(wiring.Signature(port)),
                          "read": In(wiring.Signature(read)).array(2)})

    def elaborate(self, platform) -> Module:
        m = Module()
        width = PENDING_ENTRY.size
        pieces: list[list[Value]] = [[] for _ in self.read]
        for i, lo in enumerate(range(0, width, self._slice_bits)):
            hi = min(width, lo + self._slice_bits)
            mem = memory.Memory(shape=hi - lo, depth=self._depth, init=[],
                                attrs={"no_rw_check": 1})
            m.submodules[f"pending_slice{i}"] = mem
            w = mem.write_port()
            m.d.comb += [w.addr.eq(self.write.addr), w.data.eq(self.write.data.as_value()[lo:hi]),
                         w.en.eq(self.write.en)]
            for k, port in enumerate(self.read):
                r = mem.read_port()
                m.d.comb += [r.addr.eq(port.addr), r.en.eq(port.en)]
                pieces[k].append(r.data)
        for port, parts in zip(self.read, pieces, strict=True):
            m.d.comb += port.data.eq(Cat(*parts))
        return m


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
        pending = Signal(range(depth + 1))     # wr - head, kept as a count of its own
        m.d.comb += self.pending.eq(pending)

        # Ring addresses of the pointers that address the store (seq mod depth): slices of the
        # sequence numbers for a power-of-two depth, else counters of their own that wrap.
        def ring(seq: Signal, name: str):
            if pow2:
                return seq[:depth.bit_length() - 1], None
            addr = Signal(range(depth), name=f"{name}_addr")
            return addr, Mux(addr == depth - 1, 0, addr + 1)

        wr_addr, wr_addr_inc = ring(wr, "wr")
        ann_addr, ann_addr_inc = ring(ann, "ann")
        pre = Signal(SEQ_BITS)      # next record to prefetch for the join
        pre_addr, pre_addr_inc = ring(pre, "pre")

        # Both read ports are non-transparent: a record is read by the announcer and by the
        # prefetcher at the earliest one cycle after it was written.
        m.submodules.store = store = PendingStore(depth)
        w_port, (r_ann, r_pre) = store.write, store.read

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

        # The records at head, head + 1, ... leave the store ahead of the join (the prefetch
        # below) into a small FIFO, so the join compares flip-flops, not a block RAM's output.
        m.submodules.window = window = ResetInserter(restart)(
            fifo.SyncFIFOBuffered(width=PENDING_ENTRY.size, depth=PREFETCH_DEPTH))
        record = Signal(PENDING_ENTRY)
        m.d.comb += record.eq(window.r_data)
        # The window's oldest record is the one at head unless head has moved past it (expired
        # before it arrived): ``front`` counts the records that left the window.
        front = Signal(SEQ_BITS)
        at_head = Signal()
        m.d.comb += at_head.eq(window.r_rdy & (front == head))

        # d = answer.seq - head, decided without the subtraction's result feeding a comparison:
        # d >= ann - head (the answer names a record not yet announced) exactly when
        # answer.seq - ann is below 2^31, as ann - head <= depth < 2^31.
        to_head = Signal(SEQ_BITS)
        to_ann = Signal(SEQ_BITS)
        m.d.comb += [to_head.eq(answer.seq - head), to_ann.eq(answer.seq - ann)]
        older, early, missing, here = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            older.eq(to_head[-1]),
            early.eq(~to_head[-1] & ~to_ann[-1]),
            missing.eq(~to_head[-1] & to_ann[-1] & (answer.seq != head)),
            here.eq(~to_head[-1] & to_ann[-1] & (answer.seq == head)),
        ]
        # An answer that takes the record at head waits for it to be prefetched (only an
        # answer faster than the announcement's own way out can find it not yet there).
        go = Signal()
        m.d.comb += go.eq(ans_fifo.r_rdy & sift_fifo.w_rdy & ~restart &
                          (older | early | at_head))
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
        # The lag limit's and the full store's tests are flags computed a cycle ahead, one
        # comparison for each way ``pending`` can change (``pending + 1`` is kept beside it),
        # so that the store's write enable (every RAM of the store) comes from flip-flops
        # through one gate. A new ``max_pending`` therefore decides from the next cycle on.
        limit_hit = Signal()
        full = Signal()
        pending_plus1 = Signal(range(depth + 2), init=1)
        limit = self.max_pending
        limited = limit != 0
        hits = {"grow": limited & (pending_plus1 >= limit), "hold": limited & (pending >= limit),
                "shrink": limited & (pending > limit)}
        fills = {"grow": pending_plus1 >= depth, "hold": pending >= depth,
                 "shrink": pending > depth}
        accept, drop, expire = Signal(), Signal(), Signal()
        m.d.comb += [
            accept.eq(self.det_valid & (restart | limit_hit | ~full)),
            drop.eq(self.det_valid & ~restart & ~limit_hit & full),
            # The join freeing the oldest record this cycle makes the room just as well.
            expire.eq(self.det_valid & ~restart & limit_hit & ~consume),
        ]
        pop = Signal()              # the record at head leaves: joined, discarded or expired
        m.d.comb += pop.eq(consume | expire)
        m.d.comb += [
            w_port.addr.eq(Mux(restart, 0, wr_addr)),
            w_port.data.eq(Cat(self.det_slot, self.det_basis, self.det_bit)),
            w_port.en.eq(accept),
        ]

        # --- announcer: store → output register → framer ------------------------------------
        # Two stages that move together: the store's read (``read_*``), then a register that
        # takes the read data straight from the RAM (its output register, ``out_*``).
        m.submodules.ann_framer = ann_framer = TagFramer()
        read_valid, out_valid = Signal(), Signal()
        read_seq, out_seq = Signal(SEQ_BITS), Signal(SEQ_BITS)
        out_record = Signal(PENDING_ENTRY, reset_less=True)
        advance, skip, take = Signal(), Signal(), Signal()
        m.d.comb += [
            advance.eq(~out_valid | ann_framer.i_ready),
            skip.eq(expire & (ann == head)),            # expiring a record never announced
            take.eq(advance & (ann != wr) & ~skip & ~restart),
            r_ann.addr.eq(ann_addr), r_ann.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [read_valid.eq(take), out_valid.eq(read_valid), out_seq.eq(read_seq),
                         out_record.eq(r_ann.data)]
        with m.If(take):
            m.d.sync += read_seq.eq(ann)
        ann_word = Signal(struct_layout(ANNOUNCE))
        m.d.comb += [ann_word.seq.eq(out_seq), ann_word.slot.eq(out_record.slot),
                     ann_word.basis.eq(out_record.basis)]
        m.d.comb += [
            ann_framer.i_data.eq(ann_word), ann_framer.i_valid.eq(out_valid),
            ann_framer.frame_words.eq(self.frame_words),
            ann_framer.flush_cycles.eq(self.flush_cycles),
            ann_framer.flush.eq(0), ann_framer.upstream_empty.eq(1),
            self.ann_tdata.eq(ann_framer.tdata), self.ann_tvalid.eq(ann_framer.tvalid),
            self.ann_tlast.eq(ann_framer.tlast), ann_framer.tready.eq(self.ann_tready),
        ]

        # --- prefetch: store → read register → window --------------------------------------
        # Records front .. pre - 1 are, in order, in the window or on their way to it
        # (``fetched`` / ``arrived``). Joining or expiring the record at head pops it if it is
        # at the window's front; records that head has passed (expired before they arrived)
        # are dropped from the front as they come, one per cycle.
        m.d.comb += window.r_en.eq(window.r_rdy & ((front != head) | pop))
        fetched, arrived = Signal(), Signal()
        arrived_record = Signal(PENDING_ENTRY.size, reset_less=True)
        outstanding = Signal(range(PREFETCH_DEPTH + 3))
        fetch = Signal()
        m.d.comb += [
            outstanding.eq(window.level + fetched + arrived),
            fetch.eq((pre != wr) & (outstanding < PREFETCH_DEPTH) & ~restart),
            # (read every cycle: the fetch only marks the reads it wants, so that it does not
            # fan out to every RAM's enable)
            r_pre.addr.eq(pre_addr), r_pre.en.eq(1),
            window.w_data.eq(arrived_record), window.w_en.eq(arrived),
        ]
        # The read data goes straight into a register: the block RAM's own output register.
        m.d.sync += [fetched.eq(fetch), arrived.eq(fetched & ~restart),
                     arrived_record.eq(r_pre.data)]

        # --- pointers -----------------------------------------------------------------------
        # Each pointer loads its increment (computed from the register alone) or holds: the
        # decisions, late in the cycle, only select.
        with m.If(restart):
            m.d.sync += [head.eq(0), pre.eq(0), front.eq(0), wr.eq(self.det_valid), ann.eq(0),
                         pending.eq(self.det_valid), pending_plus1.eq(self.det_valid + 1),
                         limit_hit.eq(self.det_valid & (limit == 1)), full.eq(0)]
        with m.Else():
            with m.If(pop):
                m.d.sync += head.eq(head + 1)
            with m.If(fetch):
                m.d.sync += pre.eq(pre + 1)
            with m.If(window.r_en):
                m.d.sync += front.eq(front + 1)
            with m.If(accept):
                m.d.sync += wr.eq(wr + 1)
            with m.If(take | skip):
                m.d.sync += ann.eq(ann + 1)
            with m.If(accept & ~pop):
                m.d.sync += [pending.eq(pending + 1), pending_plus1.eq(pending_plus1 + 1),
                             limit_hit.eq(hits["grow"]), full.eq(fills["grow"])]
            with m.Elif(pop & ~accept):
                m.d.sync += [pending.eq(pending - 1), pending_plus1.eq(pending_plus1 - 1),
                             limit_hit.eq(hits["shrink"]), full.eq(fills["shrink"])]
            with m.Else():
                m.d.sync += [limit_hit.eq(hits["hold"]), full.eq(fills["hold"])]
        if not pow2:
            with m.If(restart):
                m.d.sync += [pre_addr.eq(0), wr_addr.eq(self.det_valid),
                             ann_addr.eq(0)]
            with m.Else():
                with m.If(fetch):
                    m.d.sync += pre_addr.eq(pre_addr_inc)
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
