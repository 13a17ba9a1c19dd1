"""Who may act where: a person's roles and the communes and branches they cover."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import OrgUnit, Submission
from bot.storage.people import Role, branch_ids_in_scope, live_grants


@dataclass(frozen=True)
class Scope:
    """Branches a person may act on in one role; `branch_ids` None means every branch (admin)."""

    role: Role
    branch_ids: frozenset[int] | None

    def covers(self, branch_id: int | None) -> bool:
        return branch_id is not None and (self.branch_ids is None or branch_id in self.branch_ids)

    @property
    def everywhere(self) -> bool:
        return self.branch_ids is None


async def roles_of(session: AsyncSession, person_id: int) -> set[str]:
    return {grant.role for grant in await live_grants(session, person_id)}


async def scope_for(session: AsyncSession, person_id: int | None, role: Role | str) -> Scope | None:
    """The person's scope in a role, or None when they do not hold it (admins hold every role)."""
    if person_id is None:
        return None
    role = Role(role)
    branch_ids = await branch_ids_in_scope(session, person_id, role)
    if branch_ids is None:
        return Scope(role, None)
    if not branch_ids:
        return None
    return Scope(role, frozenset(branch_ids))


async def communes_in_scope(session: AsyncSession, person_id: int) -> list[OrgUnit]:
    """Communes an officer (their own), a province reader (every commune of the province) or an
    admin (all) may report on, by name. Reading reports is all the province role does."""
    grants = await live_grants(session, person_id)
    query = select(OrgUnit).where(OrgUnit.kind == "commune").order_by(OrgUnit.name)
    if not any(g.role == Role.ADMIN.value for g in grants):
        ids = {g.scope_unit_id for g in grants if g.role == Role.OFFICER.value and g.scope_unit_id}
        provinces = {g.scope_unit_id for g in grants if g.role == Role.PROVINCE.value and g.scope_unit_id}
        if not ids and not provinces:
            return []
        query = query.where(OrgUnit.id.in_(ids) | OrgUnit.parent_id.in_(provinces))
    return list(await session.scalars(query))


async def provinces_in_scope(session: AsyncSession, person_id: int) -> list[OrgUnit]:
    """Provinces a person may read the upward report of (admin: all)."""
    grants = await live_grants(session, person_id)
    query = select(OrgUnit).where(OrgUnit.kind == "province").order_by(OrgUnit.name)
    if not any(g.role == Role.ADMIN.value for g in grants):
        ids = {g.scope_unit_id for g in grants if g.role == Role.PROVINCE.value and g.scope_unit_id}
        if not ids:
            return []
        query = query.where(OrgUnit.id.in_(ids))
    return list(await session.scalars(query))


async def branches_in(session: AsyncSession, scope: Scope) -> list[OrgUnit]:
    """The branches a scope covers, in the commune's order."""
    query = select(OrgUnit).where(OrgUnit.kind == "branch").order_by(OrgUnit.parent_id, OrgUnit.position, OrgUnit.name)
    if scope.branch_ids is not None:
        query = query.where(OrgUnit.id.in_(scope.branch_ids))
    return list(await session.scalars(query))


def may_see(scope: Scope | None, submission: Submission) -> bool:
    return scope is not None and scope.covers(submission.branch_id)
