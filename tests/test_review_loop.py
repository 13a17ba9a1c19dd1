"""The review loop end to end, on SQLite and PostgreSQL: a resident submits, the branch leader
recommends, the officer asks for more, the resident answers and resubmits, the officer approves.
The person is notified each time through the outbox, in their own language."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import Person, Submission, SubmissionEvent
from bot.storage.people import Role
from tests.support.images import jpeg
from tests.support.journeys import submit
from tests.support.review import chat, flow, make_staff, outbox, rendered, submit_citizen  # noqa: F401


async def _submitted_with_reviewers(chat, flow):
    """Hoa has submitted CD-2026-000001 in Thôn Hà Lương; Lan leads that branch, Cán is the
    commune's officer."""
    hoa = chat("hoa")
    await submit_citizen(hoa)
    lan = await make_staff(flow, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    return hoa, lan, can


async def test_submit_recommend_needs_info_resubmit_approve(chat, flow, app):
    hoa, lan, can = await _submitted_with_reviewers(chat, flow)

    # The branch leader's first-level review.
    turn = await lan.says("/binhxet")
    assert turn.text == "Hồ sơ chờ chi hội bình xét: 1 (đang xem 1–1).\nChọn một hồ sơ để xem."
    assert turn.choices == ["CD-2026-000001 · Nguyễn Thị Hoa · Thôn Hà Lương · 100 điểm", "Lọc", "Về menu"]
    turn = await lan.taps("CD-2026-000001 · Nguyễn Thị Hoa · Thôn Hà Lương · 100 điểm")
    details, photo, question = turn.replies
    assert details.text.startswith(
        "Hồ sơ CD-2026-000001 — Công dân học tập\n"
        "Người khai: Nguyễn Thị Hoa, sinh năm 1975 — Thôn Hà Lương\n"
        "Trạng thái: Đã nộp, chờ chi hội xét (nộp ngày 20/11/2026)\n"
        "⚠ Nộp muộn (sau hạn của xã).\n"  # registered after the registration deadline (31/3)
        "Điểm: 100/100 (cần 80).\n"
        "Đủ điều kiện đề nghị công nhận.\n"
        "Các mục:\n"
        "1. Thường xuyên đọc, cập nhật thông tin qua sách báo, ti vi,…: Đạt — 10/10 điểm, 1 ảnh\n"
    )
    assert "Lịch sử:\n" in details.text and "Đã nộp, chờ chi hội xét (người khai)" in details.text
    assert photo.text == "Ảnh minh chứng mục 1 (1/1)" and photo.photo is not None and photo.photo.is_file()
    assert question.text == "Bạn quyết định thế nào?"
    assert question.choices and [c.label for c in question.choices] == [
        "Đề nghị công nhận",
        "Không đề nghị",
        "Yêu cầu bổ sung",
        "Về danh sách",
        "Về menu",
    ]
    turn = await lan.taps("Đề nghị công nhận")
    assert turn.text.startswith("Đề nghị xã công nhận hồ sơ CD-2026-000001 của Nguyễn Thị Hoa?")
    turn = await lan.taps("Xác nhận")
    assert turn.text == (
        "Đã đề nghị xã công nhận hồ sơ CD-2026-000001 (Nguyễn Thị Hoa).\n\nKhông có hồ sơ nào chờ chi hội bình xét."
    )

    rows = await outbox(app)
    assert len(rows) == 1 and rows[0].kind == "decision" and rows[0].status == "pending"
    notice = rendered(rows[0])
    assert notice.text == "Chi hội đã đề nghị xã công nhận hồ sơ CD-2026-000001."
    assert [(c.value, c.label) for c in notice.choices] == [("cmd:trangthai", "Xem trạng thái")]

    # The officer asks for more information.
    turn = await can.says("/duyet")
    assert turn.text == ("Hồ sơ chờ duyệt: 1 (đang xem 1–1).\nChi hội đề nghị công nhận: 1\nChọn một hồ sơ để xem.")
    turn = await can.taps(turn.choices[0])
    assert [c.label for c in turn.replies[-1].choices] == [
        "Công nhận",
        "Không công nhận",
        "Yêu cầu bổ sung",
        "Về danh sách",
        "Về menu",
    ]
    assert "Trạng thái: Chi hội đề nghị công nhận" in turn.replies[0].text
    turn = await can.taps("Yêu cầu bổ sung")
    assert turn.text == ("Cần người khai bổ sung gì cho hồ sơ CD-2026-000001? Gõ lời nhắn (người khai sẽ đọc được).")
    turn = await can.says("ok")
    assert turn.text.startswith("Bạn viết rõ hơn một chút nhé")
    turn = await can.says("Xin bổ sung ảnh kế hoạch học tập cho mục 2.")
    assert turn.text.startswith("Đã gửi yêu cầu bổ sung hồ sơ CD-2026-000001 (Nguyễn Thị Hoa).")

    rows = await outbox(app)
    assert len(rows) == 2
    notice = rendered(rows[1])
    assert notice.text == (
        "Hồ sơ CD-2026-000001 cần bổ sung: Xin bổ sung ảnh kế hoạch học tập cho mục 2.\n"
        'Bạn bấm "Bổ sung hồ sơ" để gửi thêm nhé.'
    )
    assert [(c.value, c.label) for c in notice.choices] == [("cmd:bosung", "Bổ sung hồ sơ")]
    english = rendered(rows[1], "en")
    assert english.text.startswith("Application CD-2026-000001 needs more information: Xin bổ sung")
    assert [c.label for c in english.choices] == ["Answer the request"]

    # The resident presses the notice's button days later, adds a photo and resubmits.
    turn = await hoa.presses_token("cmd:bosung")
    assert turn.text.startswith(
        "Hồ sơ CD-2026-000001 — Công dân học tập\nYêu cầu bổ sung: Xin bổ sung ảnh kế hoạch học tập cho mục 2."
    )
    await hoa.taps("Sửa một mục")
    await hoa.says("2")
    await hoa.sends_photo(jpeg((9, 99, 199)))
    await hoa.taps("Đạt")
    await hoa.taps("Xong")
    turn = await submit(hoa, button="Nộp lại")
    assert turn.text.startswith("Đã nộp hồ sơ CD-2026-000001 (100 điểm).")

    # The officer approves; the resubmitted application is back in the queue.
    turn = await can.says("/duyet")
    assert turn.text.startswith("Hồ sơ chờ duyệt: 1 (đang xem 1–1).\nĐã nộp, chờ chi hội xét: 1")
    turn = await can.taps(turn.choices[0])
    assert "2. Có kế hoạch học tập" in turn.replies[0].text and "Đạt — 10/10 điểm, 1 ảnh" in turn.replies[0].text
    assert [r.text for r in turn.replies if r.photo] == ["Ảnh minh chứng mục 1 (1/2)", "Ảnh minh chứng mục 2 (2/2)"]
    await can.taps("Công nhận")
    turn = await can.taps("Xác nhận")
    assert turn.text.startswith("Hồ sơ CD-2026-000001 chưa được chi hội xét.")  # before the branch review: a reason
    turn = await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    assert turn.text.startswith(
        "Đã công nhận hồ sơ CD-2026-000001 (Nguyễn Thị Hoa). Người khai sẽ nhận được thông báo."
    )

    rows = await outbox(app)
    assert len(rows) == 3
    assert rendered(rows[2]).text == "Chúc mừng! Hồ sơ CD-2026-000001 đã được xã công nhận danh hiệu."
    assert (
        rendered(rows[2], "en").text
        == "Congratulations! Application CD-2026-000001 has been recognised by the commune."
    )
    turn = await hoa.presses_token("cmd:trangthai")
    assert turn.text.startswith("CD-2026-000001 — Công dân học tập: Đã được công nhận")

    # Every decision is in the audit log with the person who made it and their note.
    async with app.sessions() as session:
        names = {p.id: p.full_name for p in await session.scalars(select(Person))}
        events = [
            (e.from_state, e.to_state, e.actor_kind, names.get(e.actor_person_id), e.note)
            for e in await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id))
        ]
        submission = await session.scalar(select(Submission))
    assert events[-5:] == [
        ("declaring", "submitted", "owner", "Nguyễn Thị Hoa", None),
        ("submitted", "recommended", "branch", "Lê Thị Lan", None),
        ("recommended", "needs_info", "commune", "Trần Văn Cán", "Xin bổ sung ảnh kế hoạch học tập cho mục 2."),
        ("needs_info", "submitted", "owner", "Nguyễn Thị Hoa", None),
        ("submitted", "approved", "commune", "Trần Văn Cán", None),
    ]
    assert submission.state == "approved" and submission.decided_at is not None


