"""The Verilator backend of :class:`tbqkd.host.device.Device`: the compiled core in-process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tbqkd.hdl.config import TaggerConfig, tagger_regmap
from tbqkd.host.device import Device, DeviceError

from .frontend import SampleWords
from .verilator import ModelError, RunResult, VerilatorModel, build_model

__all__ = ["VerilatorDevice", "open_verilator_device"]


class VerilatorDevice(Device):
    """A receiver core simulated by Verilator, fed sample words by :meth:`feed`.

    Tags the core emits accumulate until :meth:`read_stream` takes them, like a DMA buffer.
    """

    def __init__(self, model: VerilatorModel, config: TaggerConfig) -> None:
        super().__init__(tagger_regmap(config))
        self.config = config
        self.model = model
        self._stream = bytearray()
        self.frames = 0
        self.model_seconds = 0.0       # wall time spent inside the compiled model

    def read32(self, offset: int) -> int:
        try:
            return self.model.read32(offset)
        except ModelError as exc:
            raise DeviceError(str(exc)) from None

    def write32(self, offset: int, value: int) -> None:
        try:
            self.model.write32(offset, value)
        except ModelError as exc:
            raise DeviceError(str(exc)) from None

    def read_stream(self, max_bytes: int | None = None) -> bytes:
        size = len(self._stream) if max_bytes is None else min(max_bytes, len(self._stream))
        size -= size % 16
        data = bytes(self._stream[:size])
        del self._stream[:size]
        return data

    def feed(self, words: SampleWords | None, cycles: int, *, ready_percent: int = 100,
             seed: int = 0, drain: bool = False) -> RunResult:
        """Clock the core for ``cycles`` cycles driving ``words``; collect its tags.

        ``drain``: then keep clocking until the core has been quiet for longer than its flush
        time-out, so every tag has left. Sample words must not be scheduled before the cycle
        the core is at (a register access also advances the clock).
        """
        result = self._run(cycles, words, ready_percent, seed, 0)
        if drain:   # register access advances the clock: only once the words are all in
            idle = self.read("FLUSH_CYCLES") + 64
            tail = self._run(2 * idle, None, ready_percent, seed, idle)
            result = RunResult(result.cycles + tail.cycles, result.words_used, 0,
                               np.concatenate([result.tdata, tail.tdata]),
                               np.concatenate([result.tlast, tail.tlast]))
        return result

    def _run(self, cycles, words, ready_percent, seed, idle_limit) -> RunResult:
        tic = time.perf_counter()
        result = self.model.run(cycles, words, ready_percent=ready_percent, seed=seed,
                                idle_limit=idle_limit)
        self.model_seconds += time.perf_counter() - tic
        if result.words_skipped:
            raise DeviceError(f"{result.words_skipped} sample words were scheduled for cycles "
                              "that had already passed")
        self._stream += result.tag_bytes
        self.frames += int(result.tlast.sum())
        return result

    def feed_events(self, frontend, time_ps: np.ndarray, channel: np.ndarray, *,
                    chunk: int = 20_000, ready_percent: int = 100, seed: int = 0,
                    drain: bool = True) -> int:
        """Tag clicks at ``time_ps`` on ``channel`` through the front-end model, in chunks.

        The sample words of hours of clicks would not fit in memory, so they are made one chunk
        of clicks at a time; words of a chunk that reach into the next one (pulses longer than
        the gap) are merged with it. Returns the number of cycles run.
        """
        order = np.argsort(time_ps, kind="stable")
        t, ch = np.asarray(time_ps)[order], np.asarray(channel)[order]
        cycles = 0
        pending = frontend.words(t[:chunk], ch[:chunk]) if len(t) else None
        for start in range(chunk, len(t) + chunk, chunk):
            following = frontend.words(t[start:start + chunk], ch[start:start + chunk]) \
                if start < len(t) else None
            if following is not None and len(following):
                now, carry = pending.split(int(following.cycle[0]))
                pending = carry.concat(following)
                end = int(following.cycle[0])
            else:
                now, pending = pending, None
                end = int(now.cycle[-1]) + 1 if len(now) else self.model.cycle
            cycles += self.feed(now, max(0, end - self.model.cycle), ready_percent=ready_percent,
                                seed=seed, drain=drain and pending is None).cycles
            if pending is None:
                break
        return cycles

    def close(self) -> None:
        self.model.close()


def open_verilator_device(config: TaggerConfig | None = None, *, vcd_path: str | None = None,
                          build_dir: Path | None = None) -> VerilatorDevice:
    """Generate, build (cached) and load the core for ``config``; reset it and check its ID."""
    from tbqkd.hdl.build import verilog_for  # gateware tools are needed only to build

    config = config or TaggerConfig()
    verilog = verilog_for(config)
    library = build_model(verilog, config.n_channels, config.word_width,
                          trace=bool(vcd_path), build_dir=build_dir)
    device = VerilatorDevice(VerilatorModel(library, vcd_path=vcd_path), config)
    device.model.reset()
    device.check_identity()
    return device
