"""Telegram throughput: the full conversation flow against a bare python-telegram-bot echo bot.

Both bots run the real PTB Application with long polling against the project's fake Bot API
server, started in a separate process (so its work is not counted), and get the very same
updates: every simulated person registers for "Công dân học tập" and self-declares all ten items
by typing their answers, then submits. A third run puts an echo in place of the flow engine
behind our channel, to tell the channel's own cost from the conversation's. We measure, for
each bot in the same run (rounds alternate; medians are reported):

* updates per second (wall clock, from the start of polling until every update is handled);
* CPU time per update of the bot process (all threads, including SQLite's), split into the event
  loop's thread and all other threads (aiosqlite's worker threads, the image pool);
* for the full flow: SQL statements (BEGIN not counted), transactions and, on SQLite, round trips
  to aiosqlite's worker thread per update.

Then, unless `--no-latency`: the time from delivering an update to the bot sending its reply,
one step at a time (`--latency-people` people one after the other, each waiting for the answer
before typing the next message), and under load (`--load-people` people at once, each waiting for
its answer), p50/p95, for the same three bots. With `--memory N` the full flow then serves N more
conversations (24 at once) in one process and the resident memory is sampled every 100.

The figure of merit is the ratio full flow / echo per update (target ≤ 2×). Pacing is off for
both (Telegram's per-chat and global limits would measure the limiter, not the code); the full
flow still goes through our rate limiter and retry layer.

    .venv/bin/python bench/telegram_throughput.py            # 5 rounds of 10 people x 29 updates
    .venv/bin/python bench/telegram_throughput.py --profile flow.prof
    .venv/bin/python bench/telegram_throughput.py --database-url postgresql+asyncpg://…/empty_db
    .venv/bin/python bench/telegram_throughput.py --rounds 0 --no-latency --memory 1000
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

import aiosqlite  # noqa: E402
import aiosqlite.core  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

from bench.common import SCRIPT, FakeServer, median  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.channels.telegram import ALLOWED_UPDATES, TelegramChannel, TelegramOptions, TelegramService  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.flows.engine import FlowEngine, Outcome  # noqa: E402
from bot.flows.registry import build_router  # noqa: E402
from bot.messages import Outgoing  # noqa: E402
from bot.runner import settle_long_lived_objects  # noqa: E402
from bot.storage.commune import apply_commune, load_commune_file  # noqa: E402
from bot.storage.models import Submission  # noqa: E402
from tests.fakes.telegram_bot_api import TOKEN  # noqa: E402

CONCURRENT_UPDATES = 8
LOAD_PEOPLE = 24


class Clock:
    """Wall time, CPU of the whole process and CPU of this (the event loop's) thread."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.loop = time.perf_counter(), time.process_time(), time.thread_time()

    def stop(self) -> tuple[float, float, float]:
        return (time.perf_counter() - self.wall, time.process_time() - self.cpu, time.thread_time() - self.loop)


class DbCounter:
    """Counts what the full flow asks of its database: SQL statements (BEGIN excluded),
    transactions begun and — on SQLite — round trips to aiosqlite's worker thread."""

    trips = 0  # class-wide: every aiosqlite connection of this process

    def __init__(self, engine) -> None:  # noqa: ANN001 - AsyncEngine
        self.statements = 0
        self.transactions = 0
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "begin", self._begin)
        self._trips_at = DbCounter.trips

    def _statement(self, _conn, _cursor, statement: str, *_args) -> None:  # noqa: ANN001
        if not statement.lstrip().upper().startswith("BEGIN"):
            self.statements += 1

    def _begin(self, _conn) -> None:  # noqa: ANN001
        self.transactions += 1

    def reset(self) -> None:
        self.statements = self.transactions = 0
        self._trips_at = DbCounter.trips

    def figures(self) -> dict[str, int]:
        return {
            "statements": self.statements,
            "transactions": self.transactions,
            "trips": DbCounter.trips - self._trips_at,
        }

    @staticmethod
    def count_trips() -> None:
        """Counts every call that aiosqlite hands to its worker thread (benchmark only)."""
        original = aiosqlite.core.Connection._execute

        async def counted(self, fn, *args, **kwargs):  # noqa: ANN001, ANN202
            DbCounter.trips += 1
            return await original(self, fn, *args, **kwargs)

        aiosqlite.core.Connection._execute = counted


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@dataclass
class Result:
    name: str
    updates: int
    wall: float
    cpu: float
    loop_cpu: float = 0.0  # the event loop's thread (the main thread)
    db: dict[str, int] | None = None  # statements, transactions, trips (full flow only)

    @property
    def loop_ms(self) -> float:
        return 1000 * self.loop_cpu / self.updates

    @property
    def other_ms(self) -> float:  # clock granularity can make it a hair below zero
        return max(0.0, 1000 * (self.cpu - self.loop_cpu) / self.updates)

    def per_update(self, key: str) -> float:
        return (self.db or {}).get(key, 0) / self.updates

    @property
    def per_second(self) -> float:
        return self.updates / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.updates


