"""HTTP plumbing shared by the Zalo clients: retries with backoff on timeouts and 5xx only,
and splitting long texts to the platform's length limit."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx

from bot.zalo.errors import ZaloNetworkError, ZaloServerError

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
