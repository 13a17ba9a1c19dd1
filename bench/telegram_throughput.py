"""Telegram throughput: the full conversation flow against a bare python-telegram-bot echo bot.

Both bots run the real PTB Application with long polling against the project's fake Bot API
server, started in a separate process (so its work is not counted), and get the very same
updates: every simulated person registers for "Công dân học tập" and self-declares all ten items
by typing their answers, then submits. We measure, for each bot in the same run:

* updates per second (wall clock, from the start of polling until every update is handled);
* CPU time per update of the bot process (all threads, including SQLite's).

The figure of merit is the ratio full flow / echo per update (target ≤ 2×). Pacing is off for
both (Telegram's per-chat and global limits would measure the limiter, not the code); the full
flow still goes through our rate limiter and retry layer.

    .venv/bin/python bench/telegram_throughput.py            # default: 40 people, ~1200 updates
    .venv/bin/python bench/telegram_throughput.py --people 10 --profile flow.prof
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

from bot.app import build_app  # noqa: E402
from bot.channels.telegram import TelegramChannel, TelegramOptions, TelegramService  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.flows import ROUTER  # noqa: E402
from bot.flows.engine import FlowEngine  # noqa: E402
from bot.storage.commune import apply_commune, load_commune_file  # noqa: E402
from bot.storage.models import Submission  # noqa: E402
from tests.fakes.telegram_bot_api import TOKEN  # noqa: E402

CONCURRENT_UPDATES = 8
# What a person types, from first contact to a submitted declaration (answers by number).
SCRIPT = (
    ["xin chào", "1", "1", "Nguyễn Văn An", "1980", "2", "1", "1"]
    + ["1", "1"] * 10  # each item: "Đạt", then "Không có ảnh"
    + ["1"]  # "Nộp hồ sơ"
)


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


class FakeServer:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.telegram_bot_api", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip() if self.process.stdout else ""
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"fake Bot API did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def inject(self, updates: list[dict]) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(f"{self.base}/_control/inject", json={"updates": updates})
            response.raise_for_status()

    async def stats(self) -> dict:
        async with httpx.AsyncClient(timeout=60) as client:
            return (await client.get(f"{self.base}/_control/stats")).json()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def run_echo(fake: FakeServer, updates: list[dict]) -> Result:
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
        .concurrent_updates(CONCURRENT_UPDATES)
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


async def run_flow(fake: FakeServer, updates: list[dict], folder: Path, database_url: str | None, people: int) -> Result:
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
        concurrent_updates=CONCURRENT_UPDATES,
    )
    channel = TelegramChannel(FlowEngine(app, ROUTER), options)
    service = TelegramService(channel, "send")  # initialise without polling yet
    await fake.inject(updates)
    await service.start()
    application = channel.application
    wall, cpu = time.perf_counter(), time.process_time()
    await application.updater.start_polling(timeout=1, allowed_updates=["message", "callback_query"])
    await channel.wait_handled(len(updates), timeout=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await service.stop()
    async with app.sessions() as session:
        submitted = await session.scalar(select(func.count()).select_from(Submission).where(Submission.state == "submitted"))
    await app.close()
    if submitted != people:
        raise RuntimeError(f"the script should submit {people} declarations, got {submitted}")
    return Result("full flow (register + declare + submit)", len(updates), wall, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the full flow here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    fake = FakeServer()
    try:
        echo_updates = make_updates(args.people, 5_000_000, 1)
        echo = await run_echo(fake, echo_updates)
        flow_updates = make_updates(args.people, 6_000_000, 1_000_000)
        with tempfile.TemporaryDirectory() as folder:
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            flow = await run_flow(fake, flow_updates, Path(folder), args.database_url, args.people)
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
        sends = (await fake.stats())["calls"]
    finally:
        fake.close()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.people} people, "
          f"{len(SCRIPT)} updates each, {CONCURRENT_UPDATES} concurrent updates")
    print(f"{'bot':<42}{'updates':>8}{'upd/s':>9}{'CPU ms/upd':>12}")
    for result in (echo, flow):
        print(f"{result.name:<42}{result.updates:>8}{result.per_second:>9.1f}{result.cpu_ms:>12.2f}")
    ratio = flow.cpu_ms / echo.cpu_ms
    print(f"ratio full flow / echo: CPU per update {ratio:.2f}x, throughput {echo.per_second / flow.per_second:.2f}x slower")
    print(f"Bot API calls seen by the fake server: {json.dumps(sends, sort_keys=True)}")
    if args.json:
        print(json.dumps({"echo": vars(echo), "flow": vars(flow), "cpu_ratio": ratio}))


if __name__ == "__main__":
    asyncio.run(main())
