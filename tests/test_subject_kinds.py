"""A new kind of subject is a subject class, its storage, a criteria file and catalog keys: no flow
code. A toy kind, defined only here (a family reading corner, which one person answers for),
registers, declares and is reviewed through the ordinary conversations."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.app import build_app
from bot.domain.lifecycle import State
from bot.domain.subjects import SubjectKind, population
from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.i18n import get_translator
from bot.review.exports import submission_rows
from bot.review.queries import Filters, pending
from bot.review.scope import Scope
from bot.storage.commune import apply_commune, load_commune_file
from bot.storage.models import OrgUnit, Submission
from bot.storage.people import Role
from bot.storage.subjects import PersonalSubject, SubjectStore, add_subject, remove_subject, submissions_for_person
from tests.conftest import EXAMPLE_COMMUNE, make_settings
from tests.support.chat import Person as ChatPerson
from tests.support.journeys import answer, register, submit
from tests.support.review import make_staff
from tests.support.scripts import agree

READING_CORNER = SubjectKind("reading_corner", population="households_total")

TOY_CRITERIA = """
id: toy-reading-corner
version: 1
title: gds
title_name:
  vi: Góc đọc sách gia đình
  en: Family reading corner
subject: reading_corner
issuer: Test
decision: none
valid_from_year: 2020
criteria:
  - id: I
    text: {vi: Góc đọc, en: Reading corner}
    items:
      - id: "1"
        text: {vi: Có giá sách trong nhà, en: Has a bookshelf at home}
        max_points: 10
        points: {achieved: 10, partial: 5, not_yet: 0}
      - id: "2"
        text: {vi: Đọc sách cùng con mỗi tuần, en: Reads with the children every week}
        max_points: 10
        points: {achieved: 10, partial: 5, not_yet: 0}
recognition:
  total_min: 15
