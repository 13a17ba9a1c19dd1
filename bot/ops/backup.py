"""Backup and restore of the database and the evidence files, as one folder with a manifest.

PostgreSQL is dumped with pg_dump (custom format) and restored with pg_restore; SQLite is copied
with its online backup API (consistent while the bot runs). Evidence files are copied as they are
(content-addressed, so a restore can verify every file against its sha256).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.pgdump"
EVIDENCE = "evidence"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    database_file: str
    evidence_files: int


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database).expanduser().resolve()


def libpq_url(url: str) -> str:
    """pg_dump speaks libpq: drop the SQLAlchemy driver name (postgresql+asyncpg → postgresql)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(database_url: str, evidence_dir: Path, target: Path, now: datetime) -> BackupResult:
    """Write a new backup folder under `target` and return it."""
    folder = Path(target) / f"hoctap-{now.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=False)
    backend = make_url(database_url).get_backend_name()
    if backend == "sqlite":
        database_file = SQLITE_FILE
        source = sqlite3.connect(_sqlite_path(database_url))
        try:
            destination = sqlite3.connect(folder / SQLITE_FILE)
            with destination:
                source.backup(destination)
            destination.close()
        finally:
            source.close()
    elif backend == "postgresql":
        database_file = PG_FILE
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(folder / PG_FILE), libpq_url(database_url)])
    else:
        raise BackupError(f"unsupported database backend {backend!r}")

    files: dict[str, str] = {}
    evidence_dir = Path(evidence_dir)
    if evidence_dir.is_dir():
        for path in sorted(p for p in evidence_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
            relative = path.relative_to(evidence_dir).as_posix()
            copy = folder / EVIDENCE / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            files[relative] = _sha256(copy)
    manifest = {
        "created_at": now.isoformat(),
        "backend": backend,
        "database_file": database_file,
        "database_sha256": _sha256(folder / database_file),
        "evidence": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return BackupResult(folder, database_file, len(files))


def restore(folder: Path, database_url: str, evidence_dir: Path) -> int:
    """Restore a backup folder into the configured database and evidence folder.

    Every file is checked against the manifest first; nothing is touched if one does not match.
    Returns the number of evidence files restored.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder}: no readable {MANIFEST}") from exc
    database_file = folder / manifest["database_file"]
    if _sha256(database_file) != manifest["database_sha256"]:
        raise BackupError(f"{database_file}: checksum mismatch")
    for relative, digest in manifest["evidence"].items():
        if _sha256(folder / EVIDENCE / relative) != digest:
            raise BackupError(f"evidence/{relative}: checksum mismatch")

    backend = make_url(database_url).get_backend_name()
    if backend != manifest["backend"]:
        raise BackupError(f"backup is of a {manifest['backend']} database, target is {backend}")
    if backend == "sqlite":
        target = _sqlite_path(database_url)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        tmp = target.with_name(target.name + ".restoring")
        shutil.copy2(database_file, tmp)
        os.replace(tmp, target)
    else:
        _run([
            "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
            "--dbname", libpq_url(database_url), str(database_file),
        ])

    evidence_dir = Path(evidence_dir)
    for relative in manifest["evidence"]:
        destination = evidence_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / EVIDENCE / relative, destination)
    return len(manifest["evidence"])
