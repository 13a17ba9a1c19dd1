"""Rows written straight through the storage layer (no conversation): a household with its head,
a registration in a year's campaign."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaSet
from bot.storage.models import Campaign, Household, OrgUnit, Person, Submission
from bot.storage.people import MemberSpec, create_household
from bot.storage.submissions import create_submission


async def household_headed_by(
    session: AsyncSession,
    branch: OrgUnit,
    name: str,
    birth_year: int,
    members: list[MemberSpec],
    now: datetime,
    **head: Any,
) -> tuple[Person, Household]:
    """A head of household (a new person in `branch`, with the fields in `head`) who registered
    the household with these members."""
    person = Person(full_name=name, birth_year=birth_year, branch_id=branch.id, created_at=now, **head)
    session.add(person)
    await session.flush()
    household = await create_household(
        session, branch_id=branch.id, head=person, members=members, registered_by=person, now=now
    )
    return person, household


async def register(
    session: AsyncSession,
    criteria_set: CriteriaSet,
    branch: OrgUnit,
    actor: Person,
    now: datetime,
    *,
    household: Household | None = None,
    year: int = 2026,
) -> Submission:
    """`actor` registers for `year`'s campaign: for the household when one is given, else for themselves."""
    campaign = await session.scalar(select(Campaign).where(Campaign.year == year))
    person_id, household_id = (None, household.id) if household else (actor.id, None)
    return await create_submission(
        session,
        campaign_id=campaign.id,
        year=year,
        criteria_set=criteria_set,
        branch_id=branch.id,
        person_id=person_id,
        household_id=household_id,
        actor_person_id=actor.id,
        now=now,
    )
