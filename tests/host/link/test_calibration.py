"""Calibration from live histograms, checked against the digital twin's truth.

Histograms are built like the core builds them (phase = detection time mod the slot period on
Bob's clock, floored to whole ps, offset 0, 16 ps bins, 1024 bins); the chosen delays and
windows are then applied with the classifier's golden model and compared with the twin's truth.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden_classifier import ClassifierConfig, ClassifierModel
from tbqkd.hdl.records import Bin, Role
from tbqkd.hdl.registers import HISTOGRAM_BINS, core_regmap
from tbqkd.host.calibration import (
    Calibration,
    CalibrationError,
    apply_calibration,
    calibrate_windows,
)
from tbqkd.host.device import Device
from tbqkd.host.finite_key import asymptotic_key_fraction
from tbqkd.host.receiver import ReceiverInterface, Window
from tbqkd.sim.twin import Scenario, State, Twin
from tbqkd.sim.twin.alice import CounterAlice

ROLES = (Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS)
BIN_LOG2 = 4
DURATION_S = 5.0
SEPARATION_PS = 4000.0


@dataclass
class Run:
    """A twin run: its scenario, events with truth, Bob's raw slot/phase, the histograms."""

    scenario: Scenario
    seed: int
    arrays: dict[str, np.ndarray]
    bob_slot: np.ndarray
    bob_phase: np.ndarray
    histograms: np.ndarray
    fibre_delay_ps: float

    @property
    def period(self) -> float:
        return self.scenario.period_ps()

    def calibrate(self, **kwargs) -> Calibration:
        sc = self.scenario
        args = dict(roles=ROLES, offset_ps=0, bin_ps=1 << BIN_LOG2, slot_period_ps=self.period,
                    bin_separation_ps=SEPARATION_PS, visibility=sc.bob.visibility,
                    z_error_floor=sc.alice.leak(), alice_z_probability=sc.alice.p_early
                    + sc.alice.p_late)
        args.update(kwargs)
        return calibrate_windows(self.histograms, **args)


def twin_run(seed: int, **overrides) -> Run:
    scenario = Scenario.load("paper-120km", **overrides)
    twin = Twin(scenario, seed=seed)
    chunks = list(twin.chunks(DURATION_S, 1.0))
    arrays = {name: np.concatenate([c.arrays()[name] for c in chunks])
              for name in chunks[0].arrays()}
    period = scenario.period_ps_fraction()
    num, den = period.numerator, period.denominator
    t = arrays["time_ps"]
    assert t.max() < np.iinfo(np.int64).max // den          # exact in int64
    scaled = t * den
    bob_slot = scaled // num
    bob_phase = (scaled - bob_slot * num) // den              # floored to whole ps, like the core
    histograms = np.zeros((len(ROLES), HISTOGRAM_BINS), np.int64)
    np.add.at(histograms, (arrays["channel"].astype(np.int64), bob_phase >> BIN_LOG2), 1)
    return Run(scenario, seed, arrays, bob_slot, bob_phase, histograms,
               twin.budget.fibre_delay_ps)


@pytest.fixture(scope="module")
def paper() -> Run:
    return twin_run(3)


@pytest.fixture(scope="module")
def skewed() -> Run:
    # A longer fibre, a late reference and unmatched detector cables: the reference lands near
    # the end of Bob's slot and the detector patterns wrap around the slot boundary.
    return twin_run(4, distance_km=97.3, reference__delay_ps=2100.0,
                    detectors__delay_ps=[350.0, -420.0, 1200.0])


@dataclass
class Classified:
    bins: np.ndarray
    alice_slot: np.ndarray        # the Alice slot each event is attributed to
    slot_offset: int              # Bob's slot after the delay minus Alice's, from the reference


def classify(run: Run, cal: Calibration) -> Classified:
    period_int = math.floor(run.period)
    plans = cal.channels
    config = ClassifierConfig(
        len(ROLES), period_int, role=[int(p.role) for p in plans],
        delay=[p.delay_ps for p in plans],
        **{f"{name}_{part}": [(getattr(p, name) or Window(0, 0)).__dict__[f"{part}_ps"]
                              for p in plans]
           for name in ("early", "late", "middle") for part in ("start", "width")},
        ref_phase=cal.ref_phase_ps)
    model = ClassifierModel(config)
    ch = run.arrays["channel"].astype(np.int64)
    slot, phase = model.delayed(run.bob_slot, run.bob_phase, ch)
    bins = model.bins(phase, ch)
    is_ref = ch == 0
    offsets = np.unique(slot[is_ref] - run.arrays["slot"][is_ref])
    assert offsets.size == 1, "the reference must map to one slot offset"
    # the reference lands at REF_PHASE (within its jitter)
    assert np.abs(phase[is_ref] - cal.ref_phase_ps).max() < 60
    return Classified(bins, slot - offsets[0], int(offsets[0]))


