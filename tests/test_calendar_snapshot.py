"""The calendar each process keeps in memory (storage/calendar.py): what residents are told about
deadlines follows a change made in this process at once, one made by another worker within the
refresh interval, and a change that was rolled back not at all."""

from __future__ import annotations

import asyncio
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.calendar import Calendars, units_changed_generation
from bot.storage.db import make_engine
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit
from tests.support.journeys import register
from tests.support.scripts import agree


async def _self_declaration(session: AsyncSession, year: int = 2026) -> CampaignDeadline:
    return await session.scalar(
        select(CampaignDeadline)
        .join(Campaign)
        .where(Campaign.year == year, CampaignDeadline.kind == "self_declaration")
    )


async def _due(app, calendars: Calendars, year: int = 2026) -> date:
    async with app.sessions() as session:
        deadline = await _self_declaration(session, year)
        return (await calendars.campaign(session, deadline.campaign_id)).deadlines["self_declaration"]


async def test_snapshot_has_windows_deadlines_and_the_branch_commune(suite_app):
    async with suite_app.sessions() as session:
        snapshot = await suite_app.calendars.snapshot(session)
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.kind == "branch"))
    commune = snapshot.commune_of(branch.id)
    assert commune is not None and commune is snapshot.commune_of(None)  # the only commune
    assert [c.year for c in commune.campaigns] == [2026, 2027]
    this_year = commune.current(date(2026, 12, 10))
    assert this_year.year == 2026 and this_year.deadlines["self_declaration"] == date(2026, 11, 30)
    assert list(this_year.deadlines.values()) == sorted(this_year.deadlines.values())
    assert commune.current(date(2026, 12, 11)).year == 2027
    assert commune.after(this_year.id).year == 2027 and commune.after(commune.campaigns[-1].id) is None


async def test_a_change_committed_here_is_seen_at_once_a_rolled_back_one_never(suite_app):
    calendars = Calendars(refresh_seconds=3600)
    assert await _due(suite_app, calendars) == date(2026, 11, 30)
    before = units_changed_generation()
    async with suite_app.sessions() as session, session.begin():
        (await _self_declaration(session)).due_on = date(2026, 12, 5)
        await session.flush()
        await session.rollback()
    assert units_changed_generation() == before
    assert await _due(suite_app, calendars) == date(2026, 11, 30)
    async with suite_app.sessions.begin() as session:
        (await _self_declaration(session)).due_on = date(2026, 12, 5)  # an ORM write
    assert await _due(suite_app, calendars) == date(2026, 12, 5)
    async with suite_app.sessions.begin() as session:  # an ORM-enabled UPDATE statement
        await session.execute(
            update(CampaignDeadline)
            .where(CampaignDeadline.due_on == date(2026, 12, 5))
            .values(due_on=date(2026, 12, 6))
        )
    assert await _due(suite_app, calendars) == date(2026, 12, 6)


async def test_a_change_not_yet_committed_is_seen_by_its_own_transaction_only(suite_app):
    calendars = Calendars(refresh_seconds=3600)
    async with suite_app.sessions() as session, session.begin():
        deadline = await _self_declaration(session)
        deadline.due_on = date(2026, 12, 8)
        mine = await calendars.campaign(session, deadline.campaign_id)
        assert mine.deadlines["self_declaration"] == date(2026, 12, 8)  # this transaction's view
        await session.rollback()
    assert await _due(suite_app, calendars) == date(2026, 11, 30)  # the rolled-back view was not kept


async def test_another_workers_change_is_seen_after_the_refresh_interval(suite_app, suite_db):
    calendars = Calendars(refresh_seconds=0.3)
    assert await _due(suite_app, calendars) == date(2026, 11, 30)
    other = make_engine(suite_db)  # another process: its writes are not seen by this one's sessions
    try:
        async with other.begin() as connection:
            await connection.execute(
                update(CampaignDeadline.__table__)
                .where(CampaignDeadline.kind == "self_declaration", CampaignDeadline.due_on == date(2026, 11, 30))
                .values(due_on=date(2026, 12, 7))
            )
    finally:
        await other.dispose()
    assert await _due(suite_app, calendars) == date(2026, 11, 30)  # the snapshot still holds
    await asyncio.sleep(0.35)
    assert await _due(suite_app, calendars) == date(2026, 12, 7)


async def test_residents_are_told_the_deadline_moved_in_chat(person, suite_app):
    hoa = person("hoa")
    await agree(hoa)
    turn = await register(hoa, "Công dân học tập", "Nguyễn Thị Hoa", "1975", "2")
    assert "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày" in turn
    async with suite_app.sessions.begin() as session:
        (await _self_declaration(session)).due_on = date(2026, 12, 4)
    turn = await hoa.says("/trangthai")
    assert "Hạn tự đánh giá: ngày 4/12/2026 — còn 14 ngày" in turn
