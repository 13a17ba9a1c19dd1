"""Exports opened as an officer would open them (openpyxl, csv), statistics against targets,
the multi-year register, the progress chart (a real PNG), in chat and from the CLI."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

from bot.domain.lifecycle import Actor, State
from bot.review.exports import milestone, streak, write_export
from bot.review.privacy import delete_person_data
from bot.storage.models import Campaign, Evidence, OrgUnit, Person
from bot.storage.people import MemberSpec, Role, create_household
from bot.storage.submissions import create_submission, transition
from tests.conftest import EXAMPLE_COMMUNE
from tests.support.review import chat, flow, make_staff  # noqa: F401
from tests.test_cli import hoctap

SUBMISSION_HEADER_VI = [
    "Mã hồ sơ",
    "Họ tên / chủ hộ",
    "Năm sinh",
    "Thôn/buôn",
    "Danh hiệu",
    "Số người trong hộ",
    "Trạng thái",
    "Điểm",
    "Đủ điều kiện",
    "Số ảnh minh chứng",
    "Chi hội làm hộ",
    "Nộp trễ hạn",
    "Chi hội đề nghị",
    "Ghi chú của chi hội",
    "Quyết định",
    "Ghi chú quyết định",
    "Ngày đăng ký",
    "Ngày nộp lần đầu",
    "Ngày nộp lại gần nhất",
    "Ngày quyết định",
]
PATHS = {
    "approved": (State.DECLARING, State.SUBMITTED, State.RECOMMENDED, State.APPROVED),
    "rejected": (State.DECLARING, State.SUBMITTED, State.REJECTED),
    "submitted": (State.DECLARING, State.SUBMITTED),
    "resubmitted": (State.DECLARING, State.SUBMITTED, State.NEEDS_INFO, State.SUBMITTED),
    "registered": (),
    "withdrawn": (State.WITHDRAWN,),
}
ACTORS = {
    State.RECOMMENDED: Actor.BRANCH,
    State.NEEDS_INFO: Actor.BRANCH,
    State.APPROVED: Actor.COMMUNE,
    State.REJECTED: Actor.COMMUNE,
}
# The example commune's rows in statistics, in order: its five branches, then the commune's total.
STATS_ROWS = ["Buôn Ken", "Thôn Hà Lương", "Thôn Tân Lập", "Buôn Ea Kmát", "Thôn Trung Hòa", "Xã Ea Tul"]
NOTES = {State.RECOMMENDED: "Gia đình gương mẫu", State.NEEDS_INFO: "Thiếu ảnh mục 2"}


async def seed(app) -> dict[str, int]:
    """Ea Tul: 2024–2026 campaigns; citizens and households in several states and years."""
    now = app.clock.now()
    ids: dict[str, int] = {}
    async with app.sessions.begin() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        branch = {u.code: u for u in await session.scalars(select(OrgUnit).where(OrgUnit.kind == "branch"))}
        campaigns = {
            c.year: c for c in await session.scalars(select(Campaign).where(Campaign.commune_id == commune.id))
        }
        for year in (2024, 2025):
            campaigns[year] = Campaign(
                commune_id=commune.id, year=year, targets={"gd": 60, "cd": 30}, reminder_offsets=[], created_at=now
            )
            session.add(campaigns[year])
        await session.flush()

        async def person(name: str, code: str, year: int = 1970) -> Person:
            someone = Person(full_name=name, birth_year=year, branch_id=branch[code].id, created_at=now)
            session.add(someone)
            await session.flush()
            ids[name] = someone.id
            return someone

        async def submit(
            year: int,
            title: str,
            code: str,
            outcome: str,
            who: Person | None = None,
            household=None,
            note=None,
            by: Person | None = None,
            days: int = 0,
            photos: int = 0,
        ):
            criteria = app.catalog.for_title(title, year)
            submission = await create_submission(
                session,
                campaign_id=campaigns[year].id,
                year=year,
                criteria_set=criteria,
                branch_id=branch[code].id,
                person_id=None if household else who.id,
                household_id=household.id if household else None,
                actor_person_id=who.id if who else None,
                now=now,
            )
            submission.score = 90 if outcome != "rejected" else 60
            submission.recognisable = outcome != "rejected"
            for index in range(photos):
                session.add(
                    Evidence(
                        submission_id=submission.id,
                        item_id=f"{index + 1}",
                        sha256=f"{index:064d}",
                        path=f"x/{index}.jpg",
                        size=10,
                        mime="image/jpeg",
                        created_at=now,
                    )
                )
            for step, target in enumerate(PATHS[outcome]):
                actor = ACTORS.get(target, Actor.OWNER)
                await transition(
                    session,
                    submission,
                    target,
                    actor=actor,
                    actor_person_id=by.id if by and actor == Actor.OWNER else None,
                    note=note if target == State.REJECTED else NOTES.get(target),
                    now=now + timedelta(days=days + step),
                )
            return submission

        hoa = await person("Nguyễn Thị Hoa", "thon-ha-luong")
        for year in (2024, 2025, 2026):
            await submit(
                year, "cd", "thon-ha-luong", "approved", hoa, photos=2 if year == 2026 else 0
            )  # three years running
        lan = await person("Lê Văn Lâm", "thon-ha-luong")
        await submit(2024, "cd", "thon-ha-luong", "approved", lan)
        await submit(2026, "cd", "thon-ha-luong", "approved", lan)  # a gap: one year running
        await submit(
            2026,
            "cd",
            "buon-ken",
            "rejected",
            await person("Y Ken", "buon-ken"),
            note="Thiếu minh chứng mục 3",
            days=11,
        )  # sent on 1 December, after the self-declaration deadline (30 November)
        await submit(2026, "cd", "buon-ken", "resubmitted", await person("H'Lan", "buon-ken"))
        await submit(2026, "cd", "buon-ken", "withdrawn", await person("Rút Hồ Sơ", "buon-ken"))
        head = await person("Y Bih Niê", "buon-ken", 1958)
        household = await create_household(
            session,
            branch_id=branch["buon-ken"].id,
            head=head,
            members=[MemberSpec("H'Nga Niê", 1962, "spouse")],
            registered_by=head,
            now=now,
        )
        leader = await person("Y Leader", "buon-ken")
        await submit(2026, "gd", "buon-ken", "approved", head, household=household, by=leader)  # by proxy
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
        rows = await write_export(
            session,
            app.catalog,
            kind=kind,
            fmt=fmt,
            commune=commune,
            year=year,
            locale=locale,
            path=path,
            now=app.clock.now(),
        )
    return path, rows


def _sheet(path):
    workbook = load_workbook(path, read_only=True)
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


async def _seeded_sheet(app, tmp_path, kind: str, title: str, note: str | None):
    """The seeded commune's export of `kind` as XLSX, under its `title` line, then `note` (or an
    empty line): its path, its count of rows and its rows."""
    await seed(app)
    path, count = await _export(app, tmp_path, kind, "xlsx")
    rows = _sheet(path)
    assert rows[0][0] == f"{title} — Xã Ea Tul — năm 2026 — xuất ngày 20/11/2026"
    assert rows[1][0] == note
    return path, count, rows


def _widths(path) -> dict[str, float]:
    """Each column's width (openpyxl keeps neighbours of one width as one range)."""
    from openpyxl.utils import get_column_letter

    sheet = load_workbook(path).worksheets[0]
    return {
        get_column_letter(col): dim.width
        for dim in sheet.column_dimensions.values()
        for col in range(dim.min, dim.max + 1)
    }


async def test_submissions_export_xlsx_and_csv(app, tmp_path):
    path, count, rows = await _seeded_sheet(app, tmp_path, "submissions", "Danh sách hồ sơ", None)
    assert rows[2] == SUBMISSION_HEADER_VI
    assert count == len(rows) - 3 == 8
    by_ref = {r[0]: dict(zip(SUBMISSION_HEADER_VI, r, strict=False)) for r in rows[3:]}
    hoa = by_ref["CD-2026-000003"]
    assert [hoa[c] for c in SUBMISSION_HEADER_VI[1:16]] == [
        "Nguyễn Thị Hoa",
        1970,
        "Thôn Hà Lương",
        "Công dân học tập",
        None,
        "Đã được công nhận",
        90,
        "Đủ",
        2,
        None,
        None,
        "Đề nghị công nhận",
        "Gia đình gương mẫu",
        "Công nhận",
        None,
    ]
    # Local time in the sheet; never sent again, so no resubmission date.
    assert hoa["Ngày đăng ký"] == datetime(2026, 11, 20, 9, 0) and hoa["Ngày nộp lần đầu"] == datetime(
        2026, 11, 21, 9, 0
    )
    assert hoa["Ngày nộp lại gần nhất"] is None and hoa["Ngày quyết định"] == datetime(2026, 11, 23, 9, 0)
    rows_by_name = {r[1]: dict(zip(SUBMISSION_HEADER_VI, r, strict=False)) for r in rows[3:]}
    rejected = rows_by_name["Y Ken"]
    assert [
        rejected[c] for c in ("Trạng thái", "Điểm", "Đủ điều kiện", "Nộp trễ hạn", "Quyết định", "Ghi chú quyết định")
    ] == [
        "Chưa được công nhận",
        60,
        "Chưa",
        "Trễ hạn",
        "Không công nhận",
        "Thiếu minh chứng mục 3",
    ]
    again = rows_by_name["H'Lan"]
    assert again["Ngày nộp lần đầu"] == datetime(2026, 11, 21, 9, 0) and again["Ngày nộp lại gần nhất"] == datetime(
        2026, 11, 23, 9, 0
    )
    assert (
        again["Nộp trễ hạn"] is None
        and again["Ghi chú của chi hội"] == "Thiếu ảnh mục 2"
        and again["Chi hội đề nghị"] is None
    )
    household = rows_by_name["Y Bih Niê"]
    assert [
        household[c] for c in ("Năm sinh", "Danh hiệu", "Số người trong hộ", "Chi hội làm hộ", "Số ảnh minh chứng")
    ] == [
        1958,
        "Gia đình học tập",
        2,
        "Làm hộ",
        0,
    ]
    gone = rows_by_name["(đã xóa theo yêu cầu)"]
    assert gone["Trạng thái"] == "Đã được công nhận" and gone["Năm sinh"] is None
    widths = _widths(path)
    assert set(widths) >= {chr(ord("A") + i) for i in range(len(SUBMISSION_HEADER_VI))}
    assert widths["B"] >= len("(đã xóa theo yêu cầu)") and widths["Q"] >= 16 and widths["A"] < widths["B"]

    path, count = await _export(app, tmp_path, "submissions", "csv", locale="en")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads the file as UTF-8
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:7] == [
        "Reference",
        "Name / head of household",
        "Birth year",
        "Branch",
        "Title",
        "Household members",
        "Status",
    ]
    assert len(table) == count + 1 == 9
    row = next(r for r in table if r[1] == "Nguyễn Thị Hoa")
    assert row[4:10] == ["Learning citizen", "", "Recognised", "90", "Yes", "2"]
    assert row[12:15] == ["Recommended", "Gia đình gương mẫu", "Recognised"]
    assert row[16:] == ["20/11/2026 09:00", "21/11/2026 09:00", "", "23/11/2026 09:00"]  # dates as in the XLSX


