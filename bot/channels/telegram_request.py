"""How the Telegram channel's Bot API calls go over HTTP: PTB's httpx backend, with JSON bodies.

The Bot API takes a call's parameters as a form or as a JSON body alike. PTB sends a form, and
httpx form-encodes it byte by byte: a Vietnamese reply with its keyboard is mostly bytes that need
escaping, which cost about 50 µs of CPU per reply, more than the JSON body costs to build
(bench/README.md, issue 18, fifth round). Calls that upload a file (a photo sent back to a
reviewer, an export) keep PTB's multipart form. Timeouts and errors are PTB's: the same defaults,
and the same `TimedOut` / `NetworkError` the rate limiter and `map_error` act on.

The connection pool under it is httpcore's, on a network backend of our own (`BotApiBackend`,
bench/README.md, issue 18, sixth round) that wraps httpcore's anyio streams to save two costs:
- the "has the server closed this idle connection?" check is one poll(2). httpcore asks it of
  every pooled connection twice per request; its own backend answers by building anyio's table
  of socket attributes, with a getpeername(2), each time: about 80 µs of CPU per reply with a
  handful of connections in the pool;
- a request goes out in one send(2), not two: httpcore writes the head and the body of a request
  apart, and a send on a connection costs tens of µs of CPU (the kernel's own work on it is
  charged to the sender). What is written waits until the response is read, or until 64 KiB
  wait (an upload).

A JSON call goes straight through that transport, without httpx's client around it, and the pool
keeps its bookkeeping to one walk over the connections (`BotApiPool`; bench/README.md, issue 18,
seventh round).
"""

from __future__ import annotations

import functools
import json
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

# Writes of one request are held back up to this much before they go out (the rest of an upload
# goes out as it comes).
WRITE_TOGETHER_UP_TO = 64 * 1024


class _BotApiStream(httpcore.AsyncNetworkStream):
    """httpcore's own stream: its writes sent together when the response is read, and the
    readability check on a poll object made once. Only for HTTP/1.1, where a connection carries
    one request at a time and the task that wrote a request is the one that reads its response."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._pending = b""
        self._pending_timeout: float | None = None
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._poll = select.poll()
        if self._socket is not None and self._socket.fileno() >= 0:
            self._poll.register(self._socket.fileno(), select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._send_pending()
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._pending += buffer
        self._pending_timeout = timeout
        if len(self._pending) >= WRITE_TOGETHER_UP_TO:
            await self._send_pending()

    async def _send_pending(self) -> None:
        pending, self._pending = self._pending, b""
        await self._inner.write(pending, self._pending_timeout)

    async def aclose(self) -> None:
        self._pending = b""
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _BotApiStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # As httpcore answers: a socket gone (closed, no descriptor) reads as readable, so
            # the pool drops the connection; otherwise readable means data or the server's FIN.
            if self._socket is None or self._socket.fileno() < 0:
                return True
            return bool(self._poll.poll(0))
        return self._inner.get_extra_info(info)


class BotApiBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in `_BotApiStream` (HTTP/1.1 only)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _BotApiStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _BotApiStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class BotApiPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool with a leaner bookkeeping pass, for HTTP/1.1 (one request per
    connection at a time; `BotApiTransport` never asks for HTTP/2).

    httpcore (1.0.9) runs `_assign_requests_to_connections` when a request starts and when it
    ends. There, for every idle connection, it lists all connections again to compare their
    count with the keep-alive limit; it can hand one idle connection to several queued requests,
    and all but one then fail to start on it and go round again (a pass more each); and it can
    close an idle connection that a queued request was just given. With the eight connections
    the bot keeps under load that was 4 passes and about 140 µs of CPU per reply (bench/README.md,
    issue 18, seventh round). Here, in one walk: drop the closed connections, close the expired
    ones and the idle ones beyond the keep-alive limit (idle ones counted, as httpcore means);
    then give each queued request the first available connection to its origin that no request
    holds, else a new one while under the limit, else one made in place of the first idle
    connection no request holds; otherwise it waits for one to come free."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        held = {id(request.connection) for request in self._requests if request.connection is not None}
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        idle: list[httpcore.AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.has_expired():  # idle: a request given it then finds it gone and asks again
                closing.append(connection)
                continue
            kept.append(connection)
            if id(connection) not in held and connection.is_idle():
                idle.append(connection)
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            for connection in idle[:surplus]:
                kept.remove(connection)
                closing.append(connection)
            idle = idle[surplus:]
        self._connections[:] = kept

        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            free = next(
                (
                    c
                    for c in self._connections
                    if id(c) not in held and c.can_handle_request(origin) and c.is_available()
                ),
                None,
            )
            if free is not None:
                if free in idle:
                    idle.remove(free)
                connection = free
            else:
                if len(self._connections) >= self._max_connections:
                    if not idle:
                        continue  # every connection busy: the request waits for one to come free
                    replaced = idle.pop(0)
                    self._connections.remove(replaced)
                    closing.append(replaced)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            held.add(id(connection))
            pool_request.assign_to_connection(connection)
        return closing


class BotApiTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport with its connection pool on `BotApiBackend`. httpx takes no
    network backend of its own, so the pool it made is replaced by one with the same settings."""

    def __init__(self, limits: httpx.Limits, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = BotApiPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend or BotApiBackend(),
        )


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi's roots), made once: it takes about 25 ms to load."""
    return httpx.create_ssl_context()


