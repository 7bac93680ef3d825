"""The Verilator backend of :class:`tbqkd.host.device.Device`: the compiled core in-process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.records import STREAMS
from tbqkd.hdl.registers import core_regmap
from tbqkd.host.device import Device, DeviceError

from .frontend import SampleWords
from .verilator import ModelError, RunResult, VerilatorModel, build_model

__all__ = ["VerilatorDevice", "open_verilator_device", "take_records", "check_answers"]

_RECORD_BYTES = {p.prefix: p.record.nbytes for p in STREAMS}


def take_records(buffers: dict[str, bytearray], stream: str, max_bytes: int | None) -> bytes:
    """Take whole records (at most ``max_bytes``) from the front of output ``stream``'s buffer,
    as a DMA would: what a simulated core emitted, for :meth:`Device.read_stream`.

    Raises
    ------
    DeviceError
        If the core has no output stream of that name.
    """
    try:
        buffer, record = buffers[stream], _RECORD_BYTES[stream]
    except KeyError:
        raise DeviceError(f"no output stream {stream!r}") from None
    size = len(buffer) if max_bytes is None else min(max_bytes, len(buffer))
    size -= size % record
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def check_answers(data: bytes, stream: str) -> None:
    """Check bytes for the core's input stream (Alice's answers): whole records only.

    Raises
    ------
    DeviceError
        If ``stream`` is not the input stream or ``data`` is not whole records.
    """
    if stream != "s_axis_answer":
        raise DeviceError(f"no input stream {stream!r}")
    if len(data) % _RECORD_BYTES[stream]:
        raise DeviceError(f"{len(data)} bytes is not a whole number of "
                          f"{_RECORD_BYTES[stream]}-byte records")


class VerilatorDevice(Device):
    """A receiver core simulated by Verilator, fed sample words by :meth:`feed`.

    What the core emits on each output stream accumulates until :meth:`read_stream` takes it,
    like a DMA buffer; records queued with :meth:`write_stream` are offered on its input stream
    during the following runs.
    """

    def __init__(self, model: VerilatorModel, config: TaggerConfig) -> None:
        super().__init__(core_regmap(config))
        self.config = config
        self.model = model
        self._streams = {p.prefix: bytearray() for p in STREAMS if p.direction == "out"}
        self._record_bytes = {p.prefix: p.record.nbytes for p in STREAMS}
        self._answers = bytearray()
        self.frames = 0
        self.model_seconds = 0.0       # wall time spent inside the compiled model
        self.cycles_clocked = 0
        self.skips = 0
        self.skip_min = 0              # > 0: skip idle spans of at least this many cycles
        # feed_events drives only the words that hold a hit (delay-line front end: _hit_words);
        # the newest word fed on each channel, and its newest sample, for the next chunk
        self.hits_only = config.frontend == "delay_line"
        self.words_dropped = 0
        self._last_cycle = np.full(config.n_channels, -2, np.int64)
        self._last_high = np.zeros(config.n_channels, bool)

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

    def read_stream(self, max_bytes: int | None = None, *, stream: str = "m_axis") -> bytes:
        return take_records(self._streams, stream, max_bytes)

    def write_stream(self, data: bytes, *, stream: str = "s_axis_answer") -> None:
        check_answers(data, stream)
        self._answers += data

    @property
    def cycle(self) -> int:
        """The core's clock cycle count since reset (its time base is ``cycle × period``)."""
        return self.model.cycle

    @property
    def answers_pending(self) -> int:
        return len(self._answers) // self._record_bytes["s_axis_answer"]

    def dac(self) -> tuple[int, int, int]:
        """The last frame on the DAC's SPI pins: ``(word, bits, frames so far)``."""
        return self.model.dac()

    def feed(self, words: SampleWords | None, cycles: int, *, ready_percent: int = 100,
             seed: int = 0, drain: bool = False) -> RunResult:
        """Advance the core by ``cycles`` cycles driving ``words``; collect what it emits.

        ``drain``: then keep clocking until the core has been quiet for longer than its flush
        time-out, so every record has left. Sample words must not be scheduled before the cycle
        the core is at (a register access also advances the clock).
        """
        result = self._run(cycles, words, ready_percent, seed, 0)
        if drain:   # register access advances the clock: only once the words are all in
            idle = self.read("FLUSH_CYCLES") + 64
            tail = self._run(2 * idle, None, ready_percent, seed, idle)
            result = RunResult(result.cycles + tail.cycles, result.words_used, 0,
                               result.clocked + tail.clocked, result.skips,
                               result.answers_sent + tail.answers_sent)
        return result

    def _run(self, cycles, words, ready_percent, seed, idle_limit) -> RunResult:
        """One model run, repeated while an output buffer filled up before the end."""
        done = RunResult(0, 0, 0)
        while True:
            tic = time.perf_counter()
            result = self.model.run(cycles - done.cycles, words, ready_percent=ready_percent,
                                    seed=seed, idle_limit=idle_limit, skip_min=self.skip_min,
                                    answers=bytes(self._answers))
            self.model_seconds += time.perf_counter() - tic
            if result.words_skipped:
                raise DeviceError(f"{result.words_skipped} sample words were scheduled for "
                                  "cycles that had already passed")
            del self._answers[:result.answers_sent * self._record_bytes["s_axis_answer"]]
            for prefix, data in result.streams.items():
                self._streams[prefix] += data
            self.frames += int(result.tlast.sum())
            self.cycles_clocked += result.clocked
            self.skips += result.skips
            done = RunResult(done.cycles + result.cycles, done.words_used + result.words_used,
                             0, done.clocked + result.clocked, done.skips + result.skips,
                             done.answers_sent + result.answers_sent)
            filled = any(len(data) // self._record_bytes[prefix] >= result.capacity
                         for prefix, data in result.streams.items())
            if not filled or done.cycles >= cycles:
                return done
            if words is not None:
                words = words.split(self.model.cycle)[1]

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
            if self.hits_only:
                now = self._hit_words(now)
            cycles += self.feed(now, max(0, end - self.model.cycle), ready_percent=ready_percent,
                                seed=seed, drain=drain and pending is None).cycles
            if pending is None:
                break
        return cycles

    def _hit_words(self, words: SampleWords) -> SampleWords:
        """The words of ``words`` that hold a hit, for the delay-line front end.

        There a word is a hit exactly when its newest sample is high and the newest sample of
        the channel's word in the cycle before is low (:func:`tbqkd.hdl.golden.encode_words`),
        and no other use of the words in the core depends on more than that. So a word that is
        not a hit changes nothing but the next cycle's hit test, which can only turn a hit off;
        and the cycle before a hit holds no word or one whose newest sample is low, which a
        word left out (all zeros) reproduces. Leaving out the words that are not hits (the
        rest of every pulse) therefore gives the same tags, counts and records, and lets idle
        skipping start right after a pulse's first word (a record in flight at a skip may leave
        its framer at another cycle, as with any skip). The test uses the words as generated,
        including the newest word of each channel from the chunk before.
        """
        if len(words) and words.channel.max() >= self.config.n_channels:
            # the model ignores words of channels it does not have; so does the test below
            valid = words.channel < self.config.n_channels
            words = SampleWords(words.cycle[valid], words.channel[valid], words.lanes[valid],
                                words.width)
        if not len(words):
            return words
        if self._last_cycle.max() >= self.model.cycle:      # the counter was set back
            self._last_cycle[:] = -2
        lane, bit = divmod(words.width - 1, 64)
        high = ((words.lanes[:, lane] >> np.uint64(bit)) & np.uint64(1)).astype(bool)
        channel = words.channel.astype(np.int64)
        order = np.lexsort((words.cycle, channel))          # by channel, then cycle
        cycle, channel, high = words.cycle[order], channel[order], high[order]
        first = np.ones(len(order), bool)
        first[1:] = channel[1:] != channel[:-1]
        last = np.ones(len(order), bool)
        last[:-1] = first[1:]
        prev_cycle, prev_high = np.roll(cycle, 1), np.roll(high, 1)
        prev_cycle[first] = self._last_cycle[channel[first]]
        prev_high[first] = self._last_high[channel[first]]
        hit = high & ~((prev_cycle == cycle - 1) & prev_high)
        self._last_cycle[channel[last]] = cycle[last]
        self._last_high[channel[last]] = high[last]
        keep = np.zeros(len(order), bool)
        keep[order] = hit
        self.words_dropped += int(len(keep) - keep.sum())
        return SampleWords(words.cycle[keep], words.channel[keep], words.lanes[keep], words.width)

    def close(self) -> None:
        self.model.close()


def open_verilator_device(config: TaggerConfig | None = None, *, vcd_path: str | None = None,
                          build_dir: Path | None = None) -> VerilatorDevice:
    """Generate, build (cached) and load the core for ``config``; reset it and check its ID."""
    from tbqkd.hdl.build import verilog_for  # gateware tools are needed only to build

    config = config or TaggerConfig()
    verilog = verilog_for(config)
    library = build_model(verilog, config, trace=bool(vcd_path), build_dir=build_dir)
    device = VerilatorDevice(VerilatorModel(library, vcd_path=vcd_path), config)
    device.model.reset()
    device.check_identity()
    return device
