"""Exporting 100 000 submissions: time and peak memory of the streamed XLSX and CSV exports,
against two baselines measured in the same run on the same database:

* read   — stream the same rows from the database and format them, writing nothing
           (the floor: what any export must pay);
* naive  — load every row into a list first, then write a normal (in-memory) XlsxWriter book
           (what the streamed export avoids).

Each mode runs in a fresh child process so its peak RSS is its own. Usage:

    .venv/bin/python bench/export.py            # 100 000 rows
    .venv/bin/python bench/export.py --rows 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("read", "csv", "xlsx", "naive")
START = datetime(2026, 11, 20, 9, 0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _app(folder: Path):
    from bot.app import build_app
    from bot.clock import VN_TZ, FakeClock
    from bot.config import load_settings

    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}", evidence_dir=folder / "evidence"
    )
    return await build_app(settings, FakeClock(START.replace(tzinfo=VN_TZ)))


async def seed(folder: Path, rows: int) -> None:
    """The example commune, then `rows` citizens each with one submission (about a third decided).
    Rows go in through the sqlite3 module's executemany: seeding is not what is measured."""
    import sqlite3

    from sqlalchemy import select

    from bot.storage.commune import apply_commune, branches_of, load_commune_file
    from bot.storage.models import Campaign

    app = await _app(folder)
    now = app.clock.now()
    async with app.sessions.begin() as session:
        commune = await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), now)
        branches = [b.id for b in await branches_of(session, commune.id)]
        campaign = await session.scalar(
            select(Campaign).where(Campaign.commune_id == commune.id, Campaign.year == 2026)
        )
        campaign_id = campaign.id
    criteria_id = app.catalog.for_title("cd", 2026).id
    await app.close()
    stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    states = ("registered", "declaring", "submitted", "recommended", "approved", "rejected", "needs_info")
    with sqlite3.connect(folder / "bench.db") as db:
        db.executemany(
            "INSERT INTO people (id, full_name, birth_year, branch_id, locale, created_at) VALUES (?, ?, ?, ?, 'vi', ?)",
            (
                (i, f"Nguyễn Thị Người {i}", 1950 + i % 50, branches[i % len(branches)], stamp)
                for i in range(1, rows + 1)
            ),
        )
        db.executemany(
            "INSERT INTO submissions (id, reference, campaign_id, title, subject_kind, subject_key, person_id, branch_id,"
            " criteria_set_id, state, score, recognisable, created_by_person_id, created_at, updated_at, submitted_at,"
            " decided_at, version) VALUES (?, ?, ?, 'cd', 'person', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 3)",
            (
                (
                    i,
                    f"CD-2026-{i:06d}",
                    campaign_id,
                    f"p:{i}",
                    i,
                    branches[i % len(branches)],
                    criteria_id,
                    states[i % len(states)],
                    i % 101,
                    int(i % 101 >= 80),
                    i,
                    stamp,
                    stamp,
                    stamp if i % len(states) >= 2 else None,
                    stamp if states[i % len(states)] in ("approved", "rejected") else None,
                )
                for i in range(1, rows + 1)
            ),
        )
        db.executemany(
            "INSERT INTO submission_events (submission_id, from_state, to_state, actor_kind, note, at)"
            " VALUES (?, 'recommended', ?, 'commune', ?, ?)",
            (
                (
                    i,
                    states[i % len(states)],
                    "Thiếu minh chứng" if states[i % len(states)] == "rejected" else None,
                    stamp,
                )
                for i in range(1, rows + 1)
                if states[i % len(states)] in ("approved", "rejected")
            ),
        )


async def run_mode(folder: Path, mode: str) -> dict:
    from sqlalchemy import select

    from bot.i18n import get_translator
    from bot.review.exports import SUBMISSION_COLUMNS, submission_rows, write_export
    from bot.storage.models import OrgUnit

    app = await _app(folder)
    rss_ready = peak_rss_mb()
    started = time.perf_counter()
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        t = get_translator("vi")
        count = 0
        if mode == "read":
            async for batch in submission_rows(session, app.catalog, commune.id, 2026, t):
                count += len(batch)
        elif mode in ("csv", "xlsx"):
            count = await write_export(
                session,
                app.catalog,
                kind="submissions",
                fmt=mode,
                commune=commune,
                year=2026,
                locale="vi",
                path=folder / f"out.{mode}",
            )
        else:
            import xlsxwriter

            everything = []
            async for batch in submission_rows(session, app.catalog, commune.id, 2026, t):
                everything.extend(batch)
            book = xlsxwriter.Workbook(str(folder / "naive.xlsx"), {"remove_timezone": True})
            sheet = book.add_worksheet()
            sheet.write_row(0, 0, [t(k) for k in SUBMISSION_COLUMNS])
            for row_number, values in enumerate(everything, start=1):
                sheet.write_row(row_number, 0, [v if v is not None else "" for v in values])
            book.close()
            count = len(everything)
    seconds = time.perf_counter() - started
    await app.close()
    size = (
        (folder / {"csv": "out.csv", "xlsx": "out.xlsx", "naive": "naive.xlsx"}[mode]).stat().st_size
        if mode != "read"
        else 0
    )
    return {
        "mode": mode,
        "rows": count,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "ready_rss_mb": rss_ready,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(run_mode(args.folder, args.child))))
        return

    with tempfile.TemporaryDirectory(prefix="hoctap-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        asyncio.run(seed(folder, args.rows))
        print(f"seeded {args.rows} submissions in {time.perf_counter() - started:.1f}s")
        results = {}
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--folder", str(folder)],
                capture_output=True,
                text=True,
                timeout=170,
            )
            if done.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{done.stderr}")
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    read, naive = results["read"], results["naive"]
    print(
        f"\n{'mode':6} {'rows':>7} {'time s':>7} {'× read':>7} {'peak MB':>8} {'+MB':>6} {'peak × naive':>12} {'file MB':>8}"
    )
    for mode in MODES:
        r = results[mode]
        extra = r["peak_rss_mb"] - r["ready_rss_mb"]
        print(
            f"{mode:6} {r['rows']:>7} {r['seconds']:>7.1f} {r['seconds'] / read['seconds']:>7.2f} "
            f"{r['peak_rss_mb']:>8.0f} {extra:>6.0f} {r['peak_rss_mb'] / naive['peak_rss_mb']:>12.2f} {r['bytes'] / 1e6:>8.1f}"
        )
    print("\n+MB: peak RSS above the process after start-up (imports, database open).")


if __name__ == "__main__":
    main()
