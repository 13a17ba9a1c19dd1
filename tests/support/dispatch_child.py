"""A separate process running the real outbox dispatcher with the real Telegram sender, so a test
can kill -9 it in the middle of a batch or run two of them on one outbox.

    python -m tests.support.dispatch_child --db URL --api BASE_URL --file-api FILE_URL \
        --worker NAME [--shift SECONDS] [--rate N] [--lease SECONDS] [--go-file PATH]

Settings come from the command line (plus the usual environment): no quiet hours, the given
pace for Telegram with no per-chat spacing. `--shift` runs the process's clock that many seconds
ahead of real time (a later process that finds the dead one's lease already expired, without
the test sleeping through it). With `--go-file` the dispatcher waits until that file exists
(two processes start together). It prints `READY` once started, then passes until nothing due is
left, prints `DONE <json report totals>` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.app import build_app
from bot.channels.base import SenderRegistry
from bot.channels.telegram import TelegramChannel, TelegramSender, TelegramService
from bot.clock import UTC
from bot.config import load_settings
from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.reminders.dispatch import Dispatcher
from bot.storage.models import OutboxMessage
from tests.support.telegram import fake_api_options


class ShiftedClock:
    """Real time, `shift` seconds ahead."""

    def __init__(self, shift: float) -> None:
        self.shift = timedelta(seconds=shift)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(
        database_url=args.db,
        evidence_dir=Path(args.evidence),
        quiet_start="00:00",
        quiet_end="00:00",
        dispatch_limits={"telegram": {"rate": args.rate, "chat_spacing": 0}},
        dispatch_lease_seconds=args.lease,
        dispatch_backoff_seconds=1,
    )
    app = await build_app(settings, ShiftedClock(args.shift))
    options = fake_api_options(args.api, args.file_api, read_timeout=10, rate_per_second=0)
    channel = TelegramChannel(FlowEngine(app, build_router()), options)
    service = TelegramService(channel, "send")
    await service.start()
    registry = SenderRegistry()
    registry.register(TelegramSender(channel))
    dispatcher = Dispatcher(app, registry, worker_id=args.worker)
    print("READY", flush=True)
    if args.go_file:
        while not Path(args.go_file).exists():
            await asyncio.sleep(0.02)
    totals: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            report = await dispatcher.run_once()
            for name in ("claimed", "sent", "retried", "failed", "recovered", "unconfirmed", "released"):
                totals[name] = totals.get(name, 0) + getattr(report, name)
            if report.claimed or report.full:
                continue
            async with app.sessions() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status.in_(("pending", "claimed")))
                )
            if not left:
                break
            await asyncio.sleep(0.1)  # another dispatcher's rows, or a back-off: look again soon
    finally:
        await service.stop()
        await app.close()
    print("DONE " + json.dumps(totals), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--file-api", required=True)
    parser.add_argument("--evidence", default="./evidence")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--lease", type=int, default=10)
    parser.add_argument("--go-file")
    asyncio.run(main(parser.parse_args()))
