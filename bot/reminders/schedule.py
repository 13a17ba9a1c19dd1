"""The reminder schedule: APScheduler 3 (AsyncIOScheduler) with its jobs in the bot's own database.

Jobs:
* ``remind:<campaign>:<deadline>:<offset>`` — one per reminder round, a date trigger at
  REMINDER_TIME local time, `offset` days before the deadline. Runs `deadline_job`, which plans
  the round from the submission states of that moment.
* ``digest:weekly`` — a cron trigger (DIGEST_WEEKDAY at DIGEST_TIME) for leaders' and officers'
  weekly digests.
* ``reminders:sync`` — every SCHEDULER_SYNC_MINUTES: makes the round jobs match the campaigns in
  the database (new communes, a deadline moved by an officer, changed offsets).
* ``housekeeping:files`` — hourly: orphan photo files, expired exports, leftovers of delivered
  messages; ``housekeeping:retention`` — daily at 03:00 local: photos past their retention time
  (`bot.ops.housekeeping`).

The jobs are kept by APScheduler's SQLAlchemyJobStore in the same database (table
``apscheduler_jobs``, left alone by Alembic), so a restart keeps the schedule; a round that fell
due while the bot was down runs once when it comes back (coalesced, any lateness) and its
messages wait for the morning if it is night.

The job store is synchronous. With SQLite one writer at a time holds the database, so a
synchronous write from the event loop thread while an async transaction of the same process is
open would freeze the loop until the lock times out. The scheduler therefore does all job store
work in a worker thread (`ThreadedStoreScheduler`) and runs the job coroutines on the loop.

One scheduler per installation: with several processes, run one with --role scheduler (electing it
by a database lock belongs to the scale-out work); a round run twice anyway inserts nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_coroutine_job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler, run_in_event_loop
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url

from bot.app import App
from bot.ops.housekeeping import apply_retention, clean_files
from bot.reminders.rounds import Rounds
from bot.reminders.timing import Moment
from bot.storage.db import SCHEDULER_TABLE

log = logging.getLogger(__name__)

ROUND_PREFIX = "remind:"
WEEKLY_JOB = "digest:weekly"
SYNC_JOB = "reminders:sync"
FILES_JOB = "housekeeping:files"
RETENTION_JOB = "housekeeping:retention"
RETENTION_HOUR = 3
WEEKLY_GRACE = timedelta(hours=12)
STOP_GRACE_SECONDS = 30


def sync_url(async_url: str) -> str:
    """The synchronous twin of the bot's async database URL, for APScheduler's job store."""
    url = make_url(async_url)
    if url.drivername.startswith("sqlite"):
        driver = "sqlite"
    elif url.drivername.startswith("postgresql"):
        driver = "postgresql+psycopg"
    else:
        raise ValueError(f"no synchronous driver known for {url.drivername}")
    return url.set(drivername=driver).render_as_string(hide_password=False)


class LoopExecutor(BaseExecutor):
    """Runs coroutine jobs on the scheduler's event loop, whichever thread submits them."""

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop: asyncio.AbstractEventLoop = scheduler._eventloop
        self._pending: set[Any] = set()

    def shutdown(self, wait: bool = True) -> None:
        for future in list(self._pending):
            future.cancel()
        self._pending.clear()

    def running(self) -> list[Any]:
        return [f for f in self._pending if not f.done()]

    def _do_submit_job(self, job, run_times) -> None:
        coro = run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._pending.add(future)

        def done(f) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            try:
                events = f.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        future.add_done_callback(done)


class ThreadedStoreScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler whose job store reads and writes happen in a worker thread."""

    _processing = False
    _again = False

    @run_in_event_loop
    def wakeup(self) -> None:
        if self.state == STATE_STOPPED or self._eventloop is None:
            return
        self._stop_timer()
        if self._processing:
            self._again = True
            return
        self._processing = True
        future = self._eventloop.run_in_executor(None, self._process_jobs)
        future.add_done_callback(self._processed)

    def _processed(self, future) -> None:
        self._processing = False
        try:
            wait = future.result()
        except Exception:
            log.exception("scheduler: processing jobs failed; retrying")
            wait = self.jobstore_retry_interval
        if self._again:
            self._again, wait = False, 0
        if self.state != STATE_STOPPED and self._eventloop is not None:
            self._start_timer(wait)

    def _create_default_executor(self) -> BaseExecutor:
        return LoopExecutor()


_active: ReminderScheduler | None = None


def _service() -> ReminderScheduler:
    if _active is None:
        raise RuntimeError("no reminder scheduler is running in this process")
    return _active


async def deadline_job(campaign_id: int, deadline_kind: str, offset: int, due_on: str, at: str) -> None:
    await _service().rounds.run_round(
        campaign_id, deadline_kind, offset, due_on=date.fromisoformat(due_on), planned_at=datetime.fromisoformat(at)
    )


async def weekly_digest_job() -> None:
    await _service().rounds.run_weekly()


async def sync_job() -> None:
    await _service().sync()


async def files_job() -> None:

    await clean_files(_service().app)


async def retention_job() -> None:

    await apply_retention(_service().app)


@dataclass(frozen=True)
class JobInfo:
    id: str
    next_run_time: datetime | None
    args: tuple


class ReminderScheduler:
    """The scheduler as a runtime service (start/stop), plus `sync` and a view of its jobs."""

    name = "reminder-scheduler"

    def __init__(self, app: App, *, paused: bool = False) -> None:
        self.app = app
        self.rounds = Rounds(app)
        self.paused = paused
        self.scheduler: ThreadedStoreScheduler | None = None

    async def start(self) -> None:
        global _active
        settings = self.app.settings
        url = sync_url(settings.database_url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30}
        store = SQLAlchemyJobStore(url=url, tablename=SCHEDULER_TABLE, engine_options=options)
        self.scheduler = ThreadedStoreScheduler(
            jobstores={"default": store},
            timezone=settings.tz,
            event_loop=asyncio.get_running_loop(),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        _active = self
        await asyncio.to_thread(self.scheduler.start, paused=self.paused)
        await asyncio.to_thread(self._fixed_jobs)
        await self.sync()

    async def stop(self) -> None:
        global _active
        scheduler, self.scheduler = self.scheduler, None
        if _active is self:
            _active = None
        if scheduler is None or scheduler.state == STATE_STOPPED:
            return
        scheduler._stop_timer()
        scheduler.pause()  # no new job starts from here on
        executor = scheduler._lookup_executor("default")
        running = executor.running() if isinstance(executor, LoopExecutor) else []
        if running:
            # Let a round in progress finish (each chunk is its own transaction, and a round cut
            # short is completed by running it again, but finishing is tidier than cancelling).
            await asyncio.wait([asyncio.wrap_future(f) for f in running], timeout=STOP_GRACE_SECONDS)
        await asyncio.to_thread(BaseScheduler.shutdown, scheduler, False)
        scheduler._eventloop = None

    def _fixed_jobs(self) -> None:
        settings = self.app.settings
        assert self.scheduler is not None
        weekly = CronTrigger(
            day_of_week=settings.digest_weekday,
            hour=settings.digest_time.hour,
            minute=settings.digest_time.minute,
            timezone=settings.tz,
        )
        self._keep_job(WEEKLY_JOB, weekly_digest_job, weekly, int(WEEKLY_GRACE.total_seconds()))
        every = IntervalTrigger(minutes=settings.scheduler_sync_minutes, timezone=settings.tz)
        self._keep_job(SYNC_JOB, sync_job, every, 60)
        hourly = IntervalTrigger(hours=1, timezone=settings.tz)
        if self.scheduler.get_job(FILES_JOB) is None:
            self.scheduler.add_job(files_job, hourly, id=FILES_JOB, replace_existing=True, misfire_grace_time=600)
        daily = CronTrigger(hour=RETENTION_HOUR, minute=0, timezone=settings.tz)
        self._keep_job(RETENTION_JOB, retention_job, daily, int(WEEKLY_GRACE.total_seconds()))

    def _keep_job(self, job_id: str, func: Callable[[], Awaitable[None]], trigger: BaseTrigger, grace: int) -> None:
        """Put a fixed job in place, unless the job store already holds it on the same trigger."""
        assert self.scheduler is not None
        existing = self.scheduler.get_job(job_id)
        if existing is None or str(existing.trigger) != str(trigger):
            self.scheduler.add_job(func, trigger, id=job_id, replace_existing=True, misfire_grace_time=grace)

    async def sync(self) -> tuple[int, int]:
        """Make the round jobs match the database; returns (added or moved, removed)."""
        if self.scheduler is None:
            return 0, 0
        now = self.app.clock.now()
        wanted = {m.job_id: m for m in await self.rounds.all_moments() if m.at > now}
        return await asyncio.to_thread(self._apply, wanted, now)

    def _apply(self, wanted: dict[str, Moment], now: datetime) -> tuple[int, int]:
        assert self.scheduler is not None
        added = removed = 0
        existing = {j.id: j for j in self.scheduler.get_jobs() if j.id.startswith(ROUND_PREFIX)}
        for job_id, moment in wanted.items():
            args = (
                moment.campaign_id,
                moment.deadline_kind,
                moment.offset,
                moment.due_on.isoformat(),
                moment.at.isoformat(),
            )
            job = existing.get(job_id)
            if job is not None and tuple(job.args) == args:
                continue
            self.scheduler.add_job(
                deadline_job,
                DateTrigger(run_date=moment.at, timezone=self.app.settings.tz),
                id=job_id,
                args=args,
                replace_existing=True,
            )
            added += 1
        for job_id, job in existing.items():
            # A job whose moment has come stays: it is about to run (or ran late after a restart)
            # and checks by itself whether its deadline still stands.
            if job_id not in wanted and (job.next_run_time is None or job.next_run_time > now):
                self.scheduler.remove_job(job_id)
                removed += 1
        if added or removed:
            log.info("reminder schedule: %d round(s) added or moved, %d removed", added, removed)
        return added, removed

    async def jobs(self) -> list[JobInfo]:
        if self.scheduler is None:
            return []
        found = await asyncio.to_thread(self.scheduler.get_jobs)
        return sorted(
            (JobInfo(j.id, j.next_run_time, tuple(j.args)) for j in found),
            key=lambda j: (j.next_run_time is None, j.next_run_time or datetime.max, j.id),
        )
