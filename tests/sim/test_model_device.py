"""The reference-model backend (``ModelDevice``) against the compiled core and the golden models.

The same stretch of the digital twin's 120 km output goes to the Verilator model and to the
reference model, both configured through the host interfaces and answered with a fixed
function of the slot; everything they emit and every counter must be equal. Protocol errors
(missing, extra, wrong-slot and early answers, the lag limit) likewise. Model-only tests cover
the tagger's fast path against the golden tagger (close pulses, both front ends), a full
sifter store against the golden sifter, register semantics and bad input.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden import TaggerModel, TaggerSettings, ideal_calibration
from tbqkd.hdl.golden_classifier import ClassifierConfig, ClassifierModel
from tbqkd.hdl.golden_sifter import SifterModel
from tbqkd.hdl.records import ANSWER, TAG, Role
from tbqkd.hdl.registers import HISTOGRAM_BINS, PENDING_DEPTH
from tbqkd.host.device import DeviceError
from tbqkd.host.receiver import ReceiverInterface, Window
from tbqkd.host.tagger import TaggerInterface
from tbqkd.sim.frontend import make_frontend
from tbqkd.sim.model_device import TAG_LATENCY, ModelDevice, open_model_device
from tbqkd.sim.twin import Scenario, Twin

CONFIG = TaggerConfig()
ROLES = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.MONITOR]
# The twin's pulses sit ~1.2 ns into the slot; bins 4 ns apart (early, middle, late).
EARLY, MIDDLE, LATE = Window(0, 3_000), Window(3_000, 4_000), Window(7_000, 3_500)
REF_PHASE = 1_200
FRONTEND = make_frontend(CONFIG.frontend, CONFIG.word_width, CONFIG.period_ps, seed=8)
#: What idle skipping in the Verilator model changes (the time base, not the records).
TIMING_DEPENDENT = ("end_slot", "CYCLE", "TIME", "SLOT", "PHASE_END_SLOT")
STREAM_NAMES = ("m_axis", "m_axis_announce", "m_axis_sifted", "m_axis_phase")


@lru_cache(maxsize=1)
def twin_output() -> tuple[np.ndarray, np.ndarray]:
    """3 s of the paper-120km link: detector clicks and reference pulses, time-ordered."""
    twin = Twin(Scenario.load("paper-120km"), seed=1)
    chunk = next(twin.chunks(3.0, 3.0))
    return chunk.time_ps.astype(np.int64), chunk.channel.astype(np.uint8)


def stretch(device, n: int, *, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` twin clicks from the ``skip``-th on, shifted to start 200 cycles from now."""
    t, ch = twin_output()
    t, ch = t[skip:skip + n], ch[skip:skip + n]
    return t - t[0] + (device.cycle + 200) * CONFIG.period_num, ch


def alice_basis(slot: np.ndarray) -> np.ndarray:
    """Alice's basis per slot: a fixed pseudo-random function of the slot."""
    return ((np.asarray(slot, np.uint64) * np.uint64(0x9E3779B1)) >> np.uint64(7)) & np.uint64(1)


def configure(device, *, window_events: int | None = 16, window_slots: int | None = None,
              max_pending: int | None = None) -> None:
    """Reset the core and set it up through the host interfaces (the same for both backends)."""
    if isinstance(device, ModelDevice):
        device.reset()
    else:
        device.model.reset()
    for prefix in STREAM_NAMES:
        device.read_stream(stream=prefix)
    tagger, rx = TaggerInterface(device), ReceiverInterface(device)
    for ch in range(CONFIG.n_channels):
        tagger.write_calibration(ch, FRONTEND.ideal_fine_ps())
    tagger.set_tag_stream(False)
    for ch, role in enumerate(ROLES):
        rx.set_channel_role(ch, role, early=EARLY, late=LATE, middle=MIDDLE)
    rx.set_reference(REF_PHASE, threshold_ps=300, window_log2=2)
    rx.set_histogram(offset_ps=0, bin_log2_ps=4)
    if window_slots is not None:
        rx.set_phase_window(slots=window_slots)
    else:
        rx.set_phase_window(events=window_events)
    if max_pending is not None:
        rx.restart_sifting(max_pending=max_pending)
    device.feed(None, 6_000)        # the histogram banks are cleared after reset
    rx.align()


