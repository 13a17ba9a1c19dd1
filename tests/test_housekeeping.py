"""Periodic clean-up: orphan photo files (with a grace period), expired exports, leftovers of
delivered messages, and the photo retention rule (`hoctap retention [--dry-run]`, the scheduler's
jobs, what a reviewer then sees)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.ops.housekeeping import clean_files, orphan_photos
from bot.reminders.schedule import FILES_JOB, RETENTION_JOB, ReminderScheduler
from bot.review.retention import RETENTION_ACTOR, add_months
from bot.storage.models import ChannelAccount, Evidence, OutboxMessage, ProcessedMessage, SubmissionEvent
from bot.storage.people import Role
from tests.support.declaring import at_the_summary_with_one_photo
from tests.support.images import jpeg
from tests.support.invariants import check_invariants
from tests.support.review import chat, declare_and_submit, flow, make_staff, submit_citizen  # noqa: F401
from tests.support.scripts import register_citizen
from tests.test_cli import hoctap


def _age(path: Path, now: datetime, age: timedelta) -> None:
    stamp = (now - age).timestamp()
    os.utime(path, (stamp, stamp))


async def _evidence_paths(app) -> list[str]:
    async with app.sessions() as session:
        return list(await session.scalars(select(Evidence.path).order_by(Evidence.id)))


async def test_orphan_photos_go_after_a_grace_period(chat, app):
    hoa = chat("hoa")
    await at_the_summary_with_one_photo(hoa, jpeg((10, 20, 30)))
    # At the summary a photo is kept in the conversation until she says which item it is for.
    turn = await hoa.sends_photo(jpeg((40, 50, 60)))
    assert turn.text.startswith("Đã nhận ảnh. Ảnh này dùng cho mục nào?")
    [attached] = await _evidence_paths(app)
    store = app.evidence
    root = store.root
    held = next(p for p in root.rglob("*.jpg") if p.relative_to(root).as_posix() != attached)
    old_orphan = root / store.store(jpeg((70, 80, 90))).path  # a file no row refers to
    young_orphan = root / store.store(jpeg((90, 80, 70))).path  # perhaps a message still in flight
    leftover = old_orphan.parent / ".tmp-k2j4"  # a write cut short
    leftover.write_bytes(b"half a photo")
    foreign = root / "README.txt"  # not the store's: never touched
    foreign.write_text("evidence photos", encoding="utf-8")
    now = app.clock.now()
    for path in (root / attached, held, old_orphan, leftover, foreign):
        _age(path, now, timedelta(hours=2))
    _age(young_orphan, now, timedelta(minutes=30))

    assert await orphan_photos(app, dry_run=True) == 2
    assert old_orphan.is_file() and leftover.is_file()
    assert await orphan_photos(app) == 2
    assert not old_orphan.exists() and not leftover.exists()
    assert all(p.is_file() for p in (root / attached, held, young_orphan, foreign))

    # An hour later the young file is old enough; the held photo is still waiting for its item.
    app.clock.advance(timedelta(hours=1))
    assert await orphan_photos(app) == 1
    assert not young_orphan.exists() and held.is_file()
    turn = await hoa.says("3")
    assert "Đã gắn ảnh vào mục 3." in turn.text
    assert len(await _evidence_paths(app)) == 2
    assert await orphan_photos(app) == 0
    await check_invariants(app)


async def test_expired_exports_and_leftovers_of_delivered_messages_go(chat, flow, app, tmp_path):
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    first = next(r.document for r in (await can.says("/xuat hoso csv")).replies if r.document)
    second = next(r.document for r in (await can.says("/xuat thongke csv")).replies if r.document)
    now = app.clock.now()
    _age(first.parent, now, timedelta(hours=25))
    _age(second.parent, now, timedelta(hours=23))
    # Rows an older version left: a delivered reply still stored, a sent notice with its text.
    async with app.sessions.begin() as session:
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "can"))
        session.add(
            ProcessedMessage(
                channel="test",
                message_id="legacy-1",
                account_id=account.id,
                received_at=now,
                replies=[{"text": "Người khai: Nguyễn Thị Hoa"}],
                replied_at=now,
            )
        )
        session.add(
            OutboxMessage(
                dedupe_key="legacy:1",
                account_id=account.id,
                kind="decision",
                payload={"key": "notice.approved"},
                status="sent",
                not_before=now,
                sent_at=now,
                created_at=now,
            )
        )
    dry = await clean_files(app, dry_run=True)
    assert (dry.exports, dry.replies, dry.payloads) == (1, 1, 1) and first.is_file()
    done = await clean_files(app)
    assert (done.exports, done.replies, done.payloads) == (1, 1, 1)
    assert not first.exists() and not first.parent.exists() and second.is_file()
    async with app.sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(ProcessedMessage).where(ProcessedMessage.replies.is_not(None))
            )
            == 0
        )
        assert (await session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == "legacy:1"))).payload == {}
    assert (await clean_files(app)).exports == 0
    await check_invariants(app)


def test_months_are_added_to_the_calendar():
    from datetime import date

    assert add_months(date(2026, 12, 10), 12) == date(2027, 12, 10)
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)


@pytest.mark.slow  # real `hoctap` subprocesses
async def test_retention_removes_photos_of_decided_applications_after_the_report_deadline(chat, flow, app, tmp_path):
    hoa = chat("hoa")
    await submit_citizen(hoa)  # CD-2026-000001, one photo
    nam = chat("nam")
    await register_citizen(nam, name="Trần Văn Nam")  # CD-2026-000002, still waiting for review
    await declare_and_submit(nam, {0: jpeg((5, 6, 7))})
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/congnhan CD-2026-000001")
    await can.taps("Xác nhận")  # before the branch review: a reason
    turn = await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    assert "CD-2026-000001" in turn.text
    paths = await _evidence_paths(app)
    assert len(paths) == 2
    env = {"DATABASE_URL": app.settings.database_url, "EVIDENCE_DIR": str(app.settings.evidence_dir)}

    # The report deadline of 2026 is 10 Dec 2026: photos go from 10 Dec 2027 on.
    early = hoctap(tmp_path, "retention", "--dry-run", "--at", "2027-12-09T08:00", **env)
    assert early.returncode == 0, early.stderr
    assert (
        "Photo retention: photos of recognised and refused applications go 12 month(s) after the commune report deadline.\n    nothing is due"
        in early.stdout
    )
    dry = hoctap(tmp_path, "retention", "--dry-run", "--at", "2027-12-10T08:00", **env)
    assert dry.returncode == 0, dry.stderr
    assert (
        "    Xã Ea Tul (ea-tul) 2026: report deadline 2026-12-10, due since 2027-12-10: "
        "1 photo(s) of 1 application(s) would be removed"
    ) in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    assert "Nguyễn" not in dry.stdout and "Trần" not in dry.stdout and "CD-2026" not in dry.stdout
    assert await _evidence_paths(app) == paths

    done = hoctap(tmp_path, "retention", "--at", "2027-12-10T08:00", **env)
    assert done.returncode == 0, done.stderr
    assert "1 photo(s) of 1 application(s) removed" in done.stdout
    assert await _evidence_paths(app) == paths[1:]  # Nam's application is not decided: kept
    assert not (app.evidence.root / paths[0]).exists() and (app.evidence.root / paths[1]).is_file()
    async with app.sessions() as session:
        [event] = list(
            await session.scalars(select(SubmissionEvent).where(SubmissionEvent.actor_kind == RETENTION_ACTOR))
        )
    assert (event.from_state, event.to_state, event.note, event.actor_person_id) == ("approved", "approved", None, None)
    again = hoctap(tmp_path, "retention", "--at", "2027-12-11T08:00", **env)
    assert "nothing is due" in again.stdout

    # The reviewer is told why there is no photo, rather than seeing a missing one.
    turn = await can.says("/xem CD-2026-000001")
    assert "Ảnh minh chứng của hồ sơ này đã được xóa ngày 10/12/2027 theo quy định thời hạn lưu trữ." in turn.text
    assert "chưa có ảnh" not in turn.text.lower() and not [r for r in turn.replies if r.photo]
    history = [line for line in turn.text.split("Lịch sử")[-1].splitlines() if line[:2].isdigit()]
    assert history[-1] == "20/11/2026: Đã được công nhận (xã)"  # the removal is not a step of the application
    await check_invariants(app)

    off = hoctap(tmp_path, "retention", "--dry-run", "--at", "2030-01-01T08:00", PHOTO_RETENTION_MONTHS="0", **env)
    assert "Photo retention: off (PHOTO_RETENTION_MONTHS=0)." in off.stdout


async def test_the_scheduler_runs_the_clean_up_jobs(app):
    service = ReminderScheduler(app, paused=True)
    await service.start()
    try:
        jobs = {j.id: j for j in await service.jobs()}
    finally:
        await service.stop()
    assert FILES_JOB in jobs and RETENTION_JOB in jobs
    daily = jobs[RETENTION_JOB].next_run_time.astimezone(app.settings.tz)
    assert (daily.hour, daily.minute) == (3, 0)
