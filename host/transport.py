"""Alice and Bob in two processes: the nodes' frames over TCP (asyncio), surviving lost links.

The nodes are sans-I/O (:mod:`tbqkd.host.link`); this module carries their frames. Bob drives:
each frame he sends is one *request* and gets exactly one *reply* holding Alice's answer frames
(possibly none), the same order :func:`tbqkd.host.link.exchange` gives in one process. On the
wire (all integers big-endian)::

    request  u64 request id, u32 length, frame
    reply    u64 request id, u32 count, then count x (u32 length, frame)

Request ids count up from 1. Alice keeps her last reply: a request whose id equals the last one
(Bob re-sends it after a lost connection) is answered from that cache without running it again,
so each frame is processed exactly once — the authentication counters and pad pools stay in
step, no sifting batch or block is lost or doubled. Any other id out of sequence is a protocol
error. The frames themselves are authenticated (:mod:`tbqkd.host.auth`); the envelope is not
secret and needs no tag: a forged envelope can only deliver frames that fail authentication.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable

from .messages import MAX_FRAME_BYTES
from .protocol import ProtocolError

__all__ = ["AliceServer", "BobClient", "parse_address", "MAX_REPLY_FRAMES"]

_logger = logging.getLogger(__name__)
_REQUEST = struct.Struct(">QI")
_REPLY = struct.Struct(">QI")
_LENGTH = struct.Struct(">I")
MAX_REPLY_FRAMES = 4096


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``.

    Raises
    ------
    ValueError
        If the port is missing or not in 1..65535.
    """
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r} must be HOST:PORT with a port in 1..65535")
    return host, int(port)


async def _read_frame(reader: asyncio.StreamReader, length: int) -> bytes:
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
    return await reader.readexactly(length)


class AliceServer:
    """Serves one Alice node to Bob's connections, one connection at a time.

    ``receive(frame) -> list[bytes]`` is the node's method (:class:`~tbqkd.host.link.AliceNode`).
    """

    def __init__(self, receive: Callable[[bytes], list[bytes]]) -> None:
        self._receive = receive
        self._last_id = 0
        self._last_reply = b""
        self.requests = 0
        self.resent = 0
        self.connections = 0
        self.finished = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until Bob closes it (or says goodbye)."""
        self.connections += 1
        try:
            while True:
                try:
                    header = await reader.readexactly(_REQUEST.size)
                except asyncio.IncompleteReadError:
                    return                                 # Bob went away; he may come back
                request_id, length = _REQUEST.unpack(header)
                frame = await _read_frame(reader, length)
                if request_id == 0 and not frame:          # goodbye: the run is over
                    self.finished.set()
                    return
                writer.write(self._answer(request_id, frame))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            _logger.warning("alice: connection lost: %s", error)
        finally:
            writer.close()

    def _answer(self, request_id: int, frame: bytes) -> bytes:
        if request_id == self._last_id and self._last_id:
            self.resent += 1
            return self._last_reply
        if request_id != self._last_id + 1:
            raise ProtocolError(f"request {request_id} after {self._last_id}: out of sequence")
        replies = self._receive(frame)
        self.requests += 1
        reply = _REPLY.pack(request_id, len(replies)) + b"".join(
            _LENGTH.pack(len(r)) + r for r in replies)
        self._last_id, self._last_reply = request_id, reply
        return reply


class BobClient:
    """Bob's end: sends his frames to Alice's server and hands her replies to his node.

    ``receive(frame) -> list[bytes]`` is Bob's node method; :meth:`exchange` replaces the
    in-process :func:`tbqkd.host.link.exchange`. A lost connection is re-opened (up to
    ``retries`` times, ``retry_delay_s`` apart) and the request in flight re-sent.
    """

    def __init__(self, host: str, port: int, receive: Callable[[bytes], list[bytes]], *,
                 retries: int = 20, retry_delay_s: float = 0.5) -> None:
        self._address = (host, port)
        self._receive = receive
        self._retries = retries
        self._delay = retry_delay_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 1
        self.reconnects = 0

    async def connect(self) -> None:
        """Open the connection, retrying while Alice is not listening yet.

        Raises
        ------
        ConnectionError
            If Alice cannot be reached after all retries.
        """
        last: Exception | None = None
        for _ in range(self._retries + 1):
            try:
                self._reader, self._writer = await asyncio.open_connection(*self._address)
                return
            except OSError as error:
                last = error
                await asyncio.sleep(self._delay)
        raise ConnectionError(f"cannot reach Alice at {self._address[0]}:{self._address[1]}: "
                              f"{last}")

    def drop_connection(self) -> None:
        """Close the socket abruptly (tests: a link failure)."""
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def _request(self, frame: bytes) -> list[bytes]:
        request_id = self._next_id
        for _ in range(self._retries + 1):
            try:
                if self._writer is None:
                    await self.connect()
                self._writer.write(_REQUEST.pack(request_id, len(frame)) + frame)
                await self._writer.drain()
                got_id, count = _REPLY.unpack(await self._reader.readexactly(_REPLY.size))
                if got_id != request_id or count > MAX_REPLY_FRAMES:
                    raise ProtocolError(f"reply {got_id} with {count} frames to request "
                                        f"{request_id}")
                replies = []
                for _ in range(count):
                    (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
                    replies.append(await _read_frame(self._reader, length))
                self._next_id += 1
                return replies
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
                _logger.warning("bob: connection lost (%s); re-sending request %d", error,
                                request_id)
                self.drop_connection()
                self.reconnects += 1
                await asyncio.sleep(self._delay)
        raise ConnectionError(f"request {request_id}: Alice unreachable after "
                              f"{self._retries} retries")

    async def exchange(self, frames: list[bytes]) -> int:
        """Deliver ``frames`` and everything they cause, until both sides are quiet."""
        queue = deque(frames)
        delivered = 0
        while queue:
            for reply in await self._request(queue.popleft()):
                queue.extend(self._receive(reply))
                delivered += 1
            delivered += 1
        return delivered

    async def close(self) -> None:
        """Say goodbye (Alice's server ends) and close."""
        if self._writer is not None:
            self._writer.write(_REQUEST.pack(0, 0))
            await self._writer.drain()
            self._writer.close()
            self._reader = self._writer = None
