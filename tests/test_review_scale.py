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
from bot.storage.people import Role, get_or_create_account, grant_role
from tests.conftest import EXAMPLE_COMMUNE, TEST_SIGNING_SECRET, TEST_TOKEN_KEY
from tests.fakes.telegram_bot_api import FakeUser
from tests.support.telegram import TgPerson, fake, start_polling_bot  # noqa: F401  (fake: a fixture)


async def _grant(app, channel: str, external_id: str, role: Role, scope_code: str, name: str) -> None:
    now = app.clock.now()
    async with app.sessions.begin() as session:
        account = await get_or_create_account(session, channel, external_id, external_id, now)
        person = Person(full_name=name, created_at=now)
        session.add(person)
        await session.flush()
        account.person_id = person.id
        scope = await session.scalar(select(OrgUnit).where(OrgUnit.code == scope_code))
        await grant_role(session, person, role, scope, granted_by=None, now=now)


# ---- 1. an export asked for in Telegram arrives with the default (relative) folders -----------


async def test_export_arrives_on_telegram_with_the_default_relative_folders(tmp_path, clock, fake, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as `./dev.sh run` runs: EVIDENCE_DIR=./evidence, exports beside it
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hoctap.db'}",
        signing_secret=TEST_SIGNING_SECRET, token_encryption_key=TEST_TOKEN_KEY,
    )
    assert not Path(settings.evidence_dir).is_absolute()
    app = await build_app(settings, clock)
    try:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), clock.now())
        await _grant(app, "telegram", "2001", Role.OFFICER, "ea-tul", "Trần Văn Cán")
        bot = await start_polling_bot(app, fake)
        try:
            can = TgPerson(fake, bot.channel, FakeUser(2001, "Can"))
            await can.says("xin chào")
            await can.taps("Tôi đồng ý")
            turn = await can.says("/xuat hoso xlsx")
            documents = [m for m in turn.messages if m.kind == "document"]
            assert len(documents) == 1, turn
            assert documents[0].filename == "submissions-ea-tul-2026.xlsx"
            assert documents[0].text == "Danh sách hồ sơ — Xã Ea Tul, năm 2026: 0 dòng."
            workbook = load_workbook(io.BytesIO(documents[0].data), read_only=True)
            assert workbook.worksheets
            turn = await can.says("/thongke")
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
    from tests.test_review_exports import seed

    await seed(app)
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        stats = await commune_stats(session, app.catalog, commune, 2026)
    t = get_translator("vi")
    figure = progress_figure(stats, {"gd": "Gia đình học tập", "cd": "Công dân học tập"}, t)
    family, citizen = figure.axes
    assert family.get_title(loc="left") == "Gia đình học tập" and citizen.get_title(loc="left") == "Công dân học tập"
    assert [label.get_text() for label in family.get_yticklabels()] == [
        "Buôn Ken", "Thôn Hà Lương", "Thôn Tân Lập", "Buôn Ea Kmát", "Thôn Trung Hòa", "Xã Ea Tul",
    ]
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

    await _grant(suite_app, "test", "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
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
