"""Facts the planner and the digests read in bulk: who is linked to a submission, how to reach them,
how far each declaration got, and what reviewers asked for.

Everything is fetched per chunk of ids with a handful of queries, so a round over 100 000 people
costs a few hundred statements, not a few hundred thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaCatalog, CriteriaSet
from bot.domain.lifecycle import State
from bot.storage.models import (
    Answer,
    ChannelAccount,
    CriteriaSetRecord,
    Person,
    Submission,
    SubmissionEvent,
)
from bot.storage.subjects import concerned, join_subjects
from bot.zalo.oa import oa_window

CHUNK = 1000
NOTE_MAX = 200
NO_ACCOUNT = "no_account"
ZNS_CHANNEL = "zns"  # bot.zalo.zns
ZALO_OA = "zalo_oa"


def chunked(ids: Sequence[int], size: int = CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass(frozen=True)
class Reach:
    """How to reach a person: the account to write to, or why there is none."""

    person_id: int
    account_id: int | None
    channel: str | None
    external_id: str | None
    locale: str | None
    unreachable_reason: str | None  # blocked, outside_window, … or "no_account"

    @property
    def reachable(self) -> bool:
        # A ZNS route by OA user id has its account made when the reminder is queued.
        return self.account_id is not None or (self.channel == ZNS_CHANNEL and self.external_id is not None)


@dataclass(frozen=True)
class Route:
    """How reminders may reach people beyond the chats: the OA's window, and ZNS."""

    now: datetime
    oa_window: timedelta | None = None  # Zalo OA accounts silent longer than this cannot be written to
    zns: bool = False  # ZNS by a phone number given for it
    zns_uid: bool = False  # ZNS by the Zalo OA user id


def route_for(settings, now: datetime) -> Route:

    zns = bool(settings.zalo_oa_app_id and settings.zalo_zns_templates)
    return Route(now, oa_window(settings) if settings.zalo_oa_app_id else None, zns, zns and settings.zalo_zns_by_uid)


async def reach_of(
    session: AsyncSession, person_ids: Iterable[int], *, consent: bool = True, route: Route | None = None
) -> dict[int, Reach]:
    """For each person, the account they used most recently that is not marked unreachable
    (and, for residents, on which they gave consent).

    With a `route` (reminders to residents): a Zalo OA account silent for longer than the OA window
    counts as unreachable ("outside_window"), and then ZNS is the way, when it is set up — by the
    phone number the person gave for it, or by their OA user id (a "zns" account made when the
    reminder is queued: `Reach.account_id` is None until then).

    People with no such account get the reason of their most recently marked account (or
    "no_account"), which the branch leader's digest shows as "needs a visit". Staff digests go to
    leaders and officers whether or not they ever registered as residents (`consent=False`).
    """
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(
            ChannelAccount.id,
            ChannelAccount.person_id,
            ChannelAccount.channel,
            ChannelAccount.external_id,
            ChannelAccount.locale,
            ChannelAccount.last_inbound_at,
            ChannelAccount.created_at,
            ChannelAccount.unreachable_at,
            ChannelAccount.unreachable_reason,
            Person.locale,
        )
        .join(Person, Person.id == ChannelAccount.person_id)
        .where(
            ChannelAccount.person_id.in_(ids),
            Person.deleted_at.is_(None),
            ChannelAccount.consent_at.is_not(None) if consent else ChannelAccount.id.is_not(None),
        )
    )
    best: dict[int, tuple[datetime, Reach]] = {}
    down: dict[int, tuple[datetime, str]] = {}
    zns: dict[int, Reach] = {}
    for acc_id, person_id, channel, external_id, locale, last_in, created, down_at, reason, person_locale in rows:
        if person_id is None:  # excluded by the query; narrows the type
            continue
        if channel == ZNS_CHANNEL:
            # Only for reminders, and only when nothing else reaches the person.
            if route is not None and route.zns and down_at is None:
                zns[person_id] = Reach(person_id, acc_id, channel, external_id, locale or person_locale, None)
            elif down_at is not None and person_id not in down:
                down[person_id] = (down_at, reason or "unknown")
            continue
        seen = last_in or created
        if channel == ZALO_OA and route is not None and down_at is None and route.oa_window is not None:
            if route.now - seen >= route.oa_window:
                down_at, reason = seen, "outside_window"
            if route.zns_uid and person_id not in zns:
                zns[person_id] = Reach(
                    person_id, None, ZNS_CHANNEL, f"uid:{external_id}", locale or person_locale, None
                )
        if down_at is not None:
            if person_id not in down or down[person_id][0] < down_at:
                down[person_id] = (down_at, reason or "unknown")
            continue
        if person_id not in best or best[person_id][0] < seen:
            best[person_id] = (seen, Reach(person_id, acc_id, channel, external_id, locale or person_locale, None))
    found = {}
    for person_id in ids:
        if person_id in best:
            found[person_id] = best[person_id][1]
        elif person_id in zns:
            found[person_id] = zns[person_id]
        else:
            reason = down[person_id][1] if person_id in down else NO_ACCOUNT
            found[person_id] = Reach(person_id, None, None, None, None, reason)
    return found