async def test_statistics_against_targets_keep_anonymised_counts(app, tmp_path):
    # Stated once: the deleted person's application still counts, without a name.
    note = "Số liệu gồm 1 hồ sơ của người đã xóa dữ liệu theo yêu cầu (chỉ còn số đếm, không còn tên)."
    path, count, rows = await _seeded_sheet(app, tmp_path, "stats", "Thống kê theo thôn", note)
    assert rows[3] == [
        "Thôn/buôn",
        "Số hộ",
        "Số người lớn",
        "Gia đình học tập: đăng ký",
        "Gia đình học tập: tỉ lệ đăng ký (%)",
        "Gia đình học tập: được công nhận",
        "Gia đình học tập: tỉ lệ công nhận (%)",
        "Gia đình học tập: chỉ tiêu (%)",
        "Công dân học tập: đăng ký",
        "Công dân học tập: tỉ lệ đăng ký (%)",
        "Công dân học tập: được công nhận",
        "Công dân học tập: tỉ lệ công nhận (%)",
        "Công dân học tập: chỉ tiêu (%)",
    ]
    table = {r[0]: r[1:] for r in rows[4:]}
    assert count == 6 and list(table) == STATS_ROWS
    assert table["Buôn Ken"] == [
        412,
        1030,
        1,
        round(100 / 412, 1),
        1,
        round(100 / 412, 1),
        70,
        2,
        round(200 / 1030, 1),
        0,
        0,
        40,
    ]  # withdrawn not counted
    assert table["Thôn Hà Lương"][7:10:2] == [2, 2]
    tan_lap = table["Thôn Tân Lập"]
    assert [tan_lap[2], tan_lap[7], tan_lap[9]] == [1, 1, 1]  # the anonymised one still counts
    total = table["Xã Ea Tul"]
    assert total[:3] == [2310, 5840, 2] and total[4:6] == [1, round(100 / 2310, 1)] and total[6:8] == [70, 5]
    assert total[9:] == [3, round(100 * 3 / 5840, 1), 40]
    widths = _widths(path)
    assert all(widths[chr(ord("A") + i)] >= 8 for i in range(13)) and widths["A"] >= len("Thôn Trung Hòa")

    path, _ = await _export(app, tmp_path, "stats", "csv", locale="en")
    table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert table[0][3] == "Learning family: registered" and table[-1][0] == "Xã Ea Tul"