"""


@pytest.fixture
async def toy_app(suite_db, tmp_path, clock):
    """The example commune, with the toy kind known and its criteria file loaded."""
    add_subject(PersonalSubject(READING_CORNER))
    folder = tmp_path / "criteria"
    folder.mkdir()
    (folder / "toy.yaml").write_text(TOY_CRITERIA, encoding="utf-8")
    app = await build_app(make_settings(suite_db, tmp_path), clock, criteria_dirs=(folder,), run_migrations=False)
    async with app.sessions.begin() as session:
        await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), clock.now())
    try:
        yield app
    finally:
        await app.close()
        remove_subject(READING_CORNER.name)


async def test_a_toy_subject_registers_declares_and_is_reviewed(toy_app):
    engine = FlowEngine(toy_app, build_router())
    hoa = ChatPerson(engine, "hoa")
    await agree(hoa)
    turn = await hoa.taps("Góc đọc sách gia đình")
    assert turn.text == "Họ và tên của bạn?"
    turn = await answer(hoa, "Nguyễn Thị Hoa", "1975", "2")
    assert turn.text.startswith("Danh hiệu: Góc đọc sách gia đình\nHọ tên: Nguyễn Thị Hoa, sinh năm 1975\n")
    turn = await hoa.taps("Xác nhận")
    assert turn.text.startswith("Đã đăng ký Góc đọc sách gia đình, mã hồ sơ GDS-2026-000001.")

    await hoa.taps("Bắt đầu")
    for _ in range(2):
        turn = await hoa.taps("Đạt")
        if "Không có ảnh" in turn.choices:
            await hoa.taps("Không có ảnh")
    turn = await submit(hoa)  # asked first
    assert "Đã nộp hồ sơ" in turn, turn

    # The same person also registers as a learning citizen: the two kinds do not collide.
    await hoa.says("/menu")
    await hoa.taps("Đăng ký danh hiệu")
    turn = await hoa.taps("Công dân học tập")
    assert "Đã đăng ký Công dân học tập" in await hoa.taps("Xác nhận")

    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    turn = await lan.says("/binhxet")
    assert turn.choices[0] == "GDS-2026-000001 · Nguyễn Thị Hoa · Thôn Hà Lương · 20 điểm"
    details, question = (await lan.taps(turn.choices[0])).replies
    assert details.text.startswith(
        "Hồ sơ GDS-2026-000001 — Góc đọc sách gia đình\nNgười khai: Nguyễn Thị Hoa, sinh năm 1975 — Thôn Hà Lương\n"
    )
    await lan.taps("Đề nghị công nhận")
    await lan.taps("Xác nhận")
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/duyet")
    await can.taps(next(c for c in turn.choices if c.startswith("GDS-2026-000001")))
    await can.taps("Công nhận")
    turn = await can.taps("Xác nhận")
    assert "GDS-2026-000001" in turn

    async with toy_app.sessions() as session:
        corner = await session.scalar(select(Submission).where(Submission.title == "gds"))
        assert (corner.subject_kind, corner.state) == ("reading_corner", "approved")
        owned = await submissions_for_person(session, corner.person_id)
        assert sorted(s.title for s in owned) == ["cd", "gds"]
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        assert population(commune, "reading_corner") == commune.households_total

    turn = await hoa.says("/trangthai")
    assert "GDS-2026-000001" in turn


async def test_an_unknown_subject_kind_is_refused_in_a_criteria_file(tmp_path):
    from bot.domain.criteria import CriteriaError, parse_criteria

    with pytest.raises(CriteriaError, match="subject"):
        parse_criteria(TOY_CRITERIA, "toy.yaml")


class NamelessCorner(PersonalSubject):
    """The toy kind with nothing to join to a query over submissions (the default)."""

    def join(self, query):
        return SubjectStore.join(self, query)


async def _register_corner(person, name: str, year: str) -> None:
    await agree(person)
    assert "Đã đăng ký Góc đọc sách gia đình" in await register(person, "Góc đọc sách gia đình", name, year, "2")


async def test_a_kind_without_a_name_join_lists_its_submissions_without_a_name(toy_app):
    engine = FlowEngine(toy_app, build_router())
    await _register_corner(ChatPerson(engine, "hoa"), "Nguyễn Thị Hoa", "1975")
    add_subject(NamelessCorner(READING_CORNER))
    async with toy_app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        page = await pending(session, Scope(Role.ADMIN, None), (State.REGISTERED,), Filters(), limit=10)
        assert [(row.reference, row.name) for row in page.rows] == [("GDS-2026-000001", None)]
        batches = submission_rows(session, toy_app.catalog, commune.id, 2026, get_translator("vi"))
        rows = [row async for batch in batches for row in batch]
        assert [(row[0], row[1], row[2]) for row in rows] == [("GDS-2026-000001", "", None)]


class ForgetfulCorner(PersonalSubject):
    """The toy kind, noting whom it was asked to forget (it keeps nothing beyond its submissions)."""

    def __init__(self, kind):
        super().__init__(kind)
        self.asked: list[int] = []

    async def forget(self, session, person_id):
        self.asked.append(person_id)
        return await super().forget(session, person_id)


async def test_deleting_ones_data_removes_ones_own_toy_submission_only(toy_app):
    store = add_subject(ForgetfulCorner(READING_CORNER))
    assert isinstance(store, ForgetfulCorner)
    engine = FlowEngine(toy_app, build_router())
    hoa, nam = ChatPerson(engine, "hoa"), ChatPerson(engine, "nam")
    await _register_corner(hoa, "Nguyễn Thị Hoa", "1975")
    await _register_corner(nam, "Trần Văn Nam", "1980")

    await nam.says("/xoadulieu")
    turn = await nam.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 0 ảnh).")
    async with toy_app.sessions() as session:
        corners = {s.reference: s for s in await session.scalars(select(Submission).where(Submission.title == "gds"))}
    hers, his = corners["GDS-2026-000001"], corners["GDS-2026-000002"]
    hoa_id = hers.person_id
    assert hers.anonymised_at is None and hoa_id is not None
    assert his.anonymised_at is not None and (his.person_id, his.household_id) == (None, None)
    assert (his.subject_kind, his.state) == ("reading_corner", "registered")  # still counted
    assert len(store.asked) == 1 and store.asked[0] != hoa_id
    async with toy_app.sessions() as session:
        assert [s.reference for s in await submissions_for_person(session, hoa_id)] == ["GDS-2026-000001"]

    await hoa.says("/xoadulieu")
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 0 ảnh).")
    assert store.asked[1:] == [hoa_id]
    async with toy_app.sessions() as session:
        hers = await session.get(Submission, hers.id)
        assert hers.anonymised_at is not None and hers.person_id is None
        assert await submissions_for_person(session, hoa_id) == []
