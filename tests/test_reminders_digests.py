"""Digests for branch leaders and officers (exact texts), the leader's one-tap reminder and the
officer's calendar command, as people use them in chat."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update

from bot.channels.base import SenderRegistry
from bot.domain.lifecycle import State
from bot.reminders.digests import build_digest
from bot.reminders.dispatch import Dispatcher
from bot.reminders.rounds import Rounds
from bot.storage.models import CampaignDeadline, ChannelAccount, OutboxMessage
from bot.storage.outbox import Deferred, Notice, render_notice
from bot.storage.people import MemberSpec, Role
from tests.support.reminders import RecordingSender, VirtualTimer, campaign, outbox, resident, staff, submission, vn

LEADER_VI = """\
Tổng hợp tuần — Thôn Hà Lương (ngày 23/11/2026)
Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày).

Hồ sơ theo trạng thái:
• Đã đăng ký: 3
• Đang tự đánh giá: 1
• Cần bổ sung: 1
• Đã nộp, chờ chi hội xét: 1

Chưa bắt đầu tự đánh giá (3): Nguyễn Thị Hoa (CD-2026-000001), Phạm Văn Khoa (GD-2026-000006), Y Bih (CD-2026-000005)
Đang làm dở (1): Lê Thị Mai (CD-2026-000002, đã làm 3/10 mục)
Cần bổ sung (1): Y Nam (CD-2026-000003)
Không nhắn được qua chat, cần đến tận nhà (2): Phạm Văn Khoa (chưa nhắn tin với bot), Y Bih (đã chặn bot)

Bạn bấm “Nhắc những người này” (hoặc gõ /nhacnho) để bot gửi lời nhắc cho người chưa xong."""

LEADER_EN_TAIL = """\
Not started (3): Nguyễn Thị Hoa (CD-2026-000001), Phạm Văn Khoa (GD-2026-000006), Y Bih (CD-2026-000005)
Not finished (1): Lê Thị Mai (CD-2026-000002, 3/10 items done)
Asked for more information (1): Y Nam (CD-2026-000003)
Cannot be reached in chat, please visit (2): Phạm Văn Khoa (has never written to the bot), Y Bih (blocked the bot)

Tap “Remind these members” (or type /remind) and the bot will remind those who have not finished."""

OFFICER_EN = """\
Weekly summary — Xã Ea Tul, 2026 (November 23, 2026)
Self-assessment deadline: November 30, 2026 (7 days left).

Applications by state:
• Registered: 3
• Self-assessment in progress: 1
• More information needed: 1
• Submitted, awaiting branch review: 1
• Recommended by the branch: 1
• Recognised: 1

Waiting for branch review: 1. Waiting for the commune: 1.

Against the targets:
• Learning citizen: recognised 1 of 5,840 adults (0%) — target 40% (2,336 adults). 6 adults registered.
• Learning family: recognised 0 of 2,310 households (0%) — target 70% (1,617 households). 2 households registered.

By branch:
• Buôn Ken: 2 registered, 2 submitted, 1 recognised
• Thôn Hà Lương: 6 registered, 1 submitted, 0 recognised
• Thôn Tân Lập: 0 registered, 0 submitted, 0 recognised
• Buôn Ea Kmát: 0 registered, 0 submitted, 0 recognised
• Thôn Trung Hòa: 0 registered, 0 submitted, 0 recognised

