"""What `hoctap remind` and `hoctap outbox` print: who would get what and when, and the outbox state.

Operator output, in English; the reminder texts themselves (--verbose) are shown in each
recipient's language, as they would receive them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, or_, select

from bot.app import App
from bot.reminders.digests import PlannedDigest
from bot.reminders.planner import Planned
from bot.reminders.rounds import Collected, Rounds
from bot.reminders.timing import Moment
from bot.storage.models import Campaign, ChannelAccount, OrgUnit, OutboxMessage
from bot.storage.outbox import Notice, render_notice

Echo = Callable[[str], None]
PROBLEM_STATUSES = ("unconfirmed", "failed", "unreachable")


def _when(app: App, instant: datetime) -> str:
    return instant.astimezone(app.settings.tz).strftime("%Y-%m-%d %H:%M")


def _reach(reach) -> str:
    if reach.reachable:
        shown = reach.external_id or ""
        if shown.startswith("phone:"):  # a number given for ZNS: its last digits are enough here
            shown = "phone:…" + shown[-3:]
        return f"{reach.channel}:{shown}"
    return f"UNREACHABLE ({reach.unreachable_reason})"


def _shown_id(account: ChannelAccount) -> str:
    """The account's id, a phone number (ZNS) shortened to its last digits."""
    if account.external_id.startswith("phone:"):
        return "phone:…" + account.external_id[-3:]
    return account.external_id


def _indent(text: str) -> str:
    return "\n".join("        " + line for line in text.splitlines())


def _show_reminder(app: App, echo: Echo, p: Planned, verbose: bool) -> None:
    what = ", ".join(p.groups) + (": " + ", ".join(p.references) if p.references else "")
    echo(f"    {p.name:<28} {_reach(p.reach):<32} {what}")
    if verbose and isinstance(p.queued.notice, Notice):  # a digest has no text until it is sent
        echo(_indent(render_notice(p.queued.notice, p.reach.locale).text))


def _show_digest(app: App, echo: Echo, d: PlannedDigest, verbose: bool) -> None:
    echo(f"    {d.name:<28} {_reach(d.reach):<32} {d.target.role} digest: {d.target.unit.name}")
    if verbose and d.preview is not None:
        # Built by the function the dispatcher calls when it sends the digest, for the planned time.
        echo(_indent(render_notice(d.preview, d.reach.locale).text))


async def _labels(app: App) -> dict[int, str]:
    async with app.sessions() as session:
        rows = await session.execute(
            select(Campaign.id, Campaign.year, OrgUnit.name).join(OrgUnit, OrgUnit.id == Campaign.commune_id)
        )
        return {cid: f"{name} {year}" for cid, year, name in rows}


async def _round(
    app: App, echo: Echo, rounds: Rounds, moment: Moment, label: str, *, dry_run: bool, limit: int, verbose: bool
) -> None:
    seen = Collected()
    result = await rounds.run_round(
        moment.campaign_id,
        moment.deadline_kind,
        moment.offset,
        due_on=moment.due_on,
        planned_at=moment.at,
        dry_run=dry_run,
        collect=seen,
    )
    before = "on the day" if moment.offset == 0 else f"{moment.offset} day{'s' if moment.offset != 1 else ''} before"
    head = f"{_when(app, moment.at)}  {label} — {moment.deadline_kind} {moment.due_on}, {before}"
    if result is None:
        echo(f"{head}: no longer applies")
        return
    counts = f"{result.planned} reminder(s), {result.unreachable} unreachable"
    if result.digests:
        counts += f", {result.digests} digest(s)"
    if not dry_run:
        counts += f"; queued {result.queued + result.digests_queued} new"
    echo(f"{head}: {counts}")
    for p in seen.reminders[:limit]:
        _show_reminder(app, echo, p, verbose)
    if len(seen.reminders) > limit:
        echo(f"    … and {len(seen.reminders) - limit} more")
    for d in seen.digests:
        _show_digest(app, echo, d, verbose)


