"""Nobody reviews their own application: a leader or officer who is its subject, the household's
head, a member or the registrant cannot recommend, decide or ask for more — by direct command,
through the queue's buttons, or with a forged button — while colleagues still can."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.messages import choice_token
from bot.review.decisions import Decision, OwnApplication, decide
from bot.review.scope import scope_for
from bot.storage.models import HouseholdMember, Person, Submission, SubmissionEvent
from bot.storage.people import Role
from tests.support.chat import Person as ChatPerson
from tests.support.images import jpeg
from tests.support.journeys import Tap, register
from tests.support.review import declare_and_submit, make_staff


def own(reference: str) -> str:
    return (
        f"Bạn không thể xét hồ sơ {reference}: bạn là người trong hồ sơ này (người khai, chủ hộ, thành viên hoặc "
        "người đăng ký). Người khác trong chi hội hoặc xã sẽ xét hồ sơ này."
    )


async def _declare_and_submit(p: ChatPerson) -> None:
    await declare_and_submit(p, {0: jpeg((0, 90, 160))})


async def _staff_registers_citizen(staff: ChatPerson, branch: str) -> None:
    await staff.says("/dangky")
    turn = await register(staff, "Công dân học tập", "1980", branch)  # the name is known from their staff record
    assert "Đã đăng ký Công dân học tập" in turn, turn
    await _declare_and_submit(staff)


async def _link_member(app, member_name: str, person_name: str | None, reference: str) -> None:
    """An admin links (or unlinks) a household member to a person's record."""
    async with app.sessions.begin() as session:
        submission = await session.scalar(select(Submission).where(Submission.reference == reference))
        person_id = (
            await session.scalar(select(Person.id).where(Person.full_name == person_name)) if person_name else None
        )
        members = list(
            await session.scalars(
                select(HouseholdMember).where(HouseholdMember.household_id == submission.household_id)
            )
        )
        target = next((m for m in members if m.full_name == member_name), None)
        if target is None:
            target = HouseholdMember(
                household_id=submission.household_id,
                full_name=member_name,
                relation="other",
                position=len(members),
            )
            session.add(target)
        target.person_id = person_id


async def _events(app) -> list[SubmissionEvent]:
    async with app.sessions() as session:
        return list(await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id)))


async def test_a_leader_cannot_recommend_their_own_application(engine, person, suite_app):
    ken = await make_staff(engine, "ken", Role.LEADER, "buon-ken", "Y Ken")
    await _staff_registers_citizen(ken, "1")  # CD-2026-000001 in Buôn Ken, Y Ken's own
    events_before = await _events(suite_app)

    for command in ("/dexuat CD-2026-000001", "/khongdexuat CD-2026-000001 chưa đủ", "/yeucau CD-2026-000001 thêm ảnh"):
        turn = await ken.says(command)
        assert turn.text.startswith(own("CD-2026-000001")), (command, turn)
    # Through the queue: the application is listed and can be read, but offers no decision.
    turn = await ken.says("/binhxet")
    turn = await ken.taps(turn.choices[0])
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000001 — Công dân học tập\nNgười khai: Y Ken")
    assert turn.replies[-1].text == own("CD-2026-000001")
    assert turn.choices == ["Về danh sách", "Về menu"]
    # A forged decision button is not taken either.
    seq = turn.replies[-1].prompt_seq
    turn = await ken.presses_token(choice_token(seq, "d:recommend"))
    assert turn.replies[-1].text == own("CD-2026-000001")
    assert [e.id for e in await _events(suite_app)] == [e.id for e in events_before]  # nothing decided

    # The check lives where every decision is made, whichever way it is asked for.
    async with suite_app.sessions() as session:
        ken_id = await session.scalar(select(Person.id).where(Person.full_name == "Y Ken"))
        submission = await session.scalar(select(Submission))
        scope = await scope_for(session, ken_id, Role.LEADER)
        try:
            await decide(
                session,
                submission_id=submission.id,
                decision=Decision.RECOMMEND,
                role=Role.LEADER,
                scope=scope,
                actor_person_id=ken_id,
                note=None,
                now=suite_app.clock.now(),
            )
        except OwnApplication:
            pass
        else:
            raise AssertionError("a leader recommended their own application")

    # An officer of the commune reviews it as usual.
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/congnhan CD-2026-000001")
    await can.taps("Xác nhận")  # before the branch review: a reason
    turn = await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    assert turn.text.startswith("Đã công nhận hồ sơ CD-2026-000001 (Y Ken).")


