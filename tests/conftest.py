from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.clock import VN_TZ, FakeClock
from bot.config import load_settings
from bot.storage.commune import apply_commune, load_commune_file
from tests.support.db import fresh_postgres, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_COMMUNE = ROOT / "examples" / "commune.yaml"
# 20 Nov 2026, 09:00 in Vietnam: ten days before the example self-declaration deadline.
START = datetime(2026, 11, 20, 9, 0, tzinfo=VN_TZ)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request, tmp_path):
    """Storage tests run on both a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        async with fresh_postgres() as url:
            yield url


@pytest.fixture
async def sqlite_db(tmp_path) -> str:
    return sqlite_url(tmp_path)


def make_settings(database_url: str, tmp_path: Path, **overrides):
    return load_settings(database_url=database_url, evidence_dir=tmp_path / "evidence", **overrides)


async def make_app(database_url: str, tmp_path: Path, clock: FakeClock, commune: bool = True, **overrides) -> App:
    app = await build_app(make_settings(database_url, tmp_path, **overrides), clock)
    if commune:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), clock.now())
    return app


@pytest.fixture
async def app(database_url, tmp_path, clock):
    application = await make_app(database_url, tmp_path, clock)
    yield application
    await application.close()


@pytest.fixture
async def sqlite_app(sqlite_db, tmp_path, clock):
    """Conversation tests: a SQLite file (PostgreSQL coverage lives in the storage tests)."""
    application = await make_app(sqlite_db, tmp_path, clock)
    yield application
    await application.close()


@pytest.fixture
def engine(sqlite_app):
    from bot.flows import ROUTER
    from bot.flows.engine import FlowEngine

    return FlowEngine(sqlite_app, ROUTER)


@pytest.fixture
def person(engine):
    """Make a person who talks to the bot: `hoa = person("hoa")`."""
    from tests.support.chat import Person

    return lambda user_id="u1", channel="test": Person(engine, user_id, channel)