async def remind(app: App, echo: Echo, *, dry_run: bool, days: int, limit: int, verbose: bool) -> None:
    rounds = Rounds(app)
    labels = await _labels(app)
    now = app.clock.now()
    mode = "dry run, nothing is written" if dry_run else "queuing what is due now"
    echo(f"Reminders as of {_when(app, now)} ({app.settings.timezone}) — {mode}")
    echo("")
    echo("Due now (the current round of each deadline still ahead):")
    due = await rounds.due_now()
    if not due:
        echo("    nothing")
    for moment in due:
        await _round(
            app,
            echo,
            rounds,
            moment,
            labels.get(moment.campaign_id, "?"),
            dry_run=dry_run,
            limit=limit,
            verbose=verbose,
        )
    if not dry_run:
        return
    echo("")
    echo(f"Upcoming (next {days} days; recipients as things stand now):")
    upcoming = await rounds.upcoming(days)
    if not upcoming:
        echo("    nothing")
    for moment in upcoming:
        await _round(
            app, echo, rounds, moment, labels.get(moment.campaign_id, "?"), dry_run=True, limit=limit, verbose=verbose
        )
    echo("")
    settings = app.settings
    trigger = CronTrigger(
        day_of_week=settings.digest_weekday,
        hour=settings.digest_time.hour,
        minute=settings.digest_time.minute,
        timezone=settings.tz,
    )
    next_weekly = trigger.get_next_fire_time(None, now.astimezone(settings.tz))
    seen = Collected()
    await rounds.run_weekly(dry_run=True, collect=seen)
    echo(f"Weekly digests (next {_when(app, next_weekly)}): {len(seen.digests)}")
    for d in seen.digests:
        _show_digest(app, echo, d, verbose)


async def outbox_status(app: App, echo: Echo, *, problems: bool, limit: int) -> None:
    async with app.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.status, OutboxMessage.kind, func.count())
            .group_by(OutboxMessage.status, OutboxMessage.kind)
            .order_by(OutboxMessage.status, OutboxMessage.kind)
        )
        counted = list(rows)
        if not problems:
            if not counted:
                echo("outbox is empty")
            for status, kind, count in counted:
                echo(f"{status:<12} {kind:<16} {count}")
        else:
            # Only the problems: counts of problem rows, then each row (or a plain "none").
            troubled = [(status, kind, count) for status, kind, count in counted if status in PROBLEM_STATUSES]
            if not troubled:
                echo("no problems: nothing unconfirmed, failed or unreachable")
            for status, kind, count in troubled:
                echo(f"{status:<12} {kind:<16} {count}")
            from bot.reminders.zalo_lines import problem_counts
            from bot.zalo.alerts import recent_alerts

            now = app.clock.now()
            counts = await problem_counts(session, now)
            if counts:
                echo(
                    "held up for an operator (last 7 days): " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
                )
            for alert in await recent_alerts(session, now):
                echo(
                    f"alert {alert.key}: {alert.count} since {_when(app, alert.first_at)}, "
                    f"last {_when(app, alert.last_at)}" + (f" — {alert.detail}" if alert.detail else "")
                )
            found = await session.execute(
                select(OutboxMessage, ChannelAccount)
                .join(ChannelAccount, ChannelAccount.id == OutboxMessage.account_id)
                .where(
                    or_(
                        OutboxMessage.status.in_(PROBLEM_STATUSES),
                        # waiting for a cause an operator can act on: "[quota] …", "[billing] …"
                        (OutboxMessage.status == "pending") & OutboxMessage.last_error.like("[%"),
                    )
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            for row, account in found:
                echo(
                    f"#{row.id} {row.status} {row.dedupe_key} → {account.channel}:{_shown_id(account)} "
                    f"attempts={row.attempts} {row.last_error or ''}".rstrip()
                )
