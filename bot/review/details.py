"""Everything a reviewer is shown about one submission, read in one place; the chat review
(bot/flows/staff.py) and the review desk (bot/web/desk.py) only lay it out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaSet, Score
from bot.review.retention import RETENTION_ACTOR, photos_removed_at
from bot.storage.models import (
    Answer,
    Evidence,
    OrgUnit,
    Person,
    Submission,
    SubmissionEvent,
)
from bot.storage.subjects import SubjectMember, SubjectSummary, owners, subject_members, subject_summary
from bot.storage.submissions import answers_of, rescore


@dataclass
class SubmissionDetail:
    branch_name: str
    subject: SubjectSummary | None  # None once anonymised
    members: list[SubjectMember]  # a household's members in order; empty otherwise or once anonymised
    proxy_name: str | None  # the branch leader who filed it for someone, if it was
    score: Score
    answers: dict[str, Answer]
    evidence: list[Evidence]
    retention_at: datetime | None  # when retention removed its photos, if it ever did
    history: list[SubmissionEvent]  # the latest events (or all), oldest first (retention's own left out)

    @property
    def photos_removed_at(self) -> datetime | None:
        """When retention removed the photos, if it did and none are left."""
        return self.retention_at if not self.evidence else None

    def photos_for(self, item_id: str) -> int:
        return sum(1 for row in self.evidence if row.item_id == item_id)


async def submission_detail(
    session: AsyncSession, submission: Submission, criteria_set: CriteriaSet, *, history: int | None
) -> SubmissionDetail:
    """`history`: how many of the latest events to read (None: all of them)."""
    branch = await session.get(OrgUnit, submission.branch_id)
    evidence = list(
        await session.scalars(select(Evidence).where(Evidence.submission_id == submission.id).order_by(Evidence.id))
    )
    events = (
        select(SubmissionEvent)
        .where(SubmissionEvent.submission_id == submission.id, SubmissionEvent.actor_kind != RETENTION_ACTOR)
        .order_by(SubmissionEvent.id.desc())
    )
    if history is not None:
        events = events.limit(history)
    return SubmissionDetail(
        branch_name=branch.name if branch else "?",
        subject=await subject_summary(session, submission),
        members=await subject_members(session, submission),
        proxy_name=await _proxy_name(session, submission),
        score=await rescore(session, submission, criteria_set),
        answers=await answers_of(session, submission.id),
        evidence=evidence,
        retention_at=await photos_removed_at(session, submission.id),
        history=list(reversed(list(await session.scalars(events)))),
    )


async def _proxy_name(session: AsyncSession, submission: Submission) -> str | None:
    """Who filed it, when that is not whom it is about (a branch leader acting for them)."""
    creator_id = submission.created_by_person_id
    if not creator_id or creator_id in await owners(session, submission):
        return None
    creator = await session.get(Person, creator_id)
    return creator.full_name if creator is not None and creator.full_name else None
