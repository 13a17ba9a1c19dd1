"""Reminder tests: a sender at the channel boundary that records what it delivers, a virtual
timer for pacing, and people/submissions made through the real storage services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.app import App
from bot.channels.base import ChannelSender
from bot.clock import FakeClock
from bot.domain.criteria import Level
from bot.domain.lifecycle import Actor, State
from bot.messages import Outgoing
from bot.storage.models import Campaign, ChannelAccount, OrgUnit, OutboxMessage, Person
from bot.storage.people import MemberSpec, Role, create_household, get_or_create_account, grant_role
from bot.storage.submissions import create_submission, save_answer, transition


class ProcessDied(BaseException):
    """Stands for kill -9: raised past every `except Exception`, nothing after it runs."""


@dataclass
class Delivered:
    external_id: str
    chat: str
    text: str
    choices: list[tuple[str, str]]
    at: float | None


class RecordingSender(ChannelSender):
    """A channel that delivers into a list. `fail(external_id, exc, ...)` scripts failures for the
    next sends to that person; `crash_after(external_id)` delivers and then 'kills the process'."""

    def __init__(self, channel: str = "test", timer: VirtualTimer | None = None) -> None:
        self.channel = channel
        self.timer = timer
        self.delivered: list[Delivered] = []
        self._failures: dict[str, list[BaseException]] = {}
        self._crash: set[str] = set()
        self.calls = 0

    def fail(self, external_id: str, *errors: BaseException) -> None:
        self._failures.setdefault(external_id, []).extend(errors)

    def crash_after(self, external_id: str) -> None:
        self._crash.add(external_id)

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        self.calls += 1
        # The moment the send starts is the one the pacer controls; another channel's task may
        # move the shared virtual timer while this one yields below.
        at = self.timer.monotonic() if self.timer else None
        await asyncio.sleep(0)
        queue = self._failures.get(account.external_id)
        if queue:
            raise queue.pop(0)
        for reply in replies:
            self.delivered.append(
                Delivered(
                    account.external_id,
                    account.chat_id or account.external_id,
                    reply.text,
                    [(c.value, c.label) for c in reply.choices],
                    at,
                )
            )
        if account.external_id in self._crash:
            self._crash.discard(account.external_id)
            raise ProcessDied()

    def to(self, external_id: str) -> list[Delivered]:
        return [d for d in self.delivered if d.external_id == external_id]


class VirtualTimer:
    """Pacing time that passes only when the dispatcher sleeps; the app's FakeClock moves with it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        self.clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)


# -- people and submissions ----------------------------------------------------------------------


async def unit(app: App, code: str) -> OrgUnit:
    async with app.sessions() as session:
        return await session.scalar(select(OrgUnit).where(OrgUnit.code == code))


async def campaign(app: App, year: int = 2026) -> Campaign:
    async with app.sessions() as session:
        return await session.scalar(select(Campaign).where(Campaign.year == year))


async def resident(
    app: App,
    name: str,
    branch: str = "thon-ha-luong",
    *,
    external_id: str | None = None,
    channel: str = "test",
    locale: str | None = None,
    consent: bool = True,
    account: bool = True,
) -> Person:
    """A person who agreed in chat (an account with consent), as the register flow leaves them."""
    now = app.clock.now()
    async with app.sessions.begin() as session:
        branch_unit = await session.scalar(select(OrgUnit).where(OrgUnit.code == branch))
        person = Person(
            full_name=name,
            birth_year=1975,
            branch_id=branch_unit.id,
            locale=locale or "vi",
            consent_at=now if consent else None,
            created_at=now,
        )
        session.add(person)
        await session.flush()
        if account:
            acc = await get_or_create_account(session, channel, external_id or name, external_id or name, now)
            acc.person_id = person.id
            acc.locale = locale
            acc.consent_at = now if consent else None
            acc.last_inbound_at = now
        return person


async def staff(
    app: App, name: str, role: Role, scope: str, *, external_id: str | None = None, locale: str | None = None
) -> Person:
    """A leader or officer bootstrapped like `hoctap admin grant` does (no resident consent)."""
    now = app.clock.now()
    async with app.sessions.begin() as session:
        scope_unit = await session.scalar(select(OrgUnit).where(OrgUnit.code == scope))
        person = Person(full_name=name, branch_id=None, locale=locale or "vi", created_at=now)
        session.add(person)
        await session.flush()
        acc = await get_or_create_account(session, "test", external_id or name, external_id or name, now)
        acc.person_id = person.id
        acc.locale = locale
        await grant_role(session, person, role, scope_unit, granted_by=None, now=now)
        return person


async def submission(
    app: App,
    person: Person,
    state: State = State.REGISTERED,
    *,
    answered: int = 0,
    note: str = "Xin bổ sung ảnh tủ sách cho mục 1.",
    title: str = "cd",
    year: int = 2026,
    members: list[MemberSpec] | None = None,
):
    """A submission brought to `state` through the lifecycle, with `answered` items answered."""
    now = app.clock.now()
    async with app.sessions.begin() as session:
        camp = await session.scalar(select(Campaign).where(Campaign.year == year))
        person = await session.get(Person, person.id)
        criteria_set = app.catalog.for_title(title, year)
        household_id = None
        if criteria_set.subject == "household":
            household = await create_household(
                session, branch_id=person.branch_id, head=person, members=members or [], registered_by=person, now=now
            )
            household_id = household.id
        sub = await create_submission(
            session,
            campaign_id=camp.id,
            year=year,
            criteria_set=criteria_set,
            branch_id=person.branch_id,
            person_id=None if household_id else person.id,
            household_id=household_id,
            actor_person_id=person.id,
            now=now,
        )
        needed = len(criteria_set.items) if state != State.REGISTERED and state != State.DECLARING else answered
        for item in criteria_set.items[: max(answered, needed)]:
            await save_answer(session, sub, criteria_set, item.id, Level.ACHIEVED, actor_person_id=person.id, now=now)
        path = {
            State.REGISTERED: [],
            State.DECLARING: [],
            State.SUBMITTED: [(State.SUBMITTED, Actor.OWNER)],
            State.NEEDS_INFO: [(State.SUBMITTED, Actor.OWNER), (State.NEEDS_INFO, Actor.COMMUNE)],
            State.RECOMMENDED: [(State.SUBMITTED, Actor.OWNER), (State.RECOMMENDED, Actor.BRANCH)],
            State.APPROVED: [(State.SUBMITTED, Actor.OWNER), (State.APPROVED, Actor.COMMUNE)],
        }[state]
        for target, actor in path:
            await transition(session, sub, target, actor=actor, actor_person_id=None, note=note, now=now)
        return sub


async def outbox(app: App) -> list[OutboxMessage]:
    async with app.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def account_of(app: App, external_id: str, channel: str = "test") -> ChannelAccount:
    async with app.sessions() as session:
        return await session.scalar(
            select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.external_id == external_id)
        )


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    from bot.clock import VN_TZ

    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)
