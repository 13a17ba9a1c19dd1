"""Transcripts: the season as residents live it — campaign windows, deadlines in plain words,
the commune's after-deadline policy ("late" or "closed"), and a calendar kept in order."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, update

from bot.storage.commune import apply_commune, campaign_for, load_commune_file
from bot.storage.models import OrgUnit, Submission
from bot.storage.people import Role
from tests.conftest import EXAMPLE_COMMUNE
from tests.support.journeys import answer_items, register, submit
from tests.support.reminders import staff
from tests.support.review import make_staff
from tests.support.scripts import agree, declare_all, register_citizen

# START is 20/11/2026; the example's 2026 registration closed on 31/3, self-assessment on 30/11.
TO_DEC_3 = timedelta(days=13)


async def _set_policy(app, policy: str) -> None:
    async with app.sessions.begin() as session:
        await session.execute(update(OrgUnit).where(OrgUnit.code == "ea-tul").values(after_deadline=policy))


async def _commune_id(app) -> int:
    async with app.sessions() as session:
        return await session.scalar(select(OrgUnit.id).where(OrgUnit.code == "ea-tul"))


async def test_current_campaign_is_chosen_by_its_window_not_the_calendar_year(suite_app):
    commune_id = await _commune_id(suite_app)
    async with suite_app.sessions() as session:
        # 2026 runs until its last deadline (10/12/2026); 2027 opens the day after.
        assert (await campaign_for(session, commune_id, date(2026, 12, 10))).year == 2026
        assert (await campaign_for(session, commune_id, date(2026, 12, 11))).year == 2027
        assert (await campaign_for(session, commune_id, date(2026, 1, 1))).year == 2026


async def test_late_policy_registers_and_submits_with_a_late_mark(person, suite_app, engine):
    suite_app.clock.advance(TO_DEC_3)
    hoa = person("hoa")
    await agree(hoa)
    turn = hoa.last
    assert "Bạn muốn đăng ký danh hiệu nào năm 2026?" in turn
    assert "Hạn đăng ký: ngày 31/3/2026 — đã quá hạn" in turn
    turn = await register(hoa, "Công dân học tập", "Nguyễn Thị Hoa", "1975", "2")
    assert "Đã quá hạn đăng ký (ngày 31/3/2026): hồ sơ vẫn được nhận nhưng ghi là nộp muộn." in turn
    assert "Hạn tự đánh giá: ngày 30/11/2026 — đã quá hạn" in turn
    await declare_all(hoa)
    turn = await submit(hoa)
    if "Xác nhận" in " ".join(turn.choices):  # a confirmation before submitting
        turn = await hoa.taps(turn.choices[0])
    assert "Đã quá hạn tự đánh giá (ngày 30/11/2026): hồ sơ vẫn được nhận nhưng ghi là nộp muộn." in turn
    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission))
    assert submission.state == "submitted" and submission.late

    # The reviewer sees the mark; the resident's status shows only the deadline that matters now.
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xem CD-2026-000001")
    assert "⚠ Nộp muộn (sau hạn của xã)." in turn
    turn = await hoa.says("/trangthai")
    assert "Hạn chi hội bình xét: ngày 5/12/2026 — còn 2 ngày" in turn
    assert "Hạn tự đánh giá" not in turn.text


async def test_closed_policy_points_to_next_years_campaign(person, suite_app):
    # Registered and started (late, before the commune closed its season), not finished.
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await answer_items(hoa, 1)
    await _set_policy(suite_app, "closed")
    suite_app.clock.advance(TO_DEC_3)

    turn = await hoa.says("/tudanhgia")
    assert (
        "Hạn tự đánh giá năm 2026 đã hết vào ngày 30/11/2026, nên bot không nhận thêm.\n"
        "Đợt năm 2027: đăng ký từ ngày 11/12/2026 đến ngày 31/3/2027."
    ) in turn
    turn = await hoa.says("/trangthai")
    assert "Hạn tự đánh giá: ngày 30/11/2026 — đã quá hạn" in turn

    newcomer = person("moi")
    await newcomer.says("xin chào")
    turn = await newcomer.taps("Tôi đồng ý")
    assert "Hạn đăng ký năm 2026 đã hết vào ngày 31/3/2026, nên bot không nhận thêm." in turn
    assert "Đợt năm 2027: đăng ký từ ngày 11/12/2026 đến ngày 31/3/2027." in turn
    assert "Bạn muốn làm gì?" in turn  # back at the menu, not in a registration

    # Once the 2027 campaign has opened, registration goes into it.
    suite_app.clock.advance(timedelta(days=8))  # 11/12/2026
    turn = await newcomer.says("/dangky")
    assert "Bạn muốn đăng ký danh hiệu nào năm 2027?" in turn
    assert "Hạn đăng ký: ngày 31/3/2027 — còn 110 ngày" in turn


async def test_status_of_a_decided_application_shows_no_deadline(person, suite_app):
    hoa = person("hoa")
    await register_citizen(hoa)
    async with suite_app.sessions.begin() as session:
        await session.execute(update(Submission).values(state="approved"))
    turn = await hoa.says("/trangthai")
    assert "Đã được công nhận" in turn and "Hạn" not in turn.text


async def test_calendar_refuses_deadlines_out_of_order(person, suite_app):
    await staff(suite_app, "Trần Văn Cán", Role.OFFICER, "ea-tul", external_id="can")
    can = person("can")
    turn = await can.says("/lichnhac tudanhgia 31/12/2026")
    assert turn.replies[-1].text == (
        "Hạn tự đánh giá không thể sau Hạn chi hội bình xét (ngày 5/12/2026). Bạn chọn ngày khác nhé."
    )
    turn = await can.says("/lichnhac binhxet 1/3/2026")
    assert (
        turn.text == "Hạn chi hội bình xét không thể trước Hạn tự đánh giá (ngày 30/11/2026). Bạn chọn ngày khác nhé."
    )
    turn = await can.says("/lichnhac tudanhgia 2/12/2026")
    assert "• Hạn tự đánh giá: ngày 2/12/2026" in turn


async def test_init_says_what_it_changes_in_a_calendar(suite_app):
    commune_id = await _commune_id(suite_app)
    async with suite_app.sessions.begin() as session:
        camp = await campaign_for(session, commune_id, date(2026, 11, 20))
        from bot.storage.commune import deadlines_of

        for deadline in await deadlines_of(session, camp.id):
            if deadline.kind == "self_declaration":
                deadline.due_on = date(2026, 12, 2)  # moved in chat
    changes: list[str] = []
    async with suite_app.sessions.begin() as session:
        await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), suite_app.clock.now(), changes)
    assert changes == ["ea-tul 2026: self_declaration 2026-12-02 -> 2026-11-30"]
