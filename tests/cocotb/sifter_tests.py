"""cocotb tests of the line-rate sifter alone, run by test_sifter_cocotb.py under Verilator.

One driver coroutine (:class:`SifterBench`) owns every input: each cycle it applies the next
scheduled detection, random TREADY on ``announce``/``sifted``, the next answer (held until
accepted, random gaps between answers) and queued control pulses, then samples every transfer in
the ReadOnly phase. An optional "Alice" callback answers announcements as they arrive, in order,
after a random round-trip latency. Results are compared with :class:`SifterModel` record by record.
"""

from __future__ import annotations

import os
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from tbqkd.hdl.golden_sifter import COUNTERS, Announcement, SiftedKey, SifterModel, XEvent
from tbqkd.hdl.records import ANNOUNCE, ANSWER, SIFTED

DEPTH = int(os.environ.get("TBQKD_SIFTER_DEPTH", "16384"))   # set by test_sifter_cocotb.py
FRAME_WORDS = 16
FLUSH_CYCLES = 40


class SifterBench:
    def __init__(self, dut, seed: int) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.det_queue: deque[tuple[int, int, int] | None] = deque()
        self.ans_queue: deque[tuple[int, dict[str, int]]] = deque()   # (earliest cycle, answer)
        self.ann_ready = 1.0          # probability of TREADY per cycle
        self.sift_ready = 1.0
        self.ans_gap = 0.0            # probability of an idle cycle before presenting an answer
        self.alice = None             # callback: Announcement -> answer dict or None
        self.alice_latency = (1, 2)
        self.applied: list[tuple[int, int, int]] = []   # detections applied out of reset
        self.restart_at: list[int] = []                 # indices into applied
        self.reset_marks: list[tuple[int, ...]] = []    # list lengths when a reset ended
        self.announced: list[tuple[Announcement, int]] = []   # (record, tlast)
        self.sifted: list[tuple[SiftedKey, int]] = []
        self.x_events: list[XEvent] = []
        self.answers_sent: list[dict[str, int]] = []
        self._pulses: set[str] = set()
        self._in_reset = 0
        self._current = None
        self._last_time = 0
        Clock(dut.clk, 4, unit="ns").start()

    async def start(self, max_pending: int = 0) -> None:
        dut = self.dut
        for name in ("det_valid", "det_slot", "det_basis", "det_bit", "ann_tready",
                     "ans_tvalid", "ans_tdata", "sift_tready", "restart", "clear_counters",
                     "clear_error"):
            getattr(dut, name).value = 0
        dut.frame_words.value = FRAME_WORDS
        dut.flush_cycles.value = FLUSH_CYCLES
        dut.max_pending.value = max_pending
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        cocotb.start_soon(self._run())

    # --- scheduling ------------------------------------------------------------------------
    def detect(self, records, idle_probability: float = 0.0) -> None:
        for r in records:
            while idle_probability and self.rng.random() < idle_probability:
                self.det_queue.append(None)
            self.det_queue.append(tuple(int(v) for v in r))

    def random_records(self, n: int, first_slot: int) -> list[tuple[int, int, int]]:
        slots = first_slot + np.cumsum(self.rng.integers(1, 1000, n))
        return [(int(s), int(b), int(v)) for s, b, v in
                zip(slots, self.rng.integers(0, 2, n), self.rng.integers(0, 2, n), strict=True)]

    def answer(self, answers, not_before: int = 0) -> None:
        for a in answers:
            self.ans_queue.append((not_before, a))

    def answer_for(self, ann: Announcement, basis: int | None = None) -> dict[str, int]:
        """Alice's answer to ``ann``: her basis (random, or ``basis``) and a random X value."""
        b = int(self.rng.integers(0, 2)) if basis is None else basis
        return {"seq": ann.seq, "slot": ann.slot, "basis": b,
                "x_bit": int(self.rng.integers(0, 2))}

    def pulse(self, name: str) -> None:
        self._pulses.add(name)

    def reset_mid_traffic(self, cycles: int = 3) -> None:
        self._in_reset = cycles

    async def cycles(self, n: int) -> None:
        await ClockCycles(self.dut.clk, n)

    async def settle(self, quiet: int = 3 * FLUSH_CYCLES) -> None:
        """Wait until every queue is empty and nothing has moved for ``quiet`` cycles."""
        last = None
        still = 0
        while still < quiet:
            await ClockCycles(self.dut.clk, 8)
            state = (len(self.announced), len(self.sifted), len(self.x_events),
                     len(self.answers_sent), len(self.det_queue), len(self.ans_queue))
            busy = self.det_queue or self.ans_queue or self._current is not None
            still = 0 if busy or state != last else still + 8
            last = state

    async def counters(self) -> dict[str, int]:
        await ReadOnly()
        values = {name: int(getattr(self.dut, name).value) for name in COUNTERS}
        await RisingEdge(self.dut.clk)
        return values

    async def read(self, name: str) -> int:
        await ReadOnly()
        value = int(getattr(self.dut, name).value)
        await RisingEdge(self.dut.clk)
        return value

    # --- the driver -----------------------------------------------------------------------
    async def _run(self) -> None:
        dut = self.dut
        rng = self.rng
        clk, rst = dut.clk, dut.rst
        det_valid, det_slot, det_basis, det_bit = (dut.det_valid, dut.det_slot, dut.det_basis,
                                                   dut.det_bit)
        ann_tready, ann_tvalid, ann_tdata, ann_tlast = (dut.ann_tready, dut.ann_tvalid,
                                                        dut.ann_tdata, dut.ann_tlast)
        sift_tready, sift_tvalid, sift_tdata, sift_tlast = (dut.sift_tready, dut.sift_tvalid,
                                                            dut.sift_tdata, dut.sift_tlast)
        ans_tvalid, ans_tready, ans_tdata = dut.ans_tvalid, dut.ans_tready, dut.ans_tdata
        x_valid, x_bob_bit, x_alice_bit = dut.x_valid, dut.x_bob_bit, dut.x_alice_bit
        pulses = {name: getattr(dut, name) for name in ("restart", "clear_counters",
                                                          "clear_error")}
        edge, read_only = RisingEdge(clk), ReadOnly()
        driven: dict[object, int] = {}

        def drive(handle, value: int) -> None:      # writes only what changes (they are slow)
            if driven.get(handle) != value:
                handle.value = value
                driven[handle] = value

        while True:
            await edge
            self.cycle += 1
            if self._in_reset:
                drive(rst, 1)
                self._in_reset -= 1
                if self.det_queue:
                    self.det_queue.popleft()                # lost in the reset
                drive(det_valid, 0)
                self._current = None
                self.ans_queue.clear()
                drive(ans_tvalid, 0)
                if not self._in_reset:
                    self.reset_marks.append((len(self.applied), len(self.announced),
                                             len(self.sifted), len(self.x_events),
                                             len(self.answers_sent)))
                continue
            drive(rst, 0)
            for name, handle in pulses.items():
                drive(handle, int(name in self._pulses))
            if "restart" in self._pulses:
                self.restart_at.append(len(self.applied))
            self._pulses.clear()
            det = self.det_queue.popleft() if self.det_queue else None
            if det is None:
                drive(det_valid, 0)
            else:
                drive(det_valid, 1)
                drive(det_slot, det[0])
                drive(det_basis, det[1])
                drive(det_bit, det[2])
                self.applied.append(det)
            ann_ready = int(self.ann_ready >= 1 or rng.random() < self.ann_ready)
            sift_ready = int(self.sift_ready >= 1 or rng.random() < self.sift_ready)
            drive(ann_tready, ann_ready)
            drive(sift_tready, sift_ready)
            if (self._current is None and self.ans_queue and self.ans_queue[0][0] <= self.cycle
                    and not (self.ans_gap and rng.random() < self.ans_gap)):
                self._current = self.ans_queue.popleft()[1]
                drive(ans_tdata, ANSWER.pack(**self._current))
            drive(ans_tvalid, int(self._current is not None))
            await read_only
            if ann_ready and ann_tvalid.value:
                f = ANNOUNCE.unpack(int(ann_tdata.value))
                ann = Announcement(f["seq"], f["slot"], f["basis"])
                self.announced.append((ann, int(ann_tlast.value)))
                if self.alice is not None:
                    reply = self.alice(ann)
                    if reply is not None:
                        lo, hi = self.alice_latency
                        when = max(self._last_time, self.cycle + int(rng.integers(lo, hi)))
                        self._last_time = when
                        self.ans_queue.append((when, reply))
            if sift_ready and sift_tvalid.value:
                f = SIFTED.unpack(int(sift_tdata.value))
                self.sifted.append((SiftedKey(f["slot"], f["bit"]), int(sift_tlast.value)))
            if x_valid.value:
                self.x_events.append(XEvent(int(x_bob_bit.value), int(x_alice_bit.value)))
            if self._current is not None and ans_tready.value:
                self.answers_sent.append(self._current)
                self._current = None

    # --- checks ---------------------------------------------------------------------------
    def check_framing(self, stream: list[tuple[object, int]]) -> None:
        run = 0
        for _, last in stream:
            run += 1
            assert run <= FRAME_WORDS, f"frame longer than {FRAME_WORDS}"
            if last:
                run = 0
        assert not stream or stream[-1][1] == 1, "the last record before idle has no TLAST"

    async def check_against(self, model: SifterModel, *, announced_from: int = 0,
                            sifted_from: int = 0, x_from: int = 0) -> dict[str, int]:
        got_ann = [a for a, _ in self.announced[announced_from:]]
        assert got_ann == model.announcements, first_difference(got_ann, model.announcements)
        got_sift = [s for s, _ in self.sifted[sifted_from:]]
        assert got_sift == model.sifted, first_difference(got_sift, model.sifted)
        got_x = self.x_events[x_from:]
        assert got_x == model.x_events, first_difference(got_x, model.x_events)
        counters = await self.counters()
        assert counters == model.counters, {k: (counters[k], model.counters[k])
                                            for k in COUNTERS if counters[k] != model.counters[k]}
        assert await self.read("pending") == model.pending
        assert await self.read("protocol_error") == int(model.protocol_error)
        self.check_framing(self.announced[announced_from:])
        self.check_framing(self.sifted[sifted_from:])
        return counters