@dataclass
class Truth:
    qber_z: float
    qber_x: float
    sifted_z: int
    sifted_x: int


def truth_of(run: Run, cal: Calibration, classified: Classified) -> Truth:
    """What the sifter would see: Bob's bins against Alice's state of the attributed slot."""
    ch = run.arrays["channel"]
    state = CounterAlice(run.scenario.alice, run.seed).states(classified.alice_slot)
    bins = classified.bins
    z = (ch == 1) & ((bins == Bin.EARLY) | (bins == Bin.LATE)) \
        & ((state == State.EARLY) | (state == State.LATE))
    z_err = z & ((bins == Bin.LATE) != (state == State.LATE))
    x = ((ch == 2) | (ch == 3)) & (bins == Bin.MIDDLE) & (state == State.PLUS)
    x_err = x & (ch == 3)
    return Truth(z_err.sum() / z.sum(), x_err.sum() / x.sum(), int(z.sum()), int(x.sum()))


def key_fraction(qber_z: float, qber_x: float) -> float:
    return asymptotic_key_fraction(qber_z, qber_x)


# --- reference, delays, same-slot convention ------------------------------------------------
@pytest.mark.parametrize("name", ["paper", "skewed"])
def test_reference_phase_and_delays(name, request):
    run: Run = request.getfixturevalue(name)
    sc = run.scenario
    cal = run.calibrate()
    truth_ref = (run.fibre_delay_ps + sc.reference.delay_ps) % run.period
    error = (cal.ref_phase_raw_ps - truth_ref + run.period / 2) % run.period - run.period / 2
    assert abs(error) < 2 * (1 << BIN_LOG2)
    for plan, det_delay in zip(cal.channels[1:], sc.detectors.delay_ps, strict=True):
        assert plan.skew_ps == pytest.approx(det_delay - sc.reference.delay_ps, abs=10)
        assert -run.period < plan.delay_ps < run.period
    assert cal.ref_phase_ps == cal.guard_ps > 0 and cal.tolerance_ps > 0


@pytest.mark.parametrize("name", ["paper", "skewed"])
def test_pattern_lands_in_the_reference_slot(name, request):
    run: Run = request.getfixturevalue(name)
    cal = run.calibrate()
    classified = classify(run, cal)
    a = run.arrays
    photon = a["slot"] >= 0
    photon[a["channel"] == 0] = False
    # every photon of the pattern (rising edge of the first peak to the last peak plus two
    # lifetimes) is in the reference's slot, and after the delay inside [0, P)
    sc = run.scenario
    ch = a["channel"].astype(np.int64)
    det_delay = np.array([sc.reference.delay_ps, *sc.detectors.delay_ps])[ch]
    u = a["time_ps"] - a["slot"] * run.period - run.fibre_delay_ps - det_delay
    sigma = math.hypot(sc.source.excitation_jitter_ps, sc.detectors.jitter_sigma_ps())
    in_pattern = photon & (u > -4 * sigma) & (u < 2 * SEPARATION_PS + 2 * sc.source.lifetime_ps)
    assert in_pattern.sum() > 0.9 * photon.sum()
    assert np.array_equal(classified.alice_slot[in_pattern], a["slot"][in_pattern])
    # and every photon counted in a window belongs to the slot it is attributed to, but for the
    # rare tails from a neighbouring slot
    windowed = photon & (classified.bins != Bin.NONE)
    wrong = windowed & (classified.alice_slot != a["slot"])
    assert wrong.sum() < 1e-3 * windowed.sum()


def test_windows_fit_the_slot(skewed):
    cal = skewed.calibrate()
    period_int = math.floor(skewed.period)
    for plan in cal.channels:
        for window in (plan.early, plan.late, plan.middle):
            if window is not None:
                assert window.start_ps >= 0 and window.start_ps + window.width_ps <= period_int
    z = cal.channels[1]
    assert z.late.start_ps - z.early.start_ps == SEPARATION_PS
    assert cal.channels[2].middle == cal.channels[3].middle == z.late
    assert z.early.start_ps + z.early.width_ps <= z.late.start_ps


