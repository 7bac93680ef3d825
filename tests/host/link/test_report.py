"""The run folder: RunLog's validation, read_log's errors, the plots and the offline HTML report."""

from __future__ import annotations

import base64
import json
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from tbqkd.hdl.records import Role
from tbqkd.host.report import (
    HISTOGRAMS_FILE,
    MAX_LIST_ITEMS,
    METRICS_FILE,
    RunLog,
    RunLogError,
    link_stability,
    make_plots,
    read_histograms,
    read_log,
    window_spans_ps,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SLOT_PERIOD_PS = 1e9 / 75947                      # ≈ 13 167.08 ps, the reference slot
N_WINDOWS = 300
BLOCK_EVERY = 30                                 # one block per 30 windows (seconds)
ABORTED = {3, 7}
FAILED = {5}

RUN = {"type": "run", "started": "2026-11-27T13:00:00+00:00", "backend": "model",
       "scenario": "paper-120km", "distance_km": 120.0, "duration_s": 300.0, "seed": 1,
       "feedback": True, "eve": None, "tbqkd_version": "0.1.0"}
SUMMARY = {"type": "summary", "distance_km": 120.0, "duration_s": 300.0,
           "detections_per_s": 31012.5, "sifted_bps": 11834.25, "qber_z": 0.0162,
           "qber_x": 0.0987, "skr_bps": 15.75, "skr_asymptotic_bps": 48.5,
           "ec_efficiency": 1.17, "secret_bits": 4725, "aborted_blocks": 3,
           "overflow_events": 0}
WARNING_MESSAGE = "tagger FIFO <b>overflow</b> & 12 events dropped"


def _window(t_s: float, *, phase: float | None = 0.1, locked: bool = True,
            secret_bits: int = 0, rng: np.random.Generator | None = None) -> dict:
    rng = rng or np.random.default_rng(0)
    sifted_x = int(rng.poisson(1300))
    x_errors = int(rng.binomial(sifted_x, 0.1))
    return {"type": "window", "t_s": t_s, "dt_s": 1.0, "detections": int(rng.poisson(31000)),
            "sifted_z": int(rng.poisson(10500)), "sifted_x": sifted_x, "x_errors": x_errors,
            "qber_x": x_errors / sifted_x, "dac_code": 32768 + int(t_s), "phase_rad": phase,
            "locked": locked, "secret_bits": secret_bits}


def _block(block_id: int, t_s: float) -> dict:
    status = "aborted" if block_id in ABORTED else "failed" if block_id in FAILED else "ok"
    ok = status == "ok"
    return {"type": "block", "block_id": block_id, "t_s": t_s, "status": status,
            "n_bits": 300_000, "qber_z": 0.016 if status != "failed" else None,
            "qber_x": 0.1 if ok else (0.13 if status == "aborted" else None),
            "ec_efficiency": 1.17 if ok else None, "leaked_bits": 37_000 if ok else 0,
            "secret_bits": 675 if ok else 0,
            "reason": "" if ok else ("QBER X above 11 %" if status == "aborted"
                                     else "verification failed")}


def _histograms(rng: np.random.Generator) -> dict:
    """Four channels (reference, Z, X+, X−) with a peak at the start of each window (X: side
    peaks too); channel 3's delay puts its middle window across the slot end."""
    bins, bin_ps = 1024, 16
    delays = np.array([0, 300, -200, 9000])
    windows = np.zeros((4, 3, 2), dtype=np.int64)
    windows[1] = [[1000, 2500], [5000, 2500], [0, 0]]
    windows[2] = windows[3] = [[0, 0], [0, 0], [3000, 2500]]
    peaks = {0: [500], 1: [1200, 5200], 2: [-800, 3200, 7200], 3: [-800, 3200, 7200]}
    counts = np.zeros((4, bins), dtype=np.int64)
    for ch, centres in peaks.items():
        raw = np.concatenate([(c + delays[ch] + rng.exponential(1018, 5000))
                              for c in centres]) % SLOT_PERIOD_PS
        counts[ch] = np.bincount((raw // bin_ps).astype(int), minlength=bins)[:bins]
    return {"counts": counts, "offset_ps": 0, "bin_ps": bin_ps, "slot_period_ps": SLOT_PERIOD_PS,
            "roles": np.array([Role.REFERENCE, Role.Z, Role.X_PLUS, Role.X_MINUS]),
            "windows": windows, "delays_ps": delays}


def _write_run(run_dir: Path, *, histograms: bool = True, blocks: bool = True,
               summary: bool = True, phase: bool = True, windows: int = N_WINDOWS) -> None:
    """A synthetic run folder written through RunLog, as the link writes it."""
    rng = np.random.default_rng(7)
    with RunLog(run_dir) as log:
        log.write(RUN)
        log.write({"type": "calibration", "ref_phase_ps": 500, "delays_ps": [0, 300, -200, 12000],
                   "windows_ps": {"1": [[1000, 2500], [5000, 2500]]}, "qber_z_est": 0.015})
        secret = 0
        for i in range(1, windows + 1):
            t = float(i)
            if blocks and i % BLOCK_EVERY == 0:
                block = _block(i // BLOCK_EVERY - 1, t)
                log.write(block)
                secret += block["secret_bits"]
            log.write(_window(t, phase=0.05 * np.sin(t / 20) if phase else None,
                              locked=not 100 < i <= 110, secret_bits=secret, rng=rng))
            if i in (50, 105, 200):
                log.write({"type": "warning", "t_s": t, "kind": "lost_lock" if i == 105
                           else "overflow", "message": WARNING_MESSAGE})
        if histograms:
            log.save_histograms(**_histograms(rng))
        if summary:
            log.write(SUMMARY)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("run") / "run-001"
    _write_run(run_dir)
    return run_dir, write_report(run_dir)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class _Collector(HTMLParser):
    """Collects tags, attributes, text and checks that elements nest properly."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "col"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed elements {parser.stack}"
    return parser


# --- plots and report ------------------------------------------------------------------------

def test_plots_are_valid_pngs(full_run):
    run_dir, _ = full_run
    paths = make_plots(run_dir)
    assert sorted(p.name for p in paths) == ["histograms.png", "key.png", "phase.png",
                                              "qber.png", "rates.png"]
    for path in paths:
        assert path.parent == run_dir / "plots"
        data = path.read_bytes()
        width, height = _png_size(data)
        assert width >= 800 and height >= 250, (path.name, width, height)
        assert len(data) > 10_000, path.name                # something was drawn
    hist_w, hist_h = _png_size((run_dir / "plots" / "histograms.png").read_bytes())
    assert hist_h > 2 * _png_size((run_dir / "plots" / "qber.png").read_bytes())[1]  # 4 rows


def test_report_is_self_contained_valid_html(full_run):
    run_dir, report = full_run
    assert report == run_dir / "report.html"
    parser = _parse(report)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in parser.tags:
        for name in ("src", "href", "action", "data"):
            value = attrs.get(name) or ""
            assert "http" not in value and "//" not in value.split(",")[0], (tag, name)
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    plots = {p.name: p.read_bytes() for p in (run_dir / "plots").glob("*.png")}
    assert len(images) == len(plots) == 5
    embedded = set()
    for src in images:
        prefix, data = src.split(",", 1)
        assert prefix == "data:image/png;base64"
        embedded.add(base64.b64decode(data, validate=True))
    assert embedded == set(plots.values())
    css = report.read_text(encoding="utf-8")
    assert "@import" not in css and "url(" not in css


def test_report_shows_summary_blocks_and_warnings(full_run):
    _, report = full_run
    parser = _parse(report)
    text = " ".join(parser.text)
    for figure in ("31,012", "1.62", "9.87", "15.75", "48.5", "1.17", "4,725", "120"):
        assert figure in text, figure
    for unit in ("bit/s", "km", "%"):
        assert unit in text
    assert "overflow_events" in text                     # extra summary figures are kept
    rows = [attrs.get("class") for tag, attrs in parser.tags if tag == "tr"]
    n_blocks = N_WINDOWS // BLOCK_EVERY
    assert rows.count("ok") == n_blocks - len(ABORTED) - len(FAILED)
    assert rows.count("aborted") == len(ABORTED) and rows.count("failed") == len(FAILED)
    assert "QBER X above 11 %" in text and "verification failed" in text
    assert text.count(WARNING_MESSAGE) == 3               # escaped markup comes back as text
    assert "<b>overflow</b>" not in report.read_text()    # never injected as HTML
    assert "No summary record" not in text


def test_missing_parts_hardware_run_without_blocks_or_histograms(tmp_path):
    run_dir = tmp_path / "hw"
    _write_run(run_dir, histograms=False, blocks=False, summary=False, phase=False, windows=40)
    paths = make_plots(run_dir)
    assert sorted(p.name for p in paths) == ["key.png", "phase.png", "qber.png", "rates.png"]
    report = write_report(run_dir)
    parser = _parse(report)
    text = " ".join(parser.text)
    assert "No summary record" in text
    assert "No key block finished yet" in text
    assert "No histograms were saved" in text
    assert len([t for t, _ in parser.tags if t == "img"]) == 4
    records = read_log(run_dir)
    expected_rate = sum(w["detections"] for w in records["window"]) / 40
    assert f"{expected_rate:,.0f}" in text                 # partial summary from the windows


def test_report_of_a_run_with_only_its_run_record(tmp_path):
    with RunLog(tmp_path / "empty") as log:
        log.write(RUN)
    assert make_plots(tmp_path / "empty") == []
    parser = _parse(write_report(tmp_path / "empty"))
    assert "No data to plot yet" in " ".join(parser.text)
    assert not [t for t, _ in parser.tags if t == "img"]


def test_report_without_metrics_log_is_a_clear_error(tmp_path):
    with pytest.raises(RunLogError, match="no metrics log"):
        write_report(tmp_path)


def test_report_compares_runs(full_run, tmp_path):
    run_dir = tmp_path / "run-001"
    shutil.copytree(full_run[0], run_dir)
    drifting = tmp_path / "no-feedback"
    with RunLog(drifting) as log:
        log.write({**RUN, "feedback": False})
        rng = np.random.default_rng(3)
        for i in range(1, 121):
            window = _window(float(i), phase=0.02 * i, locked=i <= 60, rng=rng)
            window["x_errors"] = window["sifted_x"] // 4          # QBER X 25 %
            log.write(window)
    report = write_report(run_dir, compare=[drifting])
    parser = _parse(report)
    text = " ".join(parser.text)
    assert "Comparison" in text
    assert "no-feedback · feedback off" in text and "run-001 · feedback on (this run)" in text
    assert "60" in [cell.strip() for cell in parser.text]     # longest out of lock: 60 s
    images = [a["src"] for t, a in parser.tags if t == "img"]
    assert len(images) == 6
    compare_png = (run_dir / "plots" / "compare.png").read_bytes()
    assert any(base64.b64decode(src.split(",", 1)[1]) == compare_png for src in images)
    with pytest.raises(RunLogError, match="no metrics log"):
        write_report(run_dir, compare=[tmp_path / "missing"])


@pytest.mark.parametrize(("start", "width", "delay", "expected"), [
    (1000, 2500, 300, [(1300.0, 3800.0)]),
    (3000, 2500, 9000, [(12000.0, 13000.0), (0.0, 1500.0)]),       # crosses the slot end
    (1000, 500, -1500, [(12500.0, 13000.0)]),                     # negative delay wraps back
    (0, 0, 100, []),
    (10, 20_000, 0, [(0.0, 13000.0)]),
])
def test_window_spans_on_the_raw_phase_axis(start, width, delay, expected):
    assert window_spans_ps(start, width, delay, 13000) == expected          # exact in floats


def test_link_stability_from_windows():
    windows = [_window(float(t), phase=0.1 if t % 2 else -0.1,
                       locked=not (10 < t <= 13 or 20 < t <= 21)) for t in range(1, 31)]
    for w in windows:
        w["sifted_x"], w["x_errors"] = 1000, 50 if w["locked"] else 250
    stats = link_stability(windows[::-1])                          # order does not matter
    assert stats["windows"] == 30
    assert stats["time_locked_fraction"] == pytest.approx(26 / 30)
    assert stats["unlocked_stretches"] == 2
    assert stats["longest_unlocked_s"] == pytest.approx(3.0)
    assert stats["qber_x_pooled"] == pytest.approx((26 * 50 + 4 * 250) / 30_000)
    assert stats["phase_rms_rad"] == pytest.approx(0.1)
    assert link_stability([])["time_locked_fraction"] is None


# --- reading ---------------------------------------------------------------------------------

def test_read_log_groups_records_in_order(full_run):
    run_dir, _ = full_run
    records = read_log(run_dir)
    assert [len(records[k]) for k in ("run", "calibration", "window", "block", "warning",
                                      "summary")] == [1, 1, N_WINDOWS, N_WINDOWS // BLOCK_EVERY,
                                                      3, 1]
    assert [w["t_s"] for w in records["window"]] == [float(i) for i in range(1, N_WINDOWS + 1)]
    assert records["summary"][0] == SUMMARY
    assert records["run"][0] == RUN


@pytest.mark.parametrize(("bad_line", "message"), [
    ('{"type": "window", "t_s": 1.0', "not valid JSON"),
    ('[1, 2, 3]', "must be a JSON object"),
    ('{"type": "keyblock", "t_s": 1.0}', "unknown record type 'keyblock'"),
    ('{"type": "warning", "t_s": 1.0, "kind": "x"}', "missing message"),
    ('{"type": "block", "block_id": 1, "t_s": 1, "status": "lost", "n_bits": 1, "qber_z": null,'
     ' "qber_x": null, "ec_efficiency": null, "leaked_bits": 0, "secret_bits": 0,'
     ' "reason": ""}', "status='lost'"),
])
def test_malformed_line_names_the_line(tmp_path, bad_line, message):
    with RunLog(tmp_path) as log:
        log.write(RUN)
        log.write(_window(1.0))
    with open(tmp_path / METRICS_FILE, "a", encoding="utf-8") as file:
        file.write("\n" + bad_line + "\n")                 # line 3 is blank, line 4 is bad
        file.write(json.dumps(_window(2.0)) + "\n")
    with pytest.raises(RunLogError, match=r"line 4: .*" + message.replace("(", r"\(")):
        read_log(tmp_path)


# --- writing ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("record", "message"), [
    ({"t_s": 1.0}, "unknown record type None"),
    ({"type": "heartbeat"}, "unknown record type 'heartbeat'"),
    ({"type": ["window"]}, r"unknown record type \['window'\]"),
    ([("type", "run")], "must be a JSON object, not list"),
    ({k: v for k, v in _window(1.0).items() if k != "locked"}, "window record is missing locked"),
    ({**_window(1.0), "detections": "many"}, "detections='many' is not an int"),
    ({**_window(1.0), "detections": 3.0}, "detections=3.0 is not an int"),
    ({**_window(1.0), "locked": 1}, "locked=1 is not a bool"),
    ({**_window(1.0), "sifted_z": -1}, "sifted_z=-1 is negative"),
    ({**_window(1.0), "t_s": float("nan")}, "t_s=None is not a number"),
    ({**_window(1.0), "qber_x": float("inf")}, "not a finite number"),
    ({**_block(0, 1.0), "status": "done"}, "status='done'"),
    ({**_block(0, 1.0), "key_bits": [0, 1, 1]}, "no field for key material"),
    ({**_block(0, 1.0), "sifted_key": 5}, "no field for key material"),
    ({**_block(0, 1.0), "extra": {"material": 1}}, "no field for key material"),
    ({**_block(0, 1.0), "digest": b"\x01\x02"}, "bytes are not allowed"),
    ({**_block(0, 1.0), "bits": np.zeros(MAX_LIST_ITEMS + 1, np.uint8)}, "list of 257 items"),
    ({**_block(0, 1.0), "reason": "x" * 5000}, "string of 5000 characters"),
    ({"type": "calibration", "when": object()}, "object is not a JSON value"),
])
def test_runlog_rejects_bad_records_and_writes_nothing(tmp_path, record, message):
    log = RunLog(tmp_path)
    log.write(RUN)
    before = (tmp_path / METRICS_FILE).read_bytes()
    with pytest.raises(RunLogError, match=message.replace("(", r"\(")):
        log.write(record)
    log.close()
    assert (tmp_path / METRICS_FILE).read_bytes() == before
    assert log.counts["run"] == 1 and sum(log.counts.values()) == 1


def test_runlog_converts_numpy_and_nan_and_keeps_ids(tmp_path):
    with RunLog(tmp_path) as log:
        log.write(RUN)
        log.write({**_window(1.0), "detections": np.int64(31000), "qber_x": np.float32("nan"),
                   "locked": np.bool_(True), "phase_rad": np.float64(0.25)})
        log.write({"type": "calibration", "delays_ps": np.array([0, 300]), "key_id": "abc",
                   "n_keys": 3})
    records = read_log(tmp_path)
    window = records["window"][0]
    assert window["detections"] == 31000 and window["qber_x"] is None
    assert window["locked"] is True and window["phase_rad"] == 0.25
    assert records["calibration"][0]["delays_ps"] == [0, 300]
    assert log.counts == {"run": 1, "calibration": 1, "sync": 0, "window": 1, "block": 0,
                          "warning": 0, "summary": 0}


def test_runlog_first_record_is_run_and_resume_appends(tmp_path):
    with RunLog(tmp_path / "r") as log, pytest.raises(RunLogError, match="first record"):
        log.write(_window(1.0))
    assert (tmp_path / "r" / METRICS_FILE).read_text() == ""
    with RunLog(tmp_path / "r") as log:
        log.write(RUN)
        log.write(_window(1.0))
    with RunLog(tmp_path / "r") as log:                    # a resumed run continues the log
        log.write(_window(2.0))
    records = read_log(tmp_path / "r")
    assert [w["t_s"] for w in records["window"]] == [1.0, 2.0]
    with open(tmp_path / "r" / METRICS_FILE, "a", encoding="utf-8") as file:
        file.write('{"type": "window", "t_')              # a crash mid-line
    with RunLog(tmp_path / "r") as resumed:
        resumed.write(_window(4.0))
    with pytest.raises(RunLogError, match="line 4: not valid JSON"):
        read_log(tmp_path / "r")
    lines = (tmp_path / "r" / METRICS_FILE).read_text().splitlines()
    assert json.loads(lines[4])["t_s"] == 4.0                # the resumed record is intact
    log.close()                                            # idempotent
    with pytest.raises(RunLogError, match="closed"):
        log.write(_window(3.0))


def test_runlog_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunLogError, match="not a folder"):
        RunLog(tmp_path / "f")


def test_histograms_round_trip_and_validation(tmp_path):
    hist = _histograms(np.random.default_rng(1))
    with RunLog(tmp_path) as log:
        log.save_histograms(**{**hist, "counts": hist["counts"].astype(np.uint32)})
        back = read_histograms(tmp_path)
        for name in ("counts", "roles", "windows", "delays_ps"):
            np.testing.assert_array_equal(back[name], hist[name])
            assert back[name].dtype == np.int64
        assert float(back["slot_period_ps"]) == pytest.approx(SLOT_PERIOD_PS)
        assert sorted(p.name for p in tmp_path.iterdir()) == [HISTOGRAMS_FILE, METRICS_FILE]
        for change, message in ((dict(windows=hist["windows"][:, :2]), "windows must be"),
                                (dict(roles=hist["roles"][:3]), "roles must be"),
                                (dict(counts=hist["counts"][0]), "2-D integer"),
                                (dict(counts=-hist["counts"]), "negative"),
                                (dict(bin_ps=0), "must be positive"),
                                (dict(slot_period_ps=float("nan")), "finite number")):
            with pytest.raises(RunLogError, match=message):
                log.save_histograms(**{**hist, **change})
    np.testing.assert_array_equal(read_histograms(tmp_path)["counts"], hist["counts"])
    assert read_histograms(tmp_path / "nowhere") is None


def test_corrupt_histogram_file_is_a_clear_error(tmp_path):
    (tmp_path / HISTOGRAMS_FILE).write_bytes(b"not a zip")
    with pytest.raises(RunLogError, match="not a readable"):
        read_histograms(tmp_path)
    np.savez(tmp_path / HISTOGRAMS_FILE, counts=np.zeros((2, 4), np.int64))
    with pytest.raises(RunLogError, match="roles is missing"):
        read_histograms(tmp_path)
