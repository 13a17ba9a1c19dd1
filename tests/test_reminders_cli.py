"""`hoctap remind` and `hoctap outbox` as an operator runs them (real subprocesses, a real SQLite file)."""

from __future__ import annotations

import pytest

from bot.clock import FakeClock
from bot.domain.lifecycle import State
from tests.conftest import EXAMPLE_COMMUNE, make_app
from tests.support.reminders import resident, submission, vn
from tests.test_cli import hoctap

# Real `hoctap` subprocesses: in the full run (./dev.sh test --full), not the fast pass.
pytestmark = pytest.mark.slow


async def _seed(tmp_path) -> None:
    app = await make_app(
        f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", tmp_path, FakeClock(vn(2026, 11, 20, 9, 0)), commune=False
    )
    try:
        hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
        await submission(app, hoa)
        mai = await resident(app, "Lê Thị Mai", external_id="mai", locale="en")
        await submission(app, mai, State.NEEDS_INFO, note="Thiếu ảnh giấy khen.")
    finally:
        await app.close()


async def test_dry_run_lists_who_gets_what_and_when_and_writes_nothing(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    await _seed(tmp_path)
    done = hoctap(tmp_path, "remind", "--dry-run", "--at", "2026-11-20T09:00", "--days", "10", "--verbose")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Reminders as of 2026-11-20 09:00 (Asia/Ho_Chi_Minh) — dry run, nothing is written" in out
    assert (
        "2026-11-23 08:00  Xã Ea Tul 2026 — self_declaration 2026-11-30, 7 days before: 2 reminder(s), 0 unreachable"
        in out
    )
    assert "2026-11-29 08:00  Xã Ea Tul 2026 — self_declaration 2026-11-30, 1 day before" in out
    assert "Nguyễn Thị Hoa" in out and "test:hoa" in out and "unfinished: CD-2026-000001" in out
    assert "needs_info: CD-2026-000002" in out
    assert "        Chào Nguyễn Thị Hoa! Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày)." in out
    assert "        Hello Lê Thị Mai! Self-assessment deadline: November 30, 2026 (7 days left)." in out
    assert hoctap(tmp_path, "outbox").stdout.strip() == "outbox is empty"


async def test_remind_queues_the_current_round_once(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    await _seed(tmp_path)
    first = hoctap(tmp_path, "remind", "--at", "2026-11-24T09:00")
    assert first.returncode == 0, first.stderr
    assert "self_declaration 2026-11-30, 7 days before: 2 reminder(s), 0 unreachable; queued 2 new" in first.stdout
    again = hoctap(tmp_path, "remind", "--at", "2026-11-24T10:00")
    assert "queued 0 new" in again.stdout and "queued 2 new" not in again.stdout
    status = hoctap(tmp_path, "outbox", "--problems")
    assert status.stdout.strip() == "no problems: nothing unconfirmed, failed or unreachable"  # only problems
    bad = hoctap(tmp_path, "remind", "--at", "tomorrow")
    assert bad.returncode == 2 and "not an ISO date-time" in bad.stderr
