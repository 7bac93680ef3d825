"""cocotb tests of the transmitter core (Alice), run by test_transmitter_cocotb.py.

The core alone (``tx_core``, a 64-slot ring): one driver coroutine (:class:`TxBench`) owns every
input. Each cycle it applies the configuration and command pulses, offers random beats (held
until taken), presents the next announcement (held until taken), drives random TREADY on the
outputs, then samples everything in the ReadOnly phase and steps
:class:`TransmitterModel` with the same inputs: ``rnd_tready``, the pins, the reference pin and
the slot counter must equal the model's in every cycle; answers, sifted records and counters
are compared record by record at the end.

The whole top (``tbqkd_tx``, 1024-slot ring) is checked through its AXI4-Lite registers and
AXI4-Stream ports with cocotbext-axi.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)
from tbqkd.hdl.golden_sifter import Announcement, SiftedKey
from tbqkd.hdl.golden_transmitter import (
    ANSWER_LATENCY,
    Answer,
    StatesRecord,
    TransmitterModel,
    TxConfig,
    pins_of,
    random_states,
)
from tbqkd.hdl.records import ANNOUNCE, ANSWER, SIFTED
from tbqkd.hdl.tx_records import STATE_BASIS, STATE_BIT, STATE_PINS, STATES, state_code
from tbqkd.hdl.tx_registers import TX_COUNTERS, transmitter_regmap

DEPTH = int(os.environ.get("TBQKD_TX_DEPTH", "64"))      # set by test_transmitter_cocotb.py
FRAME_WORDS = 8
FLUSH_CYCLES = 16
#: Announcements taken while m_axis_answer is blocked (all answered): the 4-deep answer FIFO,
#: the framer's two (the record held back and the output register), stage 2 and stage 1.
BLOCKED_CAPACITY = 8
CONFIG_PORTS = ("run", "four_state", "pattern_mode", "slot_divider", "basis_bits",
                "x_threshold", "pattern", "pattern_length", "ref_divider", "mod_delay",
                "mod_width", "state_stream")
PULSES = ("restart", "clear_counters", "clear_error")
WATCHED = ("announcements", "answers", "sifted_z", "err_vacuum", "err_out_of_ring",
           "protocol_error", "ann_tready")


class TxBench:
    def __init__(self, dut, seed: int) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.model = TransmitterModel(DEPTH)
        self.cfg = TxConfig(mod_width=0xFFFF)
        self.cycle = 0
        self.rnd_probability = 0.0     # probability of offering a new beat in a free cycle
        self.ans_ready = 1.0
        self.sift_ready = 1.0
        self.states_ready = 1.0
        self.ann_queue: deque[tuple[int, int | None, int]] = deque()   # (slot, offset, basis)
        self.next_seq = 0
        self.bob = None                # callback(bench) -> None: queues announcements
        self.accepted: list[tuple[int, Announcement]] = []   # (cycle, record)
        self.answers: list[tuple[Answer, int]] = []
        self.sifted: list[tuple[SiftedKey, int]] = []
        self.state_records: list[tuple[StatesRecord, int]] = []
        self.mismatches: list[str] = []
        self.outputs_log: list[tuple[int, ...]] = []
        self.watch = False             # log WATCHED (counters, flag) every cycle
        self.watch_log: dict[int, tuple[int, ...]] = {}     # cycle -> WATCHED values
        self._pulses: set[str] = set()
        self._beat: int | None = None
        self._ann: Announcement | None = None
        Clock(dut.clk, 4, unit="ns").start()

    async def start(self) -> None:
        dut = self.dut
        for name in (*PULSES, "rnd_tvalid", "rnd_tdata", "ann_tvalid", "ann_tdata",
                     "ans_tready", "sift_tready", "states_tready"):
            getattr(dut, name).value = 0
        for name in CONFIG_PORTS:
            getattr(dut, name).value = getattr(self.cfg, name)
        dut.frame_words.value = FRAME_WORDS
        dut.flush_cycles.value = FLUSH_CYCLES
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        cocotb.start_soon(self._run())

    # --- scheduling ------------------------------------------------------------------------
    def configure(self, **changes: int) -> None:
        self.cfg = self.cfg.with_(**changes)

    def pulse(self, name: str) -> None:
        self._pulses.add(name)

    def announce(self, slot: int | None = None, *, offset: int | None = None,
                 basis: int | None = None) -> None:
        """Queue an announcement for ``slot``, or for ``offset`` slots after the slot counter
        at the cycle it is first presented."""
        b = int(self.rng.integers(0, 2)) if basis is None else basis
        self.ann_queue.append((slot, offset, b))

    async def cycles(self, n: int) -> None:
        await ClockCycles(self.dut.clk, n)

    async def settle(self) -> None:
        while self.ann_queue or self._ann is not None:
            await ClockCycles(self.dut.clk, 8)
        await ClockCycles(self.dut.clk, 4 * FLUSH_CYCLES)

    # --- the driver -----------------------------------------------------------------------
    async def _run(self) -> None:
        dut, rng = self.dut, self.rng
        edge, read_only = RisingEdge(dut.clk), ReadOnly()
        driven: dict[object, int] = {}
        ports = {name: getattr(dut, name) for name in CONFIG_PORTS}
        pulses = {name: getattr(dut, name) for name in PULSES}
        outs = [dut.rnd_tready, dut.mod_early, dut.mod_late, dut.mod_phase, dut.reference,
                dut.slot]
        ann_tready = dut.ann_tready
        watched = [getattr(dut, name) for name in WATCHED]
        ans = (dut.ans_tvalid, dut.ans_tdata, dut.ans_tlast)
        sift = (dut.sift_tvalid, dut.sift_tdata, dut.sift_tlast)
        states = (dut.states_tvalid, dut.states_tdata, dut.states_tlast)

        def drive(handle, value: int) -> None:      # writes only what changes (they are slow)
            if driven.get(handle) != value:
                handle.value = value
                driven[handle] = value

        while True:
            await edge
            self.cycle += 1
            cfg = self.cfg
            for name, handle in ports.items():
                drive(handle, getattr(cfg, name))
            active = {name: int(name in self._pulses) for name in PULSES}
            self._pulses.clear()
            for name, handle in pulses.items():
                drive(handle, active[name])
            if self.bob is not None:
                self.bob(self)
            if self._beat is None and self.rnd_probability and \
                    rng.random() < self.rnd_probability:
                self._beat = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
            drive(dut.rnd_tvalid, int(self._beat is not None))
            if self._beat is not None:
                drive(dut.rnd_tdata, self._beat)
            if self._ann is None and self.ann_queue:
                slot, offset, basis = self.ann_queue.popleft()
                if slot is None:
                    slot = max(self.model.slot + offset, 0)
                self._ann = Announcement(self.next_seq, slot, basis)
                self.next_seq += 1
                drive(dut.ann_tdata, ANNOUNCE.pack(seq=self._ann.seq, slot=self._ann.slot,
                                                   basis=self._ann.basis))
            drive(dut.ann_tvalid, int(self._ann is not None))
            ans_ready = int(self.ans_ready >= 1 or rng.random() < self.ans_ready)
            sift_ready = int(self.sift_ready >= 1 or rng.random() < self.sift_ready)
            drive(dut.ans_tready, ans_ready)
            drive(dut.sift_tready, sift_ready)
            states_ready = int(self.states_ready >= 1 or rng.random() < self.states_ready)
            drive(dut.states_tready, states_ready)
            await read_only
            got = tuple(int(h.value) for h in outs)
            if self.watch:
                self.watch_log[self.cycle] = tuple(int(h.value) for h in watched)
            accepted = None
            if self._ann is not None and ann_tready.value:
                accepted, self._ann = self._ann, None
                self.accepted.append((self.cycle, accepted))
            beat = self._beat
            if beat is not None and got[0]:
                self._beat = None
            want = self.model.step(cfg, **active, rnd_valid=int(beat is not None),
                                   rnd_data=beat or 0, announce=accepted)
            want_t = (want.rnd_ready, want.mod_early, want.mod_late, want.mod_phase,
                      want.reference, want.slot)
            self.outputs_log.append(got)
            if got != want_t and len(self.mismatches) < 10:
                self.mismatches.append(f"cycle {self.cycle}: got {got}, want {want_t} "
                                       "(rnd_ready, early, late, phase, reference, slot)")
            if ans_ready and ans[0].value:
                f = ANSWER.unpack(int(ans[1].value))
                self.answers.append((Answer(f["seq"], f["slot"], f["basis"], f["x_bit"]),
                                     int(ans[2].value)))
            if sift_ready and sift[0].value:
                f = SIFTED.unpack(int(sift[1].value))
                self.sifted.append((SiftedKey(f["slot"], f["bit"]), int(sift[2].value)))
            if states_ready and states[0].value:
                self.state_records.append((decode_states(int(states[1].value)),
                                           int(states[2].value)))

    # --- checks ---------------------------------------------------------------------------
    async def counters(self) -> dict[str, int]:
        await ReadOnly()
        values = {name: int(getattr(self.dut, name).value) for name in TX_COUNTERS}
        await RisingEdge(self.dut.clk)
        return values

    async def check(self) -> dict[str, int]:
        """Everything so far equals the model; return the counters. (Pauses the slot clock
        for a few cycles so that no counter moves while they are read.)"""
        running = self.cfg
        self.configure(run=0)
        await self.cycles(4 * FLUSH_CYCLES)     # the framers let their newest record go
        assert not self.mismatches, "\n".join(self.mismatches)
        got = [a for a, _ in self.answers]
        assert got == self.model.answers, first_difference(got, self.model.answers)
        got_sift = [s for s, _ in self.sifted]
        assert got_sift == self.model.sifted, first_difference(got_sift, self.model.sifted)
        counters = await self.counters()
        differ = {k: (counters[k], self.model.counters[k]) for k in TX_COUNTERS
                  if counters[k] != self.model.counters[k] and k != "states_dropped"}
        assert not differ, differ
        got_states = [r for r, _ in self.state_records]
        want_states = self.model.state_records
        if counters["states_dropped"] == 0:
            assert got_states == want_states, first_difference(got_states, want_states)
        else:           # the model does not know which were dropped: an ordered subsequence
            remaining = iter(want_states)
            assert all(any(r == w for w in remaining) for r in got_states)
            assert len(got_states) + counters["states_dropped"] == len(want_states)
        await ReadOnly()
        assert int(self.dut.protocol_error.value) == int(self.model.protocol_error)
        await RisingEdge(self.dut.clk)
        for stream in (self.answers, self.sifted, self.state_records):
            check_framing(stream)
        self.cfg = running
        return counters


def decode_states(word: int) -> StatesRecord:
    f = STATES.unpack(word)
    return StatesRecord(f["first_slot"], tuple((f["codes"] >> (4 * i)) & 15 for i in range(16)))


def check_framing(stream: list[tuple[object, int]]) -> None:
    run = 0
    for _, last in stream:
        run += 1
        assert run <= FRAME_WORDS, f"frame longer than {FRAME_WORDS}"
        if last:
            run = 0
    assert not stream or stream[-1][1] == 1, "the last record before idle has no TLAST"


def first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"record {i}: got {g}, want {w}"
    return f"lengths differ: got {len(got)}, want {len(want)}"


def random_bob(probability: float, out_of_ring: float = 0.05):
    """Bob announcing, in a fraction of cycles, a recent slot (sometimes one out of the ring)."""
    def bob(tb: TxBench) -> None:
        if tb.rng.random() >= probability:
            return
        if tb.rng.random() < out_of_ring:
            offset = int(tb.rng.choice([-DEPTH - 1, -DEPTH - 5, 0, 1, 3]))
        else:
            offset = -int(tb.rng.integers(1, DEPTH + 1))
        tb.announce(offset=offset)
    return bob


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_random_three_state(dut):
    """Three-state random mode, k = 3, pulse window of one clock, reference every 7 slots,
    announcements in 30 % of cycles, output back-pressure: equal to the model in every cycle
    and record."""
    tb = TxBench(dut, seed=1)
    await tb.start()
    tb.rnd_probability = 0.5
    await tb.cycles(10)
    tb.configure(run=1, slot_divider=3, mod_delay=1, mod_width=1, ref_divider=7,
                 state_stream=1)
    tb.ans_ready, tb.sift_ready = 0.7, 0.6
    tb.bob = random_bob(0.3)
    await tb.cycles(4000)
    tb.bob = None
    await tb.settle()
    c = await tb.check()
    sent = [s for s in tb.model.sent if s is not None]
    assert c["states_minus"] == 0 and c["states_plus"] > 100 and c["sifted_z"] > 50
    assert 0.7 < sum(1 for s in sent if s < 2) / len(sent) < 0.9       # P(Z) = 0.8
    assert c["err_out_of_ring"] > 5 and c["answers"] > 500
    assert sum(o[4] for o in tb.outputs_log) > 50                       # reference pulses
    records = [r for r, _ in tb.state_records]                          # hand check
    assert len(records) == len(tb.model.sent) // 16 > 50
    for j, r in enumerate(records):
        assert r.first_slot == 16 * j
        assert list(r.codes) == [state_code(s) for s in tb.model.sent[16 * j:16 * j + 16]]


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_random_underrun(dut):
    """Random bits arriving slower than k = 1 slots use them: vacuum slots (pins low), counted,
    never a reused bit; announcements of vacuum slots get no answer."""
    tb = TxBench(dut, seed=2)
    await tb.start()
    tb.configure(run=1, basis_bits=4, x_threshold=5)
    tb.rnd_probability = 0.03
    tb.bob = random_bob(0.4)
    await tb.cycles(3000)
    tb.bob = None
    await tb.settle()
    c = await tb.check()
    assert c["random_underruns"] > 1000 and c["err_vacuum"] > 50 and c["answers"] > 50
    consumed = 5 * (c["states_e"] + c["states_l"] + c["states_plus"])
    assert consumed <= 64 * c["random_words"]                           # no bit used twice
    sent = [s for s in tb.model.sent if s is not None]
    want = random_states(tb.model.words, tb.cfg, len(tb.model.sent))
    assert len(want) >= len(sent) and sent == want[:len(sent)]


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_pattern_mode(dut):
    """Pattern mode with |-> in the pattern, k = 4, a pulse window of 2 clocks, reference every
    5 slots, pause/resume and a restart mid-run: pins equal the pattern slot by slot."""
    tb = TxBench(dut, seed=3)
    await tb.start()
    pattern = [0, 1, 2, 3, 3, 0, 2]
    tb.configure(pattern_mode=1, pattern=sum(s << (2 * i) for i, s in enumerate(pattern)),
                 pattern_length=len(pattern), slot_divider=4, mod_delay=1, mod_width=2,
                 ref_divider=5, run=1, state_stream=1)
    tb.bob = random_bob(0.2)
    await tb.cycles(250)
    tb.configure(state_stream=0)
    await tb.cycles(41)
    tb.configure(state_stream=1)
    await tb.cycles(309)
    tb.configure(run=0)
    await tb.cycles(37)
    tb.configure(run=1)
    await tb.cycles(300)
    tb.pulse("restart")
    await tb.cycles(400)
    tb.configure(pattern_length=0)              # acts as 1: always the first state
    await tb.cycles(100)
    tb.configure(pattern_length=20, slot_divider=1)   # acts as 16; one clock a slot
    await tb.cycles(200)
    tb.bob = None
    await tb.settle()
    c = await tb.check()
    assert c["states_minus"] > 50 and c["random_underruns"] == 0 and c["random_words"] == 0
    # hand check of the first run: slot i has pattern[i % 7]; pins high 1..2 clocks after start
    first = tb.model.sent[:100]
    assert first == [pattern[i % 7] for i in range(100)]
    log = tb.outputs_log
    start = next(i for i, o in enumerate(log) if o[5] == 1)   # the cycle after slot 0 started
    for slot in range(40):
        base = start + 4 * slot
        want = STATE_PINS[pattern[slot % 7]]
        assert [log[base + j][1:4] for j in range(4)] == [(0, 0, 0), want, want, (0, 0, 0)]
        assert log[base][4] == int(slot % 5 == 0)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_four_state(dut):
    """Four-state random mode, P(X) = 1/2 with one basis bit, k = 2: |-> slots answer x_bit 1;
    sifted Z bits are Alice's."""
    tb = TxBench(dut, seed=4)
    await tb.start()
    tb.rnd_probability = 0.3
    tb.configure(run=1, four_state=1, basis_bits=1, x_threshold=1, slot_divider=2)
    tb.bob = random_bob(0.5, out_of_ring=0.0)
    tb.ans_ready, tb.sift_ready = 0.5, 0.5
    await tb.cycles(3000)
    tb.bob = None
    await tb.settle()
    c = await tb.check()
    assert min(c["states_e"], c["states_l"], c["states_plus"], c["states_minus"]) > 200
    by_slot = {a.slot: a for a, _ in tb.answers}
    minus = [a for a in by_slot.values() if a.x_bit]
    assert minus and all(a.basis == 1 for a in minus)
    for key, _ in tb.sifted:
        assert STATE_BIT[tb.model.session_state(key.slot)] == key.bit
        assert STATE_BASIS[tb.model.session_state(key.slot)] == 0


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_out_of_ring(dut):
    """Announcements exactly at the ring's edges (k = 1, slot counter S when taken): slots
    S − depth … S − 1 are answered; S − depth − 1, S, S + 1 and slots before a restart are
    not: counted, flagged, no answer; clear_error and clear_counters."""
    tb = TxBench(dut, seed=5)
    await tb.start()
    tb.configure(pattern_mode=1, run=1)
    await tb.cycles(3 * DEPTH)
    offsets = [-DEPTH, -1, -DEPTH - 1, 0, 1, -DEPTH + 1, -2, 7, -10 * DEPTH]
    for offset in offsets:
        tb.announce(offset=offset, basis=0)
        await tb.cycles(3)
    await tb.settle()
    c = await tb.check()
    answered = {a.seq for a, _ in tb.answers}
    want = {i for i, o in enumerate(offsets) if -DEPTH <= o < 0}
    assert answered == want
    assert c["err_out_of_ring"] == len(offsets) - len(want)
    await ReadOnly()
    assert int(dut.protocol_error.value) == 1
    await RisingEdge(dut.clk)
    tb.pulse("clear_error")
    await tb.cycles(2)
    tb.configure(run=0)
    await tb.cycles(2)
    tb.pulse("restart")
    await tb.cycles(2)
    # after a restart nothing is in the ring, not even what the old session sent
    tb.announce(0, basis=0)
    tb.announce(5, basis=1)
    await tb.settle()
    c = await tb.check()
    assert c["err_out_of_ring"] == len(offsets) - len(want) + 2
    tb.configure(run=1)
    tb.pulse("clear_counters")
    await tb.cycles(10)
    tb.announce(offset=-3, basis=0)
    await tb.settle()
    c = await tb.check()
    assert c["answers"] == 1 and c["err_out_of_ring"] == 0


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_back_to_back(dut):
    """Bursts of announcements one per clock: taken at line rate while the outputs are ready,
    held (never lost) under back-pressure."""
    tb = TxBench(dut, seed=6)
    await tb.start()
    tb.rnd_probability = 1.0
    tb.configure(run=1, slot_divider=1, basis_bits=8, x_threshold=128)
    await tb.cycles(2 * DEPTH)
    for _ in range(200):
        tb.announce(offset=-int(tb.rng.integers(DEPTH // 2, DEPTH)))
    await tb.settle()
    cycles = [c for c, _ in tb.accepted]
    assert cycles[-1] - cycles[0] == 199, "not one announcement per clock"
    assert tb.model.counters["err_out_of_ring"] == 0
    tb.configure(state_stream=1)
    tb.ans_ready, tb.sift_ready, tb.states_ready = 0.3, 0.4, 0.0
    for _ in range(300):
        tb.announce(offset=-int(tb.rng.integers(DEPTH // 2, DEPTH)))
    await tb.settle()
    tb.ans_ready = tb.sift_ready = tb.states_ready = 1.0
    await tb.settle()
    c = await tb.check()
    assert c["states_dropped"] > 5 and len(tb.state_records) >= 16
    # an announcement held back by a stalled output ages one slot a clock: some leave the ring
    assert c["announcements"] == 500 == c["answers"] + c["err_vacuum"] + c["err_out_of_ring"]
    assert c["answers"] > 400


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_latency(dut):
    """The announcement pipeline's timing (k = 1, outputs ready): an announcement taken in
    cycle a counts in ``announcements`` at a + 1; its answer, sifted record or error counts
    (the enables that write the FIFOs) and ``protocol_error`` at a + ANSWER_LATENCY, one at a
    time and back to back, with the input ready in every cycle. A blocked output stops the
    input once the queue and both stages are full; nothing is lost."""
    tb = TxBench(dut, seed=8)
    await tb.start()
    tb.configure(pattern_mode=1, run=1)         # e, l, +, + repeated
    await tb.cycles(2 * DEPTH)
    tb.watch = True
    offsets = [-1, -2, -3, -4, -DEPTH, 0, -DEPTH - 1, -5, -6, 3]
    for offset in offsets:                      # one at a time
        tb.announce(offset=offset, basis=0)
        await tb.cycles(6)
    for _ in range(16):                         # back to back
        tb.announce(offset=-int(tb.rng.integers(1, DEPTH + 4)), basis=0)
    await tb.settle()
    tb.watch = False
    log, taken = tb.watch_log, list(tb.accepted)
    assert len(taken) == len(offsets) + 16
    assert taken[-1][0] - taken[-16][0] == 15, "not one announcement per clock"
    answered = {a.seq for a in tb.model.answers}
    kinds = {"answers": [], "sifted_z": [], "err_out_of_ring": []}      # cycles taken
    for cycle, ann in taken:
        if ann.seq not in answered:
            kinds["err_out_of_ring"].append(cycle)
            continue
        kinds["answers"].append(cycle)
        if ann.basis == 0 and STATE_BASIS[tb.model.session_state(ann.slot)] == 0:
            kinds["sifted_z"].append(cycle)
    assert all(len(v) >= 3 for v in kinds.values()), kinds
    assert min(log) <= taken[0][0] and max(log) > taken[-1][0] + ANSWER_LATENCY
    for cycle in sorted(log):
        got = dict(zip(WATCHED, log[cycle], strict=True))
        want = {name: sum(a + ANSWER_LATENCY <= cycle for a in cycles)
                for name, cycles in kinds.items()}
        want.update(announcements=sum(a + 1 <= cycle for a, _ in taken), err_vacuum=0,
                    protocol_error=int(want["err_out_of_ring"] > 0), ann_tready=1)
        assert got == want, f"cycle {cycle}: got {got}, want {want}"
    # back-pressure: the slot clock paused (no announcement ages out of the ring, so every one
    # needs the answer queue), the answer output blocked
    tb.configure(run=0)
    tb.ans_ready = 0.0
    await tb.cycles(4 * FLUSH_CYCLES)
    before = len(tb.accepted)
    for _ in range(30):
        tb.announce(offset=-int(tb.rng.integers(1, DEPTH + 1)), basis=1)
    await tb.cycles(100)
    held = len(tb.accepted) - before
    await tb.cycles(100)
    assert len(tb.accepted) - before == held == BLOCKED_CAPACITY, held
    assert int(dut.ann_tready.value) == 0
    tb.ans_ready = 1.0
    await tb.settle()
    c = await tb.check()
    assert c["answers"] == len(kinds["answers"]) + 30
    assert c["announcements"] == len(taken) + 30


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_commands_in_flight(dut):
    """clear_counters and clear_error at random cycles while announcements (a fifth out of the
    ring) are in the pipeline under back-pressure: a command applies to every announcement
    taken up to its cycle, so counters and protocol_error equal the model's, and
    ``announcements`` = ``answers + err_vacuum + err_out_of_ring`` whenever the path is empty."""
    tb = TxBench(dut, seed=9)
    await tb.start()
    tb.rnd_probability = 0.6
    tb.configure(run=1, slot_divider=2)
    await tb.cycles(2 * DEPTH)
    tb.ans_ready, tb.sift_ready = 0.6, 0.6
    bob = random_bob(0.6, out_of_ring=0.2)
    pulses = {"clear_counters": 0, "clear_error": 0}

    def bob_and_commands(bench: TxBench) -> None:
        bob(bench)
        for name in pulses:
            if bench.rng.random() < 0.04:
                bench.pulse(name)
                pulses[name] += 1

    tb.bob = bob_and_commands
    for _ in range(6):
        await tb.cycles(400)
        tb.bob = None
        await tb.settle()
        c = await tb.check()
        assert c["announcements"] == c["answers"] + c["err_vacuum"] + c["err_out_of_ring"]
        tb.bob = bob_and_commands
    assert min(pulses.values()) > 50


# --- the whole top through its AXI ports ---------------------------------------------------
class TopBench:
    def __init__(self, dut, seed: int) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.regmap = transmitter_regmap(DEPTH)
        Clock(dut.aclk, 4, unit="ns").start()
        rn = dict(reset=dut.aresetn, reset_active_level=False)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, **rn)
        bus = {p: AxiStreamBus.from_prefix(dut, p) for p in
               ("s_axis_random", "s_axis_announce", "m_axis_answer", "m_axis_sifted",
                "m_axis_states")}
        self.random = AxiStreamSource(bus["s_axis_random"], dut.aclk, **rn)
        self.announce = AxiStreamSource(bus["s_axis_announce"], dut.aclk, **rn)
        self.answers = AxiStreamSink(bus["m_axis_answer"], dut.aclk, **rn)
        self.sifted = AxiStreamSink(bus["m_axis_sifted"], dut.aclk, **rn)
        self.states = AxiStreamSink(bus["m_axis_states"], dut.aclk, **rn)
        for sink in (self.answers, self.sifted, self.states):
            sink.set_pause_generator(itertools.cycle((self.rng.random(512) < 0.3).tolist()))
        logging.getLogger(f"cocotb.{dut._name}").setLevel(logging.WARNING)
        self.slots: list[tuple[int, tuple[int, int, int], int]] = []   # (slot, pins, ref)

    async def reset(self) -> None:
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 4)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Record each slot's pins in the cycle its slot counter steps (offset 0)."""
        dut = self.dut
        last = 0
        while True:
            await RisingEdge(dut.aclk)
            await ReadOnly()
            slot = int(dut.slot_count.value)
            if slot != last and slot:
                self.slots.append((slot - 1, (int(dut.mod_early.value), int(dut.mod_late.value),
                                              int(dut.mod_phase.value)),
                                   int(dut.reference.value)))
            last = slot

    async def read(self, name: str) -> int:
        reg = self.regmap[name]
        data = await self.axil.read(reg.offset, reg.width // 8)
        return int.from_bytes(data.data, "little")

    async def write(self, name: str, value: int | None = None, **fields: int) -> None:
        reg = self.regmap[name]
        if value is None:
            value = reg.encode(**fields)
        await self.axil.write(reg.offset, value.to_bytes(reg.width // 8, "little"))

    async def records(self, sink: AxiStreamSink, layout, n: int) -> list[dict[str, int]]:
        out: list[dict[str, int]] = []
        while len(out) < n:
            frame = await sink.recv()
            data = bytes(frame.tdata)
            step = layout.width // 8
            out += [layout.unpack(int.from_bytes(data[i:i + step], "little"))
                    for i in range(0, len(data), step)]
        return out


def state_of_pins(pins: tuple[int, int, int]) -> int | None:
    return None if pins == (0, 0, 0) else STATE_PINS.index(pins)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_top_registers_and_link(dut):
    """The top through AXI: ID and VERSION, defaults; random mode fed on s_axis_random (P(Z) =
    0.8 default), the slots' pins equal the states the model derives from the words; Bob's
    announcements answered on m_axis_answer, the sifted key on m_axis_sifted, counters."""
    tb = TopBench(dut, seed=7)
    await tb.reset()
    assert await tb.read("ID") == tb.regmap.hash
    assert await tb.read("VERSION") == tb.regmap.version
    assert await tb.read("RING_DEPTH") == DEPTH
    assert await tb.read("X_THRESHOLD") == TxConfig().x_threshold
    n_words = 60
    words = [int(w) for w in tb.rng.integers(0, 1 << 63, n_words, dtype=np.uint64) * 2 + 1]
    await tb.random.send(AxiStreamFrame(b"".join(w.to_bytes(8, "little") for w in words)))
    await tb.write("SLOT_DIVIDER", cycles=2)
    await tb.write("REF_DIVIDER", slots=8)
    await tb.write("FLUSH_CYCLES", value=16)
    await tb.write("FRAME_WORDS", value=4)
    await tb.write("CONTROL", run=1, state_stream=1)
    cfg = TxConfig(run=1, slot_divider=2)
    want = random_states(words, cfg, 10_000)
    await ClockCycles(dut.aclk, 2 * len(want) + 100)
    await tb.write("CONTROL", run=0)
    sent = [(s, state_of_pins(p), r) for s, p, r in tb.slots]
    assert [s for s, _, _ in sent] == list(range(len(sent)))
    states = [st for _, st, _ in sent]
    assert states[:len(want)] == want and all(st is None for st in states[len(want):])
    assert [r for _, _, r in sent] == [int(s % 8 == 0) for s in range(len(sent))]
    assert await tb.read("SLOT") == len(sent)
    assert await tb.read("RANDOM_UNDERRUNS") == len(sent) - len(want)
    assert await tb.read("RANDOM_WORDS") == n_words
    got_states = await tb.records(tb.states, STATES, len(sent) // 16)
    assert [(r["first_slot"], r["codes"]) for r in got_states] == [
        (16 * j, sum(state_code(st) << (4 * i) for i, st in enumerate(states[16 * j:16 * j + 16])))
        for j in range(len(sent) // 16)]
    assert await tb.read("STATES_DROPPED") == 0
    # Bob announces the slots that had light, in either basis, plus one out of the ring
    anns = [Announcement(i, slot, int(tb.rng.integers(0, 2)))
            for i, slot in enumerate(s for s, st, _ in sent if st is not None)]
    anns.append(Announcement(len(anns), len(sent) + 10, 0))
    data = b"".join(ANNOUNCE.pack(seq=a.seq, slot=a.slot, basis=a.basis).to_bytes(16, "little")
                    for a in anns)
    await tb.announce.send(AxiStreamFrame(data))
    model_answers = [Answer(a.seq, a.slot, STATE_BASIS[states[a.slot]],
                            int(states[a.slot] == 3)) for a in anns[:-1]]
    model_sifted = [SiftedKey(a.slot, STATE_BIT[states[a.slot]]) for a in anns[:-1]
                    if a.basis == 0 and STATE_BASIS[states[a.slot]] == 0]
    got = await tb.records(tb.answers, ANSWER, len(model_answers))
    assert [Answer(**{k: r[k] for k in ("seq", "slot", "basis", "x_bit")}) for r in got] \
        == model_answers
    got_sift = await tb.records(tb.sifted, SIFTED, len(model_sifted))
    assert [SiftedKey(r["slot"], r["bit"]) for r in got_sift] == model_sifted
    assert await tb.read("ANSWERS") == len(model_answers)
    assert await tb.read("SIFTED_Z") == len(model_sifted)
    assert await tb.read("ERR_OUT_OF_RING") == 1
    status = tb.regmap["STATUS"].decode(await tb.read("STATUS"))
    assert status["protocol_error"] == 1 and status["running"] == 0
    await tb.write("COMMAND", clear_error=1, clear_counters=1, restart=1)
    status = tb.regmap["STATUS"].decode(await tb.read("STATUS"))
    assert status["protocol_error"] == 0
    assert await tb.read("SLOT") == 0 and await tb.read("ANSWERS") == 0
    # pattern mode: the default pattern e, l, +, + after the restart
    await tb.write("CONTROL", run=1, pattern_mode=1)
    await ClockCycles(dut.aclk, 60)
    await tb.write("CONTROL", run=0)
    tail = [state_of_pins(p) for _, p, _ in tb.slots[len(sent):]]
    assert tail[:20] == [[0, 1, 2, 2][i % 4] for i in range(20)]
    assert [pins_of(s) for s in tail[:4]] == [STATE_PINS[s] for s in (0, 1, 2, 2)]
