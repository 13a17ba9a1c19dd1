"""The Bot API client's connection pool (bot/channels/telegram_request.py): a request goes out in
one send, an upload whole; an idle connection the server has closed is noticed and replaced, an
open one is reused; and the client PTB builds runs on that pool. Over real sockets on 127.0.0.1,
against a small HTTP/1.1 server that can hang up."""

from __future__ import annotations

import asyncio
import json

import httpcore
import httpx
import pytest
from telegram.error import TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.channels.telegram_request import (
    WRITE_TOGETHER_UP_TO,
    BotApiBackend,
    BotApiPool,
    BotApiTransport,
    JsonBodyRequest,
)


class HangingUpServer:
    """Answers each request with a keep-alive `200 ok` once it has read its body (kept in
    `bodies`); `hang_up()` closes every open connection from the server's side, as a Bot API
    server does with an idle one."""

    def __init__(self, answer: bool = True, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay  # seconds before each answer, so that requests overlap
        self.heads: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.bodies: list[bytes] = []

    async def __aenter__(self) -> HangingUpServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    async def __aexit__(self, *_exc) -> None:  # noqa: ANN002
        await self.hang_up()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(int(length[0].split(b":")[1])) if length else b"")
                if not self.answer:
                    continue
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def hang_up(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)  # the FIN reaches the client's socket


class CountingBackend(httpcore.AnyIOBackend):
    """httpcore's anyio backend, counting the sends on its connections: what `BotApiBackend`
    hands to the network."""

    def __init__(self) -> None:
        self.sends: list[int] = []

    async def connect_tcp(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        stream = await super().connect_tcp(*args, **kwargs)
        write, sends = stream.write, self.sends

        async def counted(buffer: bytes, timeout: float | None = None) -> None:
            sends.append(len(buffer))
            await write(buffer, timeout)

        stream.write = counted
        return stream


async def test_a_request_goes_out_in_one_send_and_an_upload_whole():
    network = CountingBackend()
    transport = BotApiTransport(httpx.Limits(max_connections=4), backend=BotApiBackend(network))
    async with HangingUpServer() as server, httpx.AsyncClient(transport=transport) as client:
        body = json.dumps({"chat_id": 1, "text": "Mục 1/10: Đạt"}, ensure_ascii=False).encode()
        response = await client.post(server.url, content=body, headers={"Content-Type": "application/json"})
        assert response.text == "ok"
        assert server.bodies == [body]
        assert len(network.sends) == 1  # the head and the body together
        assert network.sends[0] > len(body)

        network.sends.clear()
        chunk = bytes(range(256)) * 64  # an upload streamed in 16 KiB pieces, 256 KiB in all

        async def pieces():  # noqa: ANN202
            for _ in range(16):
                yield chunk

        response = await client.post(server.url, content=pieces(), headers={"Content-Length": str(16 * len(chunk))})
        assert response.text == "ok"
        assert server.bodies[-1] == chunk * 16
        # Sent as it comes, 64 KiB at a time, not held back whole until the response
        assert len(network.sends) >= 4
        assert all(WRITE_TOGETHER_UP_TO <= size < WRITE_TOGETHER_UP_TO + 2 * len(chunk) for size in network.sends[:-1])
        assert server.connections == 1


def _streams(transport: BotApiTransport) -> list:
    """The network streams of the pool's open connections (httpcore's connection objects)."""
    return [connection._connection._network_stream for connection in transport._pool.connections]


async def test_an_idle_connection_the_server_closed_is_replaced():
    async with HangingUpServer() as server:
        transport = BotApiTransport(httpx.Limits(max_connections=4))
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(server.url)).text == "ok"
            (stream,) = _streams(transport)
            assert stream.get_extra_info("is_readable") is False  # open and idle
            assert (await client.get(server.url)).text == "ok"
            assert server.connections == 1  # reused

            await server.hang_up()
            assert stream.get_extra_info("is_readable") is True  # the server's FIN waits on it
            assert (await client.get(server.url)).text == "ok"  # no "server disconnected" error
            assert server.connections == 2
            assert stream not in _streams(transport)

        assert stream.get_extra_info("is_readable") is True  # closed with the client: gone


