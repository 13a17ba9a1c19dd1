from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.clock import VN_TZ, FakeClock
from bot.config import load_settings
from bot.storage.commune import apply_commune, load_commune_file
from tests.support.db import (
    MIGRATED,
    copy_sqlite_template,
    fresh_postgres,
    migrated_sqlite,
    sqlite_url,
    take_fresh,
)

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


BOTH_PARAMS = BOTH if SUITE_DB == "sqlite" else [pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_PARAMS)
async def database_url(request, tmp_path):
    """An empty database, for storage tests that run on both a SQLite file and a real PostgreSQL
    database (in the PostgreSQL pass of the suite, only on PostgreSQL: the SQLite pass already
    covered the other)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        async with fresh_postgres() as url:
            yield url


@pytest.fixture(params=BOTH_PARAMS)
async def migrated_database_url(request, tmp_path):
    """Like `database_url`, already migrated (a copy of the session's template)."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path)
    else:
        async with fresh_postgres(migrated=True) as url:
            yield url


@pytest.fixture
async def suite_db(tmp_path):
    """The suite's database for one test, migrated: a SQLite file or (PostgreSQL pass) a database."""
    if SUITE_DB == "postgres":
        async with fresh_postgres(migrated=True) as url:
            yield url
    else:
        yield migrated_sqlite(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _database_templates():
    """Template databases live for the session; removed at its end."""
    from tests.support.db import TEMPLATES

    yield TEMPLATES
    TEMPLATES.close()


def make_settings(database_url: str, tmp_path: Path, **overrides):
    overrides.setdefault("signing_secret", TEST_SIGNING_SECRET)
    overrides.setdefault("token_encryption_key", TEST_TOKEN_KEY)
    return load_settings(database_url=database_url, evidence_dir=tmp_path / "evidence", **overrides)


async def _example_commune_template(url: str) -> None:
    """The migrated schema, the criteria and the example commune as of START."""
    app = await build_app(load_settings(database_url=url), FakeClock(START))
    try:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), START)
    finally:
        await app.close()


async def make_app(database_url: str, tmp_path: Path, clock: FakeClock, commune: bool = True, **overrides) -> App:
    # A database copied from a template needs no migration, and an untouched SQLite copy can
    # start from the template that already holds the example commune (set up as of START).
    has_commune = take_fresh(database_url) and commune and clock.now() == START
    if has_commune:
        copy_sqlite_template(database_url, "example-commune", _example_commune_template)
    app = await build_app(
        make_settings(database_url, tmp_path, **overrides), clock, run_migrations=database_url not in MIGRATED
    )
    if commune and not has_commune:
        async with app.sessions.begin() as session:
            await apply_commune(session, load_commune_file(EXAMPLE_COMMUNE), clock.now())
    return app


@pytest.fixture
async def app(migrated_database_url, tmp_path, clock):
    application = await make_app(migrated_database_url, tmp_path, clock)
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
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router

    return FlowEngine(suite_app, build_router())


@pytest.fixture
def person(engine):
    """Make a person who talks to the bot: `hoa = person("hoa")`."""
    from tests.support.chat import Person

    return lambda user_id="u1", channel="test": Person(engine, user_id, channel)
