"""The APScheduler schedule kept in the bot's database: it survives a restart, follows changes to
the calendar, and its jobs really run (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from sqlalchemy import inspect, text, update

from bot.reminders.schedule import SYNC_JOB, WEEKLY_JOB, ReminderScheduler, sync_url
from bot.runner import Runtime, build_runtime
from bot.storage.db import SCHEDULER_TABLE
from bot.storage.models import Campaign, CampaignDeadline
from tests.support.reminders import RecordingSender, campaign, outbox, resident, submission, vn


def test_sync_url_for_the_job_store():
    assert sync_url("sqlite+aiosqlite:////srv/hoctap/hoctap.db") == "sqlite:////srv/hoctap/hoctap.db"
    assert (
        sync_url("postgresql+asyncpg://bot:s3cret@db:5432/hoctap") == "postgresql+psycopg://bot:s3cret@db:5432/hoctap"
    )


def rounds(jobs) -> dict[str, datetime]:
    return {j.id: j.next_run_time for j in jobs if j.id.startswith("remind:")}


async def test_the_schedule_survives_a_restart(app):
    camp = await campaign(app)
    first = ReminderScheduler(app, paused=True)
    await first.start()
    try:
        jobs = await first.jobs()
    finally:
        await first.stop()
    planned = rounds(jobs)
    c = camp.id
    # Only rounds still ahead on 20 Nov 2026 09:00 are scheduled, at 08:00 local time.
    assert planned[f"remind:{c}:self_declaration:7"] == vn(2026, 11, 23, 8, 0)
    assert planned[f"remind:{c}:branch_review:7"] == vn(2026, 11, 28, 8, 0)
    assert planned[f"remind:{c}:commune_report:1"] == vn(2026, 12, 9, 8, 0)
    assert f"remind:{c}:self_declaration:30" not in planned  # 31 Oct: already past
    assert {WEEKLY_JOB, SYNC_JOB} <= {j.id for j in jobs}
    weekly = next(j for j in jobs if j.id == WEEKLY_JOB).next_run_time
    assert weekly.weekday() == 0 and (weekly.hour, weekly.minute) == (7, 30)

    # A new process on the same database finds the same jobs, and its sync has nothing to add.
    async with app.engine.connect() as conn:
        assert SCHEDULER_TABLE in await conn.run_sync(lambda c: inspect(c).get_table_names())
    second = ReminderScheduler(app, paused=True)
    await second.start()
    try:
        assert await second.jobs() == jobs
        assert await second.sync() == (0, 0)
    finally:
        await second.stop()


async def test_the_schedule_follows_the_calendar(app):
    camp = await campaign(app)
    service = ReminderScheduler(app, paused=True)
    await service.start()
    try:
        async with app.sessions.begin() as session:
            await session.execute(
                update(CampaignDeadline)
                .where(CampaignDeadline.campaign_id == camp.id, CampaignDeadline.kind == "self_declaration")
                .values(due_on=date(2026, 12, 2), reminder_offsets=[10, 3])
            )
        added, removed = await service.sync()
        planned = rounds(await service.jobs())
        c = camp.id
        assert planned[f"remind:{c}:self_declaration:10"] == vn(2026, 11, 22, 8, 0)
        assert planned[f"remind:{c}:self_declaration:3"] == vn(2026, 11, 29, 8, 0)
        assert f"remind:{c}:self_declaration:7" not in planned and f"remind:{c}:self_declaration:1" not in planned
        assert (added, removed) == (2, 2)
        job = next(j for j in await service.jobs() if j.id == f"remind:{c}:self_declaration:3")
        assert job.args == (c, "self_declaration", 3, "2026-12-02", "2026-11-29T01:00:00+00:00")
    finally:
        await service.stop()


async def test_the_running_scheduler_runs_a_due_round(suite_app):
    app = suite_app
    hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
    await submission(app, hoa)
    camp = await campaign(app)
    # Deadlines far ahead, so that no round is due by the wall clock except the one we bring forward.
    async with app.sessions.begin() as session:
        await session.execute(update(CampaignDeadline).values(due_on=date(2099, 11, 30)))
        await session.execute(update(Campaign).values(reminder_offsets=[7]))
    service = ReminderScheduler(app)
    await service.start()
    try:
        job_id = f"remind:{camp.id}:self_declaration:7"
        assert job_id in rounds(await service.jobs())
        now = datetime.now(app.settings.tz)
        await asyncio.to_thread(service.scheduler.modify_job, job_id, next_run_time=now)
        for _ in range(200):  # bounded wait for the job to run on the loop
            rows = await outbox(app)
            if rows:
                break
            await asyncio.sleep(0.05)
        assert [r.dedupe_key for r in rows] == [f"remind:p{hoa.id}:c{camp.id}:self_declaration:7"]
        for _ in range(100):  # a date job is gone once it has run
            if job_id not in rounds(await service.jobs()):
                break
            await asyncio.sleep(0.05)
        assert job_id not in rounds(await service.jobs())
    finally:
        await service.stop()


async def test_the_runtime_runs_scheduler_and_dispatcher_for_the_scheduler_role(suite_app):
    runtime, any_channel = await build_runtime(suite_app, "scheduler")
    assert not any_channel
    assert [s.name for s in runtime.services] == ["elected: reminder-scheduler + outbox-dispatcher"]
    # With --role all and no channel the terminal chat runs instead: nothing to send through.
    bare, _ = await build_runtime(suite_app, "all")
    assert bare.services == []

    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router
    from bot.reminders.install import install

    with_channel = Runtime(suite_app, FlowEngine(suite_app, build_router()), "all")
    with_channel.senders.register(RecordingSender("test"))
    assert await install(with_channel)
    for service in with_channel.services:
        await service.start()
    assert suite_app.extras["reminders"].scheduler.running
    for service in reversed(with_channel.services):
        await service.stop()
    assert suite_app.extras["reminders"].scheduler is None
    async with suite_app.engine.connect() as conn:
        jobs = await conn.execute(text(f"SELECT count(*) FROM {SCHEDULER_TABLE}"))
        assert jobs.scalar() > 2


async def test_autogenerate_leaves_the_scheduler_table_alone(app):
    """APScheduler's table shares the database; a new migration must never propose dropping it."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bot.storage.db import include_object
    from bot.storage.models import Base

    service = ReminderScheduler(app, paused=True)
    await service.start()
    await service.stop()

    def diff(conn, **opts):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True, **opts}), Base.metadata)

    async with app.engine.connect() as conn:
        unfiltered = await conn.run_sync(diff)
        filtered = await conn.run_sync(lambda c: diff(c, include_object=include_object))
    assert any(op[0] == "remove_table" and op[1].name == SCHEDULER_TABLE for op in unfiltered)
    assert filtered == []


async def test_only_the_elected_process_runs_the_scheduler_and_another_takes_over(suite_app, tmp_path, clock):
    """Two scheduler processes on one database: one runs the scheduler and dispatcher, the other
    waits, and takes over once the first stops."""
    from tests.conftest import make_app

    other_app = await make_app(suite_app.settings.database_url, tmp_path / "other", clock, commune=False)
    first, _ = await build_runtime(suite_app, "scheduler")
    second, _ = await build_runtime(other_app, "scheduler")
    (first_elected,), (second_elected,) = first.services, second.services
    try:
        await first_elected.start()
        await second_elected.start()
        assert first_elected.election.is_leader and suite_app.extras["reminders"].scheduler.running
        assert not second_elected.election.is_leader and other_app.extras["reminders"].scheduler is None
        await first_elected.stop()
        assert suite_app.extras["reminders"].scheduler is None
        await second_elected.election.step()
        assert second_elected.election.is_leader and other_app.extras["reminders"].scheduler.running
    finally:
        await first_elected.stop()
        await second_elected.stop()
        await other_app.close()
