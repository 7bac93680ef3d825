"""The whole receiver core on its Verilator model against the chained golden models.

Clicks at known slots and phases go through the front-end model into the compiled core; every
record it emits (tags' slots and phases through the histograms, announcements, sifted key,
error-signal windows) and every counter is compared with the golden models of the tagger, the
classifier, the sifter and the error-signal unit run on the same input. The same stimulus with
idle skipping must give exactly the same records.
"""

from fractions import Fraction

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden import TaggerModel, TaggerSettings, ideal_calibration
from tbqkd.hdl.golden_classifier import ClassifierConfig, ClassifierModel
from tbqkd.hdl.golden_sifter import SifterModel
from tbqkd.hdl.records import Role
from tbqkd.hdl.registers import HISTOGRAM_BINS, PENDING_DEPTH
from tbqkd.host.receiver import ReceiverInterface, Window
from tbqkd.host.tagger import TaggerInterface
from tbqkd.sim.device import open_verilator_device
from tbqkd.sim.frontend import make_frontend

pytestmark = pytest.mark.verilator

CONFIG = TaggerConfig()
ROLES = [Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS, Role.MONITOR]
EARLY, LATE, MIDDLE = Window(1_000, 2_500), Window(7_000, 2_500), Window(4_000, 2_500)
REF_PHASE = 300
WINDOW_EVENTS = 16


@pytest.fixture(scope="module")
def device():
    dev = open_verilator_device(CONFIG)
    yield dev
    dev.close()


def configure(device, frontend) -> tuple[TaggerSettings, ClassifierConfig]:
    """Reset the core and set it up; return the golden models' settings."""
    device.model.reset()
    for prefix in ("m_axis", "m_axis_announce", "m_axis_sifted", "m_axis_phase"):
        device.read_stream(stream=prefix)
    tagger, rx = TaggerInterface(device), ReceiverInterface(device)
    settings = TaggerSettings.defaults(CONFIG)
    for ch in range(CONFIG.n_channels):
        tagger.write_calibration(ch, frontend.ideal_fine_ps())
        settings.calibration[ch, :CONFIG.word_width] = ideal_calibration(frontend.ideal_fine_ps())
    tagger.set_tag_stream(False)
    for ch, role in enumerate(ROLES):
        rx.set_channel_role(ch, role, early=EARLY, late=LATE, middle=MIDDLE)
    rx.set_reference(REF_PHASE, threshold_ps=200, window_log2=2)
    rx.set_histogram(offset_ps=0, bin_log2_ps=4)
    rx.set_phase_window(events=WINDOW_EVENTS)
    period = CONFIG.slot_period
    classifier = ClassifierConfig(
        CONFIG.n_channels, int(period), role=[int(r) for r in ROLES],
        early_start=[EARLY.start_ps] * 5, early_width=[EARLY.width_ps] * 5,
        late_start=[LATE.start_ps] * 5, late_width=[LATE.width_ps] * 5,
        middle_start=[MIDDLE.start_ps] * 5, middle_width=[MIDDLE.width_ps] * 5,
        ref_phase=REF_PHASE, ref_window_log2=2, lock_threshold=200)
    return settings, classifier