# --- estimates against the truth --------------------------------------------------------------
@pytest.mark.parametrize("name", ["paper", "skewed"])
def test_estimates_match_truth(name, request):
    run: Run = request.getfixturevalue(name)
    cal = run.calibrate()
    truth = truth_of(run, cal, classify(run, cal))
    # statistical errors over 5 s: e_z ±0.0005, e_x ±0.004 (one sigma)
    assert cal.qber_z == pytest.approx(truth.qber_z, abs=0.002)
    assert cal.qber_x == pytest.approx(truth.qber_x, abs=0.012)
    assert cal.sifted_z_counts == pytest.approx(truth.sifted_z, rel=0.01)
    assert cal.sifted_x_counts == pytest.approx(truth.sifted_x, rel=0.05)
    # key fraction: within 0.04 of the truth's (its own statistical error is ~0.013)
    assert cal.key_fraction == pytest.approx(key_fraction(truth.qber_z, truth.qber_x), abs=0.04)


def test_chosen_window_is_near_the_best_of_a_brute_force_scan(paper):
    cal = paper.calibrate()
    best = 0.0
    truths = {}
    for start in (-200, -100, -50, 0, 100, 300):
        for width in (1000, 2000, 3000, 3500, 3900):
            trial = replace_window(cal, start, width)
            truth = truth_of(paper, trial, classify(paper, trial))
            rate = key_fraction(truth.qber_z, truth.qber_x) * truth.sifted_z
            truths[start, width] = rate
            best = max(best, rate)
    chosen = truth_of(paper, cal, classify(paper, cal))
    chosen_rate = key_fraction(chosen.qber_z, chosen.qber_x) * chosen.sifted_z
    assert chosen_rate >= 0.98 * best
    # the scan is not flat: a narrow window loses a clear part of the key
    assert truths[0, 1000] < 0.8 * best


def replace_window(cal: Calibration, start: int, width: int) -> Calibration:
    """``cal`` with the window (relative to the onset) replaced."""
    guard = cal.guard_ps
    early = Window(guard + start, width)
    late = Window(guard + start + int(SEPARATION_PS), width)
    plans = tuple(replace(p, early=early if p.early else None, late=late if p.late else None,
                          middle=late if p.middle else None) for p in cal.channels)
    return replace(cal, channels=plans, window_start_ps=start, window_width_ps=width)


def test_estimate_tracks_visibility_and_floors(paper):
    base = paper.calibrate()
    worse = paper.calibrate(visibility=0.7)
    assert worse.qber_x == pytest.approx(base.qber_x + (0.813188 - 0.7) / 2, abs=0.005)
    assert worse.key_fraction < base.key_fraction
    floor = paper.calibrate(x_error_floor=0.02, z_error_floor=0.0)
    assert floor.qber_x < 0.04 and floor.qber_z < base.qber_z
    # no key at all: still a calibration (sensible windows), with a key fraction of 0
    hopeless = paper.calibrate(visibility=0.2)
    assert hopeless.key_fraction == 0 and hopeless.window_width_ps > 1000


def test_to_dict_is_json(paper):
    cal = paper.calibrate()
    data = json.loads(json.dumps(cal.to_dict()))
    assert data["channels"][1]["role"] == "Z"
    assert data["channels"][1]["early"]["width_ps"] == cal.window_width_ps
    assert data["ref_phase_ps"] == cal.ref_phase_ps
    assert data["channels"][2]["shape"]["lifetime_ps"] == pytest.approx(1018, rel=0.05)


