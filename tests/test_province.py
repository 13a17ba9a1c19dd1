"""One installation for a whole province (issue 17): a province file with three communes, residents
of each commune finding theirs by name, the province role reading every commune's figures and
the yearly upward report; target groups picked at registration."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.flows.engine import FlowEngine
from bot.review.province import write_province_report
from bot.review.scope import communes_in_scope, scope_for
from bot.storage.commune import (
    CommuneFileError,
    apply_province,
    campaign_for,
    find_communes,
    load_province_file,
    parse_province,
)
from bot.storage.models import OrgUnit, Person, Submission
from bot.storage.people import Role
from tests.conftest import make_app
from tests.support.chat import Person as ChatPerson
from tests.support.journeys import Tap, answer
from tests.support.review import make_staff
from tests.support.scripts import agree

EXAMPLE_PROVINCE = Path(__file__).resolve().parent.parent / "examples" / "province.yaml"


@pytest.fixture
async def province_app(suite_db, tmp_path, clock):
    application = await make_app(suite_db, tmp_path, clock, commune=False)
    async with application.sessions.begin() as session:
        await apply_province(session, load_province_file(EXAMPLE_PROVINCE), clock.now())
    yield application
    await application.close()


@pytest.fixture
def province_chat(province_app):
    from bot.flows.registry import build_router

    engine = FlowEngine(province_app, build_router())
    return engine, (lambda user_id: ChatPerson(engine, user_id, "test"))


async def test_the_example_province_file_loads_three_communes_under_the_province(province_app):
    async with province_app.sessions() as session:
        province = await session.scalar(select(OrgUnit).where(OrgUnit.kind == "province"))
        communes = list(
            await session.scalars(select(OrgUnit).where(OrgUnit.kind == "commune").order_by(OrgUnit.official_code))
        )
        assert [(c.code, c.official_code, c.parent_id) for c in communes] == [
            ("ea-tul", "99001", province.id),
            ("hoa-phu", "99002", province.id),
            ("ea-kiet", "99003", province.id),
        ]
        assert province.association_name == "Hội Khuyến học tỉnh Đắk Lắk"
        assert not list(await session.scalars(select(OrgUnit).where(OrgUnit.kind == "district")))
        # A commune without its own campaigns follows the province's; Ea Kiết keeps its own.
        hoa_phu = await campaign_for(session, communes[1].id, province_app.clock.now().date())
        ea_kiet = await campaign_for(session, communes[2].id, province_app.clock.now().date())
        assert hoa_phu.targets == {"gd": 70, "cd": 40} and ea_kiet.targets == {"gd": 65, "cd": 35}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("communes:\n  - commune:\n", "communes:\n  - district: {code: x, name: Huyện X}\n    commune:\n"),
            "districts were abolished",
        ),
        (("code: buon-sut", "code: buon-ken"), "codes must be unique across the province file: ['buon-ken']"),
        (('official_code: "99002"', 'official_code: "99001"'), "official codes must be unique"),
        (('official_code: "99003"', 'official_code: "993"'), "communes.2.commune.official_code"),
    ],
)
def test_bad_province_files_are_explained(edit, message):
    text = EXAMPLE_PROVINCE.read_text(encoding="utf-8")
    assert edit[0] in text
    with pytest.raises(CommuneFileError) as caught:
        parse_province(text.replace(*edit, 1), "province.yaml")
    assert "province.yaml" in str(caught.value) and message in str(caught.value)


async def test_communes_are_found_by_name_without_diacritics(province_app):
    async with province_app.sessions() as session:
        names = lambda units: [u.name for u in units]  # noqa: E731
        assert names(await find_communes(session, "hoa phu")) == ["Xã Hòa Phú"]
        assert names(await find_communes(session, "HÒA PHÚ")) == ["Xã Hòa Phú"]
        assert names(await find_communes(session, "xa ea kiet")) == ["Xã Ea Kiết"]
        assert names(await find_communes(session, "99001")) == ["Xã Ea Tul"]
        assert sorted(names(await find_communes(session, "ea"))) == ["Xã Ea Kiết", "Xã Ea Tul"]
        assert await find_communes(session, "buon ma thuot") == []
        assert await find_communes(session, "  ") == []


async def _register_citizen(p: ChatPerson, commune_text: str, branch: str, name: str) -> str:
    await agree(p)
    turn = await answer(p, Tap("Công dân học tập"), name, "1980")
    assert turn.text == "Bạn ở xã/phường nào?"
    assert turn.choices == ["Xã Ea Kiết", "Xã Ea Tul", "Xã Hòa Phú"]
    turn = await p.says(commune_text)
    assert turn.text == "Bạn ở thôn/buôn/khu phố nào?", turn
    await p.taps(branch)
    turn = await p.taps("Xác nhận")
    assert "Đã đăng ký Công dân học tập" in turn, turn
    return turn.text


async def test_residents_of_each_commune_register_and_the_province_reads_the_report(
    province_app, province_chat, tmp_path
):
    engine, person = province_chat
    await _register_citizen(person("a"), "ea tul", "Buôn Ken", "Nguyễn Văn An")
    await _register_citizen(person("b"), "hoa phu", "Thôn 2", "Trần Thị Bình")
    await _register_citizen(person("c"), "Ea Kiet", "Buôn Sứt", "Y Cư Niê")
    # A name matching two communes: the person picks among the matches.
    d = person("d")
    await agree(d)
    turn = await answer(d, Tap("Công dân học tập"), "Lê Văn Dũng", "1990", "ea")
    # Part of two labels: asked which, the same way at every question (bot/flows/escape.py).
    assert turn.text.startswith("Câu trả lời khớp với nhiều lựa chọn: 1. Xã Ea Kiết; 2. Xã Ea Tul.")
    assert "Xã Ea Kiết" in turn.choices and "Xã Ea Tul" in turn.choices
    turn = await d.taps("Xã Ea Kiết")
    assert turn.choices[:2] == ["Buôn Sứt", "Thôn Quyết Thắng"]
    turn = await d.says("zzz")
    assert "Bạn chọn thôn trong danh sách" in turn.text

    async with province_app.sessions() as session:
        rows = await session.execute(
            select(OrgUnit.code, Person.full_name)
            .join(Submission, Submission.branch_id == OrgUnit.id)
            .join(Person, Person.id == Submission.person_id)
            .order_by(Person.full_name)
        )
        assert {tuple(r) for r in rows} == {
            ("buon-ken", "Nguyễn Văn An"),
            ("hoa-phu-thon-2", "Trần Thị Bình"),
            ("buon-sut", "Y Cư Niê"),
        }

    staff = await make_staff(engine, "tinh", Role.PROVINCE, "dak-lak", "Phạm Thị Tỉnh")
    async with province_app.sessions() as session:
        reader = await session.scalar(select(Person).where(Person.full_name == "Phạm Thị Tỉnh"))
        assert [c.code for c in await communes_in_scope(session, reader.id)] == ["ea-kiet", "ea-tul", "hoa-phu"]
        # Read-only: the province role holds no review scope anywhere.
        assert await scope_for(session, reader.id, Role.OFFICER) is None
        assert await scope_for(session, reader.id, Role.LEADER) is None
    turn = await staff.says("/duyet")
    assert "Lệnh này dành cho cán bộ xã." in turn

    turn = await staff.says("/baocaotinh 2026")
    assert "Báo cáo năm 2026 — Tỉnh Đắk Lắk (3 xã/phường), đạt/đăng ký:" in turn
    assert (
        "- Xã Ea Tul: Gia đình học tập: đã công nhận 0, đã đăng ký 0 (0% được công nhận); Công dân học tập: đã công nhận 0, đã đăng ký 1 (0% được công nhận)"
        in turn
    )
    assert (
        "- Xã Hòa Phú: Gia đình học tập: đã công nhận 0, đã đăng ký 0 (0% được công nhận); Công dân học tập: đã công nhận 0, đã đăng ký 1 (0% được công nhận)"
        in turn
    )
    assert (
        "- Toàn tỉnh (Tỉnh Đắk Lắk): Gia đình học tập: đã công nhận 0, đã đăng ký 0 (0% được công nhận); Công dân học tập: đã công nhận 0, đã đăng ký 3 (0% được công nhận)"
        in turn
    )

    # The upward report file: one row per commune (by official code), then the province totals.
    path = tmp_path / "report.csv"
    async with province_app.sessions() as session:
        province = await session.scalar(select(OrgUnit).where(OrgUnit.code == "dak-lak"))
        count = await write_province_report(
            session, province_app.catalog, province=province, year=2026, fmt="csv", locale="vi", path=path
        )
    assert count == 3
    table = list(csv.reader(path.open(encoding="utf-8-sig")))
    assert table[0][:6] == [
        "Mã đơn vị",
        "Xã/phường",
        "Số hộ",
        "Số người lớn",
        "Gia đình học tập: đăng ký",
        "Gia đình học tập: được công nhận",
    ]
    assert [row[:4] for row in table[1:]] == [
        ["99001", "Xã Ea Tul", "2310", "5840"],
        ["99002", "Xã Hòa Phú", "1850", "4620"],
        ["99003", "Xã Ea Kiết", "1420", "3510"],
        ["", "Toàn tỉnh (Tỉnh Đắk Lắk)", "5580", "13970"],
    ]
    cd_registered = table[0].index("Công dân học tập: đăng ký")
    assert [row[cd_registered] for row in table[1:]] == ["1", "1", "1", "3"]


FARMERS = "nong-dan"


def _group_form(set_id: str, group: str, name: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "bot/criteria/cd-qd244-2022.yaml").read_text(encoding="utf-8")
    text = text.replace("id: cd-qd244-2022", f"id: {set_id}", 1)
    return text.replace(
        "version: 1\n",
        f'version: 1\nprovince: dak-lak\ntarget_group: {group}\ntarget_group_name: {{vi: "{name}", en: "{group}"}}\n',
        1,
    )


async def test_a_resident_picks_their_target_group_when_the_province_has_several(suite_db, tmp_path, clock):
    folder = tmp_path / "criteria"
    folder.mkdir()
    (folder / "nong-dan.yaml").write_text(
        _group_form("cd-dak-lak-nong-dan", FARMERS, "Nông dân, lao động nông thôn"), encoding="utf-8"
    )
    (folder / "can-bo.yaml").write_text(
        _group_form("cd-dak-lak-can-bo", "can-bo", "Cán bộ, công chức, viên chức"), encoding="utf-8"
    )
    app = await make_app(suite_db, tmp_path, clock, criteria_dir=folder)
    try:
        from bot.flows.registry import build_router

        hoa = ChatPerson(FlowEngine(app, build_router()), "hoa", "test")
        await agree(hoa)
        turn = await answer(hoa, Tap("Công dân học tập"), "Nguyễn Thị Hoa", "1975", "Buôn Ken")
        assert turn.text == "Bạn thuộc nhóm nào? Mỗi nhóm có bộ câu hỏi riêng."
        assert turn.choices == ["Cán bộ, công chức, viên chức", "Nông dân, lao động nông thôn"]
        turn = await hoa.says("nong dan")
        assert "Nhóm: Nông dân, lao động nông thôn" in turn.text
        turn = await hoa.taps("Xác nhận")
        assert "Đã đăng ký Công dân học tập" in turn
        async with app.sessions() as session:
            assert await session.scalar(select(Submission.criteria_set_id)) == "cd-dak-lak-nong-dan"
    finally:
        await app.close()
