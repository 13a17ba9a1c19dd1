"""Branch leaders: registering and declaring for a household without a smartphone (recorded as
done by the leader), the members list by state, and the limits of their scope."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.storage.models import (
    Answer,
    ChannelAccount,
    Conversation,
    Evidence,
    Household,
    Person,
    RoleGrant,
    Submission,
    SubmissionEvent,
)
from bot.storage.people import Role
from tests.support.images import jpeg
from tests.support.journeys import Tap, answer, register
from tests.support.review import make_staff, outbox, rendered, submit_citizen


async def _proxy_household(lan) -> None:
    turn = await lan.says("/lamho")
    assert turn.text == 'Chi hội chưa có ai được đăng ký hộ. Bấm "Đăng ký người mới" để bắt đầu.'
    assert turn.choices == ["Đăng ký người mới", "Về menu"]
    turn = await lan.taps("Đăng ký người mới")
    assert turn.text.startswith(
        "Đăng ký hộ người không có điện thoại. Bạn đọc cho người đó nghe nội dung dưới đây, nói rõ đây là trợ lý "
        "tự động (chatbot) ghi hồ sơ, rồi hỏi họ có đồng ý không:\n• Bên kiểm soát dữ liệu: Hội Khuyến học xã Ea Tul"
    )
    assert turn.text.endswith("\n\nNgười đó đã đồng ý chưa?")
    turn = await lan.taps("Đã đồng ý")
    assert turn.text == "Đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
    turn = await lan.taps("Gia đình học tập")
    assert turn.text == "Họ và tên người được đăng ký (chủ hộ, nếu là gia đình)?"
    turn = await lan.says("y bih niê")
    assert turn.text == "Năm sinh của Y Bih Niê? (ví dụ: 1958)"
    turn = await lan.says("1958")
    assert turn.text.startswith("Bây giờ khai các thành viên khác trong gia đình")  # branch and head known
    await lan.taps("Thêm thành viên")
    await lan.says("H'Nga Niê")
    await lan.says("1962")
    await lan.taps("Vợ/chồng")
    turn = await lan.taps("Đã đủ")
    assert turn.text == (
        "Danh hiệu: Gia đình học tập\nChủ hộ: Y Bih Niê, sinh năm 1958\nThôn/buôn: Thôn Hà Lương\n"
        "Thành viên khác (1):\n1. H'Nga Niê, 1962 — Vợ/chồng\nNgười làm hộ: Lê Thị Lan\n\nThông tin đã đúng chưa?"
    )
    turn = await lan.taps("Xác nhận")
    assert turn.text.startswith("Đã đăng ký Gia đình học tập, mã hồ sơ GD-2026-000001.")
    assert "[Làm hộ: Y Bih Niê]\nBây giờ tự đánh giá 10 mục" in turn
    turn = await lan.taps("Bắt đầu")
    assert turn.text.startswith("[Làm hộ: Y Bih Niê]\nMục 1.1")
    for index in range(10):
        await lan.taps("Đạt")
        if index == 0:
            await lan.sends_photo(jpeg((50, 60, 70)))
            await lan.taps("Xong")
        else:
            await lan.taps("Không có ảnh")
    await lan.taps("Nộp hồ sơ")
    turn = await lan.taps("Nộp ngay")
    assert turn.text.startswith("Đã nộp hồ sơ GD-2026-000001 (100 điểm).")
    assert "Đã xong việc làm hộ cho Y Bih Niê." in turn


async def test_leader_registers_and_declares_for_a_household_without_a_phone(engine, person, suite_app):
    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    await _proxy_household(lan)
    assert "Bình xét (1 chờ)" in lan.last.choices
    assert "Tự đánh giá" not in lan.last.choices  # the leader's own menu again

    async with suite_app.sessions() as session:
        leader = await session.scalar(select(Person).where(Person.full_name == "Lê Thị Lan"))
        ybih = await session.scalar(select(Person).where(Person.full_name == "Y Bih Niê"))
        household = await session.scalar(select(Household))
        submission = await session.scalar(select(Submission))
        answers = list(await session.scalars(select(Answer)))
        evidence = list(await session.scalars(select(Evidence)))
        events = list(await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id)))
        accounts = list(await session.scalars(select(ChannelAccount).where(ChannelAccount.person_id == ybih.id)))
    assert ybih.created_by_person_id == leader.id and ybih.consent_at is not None and accounts == []
    assert (household.head_person_id, household.registered_by_person_id) == (ybih.id, ybih.id)
    assert submission.created_by_person_id == leader.id and submission.household_id == household.id
    assert len(answers) == 10 and {a.answered_by_person_id for a in answers} == {leader.id}
    assert [e.uploaded_by_person_id for e in evidence] == [leader.id]
    assert {(e.actor_kind, e.actor_person_id) for e in events} == {("owner", leader.id)}

    # Back later: the person is in the leader's list; a status check as them.
    turn = await lan.says("/lamho")
    assert turn.choices == ["Y Bih Niê (1958)", "Đăng ký người mới", "Về menu"]
    turn = await lan.taps("Y Bih Niê (1958)")
    assert turn.text == "Đang làm hộ cho Y Bih Niê. Bạn muốn làm gì?"
    turn = await lan.taps("Xem trạng thái")
    assert turn.text.startswith("GD-2026-000001 — Gia đình học tập: Đã nộp, chờ chi hội xét")
    turn = await lan.says("/menu")
    assert turn.text.startswith("Đã xong việc làm hộ cho Y Bih Niê.")

    # A request for more information reaches the leader, who has the phone.
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/yeucau GD-2026-000001 Xin ảnh giấy khen của cháu.")
    rows = await outbox(suite_app)
    async with suite_app.sessions() as session:
        lan_account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "lan"))
    assert [r.account_id for r in rows] == [lan_account.id]
    notice = rendered(rows[0])
    assert notice.text == (
        "Hồ sơ GD-2026-000001 của Y Bih Niê (bạn làm hộ): Cần bổ sung. Ghi chú: Xin ảnh giấy khen của cháu."
    )
    assert [(c.value, c.label) for c in notice.choices] == [("cmd:lamho", "Làm hộ")]
    turn = await lan.presses_token("cmd:lamho")
    await lan.taps("Y Bih Niê (1958)")
    turn = await lan.taps("Tự đánh giá")
    assert turn.text.startswith(
        "[Làm hộ: Y Bih Niê]\nHồ sơ GD-2026-000001 — Gia đình học tập\nYêu cầu bổ sung: Xin ảnh"
    )


async def test_members_by_state_and_proxy_limits(engine, person, suite_app):
    hoa = person("hoa")
    await submit_citizen(hoa)  # Thôn Hà Lương, submitted
    nam = person("nam")
    from tests.support.scripts import register_citizen

    await register_citizen(nam, name="Trần Văn Nam", branch="2")  # registered only
    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    async with suite_app.sessions.begin() as session:
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "nam"))
        account.unreachable_at = suite_app.clock.now()
        account.unreachable_reason = "blocked"
    turn = await lan.says("/thanhvien")
    assert turn.text == (
        "Chi hội Thôn Hà Lương — năm 2026: 2 hồ sơ.\n\n"
        "Đã nộp, chờ chi hội xét (1):\n- CD-2026-000001 Nguyễn Thị Hoa\n\n"
        "Đã đăng ký (1):\n- CD-2026-000002 Trần Văn Nam (không nhắn được, cần đến nhà)"
    )
    assert turn.choices == ["Bình xét", "Làm hộ", "Về menu"]
    turn = await lan.taps("Bình xét")
    assert turn.text.startswith("Hồ sơ chờ chi hội bình xét: 1")

    # Residents with their own phone are not offered for proxy; another branch's leader sees nobody.
    turn = await lan.says("/lamho")
    assert turn.choices == ["Đăng ký người mới", "Về menu"]
    await _proxy_household_quick(lan)
    ken = await make_staff(engine, "ken", Role.LEADER, "buon-ken", "Y Ken")
    turn = await ken.says("/lamho")
    assert turn.choices == ["Đăng ký người mới", "Về menu"]
    turn = await ken.says("bih")
    assert turn.text.startswith('Không thấy ai tên "bih".')

    # A leader whose grant is revoked in the middle of acting for someone is stopped.
    await lan.says("/lamho")
    await lan.taps("Y Bih Niê (1958)")
    async with suite_app.sessions.begin() as session:
        await session.execute(
            update(RoleGrant).where(RoleGrant.role == "leader").values(revoked_at=suite_app.clock.now())
        )
    turn = await lan.taps("Xem trạng thái")
    assert turn.text.startswith("Bạn không còn quyền làm hộ người này, mình quay về tài khoản của bạn.")
    turn = await lan.says("/thanhvien")
    assert turn.text.startswith("Lệnh này dành cho chi hội trưởng.")


async def _proxy_household_quick(lan) -> None:
    await lan.taps("Đăng ký người mới")
    await lan.taps("Đã đồng ý")
    turn = await answer(lan, Tap("Công dân học tập"), "Y Bih Niê", "1958")
    assert turn.text.startswith(
        "Danh hiệu: Công dân học tập\nHọ tên: Y Bih Niê, sinh năm 1958\nThôn/buôn: Thôn Hà Lương"
    )
    await lan.taps("Xác nhận")
    await lan.taps("Để sau")


async def test_proxy_refused_until_the_person_agreed(engine):
    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    await lan.says("/lamho")
    await lan.taps("Đăng ký người mới")
    turn = await lan.taps("Chưa hỏi")
    assert turn.text.startswith("Bạn hỏi ý người đó trước, khi họ đồng ý thì gõ /lamho nhé.")


async def test_ending_proxy_mode_leaves_nothing_of_the_other_persons_declaration(engine, person, suite_app):
    """A note typed (or a photo kept) while acting for someone stays with that person's
    application: back at the leader's own menu, none of it is left in the conversation."""
    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    await lan.says("/lamho")
    await lan.taps("Đăng ký người mới")
    await lan.taps("Đã đồng ý")
    turn = await register(lan, "Công dân học tập", "Y Bih Niê", "1958")
    assert "[Làm hộ: Y Bih Niê]" in turn
    await lan.taps("Bắt đầu")
    turn = await lan.says("ông đọc sách ở thư viện xã mỗi tuần")  # kept as a note on item 1
    assert "ghi chú" in turn.text.lower()
    turn = await lan.says("/menu")
    assert "Đã xong việc làm hộ cho Y Bih Niê." in turn
    async with suite_app.sessions() as session:
        conv = await session.scalar(select(Conversation))
    assert not {"for", "sub", "item", "_note", "pending_photo", "_closes", "_deadline"} & set(conv.data), conv.data
