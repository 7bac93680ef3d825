"""The PYNQ backend of :class:`tbqkd.host.device.Device`: the core in a Zynq's programmable logic.

Registers go through the core's AXI4-Lite window (a pynq ``MMIO``, or the IP driver, which has
the same ``read(offset)`` / ``write(offset, value)``), one aligned 32-bit word at a time and only
at offsets of the register table. Streams go through one AXI DMA channel per stream port
(:data:`tbqkd.hdl.ip.DMA_CHANNELS`): the core's outputs through S2MM (``recvchannel``), Alice's
answers through MM2S (``sendchannel``), into and out of buffers from ``pynq.allocate`` that this
backend owns, reuses and frees on :meth:`PynqDevice.close`.

S2MM framing. A simple-mode S2MM transfer ends at the frame's TLAST (or when its length is
used up); the length actually written is read back from the DMA (``channel.transferred``).
The core ends a frame every ``FRAME_WORDS`` records (error-signal windows: every record) or
when the stream has been idle for ``FLUSH_CYCLES``, so a transfer of at least one whole frame
never splits a frame. The backend keeps one transfer armed per output stream between calls
(the DMA takes the next frame whenever the core sends it), never arms more than the DMA's
maximum transfer length (``buffer_max_size``, from the DMA's ``c_sg_length_width``), and refuses a
``FRAME_WORDS`` whose frames would not fit. Bytes taken from the DMA beyond what a caller asked
for wait in a host-side queue for the next call: nothing is dropped.

:class:`AxiCoreDevice` is that machinery for any core of this project, given its register table
and its stream routes (:class:`tbqkd.hdl.ip.DmaChannel`); :class:`PynqDevice` is the receiver
(routes :data:`~tbqkd.hdl.ip.DMA_CHANNELS`, the error-signal interrupt) and
:class:`tbqkd.host.transmitter.TransmitterDevice` the transmitter
(:data:`~tbqkd.hdl.ip.TX_DMA_CHANNELS`). :func:`overlay_core` finds either in an overlay.

``pynq`` itself is imported only inside :func:`open_pynq_device` (and by
:mod:`tbqkd.host.pynq_driver`, which is imported only from there), so this module works, and is
tested, on machines without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.ip import DMA_CHANNELS, IRQ_PORT, VLNV, DmaChannel
from tbqkd.hdl.registers import core_regmap
from tbqkd.hdl.regmap import RegisterMap

from .device import Device, DeviceError

__all__ = ["AxiCoreDevice", "PynqDevice", "StreamTimeout", "open_pynq_device", "PYNQ_MISSING",
           "DEFAULT_BUFFER_BYTES", "find_core_ip", "overlay_core"]

logger = logging.getLogger(__name__)

#: What :func:`open_pynq_device` says when ``pynq`` cannot be imported.
PYNQ_MISSING = ("the PYNQ backend needs the pynq package (it ships with the PYNQ board image; "
                "pip install pynq on a board)")

#: Size of each stream's DMA buffer, unless the DMA's maximum transfer is smaller.
DEFAULT_BUFFER_BYTES = 1 << 18

_FRAME_WORDS = "FRAME_WORDS"


class StreamTimeout(DeviceError):
    """A stream transfer did not finish in time.

    ``records_queued``: for a write, how many whole records had been handed to the DMA (they
    still go out when the core takes them; send the rest, from this record on, again).
    """

    def __init__(self, message: str, records_queued: int = 0) -> None:
        super().__init__(message)
        self.records_queued = records_queued


@dataclass
class _Stream:
    """One stream port's DMA channel and the backend's state for it."""

    route: DmaChannel
    channel: Any                      # a pynq _SDMAChannel (or anything with its API)
    transfer_bytes: int               # bytes per transfer: whole records, <= the DMA maximum
    buffer: Any = None                # from allocate(), made on first use
    armed: int = 0                    # bytes of the transfer in flight (0: none)
    received: bytearray = field(default_factory=bytearray)   # taken, not yet returned
    frames: int = 0                   # completed transfers (S2MM: frames or full buffers)
    bytes_moved: int = 0
    partial_records: int = 0          # transfers that ended inside a record (counted, kept)
    partial_bytes: bytearray = field(default_factory=bytearray)
    timeouts: int = 0


class AxiCoreDevice(Device):
    """A core behind an AXI4-Lite window and one AXI DMA per stream port (module docstring).

    What the receiver (:class:`PynqDevice`) and the transmitter
    (:class:`tbqkd.host.transmitter.TransmitterDevice`) share: registers by name at the offsets
    of ``regmap`` only, and the streams of ``routes`` through their DMAs.

    Parameters
    ----------
    mmio
        The core's register window: ``read(offset) -> int`` and ``write(offset, value)``, byte
        offsets from the core's base address (a ``pynq.MMIO`` or the core's IP driver).
    regmap
        The register table the core was built from.
    dmas
        Stream port prefix → its AXI DMA driver (``pynq.lib.dma.DMA``: ``buffer_max_size`` and
        the ``recvchannel`` / ``sendchannel`` the stream needs). Streams not given cannot be
        used; a design may leave out, say, the tag stream's DMA.
    routes
        The core's stream ports and their DMA channels (:data:`tbqkd.hdl.ip.DMA_CHANNELS` for
        the receiver, :data:`~tbqkd.hdl.ip.TX_DMA_CHANNELS` for the transmitter).
    allocate
        ``allocate(shape=(n,), dtype=np.uint8)`` giving DMA-able buffers (``pynq.allocate``;
        imported from pynq when not given).
    buffer_bytes
        Size of each stream's buffer (capped by the DMA's maximum transfer length).
    poll_s
        Sleep between DMA status polls while waiting.

    Raises
    ------
    DeviceError
        If a DMA lacks the channel its stream needs, or its maximum transfer cannot hold one
        record.
    """

    def __init__(self, mmio: Any, regmap: RegisterMap, dmas: Mapping[str, Any] | None = None, *,
                 routes: Sequence[DmaChannel] = DMA_CHANNELS,
                 allocate: Callable[..., Any] | None = None,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES, poll_s: float = 1e-4) -> None:
        super().__init__(regmap)
        self._mmio = mmio
        self._allocate = allocate
        self._poll_s = poll_s
        self._closed = False
        self._frame_words: int | None = None
        self._routes = tuple(routes)
        self._words: dict[int, tuple[str, bool]] = {}     # offset -> (register, writable)
        for reg in regmap:
            for w in range(reg.words):
                self._words[reg.offset + 4 * w] = (reg.name, reg.access != "ro")
        by_stream = {r.stream: r for r in self._routes}
        self._streams: dict[str, _Stream] = {}
        for stream, dma in (dmas or {}).items():
            if stream not in by_stream:
                raise DeviceError(f"the core has no stream port {stream!r}; it has "
                                  f"{sorted(by_stream)}")
            self._streams[stream] = self._make_stream(by_stream[stream], dma, buffer_bytes)

    @staticmethod
    def _make_stream(route: DmaChannel, dma: Any, buffer_bytes: int) -> _Stream:
        channel = getattr(dma, route.channel, None)
        direction = "S2MM (receive)" if route.receives else "MM2S (send)"
        if channel is None:
            raise DeviceError(f"the DMA for {route.stream} has no {direction} channel: enable "
                              f"it in the block design ({route.channel} is None)")
        max_transfer = int(getattr(dma, "buffer_max_size", 0))
        size = min(max_transfer, buffer_bytes)
        size -= size % route.record_bytes
        if size < route.record_bytes:
            raise DeviceError(
                f"the DMA for {route.stream} moves at most {max_transfer} bytes per transfer, "
                f"less than one {route.record_bytes}-byte record")
        return _Stream(route, channel, size)

    # --- registers --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError("the PYNQ device is closed")

    def _register_at(self, offset: int) -> tuple[str, bool]:
        if offset % 4:
            raise DeviceError(f"unaligned register offset {offset:#x}: the core's registers "
                              "are 32-bit words at multiples of 4")
        try:
            return self._words[offset]
        except KeyError:
            raise DeviceError(f"offset {offset:#x} is not a register of the core's table "
                              f"(hash {self.regmap.hash:#010x})") from None

    def read32(self, offset: int) -> int:
        self._check_open()
        self._register_at(offset)
        try:
            value = int(self._mmio.read(offset))
        except (ValueError, MemoryError, RuntimeError, OSError) as exc:
            raise DeviceError(f"register read at {offset:#x} failed: {exc}") from None
        if not 0 <= value < 1 << 32:
            raise DeviceError(f"register read at {offset:#x} gave {value:#x}, not 32 bits")
        return value

    def write32(self, offset: int, value: int) -> None:
        self._check_open()
        name, writable = self._register_at(offset)
        if not writable:
            raise DeviceError(f"offset {offset:#x} is read-only register {name}")
        if not 0 <= value < 1 << 32:
            raise DeviceError(f"{value:#x} does not fit a 32-bit register word")
        if name == _FRAME_WORDS:
            self._check_frames(value)
        try:
            self._mmio.write(offset, int(value))
        except (ValueError, MemoryError, RuntimeError, OSError) as exc:
            raise DeviceError(f"register write at {offset:#x} failed: {exc}") from None
        if name == _FRAME_WORDS:
            self._frame_words = value

    def _check_frames(self, frame_words: int) -> None:
        """Refuse framing whose frames would not fit one transfer of some output stream."""
        for s in self._streams.values():
            if not s.route.receives:
                continue
            frame = (s.route.frame_records or max(frame_words, 1)) * s.route.record_bytes
            if frame > s.transfer_bytes:
                raise DeviceError(
                    f"FRAME_WORDS={frame_words} makes {frame}-byte frames on {s.route.stream}, "
                    f"more than its DMA transfers ({s.transfer_bytes} bytes): lower "
                    "FRAME_WORDS, or widen the DMA's buffer length register (c_sg_length_width)")

    # --- streams ----------------------------------------------------------------------------
    def _stream(self, stream: str, receives: bool) -> _Stream:
        self._check_open()
        try:
            s = self._streams[stream]
        except KeyError:
            known = sorted(r.stream for r in self._routes)
            if stream in known:
                raise DeviceError(f"stream {stream!r} has no DMA in this design") from None
            raise DeviceError(f"no stream {stream!r}; the core's streams are {known}") from None
        if s.route.receives != receives:
            kind = "output" if receives else "input"
            raise DeviceError(f"{stream!r} is not an {kind} stream of the core")
        if s.buffer is None:
            s.buffer = self._new_buffer(s.transfer_bytes)
        return s

    def _new_buffer(self, nbytes: int) -> Any:
        allocate = self._allocate
        if allocate is None:
            try:
                from pynq import allocate
            except ImportError:
                raise DeviceError(PYNQ_MISSING) from None
            self._allocate = allocate
        return allocate(shape=(nbytes,), dtype=np.uint8)

    def _finished(self, s: _Stream, deadline: float) -> bool:
        """Poll the channel until it is idle (True) or ``deadline`` passes (False)."""
        while True:
            try:
                if s.channel.idle:
                    return True
                if s.channel.error:
                    s.channel.wait()          # raises with the DMA's error kind
                    raise RuntimeError("DMA error bit set")
            except RuntimeError as exc:
                s.armed = 0
                raise DeviceError(f"DMA for {s.route.stream}: {exc}") from None
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._poll_s)

    def _complete(self, s: _Stream) -> int:
        """Finish an idle channel's transfer; return the bytes it moved."""
        try:
            s.channel.wait()                  # idle already: reads the length, invalidates
        except RuntimeError as exc:
            s.armed = 0
            raise DeviceError(f"DMA for {s.route.stream}: {exc}") from None
        moved = int(s.channel.transferred)
        requested, s.armed = s.armed, 0
        if moved > requested:
            raise DeviceError(f"DMA for {s.route.stream} reports {moved} bytes moved for a "
                              f"{requested}-byte transfer")
        s.frames += 1
        s.bytes_moved += moved
        return moved

    def _arm(self, s: _Stream) -> None:
        if self._frame_words is None:
            self._frame_words = self.read(_FRAME_WORDS)
        self._check_frames(self._frame_words)
        try:
            if not s.channel.running:
                s.channel.start()
            s.channel.transfer(s.buffer, start=0, nbytes=s.transfer_bytes)
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"DMA for {s.route.stream} refused a {s.transfer_bytes}-byte "
                              f"transfer: {exc}") from None
        s.armed = s.transfer_bytes

    def read_stream(self, max_bytes: int | None = None, *, stream: str = "m_axis",
                    timeout_s: float | None = None) -> bytes:
        """Whole records received on output ``stream``, at most ``max_bytes``.

        Without ``timeout_s`` this does not block: it returns what complete frames have
        arrived (possibly nothing). With ``timeout_s`` it waits that long for at least one
        record.

        Raises
        ------
        StreamTimeout
            If ``timeout_s`` passed without a record.
        DeviceError
            For an unknown stream or one without DMA, a DMA error, or a transfer that ended
            inside a record (the whole records before it are kept for the next call; the
            stray bytes are counted in :meth:`stream_stats`).
        """
        s = self._stream(stream, receives=True)
        record = s.route.record_bytes
        limit = None if max_bytes is None else max(0, max_bytes) // record * record
        deadline = time.monotonic() + (timeout_s or 0.0)
        while limit is None or len(s.received) < limit:
            if not s.armed:
                self._arm(s)
            waiting = timeout_s is not None and not s.received
            if not self._finished(s, deadline if waiting else 0.0):
                break
            moved = self._complete(s)
            whole = moved - moved % record
            s.received += s.buffer[:whole].tobytes()
            if moved != whole:
                s.partial_records += 1
                s.partial_bytes += s.buffer[whole:moved].tobytes()
                raise DeviceError(f"DMA for {stream} ended a transfer inside a record: {moved} "
                                  f"bytes is not a whole number of {record}-byte records (the "
                                  "stream width of the DMA does not match the core's?)")
            if moved == 0:
                break
        if timeout_s is not None and not s.received:
            s.timeouts += 1
            raise StreamTimeout(f"no record on {stream} within {timeout_s} s (is the core "
                                "running, and its flush time-out FLUSH_CYCLES set?)")
        size = len(s.received) if limit is None else min(limit, len(s.received))
        data = bytes(s.received[:size])
        del s.received[:size]
        return data

    def write_stream(self, data: bytes, *, stream: str = "s_axis_answer",
                     timeout_s: float = 1.0) -> None:
        """Send whole records to input ``stream``, in transfers of at most the DMA's maximum.

        Returns once the DMA has taken every byte.

        Raises
        ------
        StreamTimeout
            If the core did not take a transfer within ``timeout_s`` (``records_queued`` says
            how many records are on their way; send the rest again).
        DeviceError
            For an unknown stream, a partial record or a DMA error.
        """
        s = self._stream(stream, receives=False)
        record = s.route.record_bytes
        if len(data) % record:
            raise DeviceError(f"{len(data)} bytes is not a whole number of {record}-byte "
                              f"records for {stream}")
        view = memoryview(bytes(data))
        deadline = time.monotonic() + timeout_s
        queued = 0
        for start in range(0, len(view), s.transfer_bytes):
            if s.armed:                        # the previous transfer still owns the buffer
                if not self._finished(s, deadline):
                    s.timeouts += 1
                    raise StreamTimeout(
                        f"the core did not take {stream} data within {timeout_s} s: "
                        f"{queued // record} of {len(view) // record} records queued",
                        queued // record)
                self._check_sent(s, self._complete(s))
            queued += self._send(s, view[start:start + s.transfer_bytes])
        if s.armed:
            if not self._finished(s, deadline):
                s.timeouts += 1
                raise StreamTimeout(f"the core did not take {stream} data within {timeout_s} s: "
                                    f"all {queued // record} records queued", queued // record)
            self._check_sent(s, self._complete(s))

    @staticmethod
    def _send(s: _Stream, piece: bytes | memoryview) -> int:
        """Arm the send DMA of ``s`` with ``piece`` (at most one transfer); return its length."""
        s.buffer[:len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        try:
            if not s.channel.running:
                s.channel.start()
            s.channel.transfer(s.buffer, start=0, nbytes=len(piece))
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"DMA for {s.route.stream} refused a {len(piece)}-byte transfer: "
                              f"{exc}") from None
        s.armed = len(piece)
        return len(piece)

    @staticmethod
    def _check_sent(s: _Stream, moved: int) -> None:
        if moved % s.route.record_bytes:
            s.partial_records += 1
            raise DeviceError(f"DMA for {s.route.stream} sent {moved} bytes, not a whole "
                              "number of records")

    def try_write_stream(self, data: bytes, *, stream: str) -> int:
        """Hand input ``stream`` at most one transfer of ``data`` without waiting; return the
        bytes handed over (whole records; 0 while the previous transfer is still in flight).

        For a stream the host keeps topped up (random bits): call it often; whatever it did not
        take is the caller's to offer again.

        Raises
        ------
        DeviceError
            For an unknown stream or one without DMA, a partial record, or a DMA error.
        """
        s = self._stream(stream, receives=False)
        record = s.route.record_bytes
        if len(data) % record:
            raise DeviceError(f"{len(data)} bytes is not a whole number of {record}-byte "
                              f"records for {stream}")
        if s.armed:
            if not self._finished(s, 0.0):
                return 0
            self._check_sent(s, self._complete(s))
        piece = bytes(data[:s.transfer_bytes])
        return self._send(s, piece) if piece else 0

    def stream_in_flight(self, stream: str) -> int:
        """Bytes of input ``stream`` handed to its DMA and not yet taken by the core."""
        s = self._stream(stream, receives=False)
        if s.armed and self._finished(s, 0.0):
            self._check_sent(s, self._complete(s))
        return s.armed

    def stream_stats(self) -> dict[str, dict[str, int]]:
        """Per stream: transfers completed, bytes moved, bytes waiting in the host queue,
        partial-record transfers and their stray bytes, timeouts."""
        return {name: {"transfers": s.frames, "bytes": s.bytes_moved,
                       "queued_bytes": len(s.received), "partial_records": s.partial_records,
                       "partial_bytes": len(s.partial_bytes), "timeouts": s.timeouts,
                       "transfer_bytes": s.transfer_bytes}
                for name, s in self._streams.items()}

    @property
    def streams(self) -> tuple[str, ...]:
        """The stream ports this device has a DMA for."""
        return tuple(self._streams)

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the DMA channels with a transfer in flight and free every buffer.

        Frames the S2MM channels had not completed are abandoned; read the streams empty
        before closing to keep them.
        """
        if self._closed:
            return
        for s in self._streams.values():
            if s.armed:
                try:
                    s.channel.stop()
                except RuntimeError as exc:
                    logger.warning("stopping the DMA for %s: %s", s.route.stream, exc)
                s.armed = 0
            if s.buffer is not None:
                s.buffer.freebuffer()
                s.buffer = None
        self._closed = True

    def __enter__(self) -> AxiCoreDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PynqDevice(AxiCoreDevice):
    """The receiver core behind an AXI4-Lite window and AXI DMAs (see the module docstring).

    Parameters
    ----------
    mmio
        The core's register window (a ``pynq.MMIO`` or the core's IP driver).
    regmap
        The register table the core was built from (``core_regmap(config)``).
    dmas
        Stream port prefix → its AXI DMA driver (:data:`tbqkd.hdl.ip.DMA_CHANNELS`).
    interrupt
        The core's ``irq`` as an object with ``async wait()`` (a ``pynq.Interrupt``), or
        ``None``: :meth:`wait_window` then polls ``CORE_STATUS.irq``.
    options
        ``allocate``, ``buffer_bytes``, ``poll_s`` of :class:`AxiCoreDevice`.

    Raises
    ------
    DeviceError
        If a DMA lacks the channel its stream needs, or its maximum transfer cannot hold one
        record.
    """

    def __init__(self, mmio: Any, regmap: RegisterMap, dmas: Mapping[str, Any] | None = None, *,
                 allocate: Callable[..., Any] | None = None,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES, interrupt: Any = None,
                 poll_s: float = 1e-4) -> None:
        super().__init__(mmio, regmap, dmas, routes=DMA_CHANNELS, allocate=allocate,
                         buffer_bytes=buffer_bytes, poll_s=poll_s)
        self._interrupt = interrupt
        self._last_window_index: int | None = None

    # --- construction from an overlay -------------------------------------------------------
    @classmethod
    def from_overlay(cls, overlay: Any, *, config: TaggerConfig | None = None,
                     core: str | None = None, dma_names: Mapping[str, str | None] | None = None,
                     check: bool = True, **options: Any) -> PynqDevice:
        """The core of a loaded ``pynq.Overlay``, with the DMAs wired to its streams.

        The core is the IP whose type is :data:`tbqkd.hdl.ip.VLNV` (or the one named
        ``core``); each stream's DMA is the IP named in ``dma_names`` (stream prefix → instance
        path such as ``"dmas/dma_rx"``, ``None`` for a stream without DMA) or, for streams not
        in it, ``dma_<stream prefix>`` if the design has it. ``options`` go to the constructor.

        Raises
        ------
        DeviceError
            If the overlay has no (or more than one) tbqkd core, only one of another version, or
            a DMA named in ``dma_names`` is missing.
        DeviceMismatch
            If ``check`` and the core's ID does not match the register table of ``config``.
        """
        ip, dmas = overlay_core(overlay, vlnv=VLNV, routes=DMA_CHANNELS, core=core,
                                dma_names=dma_names)
        interrupt = getattr(ip, IRQ_PORT, None)
        if interrupt is not None and not hasattr(interrupt, "wait"):
            interrupt = None
        options.setdefault("interrupt", interrupt)
        device = cls(ip, core_regmap(config or TaggerConfig()), dmas, **options)
        if check:
            device.check_identity()
        if hasattr(ip, "attach"):
            ip.attach(device)
        return device

    # --- interrupt --------------------------------------------------------------------------
    async def wait_window(self, *, timeout_s: float | None = None,
                          poll_s: float = 1e-3) -> dict[str, int]:
        """Wait for an error-signal window to complete; return the latest one and acknowledge.

        Uses the core's ``irq`` through the pynq ``Interrupt`` when the design wires it, and
        polls ``CORE_STATUS.irq`` otherwise. The interrupt is acknowledged before the snapshot
        is read, so a window closing meanwhile raises it again; a window already returned is
        not returned twice. Windows that close faster than they are waited for are skipped
        here (``index`` jumps): every window is on the ``m_axis_phase`` stream.

        Raises
        ------
        StreamTimeout
            If no new window completes within ``timeout_s``.
        """
        from .receiver import ReceiverInterface

        rx = ReceiverInterface(self)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._irq_raised(poll_s), remaining)
            except asyncio.TimeoutError:
                raise StreamTimeout(f"no error-signal window within {timeout_s} s") from None
            rx.ack_phase_irq()
            window = rx.last_phase_window()
            if window["index"] != self._last_window_index:
                self._last_window_index = window["index"]
                return window

    async def _irq_raised(self, poll_s: float) -> None:
        if self._interrupt is not None:
            await self._interrupt.wait()
            return
        while not self.read_fields("CORE_STATUS")["irq"]:
            await asyncio.sleep(poll_s)

    def __enter__(self) -> PynqDevice:
        return self


def overlay_core(overlay: Any, *, vlnv: str, routes: Sequence[DmaChannel],
                 core: str | None = None,
                 dma_names: Mapping[str, str | None] | None = None) -> tuple[Any, dict[str, Any]]:
    """The driver of a core in a loaded overlay, and the DMAs of its streams.

    The core is the one IP of type ``vlnv`` (or the one named ``core``); each stream's DMA is
    the IP named in ``dma_names`` (stream prefix → instance path such as ``"dmas/dma_rx"``,
    ``None`` for a stream without DMA) or, for streams not in it, the route's ``dma_<prefix>``
    if the design has it.

    Raises
    ------
    DeviceError
        If the overlay has no (or more than one) such core, only one of another version, a DMA
        named in ``dma_names`` is missing, or ``dma_names`` names a stream the core lacks.
    """
    ip_dict = overlay.ip_dict
    name = core if core is not None else find_core_ip(ip_dict, vlnv)
    if name not in ip_dict:
        raise DeviceError(f"the overlay has no IP named {name!r}")
    ip = _resolve(overlay, name)
    dmas = {}
    names = dict(dma_names or {})
    for route in routes:
        dma_name = names.pop(route.stream, route.dma)
        if dma_name is None:
            continue
        if dma_name not in ip_dict:
            if route.stream in (dma_names or {}):
                raise DeviceError(f"DMA {dma_name!r} for {route.stream} is not in the "
                                  f"overlay; its IP: {sorted(ip_dict)}")
            logger.info("no DMA %r: stream %s not available", dma_name, route.stream)
            continue
        dmas[route.stream] = _resolve(overlay, dma_name)
    if names:
        raise DeviceError(f"dma_names names unknown stream ports {sorted(names)}")
    return ip, dmas


def find_core_ip(ip_dict: Mapping[str, Mapping[str, Any]], vlnv: str = VLNV) -> str:
    """The name of the one IP of type ``vlnv`` in ``ip_dict`` (pynq's ``Overlay.ip_dict``).

    Raises
    ------
    DeviceError
        If there is none, several, or only one of another version of the same IP.
    """
    exact = [name for name, d in ip_dict.items() if d.get("type") == vlnv]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise DeviceError(f"the overlay has several tbqkd cores of type {vlnv} "
                          f"{sorted(exact)}: name one")
    prefix = vlnv.rpartition(":")[0]
    other = {name: d.get("type") for name, d in ip_dict.items()
             if str(d.get("type", "")).startswith(prefix + ":")}
    if other:
        raise DeviceError(f"the overlay's tbqkd core is {other}, this host drives {vlnv}: "
                          "rebuild the bitstream or install the matching host package")
    raise DeviceError(f"the overlay has no IP of type {vlnv}")


def _resolve(overlay: Any, path: str) -> Any:
    """The driver of IP ``path`` (``hier/sub/name``) in ``overlay``."""
    node = overlay
    for part in path.split("/"):
        node = getattr(node, part)
    return node


def open_pynq_device(bitfile: str, *, config: TaggerConfig | None = None,
                     download: bool = True, **options: Any) -> PynqDevice:
    """Load ``bitfile`` (its ``.hwh`` beside it) and return its core, identity checked.

    The core's driver :class:`tbqkd.host.pynq_driver.TbqkdReceiverIP` is registered before the
    overlay loads, so ``overlay.tbqkd_receiver_0`` is bound to it. ``options`` go to
    :meth:`PynqDevice.from_overlay`.

    Raises
    ------
    DeviceError
        If ``pynq`` is not installed, the overlay cannot be loaded, or the core or its DMAs
        are not found.
    DeviceMismatch
        If the core was built from another register table.
    """
    try:
        import pynq
    except ImportError:
        raise DeviceError(PYNQ_MISSING) from None
    from . import pynq_driver  # noqa: F401  (registers the driver for the core's VLNV)

    try:
        overlay = pynq.Overlay(bitfile, download=download)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DeviceError(f"cannot load overlay {bitfile}: {exc}") from None
    return PynqDevice.from_overlay(overlay, config=config, **options)