def collect(device, *, histogram: bool = True) -> dict:
    rx, tagger = ReceiverInterface(device), TaggerInterface(device)
    out = {"sifted": rx.read_sifted(), "windows": rx.read_phase_windows(),
           "counters": rx.sifter_counters(), "lock": rx.lock_status(), "status": rx.status(),
           "bins": [rx.bin_counts(c) for c in range(CONFIG.n_channels)],
           "tagger": [tagger.counters(c) for c in range(CONFIG.n_channels)],
           "last_window": rx.last_phase_window(),
           "hist": {name: device.read(name) for name in ("HIST_OUTSIDE", "HIST_SKIPPED",
                                                          "HIST_SWAPS", "SLOT_RANGE_ERRORS")}}
    if histogram:
        out["histogram"] = rx.histogram()
    # every register, raw (64-bit ones low word first, as the host reads them)
    out["registers"] = {r.name: device.read(r.name) for r in device.regmap}
    return out


def run_link(device, n: int, *, answer=None, **setup) -> dict:
    """Feed ``n`` twin clicks, answer every announcement (``answer`` may alter the answers)."""
    configure(device, **setup)
    rx = ReceiverInterface(device)
    t, ch = stretch(device, n)
    device.feed_events(FRONTEND, t, ch)
    ann = rx.read_announcements()
    seq, slot, basis = ann["seq"], ann["slot"], alice_basis(ann["slot"])
    if answer is not None:
        seq, slot, basis = answer(seq, slot, basis)
    rx.send_answers(seq, slot, basis)
    device.feed(None, 20 * len(seq) + 200, drain=True)
    return {"announce": ann, **collect(device), "cycle": device.cycle}


def assert_same(a: dict, b: dict, *, timing: bool = True) -> None:
    """Every record and counter equal (``timing``: also the cycle and window end slots)."""
    for key in a:
        if key == "cycle" and not timing:
            continue
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert x.keys() == y.keys(), key
            for field in x:
                if not timing and field in TIMING_DEPENDENT:
                    continue
                assert np.array_equal(np.asarray(x[field]), np.asarray(y[field])), (key, field)
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y), key
        else:
            assert x == y, key


# --- against the compiled core --------------------------------------------------------------

@pytest.fixture(scope="module")
def verilator():
    from tbqkd.sim.device import open_verilator_device
    device = open_verilator_device(CONFIG)
    yield device
    device.close()


@pytest.fixture(scope="module")
def model():
    device = open_model_device(CONFIG)
    yield device
    device.close()


@pytest.mark.verilator
def test_link_records_equal_the_compiled_core(verilator, model):
    """2000 twin clicks: announcements, sifted key, windows, histogram, lock, counters."""
    verilator.skip_min = 64       # idle skipping: same records, not the same cycle counts
    try:
        want = run_link(verilator, 2000)
    finally:
        verilator.skip_min = 0
    got = run_link(model, 2000)
    assert_same(got, want, timing=False)
    assert len(got["announce"]["seq"]) > 500 and len(got["windows"]["index"]) >= 5
    c = got["counters"]
    assert c["sifted_z"] > 100 and c["sifted_x"] > 50 and c["mismatch"] > 100
    assert got["lock"].windows > 5 and got["histogram"].sum() > 1500


@pytest.mark.verilator
def test_cycle_timing_equals_the_compiled_core(verilator, model):
    """Without idle skipping the cycle count and the slot-mode window boundaries agree too."""
    want = run_link(verilator, 70, window_slots=20_000)
    got = run_link(model, 70, window_slots=20_000)
    assert_same(got, want, timing=True)
    assert len(got["windows"]["index"]) >= 4


@pytest.mark.verilator
def test_pipeline_latencies_equal_the_compiled_core(verilator, model):
    """A click lands on the same side of the histogram's reset clear and of a window boundary."""
    offset = int(FRONTEND.sample_offsets_ps()[-1]) - 50      # hit in the cycle of the click
    # the reset-time clear of the banks ends at 5120: tags reach them on both sides of it
    for hit in range(5104 - TAG_LATENCY, 5114 - TAG_LATENCY):
        skipped = []
        for device in (verilator, model):
            if device is verilator:
                device.model.reset()
            else:
                device.reset()
            device.feed_events(FRONTEND, np.array([hit * 4000 + offset]), np.array([1]))
            skipped.append(device.read("HIST_SKIPPED"))
        assert skipped[0] == skipped[1], hit
    period, sides = float(CONFIG.slot_period), set()
    # an X+ middle-bin click near a window boundary (its tag TAG_LATENCY cycles later)
    for shift in range(-8 - TAG_LATENCY, 2 - TAG_LATENCY):
        windows = []
        for device in (model, verilator):
            configure(device, window_slots=3_000)
            if device is model:            # the boundary: the model's slot clock says when
                end = model._slot_window[0] + model._classifier.slot_base
                boundary = model._clock.first_cycle_at_slot(end) + 1
            start = (boundary + shift) * 4000
            t = next((x for x in range(start, start + 4000, 20) if 3300 < x % period < 6700),
                     None)
            if t is None:                  # no middle-bin phase in this cycle
                break
            device.feed_events(FRONTEND, np.array([t]), np.array([2]))
            device.feed(None, 40_000, drain=True)
            windows.append(ReceiverInterface(device).read_phase_windows()["mid_plus"][:2])
        if len(windows) == 2:
            assert windows[0].tolist() == windows[1].tolist(), shift
            sides.add(int(windows[0][0]))
    assert sides == {0, 1}                 # clicks on both sides of the boundary were tried