def stimulus(start_cycle: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clicks on random slots (gaps of up to ~3000 slots) at random phases, plus references."""
    rng = np.random.default_rng(seed)
    period = CONFIG.slot_period
    first = int(start_cycle * CONFIG.period_ps / period) + 4
    slots = first + np.cumsum(rng.integers(2, 3000, n))
    channel = rng.integers(1, CONFIG.n_channels, n)
    phase = rng.uniform(0, float(period) - 1, n)
    ref = slots[::7] + 1                         # a reference pulse now and then
    slots = np.concatenate([slots, ref])
    channel = np.concatenate([channel, np.zeros(len(ref), np.int64)])
    phase = np.concatenate([phase, np.full(len(ref), REF_PHASE + 40.5)])
    t = np.array([int(s * period) for s in slots]) + phase
    order = np.argsort(t)
    return t[order].astype(np.int64), channel[order].astype(np.uint8)


def alice_basis(slot: np.ndarray) -> np.ndarray:
    """Alice's basis per slot: a fixed pseudo-random function of the slot."""
    return ((np.asarray(slot, np.uint64) * np.uint64(0x9E3779B1)) >> np.uint64(7)) & np.uint64(1)


def run_link(device, frontend, *, skip: bool, seed: int = 5):
    """Feed the stimulus, answer every announcement, collect everything the core emits."""
    settings, class_config = configure(device, frontend)
    rx = ReceiverInterface(device)
    device.skip_min = 64 if skip else 0
    device.feed(None, 12_000)      # the histogram banks are cleared after reset
    assert not rx.status()["hist_clearing"]
    t, ch = stimulus(device.model.cycle + 50, 1500, seed)
    device.feed_events(frontend, t, ch)
    ann = rx.read_announcements()
    rx.send_answers(ann["seq"], ann["slot"], alice_basis(ann["slot"]))
    device.feed(None, 20 * len(ann["seq"]) + 200, drain=True)
    result = {"announce": ann, "sifted": rx.read_sifted(), "windows": rx.read_phase_windows(),
              "counters": rx.sifter_counters(), "lock": rx.lock_status(),
              "bins": [rx.bin_counts(c) for c in range(CONFIG.n_channels)],
              "histogram": rx.histogram(), "clocked": device.cycles_clocked,
              "skips": device.skips}
    device.skip_min = 0
    return t, ch, settings, class_config, result


@pytest.fixture(scope="module")
def link(device):
    frontend = make_frontend(CONFIG.frontend, CONFIG.word_width, CONFIG.period_ps, seed=8)
    device.cycles_clocked = device.skips = 0
    plain = run_link(device, frontend, skip=False)
    device.cycles_clocked = device.skips = 0
    skipped = run_link(device, frontend, skip=True)
    return frontend, plain, skipped


def golden(frontend, t, ch, settings, class_config):
    tags = TaggerModel(CONFIG, settings).run(frontend.words(t, ch))
    assert (tags.phase >= 0).all()
    classified = ClassifierModel(class_config).run(tags.slot, tags.phase, tags.channel)
    return tags, classified


def golden_sifting(frontend, t, ch, settings, class_config):
    """The golden sifter after Alice answered every announcement; and the classified events."""
    _, classified = golden(frontend, t, ch, settings, class_config)
    key = classified.key.astype(bool)
    model = SifterModel(PENDING_DEPTH, PENDING_DEPTH - 1)
    model.detect_many(zip(classified.slot[key].tolist(), classified.basis[key].tolist(),
                          classified.bit[key].tolist(), strict=True))
    for a in model.announce():
        model.answer(a.seq, a.slot, int(alice_basis([a.slot])[0]), 0)
    return model, classified


def test_slots_and_phases_are_the_physical_ones(link):
    frontend, (t, ch, settings, class_config, _), _ = link
    tags, _ = golden(frontend, t, ch, settings, class_config)
    period = CONFIG.slot_period
    exact = [Fraction(int(x)) / period for x in t]
    want_slot = np.array([int(x) for x in exact])
    true_phase = np.array([float((x - int(x)) * period) for x in exact])
    assert len(tags.slot) == len(t)
    # a tag's slot and phase are its click's, within the front end's error (a few taps): a
    # click that close to a slot boundary may land on the other side of it
    # (tags leave in order of detection cycle and channel: compare in time order)
    order = np.argsort(tags.timestamp, kind="stable")
    error = (tags.slot[order].astype(np.int64) - want_slot) * float(period) \
        + tags.phase[order] - true_phase
    assert np.abs(error).max() < 60


def test_announcements_and_sifting_equal_golden(link):
    frontend, (t, ch, settings, class_config, res), _ = link
    model, _ = golden_sifting(frontend, t, ch, settings, class_config)
    ann = res["announce"]
    assert len(model.announcements) == len(ann["seq"]) > 100
    assert [(a.seq, a.slot, a.basis) for a in model.announcements] == list(zip(
        ann["seq"].tolist(), ann["slot"].tolist(), ann["basis"].tolist(), strict=True))
    got = res["sifted"]
    assert [(k.slot, k.bit) for k in model.sifted] == list(zip(
        got["slot"].tolist(), got["bit"].tolist(), strict=True))
    counters = dict(res["counters"])
    assert counters.pop("pending") == 0
    assert counters == model.counters
    assert counters["sifted_z"] > 20 and counters["sifted_x"] > 20 and counters["mismatch"] > 20


def test_error_signal_windows_equal_golden(link):
    frontend, (t, ch, settings, class_config, res), _ = link
    model, classified = golden_sifting(frontend, t, ch, settings, class_config)
    bob = np.array([x.bob_bit for x in model.x_events])
    full = len(bob) // WINDOW_EVENTS
    windows = res["windows"]
    assert len(windows["index"]) == full >= 2
    assert windows["index"].tolist() == list(range(full))
    assert (windows["x_sifted"] == WINDOW_EVENTS).all()
    # three-state convention: every X- click is an error
    want_errors = bob[:full * WINDOW_EVENTS].reshape(full, WINDOW_EVENTS).sum(axis=1)
    assert windows["x_errors"].tolist() == want_errors.tolist()
    # all middle-bin clicks happened before the first answer: they are in window 0
    mid = classified.mid_valid.astype(bool)
    assert int(windows["mid_plus"][0]) == int((mid & (classified.mid_minus == 0)).sum())
    assert int(windows["mid_minus"][0]) == int((mid & (classified.mid_minus == 1)).sum())
    assert (windows["mid_plus"][1:] == 0).all()


def test_classifier_counters_and_lock(link):
    frontend, (t, ch, settings, class_config, res), _ = link
    _, classified = golden(frontend, t, ch, settings, class_config)
    for c in range(1, CONFIG.n_channels):
        mine = classified.channel == c
        want = {name: int(((classified.bin == b) & mine).sum())
                for b, name in enumerate(("early", "late", "middle", "outside"))}
        assert res["bins"][c] == want
    lock = res["lock"]
    assert not lock.lost_lock and lock.violations == 0
    assert lock.windows == (ch == 0).sum() // 4
    assert abs(lock.offset_ps - 40) <= 25          # the reference sits 40.5 ps late


def test_histogram_snapshot_equals_tag_phases(link):
    frontend, (t, ch, settings, class_config, res), _ = link
    tags, _ = golden(frontend, t, ch, settings, class_config)
    want = np.zeros((CONFIG.n_channels, HISTOGRAM_BINS), np.int64)
    np.add.at(want, (tags.channel.astype(np.int64), tags.phase >> 4), 1)
    assert (res["histogram"] == want).all()


def test_idle_skipping_gives_the_same_records(link):
    _, plain, skipped = link
    a, b = plain[-1], skipped[-1]
    for name in ("announce", "sifted"):
        for field in a[name]:
            assert a[name][field].tolist() == b[name][field].tolist(), (name, field)
    for field in ("index", "x_sifted", "x_errors", "mid_plus", "mid_minus"):
        assert a["windows"][field].tolist() == b["windows"][field].tolist()
    assert a["counters"] == b["counters"] and a["bins"] == b["bins"]
    assert (a["histogram"] == b["histogram"]).all()
    assert b["skips"] > 300 and b["clocked"] < a["clocked"] / 20


def test_dac_receives_the_value(device):
    """The safe value after reset, then host writes in both framings, read off the SPI pins."""
    rx = ReceiverInterface(device)
    before = device.dac()[2]
    device.model.reset()
    device.feed(None, 2000)
    word, bits, frames = device.dac()
    assert frames == before + 1 and bits == 32 and (word >> 4) & 0xFFFF == 0x8000
    rx.set_dac(0x1234)
    device.feed(None, 2000)
    word, bits, frames = device.dac()
    assert frames == before + 2 and bits == 32
    assert word == (0x030 << 20) | (0x1234 << 4)
    assert rx.dac_value == 0x1234
    rx.set_dac_framing("ad5686")
    rx.set_dac(0xBEEF)
    device.feed(None, 2000)
    word, bits, frames = device.dac()
    assert frames == before + 3 and bits == 24 and word == (0x31 << 16) | 0xBEEF
