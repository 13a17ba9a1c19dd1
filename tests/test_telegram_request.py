"""The Bot API client's connection pool (bot/channels/telegram_request.py): an idle connection the
server has closed is noticed and replaced, an open one is reused, and the client PTB builds runs
on that pool. Over real sockets on 127.0.0.1, against a small HTTP/1.1 server that can hang up."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.channels.telegram_request import JsonBodyRequest, QuickPollBackend, QuickPollTransport


class HangingUpServer:
    """Answers each request with a keep-alive `200 ok`; `hang_up()` closes every open connection
    from the server's side, as a Bot API server does with an idle one."""

    def __init__(self) -> None:
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

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
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def hang_up(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)  # the FIN reaches the client's socket


def _streams(transport: QuickPollTransport) -> list:
    """The network streams of the pool's open connections (httpcore's connection objects)."""
    return [connection._connection._network_stream for connection in transport._pool.connections]


async def test_an_idle_connection_the_server_closed_is_replaced():
    async with HangingUpServer() as server:
        transport = QuickPollTransport(httpx.Limits(max_connections=4))
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
    assert isinstance(first._transport, QuickPollTransport)
    assert isinstance(first._transport._pool._network_backend, QuickPollBackend)
    assert first._transport._pool._max_connections == 8
    await request.initialize()
    await request.shutdown()
    await request.initialize()  # after a shutdown PTB builds a new client: on a new pool too
    assert request._client is not first
    assert isinstance(request._client._transport, QuickPollTransport)
    await request.shutdown()


@pytest.mark.parametrize("proxy", ["http://127.0.0.1:9"])
def test_a_proxy_keeps_httpx_own_transport(proxy):
    request = JsonBodyRequest(proxy=proxy)
    assert not isinstance(request._client._transport, QuickPollTransport)
