"""The Verilator backend of :class:`tbqkd.host.device.Device`: the compiled core in-process."""

from __future__ import annotations

from pathlib import Path

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

        ``drain``: after ``cycles`` worth of words, keep clocking until the core has been quiet
        for longer than its flush time-out, so every tag has left.
        """
        idle = self.read("FLUSH_CYCLES") + 64 if drain else 0
        result = self.model.run(cycles + 2 * idle, words, ready_percent=ready_percent,
                                seed=seed, idle_limit=idle)
        if result.words_skipped:
            raise DeviceError(f"{result.words_skipped} sample words were scheduled for cycles "
                              "that had already passed")
        self._stream += result.tag_bytes
        self.frames += int(result.tlast.sum())
        return result

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