async def test_ptb_builds_its_client_on_the_quick_poll_pool_each_time():
    request = JsonBodyRequest(connection_pool_size=8)
    first = request._client
    assert isinstance(first._transport, BotApiTransport)
    assert isinstance(first._transport._pool._network_backend, BotApiBackend)
    assert first._transport._pool._max_connections == 8
    await request.initialize()
    await request.shutdown()
    await request.initialize()  # after a shutdown PTB builds a new client: on a new pool too
    assert request._client is not first
    assert isinstance(request._client._transport, BotApiTransport)
    await request.shutdown()


async def test_the_pool_shares_its_connections_among_more_requests_than_it_may_open():
    """`BotApiPool`: twelve calls at once on four connections at most; each call gets a
    connection of its own (none is handed to two, none is closed under a call), the rest wait
    their turn; the connections stay open for the next calls, as many as the keep-alive limit."""
    transport = BotApiTransport(httpx.Limits(max_connections=4, max_keepalive_connections=3))
    assert isinstance(transport._pool, BotApiPool)
    async with HangingUpServer(delay=0.05) as server, httpx.AsyncClient(transport=transport) as client:
        bodies = [f"call {n}".encode() for n in range(12)]
        answers = await asyncio.gather(*(client.post(server.url, content=body) for body in bodies))
        assert [a.text for a in answers] == ["ok"] * 12
        assert sorted(server.bodies) == sorted(bodies)
        assert server.connections == 4
        assert len(transport._pool.connections) == 3  # idle ones beyond the keep-alive limit closed
        again = await asyncio.gather(*(client.post(server.url, content=b"again") for _ in range(3)))
        assert [a.text for a in again] == ["ok"] * 3
        assert server.connections == 4  # the three kept were used again


def _send_message_data() -> RequestData:
    return RequestData([RequestParameter.from_input("chat_id", 1), RequestParameter.from_input("text", "Mục 1/10")])


async def test_a_json_call_goes_through_the_pool_with_ptbs_headers_and_timeouts():
    request = JsonBodyRequest(connection_pool_size=2, read_timeout=0.3)
    await request.initialize()
    try:
        async with HangingUpServer() as server:
            status, content = await request.do_request(server.url + "sendMessage", "POST", _send_message_data())
            assert (status, content) == (200, b"ok")
            assert json.loads(server.bodies[0]) == {"chat_id": 1, "text": "Mục 1/10"}
            head = server.heads[0].lower()
            assert head.startswith(b"post /sendmessage http/1.1")
            assert b"content-type: application/json" in head
            assert f"user-agent: {JsonBodyRequest.USER_AGENT}".lower().encode() in head
            assert len(request._transport._pool.connections) == 1

        async with HangingUpServer(answer=False) as server:  # reads the call, never answers
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimedOut):
                await request.do_request(server.url + "sendMessage", "POST", _send_message_data())
            assert asyncio.get_running_loop().time() - started < 2  # PTB's read timeout, 0.3 s
            with pytest.raises(TimedOut):  # a timeout the call gives wins over the request's own
                await request.do_request(server.url + "x", "POST", _send_message_data(), read_timeout=0.05)
    finally:
        await request.shutdown()
    with pytest.raises(RuntimeError):
        await request.do_request("http://127.0.0.1:9/sendMessage", "POST", _send_message_data())


@pytest.mark.parametrize("proxy", ["http://127.0.0.1:9"])
def test_a_proxy_keeps_httpx_own_transport(proxy):
    request = JsonBodyRequest(proxy=proxy)
    assert not isinstance(request._client._transport, BotApiTransport)
