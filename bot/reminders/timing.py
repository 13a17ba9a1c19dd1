"""When reminders are due and when they may be sent.

Everything here works in the people's zone (settings.timezone, Asia/Ho_Chi_Minh by default):
a reminder "7 days before 30 November" is planned for 23 November at REMINDER_TIME local time,
and nothing is sent during quiet hours (QUIET_HOURS_START–QUIET_HOURS_END, 21:00–07:00):
what falls due then is held until the morning, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.clock import UTC, ensure_aware
from bot.config import Settings
from bot.storage.models import Campaign, CampaignDeadline


def local_moment(day: date, at: time, settings: Settings) -> datetime:
    """`day` at the local time `at`, as an aware UTC instant."""
    return datetime.combine(day, at, tzinfo=settings.tz).astimezone(UTC)


def in_quiet_hours(instant: datetime, settings: Settings) -> bool:
    start, end = settings.quiet_start, settings.quiet_end
    local = ensure_aware(instant).astimezone(settings.tz).time()
    if start == end:
        return False
    if start > end:  # the night wraps midnight: 21:00–07:00
        return local >= start or local < end
    return start <= local < end


def next_allowed(instant: datetime, settings: Settings) -> datetime:
    """The instant itself, or the end of the quiet hours it falls in."""
    if not in_quiet_hours(instant, settings):
        return instant
    local = ensure_aware(instant).astimezone(settings.tz)
    day = local.date()
    if settings.quiet_start > settings.quiet_end and local.time() >= settings.quiet_start:
        day += timedelta(days=1)
    return local_moment(day, settings.quiet_end, settings)


def effective_offsets(campaign: Campaign, deadline: CampaignDeadline) -> list[int]:
    """Days before the deadline to remind: the deadline's own list, else the campaign's."""
    offsets = deadline.reminder_offsets if deadline.reminder_offsets is not None else campaign.reminder_offsets
    return sorted({int(o) for o in offsets or [] if 0 <= int(o) <= 365}, reverse=True)


@dataclass(frozen=True)
class Moment:
    """One reminder round: a deadline of a campaign, so many days before it."""

    campaign_id: int
    deadline_kind: str
    due_on: date
    offset: int
    at: datetime  # when the round is planned (UTC)

    @property
    def job_id(self) -> str:
        return f"remind:{self.campaign_id}:{self.deadline_kind}:{self.offset}"


def moments_of(campaign: Campaign, deadlines: list[CampaignDeadline], settings: Settings) -> list[Moment]:
    found = []
    for deadline in deadlines:
        for offset in effective_offsets(campaign, deadline):
            day = deadline.due_on - timedelta(days=offset)
            found.append(
                Moment(
                    campaign.id,
                    deadline.kind,
                    deadline.due_on,
                    offset,
                    local_moment(day, settings.reminder_time, settings),
                )
            )
    return sorted(found, key=lambda m: (m.at, m.deadline_kind))


def days_left(due_on: date, when: datetime, settings: Settings) -> int:
    return (due_on - ensure_aware(when).astimezone(settings.tz).date()).days