def message_update(update_id: int, user: int, step: int, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 10_000 + step,
            "date": 1_790_000_000,
            "chat": {"id": user, "type": "private", "first_name": "An"},
            "from": {"id": user, "is_bot": False, "first_name": "An", "language_code": "vi"},
            "text": text,
        },
    }


def make_updates(people: int, first_user: int, start_id: int) -> list[dict]:
    """Interleaved like real traffic: everyone's first message, then everyone's second, …"""
    updates = []
    update_id = start_id
    for step, text in enumerate(SCRIPT, start=1):
        for person in range(people):
            updates.append(message_update(update_id, first_user + person, step, text))
            update_id += 1
    return updates


class Replies:
    """When each person's latest reply went out: the bots call `replied(user)` once the reply
    is sent; a driver waits for it before the person types the next message."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future] = {}

    def expect(self, user: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[user] = future
        return future

    def replied(self, user: int) -> None:
        future = self.waiting.pop(user, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


class Bot:
    """One of the three bots, polling the fake server; `handled()` counts updates done."""

    name = ""
    db: DbCounter | None = None

    async def start(self) -> None: ...
    async def begin_polling(self) -> None: ...
    async def stop(self) -> None: ...
    def handled(self) -> int: ...
    async def wait_handled(self, count: int) -> None: ...


class EchoBot(Bot):
    name = "bare PTB echo bot"

    def __init__(self, fake: FakeServer, concurrency: int, replies: Replies) -> None:
        self.count = 0
        self.progress = asyncio.Condition()

        async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
            await update.message.reply_text(update.message.text)
            replies.replied(update.effective_user.id)
            self.count += 1
            async with self.progress:
                self.progress.notify_all()

        self.application = (
            ApplicationBuilder()
            .token(TOKEN)
            .base_url(f"{fake.base}/bot")
            .base_file_url(f"{fake.base}/file/bot")
            .concurrent_updates(concurrency)
            .job_queue(None)
            .build()
        )
        self.application.add_handler(MessageHandler(filters.TEXT, echo))

    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()

    async def begin_polling(self) -> None:
        await self.application.updater.start_polling(timeout=1)

    def handled(self) -> int:
        return self.count

    async def wait_handled(self, count: int) -> None:
        async with self.progress:
            await asyncio.wait_for(self.progress.wait_for(lambda: self.count >= count), 600)

    async def stop(self) -> None:
        await self.application.updater.stop()
        await self.application.stop()
        await self.application.shutdown()


class EchoEngine:
    """Stands in for the flow engine: the same reply an echo bot gives, no database."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.router = build_router()

    async def process(self, msg, send):  # noqa: ANN001, ANN201
        replies = [Outgoing(msg.text or "?")]
        await send(replies)
        return Outcome(replies)


class Timed:
    """Wraps an engine: tells `Replies` when a person's replies have been sent."""

    def __init__(self, inner, replies: Replies) -> None:  # noqa: ANN001
        self.inner = inner
        self.app = inner.app
        self.router = inner.router
        self.replies = replies

    async def process(self, msg, send=None):  # noqa: ANN001, ANN201
        async def timed_send(outgoing):  # noqa: ANN001, ANN202
            await send(outgoing)
            self.replies.replied(int(msg.user_id))

        return await self.inner.process(msg, timed_send if send is not None else None)


