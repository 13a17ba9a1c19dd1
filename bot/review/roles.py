"""Removing a role (/thuhoi): which grants a reviewer may remove, and the removal itself,
recorded on the grant (when and by whom; the grant row stays as the audit)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import OrgUnit, Person, RoleGrant
from bot.storage.people import Role, grants_changed, live_grants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrantRow:
    grant_id: int
    person_name: str
    role: Role
    scope_name: str | None


class NotRevocable(Exception):
    """The grant is gone, already removed, the reviewer's own, or outside their commune."""


async def _commune_ids(session: AsyncSession, person_id: int) -> set[int] | None:
    """Communes whose roles this person may remove: an officer their communes; None for an admin."""
    grants = await live_grants(session, person_id)
    if any(g.role == Role.ADMIN.value for g in grants):
        return None
    return {g.scope_unit_id for g in grants if g.role == Role.OFFICER.value and g.scope_unit_id is not None}


async def revocable_grants(session: AsyncSession, person_id: int) -> list[GrantRow]:
    """Live leader and officer grants in the reviewer's communes (their branches' leaders, the
    other officers), not the reviewer's own: by role, then name."""
    communes = await _commune_ids(session, person_id)
    if communes is not None and not communes:
        return []
    query = (
        select(RoleGrant, Person.full_name, OrgUnit.name)
        .join(Person, Person.id == RoleGrant.person_id)
        .outerjoin(OrgUnit, OrgUnit.id == RoleGrant.scope_unit_id)
        .where(
            RoleGrant.revoked_at.is_(None),
            RoleGrant.person_id != person_id,
            RoleGrant.role.in_([Role.LEADER.value, Role.OFFICER.value]),
        )
        .order_by(RoleGrant.role, Person.full_name, RoleGrant.id)
    )
    if communes is not None:
        query = query.where(or_(OrgUnit.id.in_(communes), OrgUnit.parent_id.in_(communes)))
    return [
        GrantRow(grant.id, name, Role(grant.role), scope_name)
        for grant, name, scope_name in (await session.execute(query)).all()
    ]


async def revoke_grant(session: AsyncSession, grant_id: int, by_person_id: int | None, now: datetime) -> RoleGrant:
    """Remove one grant. `by_person_id` None is the operator (CLI); otherwise the grant must be
    one `revocable_grants` offers that person."""
    grant = await session.get(RoleGrant, grant_id, populate_existing=True)
    if grant is None or grant.revoked_at is not None:
        raise NotRevocable(grant_id)
    if by_person_id is not None and grant_id not in {
        row.grant_id for row in await revocable_grants(session, by_person_id)
    }:
        raise NotRevocable(grant_id)
    grant.revoked_at = now
    grant.revoked_by_person_id = by_person_id
    await session.flush()
    grants_changed(session, grant.person_id)
    log.info("role grant %s (%s) removed by person %s", grant.id, grant.role, by_person_id)
    return grant
