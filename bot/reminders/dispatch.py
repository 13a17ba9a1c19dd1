"""The outbox dispatcher: claims due rows and sends them within each channel's limits.

Row states::

    pending ──claim (batch)──▶ claimed ──mark (one row, committed)──▶ sending ──send──▶ sent
       ▲                          │                                     │
       └── lease expired ─────────┘                                     ├─ RateLimited ─▶ pending (not_before += retry_after)
       └── quiet hours / 429 on the channel: released ◀─────────────────┤─ transient ──▶ pending (backoff) … failed
                                                                        ├─ Unreachable ─▶ unreachable (+ account marked)
                                                                        └─ lease expired ─▶ unconfirmed
    pending ── deadline passed ──▶ expired;  pending/claimed ── account unreachable ──▶ unreachable

Exactly once, and what a crash does:
* A batch is *claimed* in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has a
  single writer), so two dispatchers never hold the same row.
* Each row is then marked *sending* in its own committed transaction right before the platform
  call, and recorded *sent* right after. Only the row whose platform call was in flight can be
  in doubt when the process dies.
* After DISPATCH_LEASE_SECONDS, a stale *claimed* row (never handed to the platform) goes back to
  pending and is sent normally: nothing is lost. A stale *sending* row becomes **unconfirmed** and
  is *not* sent again. Telegram and Zalo offer no idempotency key, so we cannot ask whether the
  message arrived; a reminder twice is the nuisance people complain about most (duplicate
  broadcasts), while one reminder missed is covered by the next round (30 → 7 → 1 days) and by
  the branch leader's digest. `hoctap outbox` lists unconfirmed rows for an operator.

What rows keep: a digest row holds only what identifies it and is built from current data right
before it is sent (`bot.reminders.digests.build_digest`); every row loses its payload when it is
settled (sent, failed, unreachable, unconfirmed, expired), so no name or note stays in the outbox
after its use.

Pacing: per channel, at most `rate` messages a second overall and one message per `chat_spacing`
seconds to the same chat; a 429 pauses the whole channel for `retry_after` and halves its rate for
a minute. Nothing is sent during quiet hours (21:00–07:00 local): rows stay pending until morning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import App
from bot.channels.base import RateLimited, SenderRegistry, TransientSendError, Unreachable, describe
from bot.clock import local_date
from bot.config import ChannelLimit
from bot.reminders.digests import DIGEST, build_digest
from bot.reminders.timing import in_quiet_hours, next_allowed
from bot.storage.core import affected
from bot.storage.models import CampaignDeadline, ChannelAccount, OutboxMessage, Person
from bot.storage.outbox import Deferred, Notice, render_notice

log = logging.getLogger(__name__)

PENDING, CLAIMED, SENDING, SENT = "pending", "claimed", "sending", "sent"
FAILED, UNREACHABLE, UNCONFIRMED, EXPIRED = "failed", "unreachable", "unconfirmed", "expired"
CLAIM_WINDOW_SECONDS = 5.0  # claim about this many seconds' worth of sending at a time
MAX_BATCH = 200
SLOW_FOR_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 3600.0
UNCONFIRMED_NOTE = "process stopped while sending; not resent to avoid a duplicate"
# A settled row is never sent again: its payload (names, notes) is dropped with the status change.
SETTLED = (SENT, FAILED, UNREACHABLE, UNCONFIRMED, EXPIRED)
CLEARED: dict = {}


class Timer(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Pacer:
    """One channel's pace: a fixed cadence of send slots, per-chat spacing, pauses after a 429.

    Slots are kept from one send's start to the next (the database work in between does not
    stretch the cadence), and a send never starts before its slot, so the platform never sees
    two messages closer than 1/rate apart, nor two to one chat closer than `chat_spacing`.
    """

    def __init__(self, limit: ChannelLimit) -> None:
        self.limit = limit
        self.next_free = 0.0
        self.paused_until = 0.0
        self.slow_until = 0.0
        self.chat_next: dict[str, float] = {}

    def interval(self, now: float) -> float:
        base = 1.0 / self.limit.rate
        return base * 2 if now < self.slow_until else base

    def ready_at(self, chat: str) -> float:
        """When a message to this chat may be picked (the overall slot is awaited later)."""
        return max(self.paused_until, self.chat_next.get(chat, 0.0))

    def wait(self, now: float) -> float:
        return max(0.0, self.next_free - now, self.paused_until - now)

    def take(self, chat: str, now: float) -> None:
        """Use the slot starting `now` for a message to `chat`."""
        self.next_free = now + self.interval(now)
        self.chat_next[chat] = now + self.limit.chat_spacing
        if len(self.chat_next) > 10_000:
            self.chat_next = {c: t for c, t in self.chat_next.items() if t > now}

    def pause(self, seconds: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + seconds)
        self.slow_until = self.paused_until + SLOW_FOR_SECONDS

    def paused(self, now: float) -> bool:
        return now < self.paused_until


@dataclass
class Claimed:
    id: int
    account: ChannelAccount
    payload: dict
    locale: str | None
    address: str | None = None  # how the person is addressed (their commune's setting)

    @property
    def chat(self) -> str:
        return self.account.chat_id or self.account.external_id


@dataclass
class Report:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0
    rate_limited: int = 0
    released: int = 0
    recovered: int = 0
    unconfirmed: int = 0
    expired: int = 0
    quiet: bool = False
    full: bool = False  # some channel had more due rows than one batch
    channels: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        app: App,
        senders: SenderRegistry,
        *,
        worker_id: str | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.app = app
        self.senders = senders
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.timer = timer or RealTimer()
        self.pacers: dict[str, Pacer] = {}
        self._built: dict[str, Notice] = {}  # deferred messages built during this pass

    @property
    def settings(self):
        return self.app.settings

    def pacer(self, channel: str) -> Pacer:
        if channel not in self.pacers:
            self.pacers[channel] = Pacer(self.settings.channel_limit(channel))
        return self.pacers[channel]

    def batch_size(self, channel: str) -> int:
        return max(1, min(MAX_BATCH, int(self.settings.channel_limit(channel).rate * CLAIM_WINDOW_SECONDS)))

    # -- one pass -------------------------------------------------------------------------------

    async def run_once(self) -> Report:
        """Recover stale claims, then claim and send what is due now on every channel we can send on."""
        report = Report()
        self._built = {}
        now = self.app.clock.now()
        await self._housekeeping(now, report)
        if in_quiet_hours(now, self.settings):
            report.quiet = True
            return report
        moment = self.timer.monotonic()
        channels = [c for c in self.senders.channels() if not self.pacer(c).paused(moment)]
        claimed = await self._claim(channels, now, report)
        if claimed:
            await asyncio.gather(*(self._send_channel(ch, rows, report) for ch, rows in claimed.items()))
        return report

    async def _housekeeping(self, now: datetime, report: Report) -> None:
        cutoff = now - timedelta(seconds=self.settings.dispatch_lease_seconds)
        today = local_date(now, self.settings.tz)
        async with self.app.sessions.begin() as session:
            back = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == CLAIMED, OutboxMessage.claimed_at < cutoff)
                .values(status=PENDING, claimed_by=None, claimed_at=None)
            )
            report.recovered = affected(back)
            doubt = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < cutoff)
                .values(status=UNCONFIRMED, last_error=UNCONFIRMED_NOTE, payload=CLEARED)
            )
            report.unconfirmed = affected(doubt)
            passed = exists().where(
                CampaignDeadline.campaign_id == OutboxMessage.campaign_id,
                CampaignDeadline.kind == OutboxMessage.deadline_kind,
                CampaignDeadline.due_on < today,
            )
            gone = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.status == PENDING,
                    OutboxMessage.not_before <= now,
                    OutboxMessage.deadline_kind.is_not(None),
                    passed,
                )
                .values(status=EXPIRED, last_error="deadline passed before it could be sent", payload=CLEARED)
                .execution_options(synchronize_session=False)
            )
            report.expired = affected(gone)
        if report.unconfirmed:
            log.warning("outbox: %d message(s) unconfirmed after a stopped dispatcher", report.unconfirmed)

    async def _claim(self, channels: list[str], now: datetime, report: Report) -> dict[str, list[Claimed]]:
        if not channels:
            return {}
        found: dict[str, list[Claimed]] = {}
        async with self.app.sessions.begin() as session:
            postgres = self.app.engine.dialect.name == "postgresql"
            # Rows for people marked unreachable are settled without being sent (or paced).
            down = select(ChannelAccount.id).where(
                ChannelAccount.unreachable_at.is_not(None), ChannelAccount.channel.in_(channels)
            )
            skipped = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.status == PENDING, OutboxMessage.not_before <= now, OutboxMessage.account_id.in_(down)
                )
                .values(status=UNREACHABLE, last_error="account unreachable", payload=CLEARED)
                .execution_options(synchronize_session=False)
            )
            report.unreachable += affected(skipped)
            for channel in channels:
                size = self.batch_size(channel)
                query = (
                    select(OutboxMessage.id)
                    .join(ChannelAccount, ChannelAccount.id == OutboxMessage.account_id)
                    .where(
                        OutboxMessage.status == PENDING,
                        OutboxMessage.not_before <= now,
                        ChannelAccount.channel == channel,
                    )
                    .order_by(OutboxMessage.not_before, OutboxMessage.id)
                    .limit(size + 1)
                )
                if postgres:
                    query = query.with_for_update(skip_locked=True, of=OutboxMessage)
                ids = list(await session.scalars(query))
                if len(ids) > size:
                    report.full = True
                    ids = ids[:size]
                if not ids:
                    continue
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.status == PENDING)
                    .values(status=CLAIMED, claimed_by=self.worker_id, claimed_at=now)
                )
                rows = await session.execute(
                    select(OutboxMessage.id, OutboxMessage.payload, ChannelAccount, Person.locale, Person.branch_id)
                    .join(ChannelAccount, ChannelAccount.id == OutboxMessage.account_id)
                    .outerjoin(Person, Person.id == ChannelAccount.person_id)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == self.worker_id)
                    .order_by(OutboxMessage.not_before, OutboxMessage.id)
                )
                found[channel] = [
                    Claimed(
                        row_id,
                        account,
                        payload,
                        account.locale or person_locale,
                        await self.app.address_forms.of_branch(session, branch_id),
                    )
                    for row_id, payload, account, person_locale, branch_id in rows
                ]
                report.claimed += len(found[channel])
                report.channels[channel] = len(found[channel])
        return found

    # -- sending --------------------------------------------------------------------------------

    async def _send_channel(self, channel: str, rows: list[Claimed], report: Report) -> None:
        pacer = self.pacer(channel)
        queue = deque(rows)
        while queue:
            moment = self.timer.monotonic()
            row = next((r for r in queue if pacer.ready_at(r.chat) <= moment), None)
            if row is None:
                wait = min(pacer.ready_at(r.chat) for r in queue) - moment
                if pacer.paused(moment) and wait > CLAIM_WINDOW_SECONDS:
                    # A long pause after a 429: give the rows back rather than sit on them.
                    resume = self.app.clock.now() + timedelta(seconds=pacer.paused_until - moment)
                    report.released += await self._release([r.id for r in queue], resume)
                    return
                if not pacer.paused(moment) and wait > 2 * pacer.interval(moment):
                    # Only chats that must wait are left: give them back, due when each chat is
                    # ready, so that the next pass fills the channel with other chats meanwhile.
                    now = self.app.clock.now()
                    for r in list(queue):
                        due = now + timedelta(seconds=max(0.0, pacer.ready_at(r.chat) - moment))
                        report.released += await self._release([r.id], due)
                    report.full = True
                    return
                await self.timer.sleep(max(wait, 0.0))
                continue
            queue.remove(row)
            now = self.app.clock.now()
            if in_quiet_hours(now, self.settings):
                report.released += await self._release(
                    [row.id, *(r.id for r in queue)], next_allowed(now, self.settings)
                )
                return
            await self._deliver(channel, row, pacer, report)

    async def _release(self, ids: list[int], not_before: datetime) -> int:
        async with self.app.sessions.begin() as session:
            done = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(ids),
                    OutboxMessage.status == CLAIMED,
                    OutboxMessage.claimed_by == self.worker_id,
                )
                .values(status=PENDING, claimed_by=None, claimed_at=None, not_before=not_before)
            )
            return affected(done)

    async def _mark_sending(self, row: Claimed, now: datetime) -> str | None:
        """Commit 'sending' right before the platform call. None: the row is no longer ours."""
        async with self.app.sessions.begin() as session:
            account = await session.get(ChannelAccount, row.account.id)
            if account is not None and account.unreachable_at is not None:
                await session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id == row.id,
                        OutboxMessage.claimed_by == self.worker_id,
                        OutboxMessage.status == CLAIMED,
                    )
                    .values(
                        status=UNREACHABLE,
                        last_error=f"account unreachable: {account.unreachable_reason}",
                        payload=CLEARED,
                    )
                )
                return UNREACHABLE
            done = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.claimed_by == self.worker_id,
                    OutboxMessage.status == CLAIMED,
                )
                .values(status=SENDING, claimed_at=now, attempts=OutboxMessage.attempts + 1)
            )
            return SENDING if affected(done) else None

    async def _record(self, session: AsyncSession, row_id: int, **values) -> None:
        if values.get("status") in SETTLED:
            values["payload"] = CLEARED
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id, OutboxMessage.status == SENDING, OutboxMessage.claimed_by == self.worker_id
            )
            .values(**values)
        )

    async def _retry_later(
        self, session: AsyncSession, row_id: int, not_before: datetime, last_error: str, **values: Any
    ) -> None:
        """Back in the queue, claimed by no one, to be sent again from `not_before`."""
        await self._record(
            session,
            row_id,
            status=PENDING,
            claimed_by=None,
            claimed_at=None,
            not_before=not_before,
            last_error=last_error,
            **values,
        )

    async def _notice(self, row: Claimed, now: datetime) -> Notice:
        """The row's notice; a deferred one (a digest) is built now, from current data."""
        deferred = Deferred.from_payload(row.payload)
        if deferred is None:
            return Notice.from_payload(row.payload)
        if deferred.kind != DIGEST:
            raise ValueError(f"unknown deferred message {deferred.kind!r}")
        # Several leaders of one branch get the same digest: built once per pass.
        key = json.dumps([deferred.kind, deferred.spec], sort_keys=True)
        if key not in self._built:
            async with self.app.sessions() as session:
                self._built[key] = await build_digest(
                    session, deferred.spec, catalog=self.app.catalog, settings=self.settings, at=now
                )
        return self._built[key]

    async def _deliver(self, channel: str, row: Claimed, pacer: Pacer, report: Report) -> None:
        now = self.app.clock.now()
        try:
            notice = await self._notice(row, now)
            outgoing = render_notice(notice, row.locale, row.address)
        except Exception as exc:  # a payload no renderer understands: never sendable, say why
            log.exception("outbox %s: cannot render", row.id)
            async with self.app.sessions.begin() as session:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == self.worker_id)
                    .values(status=FAILED, last_error=f"cannot render: {exc!r}"[:500], payload=CLEARED)
                )
            report.failed += 1
            return
        marked = await self._mark_sending(row, now)
        if marked != SENDING:
            if marked == UNREACHABLE:
                report.unreachable += 1
            return
        # Wait for this channel's next slot (at most one interval: the row was picked when its
        # chat was ready and the channel not paused).
        wait = pacer.wait(self.timer.monotonic())
        if wait > 0:
            await self.timer.sleep(wait)
        pacer.take(row.chat, self.timer.monotonic())
        sender = self.senders.get(channel)
        error: Exception | None = None
        try:
            if sender is None:
                raise TransientSendError(f"no sender for {channel} in this process")
            # A sender may treat queued messages apart (the OA's quota check; ZNS fills a template
            # from the notice's values): `send_queued(account, outgoing, notice)`.
            send_queued = getattr(sender, "send_queued", None)
            if send_queued is not None:
                await send_queued(row.account, outgoing, notice)
            else:
                await sender.send(row.account, [outgoing])
        except Exception as exc:  # every failure is recorded below; BaseException (a dying process) is not
            error = exc
        now = self.app.clock.now()
        async with self.app.sessions.begin() as session:
            if error is None:
                await self._record(session, row.id, status=SENT, sent_at=now, last_error=None)
                report.sent += 1
            elif isinstance(error, RateLimited):
                # Not the message's fault: it keeps its attempts and waits as the platform asked.
                pacer.pause(error.retry_after, self.timer.monotonic())
                await self._retry_later(
                    session,
                    row.id,
                    now + timedelta(seconds=error.retry_after),
                    describe(error),
                    attempts=OutboxMessage.attempts - 1,
                )
                report.rate_limited += 1
                log.warning("%s: rate limited, pausing %.1fs", channel, error.retry_after)
            elif isinstance(error, Unreachable):
                await self._record(session, row.id, status=UNREACHABLE, last_error=error.reason)
                await session.execute(
                    update(ChannelAccount)
                    .where(ChannelAccount.id == row.account.id)
                    .values(unreachable_at=now, unreachable_reason=error.reason[:64])
                )
                report.unreachable += 1
            else:
                attempts = await session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == row.id)) or 1
                if not isinstance(error, TransientSendError):
                    log.error("outbox %s: unexpected send error", row.id, exc_info=error)
                if attempts >= self.settings.dispatch_max_attempts:
                    await self._record(session, row.id, status=FAILED, last_error=describe(error))
                    report.failed += 1
                else:
                    delay = min(BACKOFF_CAP_SECONDS, self.settings.dispatch_backoff_seconds * 2 ** (attempts - 1))
                    await self._retry_later(session, row.id, now + timedelta(seconds=delay), describe(error))
                    report.retried += 1

    # -- as a service ---------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.run_once()
            except Exception:
                log.exception("outbox dispatch pass failed")
                report = Report()
            if report.full and not stop.is_set():
                continue
            try:
                await asyncio.wait_for(stop.wait(), self.settings.dispatch_poll_seconds)
            except TimeoutError:
                pass


class DispatcherService:
    name = "outbox-dispatcher"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.dispatcher.run_forever(self._stop), name=self.name)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                # Let the message in flight be recorded; a claimed batch left behind is recovered.
                await asyncio.wait_for(self._task, 30)
            except TimeoutError:
                self._task.cancel()
            self._task = None
