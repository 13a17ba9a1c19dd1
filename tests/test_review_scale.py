"""Issue 16: review that scales — exports that arrive and that an officer can file, statistics
stated with their base, evidence complete and checked, the two review levels, queue navigation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import build_app
from bot.config import load_settings
from bot.storage.commune import apply_commune, load_commune_file
from bot.storage.models import OrgUnit, Person
from bot.storage.people import Role
from tests.conftest import EXAMPLE_COMMUNE, TEST_SIGNING_SECRET, TEST_TOKEN_KEY
from tests.fakes.telegram_bot_api import FakeUser
from tests.support.review import declare_and_submit, grant_staff
from tests.support.telegram import TgPerson, fake, start_polling_bot  # noqa: F401  (fake: a fixture)

# ---- 1. an export asked for in Telegram arrives with the default (relative) folders -----------


async def test_export_arrives_on_telegram_with_the_default_relative_folders(tmp_path, clock, fake, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as `./dev.sh run` runs: EVIDENCE_DIR=./evidence, exports beside it
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hoctap.db'}",
        signing_secret=TEST_SIGNING_SECRET,
        token_encryption_key=TEST_TOKEN_KEY,
    )
    assert not Path(settings.evidence_dir).is_absolute()
    app = await build_app(settings, clock)
    try:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), clock.now())
        await grant_staff(app, "Trần Văn Cán", Role.OFFICER, "ea-tul", channel="telegram", user_id="2001")
        bot = await start_polling_bot(app, fake)
        try:
            can = TgPerson(fake, bot.channel, FakeUser(2001, "Can"))
            await can.says("xin chào")
            await can.taps("Tôi đồng ý")
            # Exports and the chart run in worker threads; a loaded test machine may take a while.
            turn = await can.deliver(lambda: fake.send_text(can.user, "/xuat hoso xlsx"), timeout=90)
            documents = [m for m in turn.messages if m.kind == "document"]
            assert len(documents) == 1, turn
            assert documents[0].filename == "submissions-ea-tul-2026.xlsx"
            assert documents[0].text == "Danh sách hồ sơ — Xã Ea Tul, năm 2026: 0 dòng."
            workbook = load_workbook(io.BytesIO(documents[0].data), read_only=True)
            assert workbook.worksheets
            turn = await can.deliver(lambda: fake.send_text(can.user, "/thongke"), timeout=90)
            assert [m.kind for m in turn.messages][0] == "photo", turn
        finally:
            await bot.stop()
    finally:
        await app.close()


# ---- 3. the chart: registered, sent and recognised per branch against the target ---------------


async def test_chart_shows_registered_sent_and_recognised_against_the_target(app):
    from bot.i18n import get_translator
    from bot.review.chart import progress_figure
    from bot.review.stats import commune_stats
    from tests.test_review_exports import STATS_ROWS, seed

    await seed(app)
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        stats = await commune_stats(session, app.catalog, commune, 2026)
    t = get_translator("vi")
    figure = progress_figure(stats, {"gd": "Gia đình học tập", "cd": "Công dân học tập"}, t)
    family, citizen = figure.axes
    assert family.get_title(loc="left") == "Gia đình học tập" and citizen.get_title(loc="left") == "Công dân học tập"
    assert [label.get_text() for label in family.get_yticklabels()] == STATS_ROWS
    series = {container.get_label(): [bar.get_width() for bar in container] for container in citizen.containers}
    assert list(series) == ["Đã đăng ký", "Đã nộp", "Đã công nhận"]
    # Buôn Ken (1,030 adults): two registered and sent, none recognised; the commune: 5 / 5 / 3 of 5,840.
    assert series["Đã đăng ký"][0] == pytest.approx(200 / 1030) and series["Đã công nhận"][0] == 0
    assert [series[name][-1] for name in series] == pytest.approx([500 / 5840, 500 / 5840, 300 / 5840])
    targets = [line for line in citizen.get_lines() if line.get_linestyle() == "--"]
    assert len(targets) == 1 and list(targets[0].get_xdata()) == [40, 40]
    legend = [text.get_text() for text in citizen.get_legend().get_texts()]
    assert legend == ["Chỉ tiêu: 40%", "Đã đăng ký", "Đã nộp", "Đã công nhận"]
    labels = [text.get_text() for text in citizen.texts]
    assert "3 (0,1%)" in labels and "2 (0,2%)" in labels  # Vietnamese numbers on the bars
    assert figure.get_figwidth() * figure.dpi == 1000


# ---- 4. removing a role; the first command after the privacy notice -------------------------


async def test_a_new_officers_first_command_is_carried_out_after_consent(engine, suite_app):
    from tests.support.chat import Person as ChatPerson

    await grant_staff(suite_app, "Trần Văn Cán", Role.OFFICER, "ea-tul", user_id="can")
    can = ChatPerson(engine, "can")
    turn = await can.says("/duyet")
    assert "Tôi đồng ý" in turn.choices  # the privacy notice first
    turn = await can.taps("Tôi đồng ý")
    # Not the menu: the queue they asked for.
    assert turn.text == "Cảm ơn bạn đã đồng ý.\n\nKhông có hồ sơ nào chờ duyệt." and turn.choices == ["Lọc", "Về menu"]


async def test_an_officer_removes_a_leaders_role_and_it_is_recorded(engine, suite_app):
    from bot.storage.models import RoleGrant
    from tests.support.review import make_staff

    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    lan = await make_staff(engine, "lan", Role.LEADER, "buon-ken", "H'Lan Êban")
    turn = await lan.says("/binhxet")
    assert "Không có quyền" not in turn.text
    turn = await can.says("/thuhoi")
    assert turn.text == "Thu hồi quyền của ai?"
    assert turn.choices == ["H'Lan Êban — chi hội trưởng Buôn Ken", "Về menu"]  # not the officer's own
    turn = await can.taps("H'Lan Êban — chi hội trưởng Buôn Ken")
    assert turn.text.startswith("Thu hồi quyền: H'Lan Êban — chi hội trưởng Buôn Ken?")
    assert turn.choices == ["Thu hồi", "Không, giữ nguyên"]
    turn = await can.taps("Thu hồi")
    assert turn.replies[0].text == "Đã thu hồi quyền chi hội trưởng của H'Lan Êban. Việc này đã được ghi lại."
    async with suite_app.sessions() as session:
        officer = await session.scalar(select(Person).where(Person.full_name == "Trần Văn Cán"))
        grant = await session.scalar(select(RoleGrant).where(RoleGrant.role == "leader"))
    assert grant.revoked_at == suite_app.clock.now() and grant.revoked_by_person_id == officer.id
    turn = await lan.says("/binhxet")
    assert turn.text.startswith("Lệnh này dành cho chi hội trưởng."), turn
    turn = await can.says("/thuhoi")
    assert turn.text.startswith("Không có quyền nào để thu hồi")
    turn = await lan.says("/thuhoi")
    assert "Thu hồi quyền của ai?" not in turn.text  # a leader (now resident) may not


# ---- 5. /xem: every photo in item order, members, long notes, evidence gaps ------------------


async def _add_photos(app, reference: str, items: list[str]) -> None:
    """Photos attached straight in the database (the resident's side is tested elsewhere), in the
    order given: the upload order, deliberately not the items' order."""
    from bot.storage.models import Evidence, Submission
    from tests.support.images import jpeg

    async with app.sessions.begin() as session:
        submission = await session.scalar(select(Submission).where(Submission.reference == reference))
        for index, item in enumerate(items):
            blob = app.evidence.store(jpeg((index * 9 % 256, 40, 200 - index * 5), size=(80 + index, 60)))
            stored = {name: getattr(blob, name) for name in ("sha256", "path", "size", "mime", "width", "height")}
            session.add(Evidence(submission_id=submission.id, item_id=item, created_at=app.clock.now(), **stored))


def _captions(turn) -> list[str]:
    return [reply.text for reply in turn.replies if reply.photo is not None]


async def test_a_reviewer_pages_through_25_photos_in_item_order(engine, person, suite_app):
    from tests.support.review import make_staff, submit_citizen

    hoa = person("hoa")
    await submit_citizen(hoa)  # item 1 has one photo
    await _add_photos(
        suite_app, "CD-2026-000001", [i for i in ("10", "9", "7", "6", "5", "4", "3", "2") for _ in range(3)]
    )
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xem CD-2026-000001")
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000001")
    first = _captions(turn)
    assert first == ["Ảnh minh chứng mục 1 (1/25)"] + [
        f"Ảnh minh chứng mục {item} ({n}/25)"
        for n, item in zip(range(2, 11), ["2", "2", "2", "3", "3", "3", "4", "4", "4"], strict=False)
    ]
    assert "Xem thêm ảnh (11–20/25)" in turn.choices and "Còn" not in turn.text
    turn = await can.taps("Xem thêm ảnh (11–20/25)")
    assert not turn.replies[0].text.startswith("Hồ sơ")  # only the photos, not the whole file again
    second = _captions(turn)
    assert [c.split(" (")[0][-2:].strip() for c in second] == ["5", "5", "5", "6", "6", "6", "7", "7", "7", "9"]
    assert second[0].endswith("(11/25)") and second[-1].endswith("(20/25)")
    turn = await can.taps("Xem thêm ảnh (21–25/25)")
    assert _captions(turn) == [
        "Ảnh minh chứng mục 9 (21/25)",
        "Ảnh minh chứng mục 9 (22/25)",
        "Ảnh minh chứng mục 10 (23/25)",
        "Ảnh minh chứng mục 10 (24/25)",
        "Ảnh minh chứng mục 10 (25/25)",
    ]
    assert not any(c.startswith("Xem thêm ảnh") for c in turn.choices)
    assert "Công nhận" in turn.choices  # still deciding on the same application


async def test_gaps_in_evidence_are_shown_to_the_resident_and_the_reviewer(engine, person, suite_app):
    from bot.storage.models import Answer, Submission
    from tests.support.declaring import at_the_summary_with_one_photo
    from tests.support.images import jpeg
    from tests.support.review import make_staff

    hoa = person("hoa")
    turn = await at_the_summary_with_one_photo(hoa, jpeg((0, 100, 200)))
    # The summary before sending says which items lack a photo (item 8 asks for none).
    assert "Chưa có ảnh minh chứng cho mục 2, 3, 4, 5, 6, 7, 9, 10." in turn.text, turn
    assert "Nộp hồ sơ" in turn.choices
    long_note = "Tham gia lớp tin học buổi tối ở nhà văn hóa thôn. " * 9
    async with suite_app.sessions.begin() as session:
        submission = await session.scalar(select(Submission))
        answers = {
            a.item_id: a for a in await session.scalars(select(Answer).where(Answer.submission_id == submission.id))
        }
        answers["2"].note = long_note.strip()
    await hoa.taps("Nộp hồ sơ")
    await hoa.taps("Nộp ngay")
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xem CD-2026-000001")
    text = turn.replies[0].text
    assert text.count("⚠ Tự đánh giá đạt nhưng chưa có ảnh minh chứng.") == 8  # 2, 3, 4, 5, 6, 7, 9, 10
    assert long_note.strip() not in text and "Đọc ghi chú đầy đủ" in turn.choices
    turn = await can.taps("Đọc ghi chú đầy đủ")
    assert turn.replies[0].text == "Ghi chú mục 2:\n" + long_note.strip()
    assert "Công nhận" in turn.choices


async def test_a_households_members_are_listed_for_the_reviewer(app):
    from bot.domain.lifecycle import Actor, State
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router
    from bot.storage.models import Answer
    from bot.storage.people import MemberSpec
    from bot.storage.submissions import transition
    from tests.support.records import household_headed_by, register
    from tests.support.review import make_staff

    now = app.clock.now()
    async with app.sessions.begin() as session:
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "buon-ken"))
        members = [MemberSpec("H'Nga Niê", 1962, "spouse"), MemberSpec("Y Sao Niê", 2012, "child")]
        head, household = await household_headed_by(session, branch, "Y Bih Niê", 1958, members, now)
        submission = await register(session, app.catalog.for_title("gd", 2026), branch, head, now, household=household)
        await transition(
            session, submission, State.DECLARING, actor=Actor.OWNER, actor_person_id=head.id, note=None, now=now
        )
        session.add(
            Answer(submission_id=submission.id, item_id="1.3", level="not_applicable", points=10, answered_at=now)
        )
        await transition(
            session, submission, State.SUBMITTED, actor=Actor.OWNER, actor_person_id=head.id, note=None, now=now
        )
    can = await make_staff(FlowEngine(app, build_router()), "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xem GD-2026-000001")
    lines = turn.replies[0].text.split("\n")
    at = lines.index("Chủ hộ: Y Bih Niê — 3 người — Buôn Ken")
    assert lines[at + 1 : at + 4] == [
        "   • Y Bih Niê, 1958 — Chủ hộ",
        "   • H'Nga Niê, 1962 — Vợ/chồng",
        "   • Y Sao Niê, 2012 — Con",
    ]
    at = next(i for i, line in enumerate(lines) if line.startswith("1.3. "))
    assert "Không áp dụng" in lines[at] and lines[at + 1] == "   ⚠ Trả lời “Không áp dụng”: xem lại với gia đình."


