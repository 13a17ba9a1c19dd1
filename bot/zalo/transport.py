"""HTTP plumbing shared by the Zalo clients: one connection pool each, retries with backoff on
timeouts and 5xx only, reading the JSON answer, and splitting long texts to the platform's limit."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx

from bot.zalo.errors import ZaloAPIError, ZaloNetworkError, ZaloServerError

log = logging.getLogger(__name__)

TEXT_LIMIT = 2000  # both the Bot Platform and OA consultation messages


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits `backoff`, 2×, 4×… (capped, with jitter) between them.

    Only a timeout or a 5xx answer is retried. Anything else (4xx, an error envelope, a refused
    connection) is returned or raised at once: repeating it would not change the answer.
    """

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; return the first non-5xx response, raising ZaloNetworkError/ZaloServerError."""
    attempts = max(1, policy.attempts)
    for attempt in range(attempts):
        last = attempt + 1 >= attempts
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            if last:
                raise ZaloNetworkError(f"{what}: timed out after {attempts} attempt(s)") from exc
            log.info("%s timed out (attempt %d/%d), retrying", what, attempt + 1, attempts)
        except httpx.HTTPError as exc:
            raise ZaloNetworkError(f"{what}: {type(exc).__name__}: {exc}") from exc
        else:
            if response.status_code < 500:
                return response
            if last:
                raise ZaloServerError(response.status_code, f"{what}: {response.text[:200]}")
            log.info("%s answered HTTP %d (attempt %d/%d), retrying", what, response.status_code, attempt + 1, attempts)
        await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def answer_object(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object of an answer, or None when it is not one (a proxy's page, a cut answer)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def unexpected_answer(response: httpx.Response, method: str) -> ZaloAPIError:
    """The error for an answer that is not Zalo's JSON envelope."""
    return ZaloAPIError(
        response.status_code,
        f"unexpected answer: {response.text[:200]}",
        method=method,
        http_status=response.status_code,
    )


class ZaloHTTPClient:
    """Base of the Zalo clients: one connection pool (given, or its own, closed by `aclose`), one
    timeout and one retry policy for every call; share the instance."""

    def __init__(self, *, client: httpx.AsyncClient | None, timeout: float, retry: RetryPolicy) -> None:
        self.timeout = timeout
        self.retry = retry
        self._own_client = client is None
        self.http = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_client:
            await self.http.aclose()

    async def answer(
        self,
        verb: str,
        url: str,
        *,
        what: str,
        method: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """Send a request (retried as `policy` says) and return the answer with its JSON object;
        ZaloAPIError("unexpected answer") for the API `method` (default `what`) when it holds none."""
        response = await request_with_retries(
            self.http,
            verb,
            url,
            policy=policy or self.retry,
            what=what,
            timeout=self.timeout if timeout is None else timeout,
            **kwargs,
        )
        data = answer_object(response)
        if data is None:
            raise unexpected_answer(response, method or what)
        return response, data


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut a text into pieces of at most `limit` characters, preferring paragraph, line and word
    boundaries, so nothing is lost and no word is cut when it can be avoided."""
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator, 0, limit + 1)
            if position > limit // 4:
                cut = position
                break
        if cut == -1:
            head, rest = rest[:limit], rest[limit:]
        else:
            head, rest = rest[:cut], rest[cut:].lstrip("\n ")
        if head.strip():
            pieces.append(head.rstrip())
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces
