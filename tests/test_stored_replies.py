"""Stored replies exist only until they are delivered, and never hold an invite code; a crash
between saving and sending is still healed by the redelivery."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from bot.messages import Incoming, Kind
from bot.storage.models import InviteCode, ProcessedMessage
from bot.storage.people import Role
from tests.support.review import chat, flow, make_staff  # noqa: F401
from tests.support.scripts import register_citizen

CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}\b")


async def _row(app, message_id: str) -> ProcessedMessage:
    async with app.sessions() as session:
        return await session.scalar(select(ProcessedMessage).where(ProcessedMessage.message_id == message_id))


async def _broken(replies):
    raise ConnectionError("network down while replying")


async def test_replies_are_dropped_once_delivered_and_resent_after_a_crash(chat, flow, app):
    hoa = chat("hoa")
    await register_citizen(hoa)
    turn = await hoa.says("/dulieu", message_id="status-1")
    assert "CD-2026-000001" in turn.text and "Nguyễn Thị Hoa" in turn.text
    row = await _row(app, "status-1")
    assert row.replied_at is not None and row.replies is None and row.sending_until is None
    repeat = await hoa.says("/dulieu", message_id="status-1")
    assert repeat.duplicate and repeat.replies == []

    # Cut off between saving and sending: the replies wait, and the redelivery sends them once.
    msg = Incoming("test", "hoa", Kind.TEXT, message_id="status-2", chat_id="hoa", text="/dulieu")
    with pytest.raises(ConnectionError):
        await flow.process(msg, _broken)
    row = await _row(app, "status-2")
    assert row.replied_at is None and "Nguyễn Thị Hoa" in json.dumps(row.replies, ensure_ascii=False)
    sent = []

    async def deliver(replies):
        sent.append(replies)

    again = await flow.process(msg, deliver)
    assert again.duplicate and sent and "CD-2026-000001" in sent[0][0].text
    row = await _row(app, "status-2")
    assert row.replied_at is not None and row.replies is None
    third = await flow.process(msg, deliver)
    assert third.duplicate and third.replies == [] and len(sent) == 1


async def test_an_invite_code_is_never_stored(chat, flow, app):
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/moi officer", message_id="invite-1")
    [code] = set(CODE.findall(turn.text))
    assert (await _row(app, "invite-1")).replies is None

    # The reply with the code does not leave; what is kept for a resend says to make a new one.
    msg = Incoming("test", "can", Kind.TEXT, message_id="invite-2", chat_id="can", text="/moi officer")
    shown = []

    async def shows_then_fails(replies):
        shown.extend(replies)
        raise ConnectionError("network down while replying")

    with pytest.raises(ConnectionError):
        await flow.process(msg, shows_then_fails)
    [second] = set(CODE.findall(shown[0].text))
    row = await _row(app, "invite-2")
    stored = json.dumps(row.replies, ensure_ascii=False)
    assert row.replied_at is None and second not in stored and code not in stored
    resent = []

    async def deliver(replies):
        resent.append(replies)

    await flow.process(msg, deliver)
    assert resent[0][0].text == (
        "Mã mời đã được tạo nhưng tin nhắn có mã chưa đến được bạn. Để an toàn, bot không lưu mã mời; "
        "bạn gõ /moi để tạo mã mới nhé."
    )
    assert not CODE.search(resent[0][0].text)
    async with app.sessions() as session:
        assert len(list(await session.scalars(select(InviteCode)))) == 2  # both exist, hashed only
    # The first code still works for the person it was given to.
    ana = chat("ana")
    turn = await ana.says(f"ma {code}")
    assert "Mã mời hợp lệ" in turn.text
