"""Telegram throughput: the full conversation flow against a bare python-telegram-bot echo bot.

Both bots run the real PTB Application with long polling against the project's fake Bot API
server, started in a separate process (so its work is not counted), and get the very same
updates: every simulated person registers for "Công dân học tập" and self-declares all ten items
by typing their answers, then submits. A third run puts an echo in place of the flow engine
behind our channel, to tell the channel's own cost from the conversation's. We measure, for
each bot in the same run (rounds alternate; medians are reported):

* updates per second (wall clock, from the start of polling until every update is handled);
* CPU time per update of the bot process (all threads, including SQLite's).

The figure of merit is the ratio full flow / echo per update (target ≤ 2×). Pacing is off for
both (Telegram's per-chat and global limits would measure the limiter, not the code); the full
flow still goes through our rate limiter and retry layer.

    .venv/bin/python bench/telegram_throughput.py            # 5 rounds of 10 people x 29 updates
    .venv/bin/python bench/telegram_throughput.py --profile flow.prof
    .venv/bin/python bench/telegram_throughput.py --database-url postgresql+asyncpg://…/empty_db
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

from bench.common import SCRIPT, FakeServer, median  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.channels.telegram import ALLOWED_UPDATES, TelegramChannel, TelegramOptions, TelegramService  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.flows.registry import build_router  # noqa: E402
from bot.flows.engine import FlowEngine, Outcome  # noqa: E402
from bot.messages import Outgoing  # noqa: E402
from bot.storage.commune import apply_commune, load_commune_file  # noqa: E402
from bot.storage.models import Submission  # noqa: E402
from tests.fakes.telegram_bot_api import TOKEN  # noqa: E402

CONCURRENT_UPDATES = 8


@dataclass
class Result:
    name: str
    updates: int
    wall: float
    cpu: float

    @property
    def per_second(self) -> float:
        return self.updates / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.updates


def make_updates(people: int, first_user: int, start_id: int) -> list[dict]:
    """Interleaved like real traffic: everyone's first message, then everyone's second, …"""
    updates = []
    update_id = start_id
    for step, text in enumerate(SCRIPT, start=1):
        for person in range(people):
            user = first_user + person
            updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": 10_000 + step,
                        "date": 1_790_000_000,
                        "chat": {"id": user, "type": "private", "first_name": "An"},
                        "from": {"id": user, "is_bot": False, "first_name": "An", "language_code": "vi"},
                        "text": text,
                    },
                }
            )
            update_id += 1
    return updates


async def run_echo(fake: FakeServer, updates: list[dict], concurrency: int) -> Result:
    done = asyncio.Event()
    handled = 0

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal handled
        await update.message.reply_text(update.message.text)
        handled += 1
        if handled == len(updates):
            done.set()

    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{fake.base}/bot")
        .base_file_url(f"{fake.base}/file/bot")
        .concurrent_updates(concurrency)
        .job_queue(None)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    await fake.inject(updates)
    await application.initialize()
    await application.start()
    wall, cpu = time.perf_counter(), time.process_time()
    await application.updater.start_polling(timeout=1)
    await asyncio.wait_for(done.wait(), 300)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await application.updater.stop()
    await application.stop()
    await application.shutdown()
    return Result("bare PTB echo bot", len(updates), wall, cpu)


class EchoEngine:
    """Stands in for the flow engine: the same reply an echo bot gives, no database."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.router = build_router()

    async def process(self, msg, send):  # noqa: ANN001, ANN201
        replies = [Outgoing(msg.text or "?")]
        await send(replies)
        return Outcome(replies)


