"""How the Telegram channel's Bot API calls go over HTTP: PTB's httpx backend, with JSON bodies.

The Bot API takes a call's parameters as a form or as a JSON body alike. PTB sends a form, and
httpx form-encodes it byte by byte: a Vietnamese reply with its keyboard is mostly bytes that need
escaping, which cost about 50 µs of CPU per reply, more than the JSON body costs to build
(bench/README.md, issue 18, fifth round). Calls that upload a file (a photo sent back to a
reviewer, an export) keep PTB's multipart form. Timeouts and errors are PTB's: the same defaults,
and the same `TimedOut` / `NetworkError` the rate limiter and `map_error` act on.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData


class JsonBodyRequest(HTTPXRequest):
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
        try:
            response = await self._client.request(
                method=method,
                url=url,
                headers={"User-Agent": self.USER_AGENT, "Content-Type": "application/json"},
                timeout=timeout,
                content=body,
            )
        except httpx.PoolTimeout as exc:
            raise TimedOut("Pool timeout: every connection in the pool is busy; the request was not sent") from exc
        except httpx.TimeoutException as exc:
            raise TimedOut from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"httpx.{exc.__class__.__name__}: {exc}") from exc
        return response.status_code, response.content


def _given(value: Any, default: float | None) -> float | None:
    """A timeout the call gave, else the request's own (PTB passes a default-value marker)."""
    return default if isinstance(value, _DefaultValue) else value


_DefaultValue = type(BaseRequest.DEFAULT_NONE)
