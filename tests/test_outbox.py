"""The outbox insert is exactly-once per key on both databases, and notices render per locale."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.storage.models import OutboxMessage
from bot.storage.outbox import Notice, enqueue, render_notice
from bot.storage.people import get_or_create_account


async def test_same_key_inserts_once(app):
    now = app.clock.now()
    notice = Notice("status.line", {"reference": "CD-2026-000001", "title": "x", "state": {"key": "state.needs_info"}})
    async with app.sessions.begin() as session:
        account = await get_or_create_account(session, "test", "u1", "u1", now)
        first = await enqueue(
            session, key="k:1", account_id=account.id, kind="notice", notice=notice, not_before=now, now=now
        )
        second = await enqueue(
            session,
            key="k:1",
            account_id=account.id,
            kind="notice",
            notice=notice,
            not_before=now + timedelta(days=1),
            now=now,
        )
    assert (first, second) == (True, False)
    async with app.sessions() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
        assert len(rows) == 1 and rows[0].not_before == now and rows[0].status == "pending"
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_notice_renders_in_the_readers_language():
    notice = Notice(
        "status.line",
        {"reference": "R", "title": {"key": "menu.declare"}, "state": {"key": "state.needs_info"}},
        choices=[("cmd:tudanhgia", "status.continue")],
    )
    assert render_notice(notice, "vi").text == "R — Tự đánh giá: Cần bổ sung"
    rendered = render_notice(notice, "en")
    assert rendered.text == "R — Self-assess: More information needed"
    assert [(c.value, c.label) for c in rendered.choices] == [("cmd:tudanhgia", "Continue self-assessment")]
    dated = render_notice(Notice("decl.summary_request", {"note": {"date": "2026-11-30"}}), "vi")
    assert dated.text == "Yêu cầu bổ sung: ngày 30/11/2026"


async def test_a_notice_button_runs_its_command_from_any_state(person):
    from tests.support.scripts import register_citizen

    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")  # now on item 1
    turn = await hoa.presses_token("cmd:trangthai")  # pressed on a reminder sent days ago
    assert turn.text.startswith("CD-2026-000001 — Công dân học tập: Đã đăng ký")


def test_nested_notices_plurals_lists_and_numbers_render_per_locale():
    deadline = {
        "key": "status.deadline",
        "plural": "status.deadline.plural",
        "count": 1,
        "params": {"what": {"key": "deadline.self_declaration"}, "date": {"date": "2026-11-30"}},
    }
    notice = Notice(
        "status.line",
        {
            "reference": {
                "lines": [deadline, {"text": {"vi": "Công dân học tập", "en": "Learning citizen"}}],
                "sep": " | ",
            },
            "title": {"number": 2310},
            "state": {"percent": 0.125},
        },
    )
    assert render_notice(notice, "vi").text == (
        "Hạn tự đánh giá: ngày 30/11/2026 (còn 1 ngày). | Công dân học tập — 2.310: 12,5%"
    )
    assert render_notice(notice, "en").text == (
        "Self-assessment deadline: November 30, 2026 (1 day left). | Learning citizen — 2,310: 12.5%"
    )
    top = Notice("status.deadline", {"what": "X", "date": "D"}, plural="status.deadline.plural", count=3)
    assert Notice.from_payload(top.to_payload()) == top
    assert render_notice(top, "en").text == "X: D (3 days left)."


async def test_bulk_enqueue_is_exactly_once_per_key(app):
    from bot.storage.outbox import Queued, enqueue_many

    now = app.clock.now()
    async with app.sessions.begin() as session:
        account = await get_or_create_account(session, "test", "u1", "u1", now)
        rows = [Queued(f"k:{i}", account.id, "notice", Notice("status.none"), now) for i in range(3)]
        assert await enqueue_many(session, rows, now=now) == {"k:0", "k:1", "k:2"}
    async with app.sessions.begin() as session:
        more = [*rows, Queued("k:3", account.id, "notice", Notice("status.none"), now)]
        assert await enqueue_many(session, more, now=now) == {"k:3"}
        assert await enqueue_many(session, [], now=now) == set()
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 4
