"""The outbox keeps no personal data beyond its use: digests are built from current data when they
are sent (someone who deleted their data in between is not in them), and a settled row keeps no
payload. `hoctap remind --dry-run --verbose` shows a digest exactly as it is then sent."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.base import SenderRegistry, TransientSendError, Unreachable
from bot.clock import FakeClock
from bot.domain.lifecycle import State
from bot.reminders.dispatch import Dispatcher
from bot.reminders.rounds import Rounds
from bot.storage.models import OutboxMessage
from bot.storage.people import Role
from tests.conftest import EXAMPLE_COMMUNE, make_app
from tests.support.reminders import RecordingSender, VirtualTimer, campaign, outbox, resident, staff, submission, vn
from tests.test_cli import hoctap


def _dispatcher(app, sender: RecordingSender) -> Dispatcher:
    registry = SenderRegistry()
    registry.register(sender)
    return Dispatcher(app, registry, worker_id="w1", timer=VirtualTimer(app.clock))


async def _branch(app) -> None:
    hoa = await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
    await submission(app, hoa, State.NEEDS_INFO, note="Xin bổ sung ảnh tủ sách.")
    mai = await resident(app, "Lê Thị Mai", external_id="mai")
    await submission(app, mai, State.DECLARING, answered=3)
    await staff(app, "Đinh Văn Lực", Role.LEADER, "thon-ha-luong", external_id="luc")


async def test_a_digest_is_built_when_sent_so_a_deleted_person_is_not_in_it(suite_app, person):
    app = suite_app
    await _branch(app)
    app.clock.set(vn(2026, 11, 23, 6, 0))  # Monday before seven: the digests wait for 07:30
    assert await Rounds(app).run_weekly() == 1
    [row] = await outbox(app)
    assert "Nguyễn Thị Hoa" not in str(row.payload) and "Lê Thị Mai" not in str(row.payload)

    hoa = person("hoa")
    await hoa.says("/xoadulieu")
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 0 ảnh).")

    app.clock.set(vn(2026, 11, 23, 7, 30))
    sender = RecordingSender()
    assert (await _dispatcher(app, sender).run_once()).sent == 1
    [digest] = sender.to("luc")
    assert "Nguyễn Thị Hoa" not in digest.text
    assert "Đang làm dở (1): Lê Thị Mai (CD-2026-000002, đã làm 3/10 mục)" in digest.text
    # Her application still counts, without a name anywhere.
    assert "• Cần bổ sung: 1" in digest.text and "Cần bổ sung (" not in digest.text
    [row] = await outbox(app)
    assert (row.status, row.payload) == ("sent", {})


async def test_settled_rows_keep_no_payload(suite_app):
    app = suite_app
    await _branch(app)
    nam = await resident(app, "Y Nam", external_id="nam")
    await submission(app, nam)
    camp = await campaign(app)
    app.clock.set(vn(2026, 11, 23, 8, 0))
    await Rounds(app).run_round(camp.id, "self_declaration", 7)
    assert {r.dedupe_key.split(":")[1] for r in await outbox(app)} == {"p1", "p2", "p4"}
    sender = RecordingSender()
    sender.fail("mai", Unreachable("blocked"))
    sender.fail("nam", TransientSendError("timeout"))
    await _dispatcher(app, sender).run_once()
    [hoa_text] = [d.text for d in sender.to("hoa")]
    assert hoa_text.startswith("Chào Nguyễn Thị Hoa!")
    rows = {r.dedupe_key.split(":")[1]: r for r in await outbox(app)}
    assert (rows["p1"].status, rows["p1"].payload) == ("sent", {})
    assert (rows["p2"].status, rows["p2"].payload) == ("unreachable", {})
    # Not settled: it is sent again later, so it keeps what it says.
    assert rows["p4"].status == "pending" and "Y Nam" in str(rows["p4"].payload)

    # A queued reminder whose deadline passes expires, and its text goes with it.
    app.clock.set(vn(2026, 12, 1, 8, 0))
    await _dispatcher(app, RecordingSender()).run_once()
    async with app.sessions() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.id == rows["p4"].id))
    assert (row.status, row.payload) == ("expired", {})


async def test_the_dry_run_shows_the_digest_exactly_as_it_is_sent(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    clock = FakeClock(vn(2026, 11, 20, 9, 0))
    app = await make_app(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", tmp_path, clock, commune=False)
    try:
        await _branch(app)
        done = hoctap(tmp_path, "remind", "--dry-run", "--at", "2026-11-23T07:30", "--days", "1", "--verbose")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "Weekly digests (next 2026-11-23 07:30): 1" in out
        clock.set(vn(2026, 11, 23, 7, 30))
        assert await Rounds(app).run_weekly() == 1
        sender = RecordingSender()
        await _dispatcher(app, sender).run_once()
        [sent] = sender.to("luc")
    finally:
        await app.close()
    shown = "\n".join("        " + line for line in sent.text.splitlines())
    assert "Cần bổ sung (1): Nguyễn Thị Hoa (CD-2026-000001)" in sent.text
    assert shown in out