# ---- 6. a photo used twice is flagged ---------------------------------------------------------


def _picture(seed: int, quality: int = 90, size: tuple[int, int] = (640, 480)) -> bytes:
    """A photo-like picture: patches of colour laid out by `seed` (another seed, another picture)."""
    import random

    from PIL import Image

    chance = random.Random(seed)
    small = Image.new("RGB", (16, 12))
    small.putdata([(chance.randrange(256), chance.randrange(256), chance.randrange(256)) for _ in range(16 * 12)])
    buffer = io.BytesIO()
    small.resize((640, 480), Image.Resampling.BICUBIC).resize(size).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _scene(quality: int = 90, size: tuple[int, int] = (640, 480)) -> bytes:
    return _picture(1, quality, size)


def _other_scene() -> bytes:
    return _picture(2)


async def _declare_with(p, photos: dict[int, bytes], name: str) -> None:
    from tests.support.scripts import register_citizen

    await register_citizen(p, name=name)
    await declare_and_submit(p, photos)


async def test_a_photo_used_twice_is_flagged_to_reviewers(engine, person, suite_app):
    from PIL import Image

    from bot.images import dhash, hamming
    from tests.support.review import make_staff

    # The near copy: the same scene, smaller and saved again at a lower quality.
    near = _scene(quality=60, size=(480, 360))
    with (
        Image.open(io.BytesIO(_scene())) as a,
        Image.open(io.BytesIO(near)) as b,
        Image.open(io.BytesIO(_other_scene())) as c,
    ):
        assert hamming(dhash(a), dhash(b)) <= 3 and hamming(dhash(a), dhash(c)) > 20
    await _declare_with(person("hoa"), {0: _scene(), 1: _scene(), 2: _other_scene()}, "Nguyễn Thị Hoa")
    await _declare_with(person("lan"), {3: near}, "Lê Thị Lan")
    await _declare_with(person("ba"), {0: _other_scene()}, "Trần Văn Ba")
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")

    text = (await can.says("/xem CD-2026-000001")).replies[0].text
    at = text.split("\n").index("⚠ Ảnh dùng lại:")
    assert text.split("\n")[at + 1 : at + 5] == [
        "   • Ảnh mục 2 cũng là ảnh mục 1 của hồ sơ này.",
        "   • Ảnh mục 1 gần giống ảnh trong hồ sơ CD-2026-000002 (mục 4) của người khác.",
        "   • Ảnh mục 2 gần giống ảnh trong hồ sơ CD-2026-000002 (mục 4) của người khác.",
        "   • Ảnh mục 3 cũng có trong hồ sơ CD-2026-000003 (mục 1) của người khác.",
    ]
    text = (await can.says("/xem CD-2026-000002")).replies[0].text
    lines = text.split("\n")
    assert lines[lines.index("⚠ Ảnh dùng lại:") + 1 :][:2] == [
        "   • Ảnh mục 4 gần giống ảnh trong hồ sơ CD-2026-000001 (mục 1) của người khác.",
        "   • Ảnh mục 4 gần giống ảnh trong hồ sơ CD-2026-000001 (mục 2) của người khác.",
    ]
    lines = (await can.says("/xem CD-2026-000003")).replies[0].text.split("\n")
    assert lines[lines.index("⚠ Ảnh dùng lại:") + 1 :][:1] == [
        "   • Ảnh mục 1 cũng có trong hồ sơ CD-2026-000001 (mục 3) của người khác.",
    ]