def linked_people(*conditions: ColumnElement[bool]) -> CompoundSelect[Any]:
    """(person id, submission id) for everyone concerned by the submissions matching `conditions`:
    whoever owns them, by the rule of their subject kind (bot.storage.subjects)."""
    return concerned(*conditions)


@dataclass
class SubmissionFacts:
    id: int
    reference: str
    title: str
    state: str
    branch_id: int
    subject_name: str
    criteria_set_id: str
    answered: int = 0
    total: int = 0
    note: str | None = None  # the latest reviewer request, when it needs more information


class CriteriaCache:
    """Criteria sets by id: the files the bot runs with, else the snapshot in the database."""

    def __init__(self, catalog: CriteriaCatalog) -> None:
        self.catalog = catalog
        self._sets: dict[str, CriteriaSet] = {}
        self._sizes: dict[str, int] = {}
        self._titles: dict[str, dict[str, str]] = {}

    async def get(self, session: AsyncSession, set_id: str) -> CriteriaSet:
        if set_id not in self._sets:
            found = self.catalog.sets.get(set_id)
            if found is None:
                record = await session.get(CriteriaSetRecord, set_id)
                if record is None:
                    raise LookupError(f"criteria set {set_id} is unknown")
                found = CriteriaSet.model_validate(record.data)
            self._sets[set_id] = found
        return self._sets[set_id]

    async def size(self, session: AsyncSession, set_id: str) -> int:
        if set_id not in self._sizes:
            self._sizes[set_id] = len((await self.get(session, set_id)).items)
        return self._sizes[set_id]

    async def title_text(self, session: AsyncSession, set_id: str) -> dict[str, str]:
        if set_id not in self._titles:
            name = (await self.get(session, set_id)).title_name
            self._titles[set_id] = {"vi": name.vi, "en": name.en}
        return self._titles[set_id]


async def submission_facts(
    session: AsyncSession, submission_ids: Sequence[int], criteria: CriteriaCache
) -> dict[int, SubmissionFacts]:
    if not submission_ids:
        return {}
    query, subject = join_subjects(
        select(
            Submission.id,
            Submission.reference,
            Submission.title,
            Submission.state,
            Submission.branch_id,
            Submission.criteria_set_id,
        )
    )
    rows = await session.execute(query.add_columns(subject.name).where(Submission.id.in_(submission_ids)))
    facts = {}
    for sid, reference, title, state, branch_id, set_id, name in rows:
        total = await criteria.size(session, set_id)
        facts[sid] = SubmissionFacts(sid, reference or "", title, state, branch_id, name or "", set_id, total=total)
    counts = await session.execute(
        select(Answer.submission_id, func.count())
        .where(Answer.submission_id.in_(submission_ids))
        .group_by(Answer.submission_id)
    )
    for sid, count in counts:
        facts[sid].answered = int(count)
    asking = [sid for sid, f in facts.items() if f.state == State.NEEDS_INFO.value]
    if asking:
        latest = (
            select(func.max(SubmissionEvent.id))
            .where(SubmissionEvent.submission_id.in_(asking), SubmissionEvent.to_state == State.NEEDS_INFO.value)
            .group_by(SubmissionEvent.submission_id)
        )
        notes = await session.execute(
            select(SubmissionEvent.submission_id, SubmissionEvent.note).where(SubmissionEvent.id.in_(latest))
        )
        for sid, note in notes:
            facts[sid].note = short_note(note)
    return facts


def short_note(note: str | None) -> str:
    text = " ".join((note or "").split())
    return text if len(text) <= NOTE_MAX else text[: NOTE_MAX - 1].rstrip() + "…"


async def names_of(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, str]:
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await session.execute(select(Person.id, Person.full_name).where(Person.id.in_(ids)))
    return {pid: name for pid, name in rows}
