"""The sifter's golden model on hand-worked cases and random operation sequences."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment
from hypothesis import given, settings
from hypothesis import strategies as st
from tbqkd.hdl.golden_sifter import (
    COUNTERS,
    Announcement,
    SiftedKey,
    SifterModel,
    XEvent,
)
from tbqkd.hdl.sifter import Sifter

Z, X = 0, 1


def loaded(records, **kwargs) -> SifterModel:
    model = SifterModel(**kwargs)
    model.detect_many(records)
    model.announce()
    return model


def nonzero(model: SifterModel) -> dict[str, int]:
    return {k: v for k, v in model.counters.items() if v}


def test_matches_sift_z_x_and_mismatch():
    model = loaded([(10, Z, 1), (11, X, 0), (12, Z, 0)])
    assert model.announcements == [Announcement(0, 10, Z), Announcement(1, 11, X),
                                   Announcement(2, 12, Z)]
    assert model.answer(0, 10, Z, 0) == "z"
    assert model.answer(1, 11, X, 1) == "x"
    assert model.answer(2, 12, X, 0) == "mismatch"
    assert model.sifted == [SiftedKey(10, 1)]
    assert model.x_events == [XEvent(bob_bit=0, alice_bit=1)]
    assert nonzero(model) == {"detections": 3, "announced": 3, "answers": 3, "sifted_z": 1,
                              "sifted_x": 1, "mismatch": 1}
    assert model.pending == 0 and not model.protocol_error


def test_skipped_records_are_missing_then_the_answer_matches():
    model = loaded([(s, Z, s & 1) for s in range(5)])
    assert model.answer(3, 3, Z, 0) == "z"
    assert model.counters["err_missing"] == 3 and model.protocol_error
    assert model.sifted == [SiftedKey(3, 1)]
    assert model.pending == 1


def test_duplicate_and_out_of_order_answers_are_extra():
    model = loaded([(s, Z, 0) for s in range(4)])
    model.answer(0, 0, Z, 0)
    assert model.answer(0, 0, Z, 0) == "extra"          # duplicate
    assert model.answer(2, 2, Z, 0) == "z"              # 1 missing
    assert model.answer(1, 1, Z, 0) == "extra"          # came late: its record is gone
    assert model.sifted == [SiftedKey(0, 0), SiftedKey(2, 0)]
    assert nonzero(model)["err_extra"] == 2 and model.counters["err_missing"] == 1


def test_wrong_slot_discards_record_and_answer():
    model = loaded([(100, Z, 1), (200, Z, 1)])
    assert model.answer(0, 101, Z, 0) == "slot"
    assert model.answer(1, 200, Z, 0) == "z"
    assert model.counters["err_slot"] == 1 and model.sifted == [SiftedKey(200, 1)]


def test_early_answers_are_discarded_without_touching_records():
    model = SifterModel()
    model.detect_many([(1, Z, 0), (2, Z, 1), (3, X, 1)])
    model.announce(2)
    assert model.answer(2, 3, X, 0) == "early"            # detected, not yet announced
    assert model.answer(7, 9, X, 0) == "early"            # not even detected
    assert model.pending == 3 and model.counters["err_early"] == 2
    assert model.answer(0, 1, Z, 0) == "z"
    empty = SifterModel()
    assert empty.answer(0, 0, Z, 0) == "early"            # nothing pending, seq not yet used


def test_lag_limit_expires_oldest_and_its_answer_becomes_extra():
    model = SifterModel(pending_depth=16, max_pending=3)
    for s in range(5):
        model.detect(s, Z, 0)
        model.announce()
    assert model.pending == 3 and model.counters["expired"] == 2
    assert model.answer(0, 0, Z, 0) == "extra"
    assert model.answer(2, 2, Z, 0) == "z"
    # Expiring records never announced: the announcer skips them.
    quiet = SifterModel(pending_depth=16, max_pending=2)
    quiet.detect_many([(s, Z, 0) for s in range(5)])
    assert [a.seq for a in quiet.announce()] == [3, 4]


def test_full_store_drops_without_spending_sequence_numbers():
    model = SifterModel(pending_depth=4)
    seqs = model.detect_many([(s, Z, 0) for s in range(6)])
    assert seqs == [0, 1, 2, 3, None, None]
    assert model.counters["dropped_full"] == 2 and model.pending == 4
    model.announce()
    model.answer(0, 0, Z, 0)
    assert model.detect(99, Z, 1) == 4


def test_restart_empties_the_store_and_restarts_seq():
    model = loaded([(s, Z, 0) for s in range(3)])
    model.restart()
    assert model.pending == 0 and model.detect(50, X, 1) == 0
    model.announce()
    assert model.answer(0, 50, X, 1) == "x"
    assert model.counters["detections"] == 4


def test_sequence_numbers_compare_modulo_2_32():
    model = SifterModel()
    model._next_seq = (1 << 32) - 2          # start just before the wrap (no 2^32 detections)
    model.detect_many([(s, Z, 1) for s in range(4)])
    assert [a.seq for a in model.announce()] == [(1 << 32) - 2, (1 << 32) - 1, 0, 1]
    assert model.answer(0, 2, Z, 0) == "z"               # skips two across the wrap
    assert model.counters["err_missing"] == 2
    assert model.answer((1 << 32) - 1, 1, Z, 0) == "extra"
    assert model.answer(1, 3, Z, 0) == "z"


def test_bad_input_raises():
    model = SifterModel()
    with pytest.raises(ValueError):
        model.detect(1 << 48, Z, 0)
    with pytest.raises(ValueError):
        model.detect(0, 2, 0)
    with pytest.raises(ValueError):
        model.answer(1 << 32, 0, Z, 0)
    with pytest.raises(ValueError):
        model.announce(1)
    with pytest.raises(ValueError):
        SifterModel(pending_depth=0)
    assert model.counters["detections"] == 0


def test_clear_counters_and_error():
    model = loaded([(1, Z, 0)])
    model.answer(5, 1, Z, 0)
    assert model.protocol_error
    model.clear_error()
    model.clear_counters()
    assert not model.protocol_error and set(model.counters.values()) == {0}


op = st.one_of(
    st.tuples(st.just("det"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("ann"), st.integers(0, 3)),
    st.tuples(st.just("ans"), st.integers(-3, 6), st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=st.lists(op, max_size=80), max_pending=st.integers(0, 6))
def test_random_operations_keep_accounting_and_alignment(ops, max_pending):
    """Whatever the order: every answer has exactly one outcome, every record is accounted for,
    and a sifted record is always the one whose seq and slot the answer echoed."""
    model = SifterModel(pending_depth=8, max_pending=max_pending)
    truth: dict[int, tuple[int, int, int]] = {}     # seq -> record, per session
    slot = 0
    consumed_before = 0
    for o in ops:
        if o[0] == "det":
            slot += 1
            seq = model.detect(slot, o[1], o[2])
            if seq is not None:
                truth[seq] = (slot, o[1], o[2])
        elif o[0] == "ann":
            model.announce(min(o[1], model.unannounced))
        elif o[0] == "ans":
            seq = (model.next_seq - model.pending + o[1]) % (1 << 32)
            rec = truth.get(seq, (12345, 0, 0))
            basis = rec[1] if o[2] else 1 - rec[1]
            n_sifted = len(model.sifted)
            outcome = model.answer(seq, rec[0], basis, o[3])
            if outcome == "z":
                assert model.sifted[n_sifted:] == [SiftedKey(rec[0], rec[2])]
            else:
                assert len(model.sifted) == n_sifted
        else:
            consumed_before += model.pending
            model.restart()
            truth.clear()
        assert 0 <= model.unannounced <= model.pending <= 8
        if max_pending:
            assert model.pending <= max_pending
    c = model.counters
    outcomes = ("sifted_z", "sifted_x", "mismatch", "err_slot", "err_extra", "err_early")
    assert c["answers"] == sum(c[k] for k in outcomes)
    accepted = c["detections"] - c["dropped_full"]
    resolved = sum(c[k] for k in ("sifted_z", "sifted_x", "mismatch", "err_slot",
                                  "err_missing", "expired"))
    assert accepted == resolved + model.pending + consumed_before
    assert model.protocol_error == any(c[k] for k in ("err_extra", "err_early", "err_missing",
                                                      "err_slot"))
    assert set(c) == set(COUNTERS)


# A component rejected in __init__ was still created: Amaranth warns that it is unused.
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sifter_ports_follow_the_records():
    sifter = Sifter(1024)
    assert len(sifter.ann_tdata) == 128 and len(sifter.sift_tdata) == 64
    assert len(sifter.ans_tdata) == 128 and len(sifter.det_slot) == 48
    assert all(len(getattr(sifter, name)) == 64 for name in COUNTERS)
    for bad in (3, 1 << 21):
        with pytest.raises(ValueError):
            Sifter(bad)
    Fragment.get(sifter, None)                   # elaborates: power of two
    Fragment.get(Sifter(10240), None)            # and a ring that wraps at its depth