async def test_multi_year_register(app, tmp_path):
    note = "Số năm liên tục: số năm liền nhau được công nhận, tính ngược từ năm 2026."
    path, count, rows = await _seeded_sheet(app, tmp_path, "register", "Sổ theo dõi nhiều năm", note)
    assert rows[3] == [
        "Danh hiệu",
        "Họ tên / chủ hộ",
        "Thôn/buôn",
        "Các năm được công nhận",
        "Số năm liên tục",
        "Mốc khen (1, 3, 5 năm liên tục)",
    ]
    body = sorted(rows[4:], key=lambda r: (r[0], r[1]))
    assert body == [
        ["Công dân học tập", "Lê Văn Lâm", "Thôn Hà Lương", "2024, 2026", 1, 1],
        ["Công dân học tập", "Nguyễn Thị Hoa", "Thôn Hà Lương", "2024, 2025, 2026", 3, 3],
        ["Gia đình học tập", "Y Bih Niê", "Buôn Ken", "2026", 1, 1],
    ]
    assert count == 3 and _widths(path)["D"] >= len("2024, 2025, 2026")
    path, count = await _export(app, tmp_path, "register", "csv", year=2025)
    assert count == 1 and "Nguyễn Thị Hoa" in path.read_text(encoding="utf-8-sig")
    assert [
        streak([2020, 2021, 2022, 2023, 2024], 2024),
        streak([2023], 2024),
        milestone(5),
        milestone(4),
        milestone(0),
    ] == [5, 0, 5, 3, None]


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
    assert _sheet(document.document)[2] == SUBMISSION_HEADER_VI
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
    summary = turn.replies[1].text.split("\n")
    assert summary[:4] == [
        "Thống kê Xã Ea Tul năm 2026:",
        "Buôn Ken:",
        "• Gia đình học tập: Đã đăng ký 1 hộ, đã nộp 1. Đã công nhận 1 trên 412 hộ (0,2%) — chỉ tiêu 70%.",
        "• Công dân học tập: Đã đăng ký 2 người, đã nộp 2. Đã công nhận 0 trên 1.030 người (0%) — chỉ tiêu 40%.",
    ]
    assert summary[-3:] == [
        "• Gia đình học tập: Đã đăng ký 2 hộ, đã nộp 1. Đã công nhận 1 trên 2.310 hộ (0%) — chỉ tiêu 70%.",
        "• Công dân học tập: Đã đăng ký 5 người, đã nộp 5. Đã công nhận 3 trên 5.840 người (0,1%) — chỉ tiêu 40%.",
        "Số liệu gồm 1 hồ sơ của người đã xóa dữ liệu (chỉ còn số đếm).",
    ]


@pytest.mark.slow
def test_cli_export_and_invite(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    out = tmp_path / "out" / "stats.csv"
    done = hoctap(
        tmp_path, "export", "stats", "--format", "csv", "--commune", "ea-tul", "--year", "2026", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 6 rows" in done.stdout
    table = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert table[0][0] == "Thôn/buôn" and table[1][:3] == ["Buôn Ken", "412", "1030"]
    done = hoctap(tmp_path, "export", "submissions", "--commune", "ea-tul", "--lang", "en")
    assert done.returncode == 0, done.stderr
    column_a = [cell.value for cell in load_workbook(tmp_path / "submissions-ea-tul-2026.xlsx").active["A"]]
    assert column_a[0].startswith("List of applications — Xã Ea Tul — 2026") and "Reference" in column_a
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
    from tests.support.chat import console_session

    await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán", channel="console")
    text = await console_session(engine, "can", ["/xuat thongke csv"])
    assert "Thống kê theo thôn — Xã Ea Tul, năm 2026: 6 dòng.\n[" in text
    assert "stats-ea-tul-2026.csv]" in text