async def test_plain_pictures_are_not_taken_for_copies(app):
    from bot.review.reuse import _same

    # One colour each: their hashes are all zeros and say nothing; only the same file counts.
    assert _same("a" * 64, "0" * 16, "b" * 64, "0" * 16) is None
    assert _same("a" * 64, "0" * 16, "a" * 64, "0" * 16) is True


# ---- 7. working through the queue -------------------------------------------------------------


async def test_a_reviewer_works_through_the_queue_with_next_previous_and_common_reasons(engine, person, suite_app):
    from bot.storage.models import Submission, SubmissionEvent
    from tests.support.review import make_staff, submit_citizen

    for user, name in (("hoa", "Nguyễn Thị Hoa"), ("lan", "Lê Thị Lan"), ("ba", "Trần Văn Ba")):
        await submit_citizen(person(user), name=name)
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/duyet")
    turn = await can.taps(next(c for c in (await can.says("/duyet")).choices if c.startswith("CD-2026-000001")))
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000001")
    assert "Hồ sơ tiếp ▶" in turn.choices and "◀ Hồ sơ trước" not in turn.choices
    turn = await can.taps("Hồ sơ tiếp ▶")
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000002")
    assert {"Công nhận", "Không công nhận", "Yêu cầu bổ sung", "Hồ sơ tiếp ▶", "◀ Hồ sơ trước"} <= set(turn.choices)
    turn = await can.taps("◀ Hồ sơ trước")
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000001")
    turn = await can.taps("Hồ sơ tiếp ▶")
    turn = await can.taps("Hồ sơ tiếp ▶")
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000003") and "Hồ sơ tiếp ▶" not in turn.choices
    # Asking for more: a common reason is one tap.
    turn = await can.taps("Yêu cầu bổ sung")
    assert turn.choices[:3] == [
        "Xin gửi thêm ảnh minh chứng",
        "Ảnh chưa rõ, xin chụp lại",
        "Thông tin người khai hoặc hộ chưa đúng",
    ]
    turn = await can.taps("Ảnh chưa rõ, xin chụp lại")
    assert turn.replies[0].text.startswith("Đã gửi yêu cầu bổ sung"), turn
    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission).where(Submission.reference == "CD-2026-000003"))
        event = await session.scalar(
            select(SubmissionEvent)
            .where(SubmissionEvent.submission_id == submission.id)
            .order_by(SubmissionEvent.id.desc())
        )
    assert submission.state == "needs_info" and event.note == "Ảnh chưa rõ, xin chụp lại"


