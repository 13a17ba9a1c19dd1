"""Transcripts: registering a citizen and a household, edits, validation, duplicates, resuming."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import ChannelAccount, Household, HouseholdMember, Person, Submission
from tests.support.journeys import Tap, answer
from tests.support.scripts import agree, register_citizen


async def test_citizen_registration_forgiving_input(person, suite_app):
    hoa = person("hoa")
    await agree(hoa)
    turn = await hoa.says("cong dan hoc tap")
    assert turn.text == "Họ và tên của bạn?"
    turn = await hoa.says("12345")
    assert turn.text == (
        "Tên chỉ gồm chữ cái (không có số hay ký hiệu), ví dụ: Nguyễn Thị Hoa. Bạn gõ lại nhé.\n\nHọ và tên của bạn?"
    )
    turn = await hoa.says("A")  # the problem is the length, not the letters
    assert turn.text.startswith("Tên ngắn quá: bạn gõ đầy đủ họ và tên")
    turn = await hoa.says("Hoa " * 90)
    assert turn.text.startswith("Tên dài quá (tối đa 100 ký tự).")
    turn = await hoa.says("nguyễn thị hoa")
    assert turn.text == "Năm sinh của bạn? (ví dụ: 1975)"
    turn = await hoa.says("75")
    assert "Năm sinh gồm 4 chữ số, ví dụ 1975." in turn
    turn = await hoa.says("2012")  # four digits; the problem is the age
    assert turn.text.startswith(
        "Người đăng ký cần từ 15 tuổi trở lên, tức là sinh năm 2011 trở về trước. Bạn kiểm tra lại năm sinh nhé."
    )
    turn = await hoa.says("1900")
    assert "sớm quá (từ năm 1916 trở về sau)" in turn
    turn = await hoa.says("năm 1975")
    assert "Bạn ở thôn/buôn/khu phố nào?" in turn
    assert turn.choices == ["Buôn Ken", "Thôn Hà Lương", "Thôn Tân Lập", "Buôn Ea Kmát", "Thôn Trung Hòa"]
    turn = await hoa.says("làng nào đó")
    assert "Bạn chọn thôn trong danh sách" in turn
    turn = await hoa.says("ha luong")  # part of the name, no diacritics
    assert turn.text == (
        "Danh hiệu: Công dân học tập\nHọ tên: Nguyễn Thị Hoa, sinh năm 1975\nThôn/buôn: Thôn Hà Lương\n\n"
        "Thông tin đã đúng chưa?"
    )
    assert turn.choices == ["Xác nhận", "Sửa", "Hủy đăng ký"]

    turn = await hoa.taps("Sửa")
    assert turn.choices == ["Họ tên", "Năm sinh", "Thôn/buôn", "Quay lại"]
    await hoa.taps("Năm sinh")
    turn = await hoa.says("1976")
    assert "Họ tên: Nguyễn Thị Hoa, sinh năm 1976" in turn

    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã đăng ký Công dân học tập, mã hồ sơ CD-2026-000001.")
    assert "Bây giờ tự đánh giá 10 mục" in turn
    assert turn.choices == ["Bắt đầu", "Để sau"]

    async with suite_app.sessions() as session:
        stored = await session.scalar(select(Person))
        submission = await session.scalar(select(Submission))
        account = await session.scalar(select(ChannelAccount))
    assert (stored.full_name, stored.birth_year, stored.consent_at is not None) == ("Nguyễn Thị Hoa", 1976, True)
    assert account.person_id == stored.id
    assert (submission.reference, submission.state, submission.person_id) == ("CD-2026-000001", "registered", stored.id)


async def test_second_registration_same_title_same_year_is_refused(person):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Để sau")
    turn = await hoa.taps("Đăng ký danh hiệu")
    turn = await hoa.taps("Công dân học tập")
    assert (
        "Bạn đã đăng ký danh hiệu này năm nay rồi: hồ sơ CD-2026-000001 (Đã đăng ký). Gõ /trangthai để xem chi tiết."
        in turn
    )
    assert "Bạn muốn làm gì?" in turn


async def test_household_registration_in_english_with_members_and_edits(person, suite_app):
    ba = person("ba")
    await agree(ba, "en")
    turn = await ba.taps("Learning family")
    assert turn.text == "Your full name (you are filling in for the family)?"
    await ba.says("Tran Van Ba")
    await ba.says("1960")
    turn = await ba.says("2")
    assert turn.text == "Are you the head of the household?"
    turn = await ba.says("no")
    assert turn.text == "Full name of the head of household?"
    await ba.says("Lê Thị Tư")
    turn = await ba.says("1965")
    assert "Now list the other family members" in turn
    assert turn.choices == ["Add a member", "No one else"]
    turn = await ba.taps("Add a member")
    assert turn.text == "Full name of member 1?"
    await ba.says("Trần Văn Năm")
    turn = await ba.says("2012")
    assert turn.text == "How is Trần Văn Năm related to the head of household?"
    assert turn.choices == ["Spouse", "Child", "Parent", "Grandchild", "Sibling", "Other"]
    turn = await ba.says("child")
    # Under 16: recorded only once a parent or guardian confirms (and the child, from 7).
    assert turn.text == (
        "Trần Văn Năm (born 2012) is under 16: a child's details are recorded only with a parent's or guardian's "
        "consent, and from 7 years old the child must agree too.\nPlease confirm: “I am Trần Văn Năm's parent or "
        "guardian, I agree that the child's name, birth year and family relation are recorded in the Learning "
        "family application, and Trần Văn Năm agrees too.”"
    )
    assert turn.choices == ["Confirm", "Leave the child out"]
    turn = await ba.taps("Confirm")
    assert turn.text.startswith("Added Trần Văn Năm.")
    assert "1. Trần Văn Năm, 2012 — Child" in turn
    # Typing a name straight away adds the next member.
    turn = await ba.says("Trần Thị Sáu")
    assert turn.text == "Year of birth of Trần Thị Sáu?"
    turn = await ba.says("2030")
    assert "That year has not come yet (2026 at the latest). Please check it." in turn
    await ba.says("2015")
    await ba.says("2")
    await ba.says("yes")  # typed: the guardian confirms
    turn = await ba.taps("That's everyone")
    assert turn.text == (
        "Title: Learning family\nFilled in by: Tran Van Ba, born 1960\nVillage: Thôn Hà Lương\n"
        "Head of household: Lê Thị Tư, born 1965\nOther members (2):\n"
        "1. Trần Văn Năm, 2012 — Child\n2. Trần Thị Sáu, 2015 — Child\n\nIs this correct?"
    )
    await ba.taps("Change")
    await ba.taps("Members")
    turn = await ba.taps("Remove someone")
    assert turn.choices == ["Trần Văn Năm (2012)", "Trần Thị Sáu (2015)", "Back"]
    turn = await ba.says("2")
    assert turn.text.startswith("Removed Trần Thị Sáu.")
    await ba.taps("That's everyone")
    await ba.taps("Change")
    await ba.taps("Head of household")
    turn = await ba.says("yes")  # after all, Ba is the head; the member list is kept
    assert "Head of household: you" in turn
    assert "1. Trần Văn Năm, 2012 — Child" in turn
    turn = await ba.taps("Confirm")
    assert turn.text.startswith("Registered for Learning family, reference GD-2026-000001.")
    assert turn.choices == ["Start", "Later"]

    async with suite_app.sessions() as session:
        household = await session.scalar(select(Household))
        members = list(await session.scalars(select(HouseholdMember).order_by(HouseholdMember.position)))
        head = await session.get(Person, household.head_person_id)
        submission = await session.scalar(select(Submission))
    assert head.full_name == "Tran Van Ba"
    assert [(m.full_name, m.relation) for m in members] == [("Tran Van Ba", "head"), ("Trần Văn Năm", "child")]
    assert submission.household_id == household.id and submission.subject_kind == "household"


async def test_half_finished_registration_resumes(person):
    hoa = person()
    await agree(hoa)
    await answer(hoa, Tap("Gia đình học tập"), "Phạm Thị Mai", "1982")
    turn = await hoa.says("/huy")
    assert turn.text.startswith("Đã dừng. Những gì bạn đã gửi vẫn được lưu.")
    await hoa.taps("Đăng ký danh hiệu")
    turn = await hoa.taps("Gia đình học tập")
    assert turn.text.startswith("Mình tiếp tục bản đăng ký bạn đang làm dở nhé.")
    assert "Bạn ở thôn/buôn/khu phố nào?" in turn


async def test_cancel_registration_at_confirm(person, suite_app):
    hoa = person()
    await agree(hoa)
    await answer(hoa, Tap("Công dân học tập"), "Đỗ Văn Hùng", "1990", "1")
    turn = await hoa.taps("Hủy đăng ký")
    assert turn.text == "Hủy bản đăng ký đang làm? Các câu đã trả lời sẽ bị xóa."  # asked first
    turn = await hoa.taps("Không, làm tiếp")
    assert "Xác nhận" in turn.choices and "Đỗ Văn Hùng" in turn
    await hoa.taps("Hủy đăng ký")
    turn = await hoa.taps("Có, dừng lại")
    assert turn.text.startswith("Đã hủy bản đăng ký này.")
    async with suite_app.sessions() as session:
        assert await session.scalar(select(Submission)) is None
    turn = await hoa.says("/dangky")
    await hoa.taps("Công dân học tập")
    assert "Họ và tên" in hoa.last  # the draft is gone: asked from the start


async def _head_adding_a_child(hoa):
    """Hoa registers her household as its head and, as its first member, adds her son Nguyễn Văn An
    (born 2015), up to the question of how he is related to her."""
    await agree(hoa)
    await answer(hoa, Tap("Gia đình học tập"), "Nguyễn Thị Hoa", "1985", "2", Tap("Có"), Tap("Thêm thành viên"))
    await answer(hoa, "Nguyễn Văn An", "2015")
    return hoa


async def test_children_under_16_need_a_parent_or_guardian_and_from_7_their_own_agreement(person, suite_app):
    import hashlib

    from bot.storage.models import Consent

    hoa = await _head_adding_a_child(person("hoa"))
    turn = await hoa.taps("Con")
    older = turn.text
    assert older == (
        "Cháu Nguyễn Văn An (sinh năm 2015) chưa đủ 16 tuổi: thông tin của cháu chỉ được ghi khi cha, mẹ hoặc người "
        "giám hộ đồng ý, và vì cháu từ 7 tuổi trở lên nên cháu cũng phải đồng ý.\n"
        "Bạn xác nhận: “Tôi là cha, mẹ hoặc người giám hộ của cháu Nguyễn Văn An, đồng ý cho ghi họ tên, năm sinh, "
        "quan hệ gia đình của cháu vào hồ sơ Gia đình học tập, và cháu Nguyễn Văn An cũng đã đồng ý.”"
    )
    assert turn.choices == ["Xác nhận", "Không ghi cháu"]
    turn = await hoa.says("để sau")
    assert turn.text.startswith(
        'Bạn bấm "Xác nhận" hoặc "Không ghi cháu" (hoặc trả lời 1, 2) nhé.\n\nCháu Nguyễn Văn An'
    )
    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã thêm Nguyễn Văn An.")
    # Younger than 7: the parent's or guardian's confirmation alone.
    await hoa.says("Nguyễn Thị Bé")
    await hoa.says("2022")
    turn = await hoa.taps("Con")
    younger = turn.text
    assert younger == (
        "Cháu Nguyễn Thị Bé (sinh năm 2022) chưa đủ 16 tuổi: thông tin của cháu chỉ được ghi khi cha, mẹ hoặc người "
        "giám hộ đồng ý.\nBạn xác nhận: “Tôi là cha, mẹ hoặc người giám hộ của cháu Nguyễn Thị Bé và đồng ý cho ghi "
        "họ tên, năm sinh, quan hệ gia đình của cháu vào hồ sơ Gia đình học tập.”"
    )
    await hoa.taps("Xác nhận")
    # A niece whose parents were not asked: not recorded.
    await hoa.says("Trần Thị Tí")
    await hoa.says("2016")
    await hoa.taps("Khác")
    turn = await hoa.taps("Không ghi cháu")
    assert turn.text.startswith(
        "Không ghi cháu Trần Thị Tí. Thông tin của trẻ dưới 16 tuổi chỉ được ghi khi cha, mẹ hoặc người giám hộ "
        "đồng ý; khi có sự đồng ý, bạn thêm cháu lại nhé."
    )
    assert "Trần Thị Tí" not in turn.text.split("nhé.", 1)[1]
    # An adult needs no such question.
    await hoa.says("Nguyễn Văn Chồng")
    await hoa.says("1983")
    turn = await hoa.taps("Vợ/chồng")
    assert turn.text.startswith("Đã thêm Nguyễn Văn Chồng.")
    turn = await hoa.taps("Đã đủ")
    assert (
        "Thành viên khác (3):\n1. Nguyễn Văn An, 2015 — Con\n2. Nguyễn Thị Bé, 2022 — Con\n3. Nguyễn Văn Chồng, 1983 — Vợ/chồng"
        in turn
    )
    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã đăng ký Gia đình học tập")

    async with suite_app.sessions() as session:
        household = await session.scalar(select(Household))
        names = [m.full_name for m in await session.scalars(select(HouseholdMember).order_by(HouseholdMember.position))]
        guardians = list(await session.scalars(select(Consent).where(Consent.kind == "guardian").order_by(Consent.id)))
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "hoa"))
    assert names == ["Nguyễn Thị Hoa", "Nguyễn Văn An", "Nguyễn Thị Bé", "Nguyễn Văn Chồng"]
    assert [(g.person_id, g.account_id, g.household_id, g.method) for g in guardians] == [
        (household.head_person_id, account.id, household.id, "chat")
    ] * 2
    assert [g.text_sha256 for g in guardians] == [
        hashlib.sha256(text.encode()).hexdigest() for text in (older, younger)
    ]
    assert {(g.text_version, g.purposes[0]) for g in guardians} == {("2026-12", "household_member_under_16")}
    turn = await hoa.says("/dulieu")
    assert "Xác nhận của cha mẹ/người giám hộ cho trẻ dưới 16 tuổi: 2" in turn


async def test_a_draft_stored_in_the_earlier_untyped_shape_carries_on(person, suite_app):
    """Conversations under way when the draft became typed keep their answers: the stored dict
    has the same keys, and one without the fields the typed draft adds still reads."""
    from sqlalchemy.orm.attributes import flag_modified

    from bot.storage.models import Consent, Conversation

    hoa = await _head_adding_a_child(person("hoa"))
    await hoa.taps("Con")  # asked for a guardian's confirmation
    async with suite_app.sessions() as session:
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "hoa"))
        conv = await session.get(Conversation, account.id)
        reg = conv.data["reg"]
        assert reg["member"] == {"name": "Nguyễn Văn An", "birth_year": 2015, "relation": "child"}
        assert (reg["name"], reg["birth_year"], reg["is_head"], reg["members"]) == ("Nguyễn Thị Hoa", 1985, True, [])
        # As the untyped draft kept it: no empty lists or flags, the text shown beside the draft.
        shown = reg.pop("guardian_shown")
        for key in ("members", "commune_hits", "members_done"):
            reg.pop(key)
        conv.data = {**conv.data, "reg": {**reg, "target_group": None}, "guardian_shown": shown}
        flag_modified(conv, "data")
        await session.commit()

    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã thêm Nguyễn Văn An.")
    turn = await hoa.taps("Đã đủ")
    assert "1. Nguyễn Văn An, 2015 — Con" in turn
    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã đăng ký Gia đình học tập")
    async with suite_app.sessions() as session:
        names = [m.full_name for m in await session.scalars(select(HouseholdMember).order_by(HouseholdMember.position))]
        guardians = list(await session.scalars(select(Consent).where(Consent.kind == "guardian")))
        conv = await session.get(Conversation, account.id)
    assert names == ["Nguyễn Thị Hoa", "Nguyễn Văn An"] and len(guardians) == 1
    assert "reg" not in conv.data
