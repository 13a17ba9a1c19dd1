"""Staying within Telegram's limits, and riding out its hiccups.

python-telegram-bot's `AIORateLimiter` (the `rate-limiter` extra) already paces all sends to
≈30 messages per second, paces group chats to 20 per minute and, on a 429, pauses *every*
request for `retry_after` before trying again. It does not pace a private chat (Telegram asks
for about one message per second per chat) and it does not retry network trouble. This limiter
wraps it and adds both:

* per private chat: a leaky bucket of `chat_rate` messages per second that allows a short burst
  (`chat_burst`), so one turn of the conversation (a remark and the next question) goes out at
  once while a long series is spread out;
* transient failures (timeouts, connection errors, 5xx) are retried with exponential backoff and
  jitter, `transient_retries` times;
* a 429 asking for more than `retry_after_max` seconds is not slept through inside a request: the
  `RetryAfter` goes back to the caller (a reply in a conversation is then redelivered by
  Telegram's webhook retry, a reminder is rescheduled by the dispatcher).

Errors that retrying cannot fix (403 Forbidden, 400 Bad Request, invalid token) pass straight through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import warnings
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import AIORateLimiter, BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

# PTB 22 warns on every 429 that `RetryAfter.retry_after` (and other durations) will become
# `timedelta` in its next major version; opt in now (we read durations only through
# `retry_after_seconds`, which accepts both) unless the operator decided otherwise.
os.environ.setdefault("PTB_TIMEDELTA", "true")

JSONResult = Any
# Forget idle per-chat buckets once this many are kept.
MAX_CHAT_BUCKETS = 2048


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _RetryTooFar(Exception):
    """Carries a RetryAfter past AIORateLimiter so it does not sleep through a long pause."""

    def __init__(self, original: RetryAfter) -> None:
        super().__init__(str(original))
        self.original = original


class TelegramRateLimiter(BaseRateLimiter[int]):
    def __init__(
        self,
        *,
        overall_rate: float = 30,
        chat_rate: float = 1,
        chat_burst: int = 3,
        group_per_minute: float = 20,
        retry_after_retries: int = 2,
        retry_after_max: float = 30,
        transient_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10,
    ) -> None:
        self._inner = AIORateLimiter(
            overall_max_rate=overall_rate,
            overall_time_period=1 if overall_rate else 0,
            group_max_rate=group_per_minute,
            group_time_period=60 if group_per_minute else 0,
            max_retries=retry_after_retries,
        )
        self.chat_rate = chat_rate
        self.chat_burst = max(1, chat_burst)
        self.retry_after_max = retry_after_max
        self.transient_retries = transient_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._chats: dict[int, AsyncLimiter] = {}

    async def initialize(self) -> None:
        await self._inner.initialize()

    async def shutdown(self) -> None:
        await self._inner.shutdown()

    def _chat_limiter(self, data: dict[str, Any]) -> AbstractAsyncContextManager[Any]:
        if not self.chat_rate:
            return nullcontext()
        try:
            chat_id = int(data.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return nullcontext()
        if chat_id <= 0:
            return nullcontext()  # groups and channels: AIORateLimiter's group limit applies
        limiter = self._chats.get(chat_id)
        if limiter is None:
            if len(self._chats) >= MAX_CHAT_BUCKETS:
                for key, idle in list(self._chats.items()):
                    if idle.has_capacity(idle.max_rate):
                        del self._chats[key]
            limiter = AsyncLimiter(self.chat_burst, self.chat_burst / self.chat_rate)
            self._chats[chat_id] = limiter
        return limiter

    def backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        return delay * random.uniform(0.75, 1.25)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSONResult:
        async def guarded(*call_args: Any, **call_kwargs: Any) -> JSONResult:
            try:
                return await callback(*call_args, **call_kwargs)
            except RetryAfter as exc:
                if retry_after_seconds(exc) > self.retry_after_max:
                    raise _RetryTooFar(exc) from exc
                log.info("telegram %s: 429, waiting %.0fs as asked", endpoint, retry_after_seconds(exc))
                raise

        attempt = 0
        while True:
            try:
                async with self._chat_limiter(data):
                    return await self._inner.process_request(
                        callback=guarded,
                        args=args,
                        kwargs=kwargs,
                        endpoint=endpoint,
                        data=data,
                        rate_limit_args=rate_limit_args,
                    )
            except _RetryTooFar as exc:
                raise exc.original from None
            except BadRequest:
                raise
            except NetworkError as exc:  # TimedOut, connection errors, 5xx
                if attempt >= self.transient_retries:
                    log.warning("telegram %s failed after %d retries: %s", endpoint, attempt, exc)
                    raise
                delay = self.backoff(attempt)
                attempt += 1
                log.info("telegram %s: %s; retry %d in %.2fs", endpoint, exc, attempt, delay)
                await asyncio.sleep(delay)