class JsonBodyRequest(HTTPXRequest):
    _transport: BotApiTransport | None = None

    def _build_client(self) -> httpx.AsyncClient:
        """PTB's client, on `BotApiTransport` unless HTTP/2, a proxy or a transport of its own
        was asked for. Built anew each time PTB initialises the request after a shutdown."""
        kwargs = dict(self._client_kwargs)
        self._transport = None
        if kwargs.get("transport") is None and kwargs.get("proxy") is None and not kwargs.get("http2"):
            kwargs["transport"] = self._transport = BotApiTransport(kwargs["limits"])
        return httpx.AsyncClient(**kwargs)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if request_data is None or request_data.contains_files:
            return await super().do_request(
                url,
                method,
                request_data,
                read_timeout,
                write_timeout,
                connect_timeout,
                pool_timeout,
            )
        default = self._client.timeout
        timeout = httpx.Timeout(
            connect=_given(connect_timeout, default.connect),
            read=_given(read_timeout, default.read),
            write=_given(write_timeout, default.write),
            pool=_given(pool_timeout, default.pool),
        )
        body = json.dumps(request_data.parameters, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"User-Agent": self.USER_AGENT, "Content-Type": "application/json"}
        try:
            if self._transport is None:
                response = await self._client.request(
                    method=method, url=url, headers=headers, timeout=timeout, content=body
                )
                return response.status_code, response.content
            if self._client.is_closed:
                raise RuntimeError("This HTTPXRequest is not initialized!")
            return await self._send(_parsed_url(url), method, headers, timeout, body)
        except httpx.PoolTimeout as exc:
            raise TimedOut("Pool timeout: every connection in the pool is busy; the request was not sent") from exc
        except httpx.TimeoutException as exc:
            raise TimedOut from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"httpx.{exc.__class__.__name__}: {exc}") from exc

    async def _send(
        self, url: httpx.URL, method: str, headers: dict[str, str], timeout: httpx.Timeout, body: bytes
    ) -> tuple[int, bytes]:
        """One call straight through our transport: the client around it would only merge its
        base URL, headers and cookies (none), follow redirects (the Bot API sends none) and look
        for cookies in the answer, about 0.13 ms of CPU per call (bench/README.md, issue 18,
        seventh round). Timeouts travel as the request's extension, as the client sends them."""
        assert self._transport is not None
        request = httpx.Request(method, url, headers=headers, content=body, extensions={"timeout": timeout.as_dict()})
        response = await self._transport.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, content


@functools.lru_cache(maxsize=64)
def _parsed_url(url: str) -> httpx.URL:
    """The few Bot API method URLs, parsed once (httpx checks every character of a URL)."""
    return httpx.URL(url)


def _given(value: Any, default: float | None) -> float | None:
    """A timeout the call gave, else the request's own (PTB passes a default-value marker)."""
    return default if isinstance(value, _DefaultValue) else value


_DefaultValue = type(BaseRequest.DEFAULT_NONE)
