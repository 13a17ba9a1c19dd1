"""Chaos run: people declare through real web workers that keep getting killed, on a flaky platform.

Several simulated people register for "Công dân học tập" and self-declare all ten items (one with
a photo), then submit — through Telegram webhooks delivered to web worker processes started as
an operator starts them (`python -m bot run --role web`, here two of them, sharing one database).
Meanwhile a chaos loop sends SIGKILL to a worker at random intervals and starts a replacement,
and the fake Bot API server (tests/fakes/telegram_bot_api.py, in this process, on 127.0.0.1)
answers some sendMessage calls with 5xx. Each update is delivered as Telegram does: to any worker,
again and again until one answers 200 (a dead worker, or a 503 because the reply could not go
out, means another delivery later).

At the end it checks: every declaration submitted, nothing lost (every person's ten answers and
photo saved), nothing doubled (the database invariant checker: one submission per person, one
answer per item, each photo once, each update processed once), and prints figures.

    .venv/bin/python bench/chaos.py                               # 8 people, SQLite, ≈ 15 s
    .venv/bin/python bench/chaos.py --people 3 --duration 40
    .venv/bin/python bench/chaos.py --pg                          # a fresh PostgreSQL database
    .venv/bin/python bench/chaos.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/EMPTY_DB

Exit status 0 when everything checked out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.app import build_app  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.storage.commune import apply_commune, load_commune_file  # noqa: E402
from bot.storage.models import Answer, ChannelAccount, Evidence, Submission  # noqa: E402
from tests.fakes.telegram_bot_api import FakeBotApi, FakeUser  # noqa: E402
from tests.support.images import jpeg  # noqa: E402
from tests.support.invariants import check_invariants  # noqa: E402
from tests.support.workers import WebWorker  # noqa: E402

PHOTO = object()
# What a person types, from first contact to a submitted declaration (answers by number).
SCRIPT: list[object] = (
    ["xin chào", "1", "1", "Nguyễn Văn An", "1980", "2", "1", "1"]
    + ["1", PHOTO, "xong"]  # item 1: "Đạt", a photo, "Xong"
    + ["1", "1"] * 9  # items 2–10: "Đạt", then "Không có ảnh"
    + ["1", "1"]  # "Nộp hồ sơ", then "Nộp ngay"
)
REDELIVERY_PAUSE = 0.2


@dataclass
class Figures:
    updates: int = 0
    deliveries: int = 0
    redeliveries: int = 0
    answers: Counter = field(default_factory=Counter)  # status code or "connection" → count
    kills: int = 0
    restarts: int = 0
    injected_5xx: int = 0
    replies: Counter = field(default_factory=Counter)  # messages per update → count
    finished: int = 0
    beyond_rule: int = 0  # updates answered twice with no kill in between: a real double
    repeated: list[list[str]] = field(default_factory=list)  # texts of updates answered by more than one message


class Pool:
    """The web workers; a killed one is replaced at once (while the others keep serving)."""

    def __init__(self, db_url: str, fake: FakeBotApi, folder: Path, evidence: Path, size: int) -> None:
        self.db_url, self.fake, self.folder, self.evidence = db_url, fake, folder, evidence
        self.slots: list[WebWorker | None] = [None] * size
        self.started = 0
        self.restarting: set[asyncio.Task] = set()

    async def start_slot(self, index: int) -> None:
        self.started += 1
        self.slots[index] = await WebWorker.start(
            self.db_url, self.fake, self.folder / f"w{self.started}", self.evidence, name=f"w{self.started}"
        )

    def live(self) -> list[WebWorker]:
        return [w for w in self.slots if w is not None and w.alive]

    async def kill_one(self, rng: random.Random) -> bool:
        """kill -9 a random worker when at least two are up; its replacement starts in the background."""
        up = [i for i, w in enumerate(self.slots) if w is not None and w.alive]
        if len(up) < 2:
            return False
        index = rng.choice(up)
        worker, self.slots[index] = self.slots[index], None
        assert worker is not None
        await worker.kill()
        task = asyncio.create_task(self.start_slot(index))
        self.restarting.add(task)
        task.add_done_callback(self.restarting.discard)
        return True

    async def close(self) -> None:
        for task in list(self.restarting):
            await task
        for worker in self.slots:
            if worker is not None:
                await worker.stop()


async def person(
    index: int, pool: Pool, fake: FakeBotApi, figures: Figures, rng: random.Random, deadline: float
) -> None:
    user = FakeUser(5000 + index, f"P{index}")
    photo = jpeg((index % 256, 80, 160), size=(320, 240))
    for step in SCRIPT:
        update = fake.send_photo(user, photo) if step is PHOTO else fake.send_text(user, str(step))
        figures.updates += 1
        before = len(fake.sent_to(user))
        kills_before = figures.kills
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"person {index} did not finish in time")
            live = pool.live()
            if not live:
                await asyncio.sleep(0.05)
                continue
            figures.deliveries += 1
            try:
                response = await rng.choice(live).post(update, timeout=60)
            except httpx.TransportError:
                figures.answers["connection"] += 1
            else:
                figures.answers[response.status_code] += 1
                if response.status_code == 200:
                    break
            figures.redeliveries += 1
            await asyncio.sleep(REDELIVERY_PAUSE)
        answered = fake.sent_to(user)[before:]
        figures.replies[len(answered)] += 1
        if len(answered) > 1:
            figures.repeated.append([(m.text or "")[:40] for m in answered])
        if len(answered) > 1 + (figures.kills - kills_before):
            figures.beyond_rule += 1
    figures.finished += 1


async def chaos(pool: Pool, fake: FakeBotApi, figures: Figures, rng: random.Random, args, stop: asyncio.Event) -> None:
    next_kill = time.monotonic() + rng.uniform(args.kill_min, args.kill_max)
    while not stop.is_set():
        await asyncio.sleep(0.25)
        backlog = any(f.method == "sendMessage" for f in fake._failures)  # not taken yet: do not pile up
        if not backlog and rng.random() < args.fail_rate:
            times = rng.randint(1, 4)  # more than the worker's retries now and then: a 503 and a redelivery
            fake.fail("sendMessage", status=rng.choice([500, 502, 503]), times=times)
            figures.injected_5xx += times
        # A run shorter than the first interval would see no kill at all: --first-kill-after
        # kills once that many updates went out, while the rest are still coming.
        early = args.first_kill_after and not figures.kills and figures.updates >= args.first_kill_after
        if early or time.monotonic() >= next_kill:
            if await pool.kill_one(rng):
                figures.kills += 1
                figures.restarts += 1
            next_kill = time.monotonic() + rng.uniform(args.kill_min, args.kill_max)


@asynccontextmanager
async def database(args, folder: Path) -> AsyncIterator[str]:
    if args.pg:
        from tests.support.db import fresh_postgres

        async with fresh_postgres() as url:
            yield url
    else:
        yield args.database_url or f"sqlite+aiosqlite:///{folder / 'chaos.db'}"


async def run(args) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hoctap-chaos-") as tmp:
        folder = Path(tmp)
        evidence = folder / "evidence"
        async with database(args, folder) as db_url:
            app = await build_app(load_settings(database_url=db_url, evidence_dir=evidence))
            async with app.sessions.begin() as session:
                await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), app.clock.now())
            figures = Figures()
            started = time.monotonic()
            async with FakeBotApi() as fake:
                pool = Pool(db_url, fake, folder, evidence, args.workers)
                await asyncio.gather(*(pool.start_slot(i) for i in range(args.workers)))
                ready = time.monotonic()
                stop = asyncio.Event()
                chaos_task = asyncio.create_task(chaos(pool, fake, figures, rng, args, stop))
                deadline = ready + args.duration
                error: BaseException | None = None
                try:
                    await asyncio.gather(*(person(i, pool, fake, figures, rng, deadline) for i in range(args.people)))
                except Exception as exc:  # reported below with the figures
                    error = exc
                finally:
                    stop.set()
                    await chaos_task
                    fake._failures.clear()
                    await pool.close()
                wall = time.monotonic() - ready
            ok, lines = await verdict(app, args.people, figures)
            if error is not None:
                ok = False
                lines.append(f"error: {error!r}")
            await app.close()
    total = time.monotonic() - started
    print(
        f"chaos: {args.people} people, {args.workers} web workers, database {db_url.split('://')[0]}, seed {args.seed}"
    )
    print(
        f"  updates {figures.updates}, deliveries {figures.deliveries}, redeliveries {figures.redeliveries} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(figures.answers.items(), key=str))})"
    )
    print(f"  kills {figures.kills} (workers started {pool.started}), 5xx injected {figures.injected_5xx}")
    print(f"  replies per update {dict(sorted(figures.replies.items()))}")
    for texts in figures.repeated[:5]:
        print(f"    answered {len(texts)} times: {texts}")
    print(f"  wall {wall:.1f} s with chaos ({figures.updates / wall:.1f} updates/s), {total:.1f} s in all")
    for line in lines:
        print("  " + line)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


async def verdict(app, people: int, figures: Figures) -> tuple[bool, list[str]]:
    lines: list[str] = []
    ok = True
    try:
        summary = await check_invariants(app)
        lines.append(
            "invariants hold (doubled = 0: one submission per person, one answer per item, each photo and update once)"
        )
    except AssertionError as exc:
        ok = False
        lines.append(str(exc))
        summary = None
    async with app.sessions() as session:
        per_person = dict(
            (
                await session.execute(
                    select(ChannelAccount.external_id, func.count(Answer.id))
                    .join(Submission, Submission.person_id == ChannelAccount.person_id)
                    .join(Answer, Answer.submission_id == Submission.id)
                    .where(Submission.state == "submitted")
                    .group_by(ChannelAccount.external_id)
                )
            ).all()
        )
        photos = await session.scalar(select(func.count()).select_from(Evidence))
    complete = sum(1 for n in per_person.values() if n == 10)
    lost = people - complete + max(0, people - photos)
    lines.append(f"submitted {complete}/{people}, photos {photos}/{people}, lost {lost}")
    if lost or figures.finished != people:
        ok = False
    if summary is not None and (summary.submissions != {"submitted": people} or summary.evidence != people):
        ok = False
        lines.append(f"doubled or missing rows: {dict(summary.submissions)}, evidence {summary.evidence}")
    # A reply may reach the person twice only when the worker handling the update died after
    # Telegram took the reply and before it was recorded as delivered (the redelivery resends the
    # stored reply): at most one extra copy per kill that update went through.
    repeated = sum((n - 1) * count for n, count in figures.replies.items() if n > 1)
    unanswered = figures.replies.get(0, 0)
    lines.append(
        f"replies repeated after a kill {repeated}, beyond that rule {figures.beyond_rule}, updates unanswered {unanswered}"
    )
    if figures.beyond_rule or unanswered:
        ok = False
    return ok, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=100, help="seconds the people have to finish (bounded run)")
    parser.add_argument("--kill-min", type=float, default=2.0, help="shortest interval between two kills (s)")
    parser.add_argument("--kill-max", type=float, default=5.0, help="longest interval between two kills (s)")
    parser.add_argument(
        "--fail-rate", type=float, default=0.1, help="chance every 0.25 s that the platform starts failing sendMessage"
    )
    parser.add_argument(
        "--first-kill-after", type=int, default=0, help="kill a worker once this many updates went out (then as usual)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--pg", action="store_true", help="a fresh PostgreSQL database on HOCTAP_TEST_PG_URL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
