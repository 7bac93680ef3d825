"""Alice and Bob over TCP: frames in order, exactly once, across lost connections."""

from __future__ import annotations

import asyncio

import pytest
from tbqkd.host.protocol import ProtocolError
from tbqkd.host.transport import AliceServer, BobClient, parse_address


class _LossyServer(AliceServer):
    """Loses the connection right after running request ``lose_after`` (its reply is lost)."""

    def __init__(self, receive, lose_after: int) -> None:
        super().__init__(receive)
        self._lose_after = lose_after

    def _answer(self, request_id: int, frame: bytes) -> bytes:
        reply = super()._answer(request_id, frame)
        if request_id == self._lose_after and not self.resent:
            self._lose_after = -1
            raise ConnectionResetError("link down")
        return reply


def _run(server: AliceServer, frames: list[bytes], bob_receive) -> BobClient:
    async def main() -> BobClient:
        tcp = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = tcp.sockets[0].getsockname()[1]
        client = BobClient("127.0.0.1", port, bob_receive, retry_delay_s=0.01)
        async with tcp:
            await client.connect()
            for frame in frames:
                await client.exchange([frame])
            await client.close()
            await asyncio.wait_for(server.finished.wait(), 5)
        return client
    return asyncio.run(main())


def test_a_lost_reply_is_resent_from_the_cache_and_nothing_runs_twice():
    alice_seen: list[bytes] = []
    bob_seen: list[bytes] = []

    def alice(frame: bytes) -> list[bytes]:
        alice_seen.append(frame)
        return [b"re:" + frame, b"and:" + frame] if frame.endswith(b"3") else [b"re:" + frame]

    def bob(frame: bytes) -> list[bytes]:
        bob_seen.append(frame)
        return []

    server = _LossyServer(alice, lose_after=3)
    frames = [f"frame-{i}".encode() for i in range(1, 7)]
    client = _run(server, frames, bob)
    assert alice_seen == frames                            # each frame processed once
    assert bob_seen == [b"re:frame-1", b"re:frame-2", b"re:frame-3", b"and:frame-3",
                        b"re:frame-4", b"re:frame-5", b"re:frame-6"]
    assert server.resent == 1 and server.connections == 2 and client.reconnects >= 1


def test_replies_feed_back_until_both_sides_are_quiet():
    def alice(frame: bytes) -> list[bytes]:
        n = int(frame)
        return [str(n + 1).encode()] if n < 5 else []

    def bob(frame: bytes) -> list[bytes]:
        return [str(int(frame) + 1).encode()]        # ping-pong until Alice says nothing

    server = AliceServer(alice)
    _run(server, [b"0"], bob)
    assert server.requests == 4                          # Bob sent 0, 2, 4 and 6


def test_out_of_sequence_requests_are_refused():
    server = AliceServer(lambda frame: [])
    server._answer(1, b"a")
    assert server._answer(1, b"a") == server._answer(1, b"a")   # a re-send: from the cache
    with pytest.raises(ProtocolError, match="out of sequence"):
        server._answer(3, b"c")


@pytest.mark.parametrize("text", ["localhost", "host:0", "host:70000", ":80", "host:x"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)
    assert parse_address("127.0.0.1:7000") == ("127.0.0.1", 7000)
