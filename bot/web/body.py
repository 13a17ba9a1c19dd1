"""Reading a webhook's request body with a size cap, before anything parses or verifies it.

A declared Content-Length over the cap is refused without reading a byte; a body sent without one
(chunked) is read only until it passes the cap. So an unauthenticated request can never make a
worker hold more than `limit` bytes, however much it sends.
"""

from __future__ import annotations

from starlette.requests import Request

MAX_WEBHOOK_BODY = 1024 * 1024  # platform updates are a few KB; photos come as links


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The request body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"Content-Length {declared} > {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
    return bytes(body)
