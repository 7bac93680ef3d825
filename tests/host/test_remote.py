"""The board link: a core on a board driven from a companion computer (host/remote.py)."""

from __future__ import annotations

import secrets
import socket
import threading
import time

import msgpack
import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.host.device import DeviceError
from tbqkd.host.protocol import ProtocolError
from tbqkd.host.receiver import ReceiverInterface
from tbqkd.host.remote import (
    BoardClient,
    BoardServer,
    RemoteDevice,
    RemoteError,
    RemoteStates,
    receiver_calls,
    transmitter_calls,
)
from tbqkd.sim.model_device import open_model_device

KEY = secrets.token_bytes(64)


def _serve(server: BoardServer, connections: int = 1) -> tuple[int, threading.Thread]:
    started = threading.Event()
    port = []

    def ready(p: int) -> None:
        port.append(p)
        started.set()

    thread = threading.Thread(target=server.serve, args=("127.0.0.1", 0),
                              kwargs={"connections": connections, "ready": ready}, daemon=True)
    thread.start()
    assert started.wait(10)
    return port[0], thread


@pytest.fixture
def bob_board():
    config = TaggerConfig()
    device = open_model_device(config)
    server = BoardServer(receiver_calls(device), KEY,
                         info={"role": "bob", "regmap_hash": device.regmap.hash,
                               "config": config.as_dict()})
    port, thread = _serve(server)
    yield device, server, port, thread
    thread.join(10)


def test_a_remote_receiver_is_the_same_device_as_the_local_one(bob_board):
    local, server, port, thread = bob_board
    remote = RemoteDevice(BoardClient("127.0.0.1", port, KEY))
    remote.check_identity()
    assert remote.regmap.hash == local.regmap.hash
    rx = ReceiverInterface(remote)
    rx.set_dac(12_345)
    assert local.read("DAC_VALUE") == remote.read("DAC_VALUE") == 12_345
    remote.write("FRAME_WORDS", value=17)
    assert local.read("FRAME_WORDS") == 17
    # the answer stream goes through to the core: it is pending there
    seq = np.arange(3, dtype=np.uint64)
    rx.send_answers(seq, seq + 100, np.zeros(3, np.uint64))
    assert local.answers_pending == 3
    assert remote.read_stream(stream="m_axis_sifted") == b""
    # the core's own refusals arrive as DeviceError with the board's message
    with pytest.raises(DeviceError, match=r"^board: .*register TIME is read-only"):
        remote.write32(local.regmap["TIME"].offset, 1)
    assert server.requests > 5
    remote.close()


def test_a_wrong_key_is_refused_before_any_call(bob_board):
    _, server, port, _ = bob_board
    with pytest.raises(RemoteError, match="failed authentication"):
        BoardClient("127.0.0.1", port, secrets.token_bytes(64))
    assert server.requests == 0


def test_a_tampered_request_ends_the_link_and_is_not_carried_out(bob_board):
    local, server, port, thread = bob_board
    client = BoardClient("127.0.0.1", port, KEY)
    client.call("read32", 0)
    session = client._session                   # a man in the middle flips one body bit
    body = bytearray(msgpack.packb({"call": "write32",
                                    "args": [local.regmap["DAC_VALUE"].offset, 9]}))
    tag = session._tag(0, session._sent, bytes(body))
    body[-1] ^= 0x01
    client._sock.sendall(len(body).to_bytes(4, "big") + bytes(body) + tag)
    with pytest.raises(RemoteError):
        session.receive()
    thread.join(10)
    assert local.read("DAC_VALUE") not in (8, 9) and server.requests == 1
    assert server.refused == 1


def test_unknown_calls_and_other_roles_are_refused(bob_board):
    _, server, port, _ = bob_board
    client = BoardClient("127.0.0.1", port, KEY)
    with pytest.raises(ValueError, match="serves no call 'reboot'"):
        client.call("reboot")
    with pytest.raises(ValueError, match="read32: "):
        client.call("read32", 0, 1, 2)
    with pytest.raises(DeviceError, match="not Alice's transmitter"):
        RemoteStates(client)
    client.close()


def test_alices_states_come_from_her_board_and_refusals_stay_refusals():
    sent = np.random.default_rng(1).integers(0, 3, 1000).astype(np.uint8)
    serviced = []

    def states(slots: np.ndarray) -> np.ndarray:
        if slots.max() >= sent.size:
            raise ProtocolError(f"{int((slots >= sent.size).sum())} slots not streamed yet")
        return sent[slots]

    server = BoardServer(transmitter_calls(states), KEY, info={"role": "alice"},
                         idle=lambda: serviced.append(1))
    port, thread = _serve(server)
    remote = RemoteStates(BoardClient("127.0.0.1", port, KEY))
    slots = np.array([5, 17, 999, 3])
    np.testing.assert_array_equal(remote(slots), sent[slots])
    with pytest.raises(ProtocolError, match="1 slots not streamed yet"):
        remote(np.array([1, 1000]))
    time.sleep(0.05)                             # no request for 50 ms: the board is idle
    remote.close()
    thread.join(10)
    assert serviced                              # the transmitter is serviced while idle


def test_no_board_and_no_tbqkd_server_are_clear_errors():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(RemoteError, match="cannot reach the board"):
        BoardClient("127.0.0.1", port, KEY, timeout_s=2)
    with socket.create_server(("127.0.0.1", 0)) as listener:   # speaks, but not our protocol
        port = listener.getsockname()[1]

        def junk() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"\x00\x00\x00\x05hello")

        thread = threading.Thread(target=junk, daemon=True)
        thread.start()
        with pytest.raises(RemoteError, match="does not speak the tbqkd board protocol"):
            BoardClient("127.0.0.1", port, KEY, timeout_s=5)
        thread.join(5)


def test_a_silent_client_is_dropped_and_the_next_one_served():
    device = open_model_device(TaggerConfig())
    server = BoardServer(receiver_calls(device), KEY, timeout_s=0.5,
                         info={"role": "bob", "regmap_hash": device.regmap.hash,
                               "config": TaggerConfig().as_dict()})
    port, thread = _serve(server, connections=2)
    with socket.create_connection(("127.0.0.1", port)):     # says nothing
        time.sleep(1.0)
    remote = RemoteDevice(BoardClient("127.0.0.1", port, KEY))
    remote.check_identity()
    remote.close()
    thread.join(10)
    assert server.refused == 1 and not thread.is_alive()


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        BoardServer({}, b"short", info={"role": "bob"})


_NO_NUMBA = """
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "amaranth", "cocotb", "pynq"):
            raise ImportError(f"{name} is not on this board")

sys.meta_path.insert(0, Block())
from tbqkd.link_run import RunError, RunOptions, serve_board
try:
    serve_board(RunOptions(backend="pynq", board_key=sys.argv[2]), sys.argv[1],
                "127.0.0.1:9")
except RunError as error:
    print(error)
"""


@pytest.mark.parametrize("role, message", [("bob", "backend pynq not available"),
                                           ("alice", "Alice's transmitter not available")])
def test_the_board_server_needs_neither_numba_nor_amaranth(role, message, tmp_path):
    """A PYNQ-Z2 has no numba (32-bit ARM) and no amaranth: `tbqkd board` must get as far as
    loading the overlay (here: no pynq, the one clear error) without importing them."""
    import subprocess
    import sys

    key = tmp_path / "key"
    key.write_bytes(secrets.token_bytes(64))
    out = subprocess.run([sys.executable, "-c", _NO_NUMBA, role, str(key)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert message in out.stdout and "needs the pynq package" in out.stdout   # nothing else
    assert "not on this board" not in out.stdout
