"""Transcripts: status with deadlines, and the reviewer's request-for-more loop."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.domain.lifecycle import Actor, State
from bot.storage.models import Submission, SubmissionEvent
from bot.storage.submissions import transition
from tests.support.images import jpeg
from tests.support.journeys import answer_items, submit
from tests.support.review import submit_citizen
from tests.support.scripts import declare_all, register_citizen, register_citizen_en


async def _review(app, target: State, note: str | None, actor: Actor = Actor.COMMUNE) -> None:
    async with app.sessions.begin() as session:
        submission = await session.scalar(select(Submission))
        await transition(session, submission, target, actor=actor, actor_person_id=None, note=note, now=app.clock.now())


async def test_status_shows_state_missing_items_and_next_deadline(person, suite_app):
    hoa = person()
    turn = await hoa.says("/trangthai")
    assert "Trước hết, bạn cần đồng ý" in turn
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await answer_items(hoa, 1)
    turn = await hoa.says("/trangthai")
    assert turn.text == (
        "CD-2026-000001 — Công dân học tập: Đang tự đánh giá\n"
        "Điểm tự đánh giá: 10/100 (cần 80).\n"
        "Còn thiếu: mục 2, 3, 4, 5, 6, 7, 8, 9, 10.\n"
        "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
    )
    assert turn.choices == ["Tiếp tục tự đánh giá", "Về menu"]
    turn = await hoa.taps("Tiếp tục tự đánh giá")
    assert turn.text.startswith("Mục 2/10")

    # After the self-declaration deadline, an application not submitted still shows that
    # deadline (passed), not the branch review that does not concern it yet.
    suite_app.clock.advance(timedelta(days=11))
    turn = await hoa.says("/status")
    assert "Hạn tự đánh giá: ngày 30/11/2026 — đã quá hạn" in turn
    assert "bình xét" not in turn.text


async def test_status_in_english_uses_english_dates(person):
    john = person()
    await register_citizen_en(john)
    turn = await john.says("/status")
    assert turn.text == (
        "CD-2026-000001 — Learning citizen: Registered\n"
        "Self-assessed score: 0/100 (80 needed).\n"
        "Still missing: items 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.\n"
        "Self-assessment deadline: November 30, 2026 — 10 days left"
    )
    assert turn.choices == ["Continue self-assessment", "Main menu"]


async def test_needs_info_loop_add_photo_and_resubmit(person, suite_app):
    hoa = person()
    await submit_citizen(hoa, photo=False)
    await _review(suite_app, State.NEEDS_INFO, "Xin bổ sung ảnh tủ sách cho mục 1.")

    turn = await hoa.says("/menu")
    assert turn.text.startswith("Hồ sơ CD-2026-000001 cần bổ sung: Xin bổ sung ảnh tủ sách cho mục 1.")
    assert turn.choices[0] == "Bổ sung hồ sơ"
    turn = await hoa.says("/trangthai")
    assert "CD-2026-000001 — Công dân học tập: Cần bổ sung" in turn
    assert "Chi hội/xã cần bổ sung: Xin bổ sung ảnh tủ sách cho mục 1." in turn

    await hoa.says("/menu")
    turn = await hoa.taps("Bổ sung hồ sơ")
    assert turn.text.startswith(
        "Hồ sơ CD-2026-000001 — Công dân học tập\nYêu cầu bổ sung: Xin bổ sung ảnh tủ sách cho mục 1.\nTổng 100/100 điểm."
    )
    assert turn.choices == ["Nộp lại", "Xem lại", "Sửa một mục", "Để sau"]
    await hoa.taps("Sửa một mục")
    await hoa.says("1")
    turn = await hoa.sends_photo(jpeg((123, 45, 67)))
    assert turn.text.startswith("Đã nhận ảnh cho mục này.")
    await hoa.taps("Đạt")
    turn = await hoa.taps("Xong")
    assert turn.choices[0] == "Nộp lại"
    turn = await submit(hoa, button="Nộp lại")
    assert turn.text.startswith("Đã nộp hồ sơ CD-2026-000001 (100 điểm).")

    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission))
        moves = [
            (e.from_state, e.to_state, e.actor_kind)
            for e in await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id))
        ]
    assert submission.state == "submitted"
    assert moves[-2:] == [("submitted", "needs_info", "commune"), ("needs_info", "submitted", "owner")]


async def test_decided_submission_is_read_only(person, suite_app):
    hoa = person()
    await submit_citizen(hoa, photo=False)
    await _review(suite_app, State.APPROVED, None)
    turn = await hoa.says("/trangthai")
    assert "CD-2026-000001 — Công dân học tập: Đã được công nhận" in turn
    assert turn.choices == ["Về menu"]
    turn = await hoa.says("/tudanhgia")
    assert "Bạn chưa có hồ sơ nào cần tự đánh giá." in turn


async def test_reviewer_decision_mid_declaration_is_respected(person, suite_app):
    """If the submission left the person's hands while they were answering, nothing is overwritten."""
    hoa = person()
    await submit_citizen(hoa, photo=False)
    await _review(suite_app, State.NEEDS_INFO, "Bổ sung mục 2")
    await hoa.says("/menu")
    await hoa.taps("Bổ sung hồ sơ")
    await hoa.taps("Sửa một mục")
    await _review(suite_app, State.WITHDRAWN, None, Actor.SYSTEM)
    turn = await hoa.says("2")
    assert turn.text.startswith('Hồ sơ CD-2026-000001 đang ở bước "Đã rút", không sửa được nữa.')


async def test_needs_info_loop_in_english(person, suite_app):
    john = person()
    await register_citizen_en(john, branch="Tan Lap")
    await declare_all(john, "Achieved", start="Start", no_photo="No photo")
    await submit(john, button="Submit", now="Submit now")
    await _review(suite_app, State.NEEDS_INFO, "Please add a photo of your learning plan (item 2).", Actor.BRANCH)
    turn = await john.says("/menu")
    assert turn.text.startswith(
        "Application CD-2026-000001 needs more information: Please add a photo of your learning plan (item 2)."
    )
    turn = await john.taps("Answer the request")
    assert "Request for more information: Please add a photo of your learning plan (item 2)." in turn
    await john.taps("Change an item")
    await john.says("2")
    turn = await john.sends_photo(jpeg((2, 4, 6)))
    assert turn.text.startswith("Photo received for this item. How do you rate yourself on it?")
    await john.taps("Achieved")
    await john.taps("Done")
    turn = await submit(john, button="Resubmit", now="Submit now")
    assert turn.text.startswith("Application CD-2026-000001 submitted (100 points).")
    async with suite_app.sessions() as session:
        assert (await session.scalar(select(Submission))).state == "submitted"
