"""How long evidence photos are kept: those of decided applications (recognised or refused) are
removed PHOTO_RETENTION_MONTHS after the commune's report deadline of their campaign (31 December
of the campaign year when the campaign has none). 0 turns the rule off.

The applications themselves stay (the multi-year register needs them). Each removal is recorded
as an event on the application with actor `retention` and the state unchanged — not a lifecycle
move, so readers of the lifecycle skip it — and the reviewer's view says the photos were removed
under this rule. The scheduler applies it daily; `hoctap retention --dry-run` shows what it would
remove, as counts per commune and campaign.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.lifecycle import State
from bot.storage.models import Campaign, CampaignDeadline, Evidence, OrgUnit, Submission, SubmissionEvent

log = logging.getLogger(__name__)

RETENTION_ACTOR = "retention"  # SubmissionEvent.actor_kind of a removal under this rule
DECIDED = (State.APPROVED.value, State.REJECTED.value)
CHUNK = 500


def add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when it is shorter)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class RetentionGroup:
    """One campaign of one commune: what the rule removes there (counts only, no names)."""

    commune_code: str
    commune_name: str
    year: int
    campaign_id: int
    report_due: date | None
    removable_from: date
    submission_ids: list[int] = field(default_factory=list)
    photos: int = 0

    @property
    def applications(self) -> int:
        return len(self.submission_ids)


async def due_groups(session: AsyncSession, months: int, today: date) -> list[RetentionGroup]:
    """Campaigns whose retention time has come, with the decided applications still holding photos."""
    if months <= 0:
        return []
    rows = await session.execute(
        select(Campaign, OrgUnit, CampaignDeadline.due_on)
        .join(OrgUnit, OrgUnit.id == Campaign.commune_id)
        .outerjoin(
            CampaignDeadline,
            (CampaignDeadline.campaign_id == Campaign.id) & (CampaignDeadline.kind == "commune_report"),
        )
        .order_by(OrgUnit.code, Campaign.year)
    )
    groups = []
    for campaign, commune, report_due in rows:
        removable_from = add_months(report_due or date(campaign.year, 12, 31), months)
        if today < removable_from:
            continue
        found = await session.execute(
            select(Submission.id, func.count(Evidence.id))
            .join(Evidence, Evidence.submission_id == Submission.id)
            .where(Submission.campaign_id == campaign.id, Submission.state.in_(DECIDED))
            .group_by(Submission.id)
            .order_by(Submission.id)
        )
        group = RetentionGroup(commune.code, commune.name, campaign.year, campaign.id, report_due, removable_from)
        for submission_id, photos in found:
            group.submission_ids.append(submission_id)
            group.photos += int(photos)
        if group.submission_ids:
            groups.append(group)
    return groups


async def remove_photos(session: AsyncSession, submission_ids: list[int], now: datetime) -> list[str]:
    """Remove the evidence rows of these applications and record it on each; returns the file
    paths that were referenced (remove the files after commit, unless another row still uses them)."""
    rows = await session.execute(
        select(Evidence.submission_id, Evidence.path).where(Evidence.submission_id.in_(submission_ids))
    )
    paths, holding = [], set()
    for submission_id, path in rows:
        paths.append(path)
        holding.add(submission_id)
    if not holding:
        return []
    await session.execute(delete(Evidence).where(Evidence.submission_id.in_(holding)))
    states = await session.execute(select(Submission.id, Submission.state).where(Submission.id.in_(holding)))
    session.add_all(
        SubmissionEvent(
            submission_id=submission_id,
            from_state=state,
            to_state=state,
            actor_kind=RETENTION_ACTOR,
            actor_person_id=None,
            note=None,
            at=now,
        )
        for submission_id, state in states
    )
    await session.flush()
    return paths


async def photos_removed_at(session: AsyncSession, submission_id: int) -> datetime | None:
    """When the retention rule removed this application's photos (None: it did not)."""
    return await session.scalar(
        select(func.max(SubmissionEvent.at)).where(
            SubmissionEvent.submission_id == submission_id, SubmissionEvent.actor_kind == RETENTION_ACTOR
        )
    )
