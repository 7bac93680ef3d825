"""The run folder: its metrics log and histograms (writer side), plots and an offline HTML report.

``tbqkd run`` writes one folder per run (the contract, described for newcomers in
``docs/REPORT.md``):

``metrics.jsonl``
    One JSON object per line, each with a ``"type"``: ``run`` (first line), ``calibration``,
    ``window`` (per-window link metrics), ``block`` (one per key block), ``warning`` and
    ``summary`` (last line). :data:`RECORD_SCHEMA` lists the keys each type must carry.
``histograms.npz``
    Per-channel arrival-phase histograms with the channels' roles, windows and delays.

:class:`RunLog` writes both; :func:`read_log` reads the log back; :func:`make_plots` draws
``plots/*.png`` and :func:`write_report` writes ``report.html``, one self-contained file (inline
CSS, PNGs as base64 data URIs, no script, no external URL) that opens offline.

**No key material in the log.** The schema has no field for key bits, and :meth:`RunLog.write`
refuses what could carry them: bytes-like values, arrays or lists longer than
:data:`MAX_LIST_ITEMS`, strings longer than :data:`MAX_STRING_CHARS`, and field names made of
``key``/``keys``/``material``/``keystream`` (``key_id``/``n_keys``-style counts and IDs excepted).
Key material lives in the key store only.

Plots use matplotlib's Agg canvas directly (:class:`~matplotlib.figure.Figure` plus
``FigureCanvasAgg``) rather than ``matplotlib.use("Agg")``: same renderer, no display needed, but
it leaves the caller's global backend alone (a notebook user keeps their inline plots), and it
never touches pyplot's global figure list. matplotlib is imported inside the functions only, so
importing this module stays cheap.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from tbqkd.hdl.records import Role

__all__ = ["RunLogError", "RunLog", "RECORD_SCHEMA", "RECORD_TYPES", "MAX_LIST_ITEMS",
           "MAX_STRING_CHARS", "METRICS_FILE", "HISTOGRAMS_FILE", "PLOTS_DIR", "REPORT_FILE",
           "read_log", "read_histograms", "make_plots", "write_report", "window_spans_ps",
           "link_stability"]

_logger = logging.getLogger(__name__)

METRICS_FILE    = "metrics.jsonl"
HISTOGRAMS_FILE = "histograms.npz"
PLOTS_DIR       = "plots"
REPORT_FILE     = "report.html"

#: Longest list (at any depth) a record may hold: enough for per-channel calibration tables,
#: far too short for a key block.
MAX_LIST_ITEMS = 256
#: Longest string a record may hold (warning messages, reasons).
MAX_STRING_CHARS = 4096

#: QBER above which no secret key can be distilled for this protocol (the red line in the plots).
QBER_LIMIT = 0.11

_INT, _NUM, _BOOL, _STR = "int", "number", "bool", "str"

#: Required keys of each record type: ``name -> (kind, nullable)``. ``calibration`` is free-form;
#: ``summary`` may carry more keys than these. Extra keys are allowed in every type (subject to
#: the key-material rules in the module docstring).
RECORD_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "run": {"started": (_STR, False), "backend": (_STR, False), "scenario": (_STR, False),
            "distance_km": (_NUM, False), "duration_s": (_NUM, False), "seed": (_INT, False),
            "feedback": (_BOOL, False), "eve": (_STR, True), "tbqkd_version": (_STR, False)},
    "calibration": {},
    "sync": {"slot_offset": (_INT, False), "nominal_slot_offset": (_INT, False),
             "sample": (_INT, False), "compared": (_INT, False), "errors": (_INT, False)},
    "window": {"t_s": (_NUM, False), "dt_s": (_NUM, False), "detections": (_INT, False),
               "sifted_z": (_INT, False), "sifted_x": (_INT, False), "x_errors": (_INT, False),
               "qber_x": (_NUM, True), "dac_code": (_INT, False), "phase_rad": (_NUM, True),
               "locked": (_BOOL, False), "secret_bits": (_INT, False)},
    "block": {"block_id": (_INT, False), "t_s": (_NUM, False), "status": (_STR, False),
              "n_bits": (_INT, False), "qber_z": (_NUM, True), "qber_x": (_NUM, True),
              "ec_efficiency": (_NUM, True), "leaked_bits": (_INT, False),
              "secret_bits": (_INT, False), "reason": (_STR, False)},
    "warning": {"t_s": (_NUM, False), "kind": (_STR, False), "message": (_STR, False)},
    "summary": {name: (_NUM, True) for name in (
        "distance_km", "duration_s", "detections_per_s", "sifted_bps", "qber_z", "qber_x",
        "skr_bps", "skr_asymptotic_bps", "ec_efficiency", "secret_bits", "aborted_blocks")},
}
RECORD_TYPES = tuple(RECORD_SCHEMA)
BLOCK_STATUSES = ("ok", "aborted", "failed")

_NON_NEGATIVE = {"detections", "sifted_z", "sifted_x", "x_errors", "n_bits", "leaked_bits",
                 "secret_bits", "dt_s", "block_id"}
_KEY_WORDS = {"key", "keys", "material", "keystream"}
_KEY_NAME_ALLOWED = re.compile(
    r"(^n_|_id$|_ids$|_count$|_counts$|_store$|_fraction$|_rate$|_identical$)")

#: Histogram arrays in ``histograms.npz``.
_HIST_ARRAYS = ("counts", "offset_ps", "bin_ps", "slot_period_ps", "roles", "windows",
                "delays_ps")
_WINDOW_NAMES = ("early", "late", "middle")


def _log(level: int, message: str, *args: object) -> None:
    _logger.log(level, message, *args)


class RunLogError(ValueError):
    """A run-folder record or file breaks the contract (the message says where and why)."""


# --- validation ------------------------------------------------------------------------------

def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def _kind_ok(kind: str, value: object) -> bool:
    if kind == _INT:
        return _is_int(value)
    if kind == _NUM:
        return _is_number(value)
    if kind == _BOOL:
        return isinstance(value, (bool, np.bool_))
    return isinstance(value, str)


def _check_schema(record: object) -> str:
    """Check a record's type and required keys; return its type."""
    if not isinstance(record, dict):
        raise RunLogError(f"a record must be a JSON object, not {type(record).__name__}")
    kind = record.get("type")
    if not isinstance(kind, str) or kind not in RECORD_SCHEMA:
        raise RunLogError(f"unknown record type {kind!r}; expected one of "
                          f"{', '.join(RECORD_TYPES)}")
    schema = RECORD_SCHEMA[kind]
    missing = [name for name in schema if name not in record]
    if missing:
        raise RunLogError(f"{kind} record is missing {', '.join(missing)}")
    for name, (want, nullable) in schema.items():
        value = record[name]
        if value is None and nullable:
            continue
        if not _kind_ok(want, value):
            raise RunLogError(f"{kind} record: {name}={value!r} is not "
                              f"{'a ' if want != _INT else 'an '}{want}"
                              f"{' or null' if nullable else ''}")
        if name in _NON_NEGATIVE and value < 0:
            raise RunLogError(f"{kind} record: {name}={value!r} is negative")
    if kind == "block" and record["status"] not in BLOCK_STATUSES:
        raise RunLogError(f"block record: status={record['status']!r} is not one of "
                          f"{', '.join(BLOCK_STATUSES)}")
    return kind


