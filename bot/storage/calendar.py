"""The communes' calendars in memory: their units, campaigns, deadlines and after-deadline policy.

Nearly every message reads the calendar (a prompt that starts or continues work names its
deadline; registration and declaration check the commune's policy), while it changes a few
times a year (/lichnhac, `hoctap init`). So each process keeps one snapshot and reads it again:

* at once after this process committed a change to a unit, campaign or deadline — ORM writes
  and ORM-enabled INSERT/UPDATE/DELETE statements on those classes are noticed (the session
  events at the end of this module);
* at least once a minute otherwise, for changes another worker made.

A snapshot is three small queries; a message that uses it costs none.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from bot.storage.models import Campaign, CampaignDeadline, OrgUnit

REFRESH_SECONDS = 60.0
T = TypeVar("T")
CALENDAR_CLASSES = (OrgUnit, Campaign, CampaignDeadline)


@dataclass(frozen=True)
class CampaignDates:
    """A campaign's window (the first day people can register, the day its work ends) and its
    deadlines by kind, earliest first."""

    id: int
    commune_id: int
    year: int
    opens: date
    ends: date
    deadlines: Mapping[str, date]


@dataclass(frozen=True)
class CommuneCalendar:
    id: int
    policy: str  # after a deadline: "late" | "closed"
    campaigns: tuple[CampaignDates, ...]  # oldest first

    def current(self, today: date) -> CampaignDates | None:
        return current_of([(campaign, campaign.opens) for campaign in self.campaigns], today)

    def after(self, campaign_id: int) -> CampaignDates | None:
        """The campaign after this one, once it exists."""
        ids = [campaign.id for campaign in self.campaigns]
        index = ids.index(campaign_id) if campaign_id in ids else -1
        return self.campaigns[index + 1] if 0 <= index < len(ids) - 1 else None


def windows(
    campaigns: Iterable[tuple[int, int, date | None]], dates: Mapping[int, list[date]]
) -> list[tuple[date, date]]:
    """(opens, ends) for each (id, year, opening day) of one commune's campaigns, oldest first:
    a campaign ends on its last deadline (31/12 of its year without any) and opens on its
    opening day, else the day after the previous one ends, else 1/1 of its year."""
    result: list[tuple[date, date]] = []
    for campaign_id, year, opens_on in campaigns:
        due = dates.get(campaign_id) or []
        ends = max(due) if due else date(year, 12, 31)
        if opens_on is not None:
            opens = opens_on
        elif result:
            opens = result[-1][1] + timedelta(days=1)
        else:
            opens = date(year, 1, 1)
        result.append((min(opens, ends), ends))
    return result


def current_of(campaigns: Sequence[tuple[T, date]], today: date) -> T | None:
    """Of (campaign, opening day) pairs, oldest first: the current campaign, chosen by its window
    (not the calendar year) — the latest that has opened by `today`; before the first opens, the
    first."""
    opened = [campaign for campaign, opens in campaigns if opens <= today]
    if opened:
        return opened[-1]
    return campaigns[0][0] if campaigns else None


@dataclass(frozen=True)
class Snapshot:
    communes: Mapping[int, CommuneCalendar]
    campaigns: Mapping[int, CampaignDates]
    commune_of_branch: Mapping[int, int]
    only_commune: int | None  # the commune when exactly one is installed

    def commune_of(self, unit_id: int | None) -> CommuneCalendar | None:
        """The calendar of a commune or of a branch's commune; when that is not known, of the
        only commune installed (None when there are several)."""
        if unit_id is not None:
            found = self.communes.get(self.commune_of_branch.get(unit_id, unit_id))
            if found is not None:
                return found
        return self.communes.get(self.only_commune) if self.only_commune is not None else None


async def read_snapshot(session: AsyncSession) -> Snapshot:
    units = (await session.execute(select(OrgUnit.id, OrgUnit.kind, OrgUnit.parent_id, OrgUnit.after_deadline))).all()
    rows = (
        await session.execute(
            select(Campaign.id, Campaign.commune_id, Campaign.year, Campaign.opens_on).order_by(
                Campaign.commune_id, Campaign.year
            )
        )
    ).all()
    due: dict[int, list[tuple[date, str]]] = {}
    for campaign_id, kind, due_on in (
        await session.execute(
            select(CampaignDeadline.campaign_id, CampaignDeadline.kind, CampaignDeadline.due_on).order_by(
                CampaignDeadline.due_on
            )
        )
    ).all():
        due.setdefault(campaign_id, []).append((due_on, kind))
    by_commune: dict[int, list[Any]] = {}
    for row in rows:
        by_commune.setdefault(row.commune_id, []).append(row)
    campaigns: dict[int, CampaignDates] = {}
    communes: dict[int, CommuneCalendar] = {}
    commune_ids = [unit_id for unit_id, kind, _parent, _policy in units if kind == "commune"]
    dates = {campaign_id: [due_on for due_on, _kind in each] for campaign_id, each in due.items()}
    for unit_id, kind, _parent, policy in units:
        if kind != "commune":
            continue
        own = by_commune.get(unit_id, [])
        spans = windows(((row.id, row.year, row.opens_on) for row in own), dates)
        dated = tuple(
            CampaignDates(
                row.id, unit_id, row.year, opens, ends, {kind: due_on for due_on, kind in due.get(row.id, [])}
            )
            for row, (opens, ends) in zip(own, spans, strict=True)
        )
        campaigns.update((campaign.id, campaign) for campaign in dated)
        communes[unit_id] = CommuneCalendar(unit_id, policy or "late", dated)
    return Snapshot(
        communes,
        campaigns,
        {unit_id: parent for unit_id, kind, parent, _policy in units if kind == "branch" and parent is not None},
        commune_ids[0] if len(commune_ids) == 1 else None,
    )


class Calendars:
    """The process's snapshot, read again when stale (see the module's docstring)."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.refresh_seconds = refresh_seconds
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._generation = -1

    def fresh(self) -> bool:
        return (
            self._snapshot is not None
            and self._generation == _changes.generation
            and time.monotonic() - self._read_at < self.refresh_seconds
        )

    async def snapshot(self, session: AsyncSession) -> Snapshot:
        """The snapshot; read from this session, and not kept, when it has changed the calendar
        itself (the change may still be rolled back)."""
        if self.fresh() and not changing_units(session):
            assert self._snapshot is not None
            return self._snapshot
        generation = _changes.generation
        snapshot = await read_snapshot(session)  # autoflush may write this session's changes first
        if not changing_units(session):
            self._snapshot, self._read_at, self._generation = snapshot, time.monotonic(), generation
        return snapshot

    async def campaign(self, session: AsyncSession, campaign_id: int) -> CampaignDates | None:
        return (await self.snapshot(session)).campaigns.get(campaign_id)

    async def commune_of(self, session: AsyncSession, unit_id: int | None) -> CommuneCalendar | None:
        return (await self.snapshot(session)).commune_of(unit_id)