@pytest.mark.verilator
def test_slot_period_change_equals_the_compiled_core(verilator, model):
    """Slot periods written while clicks arrive (ten changes by -1000 to +401 ps): clicks in
    every cycle around each switch, SLOT_CONSTANTS_LATENCY cycles after the write, get the
    same slots and phases on both. (Switching one cycle earlier or later in the model fails
    this.)"""
    offset = int(FRONTEND.sample_offsets_ps()[-1]) - 50
    runs = []
    for device in (verilator, model):
        configure(device)
        rx, tagger = ReceiverInterface(device), TaggerInterface(device)
        for ch in range(1, CONFIG.n_channels):
            tagger.set_channel(ch, dead_time_cycles=0)
        for delta in (166, 97, -310, 13, 401, -77, 250, 5, -1000, 60):
            device.feed(None, 1_000)
            rx.set_slot_period(CONFIG.slot_period + delta)     # the same SLOT_DEN
            cycles = device.cycle + np.arange(1, 25)
            device.feed_events(FRONTEND, cycles * 4000 + offset, cycles % 4 + 1)
        device.feed(None, 1_000, drain=True)
        runs.append({"announce": rx.read_announcements(), "histogram": rx.histogram(),
                     "cycle": device.cycle})
    want, got = runs
    assert_same(got, want)
    assert got["histogram"].sum() == 240 and len(got["announce"]["seq"]) > 50


def erroneous(seq, slot, basis):
    """Missing, duplicated, wrong-slot and early answers among good ones."""
    seq, slot, basis = (np.asarray(a, np.uint64).copy() for a in (seq, slot, basis))
    n = len(seq)
    keep = np.ones(n, bool)
    keep[[n - 40, n - 39, n - 10]] = False                 # missing
    order = np.flatnonzero(keep).tolist()
    order.insert(n - 25, n - 50)                           # duplicate of an answered one
    seq, slot, basis = seq[order], slot[order], basis[order]
    slot[n - 20] ^= np.uint64(1)                           # wrong slot
    seq = np.append(seq, seq[-1] + np.uint64(50))          # early: never announced
    return seq, np.append(slot, slot[-1]), np.append(basis, basis[-1])


@pytest.mark.verilator
def test_protocol_errors_equal_the_compiled_core(verilator, model):
    """Error paths (and the lag limit expiring records) give the same counters and records."""
    verilator.skip_min = 64
    try:
        want = run_link(verilator, 900, answer=erroneous, max_pending=120)
    finally:
        verilator.skip_min = 0
    got = run_link(model, 900, answer=erroneous, max_pending=120)
    assert_same(got, want, timing=False)
    c = got["counters"]
    for name in ("err_extra", "err_missing", "err_slot", "err_early", "expired"):
        assert c[name] > 0, name
    assert got["status"]["protocol_error"]
    for device in (verilator, model):
        ReceiverInterface(device).clear_protocol_error()
        assert not ReceiverInterface(device).status()["protocol_error"]


# --- model only -------------------------------------------------------------------------------

def golden_chain(frontend, t, ch, *, dead_time=None):
    settings = TaggerSettings.defaults(CONFIG)
    for c in range(CONFIG.n_channels):
        settings.calibration[c, :CONFIG.word_width] = ideal_calibration(frontend.ideal_fine_ps())
        if dead_time is not None:
            settings.dead_time[c] = dead_time
    return TaggerModel(CONFIG, settings).run(frontend.words(t, ch))


