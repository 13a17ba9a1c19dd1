"""Test databases: a fresh SQLite file, or a fresh database on a real PostgreSQL server.

PostgreSQL tests use HOCTAP_TEST_PG_URL (default: the local server, trust auth). They skip when
no server answers, unless HOCTAP_REQUIRE_PG=1 (set by .ci/run), where a missing server fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

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


async def create_database(server_url: str = PG_URL, prefix: str = "hoctap_t") -> str:
    """Create an empty database on the server of `server_url`; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
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
async def fresh_postgres() -> AsyncIterator[str]:
    if not await pg_available():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (HOCTAP_REQUIRE_PG=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


def sqlite_url(folder: Path, name: str = "hoctap.db") -> str:
    return f"sqlite+aiosqlite:///{folder / name}"
