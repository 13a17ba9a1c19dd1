"""Where each subject kind (bot.domain.subjects) lives in the tables, and the one place that says
whose submission is whose.

Every layer asks here rather than reading `person_id` / `household_id` itself:
- `owned_by(person_id)`: the submissions a person owns and may act on (theirs, or a household they
  head or registered) — the resident flows, registration's duplicate check;
- `owners(submission)`: the people a submission is about, who are told of decisions;
- `concerned(...)`: the same as a query, for reminders over many submissions at once;
- `name(submission)`: the name reviewers see;
- `join_subjects(query)`: the same for a query over many submissions (name, birth year, owner, registrant,
  members), and `concerned_people(...)` the person ids `concerned` covers;
- `register_subject(...)`: registration, which makes or reuses the subject's rows and the submission;
- `subject_members(submission)`: who a subject lists (a household's members), for the detail view,
  and `others_listed(person_id)` how many, for /dulieu;
- `detach(submission)` and `forget(person_id)`: a person deleting their data — their submissions
  cut from their subject, and what each kind keeps of them removed (`SubjectStore.forget`).

A new kind: subclass `SubjectStore` (or use `PersonalSubject` for something one person answers
for; override `join` for a name in lists and exports, `members` and `forget` if it keeps rows of
its own), `add_subject()` it, then write its criteria file and catalog keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    SQLColumnExpression,
    and_,
    case,
    delete,
    false,
    func,
    null,
    or_,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import Null

from bot.domain.criteria import CriteriaSet
from bot.domain.subjects import HOUSEHOLD, PERSON, SubjectKind, add_kind, remove_kind
from bot.storage.calendar import CampaignDates
from bot.storage.models import Campaign, Household, HouseholdMember, OrgUnit, Person, Submission
from bot.storage.people import (
    MemberSpec,
    create_household,
    household_members,
    households_of,
    replace_members,
    typed_in_head,
)
from bot.storage.submissions import create_submission
from bot.text import fold


@dataclass
class Registration:
    """What registration collected: who registers (the person the submission is filed by or for),
    where, for which title, and the kind's own answers (`details`, e.g. a household's head and
    members)."""

    criteria_set: CriteriaSet
    campaign: Campaign | CampaignDates  # its id and year
    branch: OrgUnit
    person: Person
    actor_id: int | None  # who did it: the person, or the branch leader acting for them
    locale: str
    now: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectRef:
    """Where a registered subject is kept on its submission."""

    person_id: int | None = None
    household_id: int | None = None


@dataclass(frozen=True)
class SubjectSummary:
    """A subject as a reviewer sees it: a name, and a birth year or a number of members."""

    name: str | None
    birth_year: int | None = None
    members: int | None = None  # kinds with members: how many (the head included)


@dataclass(frozen=True)
class SubjectMember:
    """Someone a subject lists (a household's member, the head included), as a reviewer sees them."""

    full_name: str
    birth_year: int | None
    relation: str  # head | spouse | child | parent | other


@dataclass
class Forgotten:
    """What a kind removed of a person's when they deleted their data, beyond their submissions."""

    names: list[str] = field(default_factory=list)  # names it held: copies elsewhere are looked for
    people: list[Person] = field(default_factory=list)  # others only the person answered for: erased too

    def add(self, other: Forgotten) -> None:
        self.names += other.names
        self.people += other.people


@dataclass(frozen=True)
class SubjectColumns:
    """What a query over submissions selects of their subjects (the SQL side of `SubjectSummary`);
    each is NULL on the rows of other kinds."""

    name: SQLColumnExpression[Any]
    birth_year: SQLColumnExpression[Any]
    person_id: SQLColumnExpression[Any]  # the person whose name it is (the main owner)
    registrant_id: SQLColumnExpression[Any]  # who registered it
    members: SQLColumnExpression[Any] = field(default_factory=null)  # kinds with members: how many (head included)


class SubjectStore:
    """The storage side of a subject kind. Override what differs; `kind` names it."""

    kind: SubjectKind

    def owned_by(self, person_id: int) -> ColumnElement[bool]:
        """Condition on Submission: this kind's submissions the person owns and may act on."""
        raise NotImplementedError

    def concerned(self, *conditions: ColumnElement[bool]) -> list[Select]:
        """Queries of (pid, sid): everyone concerned by this kind's submissions matching `conditions`."""
        raise NotImplementedError

    async def owners(self, session: AsyncSession, submission: Submission) -> list[int]:
        """The people the submission is about, the main one first (the one a reviewer sees)."""
        raise NotImplementedError

    async def attach(self, session: AsyncSession, registration: Registration) -> SubjectRef:
        """Make or reuse the subject's rows for a registration."""
        raise NotImplementedError

    def join(self, query: Select) -> tuple[Select, SubjectColumns | None]:
        """Outer-join to a query over submissions what its columns need, for this kind's rows only;
        None: the kind has nothing to show there (its rows get NULLs)."""
        return query, None

    async def registrant(self, session: AsyncSession, submission: Submission) -> int | None:
        """Who registered it and whose consent it rests on."""
        owners = await self.owners(session, submission)
        return owners[0] if owners else None

    async def involved(self, session: AsyncSession, submission: Submission) -> set[int]:
        """Everyone it is about or was made by (none of them may review it)."""
        return set(await self.owners(session, submission))

    async def name(self, session: AsyncSession, submission: Submission) -> str | None:
        """The name a reviewer sees; None once anonymised."""
        owners = await self.owners(session, submission)
        person = await session.get(Person, owners[0]) if owners else None
        return person.full_name if person else None

    async def summary(self, session: AsyncSession, submission: Submission) -> SubjectSummary | None:
        """What a reviewer is shown of the subject; None once anonymised."""
        owners = await self.owners(session, submission)
        person = await session.get(Person, owners[0]) if owners else None
        return SubjectSummary(person.full_name, person.birth_year) if person else None

    async def members(self, session: AsyncSession, submission: Submission) -> list[SubjectMember]:
        """Who the subject lists, in order (kinds with members); none by default."""
        return []

    async def others_listed(self, session: AsyncSession, person_id: int) -> int:
        """How many people the person's subjects of this kind list besides their heads (/dulieu)."""
        return 0

    async def forget(self, session: AsyncSession, person_id: int) -> Forgotten:
        """The person deletes their data, their submissions already detached: remove or anonymise
        what this kind keeps of them beyond those submissions (nothing by default)."""
        return Forgotten()


class PersonalSubject(SubjectStore):
    """A subject one person answers for, kept as the submission's person (Công dân học tập)."""

    def __init__(self, kind: SubjectKind) -> None:
        self.kind = kind

    def _mine(self) -> ColumnElement[bool]:
        return Submission.subject_kind == self.kind.name

    def owned_by(self, person_id: int) -> ColumnElement[bool]:
        return self._mine() & (Submission.person_id == person_id)

    def concerned(self, *conditions: ColumnElement[bool]) -> list[Select]:
        return [
            select(Submission.person_id.label("pid"), Submission.id.label("sid")).where(
                self._mine(), Submission.person_id.is_not(None), *conditions
            )
        ]

    async def owners(self, session: AsyncSession, submission: Submission) -> list[int]:
        return [submission.person_id] if submission.person_id is not None else []

    async def attach(self, session: AsyncSession, registration: Registration) -> SubjectRef:
        return SubjectRef(person_id=registration.person.id)

    def join(self, query: Select) -> tuple[Select, SubjectColumns | None]:
        person = aliased(Person)
        query = query.outerjoin(person, and_(person.id == Submission.person_id, self._mine()))
        return query, SubjectColumns(person.full_name, person.birth_year, person.id, person.id)


class HouseholdSubject(SubjectStore):
    """A household (Gia đình học tập): its head and whoever registered it own it."""

    kind = HOUSEHOLD

    def owned_by(self, person_id: int) -> ColumnElement[bool]:
        return Submission.household_id.in_(households_of(person_id).with_only_columns(Household.id))

    def concerned(self, *conditions: ColumnElement[bool]) -> list[Select]:
        return [
            select(column.label("pid"), Submission.id.label("sid"))
            .join(Household, Household.id == Submission.household_id)
            .where(column.is_not(None), *conditions)
            for column in (Household.head_person_id, Household.registered_by_person_id)
        ]

    async def owners(self, session: AsyncSession, submission: Submission) -> list[int]:
        household = await session.get(Household, submission.household_id) if submission.household_id else None
        if household is None:
            return []
        return list(dict.fromkeys(i for i in (household.head_person_id, household.registered_by_person_id) if i))

    def join(self, query: Select) -> tuple[Select, SubjectColumns | None]:
        household, head = aliased(Household), aliased(Person)
        query = query.outerjoin(
            household, and_(household.id == Submission.household_id, Submission.subject_kind == self.kind.name)
        ).outerjoin(head, head.id == household.head_person_id)
        members = (
            select(func.count(HouseholdMember.id)).where(HouseholdMember.household_id == household.id).scalar_subquery()
        )
        return query, SubjectColumns(
            head.full_name,
            head.birth_year,
            head.id,
            household.registered_by_person_id,
            case((household.id.is_not(None), members)),
        )

    async def summary(self, session: AsyncSession, submission: Submission) -> SubjectSummary | None:
        household = await session.get(Household, submission.household_id) if submission.household_id else None
        if household is None:
            return None
        await session.refresh(household, ["members"])
        return SubjectSummary(await self.name(session, submission), members=len(household.members))

    async def members(self, session: AsyncSession, submission: Submission) -> list[SubjectMember]:
        if submission.household_id is None:
            return []
        rows = await household_members(session, submission.household_id)
        return [SubjectMember(m.full_name, m.birth_year, m.relation) for m in rows]

    async def others_listed(self, session: AsyncSession, person_id: int) -> int:
        households = households_of(person_id).with_only_columns(Household.id)
        count = await session.scalar(
            select(func.count())
            .select_from(HouseholdMember)
            .where(HouseholdMember.household_id.in_(households), HouseholdMember.relation != "head")
        )
        return count or 0

    async def forget(self, session: AsyncSession, person_id: int) -> Forgotten:
        """The households they head or registered go, members and all; a head they typed in
        themselves and who has no account is erased with them. A household a branch leader
        registered for someone else stays with that someone."""
        households = list(await session.scalars(households_of(person_id)))
        if not households:
            return Forgotten()
        forgotten = Forgotten()
        for household in households:
            head = await typed_in_head(session, household, person_id)
            if head is not None:
                forgotten.people.append(head)
        ids = [h.id for h in households]
        forgotten.names = [p.full_name for p in forgotten.people] + list(
            await session.scalars(select(HouseholdMember.full_name).where(HouseholdMember.household_id.in_(ids)))
        )
        await session.execute(delete(HouseholdMember).where(HouseholdMember.household_id.in_(ids)))
        await session.execute(delete(Household).where(Household.id.in_(ids)))
        for household in households:
            session.expunge(household)
        return forgotten

    async def registrant(self, session: AsyncSession, submission: Submission) -> int | None:
        household = await session.get(Household, submission.household_id) if submission.household_id else None
        return household.registered_by_person_id if household is not None else None

    async def involved(self, session: AsyncSession, submission: Submission) -> set[int]:
        """Its head, its registrant and every member with a person row."""
        if submission.household_id is None:
            return set()
        members = await session.scalars(
            select(HouseholdMember.person_id).where(HouseholdMember.household_id == submission.household_id)
        )
        return set(await self.owners(session, submission)) | {i for i in members if i is not None}

    async def name(self, session: AsyncSession, submission: Submission) -> str | None:
        household = await session.get(Household, submission.household_id) if submission.household_id else None
        head = await session.get(Person, household.head_person_id) if household and household.head_person_id else None
        return head.full_name if head else None

    async def attach(self, session: AsyncSession, registration: Registration) -> SubjectRef:
        """Reuse the person's household from an earlier year (with today's member list) or make one."""
        details, person, branch = registration.details, registration.person, registration.branch
        members = [MemberSpec(m["name"], m["birth_year"], m["relation"]) for m in details.get("members", [])]
        head: Person | None = None
        if details["is_head"]:
            head = person
            household = await session.scalar(select(Household).where(Household.head_person_id == person.id))
        else:
            household = None
            for candidate in await session.scalars(
                select(Household).where(Household.registered_by_person_id == person.id)
            ):
                head_person = await session.get(Person, candidate.head_person_id)
                if head_person and fold(head_person.full_name) == fold(details["head_name"]):
                    household, head = candidate, head_person
                    break
            if head is None:
                head = Person(
                    full_name=details["head_name"],
                    birth_year=details["head_birth_year"],
                    branch_id=branch.id,
                    locale=registration.locale,
                    created_by_person_id=registration.actor_id or person.id,
                    created_at=registration.now,
                )
                session.add(head)
                await session.flush()
            head.birth_year = details["head_birth_year"]
        if household is None:
            household = await create_household(
                session, branch_id=branch.id, head=head, members=members, registered_by=person, now=registration.now
            )
            return SubjectRef(household_id=household.id)
        await session.refresh(household, ["members"])
        household.branch_id = branch.id
        replace_members(household, head, members)
        await session.flush()
        return SubjectRef(household_id=household.id)


_STORES: dict[str, SubjectStore] = {}


def add_subject(store: SubjectStore) -> SubjectStore:
    """Make a subject kind usable: its criteria files load, and every layer finds its storage."""
    add_kind(store.kind)
    _STORES[store.kind.name] = store
    return store


def remove_subject(name: str) -> None:
    """Forget a kind added by `add_subject` (tests that define their own)."""

    remove_kind(name)
    _STORES.pop(name, None)


def subject_store(kind: str) -> SubjectStore:
    try:
        return _STORES[kind]
    except KeyError:
        raise LookupError(f"no storage for subject kind {kind!r}") from None


def stores() -> Iterable[SubjectStore]:
    return list(_STORES.values())


def owned_by(person_id: int) -> ColumnElement[bool]:
    """Condition on Submission: every submission, of any kind, the person owns and may act on."""
    conditions = [store.owned_by(person_id) for store in stores()]
    return or_(*conditions) if conditions else false()


def concerned(*conditions: ColumnElement[bool]) -> CompoundSelect:
    """(pid, sid) for everyone concerned by the submissions matching `conditions`, any kind."""
    return union(*(query for store in stores() for query in store.concerned(*conditions)))


def concerned_people(*conditions: ColumnElement[bool]) -> list[Select]:
    """The person ids of `concerned`, one query per way of being concerned (so that a NOT IN over
    each stays a plain anti-join)."""
    return [
        query.with_only_columns(query.selected_columns.pid, maintain_column_froms=True)
        for store in stores()
        for query in store.concerned(*conditions)
    ]


def join_subjects(query: Select) -> tuple[Select, SubjectColumns]:
    """Join every kind's subject to a query over submissions: one set of columns, whatever the kind
    of each row (NULL where its kind shows nothing)."""
    found: list[SubjectColumns] = []
    for store in stores():
        query, columns = store.join(query)
        if columns is not None:
            found.append(columns)

    def merged(attribute: str) -> SQLColumnExpression[Any]:
        parts = [part for columns in found if not isinstance(part := getattr(columns, attribute), Null)]
        return func.coalesce(*parts) if len(parts) > 1 else parts[0] if parts else null()  # SQLite: 2 or more

    return query, SubjectColumns(*(merged(f.name) for f in fields(SubjectColumns)))


async def submissions_for_person(session: AsyncSession, person_id: int) -> list[Submission]:
    """A person's own submissions, of every kind (as the subject, as head of the household, or as
    its registrant)."""
    return list(await session.scalars(select(Submission).where(owned_by(person_id)).order_by(Submission.id)))


async def registration_of(
    session: AsyncSession, campaign_id: int, title: str, kind: str, person_id: int
) -> Submission | None:
    """The person's registration (of this kind, for this title) in a campaign, if any."""
    return await session.scalar(
        select(Submission).where(
            Submission.campaign_id == campaign_id,
            Submission.title == title,
            subject_store(kind).owned_by(person_id),
        )
    )


def detach(submission: Submission) -> None:
    """Cut a submission from its subject, whatever its kind: the row stays, about no one."""
    for column in fields(SubjectRef):
        setattr(submission, column.name, None)


async def forget(session: AsyncSession, person_id: int) -> Forgotten:
    """What every kind removes of a person deleting their data (their submissions detached first)."""
    forgotten = Forgotten()
    for store in stores():
        forgotten.add(await store.forget(session, person_id))
    return forgotten


async def others_listed(session: AsyncSession, person_id: int) -> int:
    """How many people the person's subjects list besides their heads (a household's members)."""
    return sum([await store.others_listed(session, person_id) for store in stores()])


async def subject_members(session: AsyncSession, submission: Submission) -> list[SubjectMember]:
    """Who the subject lists, in order; none once anonymised."""
    if submission.anonymised_at is not None:
        return []
    return await subject_store(submission.subject_kind).members(session, submission)


async def owners(session: AsyncSession, submission: Submission) -> list[int]:
    return await subject_store(submission.subject_kind).owners(session, submission)


async def owns(session: AsyncSession, submission: Submission, person_id: int) -> bool:
    """Whether the person owns the submission (may see and change it, as its subject)."""
    return person_id in await owners(session, submission)


async def subject_summary(session: AsyncSession, submission: Submission) -> SubjectSummary | None:
    if submission.anonymised_at is not None:
        return None
    return await subject_store(submission.subject_kind).summary(session, submission)


async def subject_name(session: AsyncSession, submission: Submission) -> str | None:
    return await subject_store(submission.subject_kind).name(session, submission)


async def register_subject(session: AsyncSession, registration: Registration) -> Submission:
    """Register the subject and file its submission for the title; raises DuplicateRegistration."""
    ref = await subject_store(registration.criteria_set.subject).attach(session, registration)
    return await create_submission(
        session,
        campaign_id=registration.campaign.id,
        year=registration.campaign.year,
        criteria_set=registration.criteria_set,
        branch_id=registration.branch.id,
        person_id=ref.person_id,
        household_id=ref.household_id,
        actor_person_id=registration.actor_id or registration.person.id,
        now=registration.now,
    )


add_subject(PersonalSubject(PERSON))
add_subject(HouseholdSubject())
