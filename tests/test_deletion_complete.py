"""/xoadulieu after a branch leader, a commune officer and a digest have seen the person: nothing
that identifies them is left in any table, in the evidence folder or in the exports folder."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from bot.channels.base import SenderRegistry
from bot.messages import Kind
from bot.reminders.dispatch import Dispatcher
from bot.reminders.rounds import Rounds
from bot.review.traces import Traces
from bot.storage.models import Base, Evidence, ProcessedMessage, Submission
from bot.storage.people import Role
from tests.support.images import jpeg
from tests.support.reminders import RecordingSender, VirtualTimer, campaign, vn
from tests.support.review import chat, declare_and_submit, flow, make_staff  # noqa: F401
from tests.support.scripts import register_citizen

NAME = "Nguyễn Thị Hoa"
YEAR = "1975"
PHOTOS = [jpeg((200, 30, 30)), jpeg((30, 200, 30))]


async def _declare_and_submit(p, photos: list[bytes]) -> None:
    await declare_and_submit(p, dict(enumerate(photos)))


def _dispatcher(app, sender: RecordingSender) -> Dispatcher:
    registry = SenderRegistry()
    registry.register(sender)
    return Dispatcher(app, registry, worker_id="w1", timer=VirtualTimer(app.clock))


async def _every_value(app) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null value of every table in the database."""
    found = []
    async with app.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(Base.metadata.tables) <= set(tables)
        for table in tables:
            result = await conn.execute(text(f'SELECT * FROM "{table}"'))
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=False):
                    if value is None:
                        continue
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        value = bytes(value).decode("utf-8", "replace")
                    elif not isinstance(value, str):
                        value = json.dumps(value, ensure_ascii=False, default=str)
                    found.append((table, column, value))
    return found


def _identifying(value: str, hashes: set[str]) -> list[str]:
    """What in `value` identifies the person: the name (as typed or JSON-escaped), the birth year
    as a number of its own, a photo's sha256."""
    hits = []
    if NAME in value or json.dumps(NAME)[1:-1] in value:
        hits.append("name")
    if re.search(rf"(?<!\w){YEAR}(?!\w)", value):
        hits.append("birth year")
    hits += [f"photo {h[:12]}" for h in hashes if h in value]
    return hits


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