async def test_not_recommended_and_rejected_by_direct_commands_with_reasons(chat, flow, app):
    hoa, lan, can = await _submitted_with_reviewers(chat, flow)

    turn = await lan.says("/khongdexuat cd-2026-1")
    assert turn.text == "Lý do chi hội không đề nghị hồ sơ CD-2026-000001? (người khai sẽ đọc được)"
    turn = await lan.says("Chưa tham gia sinh hoạt chi hội năm nay.")
    assert turn.text.startswith("Đã ghi: không đề nghị hồ sơ CD-2026-000001 (Nguyễn Thị Hoa).")
    turn = await lan.says("/dexuat CD-2026-000001")
    assert turn.text.startswith('Hồ sơ CD-2026-000001 đang ở bước "Chi hội chưa đề nghị", không làm việc này được.')

    turn = await can.says("/tuchoi CD-2026-000001 Chưa đủ minh chứng mục 3.")
    assert turn.text.startswith("Đã ghi: hồ sơ CD-2026-000001 (Nguyễn Thị Hoa) không được công nhận.")
    turn = await can.says("/congnhan CD-2026-000001")
    assert turn.text.startswith('Hồ sơ CD-2026-000001 đang ở bước "Chưa được công nhận", không làm việc này được.')

    texts = [rendered(r).text for r in await outbox(app)]
    assert texts == [
        "Chi hội chưa đề nghị công nhận hồ sơ CD-2026-000001. Lý do: Chưa tham gia sinh hoạt chi hội năm nay.",
        "Hồ sơ CD-2026-000001 chưa được công nhận năm nay. Lý do: Chưa đủ minh chứng mục 3.",
    ]
    turn = await hoa.says("/trangthai")
    assert turn.text.startswith("CD-2026-000001 — Công dân học tập: Chưa được công nhận")


