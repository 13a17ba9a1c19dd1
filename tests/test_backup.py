"""Backup then restore gives the same data: every table row and every evidence file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.ops.backup import BackupError, backup, restore
from bot.storage.db import make_engine
from bot.storage.models import Base
from tests.conftest import make_app
from tests.support.chat import Person
from tests.support.db import fresh_postgres, sqlite_url
from tests.support.images import jpeg, png
from tests.support.scripts import register_citizen


async def _snapshot(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = {}
            for name, table in Base.metadata.tables.items():
                rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
                tables[name] = [tuple(r) for r in rows]
            return tables
    finally:
        await engine.dispose()


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


async def _fill(app) -> None:
    hoa = Person(FlowEngine(app, build_router()), "hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.sends_photo(jpeg((1, 2, 3)))
    await hoa.sends_photo(png())
    await hoa.taps("Xong")


async def test_backup_and_restore_round_trip(database_url, tmp_path, clock):
    app = await make_app(database_url, tmp_path, clock)
    await _fill(app)
    evidence = Path(app.settings.evidence_dir)
    await app.close()
    before_rows = await _snapshot(database_url)
    before_files = _files(evidence)
    assert len(before_files) == 2 and before_rows["answers"] and before_rows["evidence"]

    result = backup(database_url, evidence, tmp_path / "backups", clock.now())
    assert result.evidence_files == 2

    async def restore_into(url: str, folder: Path) -> None:
        restore(result.folder, url, folder)
        assert await _snapshot(url) == before_rows
        assert _files(folder) == before_files

    if database_url.startswith("sqlite"):
        await restore_into(sqlite_url(tmp_path / "elsewhere"), tmp_path / "evidence-restored")
        # Restoring over a database that moved on brings back the backed-up state.
        app = await make_app(database_url, tmp_path, clock, commune=False)
        await Person(FlowEngine(app, build_router()), "someone-else").says("xin chào")
        await app.close()
        await restore_into(database_url, evidence)
    else:
        async with fresh_postgres() as other:
            # The target is a migrated, non-empty database: --clean replaces it.
            app = await make_app(other, tmp_path / "other", clock)
            await app.close()
            await restore_into(other, tmp_path / "evidence-restored")


def test_a_damaged_backup_is_refused_before_anything_changes(tmp_path, clock):
    import sqlite3

    db = tmp_path / "live.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    evidence = tmp_path / "ev"
    (evidence / "ab").mkdir(parents=True)
    (evidence / "ab" / "x.jpg").write_bytes(jpeg())
    result = backup(f"sqlite+aiosqlite:///{db}", evidence, tmp_path / "b", clock.now())
    (result.folder / "evidence" / "ab" / "x.jpg").write_bytes(b"tampered")
    target = tmp_path / "target.db"
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore(result.folder, f"sqlite+aiosqlite:///{target}", tmp_path / "ev2")
    assert not target.exists() and not (tmp_path / "ev2").exists()
    # Repaired, it is still refused by a PostgreSQL target: backends are not mixed.
    (result.folder / "evidence" / "ab" / "x.jpg").write_bytes(jpeg())
    with pytest.raises(BackupError, match="backup is of a sqlite database, target is postgresql"):
        restore(result.folder, "postgresql+asyncpg://x@127.0.0.1/none", tmp_path / "ev3")
    assert not (tmp_path / "ev3").exists()


@pytest.mark.slow
def test_backup_and_restore_from_the_command_line(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "EVIDENCE_DIR": str(tmp_path / "ev"),
    }
    root = Path(__file__).resolve().parent.parent

    def hoctap(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    assert hoctap("init", "--commune", str(root / "examples" / "commune.yaml")).returncode == 0
    done = hoctap("backup", "--out", str(tmp_path / "bk"))
    assert done.returncode == 0, done.stderr
    folder = next((tmp_path / "bk").iterdir())
    (tmp_path / "cli.db").unlink()
    done = hoctap("restore", str(folder))
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stdout
    import sqlite3

    names = [r[0] for r in sqlite3.connect(tmp_path / "cli.db").execute("SELECT name FROM org_units ORDER BY id")]
    assert "Xã Ea Tul" in names and "Buôn Ken" in names


def test_backup_files_are_readable_by_their_owner_only(tmp_path, clock):
    import sqlite3
    import stat

    db = tmp_path / "live.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    evidence = tmp_path / "ev"
    (evidence / "ab" / "cd").mkdir(parents=True)
    (evidence / "ab" / "cd" / "x.jpg").write_bytes(jpeg())
    (evidence / "ab" / "cd" / "x.jpg").chmod(0o644)
    previous = os.umask(0o022)  # a usual umask: without care, everything would be world-readable
    try:
        result = backup(f"sqlite+aiosqlite:///{db}", evidence, tmp_path / "backups", clock.now())
    finally:
        os.umask(previous)
    modes = {
        p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "backups", *sorted((tmp_path / "backups").rglob("*"))]
    }
    folder = result.folder.relative_to(tmp_path).as_posix()
    assert modes == {
        "backups": 0o700,
        folder: 0o700,
        f"{folder}/database.sqlite": 0o600,
        f"{folder}/evidence": 0o700,
        f"{folder}/evidence/ab": 0o700,
        f"{folder}/evidence/ab/cd": 0o700,
        f"{folder}/evidence/ab/cd/x.jpg": 0o600,
        f"{folder}/manifest.json": 0o600,
    }


SHIM = """#!{python}
import json, os, sys
args = sys.argv
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": args, "PGPASSWORD": os.environ.get("PGPASSWORD")}}) + "\\n")
if "--file" in args:
    with open(args[args.index("--file") + 1], "wb") as out:
        out.write(b"PGDMP fake dump")
"""


def test_the_database_password_goes_in_the_environment_not_on_the_command_line(tmp_path, clock, monkeypatch):
    """`ps` shows every local user a command line: pg_dump and pg_restore get PGPASSWORD instead.
    Shims named pg_dump and pg_restore record what they were started with."""
    import json

    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    for name in ("pg_dump", "pg_restore"):
        shim = bin_dir / name
        shim.write_text(SHIM.format(python=sys.executable, log=str(calls)))
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = "postgresql+asyncpg://hoctap:S3cret%2FPassw0rd@db.example:5432/hoctap"

    result = backup(url, tmp_path / "no-evidence", tmp_path / "backups", clock.now())
    restore(result.folder, url, tmp_path / "evidence")
    dump, restored = [json.loads(line) for line in calls.read_text().splitlines()]
    assert dump["argv"][1:] == [
        "--format=custom",
        "--no-owner",
        "--file",
        str(result.folder / "database.pgdump"),
        "postgresql://hoctap@db.example:5432/hoctap",
    ]
    assert restored["argv"][-3:] == [
        "--dbname",
        "postgresql://hoctap@db.example:5432/hoctap",
        str(result.folder / "database.pgdump"),
    ]
    for call in (dump, restored):
        assert not any("S3cret" in arg for arg in call["argv"])
        assert call["PGPASSWORD"] == "S3cret/Passw0rd"
