"""Backup and restore of the database and the evidence files, as one folder with a manifest.

PostgreSQL is dumped with pg_dump (custom format) and restored with pg_restore; SQLite is copied
with its online backup API (consistent while the bot runs). Evidence files are copied as they are
(content-addressed, so a restore can verify every file against its sha256).

A backup holds personal data: its folders are 0700 and its files 0600, whatever the umask. The
database password goes to pg_dump / pg_restore in PGPASSWORD, never on their command line (where
`ps` shows it to every local user).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.pgdump"
EVIDENCE = "evidence"
FOLDER_MODE = 0o700
FILE_MODE = 0o600


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
    """pg_dump speaks libpq: drop the SQLAlchemy driver name (postgresql+asyncpg → postgresql)
    and the password (it goes in the environment, see `pg_env`)."""
    parsed = make_url(url).set(drivername="postgresql").difference_update_query(["password"])
    return parsed._replace(password=None).render_as_string(hide_password=False)  # URL.set() cannot unset


def pg_env(url: str) -> dict[str, str]:
    """The environment for pg_dump / pg_restore: ours, with PGPASSWORD when the URL has one."""
    parsed = make_url(url)
    password = parsed.password or parsed.query.get("password")
    env = dict(os.environ)
    if isinstance(password, str) and password:
        env["PGPASSWORD"] = password
    return env


def pg_dump_args(url: str, output: Path) -> list[str]:
    return ["pg_dump", "--format=custom", "--no-owner", "--file", str(output), libpq_url(url)]


def pg_restore_args(url: str, dump: Path) -> list[str]:
    return [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--dbname",
        libpq_url(url),
        str(dump),
    ]


def _run(args: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def _private_files() -> Iterator[None]:
    """Files and folders made meanwhile are readable by their owner only (umask 077)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _lock_down(folder: Path) -> None:
    """0700 for the folder and every folder in it, 0600 for every file (copies keep their source's mode)."""
    folder.chmod(FOLDER_MODE)
    for path in folder.rglob("*"):
        path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(database_url: str, evidence_dir: Path, target: Path, now: datetime) -> BackupResult:
    """Write a new backup folder under `target` and return it."""
    with _private_files():
        target = Path(target)
        if not target.exists():
            target.mkdir(parents=True, mode=FOLDER_MODE)
        folder = target / f"hoctap-{now.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(mode=FOLDER_MODE, exist_ok=False)
        try:
            return _write_backup(database_url, Path(evidence_dir), folder, now)
        finally:
            _lock_down(folder)


def _write_backup(database_url: str, evidence_dir: Path, folder: Path, now: datetime) -> BackupResult:
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
        _run(pg_dump_args(database_url, folder / PG_FILE), pg_env(database_url))
    else:
        raise BackupError(f"unsupported database backend {backend!r}")

    files: dict[str, str] = {}
    if evidence_dir.is_dir():
        for path in sorted(p for p in evidence_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
            relative = path.relative_to(evidence_dir).as_posix()
            copy = folder / EVIDENCE / relative
            copy.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
            shutil.copyfile(path, copy)
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
        _run(pg_restore_args(database_url, database_file), pg_env(database_url))

    evidence_dir = Path(evidence_dir)
    for relative in manifest["evidence"]:
        destination = evidence_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / EVIDENCE / relative, destination)  # not the backup's 0600: as the bot writes them
    return len(manifest["evidence"])
