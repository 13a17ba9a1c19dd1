"""Test databases: a fresh SQLite file, or a fresh database on a real PostgreSQL server.

PostgreSQL tests use HOCTAP_TEST_PG_URL (default: the local server, trust auth). They skip when
no server answers, unless HOCTAP_REQUIRE_PG=1 (set by .ci/run), where a missing server fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

PG_URL = os.environ.get("HOCTAP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("HOCTAP_REQUIRE_PG") == "1"

_pg_available: bool | None = None


async def pg_available() -> bool:
    global _pg_available
    if _pg_available is None:
        engine = create_async_engine(PG_URL)
        try:
            async with engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
            _pg_available = True
        except Exception:
            _pg_available = False
        finally:
            await engine.dispose()
    return _pg_available


async def create_database(server_url: str = PG_URL, prefix: str = "hoctap_t", template: str | None = None) -> str:
    """Create a database on the server of `server_url` (empty, or a copy of `template`); returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str, server_url: str = PG_URL) -> None:
    """Drop the database of `url` (made by `create_database`), closing its connections."""
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def fresh_postgres(migrated: bool = False) -> AsyncIterator[str]:
    """A new database for one test: empty, or (`migrated`) a copy of the session's migrated template."""
    if not await pg_available():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (HOCTAP_REQUIRE_PG=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    url = await create_database(template=TEMPLATES.postgres() if migrated else None)
    if migrated:
        MIGRATED.add(url)
    try:
        yield url
    finally:
        MIGRATED.discard(url)
        await drop_database(url)


def sqlite_url(folder: Path, name: str = "hoctap.db") -> str:
    return f"sqlite+aiosqlite:///{folder / name}"


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[1])


# ---- migrated templates -----------------------------------------------------------------------
#
# Migrating a new database costs about half a second; the suite makes hundreds. Each test session
# migrates once into a template and every test gets a copy: a file copy on SQLite, `CREATE
# DATABASE … TEMPLATE` on PostgreSQL. Copies are recorded in MIGRATED so `make_app` skips the
# (no-op) migration; a SQLite copy still untouched when an app first opens it (FRESH) can be
# swapped for the template that already holds the example commune.

MIGRATED: set[str] = set()
FRESH: set[str] = set()


def _run_blocking(make: Callable[[], Awaitable[object]]) -> object:
    """Run a coroutine to completion from sync or async code (in its own thread and loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result()


class Templates:
    """Template databases built on first use and removed when the session ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folder: Path | None = None
        self._sqlite: dict[str, Path] = {}
        self._postgres: str | None = None

    def _dir(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hoctap-templates-"))
        return self._folder

    def sqlite(self, name: str, build: Callable[[str], Awaitable[None]]) -> Path:
        """The template file `name`, made by `build(url)` the first time it is asked for."""
        with self._lock:
            if name not in self._sqlite:
                path = self._dir() / f"{name}.db"
                _run_blocking(lambda: build(sqlite_url(path.parent, path.name)))
                self._sqlite[name] = path
            return self._sqlite[name]

    def postgres(self) -> str:
        """The name of the session's migrated PostgreSQL template database."""
        with self._lock:
            if self._postgres is None:
                self._postgres = _run_blocking(_migrated_postgres_template)  # type: ignore[assignment]
            return self._postgres  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            if self._postgres is not None:
                url = make_url(PG_URL).set(database=self._postgres).render_as_string(hide_password=False)
                _run_blocking(lambda: drop_database(url))
                self._postgres = None
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None
            self._sqlite.clear()


async def _migrate_url(url: str) -> None:
    from bot.storage.db import make_engine, migrate

    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def _migrated_postgres_template() -> str:
    url = await create_database(prefix="hoctap_tmpl")
    await _migrate_url(url)
    return make_url(url).database or ""


TEMPLATES = Templates()


def migrated_sqlite(folder: Path, name: str = "hoctap.db") -> str:
    """A SQLite file in `folder` copied from the session's migrated template."""
    url = sqlite_url(folder, name)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATES.sqlite("migrated", _migrate_url), sqlite_path(url))
    MIGRATED.add(url)
    FRESH.add(url)
    return url


def take_fresh(url: str) -> bool:
    """Whether no app has opened this template copy yet (from now on, one has)."""
    if url in FRESH:
        FRESH.discard(url)
        return True
    return False


def copy_sqlite_template(url: str, name: str, build: Callable[[str], Awaitable[None]]) -> None:
    """Overwrite an untouched SQLite copy with another template (made by `build` on first use)."""
    shutil.copyfile(TEMPLATES.sqlite(name, build), sqlite_path(url))
