"""Two nodes that share nothing but a byte stream (a socket pair, one thread each)."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
from tbqkd.host import distill, finite_key
from tbqkd.host.auth import AuthenticatedChannel
from tbqkd.host.ec import make_reconciler

_LENGTH = struct.Struct(">I")
PSK = bytes(np.random.default_rng(7).integers(0, 256, 1 << 16, dtype=np.uint8))


def _random_bytes(seed: int):
    rng = np.random.default_rng(seed)
    return lambda count: rng.bytes(count)


def _inputs(n: int, errors: int, x: tuple[int, int]):
    rng = np.random.default_rng(17)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    b = a.copy()
    b[rng.choice(n, errors, replace=False)] ^= 1
    stats = distill.XStatistics(*x)
    return distill.BlockInput(1, a, stats), distill.BlockInput(1, b, stats)


def _send(sock: socket.socket, frames: list[bytes]) -> None:
    for frame in frames:
        sock.sendall(_LENGTH.pack(len(frame)) + frame)


def _receive(sock: socket.socket) -> bytes:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("peer closed")
            data += chunk
        return data

    (length,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return exactly(length)


def _serve(node: distill.DistillNode, sock: socket.socket, block: distill.BlockInput,
           results: dict, ready: threading.Event | None, go: threading.Event | None) -> None:
    try:
        first = node.begin_block(block)
        if ready is not None:
            ready.set()
        if go is not None:
            go.wait(10)
        _send(sock, first)
        while not node.block_done:
            _send(sock, node.receive(_receive(sock)))
        results[id(node)] = node.last_outcome
    except Exception as error:  # reported by the test thread
        results[id(node)] = error


def test_nodes_over_a_socket_pair():
    config = distill.DistillConfig(method="cascade", qber_prior=0.02,
                                   thresholds=finite_key.AbortThresholds(min_x_detections=10))
    alice = distill.DistillNode("alice", AuthenticatedChannel("alice", PSK), config,
                                reconciler_factory=make_reconciler, random_bytes=_random_bytes(5))
    bob = distill.DistillNode("bob", AuthenticatedChannel("bob", PSK), config,
                              reconciler_factory=make_reconciler, random_bytes=_random_bytes(6))
    a_in, b_in = _inputs(n=20_000, errors=300, x=(5_000, 100))
    left, right = socket.socketpair()
    left.settimeout(30)
    right.settimeout(30)
    results: dict = {}
    bob_ready = threading.Event()
    threads = [threading.Thread(target=_serve, args=(bob, right, b_in, results, bob_ready, None)),
               threading.Thread(target=_serve, args=(alice, left, a_in, results, None, bob_ready))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    left.close()
    right.close()
    out_a, out_b = results[id(alice)], results[id(bob)]
    assert not isinstance(out_a, Exception) and not isinstance(out_b, Exception), results
    assert out_a.status == out_b.status == "key"
    assert np.array_equal(out_a.key, out_b.key) and out_a.key_bits == out_a.report.key_bits
    assert alice.accounts.auth_consumed_bits == bob.accounts.auth_consumed_bits
