"""Exports opened as an officer would open them (openpyxl, csv), statistics against targets,
the multi-year register, the progress chart (a real PNG), in chat and from the CLI."""

from __future__ import annotations

import pytest

import csv
import io
from datetime import datetime

from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

from bot.domain.lifecycle import Actor, State
from bot.review.exports import milestone, streak, write_export
from bot.review.privacy import delete_person_data
from bot.storage.models import Campaign, OrgUnit, Person
from bot.storage.people import MemberSpec, Role, create_household
from bot.storage.submissions import create_submission, transition
from tests.support.review import chat, flow, make_staff  # noqa: F401
from tests.test_cli import hoctap
from tests.conftest import EXAMPLE_COMMUNE

SUBMISSION_HEADER_VI = [
    "Mã hồ sơ", "Họ tên / chủ hộ", "Thôn/buôn", "Danh hiệu", "Trạng thái", "Điểm", "Đủ điều kiện", "Quyết định",
    "Ghi chú quyết định", "Ngày đăng ký", "Ngày nộp", "Ngày quyết định",
]
PATHS = {
    "approved": (State.DECLARING, State.SUBMITTED, State.RECOMMENDED, State.APPROVED),
    "rejected": (State.DECLARING, State.SUBMITTED, State.REJECTED),
    "submitted": (State.DECLARING, State.SUBMITTED),
    "registered": (),
    "withdrawn": (State.WITHDRAWN,),
}
ACTORS = {State.RECOMMENDED: Actor.BRANCH, State.APPROVED: Actor.COMMUNE, State.REJECTED: Actor.COMMUNE}


async def seed(app) -> dict[str, int]:
    """Ea Tul: 2024–2026 campaigns; citizens and households in several states and years."""
    now = app.clock.now()
    ids: dict[str, int] = {}
    async with app.sessions.begin() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        branch = {u.code: u for u in await session.scalars(select(OrgUnit).where(OrgUnit.kind == "branch"))}
        campaigns = {c.year: c for c in await session.scalars(select(Campaign).where(Campaign.commune_id == commune.id))}
        for year in (2024, 2025):
            campaigns[year] = Campaign(commune_id=commune.id, year=year, targets={"gd": 60, "cd": 30}, reminder_offsets=[], created_at=now)
            session.add(campaigns[year])
        await session.flush()

        async def person(name: str, code: str, year: int = 1970) -> Person:
            someone = Person(full_name=name, birth_year=year, branch_id=branch[code].id, created_at=now)
            session.add(someone)
            await session.flush()
            ids[name] = someone.id
            return someone

        async def submit(year: int, title: str, code: str, outcome: str, who: Person | None = None, household=None, note=None):
            criteria = app.catalog.for_title(title, year)
            submission = await create_submission(
                session, campaign_id=campaigns[year].id, year=year, criteria_set=criteria, branch_id=branch[code].id,
                person_id=None if household else who.id, household_id=household.id if household else None,
                actor_person_id=who.id if who else None, now=now,
            )
            submission.score = 90 if outcome != "rejected" else 60
            submission.recognisable = outcome != "rejected"
            for target in PATHS[outcome]:
                await transition(session, submission, target, actor=ACTORS.get(target, Actor.OWNER),
                                 actor_person_id=None, note=note if target == State.REJECTED else None, now=now)
            return submission

        hoa = await person("Nguyễn Thị Hoa", "thon-ha-luong")
        for year in (2024, 2025, 2026):
            await submit(year, "cd", "thon-ha-luong", "approved", hoa)  # three years running
        lan = await person("Lê Văn Lâm", "thon-ha-luong")
        await submit(2024, "cd", "thon-ha-luong", "approved", lan)
        await submit(2026, "cd", "thon-ha-luong", "approved", lan)  # a gap: one year running
        await submit(2026, "cd", "buon-ken", "rejected", await person("Y Ken", "buon-ken"), note="Thiếu minh chứng mục 3")
        await submit(2026, "cd", "buon-ken", "submitted", await person("H'Lan", "buon-ken"))
        await submit(2026, "cd", "buon-ken", "withdrawn", await person("Rút Hồ Sơ", "buon-ken"))
        head = await person("Y Bih Niê", "buon-ken", 1958)
        household = await create_household(session, branch_id=branch["buon-ken"].id, head=head,
                                           members=[MemberSpec("H'Nga Niê", 1962, "spouse")], registered_by=head, now=now)
        await submit(2026, "gd", "buon-ken", "approved", head, household=household)
        await submit(2026, "gd", "thon-tan-lap", "registered", await person("Đinh Văn Tân", "thon-tan-lap"))
        gone = await person("Người Đã Xóa", "thon-tan-lap")
        await submit(2026, "cd", "thon-tan-lap", "approved", gone)
    async with app.sessions.begin() as session:
        await delete_person_data(session, await session.get(Person, ids["Người Đã Xóa"]), now)
    return ids