def first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"record {i}: got {g}, want {w}"
    return f"lengths differ: got {len(got)}, want {len(want)}"


def feed_in_order(model: SifterModel, detections, answers) -> None:
    """The model, when the outcome does not depend on the interleaving (no expiry, no full
    store, every answer sent after its announcement was received)."""
    model.detect_many(detections)
    model.announce()
    for a in answers:
        model.answer(**a)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_random_matched_traffic(dut):
    """One detection per cycle; random back-pressure on announce and sifted, random answer
    gaps and round-trip latency: every record and counter equals the model's."""
    tb = SifterBench(dut, seed=1)
    await tb.start()
    tb.ann_ready, tb.sift_ready, tb.ans_gap = 0.8, 0.6, 0.2
    tb.alice_latency = (20, 400)
    tb.alice = tb.answer_for
    records = tb.random_records(8000, first_slot=1 << 40)
    tb.detect(records)
    await tb.settle()
    model = SifterModel(DEPTH)
    feed_in_order(model, records, tb.answers_sent)
    c = await tb.check_against(model)
    assert c["detections"] == c["announced"] == c["answers"] == 8000
    assert c["sifted_z"] > 1500 and c["sifted_x"] > 1500 and c["mismatch"] > 3000
    assert sum(last for _, last in tb.announced) >= 8000 // FRAME_WORDS


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_answer_errors(dut):
    """Missing, extra, duplicated, out-of-order, wrong-slot and early answers: discarded,
    counted and flagged; the good answers around them still sift; clear_error, clear_counters."""
    tb = SifterBench(dut, seed=2)
    await tb.start()
    records = tb.random_records(600, first_slot=1000)
    tb.detect(records, idle_probability=0.3)
    await tb.settle()
    anns = [a for a, _ in tb.announced]
    assert len(anns) == 600
    answers = []
    kinds = {"missing": 0, "extra": 0, "dup": 0, "swap": 0, "slot": 0, "early": 0}
    i = 0
    while i < len(anns):
        kind = tb.rng.choice(["ok"] * 6 + list(kinds))
        if kind == "missing":
            i += 1 + int(tb.rng.integers(0, 3))          # skip 1..3 records
            kinds["missing"] += 1
            continue
        a = tb.answer_for(anns[i])
        if kind == "extra" and i > 5:
            answers.append(tb.answer_for(anns[i - 5]))   # an old seq again
        elif kind == "dup":
            answers += [a, dict(a)]
            i += 1
            kinds["dup"] += 1
            continue
        elif kind == "swap" and i + 1 < len(anns):
            answers += [tb.answer_for(anns[i + 1]), a]   # later one first: i missing, i extra
            i += 2
            kinds["swap"] += 1
            continue
        elif kind == "slot":
            a["slot"] ^= 1
        elif kind == "early":
            answers.append({**a, "seq": anns[-1].seq + 1 + int(tb.rng.integers(0, 1000))})
        kinds[str(kind)] = kinds.get(str(kind), 0) + 1
        answers.append(a)
        i += 1
    tb.ans_gap, tb.sift_ready = 0.3, 0.5
    tb.answer(answers)
    await tb.settle()
    assert len(tb.answers_sent) == len(answers)
    model = SifterModel(DEPTH)
    feed_in_order(model, records, answers)
    c = await tb.check_against(model)
    for name in ("err_extra", "err_missing", "err_slot", "err_early", "sifted_z", "sifted_x",
                 "mismatch"):
        assert c[name] > 5, f"{name} = {c[name]}: the scenario did not exercise it"
    assert await tb.read("protocol_error") == 1
    tb.pulse("clear_error")
    await tb.cycles(3)
    assert await tb.read("protocol_error") == 0
    tb.pulse("clear_counters")
    await tb.cycles(3)
    assert all(v == 0 for v in (await tb.counters()).values())
    # An answer when nothing at all is pending: for a past seq it is extra, for a future one
    # it is early (and the flag comes back).
    tb.answer([tb.answer_for(anns[0]), {**tb.answer_for(anns[-1]), "seq": anns[-1].seq + 1}])
    await tb.settle(20)
    c = await tb.counters()
    assert (c["err_extra"], c["err_early"], c["answers"]) == (1, 1, 2)
    assert await tb.read("protocol_error") == 1


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_lag_limit_expiry(dut):
    """A silent Alice: records beyond max_pending expire (oldest first), detection goes on; a
    later answer to an expired record is extra. Also when the expired records were never
    announced (announce back-pressured)."""
    limit = 100
    tb = SifterBench(dut, seed=3)
    await tb.start(max_pending=limit)
    model = SifterModel(DEPTH, max_pending=limit)
    first = tb.random_records(300, first_slot=5)
    tb.detect(first)
    await tb.settle()
    assert await tb.read("pending") == limit
    assert (await tb.counters())["expired"] == 200
    answers = [tb.answer_for(a) for a, _ in tb.announced]     # Alice wakes up: all 300
    tb.answer(answers)
    await tb.settle()
    for r in first:                    # announce flows: each record is announced before expiring
        model.detect(*r)
        model.announce()
    for a in answers:
        model.answer(**a)
    c = await tb.check_against(model)
    assert c["err_extra"] == 200 and c["sifted_z"] + c["sifted_x"] + c["mismatch"] == limit
    # Announce stalled: the expired records are skipped by the announcer too.
    n_before = len(tb.announced)
    tb.ann_ready = 0.0
    second = tb.random_records(300, first_slot=first[-1][0] + 1)
    tb.detect(second)
    await tb.cycles(400)
    tb.ann_ready = 1.0
    await tb.settle()
    got = [a for a, _ in tb.announced[n_before:]]
    taken_early = sum(a.seq < 300 + 200 for a in got)     # already in the output stages
    assert 1 <= taken_early <= 4, taken_early
    model.detect_many(second[:taken_early])
    model.announce()
    model.detect_many(second[taken_early:])
    model.announce()
    await tb.check_against(model)
    assert await tb.read("pending") == limit


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_lag_limit_below_prefetch(dut):
    """Lag limits shorter than the join's prefetch: detections expire records still on their
    way from the store to the join's window (the prefetch restarts after them) as well as
    records already in it, at every phase of the prefetch (random gaps); the records left are
    joined with their own answers, every count as the model's."""
    tb = SifterBench(dut, seed=5)
    await tb.start()
    n = 200
    for limit in (1, 2, 3, 4, 5, 8):
        tb.pulse("restart")
        tb.pulse("clear_counters")
        tb.pulse("clear_error")
        await tb.cycles(2)
        dut.max_pending.value = limit
        marks = len(tb.announced), len(tb.sifted), len(tb.x_events)
        records = tb.random_records(n, first_slot=limit << 30)
        for r in records:       # one idle cycle at least: each is announced before it expires
            tb.det_queue.append(r)
            tb.det_queue.extend([None] * int(tb.rng.integers(1, 5)))
        await tb.settle()
        model = SifterModel(DEPTH, max_pending=limit)
        for r in records:
            model.detect(*r)
            model.announce()
        answers = [tb.answer_for(a) for a, _ in tb.announced[marks[0]:]]
        tb.answer(answers)
        await tb.settle()
        for a in answers:
            model.answer(**a)
        c = await tb.check_against(model, announced_from=marks[0], sifted_from=marks[1],
                                   x_from=marks[2])
        assert c["expired"] == c["err_extra"] == n - limit, (limit, c)
        assert c["sifted_z"] + c["sifted_x"] + c["mismatch"] == limit, (limit, c)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_answer_waits_behind_expired_records(dut):
    """Lag limit 1, detections in back-to-back pairs: the second expires the first before the
    first reaches the join's window, and Alice's answer to the second is already waiting (sent
    as soon as the record is taken for announcement). The join must not take the expired
    record that reaches the window first: it drops it and joins the answer with its own."""
    tb = SifterBench(dut, seed=6)
    await tb.start(max_pending=1)
    model = SifterModel(DEPTH, max_pending=1)
    for i in range(40):
        first, second = tb.random_records(2, first_slot=(i + 1) << 20)
        answer = {"seq": 2 * i + 1, "slot": second[0], "basis": int(tb.rng.integers(0, 2)),
                  "x_bit": int(tb.rng.integers(0, 2))}
        tb.detect([first, second])
        tb.answer([answer], not_before=tb.cycle + 3)
        await tb.cycles(40)
        model.detect(*first)
        model.detect(*second)
        model.announce()
        model.answer(**answer)
    await tb.settle()
    c = await tb.check_against(model)
    assert c["expired"] == 40 and c["sifted_z"] + c["sifted_x"] + c["mismatch"] == 40
    assert c["err_slot"] == c["err_extra"] == c["err_early"] == 0


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def test_full_store_drop_count(dut):
    """Without a lag limit the store fills: detections beyond pending_depth are dropped and
    counted and get no sequence number, so the late answers still all match."""
    tb = SifterBench(dut, seed=4)
    await tb.start(max_pending=0)
    extra = 300
    records = tb.random_records(DEPTH + extra, first_slot=77)
    tb.detect(records)
    await tb.settle()
    assert await tb.read("pending") == DEPTH
    c = await tb.counters()
    assert c["dropped_full"] == extra and c["announced"] == DEPTH
    tb.ans_gap = 0.1
    tb.answer([tb.answer_for(a) for a, _ in tb.announced])
    more = tb.random_records(50, first_slot=records[-1][0] + 1)
    await tb.settle()
    tb.detect(more)
    await tb.settle()
    model = SifterModel(DEPTH)
    model.detect_many(records)
    model.announce()
    for a in tb.answers_sent:
        model.answer(**a)
    model.detect_many(more)
    model.announce()
    c = await tb.check_against(model)
    assert c["sifted_z"] + c["sifted_x"] + c["mismatch"] == DEPTH
    assert tb.announced[-1][0].seq == DEPTH + 49       # no seq was spent on dropped records


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def test_many_pending_late_answers(dut):
    """≥ 10^4 records pending at once (the store nearly full), then the late answers arrive
    while detection continues at one per cycle."""
    tb = SifterBench(dut, seed=5)
    await tb.start()
    n = DEPTH - 384
    records = tb.random_records(n, first_slot=1 << 47)
    tb.detect(records)
    await tb.settle()
    assert await tb.read("pending") == n
    tb.ann_ready, tb.sift_ready = 0.9, 0.9
    tb.alice_latency = (1, 50)
    tb.answer([tb.answer_for(a) for a, _ in tb.announced])
    tb.alice = lambda a: tb.answer_for(a) if a.seq >= n else None
    more = tb.random_records(2000, first_slot=records[-1][0] + 1)
    tb.detect(more)
    await tb.settle()
    model = SifterModel(DEPTH)
    feed_in_order(model, records, tb.answers_sent[:n])
    feed_in_order(model, more, tb.answers_sent[n:])
    c = await tb.check_against(model)
    assert c["answers"] == n + 2000 and c["dropped_full"] == 0 and model.pending == 0


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_restart_mid_traffic(dut):
    """restart while detections keep arriving: the store empties, sequence numbers start at 0
    with the detection of the restart cycle, the new session sifts normally."""
    tb = SifterBench(dut, seed=6)
    await tb.start()
    tb.ann_ready, tb.sift_ready, tb.ans_gap = 0.9, 0.8, 0.1
    tb.alice_latency = (10, 100)
    tb.alice = tb.answer_for
    tb.detect(tb.random_records(6000, first_slot=10))
    await tb.cycles(1500)
    tb.alice = None                                       # Alice stops answering
    while tb.ans_queue or tb._current is not None:
        await tb.cycles(1)
    await tb.cycles(20)                                   # the join has taken every answer
    n_answers_1 = len(tb.answers_sent)
    tb.pulse("restart")
    await tb.cycles(2)
    k = tb.restart_at[0]
    first_new = tb.applied[k][0]                          # slots increase: they tell sessions
    tb.alice = lambda a: tb.answer_for(a) if a.slot >= first_new else None
    await tb.settle()
    session2 = [a for a, _ in tb.announced if a.slot >= first_new]
    assert session2[0].seq == 0 and len(session2) == len(tb.applied) - k
    taken1 = len(tb.announced) - len(session2)
    model = SifterModel(DEPTH)
    model.detect_many(tb.applied[:k])
    model.announce(taken1)
    for a in tb.answers_sent[:n_answers_1]:
        model.answer(**a)
    model.restart()
    model.detect_many(tb.applied[k:])
    model.announce()
    for a in tb.answers_sent[n_answers_1:]:
        model.answer(**a)
    c = await tb.check_against(model)
    assert taken1 < k, "the restart came after everything was announced"
    assert c["err_extra"] == c["err_early"] == c["err_missing"] == 0 and model.pending == 0


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_reset_mid_traffic(dut):
    """Reset with detections, announcements and answers in flight; afterwards the sifter
    behaves as new (counters zero, seq from 0) and matches a fresh model."""
    tb = SifterBench(dut, seed=7)
    await tb.start()
    tb.ann_ready, tb.sift_ready, tb.ans_gap = 0.8, 0.7, 0.2
    tb.alice_latency = (10, 100)
    tb.alice = tb.answer_for
    tb.detect(tb.random_records(4000, first_slot=10))
    await tb.cycles(1000)
    tb.alice = None
    tb.reset_mid_traffic(3)
    await tb.cycles(5)
    mark = tb.reset_marks[0]
    first_new = tb.applied[mark[0]][0]
    tb.alice = lambda a: tb.answer_for(a) if a.slot >= first_new else None
    await tb.settle()
    assert tb.announced[mark[1]][0].seq == 0 and tb.announced[mark[1]][0].slot == first_new
    model = SifterModel(DEPTH)
    feed_in_order(model, tb.applied[mark[0]:], tb.answers_sent[mark[4]:])
    c = await tb.check_against(model, announced_from=mark[1], sifted_from=mark[2],
                               x_from=mark[3])
    assert c["detections"] == len(tb.applied) - mark[0] > 2500 and c["err_extra"] == 0