class ChannelBot(Bot):
    """Our Telegram channel (rate limiter, retries, rendering) with the real flow engine, or with
    an echo in its place to tell the channel's cost from the conversation's."""

    def __init__(
        self,
        fake: FakeServer,
        folder: Path,
        database_url: str | None,
        concurrency: int,
        full_flow: bool,
        replies: Replies,
    ) -> None:
        self.fake, self.folder, self.database_url = fake, folder, database_url
        self.concurrency, self.full_flow, self.replies = concurrency, full_flow, replies
        self.name = "full flow (register + declare + submit)" if full_flow else "our channel, echo instead of the flows"

    async def start(self) -> None:
        settings = load_settings(
            database_url=self.database_url or f"sqlite+aiosqlite:///{self.folder / 'bench.db'}",
            evidence_dir=self.folder / "evidence",
        )
        self.app = app = await build_app(settings)
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), app.clock.now())
        if self.full_flow:
            self.db = DbCounter(app.engine)
        options = TelegramOptions(
            token=TOKEN,
            base_url=f"{self.fake.base}/bot",
            file_url=f"{self.fake.base}/file/bot",
            poll_timeout=1,
            rate_per_second=0,
            chat_rate_per_second=0,
            concurrent_updates=self.concurrency,
        )
        engine = FlowEngine(app, build_router()) if self.full_flow else EchoEngine(app)
        self.channel = TelegramChannel(Timed(engine, self.replies), options)  # type: ignore[arg-type]
        self.service = TelegramService(self.channel, "send")  # initialise without polling yet
        await self.service.start()
        settle_long_lived_objects()  # as `hoctap run` does once started

    async def begin_polling(self) -> None:
        await self.channel.application.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)

    def handled(self) -> int:
        return self.channel.handled

    async def wait_handled(self, count: int) -> None:
        await self.channel.wait_handled(count, timeout=600)

    async def submitted(self) -> int:
        async with self.app.sessions() as session:
            return await session.scalar(
                select(func.count()).select_from(Submission).where(Submission.state == "submitted")
            )

    async def stop(self) -> None:
        await self.service.stop()
        await self.app.close()


def make_bot(
    kind: str, fake: FakeServer, folder: Path, args: argparse.Namespace, concurrency: int, replies: Replies
) -> Bot:
    if kind == "echo":
        return EchoBot(fake, concurrency, replies)
    return ChannelBot(fake, folder, args.database_url, concurrency, kind == "flow", replies)


KINDS = ("echo", "channel", "flow")


async def throughput(
    fake: FakeServer, kind: str, updates: list[dict], args: argparse.Namespace, people: int, counted: bool = True
) -> Result:
    """All the updates waiting at once; the bot polls and handles them `--concurrency` at a time."""
    with tempfile.TemporaryDirectory() as folder:
        bot = make_bot(kind, fake, Path(folder), args, args.concurrency, Replies())
        await bot.start()
        await fake.inject(updates)
        # CPU time of the loop's thread, not wall time: time spent waiting in a system call for the
        # other processes on the machine (the fake server, PostgreSQL) is not the bot's cost.
        profiler = (
            cProfile.Profile(time.thread_time)
            if args.profile and kind == "flow" and counted and not args.profiled
            else None
        )
        if bot.db is not None:
            bot.db.reset()
        if profiler:
            profiler.enable()
        clock = Clock()
        await bot.begin_polling()
        await bot.wait_handled(len(updates))
        wall, cpu, loop = clock.stop()
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
            args.profiled = True
        db = bot.db.figures() if bot.db is not None else None
        submitted = await bot.submitted() if kind == "flow" else people
        await bot.stop()
    if submitted != people:
        raise RuntimeError(f"the script should submit {people} declarations, got {submitted}")
    return Result(bot.name, len(updates), wall, cpu, loop, db)


@dataclass
class Steps:
    """Closed-loop figures: each person waits for the answer before typing on."""

    name: str
    latencies: list[float]
    cpu: float
    loop_cpu: float
    db: dict[str, int] | None = None

    @property
    def p50(self) -> float:
        return 1000 * percentile(self.latencies, 0.5)

    @property
    def p95(self) -> float:
        return 1000 * percentile(self.latencies, 0.95)

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / len(self.latencies)

    def per_update(self, key: str) -> float:
        return (self.db or {}).get(key, 0) / len(self.latencies)