async def _export(app, tmp_path, kind: str, fmt: str, locale: str = "vi", year: int = 2026):
    path = tmp_path / f"{kind}.{fmt}"
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        rows = await write_export(session, app.catalog, kind=kind, fmt=fmt, commune=commune, year=year, locale=locale, path=path)
    return path, rows


def _sheet(path):
    workbook = load_workbook(path, read_only=True)
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


async def test_submissions_export_xlsx_and_csv(app, tmp_path):
    await seed(app)
    path, count = await _export(app, tmp_path, "submissions", "xlsx")
    rows = _sheet(path)
    assert rows[0] == SUBMISSION_HEADER_VI
    assert count == len(rows) - 1 == 8
    by_ref = {r[0]: r for r in rows[1:]}
    hoa = by_ref["CD-2026-000003"]
    assert hoa[1:9] == ["Nguyễn Thị Hoa", "Thôn Hà Lương", "Công dân học tập", "Đã được công nhận", 90, "Đủ", "Công nhận", None]
    assert isinstance(hoa[9], datetime) and hoa[9] == datetime(2026, 11, 20, 9, 0)  # local time in the sheet
    rejected = next(r for r in rows[1:] if r[1] == "Y Ken")
    assert rejected[4:9] == ["Chưa được công nhận", 60, "Chưa", "Không công nhận", "Thiếu minh chứng mục 3"]
    household = next(r for r in rows[1:] if r[3] == "Gia đình học tập" and r[4] == "Đã được công nhận")
    assert household[1] == "Y Bih Niê"
    assert next(r for r in rows[1:] if r[1] == "(đã xóa theo yêu cầu)")[4] == "Đã được công nhận"

    path, count = await _export(app, tmp_path, "submissions", "csv", locale="en")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads the file as UTF-8
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:5] == ["Reference", "Name / head of household", "Branch", "Title", "Status"]
    assert len(table) == count + 1 == 9
    row = next(r for r in table if r[1] == "Nguyễn Thị Hoa")
    assert row[3:8] == ["Learning citizen", "Recognised", "90", "Yes", "Recognised"] and row[9] == "2026-11-20 09:00"


async def test_statistics_against_targets_keep_anonymised_counts(app, tmp_path):
    await seed(app)
    path, count = await _export(app, tmp_path, "stats", "xlsx")
    rows = _sheet(path)
    assert rows[0] == [
        "Thôn/buôn", "Số hộ", "Số người lớn",
        "Gia đình học tập: đăng ký", "Gia đình học tập: được công nhận", "Gia đình học tập: tỉ lệ công nhận (%)",
        "Gia đình học tập: chỉ tiêu (%)",
        "Công dân học tập: đăng ký", "Công dân học tập: được công nhận", "Công dân học tập: tỉ lệ công nhận (%)",
        "Công dân học tập: chỉ tiêu (%)",
    ]
    table = {r[0]: r[1:] for r in rows[1:]}
    assert count == 6 and list(table) == ["Buôn Ken", "Thôn Hà Lương", "Thôn Tân Lập", "Buôn Ea Kmát", "Thôn Trung Hòa", "Xã Ea Tul"]
    assert table["Buôn Ken"] == [412, 1030, 1, 1, round(100 / 412, 1), 70, 2, 0, 0, 40]  # withdrawn not counted
    assert table["Thôn Hà Lương"][6:8] == [2, 2]
    tan_lap = table["Thôn Tân Lập"]
    assert [tan_lap[2], tan_lap[6], tan_lap[7]] == [1, 1, 1]  # the anonymised one still counts
    assert table["Xã Ea Tul"][:8] == [2310, 5840, 2, 1, round(100 / 2310, 1), 70, 5, 3]
    assert table["Xã Ea Tul"][8] == round(100 * 3 / 5840, 1)

    path, _ = await _export(app, tmp_path, "stats", "csv", locale="en")
    table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert table[0][3] == "Learning family: registered" and table[-1][0] == "Xã Ea Tul"