async def test_an_officer_cannot_decide_a_household_they_registered_head_or_belong_to(engine, person, suite_app):
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    # Cán registers his father's household (he is the registrant, not the head).
    await can.says("/dangky")
    turn = await register(
        can, "Gia đình học tập", "1980", "2", Tap("Không"), "Trần Văn Cha", "1950", Tap("Không có ai khác")
    )
    assert "Đã đăng ký Gia đình học tập, mã hồ sơ GD-2026-000001" in turn
    await _declare_and_submit(can)

    # Hoa's household lists Cán's wife... and, linked by an admin, Cán himself as a member.
    hoa = person("hoa")
    await hoa.says("alo")
    await hoa.taps("Tôi đồng ý")
    await register(
        hoa,
        "Gia đình học tập",
        *("Nguyễn Thị Hoa", "1955", "2", Tap("Có")),  # Hoa, the head of the household
        *(Tap("Thêm thành viên"), "Trần Văn Cán", "1980", Tap("Con"), Tap("Đã đủ")),  # and her son Cán
    )
    await _declare_and_submit(hoa)  # GD-2026-000002
    async with suite_app.sessions.begin() as session:
        can_id = await session.scalar(select(Person.id).where(Person.full_name == "Trần Văn Cán"))
        await session.execute(
            update(HouseholdMember).where(HouseholdMember.full_name == "Trần Văn Cán").values(person_id=can_id)
        )
    # The head of a third household is the officer herself: Lan.
    lan = await make_staff(engine, "lan-officer", Role.OFFICER, "ea-tul", "Lê Thị Lan")
    await lan.says("/dangky")
    await register(lan, "Gia đình học tập", "1975", "3", Tap("Có"), Tap("Không có ai khác"))
    await _declare_and_submit(lan)  # GD-2026-000003

    for officer, reference in ((can, "GD-2026-000001"), (can, "GD-2026-000002"), (lan, "GD-2026-000003")):
        for command in (f"/congnhan {reference}", f"/tuchoi {reference} thiếu ảnh", f"/yeucau {reference} thêm ảnh"):
            turn = await officer.says(command)
            assert turn.text.startswith(own(reference)), (command, turn)
        turn = await officer.says(f"/xem {reference}")
        # No decision to take (moving on in the queue stays possible).
        assert turn.replies[-1].text == own(reference)
        assert [c for c in turn.choices if c not in ("Hồ sơ tiếp ▶", "◀ Hồ sơ trước")] == ["Về danh sách", "Về menu"]
    # Linked as a member while the application is open on screen: the buttons already shown
    # refuse, at the decision and at its confirmation.
    turn = await lan.says("/xem GD-2026-000002")
    assert "Công nhận" in turn.choices
    await _link_member(suite_app, "Lê Thị Lan", "Lê Thị Lan", "GD-2026-000002")
    turn = await lan.taps("Công nhận")
    assert turn.text.startswith(own("GD-2026-000002"))
    await _link_member(suite_app, "Lê Thị Lan", None, "GD-2026-000002")
    turn = await lan.says("/xem GD-2026-000002")
    turn = await lan.taps("Công nhận")
    assert turn.choices == ["Xác nhận", "Quay lại"]
    await _link_member(suite_app, "Lê Thị Lan", "Lê Thị Lan", "GD-2026-000002")
    turn = await lan.taps("Xác nhận")
    assert turn.text.startswith(own("GD-2026-000002"))
    await _link_member(suite_app, "Lê Thị Lan", None, "GD-2026-000002")

    # Colleagues decide: Lan on Cán's two, Cán on Lan's.
    for officer, reference in ((lan, "GD-2026-000001"), (lan, "GD-2026-000002"), (can, "GD-2026-000003")):
        await officer.says(f"/congnhan {reference}")
        await officer.taps("Xác nhận")  # before the branch review: a reason
        turn = await officer.says("Chi hội đã thống nhất, xã duyệt luôn")
        assert turn.text.startswith(f"Đã công nhận hồ sơ {reference}"), turn
    async with suite_app.sessions() as session:
        decided = sorted(
            (
                await session.execute(
                    select(Submission.reference, SubmissionEvent.actor_person_id)
                    .join(Submission, Submission.id == SubmissionEvent.submission_id)
                    .where(SubmissionEvent.to_state == "approved")
                )
            ).all()
        )
        lan_id = await session.scalar(select(Person.id).where(Person.full_name == "Lê Thị Lan"))
    assert decided == [("GD-2026-000001", lan_id), ("GD-2026-000002", lan_id), ("GD-2026-000003", can_id)]