async def run_channel(
    fake: FakeServer,
    updates: list[dict],
    folder: Path,
    database_url: str | None,
    people: int,
    concurrency: int,
    full_flow: bool,
) -> Result:
    """Our Telegram channel (rate limiter, retries, rendering) with the real flow engine, or with
    an echo in its place to tell the channel's cost from the conversation's."""
    settings = load_settings(
        database_url=database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        evidence_dir=folder / "evidence",
    )
    app = await build_app(settings)
    async with app.sessions.begin() as session:
        await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), app.clock.now())
    options = TelegramOptions(
        token=TOKEN,
        base_url=f"{fake.base}/bot",
        file_url=f"{fake.base}/file/bot",
        poll_timeout=1,
        rate_per_second=0,
        chat_rate_per_second=0,
        concurrent_updates=concurrency,
    )
    engine = FlowEngine(app, build_router()) if full_flow else EchoEngine(app)
    channel = TelegramChannel(engine, options)  # type: ignore[arg-type]
    service = TelegramService(channel, "send")  # initialise without polling yet
    await fake.inject(updates)
    await service.start()
    application = channel.application
    wall, cpu = time.perf_counter(), time.process_time()
    await application.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await channel.wait_handled(len(updates), timeout=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await service.stop()
    async with app.sessions() as session:
        submitted = await session.scalar(select(func.count()).select_from(Submission).where(Submission.state == "submitted"))
    await app.close()
    if not full_flow:
        return Result("our channel, echo instead of the flows", len(updates), wall, cpu)
    if submitted != people:
        raise RuntimeError(f"the script should submit {people} declarations, got {submitted}")
    return Result("full flow (register + declare + submit)", len(updates), wall, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--concurrency", type=int, default=CONCURRENT_UPDATES, help="updates handled at once (both bots)")
    parser.add_argument("--database-url", default=None, help="an EMPTY database (one round); default: fresh SQLite files")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the full flow here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.database_url:
        args.rounds = 1

    fake = FakeServer()
    echoes: list[Result] = []
    channels: list[Result] = []
    flows: list[Result] = []
    try:
        for round_number in range(args.rounds):
            base = 10_000_000 * (round_number + 1)
            echoes.append(await run_echo(fake, make_updates(args.people, base, base), args.concurrency))
            for offset, full_flow, results in ((3_000_000, False, channels), (6_000_000, True, flows)):
                updates = make_updates(args.people, base + offset, base + offset)
                with tempfile.TemporaryDirectory() as folder:
                    profiler = cProfile.Profile() if args.profile and full_flow and round_number == 0 else None
                    if profiler:
                        profiler.enable()
                    results.append(
                        await run_channel(
                            fake, updates, Path(folder), args.database_url, args.people, args.concurrency, full_flow
                        )
                    )
                    if profiler:
                        profiler.disable()
                        profiler.dump_stats(args.profile)
        calls = (await fake.stats())["calls"]
    finally:
        fake.close()

    database = "PostgreSQL" if args.database_url and args.database_url.startswith("postgres") else "SQLite"
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.people} people x {len(SCRIPT)} updates, "
        f"{args.concurrency} concurrent updates, {args.rounds} rounds, database: {database}"
    )
    print(f"{'round':<7}{'bot':<42}{'upd/s':>9}{'CPU ms/upd':>12}{'vs echo':>10}")
    ratios = []
    for number, (echo, channel, flow) in enumerate(zip(echoes, channels, flows), start=1):
        ratios.append(flow.cpu_ms / echo.cpu_ms)
        print(f"{number:<7}{echo.name:<42}{echo.per_second:>9.1f}{echo.cpu_ms:>12.2f}")
        for result in (channel, flow):
            print(f"{'':<7}{result.name:<42}{result.per_second:>9.1f}{result.cpu_ms:>12.2f}{result.cpu_ms / echo.cpu_ms:>9.2f}x")
    summary = {
        "echo_updates_per_second": median([e.per_second for e in echoes]),
        "echo_cpu_ms_per_update": median([e.cpu_ms for e in echoes]),
        "channel_updates_per_second": median([c.per_second for c in channels]),
        "channel_cpu_ms_per_update": median([c.cpu_ms for c in channels]),
        "channel_cpu_ratio": median([c.cpu_ms / e.cpu_ms for c, e in zip(channels, echoes)]),
        "flow_updates_per_second": median([f.per_second for f in flows]),
        "flow_cpu_ms_per_update": median([f.cpu_ms for f in flows]),
        "cpu_ratio": median(ratios),
    }
    print(
        f"median: echo {summary['echo_updates_per_second']:.1f} upd/s, {summary['echo_cpu_ms_per_update']:.2f} ms CPU/upd; "
        f"our channel {summary['channel_updates_per_second']:.1f} upd/s, {summary['channel_cpu_ms_per_update']:.2f} ms CPU/upd; "
        f"full flow {summary['flow_updates_per_second']:.1f} upd/s, {summary['flow_cpu_ms_per_update']:.2f} ms CPU/upd"
    )
    print(
        f"median ratios vs echo, CPU per update: our channel alone {summary['channel_cpu_ratio']:.2f}x, "
        f"full flow {summary['cpu_ratio']:.2f}x (target <= 2x)"
    )
    print(f"Bot API calls seen by the fake server: {json.dumps(calls, sort_keys=True)}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