async def test_officer_filters_the_pending_list(chat, flow, app):
    for index, (user, branch) in enumerate((("a", "1"), ("b", "2"), ("c", "2"))):
        await submit_citizen(chat(user), name=f"Người Số {'ABC'[index]}", branch=branch, photo=False)
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/duyet ha luong")
    assert turn.text.startswith("Hồ sơ chờ duyệt: 2 (đang xem 1–2).")
    assert "Đang lọc: Thôn Hà Lương" in turn
    assert turn.choices[:2] == [
        "CD-2026-000002 · Người Số B · Thôn Hà Lương · 100 điểm",
        "CD-2026-000003 · Người Số C · Thôn Hà Lương · 100 điểm",
    ]
    turn = await can.taps("Bỏ lọc")
    assert turn.text.startswith("Hồ sơ chờ duyệt: 3 (đang xem 1–3).")
    await can.taps("Lọc")
    await can.taps("Thôn/buôn")
    turn = await can.taps("Buôn Ken")
    assert turn.choices[0] == "CD-2026-000001 · Người Số A · Buôn Ken · 100 điểm"
    await can.taps("Lọc")
    await can.taps("Danh hiệu")
    turn = await can.taps("Gia đình học tập")
    assert turn.text.startswith("Không có hồ sơ nào chờ duyệt.")
    assert "Đang lọc: Buôn Ken, Gia đình học tập" in turn
    turn = await can.says("/duyet gd")
    assert turn.text.startswith("Không có hồ sơ nào chờ duyệt.")
    turn = await can.says("/duyet saigon")
    assert turn.text.startswith('Không hiểu bộ lọc "saigon"; mình hiện tất cả.')
