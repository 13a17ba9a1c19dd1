"""Channel accounts, people, households and role grants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.roles import Role as Role  # the grants stored here are of these roles
from bot.storage.core import transaction_memo
from bot.storage.models import ChannelAccount, Household, HouseholdMember, OrgUnit, Person, RoleGrant

GRANTS = "grants"  # transaction memo: person id -> live grants

# The org-unit kind a role's scope must be.
SCOPE_KIND = {
    Role.LEADER: "branch",
    Role.OFFICER: "commune",
    Role.PROVINCE: "province",
    Role.ADMIN: None,
    Role.RESIDENT: None,
}


async def get_account(session: AsyncSession, channel: str, external_id: str) -> ChannelAccount | None:
    return await session.scalar(
        select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.external_id == external_id)
    )


async def get_or_create_account(
    session: AsyncSession, channel: str, external_id: str, chat_id: str | None, now: datetime
) -> ChannelAccount:
    account = await get_account(session, channel, external_id)
    if account is None:
        account = ChannelAccount(channel=channel, external_id=external_id, chat_id=chat_id, created_at=now)
        session.add(account)
        await session.flush()
    elif chat_id and account.chat_id != chat_id:
        account.chat_id = chat_id
    return account


async def mark_unreachable(session: AsyncSession, account_id: int, reason: str, now: datetime) -> bool:
    """Record that a channel cannot deliver to this account (blocked the bot, chat gone, …).

    The mark stays until the person writes again (the flow engine clears it on any inbound
    message). Returns False when the account does not exist."""
    account = await session.get(ChannelAccount, account_id)
    if account is None:
        return False
    if account.unreachable_at is None or account.unreachable_reason != reason:
        account.unreachable_at = now
        account.unreachable_reason = reason[:64]
    return True


async def clear_unreachable(session: AsyncSession, account_id: int, reason: str | None = None) -> None:
    """Lift an unreachable mark (only one with `reason`, when given)."""
    account = await session.get(ChannelAccount, account_id)
    if account is not None and (reason is None or account.unreachable_reason == reason):
        account.unreachable_at = None
        account.unreachable_reason = None


async def accounts_of(session: AsyncSession, person_id: int) -> list[ChannelAccount]:
    return list(await session.scalars(select(ChannelAccount).where(ChannelAccount.person_id == person_id)))


def _phone_accounts(person_id: int, channel: str) -> ColumnElement[bool]:
    return and_(
        ChannelAccount.person_id == person_id,
        ChannelAccount.channel == channel,
        ChannelAccount.external_id.like("phone:%"),
    )


async def phone_account(session: AsyncSession, person_id: int, channel: str) -> ChannelAccount | None:
    """The account a person's phone number was given for (a ZNS reminder by phone), if any."""
    return await session.scalar(select(ChannelAccount).where(_phone_accounts(person_id, channel)))


async def forget_phone(session: AsyncSession, person_id: int, channel: str) -> None:
    """Remove the number a person gave (the account holding it goes)."""
    await session.execute(delete(ChannelAccount).where(_phone_accounts(person_id, channel)))


@dataclass(frozen=True)
class MemberSpec:
    full_name: str
    birth_year: int | None
    relation: str


async def save_registrant(
    session: AsyncSession,
    person: Person | None,
    *,
    name: str,
    birth_year: int,
    branch_id: int,
    locale: str,
    now: datetime,
    created_by: int | None = None,
    consent_if_new: datetime | None = None,
    consent_from: datetime | None = None,
) -> Person:
    """The person registering (or registered by a branch leader, `created_by`), made or brought up
    to date. A new person registered by a leader has the consent the leader confirmed
    (`consent_if_new`); someone registering themself keeps theirs, or takes their account's
    (`consent_from`)."""
    if person is None:
        person = Person(full_name=name, created_at=now)
        if created_by is not None:
            person.created_by_person_id = created_by
            person.consent_at = consent_if_new
        session.add(person)
    person.full_name = name
    person.birth_year = birth_year
    person.branch_id = branch_id
    person.locale = locale
    if consent_from is not None:
        person.consent_at = person.consent_at or consent_from
    await session.flush()
    return person


async def create_household(
    session: AsyncSession,
    *,
    branch_id: int,
    head: Person,
    members: list[MemberSpec],
    registered_by: Person | None,
    now: datetime,
) -> Household:
    household = Household(
        branch_id=branch_id,
        head_person_id=head.id,
        registered_by_person_id=registered_by.id if registered_by else None,
        created_at=now,
    )
    replace_members(household, head, members)
    session.add(household)
    await session.flush()
    return household


