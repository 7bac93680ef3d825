"""pynq's MMIO, AXI DMA and ``allocate`` in front of a :class:`~tbqkd.sim.device.VerilatorDevice`.

So the PYNQ backend (:class:`tbqkd.host.pynq_device.PynqDevice`) runs unchanged against the
compiled core: :class:`MmioShim` has ``pynq.MMIO``'s ``read``/``write`` (alignment and length
checks included) and :class:`DmaShim` a ``pynq.lib.dma.DMA`` in simple mode with one channel,
whose ``transfer`` / ``idle`` / ``wait`` / ``transferred`` / ``running`` / ``start`` / ``stop``
behave like pynq 3.1–4.0's ``_SDMAChannel``: ``transfer`` on a busy channel raises "DMA channel
not idle", a transfer longer than ``buffer_max_size`` raises ``ValueError``, and the S2MM
length is known only after ``wait``.

Frames: the Verilator device keeps what the core emitted, without its TLAST positions, until
it is read. An S2MM transfer here completes with the whole records emitted so far (up to its
length), as a transfer on the board completes at the TLAST of the flush time-out once the core
has gone idle; it stays pending while the core has emitted nothing. The model advances only
when it is fed, so a ``wait`` on a pending transfer raises instead of spinning forever.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tbqkd.hdl.ip import dma_channel

__all__ = ["MmioShim", "DmaShim", "ShimBuffer", "shim_allocate", "PYNQ_DEFAULT_MAX_TRANSFER"]

#: pynq's default maximum transfer: ``(1 << c_sg_length_width) - 1`` with Vivado's default 14.
PYNQ_DEFAULT_MAX_TRANSFER = (1 << 14) - 1

_next_address = [0x1000_0000]


class ShimBuffer(np.ndarray):
    """A numpy array with the ``PynqBuffer`` API the DMA driver uses (addresses, cache
    maintenance, ``freebuffer``); ``freed`` tells whether it was freed."""

    physical_address: int
    freed: bool

    @property
    def device_address(self) -> int:
        return self.physical_address

    def flush(self) -> None:
        self._check()

    def invalidate(self) -> None:
        self._check()

    def freebuffer(self) -> None:
        self.freed = True

    def _check(self) -> None:
        if getattr(self, "freed", False):
            raise RuntimeError("buffer used after freebuffer()")


def shim_allocate(shape: Any, dtype: Any = "u4", **_: Any) -> ShimBuffer:
    """``pynq.allocate`` for the shim: zeroed, page-aligned fake physical addresses."""
    buffer = np.zeros(shape, dtype=dtype).view(ShimBuffer)
    buffer.physical_address = _next_address[0]
    buffer.freed = False
    _next_address[0] += -(-buffer.nbytes // 4096) * 4096 + 4096
    return buffer


class MmioShim:
    """``pynq.MMIO`` over a device's 32-bit register access."""

    def __init__(self, device: Any) -> None:
        self._device = device

    def read(self, offset: int = 0, length: int = 4, word_order: str = "little") -> int:
        if length not in (1, 2, 4, 8):
            raise ValueError("MMIO currently only supports 1, 2, 4 and 8-byte reads.")
        if offset < 0:
            raise ValueError("Offset cannot be negative.")
        if offset % 4:
            raise MemoryError("Unaligned read: offset must be multiple of 4.")
        low = self._device.read32(offset)
        if length == 8:                     # two 32-bit reads, low word first (like pynq)
            high = self._device.read32(offset + 4)
            return (high << 32) | low if word_order == "little" else (low << 32) | high
        return low & ((1 << (8 * length)) - 1)

    def write(self, offset: int, data: int | bytes) -> None:
        if offset < 0:
            raise ValueError("Offset cannot be negative.")
        if offset % 4:
            raise MemoryError("Unaligned write: offset must be multiple of 4.")
        if isinstance(data, int):
            self._device.write32(offset, data & 0xFFFF_FFFF)
        elif isinstance(data, bytes):
            if len(data) % 4:
                raise MemoryError("Unaligned write: data length must be multiple of 4.")
            for i, word in enumerate(np.frombuffer(data, "<u4")):
                self._device.write32(offset + 4 * i, int(word))
        else:
            raise ValueError("Data type must be int or bytes.")


class _ChannelShim:
    """One simple-mode DMA channel moving bytes to or from a device stream."""

    def __init__(self, device: Any, stream: str, receives: bool, max_size: int) -> None:
        self._device = device
        self._stream = stream
        self._receives = receives
        self._max_size = max_size
        self._running = False
        self._active: tuple[ShimBuffer, int, int] | None = None   # (array, start, nbytes)
        self._moved: int | None = None       # bytes of the active transfer once complete
        self.transferred = 0
        self.transfers: list[int] = []       # requested lengths, for tests
        self.start()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def idle(self) -> bool:
        if self._active is None:
            return True
        if self._moved is None and self._receives:
            self._try_receive()
        return self._moved is not None

    @property
    def error(self) -> bool:
        return False

    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        """Abort the transfer in flight (what it had not moved stays with the device)."""
        self._running = False
        self._active, self._moved = None, None

    def _try_receive(self) -> None:
        array, start, nbytes = self._active
        data = self._device.read_stream(nbytes, stream=self._stream)
        if data:
            array.view(np.uint8).reshape(-1)[start:start + len(data)] = \
                np.frombuffer(data, np.uint8)
            self._moved = len(data)

    def transfer(self, array: ShimBuffer, start: int = 0, nbytes: int = 0) -> None:
        if not self._running:
            raise RuntimeError("DMA channel not started")
        if self._active is not None and not self.idle:
            raise RuntimeError("DMA channel not idle")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes > self._max_size:
            raise ValueError(f"Transfer size is {nbytes} bytes, which exceeds the maximum DMA "
                             f"buffer size {self._max_size}.")
        if start < 0 or start + nbytes > array.nbytes:
            raise ValueError("transfer outside the buffer")
        array._check()
        self.transferred = 0
        self.transfers.append(nbytes)
        self._active, self._moved = (array, start, nbytes), None
        if not self._receives:
            raw = array.view(np.uint8).reshape(-1)[start:start + nbytes]
            self._device.write_stream(raw.tobytes(), stream=self._stream)
            self._moved = nbytes

    def wait(self) -> None:
        if not self._running:
            raise RuntimeError("DMA channel not started")
        if self._active is None:
            raise RuntimeError("no transfer to wait for")
        if not self.idle:
            raise RuntimeError(f"{self._stream}: the transfer waits for data the model has not "
                               "produced; feed the model first (pynq would spin forever here)")
        self.transferred = self._moved
        self._active, self._moved = None, None


class DmaShim:
    """A ``pynq.lib.dma.DMA`` with the one channel that serves ``stream`` of ``device``."""

    def __init__(self, device: Any, stream: str, *,
                 buffer_max_size: int = PYNQ_DEFAULT_MAX_TRANSFER) -> None:
        route = dma_channel(stream)
        self.buffer_max_size = buffer_max_size
        channel = _ChannelShim(device, stream, route.receives, buffer_max_size)
        self.recvchannel = channel if route.receives else None
        self.sendchannel = None if route.receives else channel
