"""Alice's board serving her PC's node (``tbqkd board alice``): the transmitter starts with the
node's settings, is serviced between requests and answers ``states`` over the board link."""

from __future__ import annotations

import secrets
import threading
import time

import numpy as np
import pytest
from board_standin import TxModelCore, tx_dmas
from tbqkd.host.protocol import ProtocolError
from tbqkd.host.remote import BoardClient, BoardServer, RemoteStates, transmitter_calls
from tbqkd.host.transmitter import RandomSource, TransmitterDevice
from tbqkd.sim.pynq_shim import shim_allocate

from tbqkd.link_run import _AliceBoard

DEPTH = 64
KEY = secrets.token_bytes(64)


def test_alices_board_runs_the_transmitter_her_node_configures(tmp_path):
    core = TxModelCore(DEPTH, fifo_words=64)
    device = TransmitterDevice(core, tx_dmas(core), ring_depth=DEPTH, allocate=shim_allocate,
                               buffer_bytes=1 << 13)
    qrng = tmp_path / "qrng.bin"
    qrng.write_bytes(np.random.default_rng(3).bytes(1 << 16))
    board = _AliceBoard(device, RandomSource.from_path(qrng))

    def idle() -> None:                       # the stand-in's clock runs between requests
        if board.tx is not None:
            core.run(40)
        board.service()

    server = BoardServer(transmitter_calls(board.states, board.start), KEY,
                         info={"role": "alice"}, idle=idle)
    ready, port = threading.Event(), []
    thread = threading.Thread(target=server.serve, args=("127.0.0.1", 0), daemon=True,
                              kwargs={"connections": 1,
                                      "ready": lambda p: (port.append(p), ready.set())})
    thread.start()
    assert ready.wait(10)
    remote = RemoteStates(BoardClient("127.0.0.1", port[0], KEY))
    with pytest.raises(ProtocolError, match="has not been started"):
        remote(np.arange(4))
    with pytest.raises(ValueError, match="settings incomplete"):
        remote.start({"p_z": 0.8})
    remote.start({"p_z": 0.75, "four_state": False, "slot_divider": 1, "ref_divider": 64,
                  "pulse_rate_hz": 2_000.0})            # a 4 000-slot history
    got = None
    for _ in range(500):                                # until 300 slots have gone out
        try:
            got = remote(np.arange(300))
            break
        except ProtocolError:
            time.sleep(0.005)                           # the board runs meanwhile
    remote.close()
    thread.join(10)
    assert got is not None and board.tx is not None
    m = core.model
    sent = np.array([-1 if s is None else s for s in (m.session_state(i) for i in range(300))])
    assert (sent >= 0).all()                            # no random underrun in this run
    np.testing.assert_array_equal(got, sent)
    assert 0.6 < np.mean(got < 2) < 0.9                 # P(Z) = 0.75 as configured
    board.tx.stop()