async def converse(
    fake: FakeServer,
    client: httpx.AsyncClient,
    replies: Replies,
    users: list[int],
    first_id: int,
    at_once: int,
    on_done=None,  # noqa: ANN001 - called after each finished conversation
) -> list[float]:
    """Whole conversations, `at_once` people at a time, each message sent after the previous
    answer; returns the time from posting each update to the fake server until its reply went out."""
    latencies: list[float] = []
    queue = list(users)
    next_id = iter(range(first_id, first_id + len(users) * len(SCRIPT) + 1))
    # Update ids must reach the server in increasing order: one confirmed by the bot's offset
    # drops any smaller one posted later.
    posting = asyncio.Lock()

    async def person(user: int) -> None:
        for step, text in enumerate(SCRIPT, start=1):
            answered = replies.expect(user)
            async with posting:
                started = time.perf_counter()
                update = message_update(next(next_id), user, step, text)
                (await client.post(f"{fake.base}/_control/inject", json={"updates": [update]})).raise_for_status()
            latencies.append(await asyncio.wait_for(answered, 60) - started)

    async def worker() -> None:
        while queue:
            await person(queue.pop(0))
            if on_done is not None:
                on_done()

    await asyncio.gather(*(worker() for _ in range(at_once)))
    return latencies


async def steps(fake: FakeServer, kind: str, args: argparse.Namespace, people: int, at_once: int, base: int) -> Steps:
    replies = Replies()
    with tempfile.TemporaryDirectory() as folder:
        bot = make_bot(kind, fake, Path(folder), args, max(args.concurrency, at_once), replies)
        await bot.start()
        await bot.begin_polling()
        async with httpx.AsyncClient(timeout=60) as client:
            await converse(fake, client, replies, [base - 1], base * 10, 1)  # warm up: one conversation
            if bot.db is not None:
                bot.db.reset()
            clock = Clock()
            latencies = await converse(
                fake, client, replies, list(range(base, base + people)), base * 10 + 100, at_once
            )
            _wall, cpu, loop = clock.stop()
        db = bot.db.figures() if bot.db is not None else None
        await bot.stop()
    return Steps(bot.name, latencies, cpu, loop, db)