def replace_members(household: Household, head: Person, members: list[MemberSpec]) -> None:
    """Set the household's member list: the head first, then the others in the order given."""
    household.head_person_id = head.id
    household.members = [
        HouseholdMember(
            person_id=head.id, full_name=head.full_name, birth_year=head.birth_year, relation="head", position=0
        ),
        *(
            HouseholdMember(full_name=m.full_name, birth_year=m.birth_year, relation=m.relation, position=i)
            for i, m in enumerate(members, start=1)
        ),
    ]


def households_of(person_id: int) -> Select[Household]:
    """The households a person heads or registered: theirs to act on, and to delete."""
    return select(Household).where(
        (Household.head_person_id == person_id) | (Household.registered_by_person_id == person_id)
    )


async def household_members(session: AsyncSession, household_id: int) -> list[HouseholdMember]:
    """Everyone in the household, the head first, in the order registration listed them."""
    return list(
        await session.scalars(
            select(HouseholdMember)
            .where(HouseholdMember.household_id == household_id)
            .order_by(HouseholdMember.position)
        )
    )


async def typed_in_head(session: AsyncSession, household: Household, person_id: int) -> Person | None:
    """The head of a household the person registered, when the person typed them in and they have
    no account of their own (nobody else answers for them)."""
    if not household.head_person_id or household.head_person_id == person_id:
        return None
    head = await session.get(Person, household.head_person_id)
    if head is None or head.created_by_person_id != person_id:
        return None
    has_account = await session.scalar(select(ChannelAccount.id).where(ChannelAccount.person_id == head.id).limit(1))
    return None if has_account else head


async def grant_role(
    session: AsyncSession,
    person: Person,
    role: Role | str,
    scope: OrgUnit | None,
    *,
    granted_by: Person | None,
    now: datetime,
) -> RoleGrant:
    """Give a person a role within a scope (idempotent for an identical live grant)."""
    role = Role(role)
    wanted_kind = SCOPE_KIND[role]
    if wanted_kind is not None and (scope is None or scope.kind != wanted_kind):
        raise ValueError(f"a {role.value} needs a {wanted_kind} as scope")
    scope_id = scope.id if scope is not None and wanted_kind is not None else None
    existing = await session.scalar(
        select(RoleGrant).where(
            RoleGrant.person_id == person.id,
            RoleGrant.role == role.value,
            RoleGrant.scope_unit_id.is_(None) if scope_id is None else RoleGrant.scope_unit_id == scope_id,
            RoleGrant.revoked_at.is_(None),
        )
    )
    if existing is not None:
        return existing
    grant = RoleGrant(
        person_id=person.id,
        role=role.value,
        scope_unit_id=scope_id,
        granted_by_person_id=granted_by.id if granted_by else None,
        granted_at=now,
    )
    session.add(grant)
    await session.flush()
    grants_changed(session, person.id)
    return grant


async def live_grants(session: AsyncSession, person_id: int) -> list[RoleGrant]:
    """A person's roles, read once per transaction (the menu asks for each role in turn)."""
    known = transaction_memo(session, GRANTS)
    if person_id not in known:
        known[person_id] = list(
            await session.scalars(
                select(RoleGrant).where(RoleGrant.person_id == person_id, RoleGrant.revoked_at.is_(None))
            )
        )
    return known[person_id]


def grants_changed(session: AsyncSession, person_id: int) -> None:
    """Read this person's roles again (one was granted or revoked in this transaction)."""
    transaction_memo(session, GRANTS).pop(person_id, None)


async def branch_ids_in_scope(session: AsyncSession, person_id: int, role: Role | str) -> set[int] | None:
    """Branches a person may act on with a role: a leader their branch, an officer every branch of
    their commune. None means every branch (admin). An empty set means no right at all."""
    role = Role(role)
    grants = await live_grants(session, person_id)
    if any(g.role == Role.ADMIN.value for g in grants):
        return None
    branch_ids: set[int] = set()
    for grant in grants:
        if grant.role != role.value or grant.scope_unit_id is None:
            continue
        if role == Role.LEADER:
            branch_ids.add(grant.scope_unit_id)
        elif role == Role.OFFICER:
            rows = await session.scalars(
                select(OrgUnit.id).where(OrgUnit.parent_id == grant.scope_unit_id, OrgUnit.kind == "branch")
            )
            branch_ids.update(rows)
    return branch_ids


async def may_act_on_branch(session: AsyncSession, person_id: int, role: Role | str, branch_id: int) -> bool:
    scope = await branch_ids_in_scope(session, person_id, role)
    return scope is None or branch_id in scope
