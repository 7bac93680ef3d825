"""A board's core driven from a companion computer: the board server and its clients.

Error correction and privacy amplification need numba, which has no wheels for the PYNQ-Z2's
32-bit ARM, and the Z2's Cortex-A9 would not keep up with them anyway. The board then does
the line-rate work and a PC runs the node (``tbqkd node ... --board HOST:PORT``):

* Bob's board serves his receiver's device primitives — 32-bit register reads and writes,
  stream reads and writes — so that :class:`RemoteDevice` on the PC is a
  :class:`~tbqkd.host.device.Device` like any other (the link's ``BoardStation`` runs on it).
* Alice's board runs her transmitter (random bits in, every slot's state out, serviced
  between requests) and serves ``states(slots)``, the look-up her node answers announcements
  with (:class:`RemoteStates`).

Both sides hold a shared key (``tbqkd node psk FILE`` makes one; not the nodes' key). Each
connection starts with a hello carrying a fresh random nonce from each side; the session key
is HMAC-SHA256(key, "tbqkd-board" ‖ client nonce ‖ server nonce). Every later message is a
msgpack body with an HMAC-SHA256 tag over (direction, message counter, body): a tampered,
replayed, reordered or foreign message ends the connection with :class:`RemoteError`, and
the server carries out nothing it did not authenticate. Nothing is secret on this link (the
states it carries leave the board only for slots Bob announced), but only the key holder may
drive the core. Wire format (integers big-endian)::

    u32 body length, body (msgpack), 32-byte tag          (the hello: no tag)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import select
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import numpy as np

from .device import Device, DeviceError
from .protocol import ProtocolError

__all__ = ["RemoteError", "BoardServer", "BoardClient", "RemoteDevice", "RemoteStates",
           "receiver_calls", "transmitter_calls", "MAX_MESSAGE_BYTES"]

_logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 2**20
_LENGTH = struct.Struct(">I")
_TAGGED = struct.Struct(">BQ")
_TAG_BYTES = 32
_NONCE_BYTES = 16
_MAGIC = "tbqkd-board/1"
#: Errors a call may raise that go back to the client as themselves (anything else is logged
#: on the board and reported as an internal error).
_FORWARDED = {"DeviceError": DeviceError, "ProtocolError": ProtocolError,
              "ValueError": ValueError}


class RemoteError(DeviceError):
    """The board link failed: no connection, a wrong key, or a message that fails its tag."""


class _Closed(RemoteError):
    """The peer closed the connection."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise _Closed("the board link closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class _Session:
    """One authenticated connection: counters and the session key, for either side."""

    def __init__(self, sock: socket.socket, key: bytes, nonces: tuple[bytes, bytes],
                 direction: int) -> None:
        self.sock = sock
        self._key = hmac.new(key, b"tbqkd-board" + nonces[0] + nonces[1],
                             hashlib.sha256).digest()
        self._out = direction          # 0: client to server, 1: server to client
        self._sent = 0
        self._received = 0

    def _tag(self, direction: int, counter: int, body: bytes) -> bytes:
        return hmac.new(self._key, _TAGGED.pack(direction, counter) + body,
                        hashlib.sha256).digest()

    def send(self, message: Mapping[str, Any]) -> None:
        body = msgpack.packb(message, use_bin_type=True)
        tag = self._tag(self._out, self._sent, body)
        self._sent += 1
        self.sock.sendall(_LENGTH.pack(len(body)) + body + tag)

    def receive(self) -> dict[str, Any]:
        (length,) = _LENGTH.unpack(_recv_exact(self.sock, _LENGTH.size))
        if length > MAX_MESSAGE_BYTES:
            raise RemoteError(f"a board message of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
        body = _recv_exact(self.sock, length)
        tag = _recv_exact(self.sock, _TAG_BYTES)
        if not hmac.compare_digest(tag, self._tag(1 - self._out, self._received, body)):
            raise RemoteError("a board message failed authentication (wrong key, or tampered, "
                              "replayed or reordered)")
        self._received += 1
        try:
            message = msgpack.unpackb(body, raw=False)
        except (ValueError, msgpack.UnpackException) as error:
            raise RemoteError(f"a board message does not parse: {error}") from None
        if not isinstance(message, dict):
            raise RemoteError("a board message is not a map")
        return message


def _send_hello(sock: socket.socket, hello: Mapping[str, Any]) -> None:
    body = msgpack.packb(dict(hello), use_bin_type=True)
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _receive_hello(sock: socket.socket) -> dict[str, Any]:
    (length,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    if length > 4096:
        raise RemoteError("the board link's hello is too long: not a tbqkd board server?")
    try:
        hello = msgpack.unpackb(_recv_exact(sock, length), raw=False)
    except (ValueError, msgpack.UnpackException):
        hello = None
    if not isinstance(hello, dict) or hello.get("magic") != _MAGIC or \
            not isinstance(hello.get("nonce"), bytes) or len(hello["nonce"]) != _NONCE_BYTES:
        raise RemoteError("the peer does not speak the tbqkd board protocol "
                          f"({_MAGIC})")
    return hello


class BoardServer:
    """Serves ``calls`` (name → function of msgpack values) to one client at a time.

    ``info`` goes to each client in the hello (role, register-table hash, parameters).
    ``idle()`` runs whenever no request has come for ``idle_s`` (Alice's transmitter service);
    an exception from it stops the server. A client silent for ``timeout_s`` in the middle of
    a message is dropped.
    """

    def __init__(self, calls: Mapping[str, Callable[..., Any]], key: bytes, *,
                 info: Mapping[str, Any], idle: Callable[[], None] | None = None,
                 idle_s: float = 0.001, timeout_s: float = 10.0) -> None:
        if len(key) < 32:
            raise ValueError("the board key must have at least 32 bytes")
        self._calls = dict(calls)
        self._key = key
        self._info = dict(info)
        self._idle = idle
        self._idle_s = idle_s
        self._timeout_s = timeout_s
        self.requests = 0
        self.refused = 0

    def serve(self, host: str, port: int, *, connections: int | None = None,
              ready: Callable[[int], None] | None = None) -> None:
        """Listen on ``host:port`` and serve clients one after the other (``connections``
        of them, or forever); ``ready(port)`` is called once listening (port 0: any)."""
        with socket.create_server((host, port)) as listener:
            if ready is not None:
                ready(listener.getsockname()[1])
            served = 0
            while connections is None or served < connections:
                while not self._readable(listener):
                    pass
                sock, peer = listener.accept()
                sock.settimeout(self._timeout_s)
                with sock:
                    try:
                        self._serve_one(sock)
                    except (RemoteError, OSError) as error:
                        self.refused += 1
                        _logger.warning("board link from %s ended: %s", peer[0], error)
                served += 1

    def _readable(self, sock: socket.socket) -> bool:
        ready, _, _ = select.select([sock], [], [], self._idle_s)
        if not ready and self._idle is not None:
            self._idle()
        return bool(ready)

    def _serve_one(self, sock: socket.socket) -> None:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        client = _receive_hello(sock)
        _send_hello(sock, {"magic": _MAGIC, "nonce": nonce, **self._info})
        session = _Session(sock, self._key, (client["nonce"], nonce), direction=1)
        session.send({"ready": True})            # proves the key to the client first
        while True:
            while not self._readable(sock):
                pass
            try:
                request = session.receive()
            except _Closed:
                return
            session.send(self._answer(request))

    def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name, args = request.get("call"), request.get("args", [])
        function = self._calls.get(name)
        if function is None or not isinstance(args, list):
            return {"error": f"the board serves no call {name!r}", "kind": "ValueError"}
        self.requests += 1
        try:
            return {"value": function(*args)}
        except TypeError as error:            # wrong arguments for the call
            return {"error": f"{name}: {error}", "kind": "ValueError"}
        except tuple(_FORWARDED.values()) as error:
            return {"error": str(error), "kind": _base_kind(error)}
        except Exception as error:            # a bug on the board: say so, keep serving
            _logger.exception("board call %s failed", name)
            return {"error": f"internal error on the board: {type(error).__name__}",
                    "kind": "DeviceError"}


def _base_kind(error: Exception) -> str:
    """The forwarded class ``error`` is an instance of (subclasses travel as their base)."""
    return next(kind for kind, cls in _FORWARDED.items() if isinstance(error, cls))


class BoardClient:
    """The PC's end of the board link: ``call(name, *args)`` returns the board's value.

    Raises
    ------
    RemoteError
        If the board cannot be reached or the link fails (the connection is then closed).
    """

    def __init__(self, host: str, port: int, key: bytes, *, timeout_s: float = 30.0) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise RemoteError(f"cannot reach the board at {host}:{port}: {error}") from None
        try:
            nonce = secrets.token_bytes(_NONCE_BYTES)
            _send_hello(self._sock, {"magic": _MAGIC, "nonce": nonce})
            self.info = _receive_hello(self._sock)
            self._session = _Session(self._sock, key, (nonce, self.info["nonce"]), direction=0)
            self._session.receive()              # the server's "ready": same key, or fail
        except (RemoteError, OSError) as error:
            self._sock.close()
            raise RemoteError(f"board {host}:{port}: {error}") from None

    def call(self, name: str, *args: Any) -> Any:
        try:
            self._session.send({"call": name, "args": list(args)})
            reply = self._session.receive()
        except (RemoteError, OSError) as error:
            self.close()
            raise RemoteError(f"board link: {error}") from None
        if "error" in reply:
            raise _FORWARDED.get(reply.get("kind"), DeviceError)(f"board: {reply['error']}")
        return reply.get("value")

    def close(self) -> None:
        self._sock.close()


# --- Bob: the receiver's device primitives ----------------------------------------------------
def receiver_calls(device: Device) -> dict[str, Callable[..., Any]]:
    """The calls Bob's board serves: ``device``'s four primitives."""
    return {
        "read32": lambda offset: device.read32(int(offset)),
        "write32": lambda offset, value: device.write32(int(offset), int(value)),
        "read_stream": lambda max_bytes, stream: device.read_stream(max_bytes, stream=stream),
        "write_stream": lambda data, stream: device.write_stream(bytes(data), stream=stream),
    }


class RemoteDevice(Device):
    """Bob's receiver core on a board, through :class:`BoardClient`.

    Raises
    ------
    DeviceError
        If the board serves another role or a core built from another register table.
    """

    def __init__(self, client: BoardClient) -> None:
        from tbqkd.hdl.config import TaggerConfig
        from tbqkd.hdl.registers import core_regmap

        info = client.info
        if info.get("role") != "bob":
            raise DeviceError(f"the board serves {info.get('role')!r}, not Bob's receiver")
        super().__init__(core_regmap(TaggerConfig(**info.get("config", {}))))
        if info.get("regmap_hash") != self.regmap.hash:
            raise DeviceError(f"the board's core has register table {info.get('regmap_hash')}, "
                              f"this host {self.regmap.hash:#010x}: update one of them")
        self._client = client

    def read32(self, offset: int) -> int:
        return int(self._client.call("read32", offset))

    def write32(self, offset: int, value: int) -> None:
        self._client.call("write32", offset, value)

    def read_stream(self, max_bytes: int | None = None, *, stream: str = "m_axis") -> bytes:
        return bytes(self._client.call("read_stream", max_bytes, stream))

    def write_stream(self, data: bytes, *, stream: str = "s_axis_answer") -> None:
        self._client.call("write_stream", bytes(data), stream)

    def close(self) -> None:
        self._client.close()


# --- Alice: her states -------------------------------------------------------------------------
def transmitter_calls(states: Callable[[np.ndarray], np.ndarray],
                      start: Callable[[dict], Any] | None = None) -> dict[str, Callable]:
    """The calls Alice's board serves: ``states`` of slots (int64 little-endian bytes in, one
    state byte a slot out) and, if given, ``start(settings)`` of her transmitter."""

    def lookup(raw: bytes) -> bytes:
        if len(raw) % 8:
            raise ValueError("slots must be whole int64 values")
        slots = np.frombuffer(raw, "<i8")
        return np.asarray(states(slots), dtype=np.uint8).tobytes()

    def start_with(settings: Any) -> Any:
        if not isinstance(settings, dict):
            raise ValueError("transmitter settings must be a map")
        return start(settings)

    return {"states": lookup, **({"start": start_with} if start is not None else {})}


class RemoteStates:
    """``states(slots)`` of Alice's transmitter on a board, for an ``AliceNode`` on the PC.

    Raises
    ------
    DeviceError
        If the board serves another role.
    """

    def __init__(self, client: BoardClient) -> None:
        if client.info.get("role") != "alice":
            raise DeviceError(f"the board serves {client.info.get('role')!r}, not Alice's "
                              "transmitter")
        self._client = client

    def start(self, settings: Mapping[str, Any]) -> None:
        """Configure and start the board's transmitter (a new session: slot 0 again)."""
        self._client.call("start", dict(settings))

    def __call__(self, slots: np.ndarray) -> np.ndarray:
        raw = np.ascontiguousarray(slots, dtype="<i8").tobytes()
        states = np.frombuffer(self._client.call("states", raw), np.uint8)
        if states.size != np.size(slots):
            raise ProtocolError(f"the board gave {states.size} states for {np.size(slots)} "
                                "slots")
        return states

    def close(self) -> None:
        self._client.close()