async def memory(fake: FakeServer, args: argparse.Namespace, conversations: int) -> list[tuple[int, float]]:
    """The full flow serving `conversations` conversations, 24 at once, in this one process:
    resident memory (VmRSS) before and after every 100."""
    replies = Replies()
    samples = [(0, rss_mb())]
    done = 0

    def finished() -> None:
        nonlocal done
        done += 1
        if done % 100 == 0:
            samples.append((done, rss_mb()))
            print(f"  after {done} conversations: VmRSS {samples[-1][1]:.1f} MB", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        bot = make_bot("flow", fake, Path(folder), args, LOAD_PEOPLE, replies)
        await bot.start()
        await bot.begin_polling()
        samples[0] = (0, rss_mb())
        print(f"  full flow started: VmRSS {samples[0][1]:.1f} MB", flush=True)
        async with httpx.AsyncClient(timeout=60) as client:
            await converse(
                fake,
                client,
                replies,
                list(range(300_000_000, 300_000_000 + conversations)),
                3_000_000_000,
                LOAD_PEOPLE,
                finished,
            )
        submitted = await bot.submitted()
        await bot.stop()
    if submitted != conversations:
        raise RuntimeError(f"{conversations} declarations should be submitted, got {submitted}")
    return samples


def print_throughput(args: argparse.Namespace, results: dict[str, list[Result]], database: str) -> dict:
    echoes, channels, flows = results["echo"], results["channel"], results["flow"]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"{args.people} people x {len(SCRIPT)} updates, {args.concurrency} concurrent updates, "
        f"{args.rounds} rounds, database: {database}"
    )
    print(
        f"{'round':<7}{'bot':<42}{'upd/s':>8}{'CPU ms/upd':>11}{'loop':>7}{'other':>7}{'vs echo':>9}"
        f"{'stmts':>7}{'tx':>6}{'trips':>7}"
    )
    ratios = []
    for number, (echo, channel, flow) in enumerate(zip(echoes, channels, flows, strict=False), start=1):
        ratios.append(flow.cpu_ms / echo.cpu_ms)
        print(
            f"{number:<7}{echo.name:<42}{echo.per_second:>8.1f}{echo.cpu_ms:>11.2f}{echo.loop_ms:>7.2f}{echo.other_ms:>7.2f}"
        )
        for result in (channel, flow):
            line = (
                f"{'':<7}{result.name:<42}{result.per_second:>8.1f}{result.cpu_ms:>11.2f}{result.loop_ms:>7.2f}"
                f"{result.other_ms:>7.2f}{result.cpu_ms / echo.cpu_ms:>8.2f}x"
            )
            if result.db is not None:
                line += (
                    f"{result.per_update('statements'):>7.2f}{result.per_update('transactions'):>6.2f}"
                    f"{result.per_update('trips'):>7.1f}"
                )
            print(line)
    channel_ratios = [c.cpu_ms / e.cpu_ms for c, e in zip(channels, echoes, strict=False)]
    summary = {
        "echo_updates_per_second": median([e.per_second for e in echoes]),
        "echo_cpu_ms_per_update": median([e.cpu_ms for e in echoes]),
        "channel_updates_per_second": median([c.per_second for c in channels]),
        "channel_cpu_ms_per_update": median([c.cpu_ms for c in channels]),
        "channel_cpu_ratio": median(channel_ratios),
        "flow_updates_per_second": median([f.per_second for f in flows]),
        "flow_cpu_ms_per_update": median([f.cpu_ms for f in flows]),
        "flow_loop_cpu_ms_per_update": median([f.loop_ms for f in flows]),
        "flow_other_cpu_ms_per_update": median([f.other_ms for f in flows]),
        "cpu_ratio": median(ratios),
        "cpu_ratio_range": [min(ratios), max(ratios)],
        "statements_per_update": median([f.per_update("statements") for f in flows]),
        "transactions_per_update": median([f.per_update("transactions") for f in flows]),
        "trips_per_update": median([f.per_update("trips") for f in flows]),
    }
    print(
        f"median: echo {summary['echo_updates_per_second']:.1f} upd/s, {summary['echo_cpu_ms_per_update']:.2f} ms CPU/upd; "
        f"our channel {summary['channel_updates_per_second']:.1f} upd/s, {summary['channel_cpu_ms_per_update']:.2f} ms CPU/upd; "
        f"full flow {summary['flow_updates_per_second']:.1f} upd/s, {summary['flow_cpu_ms_per_update']:.2f} ms CPU/upd "
        f"(loop thread {summary['flow_loop_cpu_ms_per_update']:.2f}, other threads {summary['flow_other_cpu_ms_per_update']:.2f})"
    )
    print(
        f"median ratios vs echo, CPU per update: our channel alone {summary['channel_cpu_ratio']:.2f}x, "
        f"full flow {summary['cpu_ratio']:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x; target <= 2x)"
    )
    print(
        f"full flow per update: {summary['statements_per_update']:.2f} SQL statements, "
        f"{summary['transactions_per_update']:.2f} transactions, {summary['trips_per_update']:.1f} aiosqlite trips"
    )
    return summary


