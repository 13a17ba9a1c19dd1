"""Reading a webhook's request body with a size cap, before anything parses or verifies it.

A declared Content-Length over the cap is refused without reading a byte; a body sent without one
(chunked) is read only until it passes the cap. So an unauthenticated request can never make a
worker hold more than `limit` bytes, however much it sends. Photo downloads are capped the same
way (`read_capped`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

from starlette.requests import Request

MAX_WEBHOOK_BODY = 1024 * 1024  # platform updates are a few KB; photos come as links


class BodyTooLarge(Exception):
    pass


async def read_capped(
    declared: str, chunks: AsyncIterable[bytes], limit: int, too_large: Callable[[str], Exception]
) -> bytes:
    """Read `chunks` whole, raising `too_large` as soon as the content is known to exceed `limit`
    bytes: at once when its declared Content-Length (`declared`, "" if none) says so, or when what
    has arrived passes it."""
    declared = declared.strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"Content-Length {declared} > {limit}")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large(f"more than {limit} bytes")
    return bytes(body)


async def read_body(request: Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The request body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    return await read_capped(request.headers.get("content-length", ""), request.stream(), limit, BodyTooLarge)
