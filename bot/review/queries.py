"""Read-side queries for reviewers: pending lists with filters, one submission by reference,
and a branch's members grouped by state."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.lifecycle import State
from bot.review.scope import Scope
from bot.storage.commune import campaign_for
from bot.storage.models import Campaign, ChannelAccount, OrgUnit, Person, Submission
from bot.storage.subjects import SubjectColumns, join_subjects
from bot.text import fold

_REFERENCE = re.compile(r"^\s*([A-Za-z]{1,8})\s*-\s*(\d{4})\s*-\s*(\d{1,9})\s*$")


def parse_reference(text: str) -> str | None:
    """'cd-2026-1', 'CD-2026-000001' → 'CD-2026-000001'."""
    match = _REFERENCE.match(text or "")
    if not match:
        return None
    title, year, number = match.groups()
    return f"{title.upper()}-{year}-{int(number):06d}"


async def by_reference(session: AsyncSession, text: str) -> Submission | None:
    reference = parse_reference(text)
    if reference is None:
        return None
    return await session.scalar(select(Submission).where(Submission.reference == reference))


@dataclass
class Filters:
    branch_id: int | None = None
    title: str | None = None
    state: str | None = None

    def to_json(self) -> dict:
        return {"branch_id": self.branch_id, "title": self.title, "state": self.state}

    @classmethod
    def from_json(cls, raw: dict | None) -> Filters:
        raw = raw or {}
        return cls(raw.get("branch_id"), raw.get("title"), raw.get("state"))

    @property
    def empty(self) -> bool:
        return self.branch_id is None and self.title is None and self.state is None


@dataclass
class ListedSubmission:
    id: int
    reference: str
    title: str
    state: str
    score: int
    recognisable: bool
    branch_name: str
    name: str | None


@dataclass
class Page:
    rows: list[ListedSubmission]
    total: int
    offset: int
    counts: dict[str, int] = field(default_factory=dict)


def _joined(query: Select) -> tuple[Select, SubjectColumns]:
    """The query with the branch and every kind's subject joined (bot.storage.subjects)."""
    return join_subjects(query.join(OrgUnit, OrgUnit.id == Submission.branch_id))


async def pending(
    session: AsyncSession,
    scope: Scope,
    states: tuple[State, ...],
    filters: Filters,
    *,
    limit: int,
    offset: int = 0,
) -> Page:
    """Submissions waiting for this reviewer, oldest submitted first, within scope and filters."""
    wanted = [s.value for s in states]
    if filters.state and filters.state in wanted:
        wanted = [filters.state]
    conditions: list[ColumnElement[bool]] = [Submission.state.in_(wanted), Submission.anonymised_at.is_(None)]
    if scope.branch_ids is not None:
        conditions.append(Submission.branch_id.in_(scope.branch_ids))
    if filters.branch_id is not None:
        conditions.append(Submission.branch_id == filters.branch_id)
    if filters.title:
        conditions.append(Submission.title == filters.title)
    total = await session.scalar(select(func.count()).select_from(Submission).where(*conditions)) or 0
    counts = dict(
        (
            await session.execute(select(Submission.state, func.count()).where(*conditions).group_by(Submission.state))
        ).all()
    )
    query, subject = _joined(
        select(
            Submission.id,
            Submission.reference,
            Submission.title,
            Submission.state,
            Submission.score,
            Submission.recognisable,
            OrgUnit.name,
        )
    )
    query = (
        query.add_columns(subject.name)
        .where(*conditions)
        .order_by(func.coalesce(Submission.submitted_at, Submission.created_at), Submission.id)
    )
    rows = [ListedSubmission(*row) for row in await session.execute(query.limit(limit).offset(offset))]
    return Page(rows, total, offset, counts)


MAX_QUEUE = 5000  # far beyond a commune's year; the neighbours of one application in its queue


async def neighbours(
    session: AsyncSession, scope: Scope, states: tuple[State, ...], filters: Filters, submission_id: int
) -> tuple[int | None, int | None]:
    """The applications before and after this one in the reviewer's queue (same order and
    filters as the list), so that they can work through it without typing references."""
    page = await pending(session, scope, states, filters, limit=MAX_QUEUE)
    ids = [row.id for row in page.rows]
    if submission_id not in ids:
        return None, ids[0] if ids else None
    at = ids.index(submission_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


@dataclass
class Member:
    reference: str | None
    title: str | None
    name: str
    state: str | None  # None: in the branch but not registered this year
    unreachable: bool = False


async def branch_members(session: AsyncSession, branch: OrgUnit, today: date) -> tuple[Campaign | None, list[Member]]:
    """This year's submissions of a branch, and the branch's people with none this year."""
    campaign = await campaign_for(session, branch.parent_id, today) if branch.parent_id else None
    members: list[Member] = []
    subject_people: set[int] = set()
    if campaign is not None:
        query, subject = _joined(select(Submission.reference, Submission.title, Submission.state))
        query = (
            query.add_columns(subject.name, subject.person_id)
            .where(
                Submission.campaign_id == campaign.id,
                Submission.branch_id == branch.id,
                Submission.anonymised_at.is_(None),
            )
            .order_by(subject.name, Submission.reference)
        )
        for reference, title, state, who, person_id in await session.execute(query):
            members.append(Member(reference, title, who or "?", state))
            if person_id:
                subject_people.add(person_id)
    others = (
        select(Person.id, Person.full_name)
        .where(Person.branch_id == branch.id, Person.deleted_at.is_(None))
        .order_by(Person.full_name)
    )
    for person_id, full_name in await session.execute(others):
        if person_id not in subject_people and full_name:
            members.append(Member(None, None, full_name, None))
    unreachable = set(
        await session.scalars(
            select(Person.full_name)
            .join(ChannelAccount, ChannelAccount.person_id == Person.id)
            .where(Person.branch_id == branch.id, ChannelAccount.unreachable_at.is_not(None))
        )
    )
    for member in members:
        member.unreachable = member.name in unreachable
    return campaign, members


async def people_for_proxy(session: AsyncSession, scope: Scope, search: str | None, limit: int) -> list[Person]:
    """People in the leader's branches who have no chat account of their own (no smartphone)."""
    has_account = select(ChannelAccount.id).where(ChannelAccount.person_id == Person.id).exists()
    query = select(Person).where(Person.deleted_at.is_(None), ~has_account, Person.full_name != "")
    if scope.branch_ids is not None:
        query = query.where(Person.branch_id.in_(scope.branch_ids))
    else:
        query = query.where(Person.branch_id.is_not(None))
    people = list(await session.scalars(query.order_by(Person.id.desc())))
    if search:
        wanted = fold(search)
        people = [p for p in people if wanted in fold(p.full_name)]
    return people[:limit]
