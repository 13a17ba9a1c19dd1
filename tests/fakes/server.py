"""Serve an ASGI app with uvicorn on 127.0.0.1 (port 0 or a given socket) inside a test."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready socket on a free loopback port (its address is known before serving);
    any 127.x.y.z address works on Linux, for a second, separate "host"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@asynccontextmanager
async def serve(app, sock: socket.socket | None = None) -> AsyncIterator[str]:
    sock = sock or bound_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # older uvicorn; newer ones restore handlers themselves
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raises the startup error
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def via_local_tls(url: str) -> str:
    """An https address on 127.0.0.1 as the plain http one behind it: the tests' stand-in for the
    TLS-terminating proxy in front of the bot (the Zalo platforms only accept https addresses)."""
    if url.startswith("https://127."):
        return "http://" + url[len("https://") :]
    return url
