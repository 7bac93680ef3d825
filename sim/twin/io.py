"""Event files and arrival-time histograms.

File format (``.npz``, readable with ``numpy.load``): one array per field of
:data:`~tbqkd.sim.twin.engine.TRUTH_FIELDS`, all of the same length, the events of the whole
run in time order:

==================  =======  ==============================================================
``time_ps``         int64    detection time in ps from the run's start (slot 0 at t = 0)
``channel``         uint8    0 REF, 1 Z, 2 X+, 3 X- (:class:`~tbqkd.sim.twin.params.Channel`)
``slot``            int64    slot that produced the click (-1: dark count, afterpulse)
``alice_state``     int8     Alice's state of that slot: 0 e, 1 l, 2 +, 3 - (-1: none)
``peak``            int8     Z: bin 0/1; X: peak 0/1/2 (-1: not a photon)
``photons_in_pulse`` int8    1 or 2 (0: not a photon)
``is_dark``         bool     dark count
``is_afterpulse``   bool     afterpulse
``eve_knows``       bool     an eavesdropper learnt this slot's bit
==================  =======  ==============================================================

plus ``meta``: a 0-d string array holding JSON (scenario, seed, duration, chunk size, the
channel map, the slot period as a fraction, counts lost to dead time, software version).

The writer streams: each chunk is appended to per-field temporary files, which are then copied
into the zip with an ``.npy`` header, so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .engine import _DTYPES, TRUTH_FIELDS, Chunk
from .params import Channel, Scenario

#: The histograms start this long before the slot's nominal time, to show the rising edges.
_LEAD_PS = 1000.0

__all__ = ["write_events", "read_events", "plot_arrival_histograms", "arrival_phase_ps",
           "simulate_to_file"]


def write_events(path: str | Path, chunks: Iterable[Chunk], meta: dict[str, Any]) -> dict:
    """Write all ``chunks`` to ``path`` (npz, format above) and return the summary written.

    ``meta`` is stored as JSON with ``events`` and ``lost_dead_time`` added.
    """
    path = Path(path)
    lost = np.zeros(4, np.int64)
    count = 0
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        files = {name: open(Path(tmp) / name, "wb") for name in TRUTH_FIELDS}  # noqa: SIM115
        try:
            for chunk in chunks:
                for name in TRUTH_FIELDS:
                    np.ascontiguousarray(getattr(chunk, name), dtype=_DTYPES[name]).tofile(
                        files[name])
                count += len(chunk)
                lost += chunk.lost_dead_time
        finally:
            for file in files.values():
                file.close()
        summary = {**meta, "events": count, "lost_dead_time": lost.tolist(),
                   "channels": {c.name: int(c) for c in Channel}, "format": "tbqkd-twin-1"}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for name in TRUTH_FIELDS:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(_DTYPES[name])),
                          "fortran_order": False, "shape": (count,)}
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    with open(Path(tmp) / name, "rb") as source:
                        shutil.copyfileobj(source, member, 1 << 22)
            with archive.open("meta.npy", "w") as member:
                np.lib.format.write_array(member, np.array(json.dumps(summary)))
    return summary


def read_events(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_events`: ``(arrays, meta)``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in TRUTH_FIELDS}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


def arrival_phase_ps(scenario: Scenario, time_ps: np.ndarray, fibre_delay_ps: float,
                     channel_delay_ps: float = 0.0) -> np.ndarray:
    """Detection time modulo the slot period, after removing the fibre and channel delays."""
    period = scenario.period_ps_fraction()
    num, den = period.numerator, period.denominator
    relative = np.asarray(time_ps, np.int64) - round(fibre_delay_ps + channel_delay_ps)
    quotient = relative // num
    slot = quotient * den + ((relative - quotient * num) * den) // num
    whole = (slot // den) * num + ((slot % den) * num) // den
    return (relative - whole).astype(np.float64)


def plot_arrival_histograms(path: str | Path, scenario: Scenario, time_ps: np.ndarray,
                            channel: np.ndarray, fibre_delay_ps: float,
                            title: str | None = None, bin_ps: float = 50.0) -> None:
    """Draw the arrival-time histogram (time within the slot) of each detector to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    period = scenario.period_ps()
    tau = scenario.alice.time_bin_separation_ps
    bins = np.arange(-_LEAD_PS, period - _LEAD_PS + bin_ps, bin_ps)
    figure, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    labels = {Channel.Z: "Z detector (early, late bins)",
              Channel.X_PLUS: "X+ detector (constructive output)",
              Channel.X_MINUS: "X- detector (destructive output)"}
    for axis, (chan, label) in zip(axes, labels.items(), strict=True):
        mask = channel == chan
        delay = scenario.detectors.delay_ps[chan - 1]
        phase = arrival_phase_ps(scenario, time_ps[mask], fibre_delay_ps, delay)
        phase = np.where(phase >= period - _LEAD_PS, phase - period, phase)
        axis.hist(phase / 1000, bins=bins / 1000, histtype="stepfilled", alpha=0.8)
        axis.set_ylabel("clicks per bin")
        axis.set_title(f"{label}: {int(mask.sum())} clicks", fontsize=10)
        for k in range(3 if chan != Channel.Z else 2):
            axis.axvline(k * tau / 1000, color="grey", lw=0.6, ls=":")
    axes[-1].set_xlabel(f"time within the slot (ns), slot period {period / 1000:.3f} ns, "
                        f"{bin_ps:.0f} ps bins")
    figure.suptitle(title or f"{scenario.name}: arrival times per detector")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def simulate_to_file(scenario: Scenario, duration_s: float, out: str | Path, *, seed: int = 0,
                     chunk_s: float = 1.0, plot: str | Path | None = None) -> dict[str, Any]:
    """Run the twin for ``duration_s`` and write the events to ``out``; optionally plot.

    The plot uses the first two million events (collected chunk by chunk, so memory stays
    bounded however long the run).
    Returns the summary stored in the file.

    Raises
    ------
    FileNotFoundError
        If the folder of ``out`` or ``plot`` does not exist (checked before running).
    """
    from .engine import Twin

    for target in (out, plot):
        if target is not None and not Path(target).resolve().parent.is_dir():
            raise FileNotFoundError(f"no such directory: {Path(target).resolve().parent}")
    twin = Twin(scenario, seed=seed)
    histogram = _HistogramCollector(scenario, twin.budget.fibre_delay_ps) if plot else None

    def chunks() -> Iterable[Chunk]:
        for chunk in twin.chunks(duration_s, chunk_s):
            if histogram is not None:
                histogram.add(chunk)
            yield chunk

    meta = {"scenario": scenario.to_dict(), "seed": seed, "duration_s": duration_s,
            "chunk_s": chunk_s, "period_ps": str(scenario.period_ps_fraction()),
            "fibre_delay_ps": twin.budget.fibre_delay_ps}
    summary = write_events(out, chunks(), meta)
    if histogram is not None:
        histogram.plot(plot, f"{scenario.name}: {duration_s:g} s of link time at "
                             f"{scenario.channel.distance_km:g} km, seed {seed}")
    return summary


class _HistogramCollector:
    """Arrival-time samples per detector, kept up to a bounded number for the plot."""

    _LIMIT = 2_000_000

    def __init__(self, scenario: Scenario, fibre_delay_ps: float) -> None:
        self._scenario = scenario
        self._delay    = fibre_delay_ps
        self._times: list[np.ndarray] = []
        self._channels: list[np.ndarray] = []
        self._count = 0

    def add(self, chunk: Chunk) -> None:
        if self._count >= self._LIMIT:
            return
        self._times.append(chunk.time_ps)
        self._channels.append(chunk.channel)
        self._count += len(chunk)

    def plot(self, path: str | Path, title: str) -> None:
        times = np.concatenate(self._times) if self._times else np.empty(0, np.int64)
        channels = np.concatenate(self._channels) if self._channels else np.empty(0, np.uint8)
        plot_arrival_histograms(path, self._scenario, times, channels, self._delay, title)