@pytest.mark.parametrize("kind", ["delay_line", "oversampling"])
def test_tagger_equals_the_golden_tagger(kind):
    """Codes, timestamps and dead time from event times, including pulses that share words."""
    frontend = make_frontend(kind, CONFIG.word_width, CONFIG.period_ps, seed=3)
    rng = np.random.default_rng(7)
    device = open_model_device(CONFIG)
    tagger = TaggerInterface(device)
    for c in range(CONFIG.n_channels):
        tagger.write_calibration(c, frontend.ideal_fine_ps())
        tagger.set_channel(c, dead_time_cycles=4)
    n = 3000
    t = (device.cycle + 100) * 4000 + np.cumsum(rng.integers(1, 40_000, n))
    ch = rng.integers(0, CONFIG.n_channels, n)
    close = rng.random(n) < 0.2                     # a second pulse 0.1 to 30 ns later
    t = np.concatenate([t, t[close] + rng.integers(100, 30_000, close.sum())])
    ch = np.concatenate([ch, ch[close]]).astype(np.uint8)
    order = np.argsort(t, kind="stable")
    t, ch = t[order], ch[order]
    device.feed_events(frontend, t, ch)
    want = golden_chain(frontend, t, ch, dead_time=4)
    got = TAG.decode(device.read_stream(stream="m_axis"))
    assert len(got["timestamp"]) == len(want) > 0.8 * n
    assert np.array_equal(got["timestamp"], want.timestamp)
    assert np.array_equal(got["channel"], want.channel)
    assert np.array_equal(got["code"].astype(np.int64), want.code)
    for c in range(CONFIG.n_channels):
        counters = tagger.counters(c)
        assert counters.events == want.events[c]
        assert counters.suppressed == want.suppressed[c]
    assert want.suppressed.sum() > 50


def test_histogram_snapshot_and_classifier_equal_golden(model):
    """The host's snapshot sequence and the per-bin counts, against the chained golden models."""
    configure(model)
    t, ch = stretch(model, 4000)
    model.feed_events(FRONTEND, t, ch)
    tags = golden_chain(FRONTEND, t, ch)
    rx = ReceiverInterface(model)
    want = np.zeros((CONFIG.n_channels, HISTOGRAM_BINS), np.int64)
    inside = tags.phase >> 4 < HISTOGRAM_BINS
    np.add.at(want, (tags.channel[inside].astype(np.int64), tags.phase[inside] >> 4), 1)
    assert np.array_equal(rx.histogram(), want)
    assert model.read("HIST_OUTSIDE") == int((~inside).sum())
    assert np.array_equal(rx.histogram(), np.zeros_like(want))     # counted once only
    classifier = ClassifierModel(ClassifierConfig(
        CONFIG.n_channels, int(CONFIG.slot_period), role=[int(r) for r in ROLES],
        early_start=[EARLY.start_ps] * 5, early_width=[EARLY.width_ps] * 5,
        late_start=[LATE.start_ps] * 5, late_width=[LATE.width_ps] * 5,
        middle_start=[MIDDLE.start_ps] * 5, middle_width=[MIDDLE.width_ps] * 5,
        ref_phase=REF_PHASE, ref_window_log2=2, lock_threshold=300))
    classifier.align()
    out = classifier.run(tags.slot, tags.phase, tags.channel)
    for c in range(1, CONFIG.n_channels):
        mine = out.channel == c
        assert rx.bin_counts(c) == {name: int(((out.bin == b) & mine).sum())
                                    for b, name in enumerate(("early", "late", "middle",
                                                              "outside"))}
    lock = rx.lock_status()
    assert (lock.windows, lock.violations, lock.offset_ps, lock.slot_base) == (
        classifier.lock_windows, classifier.lock_violations, classifier.lock_offset,
        classifier.slot_base)
    ann = rx.read_announcements()
    key = out.key.astype(bool)
    assert np.array_equal(ann["slot"].astype(np.int64), out.slot[key])


