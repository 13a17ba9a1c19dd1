"""Reminder rounds: who is concerned by which deadline, the exact texts, offsets, quiet hours and
exactly-once planning (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update

from bot.domain.lifecycle import State
from bot.reminders.planner import audience
from bot.reminders.rounds import Collected, Rounds
from bot.reminders.timing import in_quiet_hours, moments_of, next_allowed
from bot.storage.commune import apply_commune, deadlines_of, parse_commune
from bot.storage.models import Campaign, ChannelAccount, OutboxMessage
from bot.storage.outbox import Notice, render_notice
from tests.conftest import EXAMPLE_COMMUNE
from tests.support.reminders import campaign, outbox, resident, submission, vn


def texts(row: OutboxMessage, locale: str = "vi") -> str:
    return render_notice(Notice.from_payload(row.payload), locale).text


async def _season(app):
    """Six residents of Thôn Hà Lương at different points, ten days before self-assessment closes."""
    hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
    await submission(app, hoa)  # registered, not started
    mai = await resident(app, "Lê Thị Mai", external_id="mai", locale="en")
    await submission(app, mai, State.DECLARING, answered=3)
    nam = await resident(app, "Y Nam", external_id="nam")
    await submission(app, nam, State.NEEDS_INFO, note="Xin bổ sung ảnh tủ sách cho mục 1.")
    lan = await resident(app, "Trần Thị Lan", external_id="lan")
    await submission(app, lan, State.SUBMITTED)  # waiting for review: nothing to do
    bih = await resident(app, "Y Bih", external_id="bih")
    await submission(app, bih)
    async with app.sessions.begin() as session:  # blocked the bot last week
        await session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.external_id == "bih")
            .values(unreachable_at=app.clock.now(), unreachable_reason="blocked")
        )
    khoa = await resident(app, "Phạm Văn Khoa", external_id="khoa")  # consented, never registered
    return hoa, mai, nam, lan, bih, khoa


async def test_a_round_reminds_exactly_the_people_concerned(app):
    await _season(app)
    camp = await campaign(app)
    app.clock.set(vn(2026, 11, 23, 8, 0))  # the 7-days-before round
    result = await Rounds(app).run_round(camp.id, "self_declaration", 7)
    assert (result.planned, result.queued, result.unreachable) == (4, 3, 1)

    rows = await outbox(app)
    by_who = {r.dedupe_key.split(":")[1]: r for r in rows}
    assert len(rows) == 3 and all(r.status == "pending" and r.not_before == vn(2026, 11, 23, 8, 0) for r in rows)
    assert {(r.kind, r.deadline_kind, r.offset_days) for r in rows} == {("reminder", "self_declaration", 7)}
    hoa, mai, nam = (by_who[k] for k in sorted(by_who))
    assert texts(hoa) == (
        "Chào Nguyễn Thị Hoa! Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày).\n"
        "• CD-2026-000001 — Công dân học tập: chưa bắt đầu tự đánh giá.\n"
        "Bạn bấm “Làm tiếp” (hoặc gõ /tudanhgia) để làm tiếp nhé."
    )
    assert texts(mai, "en") == (
        "Hello Lê Thị Mai! Self-assessment deadline: November 30, 2026 (7 days left).\n"
        "• CD-2026-000002 — Learning citizen: 7 items still to answer.\n"
        "Tap “Continue” (or type /declare) to carry on."
    )
    assert texts(nam) == (
        "Chào Y Nam! Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày).\n"
        "• CD-2026-000003 — Công dân học tập: cần bổ sung: Xin bổ sung ảnh tủ sách cho mục 1.\n"
        "Bạn bấm “Bổ sung hồ sơ” (hoặc gõ /tudanhgia) để bổ sung nhé."
    )
    choices = render_notice(Notice.from_payload(nam.payload), "vi").choices
    assert [(c.value, c.label) for c in choices] == [("cmd:tudanhgia", "Bổ sung hồ sơ"), ("cmd:trangthai", "Xem hồ sơ")]

    # The job runs again (a restart, a second scheduler, `hoctap remind` by hand): nothing new.
    again = await Rounds(app).run_round(camp.id, "self_declaration", 7)
    assert (again.planned, again.queued) == (4, 0)
    assert [r.id for r in await outbox(app)] == [r.id for r in rows]


async def test_a_household_and_two_titles_make_one_message(app):
    hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
    await submission(app, hoa, State.DECLARING, answered=9)
    await submission(app, hoa, State.DECLARING, answered=10, title="gd")
    camp = await campaign(app)
    app.clock.set(vn(2026, 11, 29, 8, 0))
    await Rounds(app).run_round(camp.id, "self_declaration", 1)
    [row] = await outbox(app)
    assert texts(row) == (
        "Chào Nguyễn Thị Hoa! Hạn tự đánh giá: ngày 30/11/2026 (còn 1 ngày).\n"
        "• CD-2026-000001 — Công dân học tập: còn 1 mục chưa trả lời.\n"
        "• GD-2026-000002 — Gia đình học tập: đã trả lời đủ, chỉ còn bấm “Nộp hồ sơ”.\n"
        "Bạn bấm “Làm tiếp” (hoặc gõ /tudanhgia) để làm tiếp nhé."
    )
    assert texts(row, "en").splitlines()[1] == "• CD-2026-000001 — Learning citizen: 1 item still to answer."


async def test_registration_round_reaches_last_years_people_who_have_not_registered(app):
    people = await _season(app)  # all registered in 2026 only
    camp_2027 = await campaign(app, 2027)
    app.clock.set(vn(2027, 3, 31, 8, 0))  # the deadline day itself (offset 0 added by the officer)
    async with app.sessions.begin() as session:
        c = await session.get(Campaign, camp_2027.id)
        c.reminder_offsets = [30, 7, 1, 0]
    await submission(app, people[0], year=2027)  # Hoa already registered for 2027
    result = await Rounds(app).run_round(camp_2027.id, "registration", 0)
    rows = await outbox(app)
    # Mai, Nam, Lan, Khoa — not Hoa (registered) nor Y Bih (blocked the bot).
    assert (result.planned, result.queued) == (5, 4)
    khoa = next(r for r in rows if texts(r).startswith("Chào Phạm Văn Khoa"))
    assert texts(khoa) == (
        "Chào Phạm Văn Khoa! Năm 2027 bạn chưa đăng ký “Công dân học tập” hay “Gia đình học tập”. "
        "Hạn đăng ký: hôm nay, ngày 31/3/2027, là ngày cuối.\n"
        "Bạn bấm “Đăng ký” (hoặc gõ /dangky) để bắt đầu nhé, chỉ mất vài phút."
    )
    assert texts(khoa, "en") == (
        "Hello Phạm Văn Khoa! You have not registered as a “Learning citizen” or “Learning family” for 2027 yet. "
        "Registration deadline: today, March 31, 2027, is the last day.\n"
        "Tap “Register” (or type /register) to start; it only takes a few minutes."
    )
    assert Notice.from_payload(khoa.payload).choices == [("cmd:dangky", "remind.button_register")]


async def test_needs_info_hears_only_about_the_nearest_deadline(app):
    await _season(app)
    camp = await campaign(app)
    app.clock.set(vn(2026, 11, 28, 8, 0))  # 7 days before branch review, 2 before self-assessment ends
    early = await Rounds(app).run_round(camp.id, "branch_review", 7)
    assert early.planned == 0  # Y Nam is reminded of the self-assessment deadline instead
    app.clock.set(vn(2026, 12, 4, 8, 0))
    late = await Rounds(app).run_round(camp.id, "branch_review", 1)
    assert late.planned == 1
    [row] = [r for r in await outbox(app) if r.kind == "reminder"]
    assert texts(row).startswith("Chào Y Nam! Hạn chi hội bình xét: ngày 5/12/2026 (còn 1 ngày).")


async def test_stale_and_passed_rounds_do_nothing(app):
    await _season(app)
    camp = await campaign(app)
    rounds = Rounds(app)
    app.clock.set(vn(2026, 11, 23, 8, 0))
    # The job was scheduled for a date an officer has since moved.
    assert await rounds.run_round(camp.id, "self_declaration", 7, due_on=date(2026, 11, 25)) is None
    # An offset no longer configured.
    assert await rounds.run_round(camp.id, "self_declaration", 14) is None
    # After the deadline.
    app.clock.set(vn(2026, 12, 1, 8, 0))
    assert await rounds.run_round(camp.id, "self_declaration", 1) is None
    assert await outbox(app) == []


async def test_a_round_that_runs_at_night_is_held_until_morning(app):
    await _season(app)
    camp = await campaign(app)
    # The scheduler was down at 08:00 and the late job runs at 22:30.
    app.clock.set(vn(2026, 11, 23, 22, 30))
    await Rounds(app).run_round(camp.id, "self_declaration", 7, planned_at=vn(2026, 11, 23, 8, 0))
    rows = await outbox(app)
    assert rows and all(r.not_before == vn(2026, 11, 24, 7, 0) for r in rows)
    # Days left are counted from the morning it goes out.
    assert "(còn 6 ngày)" in texts(rows[0])


async def test_dry_run_computes_everything_and_writes_nothing(app):
    await _season(app)
    camp = await campaign(app)
    app.clock.set(vn(2026, 11, 23, 8, 0))
    seen = Collected()
    result = await Rounds(app).run_round(camp.id, "self_declaration", 7, dry_run=True, collect=seen)
    assert (result.planned, result.queued) == (4, 0)
    assert sorted(p.name for p in seen.reminders) == ["Lê Thị Mai", "Nguyễn Thị Hoa", "Y Bih", "Y Nam"]
    assert [p.reach.unreachable_reason for p in seen.reminders if not p.reach.reachable] == ["blocked"]
    assert await outbox(app) == []


def test_offsets_per_deadline_and_quiet_hours(tmp_path):
    from bot.config import load_settings

    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    text = EXAMPLE_COMMUNE.read_text(encoding="utf-8")
    spec = parse_commune(
        text.replace("branch_review: 2026-12-05", "branch_review: {date: 2026-12-05, reminder_offsets: [2, 7, 7]}"),
        "x.yaml",
    )
    assert spec.campaigns[0].deadline_specs()["branch_review"].reminder_offsets == [7, 2]

    class C:  # a campaign and its deadlines as stored
        id, reminder_offsets = 1, [30, 7, 1]

    class D:
        def __init__(self, kind, due_on, offsets=None):
            self.kind, self.due_on, self.reminder_offsets = kind, due_on, offsets

    moments = moments_of(
        C, [D("self_declaration", date(2026, 11, 30)), D("branch_review", date(2026, 12, 5), [7, 2])], settings
    )
    assert [(m.deadline_kind, m.offset, m.at) for m in moments] == [
        ("self_declaration", 30, vn(2026, 10, 31, 8, 0)),
        ("self_declaration", 7, vn(2026, 11, 23, 8, 0)),
        ("branch_review", 7, vn(2026, 11, 28, 8, 0)),
        ("self_declaration", 1, vn(2026, 11, 29, 8, 0)),
        ("branch_review", 2, vn(2026, 12, 3, 8, 0)),
    ]
    assert moments[0].job_id == "remind:1:self_declaration:30"

    assert not in_quiet_hours(vn(2026, 11, 23, 20, 59), settings)
    assert in_quiet_hours(vn(2026, 11, 23, 21, 0), settings)
    assert in_quiet_hours(vn(2026, 11, 24, 6, 59), settings)
    assert not in_quiet_hours(vn(2026, 11, 24, 7, 0), settings)
    assert next_allowed(vn(2026, 11, 23, 22, 30), settings) == vn(2026, 11, 24, 7, 0)
    assert next_allowed(vn(2026, 11, 24, 3, 0), settings) == vn(2026, 11, 24, 7, 0)
    assert next_allowed(vn(2026, 11, 24, 9, 0), settings) == vn(2026, 11, 24, 9, 0)


async def test_commune_file_offsets_reach_the_database(app):
    text = EXAMPLE_COMMUNE.read_text(encoding="utf-8").replace(
        "branch_review: 2026-12-05", "branch_review: {date: 2026-12-06, reminder_offsets: [7, 2]}"
    )
    async with app.sessions.begin() as session:
        await apply_commune(session, parse_commune(text, "x.yaml"), app.clock.now())
    camp = await campaign(app)
    async with app.sessions() as session:
        found = {d.kind: (d.due_on, d.reminder_offsets) for d in await deadlines_of(session, camp.id)}
    assert found["branch_review"] == (date(2026, 12, 6), [7, 2])
    assert found["self_declaration"] == (date(2026, 11, 30), None)


def test_which_deadline_concerns_whom():
    class D:
        def __init__(self, kind, due_on):
            self.kind, self.due_on = kind, due_on

    deadlines = [
        D("registration", date(2026, 3, 31)),
        D("self_declaration", date(2026, 11, 30)),
        D("branch_review", date(2026, 12, 5)),
        D("commune_report", date(2026, 12, 10)),
    ]
    today = date(2026, 11, 20)
    assert audience(deadlines[0], deadlines, today) == ["not_registered"]
    assert audience(deadlines[1], deadlines, today) == ["unfinished", "needs_info"]
    assert audience(deadlines[2], deadlines, today) == []
    assert audience(deadlines[2], deadlines, date(2026, 12, 1)) == ["needs_info"]
    assert audience(deadlines[3], deadlines, date(2026, 12, 1)) == []