async def test_the_commune_decides_after_the_branch_or_overrides_with_a_reason(engine, person, suite_app, clock):
    from datetime import timedelta

    from bot.storage.models import Submission, SubmissionEvent
    from tests.support.review import make_staff, submit_citizen

    await submit_citizen(person("hoa"), name="Nguyễn Thị Hoa")  # Thôn Hà Lương
    await submit_citizen(person("lan"), name="Lê Thị Lan")
    await submit_citizen(person("ba"), name="Trần Văn Ba")
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    leader = await make_staff(engine, "tam", Role.LEADER, "thon-ha-luong", "Phạm Văn Tâm")

    # Before the branch has looked at it: refused, and the officer may give a reason.
    turn = await can.says("/tuchoi CD-2026-000001 Thiếu ảnh minh chứng")
    assert turn.replies[0].text.startswith("Hồ sơ CD-2026-000001 chưa được chi hội xét."), turn
    assert "2026)." in turn.replies[0].text  # the branch deadline named
    assert turn.replies[-1].text.startswith("Nếu cần quyết định ngay, gõ lý do")
    turn = await can.says("ok")
    assert turn.replies[0].text == "Lý do hơi ngắn, bạn ghi rõ hơn nhé."
    turn = await can.says("Chi hội trưởng ốm, đã thống nhất qua điện thoại")
    assert turn.replies[0].text.startswith("Đã ghi: hồ sơ CD-2026-000001 (Nguyễn Thị Hoa) không được công nhận."), turn

    # After the branch recommended: no reason needed.
    turn = await leader.says("/dexuat CD-2026-000002")
    await leader.taps(turn.choices[0])
    turn = await can.says("/congnhan CD-2026-000002")
    turn = await can.taps(turn.choices[0])
    assert turn.replies[0].text.startswith("Đã công nhận hồ sơ CD-2026-000002"), turn

    # After the branch's deadline (5 December): no reason needed either.
    clock.advance(timedelta(days=16))
    turn = await can.says("/congnhan CD-2026-000003")
    turn = await can.taps(turn.choices[0])
    assert turn.replies[0].text.startswith("Đã công nhận hồ sơ CD-2026-000003"), turn

    async with suite_app.sessions() as session:
        events = {
            reference: await session.scalar(
                select(SubmissionEvent)
                .join(Submission)
                .where(Submission.reference == reference)
                .order_by(SubmissionEvent.id.desc())
            )
            for reference in ("CD-2026-000001", "CD-2026-000002", "CD-2026-000003")
        }
    assert events["CD-2026-000001"].to_state == "rejected"
    assert events["CD-2026-000001"].override_reason == "Chi hội trưởng ốm, đã thống nhất qua điện thoại"
    assert events["CD-2026-000002"].override_reason is None and events["CD-2026-000003"].override_reason is None