def print_steps(title: str, runs: list[Steps]) -> dict:
    print(title)
    print(
        f"{'bot':<42}{'steps':>6}{'p50 ms':>8}{'p95 ms':>8}{'CPU ms/upd':>11}{'vs echo':>9}{'stmts':>7}{'tx':>6}{'trips':>7}"
    )
    echo = runs[0]
    summary = {}
    for run in runs:
        line = (
            f"{run.name:<42}{len(run.latencies):>6}{run.p50:>8.1f}{run.p95:>8.1f}{run.cpu_ms:>11.2f}"
            f"{run.cpu_ms / echo.cpu_ms:>8.2f}x"
        )
        if run.db is not None:
            line += f"{run.per_update('statements'):>7.2f}{run.per_update('transactions'):>6.2f}{run.per_update('trips'):>7.1f}"
        print(line)
        summary[run.name] = {"p50_ms": run.p50, "p95_ms": run.p95, "cpu_ms_per_update": run.cpu_ms}
    return summary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENT_UPDATES, help="updates handled at once (both bots)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (a fresh database is made beside the one named for each bot and dropped after) "
        "or an EMPTY SQLite file (one round); default: fresh SQLite files",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a cProfile of the full flow here (CPU time of the loop's thread)",
    )
    parser.add_argument(
        "--only", choices=KINDS, default=None, help="run only this bot's throughput rounds (for a sampling profiler)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="people in an uncounted first round of each bot (0: none)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency and load figures")
    parser.add_argument("--latency-people", type=int, default=3, help="people whose steps are timed one at a time")
    parser.add_argument("--load-people", type=int, default=LOAD_PEOPLE, help="people at once for the load figure")
    parser.add_argument("--memory", type=int, default=0, help="then N conversations of the full flow; RSS every 100")
    args = parser.parse_args()
    args.profiled = False
    logging.basicConfig(level=logging.WARNING)
    postgres = bool(args.database_url and args.database_url.startswith("postgres"))
    if args.database_url and not postgres:
        args.rounds = min(args.rounds, 1)  # one SQLite file named: it cannot be fresh twice
        args.warmup = 0
    DbCounter.count_trips()
    database = "PostgreSQL" if postgres else "SQLite"

    fake = FakeServer()
    results: dict[str, list[Result]] = {kind: [] for kind in KINDS}
    summary: dict = {}
    try:
        if args.rounds and args.warmup:
            # One small round of each bot first, not counted: the first bot to run would otherwise
            # pay the process's first-time costs alone (the echo bot's first round was 20–30%
            # dearer than its later ones, which flattered the ratio of that round).
            for offset, kind in enumerate(KINDS):
                if args.only and kind != args.only:
                    continue
                updates = make_updates(args.warmup, 1_000_000 * (offset + 1), 1_000_000 * (offset + 1))
                async with database_for(args, postgres):
                    await throughput(fake, kind, updates, args, args.warmup, counted=False)
        for round_number in range(args.rounds):
            base = 10_000_000 * (round_number + 1)
            for offset, kind in enumerate(KINDS):
                if args.only and kind != args.only:
                    continue
                updates = make_updates(args.people, base + 3_000_000 * offset, base + 3_000_000 * offset)
                async with database_for(args, postgres):
                    results[kind].append(await throughput(fake, kind, updates, args, args.people))
        if args.rounds and args.only:
            for result in results[args.only]:
                print(f"{result.name}: {result.cpu_ms:.2f} ms CPU/upd, {result.per_second:.1f} upd/s")
        elif args.rounds:
            summary["throughput"] = print_throughput(args, results, database)
        if not args.no_latency:
            one, load = [], []
            for offset, kind in enumerate(KINDS):
                async with database_for(args, postgres):
                    one.append(await steps(fake, kind, args, args.latency_people, 1, 100_000_000 + 1_000_000 * offset))
            for offset, kind in enumerate(KINDS):
                async with database_for(args, postgres):
                    load.append(
                        await steps(
                            fake, kind, args, args.load_people, args.load_people, 200_000_000 + 1_000_000 * offset
                        )
                    )
            summary["one_at_a_time"] = print_steps(
                f"latency, one step at a time ({args.latency_people} people x {len(SCRIPT)} steps, {database}): "
                "delivery to reply sent",
                one,
            )
            summary["load"] = print_steps(
                f"under load: {args.load_people} people at once, each waiting for its answer ({database})", load
            )
        if args.memory:
            async with database_for(args, postgres):
                samples = await memory(fake, args, args.memory)
            print(
                f"full flow, {args.memory} conversations ({LOAD_PEOPLE} at once) in one process, VmRSS MB: "
                + ", ".join(f"{n}: {mb:.1f}" for n, mb in samples)
            )
            summary["rss_mb"] = samples
        calls = (await fake.stats())["calls"]
    finally:
        fake.close()
    print(f"Bot API calls seen by the fake server: {json.dumps(calls, sort_keys=True)}")
    if args.json:
        print(json.dumps(summary))


class database_for:  # noqa: N801 - used as `async with`
    """A fresh PostgreSQL database for one bot when `--database-url` names a PostgreSQL server
    (created next to the one named, dropped afterwards); otherwise nothing to do."""

    def __init__(self, args: argparse.Namespace, postgres: bool) -> None:
        self.args, self.postgres = args, postgres

    async def __aenter__(self) -> None:
        if self.postgres:
            from tests.support.db import create_database  # noqa: PLC0415 - only for PostgreSQL runs

            self.server_url = self.args.database_url
            self.args.database_url = await create_database(self.server_url, prefix="hoctap_bench")

    async def __aexit__(self, *_exc) -> None:  # noqa: ANN002
        if self.postgres:
            from tests.support.db import drop_database  # noqa: PLC0415

            await drop_database(self.args.database_url, self.server_url)
            self.args.database_url = self.server_url


if __name__ == "__main__":
    asyncio.run(main())
