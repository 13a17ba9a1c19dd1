"""A client that starts a POST and never finishes it, to see whether a server answers before it
has the whole body (httpx always sends the whole body before it reads an answer)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


async def post_unfinished(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    declared_length: int | None,
    send: int,
    piece: int = 64 * 1024,
    wait: float = 5.0,
) -> int | None:
    """POST to `url`, send `send` bytes of body (chunked when `declared_length` is None, else with
    that Content-Length) and then nothing more. Return the status the server answered with, or
    None when no answer came within `wait` seconds (it is still waiting for the rest)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
        head.append("Transfer-Encoding: chunked" if declared_length is None else f"Content-Length: {declared_length}")
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        try:
            while sent < send:
                data = b"7" * min(piece, send - sent)
                writer.write(data if declared_length is not None else b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                sent += len(data)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server stopped reading: its answer is waiting below
        try:
            status_line = await asyncio.wait_for(reader.readline(), wait)
        except TimeoutError:
            return None
        fields = status_line.split()
        return int(fields[1]) if len(fields) >= 2 and fields[1].isdigit() else None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
