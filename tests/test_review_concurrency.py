"""Two reviewers cannot both decide: the version each one looked at is checked, and the row's
version column stops a race at commit time. The second reviewer is told who decided what."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from bot.domain.lifecycle import Actor, State
from bot.review.decisions import Conflict, Decision, decide
from bot.review.scope import scope_for
from bot.storage.models import OutboxMessage, Submission, SubmissionEvent
from bot.storage.people import Role
from bot.storage.submissions import transition
from tests.support.review import chat, flow, grant_staff, make_staff, submit_citizen  # noqa: F401


async def test_two_officers_approve_at_once_one_wins(chat, flow, app):
    await submit_citizen(chat("hoa"))
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    binh = await make_staff(flow, "binh", Role.OFFICER, "ea-tul", "Phạm Thị Bình")
    for officer in (can, binh):
        await officer.says("/xem CD-2026-000001")
        await officer.taps("Công nhận")
        await officer.taps("Xác nhận")  # before the branch review: a reason

    first, second = await asyncio.gather(
        can.says("Chi hội đã thống nhất, xã duyệt luôn"), binh.says("Chi hội đã thống nhất, xã duyệt luôn")
    )
    texts = sorted([first.text, second.text])
    won = [t for t in texts if t.startswith("Đã công nhận hồ sơ CD-2026-000001")]
    lost = [t for t in texts if t.startswith("Hồ sơ CD-2026-000001 vừa thay đổi")]
    assert len(won) == 1 and len(lost) == 1, texts
    winner = "Trần Văn Cán" if first.text.startswith("Đã công nhận") else "Phạm Thị Bình"
    assert lost[0].startswith(
        f'Hồ sơ CD-2026-000001 vừa thay đổi: bây giờ là "Đã được công nhận" (do {winner}). '
        "Bạn xem lại trước khi quyết định nhé."
    )
    loser = binh if winner == "Trần Văn Cán" else can
    assert loser.last.replies[-1].text == 'Hồ sơ đang ở bước "Đã được công nhận": không có việc gì cần bạn quyết định.'

    async with app.sessions() as session:
        approvals = await session.scalar(
            select(func.count()).select_from(SubmissionEvent).where(SubmissionEvent.to_state == "approved")
        )
        notices = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert (approvals, notices) == (1, 1)


async def make_officer_person(app) -> int:
    return await grant_staff(app, "Trần Văn Cán", Role.OFFICER, "ea-tul")


async def officer_decides(
    app, session, scope, officer: int, submission_id: int, decision: Decision, version: int, note: str | None = None
) -> None:
    """The officer's decision straight through the review service, on the version they looked at."""
    await decide(
        session,
        submission_id=submission_id,
        decision=decision,
        role=Role.OFFICER,
        scope=scope,
        actor_person_id=officer,
        note=note,
        now=app.clock.now(),
        expected_version=version,
    )


async def test_a_decision_on_a_stale_view_is_refused(chat, flow, app):
    """The officer looked, the resident was then sent back by the leader and resubmitted:
    approving what the officer saw would approve something else."""
    await submit_citizen(chat("hoa"))
    officer = await make_officer_person(app)
    async with app.sessions() as session:
        submission = await session.scalar(select(Submission))
        seen_version = submission.version
    async with app.sessions.begin() as session:
        submission = await session.get(Submission, submission.id)
        await transition(
            session,
            submission,
            State.NEEDS_INFO,
            actor=Actor.BRANCH,
            actor_person_id=None,
            note="Thêm ảnh",
            now=app.clock.now(),
        )
        await transition(
            session,
            submission,
            State.SUBMITTED,
            actor=Actor.OWNER,
            actor_person_id=None,
            note=None,
            now=app.clock.now(),
        )
    async with app.sessions.begin() as session:
        scope = await scope_for(session, officer, Role.OFFICER)
        with pytest.raises(Conflict) as caught:
            await officer_decides(app, session, scope, officer, submission.id, Decision.APPROVE, seen_version)
        assert caught.value.submission.state == "submitted" and caught.value.last.to_state == "submitted"
    async with app.sessions() as session:
        assert (await session.get(Submission, submission.id)).state == "submitted"


async def test_version_column_stops_a_race_between_two_transactions(chat, flow, app):
    """Two open transactions both pass their checks; the second to write fails, nothing doubles.
    (PostgreSQL: SQLite's write lock already serialises whole transactions.)"""
    if app.settings.is_sqlite:
        pytest.skip("SQLite takes the write lock at BEGIN, so the two transactions cannot interleave")
    await submit_citizen(chat("hoa"))
    officer = await make_officer_person(app)
    first, second = app.sessions(), app.sessions()
    try:
        await first.begin()
        await second.begin()
        scope_a = await scope_for(first, officer, Role.OFFICER)
        scope_b = await scope_for(second, officer, Role.OFFICER)
        submission_id = await first.scalar(select(Submission.id))
        version = await first.scalar(select(Submission.version))
        await second.get(Submission, submission_id)  # both have read the same version
        await officer_decides(app, first, scope_a, officer, submission_id, Decision.APPROVE, version)
        await first.commit()
        with pytest.raises((StaleDataError, Conflict)):
            await officer_decides(
                app, second, scope_b, officer, submission_id, Decision.REJECT, version, note="Không đủ"
            )
            await second.flush()
        await second.rollback()
    finally:
        await first.close()
        await second.close()
    async with app.sessions() as session:
        states = [e.to_state for e in await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id))]
    assert states[-1] == "approved" and "rejected" not in states
