"""Staff for review tests: officers and branch leaders granted in the database (as the CLI
does), then talking to the bot like anyone else; and a flow engine over either database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.flows.engine import FlowEngine
from bot.storage.models import OrgUnit, OutboxMessage, Person
from bot.storage.outbox import Notice, render_notice
from bot.storage.people import Role, get_or_create_account, grant_role
from tests.support.chat import Person as ChatPerson
from tests.support.images import jpeg


@pytest.fixture
def flow(app):
    """A flow engine on the `app` fixture: the test runs on SQLite and on PostgreSQL."""
    from bot.flows.registry import build_router

    return FlowEngine(app, build_router())


@pytest.fixture
def chat(flow):
    return lambda user_id, channel="test": ChatPerson(flow, user_id, channel)


async def grant_staff(
    app, name: str, role: Role, scope_code: str | None, *, channel: str = "test", user_id: str | None = None
) -> int:
    """A person granted `role` over `scope_code` (as the CLI does), with a chat account when `user_id`
    is given; returns the person's id."""
    now = app.clock.now()
    async with app.sessions.begin() as session:
        person = Person(full_name=name, created_at=now)
        session.add(person)
        await session.flush()
        if user_id is not None:
            account = await get_or_create_account(session, channel, user_id, user_id, now)
            account.person_id = person.id
        scope = await session.scalar(select(OrgUnit).where(OrgUnit.code == scope_code)) if scope_code else None
        await grant_role(session, person, role, scope, granted_by=None, now=now)
        return person.id


async def make_staff(
    engine: FlowEngine, user_id: str, role: Role, scope_code: str | None, name: str, channel: str = "test"
) -> ChatPerson:
    """A staff member who has consented and stands at the main menu."""
    await grant_staff(engine.app, name, role, scope_code, channel=channel, user_id=user_id)
    staff = ChatPerson(engine, user_id, channel)
    await staff.says("xin chào")
    turn = await staff.taps("Tôi đồng ý")
    assert "Bạn muốn làm gì?" in turn, turn
    return staff


async def submit_citizen(p: ChatPerson, name: str = "Nguyễn Thị Hoa", branch: str = "2", photo: bool = True) -> None:
    """Register, declare all ten items as achieved (one photo on item 1) and submit."""
    from tests.support.scripts import register_citizen

    await register_citizen(p, name=name, branch=branch)
    await declare_and_submit(p, {0: jpeg((0, 100, 200))} if photo else {})


async def declare_and_submit(p: ChatPerson, photos: dict[int, bytes]) -> None:
    """From the declaration intro: every item achieved, with a photo on the items in `photos`
    (counted from 0), then submit."""
    await p.taps("Bắt đầu")
    for index in range(10):
        await p.taps("Đạt")
        if index in photos:
            await p.sends_photo(photos[index])
            await p.taps("Xong")
        else:
            await p.taps("Không có ảnh")
    await p.taps("Nộp hồ sơ")
    turn = await p.taps("Nộp ngay")
    assert "Đã nộp hồ sơ" in turn, turn


async def outbox(app) -> list[OutboxMessage]:
    async with app.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def rendered(row: OutboxMessage, locale: str = "vi"):
    return render_notice(Notice.from_payload(row.payload), locale)