async def test_nothing_identifying_survives_deletion(chat, flow, app, tmp_path):
    hoa = chat("hoa")
    await register_citizen(hoa, name=NAME, year=YEAR, branch="2")
    await _declare_and_submit(hoa, PHOTOS)
    nam = chat("nam")
    await register_citizen(nam, name="Trần Văn Nam", year="1980", branch="2")
    await _declare_and_submit(nam, [])
    luc = await make_staff(flow, "luc", Role.LEADER, "thon-ha-luong", "Đinh Văn Lực")
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    async with app.sessions() as session:
        hashes = set(await session.scalars(select(Evidence.sha256)))
    hashes |= {hashlib.sha256(photo).hexdigest() for photo in PHOTOS}
    assert len(hashes) >= 2

    # The branch leader looks at her application (name, birth year, photos) and quotes her name in
    # a request on someone else's.
    turn = await luc.says("/xem CD-2026-000001")
    assert f"Người khai: {NAME}, sinh năm {YEAR}" in turn.text and len([r for r in turn.replies if r.photo]) == 2
    turn = await luc.says(f"/yeucau CD-2026-000002 Ảnh giống ảnh của {NAME}, anh chụp lại giúp")
    assert "CD-2026-000002" in turn.text, turn
    # The officer looks too, exports the list, and opens the queue, whose buttons carry her name.
    turn = await can.says("/xem CD-2026-000001")
    assert NAME in turn.text
    turn = await can.says("/xuat hoso csv")
    [export] = [r.document for r in turn.replies if r.document]
    assert NAME in export.read_text(encoding="utf-8-sig")
    turn = await can.says("/duyet")
    assert any(NAME in label for label in turn.choices), turn
    # The leader asks her for more: she is now in the leader's digest.
    turn = await luc.says("/yeucau CD-2026-000001 Xin bổ sung ảnh mục 3")
    assert "CD-2026-000001" in turn.text, turn

    app.clock.set(vn(2026, 11, 23, 7, 30))  # Monday: the weekly digests
    assert await Rounds(app).run_weekly() == 2
    sender = RecordingSender()
    await _dispatcher(app, sender).run_once()
    [digest] = sender.to("luc")
    assert f"Cần bổ sung (2): {NAME} (CD-2026-000001), Trần Văn Nam (CD-2026-000002)" in digest.text
    assert sender.to("hoa")  # the request itself reached her
    # The digest before the branch review deadline is planned, and waits for its morning.
    app.clock.set(vn(2026, 11, 28, 8, 0))
    camp = await campaign(app)
    result = await Rounds(app).run_round(camp.id, "branch_review", 7)
    assert result.digests_queued == 1

    # The leader opens her application again and the reply never leaves: the process is cut off
    # between saving and sending, so the stored replies (name, photo paths) wait for a resend.
    async def cut_off(replies):
        raise ConnectionError("network down while replying")

    pending_view = luc._msg(Kind.TEXT, "luc-view-2", text="/xem CD-2026-000001")
    with pytest.raises(ConnectionError):
        await flow.process(pending_view, cut_off)
    async with app.sessions() as session:
        row = await session.scalar(select(ProcessedMessage).where(ProcessedMessage.message_id == "luc-view-2"))
        assert row.replied_at is None and NAME in json.dumps(row.replies, ensure_ascii=False)

    before = [(t, c) for t, c, v in await _every_value(app) if _identifying(v, hashes)]
    assert before, "the scenario should have spread her data around"

    await hoa.says("/xoadulieu")
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 2 ảnh).")

    # The planned digest goes out now: built from today's data, without her.
    app.clock.set(vn(2026, 11, 28, 8, 0))
    later = RecordingSender()
    await _dispatcher(app, later).run_once()
    [digest] = later.to("luc")
    assert NAME not in digest.text and "Trần Văn Nam (CD-2026-000002)" in digest.text
    # The interrupted reply is not resent with her in it.
    resent = []

    async def record(replies):
        resent.append(replies)

    again = await flow.process(pending_view, record)
    assert again.duplicate and again.replies == [] and resent == []

    leftovers = [(t, c, _identifying(v, hashes)) for t, c, v in await _every_value(app) if _identifying(v, hashes)]
    assert leftovers == []
    evidence = tmp_path / "evidence"
    for path in _files(evidence):
        assert not any(h in path.name for h in hashes), path
        assert hashlib.sha256(path.read_bytes()).hexdigest() not in hashes, path
    for path in _files(tmp_path / "exports"):
        content = path.read_bytes().decode("utf-8", "replace")
        assert _identifying(content, hashes) == [], path
    assert not export.exists()

    # What has to stay does: her application counts, without her, and Nam's request is readable.
    async with app.sessions() as session:
        subs = {s.reference: s for s in await session.scalars(select(Submission))}
    assert subs["CD-2026-000001"].anonymised_at is not None and subs["CD-2026-000001"].person_id is None
    turn = await nam.says("/trangthai")
    assert "Ảnh giống ảnh của …, anh chụp lại giúp" in turn.text
    # The officer's next tap on the old list is simply asked again, without her.
    turn = await can.says("1")
    assert turn.text == "Bạn bấm một nút hoặc trả lời số thứ tự nhé.\n\nKhông có hồ sơ nào chờ duyệt."


def test_copies_are_found_by_the_whole_name_only():
    photo = "ab" * 32
    traces = Traces([NAME, "Y Hoa", ""], [photo], [7])
    assert traces.found_in({"_choices": [["s1", f"CD-2026-000001 · {NAME} · Thôn Hà Lương"]]})
    assert traces.found_in([{"photo": f"evidence/ab/ab/{photo}.jpg"}])
    assert not traces.found_in({"note": "Y Hoang, Y Hoan, Nguyễn Thị Hoai"})
    assert traces.redact("Y Hoa và Y Hoang gửi cùng ảnh") == "… và Y Hoang gửi cùng ảnh"
    assert not Traces(["", " "], [], [])