async def test_multi_year_register(app, tmp_path):
    await seed(app)
    path, count = await _export(app, tmp_path, "register", "xlsx")
    rows = _sheet(path)
    assert rows[0] == ["Danh hiệu", "Họ tên / chủ hộ", "Thôn/buôn", "Các năm được công nhận", "Số năm liên tục", "Mốc (năm)"]
    body = sorted(rows[1:], key=lambda r: (r[0], r[1]))
    assert body == [
        ["Công dân học tập", "Lê Văn Lâm", "Thôn Hà Lương", "2024, 2026", 1, 1],
        ["Công dân học tập", "Nguyễn Thị Hoa", "Thôn Hà Lương", "2024, 2025, 2026", 3, 3],
        ["Gia đình học tập", "Y Bih Niê", "Buôn Ken", "2026", 1, 1],
    ]
    assert count == 3
    path, count = await _export(app, tmp_path, "register", "csv", year=2025)
    assert count == 1 and "Nguyễn Thị Hoa" in path.read_text(encoding="utf-8-sig")
    assert [streak([2020, 2021, 2022, 2023, 2024], 2024), streak([2023], 2024), milestone(5), milestone(4), milestone(0)] == [5, 0, 5, 3, None]


async def test_exports_and_chart_in_chat(chat, flow, app):
    await seed(app)
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xuat")
    assert turn.text == "Bạn muốn xuất danh sách nào?"
    assert turn.choices == ["Danh sách hồ sơ", "Thống kê theo thôn", "Sổ theo dõi nhiều năm", "Về menu"]
    await can.taps("Danh sách hồ sơ")
    turn = await can.taps("Excel (XLSX)")
    document = turn.replies[0]
    assert document.text == "Danh sách hồ sơ — Xã Ea Tul, năm 2026: 8 dòng."
    assert document.document_name == "submissions-ea-tul-2026.xlsx" and document.document.is_file()
    assert _sheet(document.document)[0] == SUBMISSION_HEADER_VI
    assert turn.replies[-1].text.startswith("Bạn muốn làm gì?")

    turn = await can.says("/xuat so csv 2025")
    assert turn.replies[0].text == "Sổ theo dõi nhiều năm — Xã Ea Tul, năm 2025: 1 dòng."
    assert turn.replies[0].document_name == "register-ea-tul-2025.csv"

    turn = await can.says("/thongke")
    chart = turn.replies[0]
    assert chart.text == "Tiến độ công nhận năm 2026 — Xã Ea Tul" and chart.photo is not None
    with Image.open(chart.photo) as image:
        image.load()
        assert image.format == "PNG" and 900 <= image.width <= 1200 and 300 <= image.height <= 1600
        assert len(image.getcolors(1_000_000) or []) > 20  # bars, text and lines, not a blank canvas
    summary = turn.replies[1].text
    assert summary.startswith("Thống kê Xã Ea Tul năm 2026 (được công nhận/đăng ký, tỉ lệ):\n")
    assert "- Buôn Ken: Gia đình học tập 1/1 (0.2%); Công dân học tập 0/2 (0.0%)" in summary
    assert summary.endswith("Chỉ tiêu năm nay: Gia đình học tập 70%, Công dân học tập 40%.")


@pytest.mark.slow
def test_cli_export_and_invite(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    out = tmp_path / "out" / "stats.csv"
    done = hoctap(tmp_path, "export", "stats", "--format", "csv", "--commune", "ea-tul", "--year", "2026", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote 6 rows" in done.stdout
    table = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert table[0][0] == "Thôn/buôn" and table[1][:3] == ["Buôn Ken", "412", "1030"]
    done = hoctap(tmp_path, "export", "submissions", "--commune", "ea-tul", "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert load_workbook(tmp_path / "submissions-ea-tul-2026.xlsx").active["A1"].value == "Reference"
    bad = hoctap(tmp_path, "export", "people", "--commune", "ea-tul")
    assert bad.returncode == 2 and "kind must be one of" in bad.stderr
    unknown = hoctap(tmp_path, "export", "stats", "--commune", "nowhere")
    assert unknown.returncode == 2 and "no commune" in unknown.stderr

    invite = hoctap(tmp_path, "admin", "invite", "--role", "leader", "--scope", "buon-ken")
    assert invite.returncode == 0, invite.stderr
    assert "leader of Buôn Ken, one use" in invite.stdout and "In chat: ma " in invite.stdout
    wrong = hoctap(tmp_path, "admin", "invite", "--role", "leader", "--scope", "ea-tul")
    assert wrong.returncode == 2 and "needs a branch" in wrong.stderr


async def test_terminal_chat_shows_where_an_export_was_written(engine, suite_app):
    from bot.channels.console import ConsoleChannel

    await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán", channel="console")
    lines = iter(["/xuat thongke csv"])

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    await ConsoleChannel(engine, user_id="can", out=out, read_line=read_line).run()
    text = out.getvalue()
    assert "Thống kê theo thôn — Xã Ea Tul, năm 2026: 6 dòng.\n[" in text
    assert "stats-ea-tul-2026.csv]" in text
