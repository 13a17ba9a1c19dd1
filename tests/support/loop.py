"""Whether slow work (image cleaning, uploads) leaves the event loop free for other requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Ticked:
    result: Any
    started: float  # time.monotonic() when the work began
    took: float  # seconds
    ticks: list[float]  # when the ticker ran: a long gap means the loop was held


async def run_while_ticking(work: Callable[[], Awaitable[Any]]) -> Ticked:
    """Await `work()` while a ticker notes the time every 50 ms on the same event loop."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.06)
    started = time.monotonic()
    try:
        result = await work()
        took = time.monotonic() - started
    finally:
        done.set()
        await ticker
    return Ticked(result, started, took, ticks)
