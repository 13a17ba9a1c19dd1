"""A person sees what is stored about them and deletes it: personal data and photo files go
(unless another submission still uses the same photo), statistics stay the same."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.review.stats import commune_stats
from bot.storage.models import (
    Answer,
    ChannelAccount,
    Evidence,
    Household,
    HouseholdMember,
    OrgUnit,
    OutboxMessage,
    Person,
    ProcessedMessage,
    Submission,
    SubmissionEvent,
)
from bot.storage.people import Role
from tests.support.images import jpeg
from tests.support.review import chat, flow, make_staff, submit_citizen  # noqa: F401

SHARED = jpeg((1, 2, 3))


async def _stats(app):
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        stats = await commune_stats(session, app.catalog, commune, 2026)
    return {
        (u.name, t): (c.registered, c.recognised) for u in [*stats.branches, stats.total] for t, c in u.titles.items()
    }


async def test_see_and_delete_my_data_keeps_anonymised_statistics(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)  # CD with one photo of its own
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/congnhan CD-2026-000001")
    await can.taps("Xác nhận")  # before the branch review: a reason
    await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    # A household registration in progress, with a photo another person also sent.
    await hoa.says("/dangky")
    await hoa.taps("Gia đình học tập")
    await hoa.taps("Không")
    await hoa.says("Nguyễn Văn Ba")
    await hoa.says("1950")
    await hoa.taps("Thêm thành viên")
    await hoa.says("Nguyễn Văn Tư")
    await hoa.says("2005")
    await hoa.taps("Cháu")
    await hoa.taps("Đã đủ")
    await hoa.taps("Xác nhận")
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.sends_photo(SHARED)
    nam = chat("nam")
    from tests.support.scripts import register_citizen

    await register_citizen(nam, name="Trần Văn Nam", branch="2")
    await nam.taps("Bắt đầu")
    await nam.taps("Đạt")
    await nam.sends_photo(SHARED)
    before = await _stats(app)
    async with app.sessions() as session:
        files = {e.path: app.evidence.open_path(e.path) for e in await session.scalars(select(Evidence))}
    assert len(files) == 2 and all(p.is_file() for p in files.values())

    turn = await hoa.says("/dulieu")
    assert turn.text.startswith(
        "Bot đang lưu về bạn:\n"
        "Họ tên: Nguyễn Thị Hoa, sinh năm 1975, thôn/buôn: Thôn Hà Lương\n"
        "Hồ sơ: CD-2026-000001, GD-2026-000002\n"
        "Câu trả lời tự đánh giá: 11; ảnh minh chứng: 2\n"
        "Thành viên gia đình đã khai: 1\n"
        "Tài khoản nhắn tin: test\n"
        "Đồng ý lúc 09:00 ngày 20/11/2026, nội dung bản 2026-12, bên kiểm soát dữ liệu: Hội Khuyến học xã Ea Tul, "
        "liên hệ: Văn phòng UBND xã Ea Tul\n"
        "Muốn rút lại đồng ý, bạn gõ /rutlai.\n\n"
        "Muốn xóa, bạn gõ /xoadulieu."
    )
    turn = await hoa.says("/xoadulieu")
    assert turn.text.endswith(
        "Danh hiệu đã được công nhận vẫn được tính trong thống kê của xã, nhưng không kèm tên bạn."
    )
    assert turn.choices == ["Xóa dữ liệu của tôi", "Không xóa"]
    turn = await hoa.taps("Không xóa")
    assert turn.text.startswith("Đã giữ nguyên dữ liệu của bạn.")
    await hoa.says("/xoadulieu")
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text == (
        "Đã xóa dữ liệu của bạn (2 hồ sơ, 2 ảnh). Bot không còn lưu tên bạn. Khi nào muốn đăng ký lại, bạn gõ /start nhé."
    )

    async with app.sessions() as session:
        people = {p.id: p for p in await session.scalars(select(Person))}
        names = sorted(p.full_name for p in people.values())
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "hoa"))
        submissions = list(await session.scalars(select(Submission).order_by(Submission.id)))
        hoa_subs = [s for s in submissions if s.reference.startswith(("CD-2026-000001", "GD-2026-000002"))]
        answers = await session.scalar(
            select(func.count()).select_from(Answer).where(Answer.submission_id.in_([s.id for s in hoa_subs]))
        )
        evidence = list(await session.scalars(select(Evidence)))
        households = await session.scalar(select(func.count()).select_from(Household))
        members = await session.scalar(select(func.count()).select_from(HouseholdMember))
        notes = [
            e.note
            for e in await session.scalars(
                select(SubmissionEvent).where(SubmissionEvent.submission_id.in_([s.id for s in hoa_subs]))
            )
        ]
        queued = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.account_id == account.id)
        )
        stored_replies = [
            r.replies
            for r in await session.scalars(select(ProcessedMessage).where(ProcessedMessage.account_id == account.id))
        ]
    assert "Nguyễn Thị Hoa" not in names and "Nguyễn Văn Ba" not in names
    assert sorted(n for n in names if n) == ["Trần Văn Cán", "Trần Văn Nam"]
    assert account.person_id is None and account.consent_at is None
    assert [(s.state, s.person_id, s.household_id, s.anonymised_at is not None) for s in hoa_subs] == [
        ("approved", None, None, True),
        ("declaring", None, None, True),
    ]
    assert answers == 0 and households == 0 and members == 0 and queued == 0
    assert set(notes) == {None}
    assert [e.submission_id for e in evidence] == [submissions[-1].id]  # only Nam's photo is left
    assert files[evidence[0].path].is_file()  # the shared file stays for Nam
    assert sum(p.is_file() for p in files.values()) == 1  # Hoa's own photo file is gone
    assert all(not r or "Hoa" not in str(r) for r in stored_replies)
    assert await _stats(app) == before  # registered and recognised counts unchanged

    # The officer still sees the outcome, without a name; the person starts afresh.
    turn = await can.says("/xem CD-2026-000001")
    assert "Người khai đã xóa dữ liệu cá nhân; chỉ còn kết quả để thống kê." in turn.replies[0].text
    turn = await hoa.says("/dulieu")
    assert turn.text.startswith("Bot chưa lưu thông tin cá nhân nào của bạn.")
    turn = await hoa.says("/trangthai")
    assert turn.text.startswith("Trước hết, bạn cần đồng ý cho lưu thông tin.")


async def test_english_data_summary(chat):
    john = chat("john")
    from tests.support.scripts import register_citizen_en

    await register_citizen_en(john)
    turn = await john.says("/mydata")
    assert turn.text.startswith(
        "What the bot stores about you:\nName: John Nguyen, born 1988, branch: Thôn Tân Lập\n"
        "Applications: CD-2026-000001\nSelf-assessment answers: 0; evidence photos: 0\nChat accounts: test\n"
        "Consent given 11/20/26, 9:00\u202fAM, text version 2026-12, data controller: Hội Khuyến học xã Ea Tul, "
        "contact: Văn phòng UBND xã Ea Tul\nTo withdraw your consent, type /withdraw.\n\n"
        "To delete it, type /deletedata."
    )
    turn = await john.says("/deletedata")
    assert turn.choices == ["Delete my data", "Keep my data"]
    turn = await john.taps("Delete my data")
    assert turn.text.startswith("Your data has been deleted (applications: 1, photos: 0).")