def test_full_store_equals_the_golden_sifter(model):
    """No lag limit: the 16 384-record store fills, new detections are dropped and counted."""
    configure(model, max_pending=0)
    t, ch = stretch(model, 80_000)
    model.feed_events(FRONTEND, t, ch)
    rx = ReceiverInterface(model)
    ann = rx.read_announcements()
    counters = rx.sifter_counters()
    assert len(ann["seq"]) == counters["announced"] == counters["pending"] == PENDING_DEPTH
    assert counters["dropped_full"] == counters["detections"] - PENDING_DEPTH > 0
    assert np.array_equal(ann["seq"], np.arange(PENDING_DEPTH))
    golden = SifterModel(PENDING_DEPTH, 0)
    for slot, basis in zip(ann["slot"].tolist(), ann["basis"].tolist(), strict=True):
        golden.detect(slot, basis, 0)
    golden.counters["detections"] = counters["detections"]
    golden.counters["dropped_full"] = counters["dropped_full"]
    golden.announce()
    seq, slot, basis = erroneous(ann["seq"], ann["slot"], alice_basis(ann["slot"]))
    rx.send_answers(seq, slot, basis)
    model.feed(None, len(seq) + 10, drain=True)
    for a in zip(seq.tolist(), slot.tolist(), basis.tolist(), strict=True):
        golden.answer(*a, 0)
    got = rx.sifter_counters()
    assert got.pop("pending") == golden.pending
    assert got == golden.counters
    assert len(rx.read_sifted()["slot"]) == golden.counters["sifted_z"]


def test_register_semantics():
    device = open_model_device(CONFIG)
    regmap = device.regmap
    device.write32(regmap["REF_PHASE"].offset, 0xFFFF_FFFF)       # the bank keeps its field
    assert device.read32(regmap["REF_PHASE"].offset) == 0xFF_FFFF
    assert device.read32(regmap["CORE_COMMAND"].offset) == 0       # write-pulse reads 0
    with pytest.raises(DeviceError):
        device.write32(regmap["CYCLE"].offset, 1)                 # read-only: SLVERR
    with pytest.raises(DeviceError):
        device.read32(0xFFFC)                                     # nothing there
    with pytest.raises(DeviceError):
        device.write("LOCK_WINDOWS", 1)
    # a read after a write waits for it to settle, like the AXI4-Lite bank
    before = device.cycle
    device.write("REF_PHASE", ps=5)
    assert device.read("CYCLE") == before + 2 + 3
    assert device.cycle == before + 2 + 3 + 4
    # the low word of a 64-bit counter latches the high word
    device.feed(None, (1 << 32) - device.cycle - 1)
    low = device.read32(regmap["CYCLE"].offset)
    high = device.read32(regmap["CYCLE"].offset + 4)
    assert (high, low) == (0, (1 << 32) - 1)
    assert device.read("CYCLE") >> 32 == 1
    # one latch for every 64-bit counter: a high word needs its own low word read just before
    device.read32(regmap["CYCLE"].offset)
    device.read32(regmap["TIME"].offset)
    with pytest.raises(DeviceError, match="without its low word"):
        device.read32(regmap["CYCLE"].offset + 4)
    assert device.read32(regmap["TIME"].offset + 4) == device.read("TIME") >> 32
    # the DAC: the safe value out of reset, then host writes in both framings
    device = open_model_device(CONFIG)
    rx = ReceiverInterface(device)
    device.feed(None, 2000)
    word, bits, frames = device.dac()
    assert frames == 1 and bits == 32 and (word >> 4) & 0xFFFF == 0x8000
    rx.set_dac(0x1234)
    assert rx.status()["dac_busy"]
    device.feed(None, 2000)
    assert device.dac() == ((0x030 << 20) | (0x1234 << 4), 32, 2)
    rx.set_dac_framing("ad5686")
    rx.set_dac(0xBEEF)
    device.feed(None, 2000)
    assert device.dac() == ((0x31 << 16) | 0xBEEF, 24, 3)
    assert device.read("DAC_WRITES") == 3 and not rx.status()["dac_busy"]


def test_bad_input_is_refused():
    device = open_model_device(CONFIG)
    with pytest.raises(DeviceError):
        device.read_stream(stream="m_axis_nothing")
    with pytest.raises(DeviceError):
        device.write_stream(b"\0" * 16, stream="m_axis")
    with pytest.raises(DeviceError):
        device.write_stream(b"\0" * (ANSWER.nbytes - 1))
    device.feed(None, 10_000)
    with pytest.raises(DeviceError, match="already passed"):
        device.feed_events(FRONTEND, np.array([1_000 * 4000]), np.array([1]))
    with pytest.raises(DeviceError, match="channel"):
        device.feed_events(FRONTEND, np.array([device.cycle * 4000 + 10**6]), np.array([7]))
    with pytest.raises(DeviceError):
        device.feed_events(FRONTEND, np.array([1, 2]), np.array([1]))
    with pytest.raises(DeviceError):
        device.feed(None, -1)
    with pytest.raises(DeviceError):
        ReceiverInterface(device).set_dac(1 << 16)
    assert device.read("CH1_EVENTS") == 0            # nothing was half-processed
