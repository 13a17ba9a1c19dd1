from __future__ import annotations

import os
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
# Tests run with the secrets a real installation must have (the placeholder is refused wherever
# the web app is served); tests of the refusal set the placeholder explicitly.
TEST_SIGNING_SECRET = "test-signing-secret-7Qm2xV9pL4"
TEST_TOKEN_KEY = "iNc7NXEia4R5Z184f4NDNiKolgrgh_lPnGdreGGF3do="


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# The database most tests run on: a SQLite file, or a fresh PostgreSQL database for every test
# when HOCTAP_TEST_DB=postgres (.ci/run runs the whole suite both ways).
SUITE_DB = os.environ.get("HOCTAP_TEST_DB", "sqlite")
BOTH = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH if SUITE_DB == "sqlite" else [pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request, tmp_path):
    """Storage tests run on both a SQLite file and a real PostgreSQL database (in the PostgreSQL
    pass of the suite, only on PostgreSQL: the SQLite pass already covered the other)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        async with fresh_postgres() as url:
            yield url


@pytest.fixture
async def suite_db(tmp_path):
    if SUITE_DB == "postgres":
        async with fresh_postgres() as url:
            yield url
    else:
        yield sqlite_url(tmp_path)


def make_settings(database_url: str, tmp_path: Path, **overrides):
    overrides.setdefault("signing_secret", TEST_SIGNING_SECRET)
    overrides.setdefault("token_encryption_key", TEST_TOKEN_KEY)
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
async def suite_app(suite_db, tmp_path, clock):
    """An app with the example commune on the suite's database."""
    application = await make_app(suite_db, tmp_path, clock)
    yield application
    await application.close()


@pytest.fixture
def engine(suite_app):
    from bot.flows import ROUTER
    from bot.flows.engine import FlowEngine

    return FlowEngine(suite_app, ROUTER)


@pytest.fixture
def person(engine):
    """Make a person who talks to the bot: `hoa = person("hoa")`."""
    from tests.support.chat import Person

    return lambda user_id="u1", channel="test": Person(engine, user_id, channel)