def _is_key_name(name: str) -> bool:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    return bool(words & _KEY_WORDS) and not _KEY_NAME_ALLOWED.search(name.lower())


def _to_json(value: Any, path: str) -> Any:
    """Convert a record value to plain JSON types, refusing anything that could carry key bits."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise RunLogError(f"{path}: string of {len(value)} characters (at most "
                              f"{MAX_STRING_CHARS}; the log holds no bulk data or key material)")
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if _is_int(value):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None                     # JSON has no NaN: null means "undefined"
        if math.isinf(value):
            raise RunLogError(f"{path}: {value} is not a finite number")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise RunLogError(f"{path}: bytes are not allowed in the run log (no key material)")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise RunLogError(f"{path}: array of dtype {value.dtype} is not allowed")
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_ITEMS:
            raise RunLogError(f"{path}: list of {len(value)} items (at most {MAX_LIST_ITEMS}; "
                              "the log holds no bulk data or key material)")
        return [_to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_check_name(k, path): _to_json(v, f"{path}.{k}") for k, v in value.items()}
    raise RunLogError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_name(name: object, path: str) -> str:
    if not isinstance(name, str):
        raise RunLogError(f"{path}: field names must be strings, not {name!r}")
    if _is_key_name(name):
        raise RunLogError(f"{path}.{name}: the run log has no field for key material")
    return name


# --- writer ----------------------------------------------------------------------------------

class RunLog:
    """Writer of a run folder: validated JSON lines in ``metrics.jsonl`` and ``histograms.npz``.

    Creates ``run_dir`` (and parents) and opens ``metrics.jsonl`` for appending, so a resumed
    run continues its log (after a line torn by a crash, on a new line). Each :meth:`write` is
    one whole line, flushed at once, so a crash leaves every earlier record readable. Use as a
    context manager or call :meth:`close`.

    Raises
    ------
    RunLogError
        If ``run_dir`` exists and is not a folder.
    """

    def __init__(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunLogError(f"{run_dir} exists and is not a folder")
        run_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir = run_dir
        self._path    = run_dir / METRICS_FILE
        self._file: IO[str] | None = self._path.open("a", encoding="utf-8")
        self._empty   = self._file.tell() == 0
        if not self._empty and not self._path.read_bytes().endswith(b"\n"):
            # A line torn by a crash: start on a fresh line so that only that line is bad
            # (read_log names it) and the records of the resumed run stay readable.
            self._file.write("\n")
            self._file.flush()
        self._counts: dict[str, int] = dict.fromkeys(RECORD_TYPES, 0)

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def counts(self) -> dict[str, int]:
        """Records written by this writer, per type."""
        return dict(self._counts)

    def write(self, record: dict) -> None:
        """Validate one record and append it as a line (flushed).

        NaN numbers are written as ``null`` (undefined); numpy scalars and small arrays become
        plain JSON. The first record of a new log must be the ``run`` record.

        Raises
        ------
        RunLogError
            If the type is unknown, a required key is missing or has the wrong type, a value
            cannot be JSON or could carry key material (see the module docstring), the log is
            new and the record is not ``run``, or the log is closed. Nothing is written then.
        """
        if self._file is None:
            raise RunLogError(f"{self._path}: the run log is closed")
        kind = _check_schema(record)
        line = {_check_name(name, kind): _to_json(value, f"{kind}.{name}")
                for name, value in record.items()}
        _check_schema(line)             # again: a NaN in a field that may not be null
        if self._empty and kind != "run":
            raise RunLogError(f"{self._path}: the first record must be the run record, "
                              f"not {kind}")
        self._file.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()
        self._empty = False
        self._counts[kind] += 1

    def save_histograms(self, counts: np.ndarray, *, offset_ps: int, bin_ps: int,
                        slot_period_ps: float, roles: Sequence[int] | np.ndarray,
                        windows: np.ndarray | Sequence, delays_ps: Sequence[int] | np.ndarray,
                        ) -> None:
        """Write ``histograms.npz`` (replacing it atomically: a reader never sees half a file).

        Parameters
        ----------
        counts
            ``(n_channels, bins)`` counts; bin ``k`` covers raw phases
            ``offset_ps + k·bin_ps`` onwards.
        roles
            ``(n_channels,)`` :class:`tbqkd.hdl.records.Role` values.
        windows
            ``(n_channels, 3, 2)`` start/width in ps, in window coordinates (raw phase − delay,
            modulo the slot period), for early/late/middle; width 0 = no window.
        delays_ps
            ``(n_channels,)`` phase delays.

        Raises
        ------
        RunLogError
            If shapes disagree, a count or width is negative, or ``bin_ps``/``slot_period_ps``
            is not positive.
        """
        arrays = _histogram_arrays(counts=counts, offset_ps=offset_ps, bin_ps=bin_ps,
                                   slot_period_ps=slot_period_ps, roles=roles, windows=windows,
                                   delays_ps=delays_ps)
        tmp = self._run_dir / (HISTOGRAMS_FILE + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self._run_dir / HISTOGRAMS_FILE)

    def close(self) -> None:
        """Close the log (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunLog({str(self._run_dir)!r}, open={self._file is not None})"


def _histogram_arrays(**given: Any) -> dict[str, np.ndarray]:
    """Check and normalise the histogram arrays (shared by the writer and the reader)."""
    try:
        counts  = np.asarray(given["counts"])
        roles   = np.asarray(given["roles"])
        windows = np.asarray(given["windows"])
        delays  = np.asarray(given["delays_ps"])
        scalars = {name: np.asarray(given[name]) for name in ("offset_ps", "bin_ps",
                                                             "slot_period_ps")}
    except KeyError as exc:
        raise RunLogError(f"histograms: {exc.args[0]} is missing") from None
    if counts.ndim != 2 or counts.dtype.kind not in "iu":
        raise RunLogError(f"histograms: counts must be a 2-D integer array, got shape "
                          f"{counts.shape} dtype {counts.dtype}")
    n = counts.shape[0]
    for name, array, shape in (("roles", roles, (n,)), ("windows", windows, (n, 3, 2)),
                               ("delays_ps", delays, (n,))):
        if array.shape != shape or array.dtype.kind not in "iu":
            raise RunLogError(f"histograms: {name} must be an integer array of shape {shape}, "
                              f"got {array.shape} {array.dtype}")
    for name, value in scalars.items():
        if value.shape != () or value.dtype.kind not in "iuf" or not np.isfinite(value):
            raise RunLogError(f"histograms: {name} must be one finite number, got {value!r}")
    if (counts < 0).any() or (windows[:, :, 1] < 0).any():
        raise RunLogError("histograms: negative counts or window widths")
    if scalars["bin_ps"] <= 0 or scalars["slot_period_ps"] <= 0:
        raise RunLogError("histograms: bin_ps and slot_period_ps must be positive")
    return {"counts": counts.astype(np.int64), "roles": roles.astype(np.int64),
            "windows": windows.astype(np.int64), "delays_ps": delays.astype(np.int64),
            "offset_ps": scalars["offset_ps"].astype(np.int64),
            "bin_ps": scalars["bin_ps"].astype(np.int64),
            "slot_period_ps": scalars["slot_period_ps"].astype(np.float64)}


# --- reader ----------------------------------------------------------------------------------

def read_log(run_dir: Path) -> dict[str, list[dict]]:
    """Read ``metrics.jsonl``: the records by type, in file order (every type is a key).

    Blank lines are skipped.

    Raises
    ------
    RunLogError
        If the file is missing, or naming the line (1-based) that is not JSON, not an object,
        of an unknown type or missing a required key.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise RunLogError(f"{path}: no metrics log (is {run_dir} a run folder?)")
    records: dict[str, list[dict]] = {kind: [] for kind in RECORD_TYPES}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunLogError(f"{path} line {number}: not valid JSON: {exc.msg} (column "
                                  f"{exc.colno})") from None
            try:
                kind = _check_schema(record)
            except RunLogError as exc:
                raise RunLogError(f"{path} line {number}: {exc}") from None
            records[kind].append(record)
    return records


def read_histograms(run_dir: Path) -> dict[str, np.ndarray] | None:
    """Read ``histograms.npz`` (``None`` when the run has none).

    Raises
    ------
    RunLogError
        If the file is not a valid histogram file.
    """
    path = Path(run_dir) / HISTOGRAMS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            given = {name: data[name] for name in _HIST_ARRAYS if name in data.files}
    except (OSError, ValueError) as exc:
        raise RunLogError(f"{path}: not a readable .npz file ({exc})") from None
    try:
        return _histogram_arrays(**given)
    except RunLogError as exc:
        raise RunLogError(f"{path}: {exc}") from None


# --- series ----------------------------------------------------------------------------------

def _column(records: list[dict], name: str) -> np.ndarray:
    """One field of the records as floats, ``None`` as NaN."""
    return np.array([np.nan if r.get(name) is None else float(r[name]) for r in records],
                    dtype=np.float64)


def _time_unit(t_end_s: float) -> tuple[float, str]:
    """Divisor and label for a time axis ending at ``t_end_s``."""
    if t_end_s > 3 * 3600:
        return 3600.0, "link time (h)"
    if t_end_s > 3 * 60:
        return 60.0, "link time (min)"
    return 1.0, "link time (s)"


def _spans(mask: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[tuple[float, float]]:
    """Merge the ``[start, end)`` intervals where ``mask`` holds into maximal runs."""
    spans: list[tuple[float, float]] = []
    for i in np.flatnonzero(mask):
        if spans and start[i] <= spans[-1][1] + 1e-9:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end[i]))
        else:
            spans.append((float(start[i]), float(end[i])))
    return spans


def _window_series(windows: list[dict]) -> dict[str, np.ndarray]:
    t = _column(windows, "t_s")
    dt = _column(windows, "dt_s")
    safe_dt = np.where(dt > 0, dt, np.nan)
    series = {"t_s": t, "dt_s": dt, "locked": np.array([bool(w["locked"]) for w in windows])}
    for name in ("detections", "sifted_z", "sifted_x", "x_errors", "qber_x", "dac_code",
                 "phase_rad", "secret_bits"):
        series[name] = _column(windows, name)
    for name in ("detections", "sifted_z", "sifted_x"):
        series[f"{name}_per_s"] = series[name] / safe_dt
    return series


def link_stability(windows: list[dict]) -> dict[str, float | int | None]:
    """Lock and X-error figures of a run from its window records (``None`` where undefined).

    ``time_locked_fraction`` (of the logged link time), ``unlocked_stretches`` and
    ``longest_unlocked_s`` (consecutive out-of-lock windows merged), ``qber_x_pooled`` (all X
    errors ÷ all sifted X bits) and ``phase_rms_rad`` (simulation only).
    """
    windows = sorted(windows, key=lambda w: w["t_s"])
    if not windows:
        return {"windows": 0, "time_locked_fraction": None, "unlocked_stretches": 0,
                "longest_unlocked_s": None, "qber_x_pooled": None, "phase_rms_rad": None}
    series = _window_series(windows)
    total = float(np.sum(series["dt_s"]))
    locked = float(np.sum(series["dt_s"][series["locked"]]))
    spans = _spans(~series["locked"], series["t_s"] - series["dt_s"], series["t_s"])
    sifted_x = float(np.sum(series["sifted_x"]))
    phase = series["phase_rad"][np.isfinite(series["phase_rad"])]
    return {"windows": len(windows),
            "time_locked_fraction": locked / total if total > 0 else None,
            "unlocked_stretches": len(spans),
            "longest_unlocked_s": max((b - a for a, b in spans), default=0.0),
            "qber_x_pooled": float(np.sum(series["x_errors"])) / sifted_x if sifted_x else None,
            "phase_rms_rad": float(np.sqrt(np.mean(phase ** 2))) if phase.size else None}


def _pooled_qber_x(series: dict[str, np.ndarray], points: int = 300
                   ) -> tuple[np.ndarray, np.ndarray]:
    """QBER X pooled over groups of consecutive windows (about ``points`` groups)."""
    n = series["t_s"].size
    group = max(1, int(round(n / points)))
    starts = np.arange(0, n, group)
    errors = np.add.reduceat(series["x_errors"], starts)
    sifted = np.add.reduceat(series["sifted_x"], starts)
    ends = np.minimum(starts + group, n) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return series["t_s"][ends], np.where(sifted > 0, errors / sifted, np.nan)


def _run_label(run_dir: Path, records: dict[str, list[dict]]) -> str:
    run = records["run"][0] if records["run"] else {}
    parts = [Path(run_dir).name]
    if "feedback" in run:
        parts.append(f"feedback {'on' if run['feedback'] else 'off'}")
    if run.get("eve"):
        parts.append(f"eve {run['eve']}")
    return " · ".join(parts)


# --- plots -----------------------------------------------------------------------------------

def _figure(rows: int = 1, *, height_in: float = 3.6, sharex: bool = True):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, height_in * rows), dpi=100, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, axes


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _legend_below(fig, handles: list) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
                   fontsize=8, frameon=False)


def _shade_unlocked(ax, series: dict[str, np.ndarray], scale: float) -> bool:
    spans = _spans(~series["locked"], series["t_s"] - series["dt_s"], series["t_s"])
    # At least 1/300 of the run wide, so that a short loss of lock in a long run stays visible.
    visible = (np.nanmax(series["t_s"]) - np.nanmin(series["t_s"] - series["dt_s"])) / 300
    for i, (a, b) in enumerate(spans):
        pad = max(0.0, (visible - (b - a)) / 2)
        ax.axvspan((a - pad) / scale, (b + pad) / scale, color="tab:red", alpha=0.15, lw=0,
                   label="out of lock" if i == 0 else None)
    return bool(spans)


def window_spans_ps(start_ps: int, width_ps: int, delay_ps: int,
                    slot_period_ps: float) -> list[tuple[float, float]]:
    """Where a window lies on the histogram's raw-phase axis: ``[a, b)`` spans in ``[0, P)``.

    Window coordinates are ``raw − delay`` modulo the slot period ``P``, so the window starts at
    raw phase ``(start + delay) mod P``; one crossing the slot end comes back at phase 0 (two
    spans). Width 0 gives no span; a width of ``P`` or more covers the whole slot.
    """
    period = float(slot_period_ps)
    if width_ps <= 0:
        return []
    if width_ps >= period:
        return [(0.0, period)]
    a = (start_ps + delay_ps) % period
    b = a + width_ps
    return [(a, b)] if b <= period else [(a, period), (0.0, b - period)]


def _plot_histograms(hist: dict[str, np.ndarray], path: Path) -> Path:
    from matplotlib.transforms import blended_transform_factory

    counts, roles = hist["counts"], hist["roles"]
    shown = [ch for ch in range(counts.shape[0]) if roles[ch] != Role.OFF or counts[ch].any()]
    if not shown:
        shown = list(range(counts.shape[0]))
    fig, axes = _figure(len(shown), height_in=2.4)
    offset, bin_ps = int(hist["offset_ps"]), int(hist["bin_ps"])
    period = float(hist["slot_period_ps"])
    edges_ps = offset + bin_ps * np.arange(counts.shape[1] + 1)
    # Raw phases lie in [0, period): bins beyond the slot stay empty and are not drawn.
    lo, hi = edges_ps[0] / 1e3, min(edges_ps[-1], period) / 1e3
    colours = {"early": "tab:blue", "late": "tab:orange", "middle": "tab:green"}
    for ax, ch in zip(axes, shown, strict=True):
        ax.stairs(counts[ch], edges_ps / 1e3, fill=True, color="0.35", alpha=0.8)
        try:
            role = Role(int(roles[ch])).name
        except ValueError:
            role = f"role {int(roles[ch])}"
        delay = int(hist["delays_ps"][ch])
        ax.set_title(f"channel {ch} · {role} · {int(counts[ch].sum()):,} events · "
                     f"delay {delay} ps", loc="left", fontsize=9)
        ax.set_ylabel("events / bin")
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        for w, name in enumerate(_WINDOW_NAMES):
            start, width = (int(v) for v in hist["windows"][ch, w])
            if width <= 0:
                continue
            spans = [(max(a / 1e3, lo), min(b / 1e3, hi))
                     for a, b in window_spans_ps(start, width, delay, period)]
            spans = [(a, b) for a, b in spans if b > a]
            for a, b in spans:
                ax.axvspan(a, b, color=colours[name], alpha=0.25, lw=0)
            if spans:
                a, b = max(spans, key=lambda span: span[1] - span[0])
                ax.text((a + b) / 2, 0.97, name, transform=trans, ha="center", va="top",
                        fontsize=8, color=colours[name])
        ax.set_xlim(lo, hi)
    axes[-1].set_xlabel("arrival phase within the slot (ns, before the channel delay)")
    fig.suptitle("Arrival-time histograms with the windows", fontsize=11)
    return _save(fig, path)


def _plot_qber(series: dict[str, np.ndarray], blocks: list[dict], path: Path) -> Path:
    fig, (ax,) = _figure()
    scale, label = _time_unit(float(np.nanmax(series["t_s"])))
    _shade_unlocked(ax, series, scale)
    many = series["t_s"].size > 300
    ax.plot(series["t_s"] / scale, 100 * series["qber_x"], color="tab:purple", lw=1,
            alpha=0.3 if many else 1.0, label="QBER X per window")
    if many:                                  # a long run: per-window noise becomes a band
        t_pooled, pooled = _pooled_qber_x(series)
        group = int(round(series["t_s"].size / t_pooled.size))
        ax.plot(t_pooled / scale, 100 * pooled, color="indigo", lw=1.2,
                label=f"QBER X pooled over {group} windows")
    for status, marker, colour in (("ok", "o", "tab:blue"), ("aborted", "x", "tab:red"),
                                   ("failed", "x", "k")):
        chosen = [b for b in blocks if b["status"] == status]
        if not chosen:
            continue
        t, qber_z = _column(chosen, "t_s") / scale, _column(chosen, "qber_z")
        if np.isfinite(qber_z).any():
            ax.plot(t, 100 * qber_z, marker, color=colour, ms=4, ls="none",
                    label=f"QBER Z per block ({status})")
        if status == "ok":
            ax.plot(t, 100 * _column(chosen, "qber_x"), "s", mfc="none", color="tab:purple",
                    ms=4, ls="none", label="QBER X per block (ok)")
    ax.axhline(100 * QBER_LIMIT, color="tab:red", ls="--", lw=1,
               label=f"{100 * QBER_LIMIT:.0f} % limit")
    ax.set_xlabel(label)
    ax.set_ylabel("QBER (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax.get_legend_handles_labels()[0])
    ax.set_title("Quantum bit error rates", loc="left")
    return _save(fig, path)


def _plot_key(series: dict[str, np.ndarray], blocks: list[dict], summary: dict | None,
              path: Path) -> Path:
    fig, (ax_bits, ax_rate) = _figure(2, height_in=2.8)
    t = series["t_s"]
    scale, label = _time_unit(float(np.nanmax(t)))
    ax_bits.step(t / scale, series["secret_bits"], where="post", color="tab:green")
    ax_bits.set_ylabel("secret bits (cumulative)")
    ax_bits.grid(alpha=0.3)
    ax_bits.set_title("Secret key", loc="left")
    # since the first window's start: link time before it was bring-up, not key exchange
    start = float(t[0] - series["dt_s"][0]) if t.size and "dt_s" in series else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rate = np.where(t > start, series["secret_bits"] / (t - start), np.nan)
    ax_rate.plot(t / scale, mean_rate, color="tab:green", label="mean since start")
    ok = sorted((b for b in blocks if b["status"] == "ok"), key=lambda b: b["t_s"])
    if ok:
        tb = _column(ok, "t_s")
        previous = np.concatenate(([0.0], tb[:-1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(tb > previous, _column(ok, "secret_bits") / (tb - previous), np.nan)
        ax_rate.plot(tb / scale, rate, "o", ms=3, color="tab:olive",
                     label="per block (bits ÷ time since the previous block)")
    if summary and summary.get("skr_bps") is not None:
        ax_rate.axhline(summary["skr_bps"], color="k", ls="--", lw=1,
                        label=f"summary: {summary['skr_bps']:.3g} bit/s")
    ax_rate.set_ylabel("key rate (bit/s)")
    ax_rate.set_xlabel(label)
    ax_rate.set_ylim(bottom=0)
    ax_rate.grid(alpha=0.3)
    _legend_below(fig, ax_rate.get_legend_handles_labels()[0])
    return _save(fig, path)


def _plot_phase(series: dict[str, np.ndarray], path: Path) -> Path:
    fig, (ax,) = _figure()
    t = series["t_s"]
    scale, label = _time_unit(float(np.nanmax(t)))
    unlocked = _shade_unlocked(ax, series, scale)
    handles = []
    if np.isfinite(series["phase_rad"]).any():
        handles += ax.plot(t / scale, series["phase_rad"], color="tab:blue", lw=1,
                           label="residual phase (simulation truth)")
        ax.set_ylabel("residual interferometer phase (rad)")
    else:
        ax.text(0.01, 0.95, "phase not known (hardware run): DAC code only",
                transform=ax.transAxes, fontsize=8, va="top")
        ax.set_yticks([])
    ax_dac = ax.twinx()
    handles += ax_dac.step(t / scale, series["dac_code"], where="post", color="tab:orange",
                           lw=1, label="DAC code")
    ax_dac.set_ylabel("phase-shifter DAC code")
    if unlocked:
        from matplotlib.patches import Patch

        handles.append(Patch(color="tab:red", alpha=0.15, label="out of lock"))
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
    _legend_below(fig, handles)
    ax.set_title("Interferometer phase and actuator", loc="left")
    return _save(fig, path)


def _plot_rates(series: dict[str, np.ndarray], path: Path) -> Path:
    fig, (ax,) = _figure()
    t = series["t_s"]
    scale, label = _time_unit(float(np.nanmax(t)))
    for name, text, colour in (("detections_per_s", "detections", "0.3"),
                               ("sifted_z_per_s", "sifted Z", "tab:blue"),
                               ("sifted_x_per_s", "sifted X", "tab:purple")):
        values = np.where(series[name] > 0, series[name], np.nan)   # log axis: zero = gap
        ax.plot(t / scale, values, color=colour, lw=1, label=f"{text} (1/s)")
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("events per second")
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, ax.get_legend_handles_labels()[0])
    ax.set_title("Detection and sifted rates", loc="left")
    return _save(fig, path)


def _plot_compare(runs: list[tuple[Path, dict[str, list[dict]]]], path: Path) -> Path:
    fig, (ax_q, ax_p) = _figure(2, height_in=2.8)
    t_end = max((w["t_s"] for _, rec in runs for w in rec["window"]), default=1.0)
    scale, label = _time_unit(float(t_end))
    any_phase = False
    for run_dir, records in runs:
        windows = sorted(records["window"], key=lambda w: w["t_s"])
        if not windows:
            continue
        series = _window_series(windows)
        t, qber = _pooled_qber_x(series)
        (line,) = ax_q.plot(t / scale, 100 * qber, lw=1, label=_run_label(run_dir, records))
        if np.isfinite(series["phase_rad"]).any():
            any_phase = True
            ax_p.plot(series["t_s"] / scale, series["phase_rad"], lw=1, color=line.get_color())
    ax_q.axhline(100 * QBER_LIMIT, color="tab:red", ls="--", lw=1,
                 label=f"{100 * QBER_LIMIT:.0f} % limit")
    ax_q.set_ylabel("QBER X (%)")
    ax_q.set_ylim(bottom=0)
    ax_q.grid(alpha=0.3)
    ax_q.set_title("Runs compared", loc="left")
    if any_phase:
        ax_p.set_ylabel("residual phase (rad)")
    else:
        ax_p.text(0.01, 0.9, "phase not known (hardware runs)", transform=ax_p.transAxes,
                  fontsize=8)
    ax_p.grid(alpha=0.3)
    ax_p.set_xlabel(label)
    _legend_below(fig, ax_q.get_legend_handles_labels()[0])
    return _save(fig, path)


#: Plot files, their titles and captions, in report order.
_PLOTS = {
    "histograms.png": ("Arrival-time histograms",
                       "Each channel's detector events per arrival-phase bin within Alice's "
                       "pulse slot, with the early (blue), late (orange) and middle (green) "
                       "windows shaded where the classifier looks for them."),
    "qber.png": ("QBER against time",
                 "Error rates: per-window X-basis QBER (line), per-block Z- and X-basis QBER "
                 "(points; aborted blocks as crosses). Above the dashed 11 % line no key can be "
                 "distilled. Red shading: out of lock."),
    "key.png": ("Secret key against time",
                "Top: cumulative net secret bits. Bottom: key rate, as the mean since the start "
                "and per block."),
    "phase.png": ("Phase and DAC code against time",
                  "The interferometer's residual phase (simulation only) and the DAC code the "
                  "feedback loop drives. Red shading: out of lock."),
    "rates.png": ("Detection and sifted rates against time",
                  "Detector events, and sifted Z and X bits, per second of link time "
                  "(log scale)."),
    "compare.png": ("Runs compared",
                    "QBER X pooled over groups of windows, and the residual phase, of this run "
                    "and the runs it is compared with."),
}


def make_plots(run_dir: Path, *, compare: Sequence[Path] = ()) -> list[Path]:
    """Draw the run's plots into ``run_dir/plots/``; return the files written.

    Plots whose data is absent are skipped: no histograms without ``histograms.npz``, no time
    plots without window records. Files from an earlier call are replaced. With ``compare``
    (other run folders, e.g. the same run with ``--no-feedback``), ``compare.png`` overlays
    every run's QBER X and phase against time.

    Raises
    ------
    RunLogError
        If the metrics log or the histogram file breaks the contract.
    """
    run_dir = Path(run_dir)
    records = read_log(run_dir)
    hist = read_histograms(run_dir)
    plots = run_dir / PLOTS_DIR
    written: list[Path] = []
    if hist is not None:
        written.append(_plot_histograms(hist, plots / "histograms.png"))
    windows = sorted(records["window"], key=lambda w: w["t_s"])
    if windows:
        series = _window_series(windows)
        blocks = records["block"]
        summary = records["summary"][-1] if records["summary"] else None
        written.append(_plot_qber(series, blocks, plots / "qber.png"))
        written.append(_plot_key(series, blocks, summary, plots / "key.png"))
        written.append(_plot_phase(series, plots / "phase.png"))
        written.append(_plot_rates(series, plots / "rates.png"))
    if compare:
        runs = [(Path(run_dir), records)] + [(Path(d), read_log(d)) for d in compare]
        written.append(_plot_compare(runs, plots / "compare.png"))
    _log(logging.DEBUG, "%s: %d plots", run_dir, len(written))
    return written


# --- report ----------------------------------------------------------------------------------

#: Summary quantities: key -> (label, unit, scale for display, one-line meaning).
SUMMARY_FIELDS: dict[str, tuple[str, str, float, str]] = {
    "distance_km": ("Distance", "km", 1.0, "fibre length between Alice and Bob"),
    "duration_s": ("Duration", "s", 1.0, "link time covered by the run"),
    "detections_per_s": ("Detections", "1/s", 1.0,
                         "detector events per second at Bob"),
    "sifted_bps": ("Sifted rate", "bit/s", 1.0,
                   "bits kept by sifting (Bob's detection in a basis Alice confirms) per second"),
    "qber_z": ("QBER Z", "%", 100.0,
               "error rate of the key (Z, early/late) basis, from error correction"),
    "qber_x": ("QBER X", "%", 100.0,
               "error rate of the X (interference) basis: bounds what an eavesdropper knows"),
    "skr_bps": ("Secure key rate", "bit/s", 1.0,
                "net secret bits per second with finite-size statistics (the honest figure)"),
    "skr_asymptotic_bps": ("Asymptotic key rate", "bit/s", 1.0,
                           "the same for infinitely long blocks: an upper bound"),
    "ec_efficiency": ("EC efficiency", "f", 1.0,
                      "bits revealed by error correction ÷ the Shannon minimum (1 is perfect)"),
    "secret_bits": ("Secret bits", "bit", 1.0, "net secret key bits stored by the run"),
    "aborted_blocks": ("Aborted blocks", "", 1.0,
                       "blocks discarded (QBER too high, correction or verification failed)"),
}

_RUN_FIELDS = (("started", "Started"), ("backend", "Backend"), ("scenario", "Scenario"),
               ("distance_km", "Distance (km)"), ("duration_s", "Duration (s)"),
               ("seed", "Seed"), ("feedback", "Phase feedback"), ("eve", "Eavesdropper"),
               ("tbqkd_version", "tbqkd version"))

_BLOCK_COLUMNS = (("block_id", "block", 1.0), ("t_s", "t (s)", 1.0), ("status", "status", 1.0),
                  ("n_bits", "bits", 1.0), ("qber_z", "QBER Z (%)", 100.0),
                  ("qber_x", "QBER X (%)", 100.0), ("ec_efficiency", "EC f", 1.0),
                  ("leaked_bits", "leaked bits", 1.0), ("secret_bits", "secret bits", 1.0),
                  ("reason", "reason", 1.0))
#: Longest blocks table: beyond this, the first and last halves are shown.
MAX_BLOCK_ROWS = 2000

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;
 color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;
 margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.aborted td,tr.failed td{background:#fde8e8}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.note{color:#a33}.muted{color:#777}
"""


def _fmt(value: Any, scale: float = 1.0) -> str:
    """A value for a table cell (``—`` for null)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and scale == 1.0:
        return f"{value:,}"
    if isinstance(value, (int, float)):
        v = value * scale
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.3e}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _cell(value: Any, scale: float = 1.0) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td{" class=num" if numeric else ""}>{html.escape(_fmt(value, scale))}</td>'


def _table(header: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _partial_summary(windows: list[dict], blocks: list[dict]) -> dict[str, Any]:
    """Summary figures computed from the windows and blocks of a run without a summary."""
    dt = sum(w["dt_s"] for w in windows)
    sifted_x = sum(w["sifted_x"] for w in windows)
    ok = [b for b in blocks if b["status"] == "ok" and b["qber_z"] is not None]
    bits = sum(b["n_bits"] for b in ok)
    last_t = max((w["t_s"] for w in windows), default=None)
    return {
        "duration_s": last_t,
        "detections_per_s": sum(w["detections"] for w in windows) / dt if dt else None,
        "sifted_bps": sum(w["sifted_z"] + w["sifted_x"] for w in windows) / dt if dt else None,
        "qber_z": sum(b["qber_z"] * b["n_bits"] for b in ok) / bits if bits else None,
        "qber_x": sum(w["x_errors"] for w in windows) / sifted_x if sifted_x else None,
        "secret_bits": windows[-1]["secret_bits"] if windows else None,
        "skr_bps": windows[-1]["secret_bits"] / last_t if windows and last_t else None,
        "aborted_blocks": sum(b["status"] != "ok" for b in blocks),
    }


def _summary_section(records: dict[str, list[dict]]) -> str:
    run = records["run"][0] if records["run"] else {}
    if records["summary"]:
        summary, note = records["summary"][-1], ""
    else:
        windows = sorted(records["window"], key=lambda w: w["t_s"])
        summary = _partial_summary(windows, records["block"])
        if run.get("distance_km") is not None:
            summary["distance_km"] = run["distance_km"]
        note = ('<p class=note>No summary record: the run did not finish. The figures below '
                "are computed from the windows and blocks logged so far (key rate = secret "
                "bits ÷ link time).</p>")
    rows = []
    for key, (label, unit, scale, meaning) in SUMMARY_FIELDS.items():
        rows.append(f"<tr><th>{html.escape(label)}</th>{_cell(summary.get(key), scale)}"
                    f"<td>{html.escape(unit)}</td><td>{html.escape(meaning)}</td></tr>")
    for key, value in summary.items():
        if key not in SUMMARY_FIELDS and key != "type":
            rows.append(f"<tr><th>{html.escape(key)}</th>{_cell(value)}<td></td>"
                        "<td class=muted>(extra figure reported by the run)</td></tr>")
    return ("<h2>Summary</h2>" + note
            + _table(("quantity", "value", "unit", "meaning"), rows))


def _stability_section(windows: list[dict]) -> str:
    if not windows:
        return ""
    stats = link_stability(windows)
    rows = [
        ("Windows logged", stats["windows"], 1.0, "", "metric windows in the log"),
        ("Time in lock", stats["time_locked_fraction"], 100.0, "%",
         "share of the logged link time whose windows report the link locked"),
        ("Out-of-lock stretches", stats["unlocked_stretches"], 1.0, "",
         "separate periods out of lock"),
        ("Longest out-of-lock stretch", stats["longest_unlocked_s"], 1.0, "s",
         "should stay within one integration window of the phase feedback"),
        ("QBER X, pooled", stats["qber_x_pooled"], 100.0, "%",
         "all X errors ÷ all sifted X bits of the windows: the feedback's figure of merit"),
        ("Residual phase, RMS", stats["phase_rms_rad"], 1.0, "rad",
         "root mean square of the true interferometer phase error (simulation only)"),
    ]
    body = [f"<tr><th>{html.escape(label)}</th>{_cell(value, scale)}<td>{html.escape(unit)}"
            f"</td><td>{html.escape(meaning)}</td></tr>"
            for label, value, scale, unit, meaning in rows]
    return ("<h2>Link stability (from the windows)</h2>"
            + _table(("quantity", "value", "unit", "meaning"), body))


def _comparison_section(runs: list[tuple[Path, dict[str, list[dict]]]],
                        plot_paths: list[Path]) -> str:
    if len(runs) < 2:
        return ""
    rows = []
    for i, (run_dir, records) in enumerate(runs):
        stats = link_stability(records["window"])
        summary = records["summary"][-1] if records["summary"] else {}
        secret = summary.get("secret_bits")
        if secret is None and records["window"]:
            secret = max(records["window"], key=lambda w: w["t_s"])["secret_bits"]
        name = _run_label(run_dir, records) + (" (this run)" if i == 0 else "")
        rows.append(f"<tr><th>{html.escape(name)}</th>"
                    f"{_cell(stats['qber_x_pooled'], 100.0)}"
                    f"{_cell(stats['time_locked_fraction'], 100.0)}"
                    f"{_cell(stats['longest_unlocked_s'])}{_cell(stats['phase_rms_rad'])}"
                    f"{_cell(secret)}{_cell(summary.get('skr_bps'))}</tr>")
    table = _table(("run", "QBER X pooled (%)", "time in lock (%)",
                    "longest out of lock (s)", "phase RMS (rad)", "secret bits",
                    "key rate (bit/s)"), rows)
    return "<h2>Comparison</h2>" + table + _plots_section(plot_paths, heading="")


def _run_section(records: dict[str, list[dict]]) -> str:
    if not records["run"]:
        return "<p class=note>No run record: the run's settings are unknown.</p>"
    run = records["run"][0]
    rows = [f"<tr><th>{html.escape(label)}</th>{_cell(run.get(key))}</tr>"
            for key, label in _RUN_FIELDS]
    rows += [f"<tr><th>{html.escape(key)}</th>{_cell(value)}</tr>"
             for key, value in run.items() if key != "type" and key not in dict(_RUN_FIELDS)]
    if len(records["run"]) > 1:
        rows.append(f"<tr><th>resumed</th><td>{len(records['run']) - 1} time(s)</td></tr>")
    return "<h2>Run</h2>" + _table(("setting", "value"), rows)


def _calibration_section(records: dict[str, list[dict]]) -> str:
    if not records["calibration"]:
        return ""
    parts = ["<h2>Calibration</h2>"]
    for i, cal in enumerate(records["calibration"]):
        if len(records["calibration"]) > 1:
            parts.append(f"<h3>Calibration {i + 1}</h3>")
        rows = [f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>"
                for k, v in cal.items() if k != "type"]
        parts.append(_table(("parameter", "value"), rows))
    return "".join(parts)


def _plots_section(plot_paths: list[Path], *, heading: str = "<h2>Plots</h2>") -> str:
    if not plot_paths:
        return heading + "<p class=muted>No data to plot yet.</p>"
    parts = [heading]
    for path in plot_paths:
        title, caption = _PLOTS.get(path.name, (path.stem, ""))
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(title)}" '
                     f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(title)}'
                     f"</b>. {html.escape(caption)}</figcaption></figure>")
    if heading and not any(p.name == "histograms.png" for p in plot_paths):
        parts.append("<p class=muted>No histograms were saved for this run.</p>")
    return "".join(parts)


def _blocks_section(blocks: list[dict]) -> str:
    if not blocks:
        return "<h2>Blocks</h2><p class=muted>No key block finished yet.</p>"
    counts = {s: sum(b["status"] == s for b in blocks) for s in BLOCK_STATUSES}
    shown = blocks
    omitted = ""
    if len(blocks) > MAX_BLOCK_ROWS:
        half = MAX_BLOCK_ROWS // 2
        shown = blocks[:half] + blocks[-half:]
        omitted = (f"<p class=muted>{len(blocks) - MAX_BLOCK_ROWS:,} blocks in the middle are "
                   "not shown; all are in metrics.jsonl.</p>")
    rows = []
    for b in shown:
        cells = "".join(_cell(b.get(key), scale) for key, _, scale in _BLOCK_COLUMNS)
        rows.append(f"<tr class={html.escape(b['status'])}>{cells}</tr>")
    tally = ", ".join(f"{n:,} {s}" for s, n in counts.items())
    return (f"<h2>Blocks</h2><p>{len(blocks):,} blocks: {tally}.</p>" + omitted
            + _table([label for _, label, _ in _BLOCK_COLUMNS], rows))


def _warnings_section(warnings: list[dict]) -> str:
    if not warnings:
        return "<h2>Warnings</h2><p class=muted>None.</p>"
    kinds: dict[str, int] = {}
    for w in warnings:
        kinds[w["kind"]] = kinds.get(w["kind"], 0) + 1
    tally = ", ".join(f"{n:,} × {html.escape(k)}" for k, n in kinds.items())
    rows = [f"<tr>{_cell(w['t_s'])}{_cell(w['kind'])}{_cell(w['message'])}</tr>"
            for w in warnings]
    return (f"<h2>Warnings</h2><p>{tally}.</p>"
            + _table(("t (s)", "kind", "message"), rows))


def write_report(run_dir: Path, *, compare: Sequence[Path] = ()) -> Path:
    """Write ``run_dir/report.html``: one self-contained page that opens offline.

    Draws the plots (:func:`make_plots`) and embeds them as base64 PNGs; inline CSS, no script,
    no external reference. Sections: summary table (values, units, one-line meanings), link
    stability, run settings, plots, calibration, blocks, warnings, and, with ``compare``
    (other run folders, e.g. the same run without feedback), a comparison table and plot.
    Missing optional parts (histograms, blocks, phase on hardware, the summary of an
    unfinished run) are stated, not fatal.

    Raises
    ------
    RunLogError
        If a metrics log is missing or breaks the contract.
    """
    run_dir = Path(run_dir)
    records = read_log(run_dir)
    compared = [(Path(d), read_log(d)) for d in compare]
    plot_paths = make_plots(run_dir, compare=compare)
    compare_png = [p for p in plot_paths if p.name == "compare.png"]
    plot_paths = [p for p in plot_paths if p.name != "compare.png"]
    run = records["run"][0] if records["run"] else {}
    title = f"tbqkd run · {run.get('scenario', run_dir.name)}"
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "".join((
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=muted>Run folder {html.escape(str(run_dir))} · report generated {generated}"
        "</p>",
        _summary_section(records), _stability_section(records["window"]),
        _comparison_section([(run_dir, records)] + compared, compare_png),
        _run_section(records), _plots_section(plot_paths),
        _calibration_section(records), _blocks_section(records["block"]),
        _warnings_section(records["warning"]),
    ))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")
    path = run_dir / REPORT_FILE
    tmp = run_dir / (REPORT_FILE + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