class _Changes:
    """How many committed transactions of this process changed a unit, campaign or deadline."""

    generation = 0


_changes = _Changes()
_FLAG = "hoctap.calendar_changed"


def units_changed_generation() -> int:
    """Moves on whenever this process commits a change to org units or the calendar (other
    in-memory copies of unit settings use it too: storage/address_forms.py)."""
    return _changes.generation


def changing_units(session: AsyncSession) -> bool:
    """Whether this session has changed a unit, campaign or deadline it has not committed yet
    (written, or still pending in the session)."""
    sync = session.sync_session
    return bool(sync.info.get(_FLAG)) or _touches_calendar(sync)


def _touches_calendar(session: Session) -> bool:
    return any(
        isinstance(instance, CALENDAR_CLASSES)
        for instances in (session.new, session.dirty, session.deleted)
        for instance in instances
    )


@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _context: Any) -> None:
    if _touches_calendar(session):
        session.info[_FLAG] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete or state.is_insert) and any(
        mapper.class_ in CALENDAR_CLASSES for mapper in state.all_mappers
    ):
        state.session.info[_FLAG] = True


@event.listens_for(Session, "after_commit")
def _bump(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        _changes.generation += 1


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, _previous: Any) -> None:
    session.info.pop(_FLAG, None)
