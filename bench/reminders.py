"""Benchmark: planning 100 000 reminders, and dispatch holding its configured rate.

    .venv/bin/python bench/reminders.py                  # SQLite, 100 000 people (about 1–2 minutes)
    .venv/bin/python bench/reminders.py --people 20000   # quicker
    .venv/bin/python bench/reminders.py --pg             # the same on a fresh PostgreSQL database

Planning is compared with a baseline measured in the same run on a copy of the same database: a
bare bulk insert of as many outbox rows (same payload size, no recipients computed). Each of the
two runs in its own fresh Python process, so peak memory (ru_maxrss) is its own; the figures that
matter are the ratios, since the machine is shared and noisy.

Dispatch: a recording sender at the channel boundary (no network) and the real dispatcher with
its real timer; the achieved rate is measured between the first and last send and compared with
the configured `rate` (messages per second); per-chat spacing is checked on chats that receive
several messages.

Results are printed and written to bench/out/reminders.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clock import VN_TZ, FakeClock  # noqa: E402

SEED_AT = datetime(2026, 11, 20, 9, 0, tzinfo=VN_TZ)
ROUND_AT = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ)
CHUNK = 2000


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _app(url: str, tmp: Path, clock: FakeClock, **overrides):
    from bot.app import build_app
    from bot.config import load_settings

    settings = load_settings(database_url=url, evidence_dir=tmp / "evidence", **overrides)
    return await build_app(settings, clock)


# -- seeding -------------------------------------------------------------------------------------


async def seed(url: str, tmp: Path, people: int) -> None:
    """The example commune with `people` residents, a third of them registering their household:
    85% registered, 10% declaring, 5% asked for more."""
    from sqlalchemy import insert, select

    from bot.storage.commune import apply_commune, load_commune_file
    from bot.storage.models import (
        Answer,
        Campaign,
        ChannelAccount,
        Household,
        OrgUnit,
        Person,
        Submission,
        SubmissionEvent,
    )

    clock = FakeClock(SEED_AT)
    app = await _app(url, tmp, clock)
    now = clock.now()
    try:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), now)
        async with app.sessions() as session:
            branches = list(await session.scalars(select(OrgUnit.id).where(OrgUnit.kind == "branch")))
            campaign_id = await session.scalar(select(Campaign.id).where(Campaign.year == 2026))
        for start in range(0, people, CHUNK):
            ids = range(start + 1, min(people, start + CHUNK) + 1)
            persons, accounts, households, subs, answers, events = [], [], [], [], [], []
            for i in ids:
                branch = branches[i % len(branches)]
                state = "needs_info" if i % 20 == 0 else "declaring" if i % 10 == 1 else "registered"
                family = i % 3 == 0
                persons.append(
                    dict(
                        id=i,
                        full_name=f"Nguyen Van {i}",
                        birth_year=1970 + i % 40,
                        branch_id=branch,
                        locale="vi",
                        consent_at=now,
                        created_at=now,
                    )
                )
                accounts.append(
                    dict(
                        id=i,
                        channel="bench",
                        external_id=f"u{i}",
                        chat_id=f"u{i}",
                        person_id=i,
                        consent_at=now,
                        created_at=now,
                        last_inbound_at=now,
                    )
                )
                if family:
                    households.append(
                        dict(id=i, branch_id=branch, head_person_id=i, registered_by_person_id=i, created_at=now)
                    )
                title, set_id = ("gd", "gd-qd448-2015") if family else ("cd", "cd-qd244-2022")
                subs.append(
                    dict(
                        id=i,
                        reference=f"{title.upper()}-2026-{i:06d}",
                        campaign_id=campaign_id,
                        title=title,
                        subject_kind="household" if family else "person",
                        subject_key=f"h:{i}" if family else f"p:{i}",
                        person_id=None if family else i,
                        household_id=i if family else None,
                        branch_id=branch,
                        criteria_set_id=set_id,
                        state=state,
                        score=0,
                        recognisable=False,
                        created_by_person_id=i,
                        created_at=now,
                        updated_at=now,
                        version=1,
                    )
                )
                if state != "registered":
                    items = ("1.1", "1.2", "1.3") if family else ("1", "2", "3")
                    answers += [
                        dict(
                            submission_id=i,
                            item_id=item,
                            level="achieved",
                            points=10,
                            answered_by_person_id=i,
                            answered_at=now,
                        )
                        for item in items
                    ]
                if state == "needs_info":
                    events.append(
                        dict(
                            submission_id=i,
                            from_state="submitted",
                            to_state="needs_info",
                            actor_kind="commune",
                            note="Xin bổ sung ảnh minh chứng cho mục 1.",
                            at=now,
                        )
                    )
            async with app.sessions.begin() as session:
                for model, rows in (
                    (Person, persons),
                    (ChannelAccount, accounts),
                    (Household, households),
                    (Submission, subs),
                    (Answer, answers),
                    (SubmissionEvent, events),
                ):
                    if rows:
                        await session.execute(insert(model), rows)
        if url.startswith("postgresql"):
            from sqlalchemy import text

            async with app.engine.begin() as conn:
                for table in ("people", "channel_accounts", "households", "submissions"):
                    await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {people})"))
                await conn.execute(text("ANALYZE"))
    finally:
        await app.close()


# -- the two measured runs (each in its own process) -----------------------------------------------


async def run_plan(url: str, tmp: Path, which: str) -> dict:
    """One round: the self-assessment reminder of 2026 (unfinished and asked-for-more people), or
    the registration reminder of 2027 (everyone not registered for the new year)."""
    from sqlalchemy import select

    from bot.reminders.rounds import Rounds
    from bot.storage.models import Campaign

    year, kind, at = (
        (2027, "registration", datetime(2027, 3, 24, 8, 0, tzinfo=VN_TZ))
        if which == "registration"
        else (2026, "self_declaration", ROUND_AT)
    )
    app = await _app(url, tmp, FakeClock(at))
    try:
        async with app.sessions() as session:
            campaign_id = await session.scalar(select(Campaign.id).where(Campaign.year == year))
        before = maxrss_mb()
        cpu, wall = time.process_time(), time.perf_counter()
        result = await Rounds(app).run_round(campaign_id, kind, 7)
        return {
            "round": kind,
            "seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "rows": result.queued,
            "maxrss_mb": maxrss_mb(),
            "maxrss_growth_mb": maxrss_mb() - before,
        }
    finally:
        await app.close()


async def run_baseline(url: str, tmp: Path, rows: int) -> dict:
    """A bare bulk insert of `rows` outbox rows with a reminder-sized payload: no planning at all."""
    from sqlalchemy import insert

    from bot.storage.models import OutboxMessage
    from bot.storage.outbox import Notice

    app = await _app(url, tmp, FakeClock(ROUND_AT))
    try:
        now = app.clock.now()
        payload = Notice(
            "remind.declare",
            {
                "name": "Nguyen Van 1",
                "deadline": {
                    "key": "status.deadline",
                    "plural": "status.deadline.plural",
                    "count": 7,
                    "params": {"what": {"key": "deadline.self_declaration"}, "date": {"date": "2026-11-30"}},
                },
                "lines": {
                    "lines": [
                        {
                            "key": "remind.line_not_started",
                            "params": {
                                "reference": "CD-2026-000001",
                                "title": {"text": {"vi": "Công dân học tập", "en": "Learning citizen"}},
                            },
                        }
                    ]
                },
                "action": {"key": "remind.tap_declare"},
            },
            choices=[("cmd:tudanhgia", "remind.button_declare"), ("cmd:trangthai", "remind.button_status")],
        ).to_payload()
        before = maxrss_mb()
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, rows, 500):
            batch = [
                dict(
                    dedupe_key=f"base:{i}",
                    account_id=i + 1,
                    kind="reminder",
                    campaign_id=None,
                    deadline_kind="self_declaration",
                    offset_days=7,
                    payload=payload,
                    status="pending",
                    not_before=now,
                    attempts=0,
                    created_at=now,
                )
                for i in range(start, min(rows, start + 500))
            ]
            async with app.sessions.begin() as session:
                await session.execute(insert(OutboxMessage), batch)
        return {
            "seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "rows": rows,
            "maxrss_mb": maxrss_mb(),
            "maxrss_growth_mb": maxrss_mb() - before,
        }
    finally:
        await app.close()


# -- dispatch ------------------------------------------------------------------------------------


async def run_dispatch(url: str, tmp: Path, rate: float, messages: int, spacing: float) -> dict:
    """Queue `messages` notices on a channel limited to `rate`/s and time the real dispatcher."""
    from sqlalchemy import insert

    from bot.channels.base import SenderRegistry
    from bot.clock import SystemClock
    from bot.reminders.dispatch import Dispatcher
    from bot.storage.models import OutboxMessage
    from bot.storage.outbox import Notice

    channel = f"bench{int(rate)}"
    app = await _app(
        url,
        tmp,
        None,
        dispatch_limits={channel: {"rate": rate, "chat_spacing": spacing}},
        quiet_start="00:00",
        quiet_end="00:00",
        dispatch_poll_seconds=0.5,
    )
    app.clock = SystemClock()

    class Recorder:
        def __init__(self) -> None:
            self.channel = channel
            self.times: list[tuple[str, float]] = []

        async def send(self, account, replies) -> None:
            self.times.append((account.chat_id, time.perf_counter()))

    try:
        from bot.storage.people import get_or_create_account

        now = app.clock.now()
        async with app.sessions.begin() as session:
            # One chat in ten gets a second message (a reminder and a digest, say): per-chat
            # spacing must hold for them without holding up the others.
            chats = [f"c{i - 1}" if i % 10 == 1 else f"c{i}" for i in range(messages)]
            ids = {}
            for chat in dict.fromkeys(chats):
                ids[chat] = (await get_or_create_account(session, channel, chat, chat, now)).id
            payload = Notice("status.none").to_payload()
            await session.execute(
                insert(OutboxMessage),
                [
                    dict(
                        dedupe_key=f"{channel}:{i}",
                        account_id=ids[chat],
                        kind="notice",
                        payload=payload,
                        status="pending",
                        not_before=now,
                        attempts=0,
                        created_at=now,
                    )
                    for i, chat in enumerate(chats)
                ],
            )
        sender = Recorder()
        registry = SenderRegistry()
        registry.register(sender)
        dispatcher = Dispatcher(app, registry, worker_id="bench")
        stop = asyncio.Event()

        async def watch() -> None:
            deadline = time.perf_counter() + messages / rate * 3 + 30
            while len(sender.times) < messages and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            stop.set()

        # The real service loop (claim, pace, send, record), as `hoctap run` runs it.
        await asyncio.gather(dispatcher.run_forever(stop), watch())
        times = [t for _, t in sender.times]
        achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        # Steady state: the first 90% of messages; the last ones are second messages to chats
        # that had to wait their per-chat spacing and a poll interval, a tail that says nothing
        # about the pace.
        k = max(2, int(len(times) * 0.9))
        steady = (k - 1) / (times[k - 1] - times[0]) if len(times) >= k else 0.0
        by_chat: dict[str, list[float]] = {}
        for chat, t in sender.times:
            by_chat.setdefault(chat, []).append(t)
        gaps = [b - a for ts in by_chat.values() for a, b in zip(ts, ts[1:], strict=False)]
        return {
            "configured_rate": rate,
            "messages": len(times),
            "achieved_rate": achieved,
            "steady_rate": steady,
            "ratio": achieved / rate,
            "steady_ratio": steady / rate,
            "min_chat_gap_s": min(gaps) if gaps else None,
            "chat_spacing_s": spacing,
            "overall_min_gap_s": min(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else None,
        }
    finally:
        await app.close()


# -- driver --------------------------------------------------------------------------------------


def child(kind: str, url: str, tmp: str, extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--url", url, "--tmp", tmp, "--extra", extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def fresh_pg_url() -> tuple[str, str]:
    from tests.support.db import PG_URL, create_database

    return await create_database(PG_URL, prefix="hoctap_bench"), PG_URL


async def drop_pg(url: str, base: str) -> None:
    from tests.support.db import drop_database

    await drop_database(url, base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--rates", default="25,100", help="dispatch rates to hold, messages per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="dispatch test length per rate")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (HOCTAP_TEST_PG_URL) instead of SQLite")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--tmp")
    parser.add_argument("--extra", default="")
    args = parser.parse_args()

    if args.child:
        tmp = Path(args.tmp)
        if args.child == "plan":
            out = asyncio.run(run_plan(args.url, tmp, args.extra))
        elif args.child == "baseline":
            out = asyncio.run(run_baseline(args.url, tmp, int(args.extra)))
        else:
            rate, messages = args.extra.split(",")
            out = asyncio.run(run_dispatch(args.url, tmp, float(rate), int(messages), 1.0))
        print(json.dumps(out))
        return

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="hoctap-bench-"))
    pg: list[tuple[str, str]] = []

    def database(name: str, template: Path | None = None) -> str:
        if args.pg:
            url, base = asyncio.run(fresh_pg_url())
            pg.append((url, base))
            return url
        path = work / f"{name}.db"
        if template is not None:
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{template}{suffix}").exists():
                    shutil.copy(f"{template}{suffix}", f"{path}{suffix}")
        return f"sqlite+aiosqlite:///{path}"

    try:
        seeded_url = database("seeded")
        t = time.perf_counter()
        asyncio.run(seed(seeded_url, work, args.people))
        seed_seconds = time.perf_counter() - t
        if args.pg:
            baseline_url = database("baseline")
            asyncio.run(seed(baseline_url, work, args.people))
        else:
            baseline_url = database("baseline", work / "seeded.db")
        baseline = child("baseline", baseline_url, str(work), str(args.people))
        plan = child("plan", seeded_url, str(work), "self_declaration")
        registration = child("plan", seeded_url, str(work), "registration")
        dispatch = []
        for rate in (float(r) for r in args.rates.split(",")):
            messages = max(20, int(rate * args.seconds))
            dispatch.append(child("dispatch", database(f"dispatch{int(rate)}"), str(work), f"{rate},{messages}"))
    finally:
        for url, base in pg:
            asyncio.run(drop_pg(url, base))
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "database": "postgresql" if args.pg else "sqlite",
        "people": args.people,
        "seed_seconds": seed_seconds,
        "baseline_bulk_insert": baseline,
        "planning": plan,
        "planning_vs_baseline": {
            "time_ratio": plan["seconds"] / baseline["seconds"],
            "cpu_ratio": plan["cpu_seconds"] / baseline["cpu_seconds"],
            "maxrss_ratio": plan["maxrss_mb"] / baseline["maxrss_mb"],
        },
        "registration_round": registration,
        "registration_vs_baseline": {
            "time_ratio": registration["seconds"] / baseline["seconds"],
            "maxrss_ratio": registration["maxrss_mb"] / baseline["maxrss_mb"],
        },
        "dispatch": dispatch,
        "total_seconds": time.perf_counter() - started,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "reminders.json").write_text(json.dumps(result, indent=2))

    b, p, r = baseline, plan, result["planning_vs_baseline"]
    print(f"reminders benchmark on {result['database']}, {args.people} people (seeded in {seed_seconds:.1f}s)")
    print(
        f"  baseline bulk insert : {b['rows']:>7} rows  {b['seconds']:6.2f}s  cpu {b['cpu_seconds']:6.2f}s  "
        f"peak {b['maxrss_mb']:6.1f} MB (+{b['maxrss_growth_mb']:.1f})"
    )
    print(
        f"  self-assessment round: {p['rows']:>7} rows  {p['seconds']:6.2f}s  cpu {p['cpu_seconds']:6.2f}s  "
        f"peak {p['maxrss_mb']:6.1f} MB (+{p['maxrss_growth_mb']:.1f})"
    )
    print(
        f"  planning / baseline  : time x{r['time_ratio']:.2f}  cpu x{r['cpu_ratio']:.2f}  peak memory x{r['maxrss_ratio']:.2f}"
    )
    g, gr = registration, result["registration_vs_baseline"]
    print(
        f"  registration round   : {g['rows']:>7} rows  {g['seconds']:6.2f}s  cpu {g['cpu_seconds']:6.2f}s  "
        f"peak {g['maxrss_mb']:6.1f} MB (+{g['maxrss_growth_mb']:.1f})  time x{gr['time_ratio']:.2f}  "
        f"peak memory x{gr['maxrss_ratio']:.2f}"
    )
    for d in dispatch:
        print(
            f"  dispatch at {d['configured_rate']:>5.0f}/s   : {d['messages']} messages, steady {d['steady_rate']:.1f}/s "
            f"(x{d['steady_ratio']:.3f} of configured), overall {d['achieved_rate']:.1f}/s (x{d['ratio']:.3f}), "
            f"smallest gap {d['overall_min_gap_s']:.4f}s (1/rate = {1 / d['configured_rate']:.4f}s), "
            f"same-chat gap >= {d['min_chat_gap_s']:.2f}s (spacing {d['chat_spacing_s']}s)"
        )
    print(f"  total {result['total_seconds']:.0f}s; written to bench/out/reminders.json")


if __name__ == "__main__":
    main()