2 people who still have something to do cannot be reached in chat; their branch leaders have the names for a visit."""


async def _commune(app) -> None:
    """Thôn Hà Lương at every stage, two applications in Buôn Ken, a leader and an officer."""
    hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
    await submission(app, hoa)
    mai = await resident(app, "Lê Thị Mai", external_id="mai", locale="en")
    await submission(app, mai, State.DECLARING, answered=3)
    nam = await resident(app, "Y Nam", external_id="nam")
    await submission(app, nam, State.NEEDS_INFO)
    lan = await resident(app, "Trần Thị Lan", external_id="lan")
    await submission(app, lan, State.SUBMITTED)
    bih = await resident(app, "Y Bih", external_id="bih")
    await submission(app, bih)
    async with app.sessions.begin() as session:
        await session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.external_id == "bih")
            .values(unreachable_at=app.clock.now(), unreachable_reason="blocked")
        )
    khoa = await resident(app, "Phạm Văn Khoa", account=False)  # registered on paper by the leader
    await submission(app, khoa, title="gd", members=[MemberSpec("Phạm Thị Hạnh", 1980, "spouse")])
    dham = await resident(app, "Y Đhăm", "buon-ken", external_id="dham")
    await submission(app, dham, State.APPROVED)
    nga = await resident(app, "H'Nga Niê", "buon-ken", external_id="nga")
    await submission(app, nga, State.RECOMMENDED, title="gd")
    await staff(app, "Đinh Văn Lực", Role.LEADER, "thon-ha-luong", external_id="luc")
    await staff(app, "Trần Văn Cán", Role.OFFICER, "ea-tul", external_id="can", locale="en")


async def rendered_at(app, row: OutboxMessage, locale: str, at):
    """The digest row as the dispatcher builds it when sending at `at`, in `locale`."""
    deferred = Deferred.from_payload(row.payload)
    async with app.sessions() as session:
        notice = await build_digest(session, deferred.spec, catalog=app.catalog, settings=app.settings, at=at)
    return render_notice(notice, locale)


async def rendered(app, row: OutboxMessage, locale: str):
    return await rendered_at(app, row, locale, row.not_before)


async def test_weekly_digests_for_the_leader_and_the_officer(suite_app):
    app = suite_app
    await _commune(app)
    app.clock.set(vn(2026, 11, 23, 7, 30))  # Monday
    assert await Rounds(app).run_weekly() == 2
    assert await Rounds(app).run_weekly() == 0  # once a week, however often the job runs
    leader, officer = await outbox(app)
    assert leader.dedupe_key.startswith("digest:leader:") and leader.dedupe_key.endswith(":w2026-48")
    assert leader.not_before == vn(2026, 11, 23, 7, 30)
    # The row names nobody: it says which digest it is, and is built when it is sent.
    assert leader.payload == {
        "deferred": "digest",
        "spec": {
            "role": "leader",
            "unit": leader.payload["spec"]["unit"],
            "campaign": leader.campaign_id,
            "heading": "digest.heading_weekly",
        },
    }
    assert (await rendered(app, leader, "vi")).text == LEADER_VI
    assert [(c.value, c.label) for c in (await rendered(app, leader, "vi")).choices] == [
        ("cmd:nhacnho", "Nhắc những người này")
    ]
    assert (await rendered(app, leader, "en")).text.endswith(LEADER_EN_TAIL)
    assert (await rendered(app, officer, "en")).text == OFFICER_EN
    vi = (await rendered(app, officer, "vi")).text
    assert (
        "• Công dân học tập: Đã công nhận 1 trên 5.840 người (0%) — mục tiêu 40% (2.336 người). Đã đăng ký 6 người."
        in vi
    )
    assert "Chờ chi hội xét: 1. Chờ xã xét: 1." in vi
    assert [(c.value, c.label) for c in (await rendered(app, officer, "vi")).choices] == [
        ("cmd:lichnhac", "Xem lịch và hạn")
    ]

    # The dispatcher sends exactly that, in each reader's language, and keeps nothing of it.
    sender = RecordingSender()
    registry = SenderRegistry()
    registry.register(sender)
    report = await Dispatcher(app, registry, worker_id="w1", timer=VirtualTimer(app.clock)).run_once()
    assert report.sent == 2
    assert [d.text for d in sender.to("luc")] == [LEADER_VI]
    assert [d.text for d in sender.to("can")] == [OFFICER_EN]
    assert [(r.status, r.payload) for r in await outbox(app)] == [("sent", {}), ("sent", {})]


async def test_digests_before_the_branch_review_and_commune_report_deadlines(suite_app):
    app = suite_app
    await _commune(app)
    camp = await campaign(app)
    app.clock.set(vn(2026, 12, 4, 8, 0))
    result = await Rounds(app).run_round(camp.id, "branch_review", 1)
    assert (result.digests, result.digests_queued) == (1, 1)
    [digest] = [r for r in await outbox(app) if r.kind == "digest_leader"]
    assert digest.deadline_kind == "branch_review" and digest.offset_days == 1
    assert (await rendered(app, digest, "vi")).text.startswith(
        "Sắp đến hạn — Thôn Hà Lương (ngày 4/12/2026)\nHạn chi hội bình xét: ngày 5/12/2026 (còn 1 ngày).\n"
    )
    app.clock.set(vn(2026, 12, 9, 8, 0))
    await Rounds(app).run_round(camp.id, "commune_report", 1)
    [officer] = [r for r in await outbox(app) if r.kind == "digest_officer"]
    assert (await rendered(app, officer, "en")).text.startswith(
        "Deadline coming up — Xã Ea Tul, 2026 (December 9, 2026)\nCommune report deadline: December 10, 2026 (1 day left).\n"
    )


async def test_the_leader_taps_remind_and_exactly_those_members_get_one_reminder_a_day(person, suite_app):
    app = suite_app
    await _commune(app)
    app.clock.set(vn(2026, 11, 23, 9, 0))
    luc = person("luc")
    turn = await luc.presses_token("cmd:nhacnho")  # the button under the digest
    # His first message to the bot: the answer comes after the welcome (an automated assistant).
    assert turn.replies[0].text.startswith("Chào bạn! Mình là trợ lý tự động (chatbot)")
    assert turn.replies[-1].text == (
        "Đã gửi lời nhắc cho 3 người: Lê Thị Mai, Nguyễn Thị Hoa, Y Nam.\n"
        "2 người không nhắn được qua chat, bạn đến tận nhà giúp nhé: Phạm Văn Khoa, Y Bih."
    )
    rows = await outbox(app)
    assert sorted(r.dedupe_key.split(":")[1] for r in rows) == ["p1", "p2", "p3"]  # not Lan, not Buôn Ken
    assert {r.kind for r in rows} == {"nudge"} and all(r.dedupe_key.endswith(":2026-11-23") for r in rows)
    hoa = next(r for r in rows if r.dedupe_key.startswith("nudge:p1:"))
    assert render_notice(Notice.from_payload(hoa.payload), "vi").text == (
        "Chào Nguyễn Thị Hoa! Chi hội trưởng nhờ bot nhắc bạn.\n"
        "Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày).\n"
        "• CD-2026-000001 — Công dân học tập: chưa bắt đầu tự đánh giá.\n"
        "Bạn bấm “Làm tiếp” (hoặc gõ /tudanhgia) để làm tiếp nhé."
    )

    turn = await luc.says("/nhacnho")
    assert turn.text.startswith(
        "Hôm nay đã nhắc 3 người này rồi: Lê Thị Mai, Nguyễn Thị Hoa, Y Nam. Mỗi người chỉ nhận một lời nhắc mỗi ngày."
    )
    assert len(await outbox(app)) == 3

    # Late in the evening: queued for the morning, and that counts as the next day's reminder.
    app.clock.set(vn(2026, 11, 23, 22, 0))
    turn = await luc.says("/remind")
    assert turn.text.startswith(
        "Đã gửi lời nhắc cho 3 người: Lê Thị Mai, Nguyễn Thị Hoa, Y Nam.\n"
        "Ban đêm bot không gửi tin, nên lời nhắc sẽ đi lúc 07:00 sáng."
    )
    late = [r for r in await outbox(app) if r.dedupe_key.endswith(":2026-11-24")]
    assert len(late) == 3 and all(r.not_before == vn(2026, 11, 24, 7, 0) for r in late)


async def test_only_leaders_may_remind_and_only_their_own_branch(person, suite_app):
    app = suite_app
    await _commune(app)
    turn = await person("hoa").says("/nhacnho")
    assert turn.replies[-1].text.startswith("Lệnh này dành cho chi hội trưởng.")
    await staff(app, "Ama Hồng", Role.LEADER, "thon-tan-lap", external_id="hong", locale="en")
    turn = await person("hong").says("/remind")
    assert turn.replies[-1].text == "Nobody in your branch has anything left to do. Thank you!"
    assert await outbox(app) == []


async def test_officer_reads_and_changes_the_calendar(person, suite_app):
    app = suite_app
    await staff(app, "Trần Văn Cán", Role.OFFICER, "ea-tul", external_id="can")
    can = person("can")
    turn = await can.presses_token("cmd:lichnhac")
    assert turn.replies[-1].text == (
        "Lịch năm 2026 — Xã Ea Tul:\n"
        "• Hạn đăng ký: ngày 31/3/2026 — nhắc trước 30, 7, 1 ngày\n"
        "• Hạn tự đánh giá: ngày 30/11/2026 — nhắc trước 30, 7, 1 ngày\n"
        "• Hạn chi hội bình xét: ngày 5/12/2026 — nhắc trước 30, 7, 1 ngày\n"
        "• Hạn xã tổng hợp: ngày 10/12/2026 — nhắc trước 30, 7, 1 ngày\n"
        "Bot nhắc lúc 08:00, không gửi tin từ 21:00 đến 07:00.\n"
        "Đổi ngày hạn: /lichnhac tudanhgia 30/11/2026\n"
        "Đổi số ngày nhắc trước một hạn: /lichnhac tudanhgia 14 3 1\n"
        "Đổi cho mọi hạn: /lichnhac tatca 30 7 1\n"
        "Tên các hạn: dangky, tudanhgia, binhxet, tonghop."
    )
    turn = await can.says("/lichnhac binh xet 7 2")
    assert turn.text.startswith("Mình chưa hiểu.")  # "binh xet" is two words; nothing changed
    turn = await can.says("/lichnhac binhxet 7 2 2")
    assert turn.text.startswith("Đã lưu. Lịch nhắc sẽ cập nhật trong vòng 5 phút.\nLịch năm 2026 — Xã Ea Tul:")
    assert "• Hạn chi hội bình xét: ngày 5/12/2026 — nhắc trước 7, 2 ngày (riêng hạn này)" in turn
    turn = await can.says("/lichnhac tudanhgia 2/12/2026")
    assert "• Hạn tự đánh giá: ngày 2/12/2026 — nhắc trước 30, 7, 1 ngày" in turn
    turn = await can.says("/lichnhac tudanhgia 31/2/2026")
    assert turn.text == "Ngày “31/2/2026” chưa đúng. Bạn viết theo dạng 30/11/2026 nhé."
    turn = await can.says("/lichnhac tatca 400")
    assert turn.text.startswith("Số ngày nhắc trước là các số từ 0 đến 365")
    turn = await can.says("/lichnhac tatca 14 3")
    assert "• Hạn chi hội bình xét: ngày 5/12/2026 — nhắc trước 14, 3 ngày\n" in turn.text + "\n"
    camp = await campaign(app)
    async with app.sessions() as session:
        found = {
            d.kind: (d.due_on, d.reminder_offsets)
            for d in await session.scalars(select(CampaignDeadline).where(CampaignDeadline.campaign_id == camp.id))
        }
        assert found["self_declaration"] == (date(2026, 12, 2), None)
        assert found["branch_review"] == (date(2026, 12, 5), None)
    assert camp.reminder_offsets == [14, 3]


async def test_the_calendar_is_for_officers_only(person, suite_app):
    await staff(suite_app, "Đinh Văn Lực", Role.LEADER, "thon-ha-luong", external_id="luc")
    assert (await person("luc").says("/lichnhac tatca 1")).replies[-1].text == "Lệnh này dành cho cán bộ xã."
    resident_turn = await person("hoa").says("/calendar")
    assert resident_turn.replies[-1].text == "Lệnh này dành cho cán bộ xã."
    assert (await campaign(suite_app)).reminder_offsets == [30, 7, 1]


async def test_help_lists_staff_commands_to_staff_only(person, suite_app):
    await staff(suite_app, "Đinh Văn Lực", Role.LEADER, "thon-ha-luong", external_id="luc")
    leader_help = (await person("luc").says("/huongdan")).text
    assert "/nhacnho — nhắc người trong chi hội chưa làm xong (chi hội trưởng)" in leader_help
    assert "/lichnhac" not in leader_help
    assert "/nhacnho" not in (await person("hoa").says("/huongdan")).text