# --- bad input ----------------------------------------------------------------------------------
def test_bad_input(paper):
    good = paper.histograms
    cases = {
        "empty": np.zeros_like(good),
        "few counts": np.where(np.arange(len(ROLES))[:, None] == 0, good, good // 100),
        "flat reference": np.vstack([np.full((1, good.shape[1]), 0)
                                     + (np.arange(good.shape[1]) < 820) * 5, good[1:]]),
        "flat detector": np.vstack([good[:2], (np.arange(good.shape[1]) < 820)[None] * 60,
                                    good[3:]]),
        "one dimension": good[0],
        "negative": good - 10 ** 6,
    }
    for name, hist in cases.items():
        with pytest.raises(CalibrationError):
            calibrate_windows(hist, roles=ROLES, offset_ps=0, bin_ps=16,
                              slot_period_ps=paper.period, bin_separation_ps=SEPARATION_PS)
        assert name
    with pytest.raises(CalibrationError, match="roles"):
        paper.calibrate(roles=ROLES[:3])
    with pytest.raises(CalibrationError, match="REFERENCE"):
        paper.calibrate(roles=(Role.Z,) * 4)
    with pytest.raises(CalibrationError, match="X"):
        paper.calibrate(roles=(Role.REFERENCE, Role.Z, Role.MONITOR, Role.MONITOR))
    with pytest.raises(CalibrationError, match="cover"):
        paper.calibrate(bin_ps=8)
    with pytest.raises(CalibrationError, match="cover"):
        paper.calibrate(offset_ps=100)
    with pytest.raises(CalibrationError, match="beyond"):
        paper.calibrate(slot_period_ps=12000.0)
    with pytest.raises(CalibrationError, match="guard"):
        paper.calibrate(guard_ps=20)              # the early window would start before 0
    with pytest.raises(CalibrationError, match="guard"):
        paper.calibrate(guard_ps=12000)           # the late window would end after P
    with pytest.raises(CalibrationError):
        paper.calibrate(bin_separation_ps=7000.0)  # two separations do not fit the slot
    with pytest.raises(CalibrationError):
        paper.calibrate(visibility=1.5)


# --- programming the core -------------------------------------------------------------------
class RegisterFile(Device):
    """A dict-backed register file with the core's register table (a test double)."""

    def __init__(self) -> None:
        super().__init__(core_regmap(TaggerConfig()))
        self.words: dict[int, int] = {}
        for reg in self.regmap:
            value = self.regmap.reset_value(reg.name)
            for w in range(reg.words):
                self.words[reg.offset + 4 * w] = (value >> (32 * w)) & 0xFFFF_FFFF

    def read32(self, offset: int) -> int:
        return self.words[offset]

    def write32(self, offset: int, value: int) -> None:
        assert offset in self.words, f"no register at {offset:#x}"
        self.words[offset] = value

    def read_stream(self, max_bytes=None, *, stream="m_axis") -> bytes:
        return b""

    def write_stream(self, data: bytes, *, stream="s_axis_answer") -> None:
        raise AssertionError("no stream writes expected")


def test_apply_calibration_programs_the_core(paper):
    device = RegisterFile()
    receiver = ReceiverInterface(device)
    assert receiver.n_channels == 5
    hist = np.vstack([paper.histograms, np.zeros((1, HISTOGRAM_BINS), np.int64)])
    cal = calibrate_windows(hist, roles=ROLES + (Role.OFF,), offset_ps=0, bin_ps=16,
                            slot_period_ps=paper.period, bin_separation_ps=SEPARATION_PS)
    apply_calibration(receiver, cal, lock_window_log2=6)
    for plan in cal.channels:
        assert device.read_fields(f"CH{plan.channel}_ROLE")["role"] == plan.role
        assert device.read_fields(f"CH{plan.channel}_PHASE_DELAY")["ps"] == plan.delay_ps
        for name in ("early", "late", "middle"):
            window = getattr(plan, name) or Window(0, 0)
            assert device.read(f"CH{plan.channel}_{name.upper()}_START") == window.start_ps
            assert device.read(f"CH{plan.channel}_{name.upper()}_WIDTH") == window.width_ps
    assert cal.channels[4].delay_ps == 0 and cal.channels[4].early is None
    assert cal.channels[1].delay_ps < 0            # a negative delay survives the register
    assert device.read("REF_PHASE") == cal.ref_phase_ps
    assert device.read("LOCK_THRESHOLD") == cal.tolerance_ps
    assert device.read("LOCK_WINDOW") == 6

    with pytest.raises(CalibrationError, match="channels"):
        apply_calibration(receiver, paper.calibrate())
    with pytest.raises(CalibrationError, match="threshold"):
        apply_calibration(receiver, cal, lock_threshold_ps=cal.tolerance_ps + 1)
    with pytest.raises(CalibrationError, match="slot period"):
        apply_calibration(receiver, replace(cal, slot_period_ps=cal.slot_period_ps + 5))


def test_coarser_bins_give_the_same_calibration(paper):
    fine = paper.calibrate()
    coarse_hist = np.zeros_like(paper.histograms)
    coarse_hist[:, :HISTOGRAM_BINS // 2] = paper.histograms.reshape(len(ROLES), -1, 2).sum(axis=2)
    coarse = replace(paper, histograms=coarse_hist).calibrate(bin_ps=32)
    assert coarse.ref_phase_raw_ps == pytest.approx(fine.ref_phase_raw_ps, abs=4)
    assert [p.delay_ps for p in coarse.channels] == pytest.approx(
        [p.delay_ps for p in fine.channels], abs=4)
    assert coarse.window_start_ps == pytest.approx(fine.window_start_ps, abs=32)
    assert coarse.qber_z == pytest.approx(fine.qber_z, abs=0.001)
    assert coarse.qber_x == pytest.approx(fine.qber_x, abs=0.002)
