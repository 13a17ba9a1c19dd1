"""Engine, sessions and migrate-on-start.

SQLite is the embedded default; PostgreSQL (asyncpg) is the production database. Alembic owns
the schema on both: the application upgrades to head when it starts.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from bot.storage import sqlite_onloop

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant: PostgreSQL advisory lock id serialising migrations across workers.
MIGRATION_LOCK_ID = 7_301_2026
# APScheduler's job table lives in the same database but belongs to APScheduler, not to Alembic.
SCHEDULER_TABLE = "apscheduler_jobs"
FOREIGN_TABLES = frozenset({SCHEDULER_TABLE})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter: tables other libraries own in our database (and their indexes) are never
    compared, so autogenerate never proposes dropping them."""
    if type_ == "table" and name in FOREIGN_TABLES:
        return False
    table = getattr(obj, "table", None)
    return not (type_ in ("index", "column", "unique_constraint") and getattr(table, "name", None) in FOREIGN_TABLES)


def make_engine(url: str, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    # Names and answers are SQL parameters: keep them out of error messages and logs unless the
    # operator asked for SQL echo while debugging.
    kwargs.setdefault("hide_parameters", not echo)
    if url.startswith("sqlite"):
        if ":memory:" in url:  # one connection (StaticPool): no pool to size
            for sizing in ("pool_size", "max_overflow"):
                kwargs.pop(sizing, None)
        _ensure_sqlite_folder(url)
        if url.startswith("sqlite+aiosqlite"):
            kwargs.setdefault("async_creator", _on_loop_creator(url))
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    engine = create_async_engine(url, echo=echo, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    if engine.dialect.driver == "asyncpg":
        event.listen(engine.sync_engine, "before_cursor_execute", _begin_before_first_write)
    return engine


# A pooled connection used this recently is taken as alive; one idle longer is pinged first.
PING_AFTER_IDLE_SECONDS = 30.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Like `pool_pre_ping`, but only for connections that sat idle: pinging on every checkout cost
    a round trip per transaction (about one in eight of a message's trips to PostgreSQL), while a
    connection given back moments ago is alive but for a server restart in between. That rare case
    fails the first statement with an invalidated connection, which the flow engine retries on a
    fresh one (engine._run); a failed ping here makes the pool open a new connection at once."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool invalidates it and checks out another
            raise DisconnectionError(f"pooled connection failed its ping: {exc.__class__.__name__}") from exc

    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "checkout", checked_out)


def _on_loop_creator(url: str) -> Callable[[], Awaitable[Any]]:
    """aiosqlite connections whose statements run on the event loop (see `sqlite_onloop`),
    opened with the arguments SQLAlchemy's dialect gives for `url`."""
    parsed = make_url(url)
    args, options = parsed.get_dialect()().create_connect_args(parsed)
    options["timeout"] = 0  # never wait inside SQLite on the loop: see sqlite_onloop

    async def creator() -> Any:
        return await sqlite_onloop.connect(*args, **options)

    return creator


def _ensure_sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[-1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Connections on the loop wait for a busy database with asyncio sleeps (sqlite_onloop), never
    # inside SQLite, which would stop every conversation of the process meanwhile.
    on_loop = isinstance(getattr(dbapi_connection, "_connection", None), sqlite_onloop.LoopConnection)
    cursor.execute(f"PRAGMA busy_timeout={0 if on_loop else 30000}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock up front: two deferred transactions that both read and then write
    # would otherwise fail with "database is locked" instead of waiting their turn. Straight on
    # the driver's cursor: through `exec_driver_sql` the statement went through SQLAlchemy's
    # whole execution path on every transaction, for a statement with no parameters and no rows.
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """What `sessions.begin()` does, for the transaction every inbound message runs in: commit when
    the block ends, roll back when it raises, and always give the connection back. Without the
    two tasks that `sessions.begin()` creates to close the session shielded from cancellation:
    they cost about a quarter of an empty transaction's CPU (bench/README.md, issue 18, fifth
    round). A cancellation that arrives while the session closes can still leave its connection
    to be reclaimed by the pool's garbage collection; on SQLite the close never waits.

    On PostgreSQL the transaction begins at its first write (`_begin_before_first_write`)."""
    session = sessions()
    session.info[BEGIN_AT_FIRST_WRITE] = True
    try:
        yield session
        await session.commit()
    finally:
        deferred = session.info.pop(_DEFERRED, None)
        if deferred is not None:  # the connection goes back to the pool as it came
            info, dbapi_connection = deferred
            info.pop(BEGIN_AT_FIRST_WRITE, None)
            dbapi_connection.autocommit = False
        await session.close()  # rolls back whatever is still open


# PostgreSQL: a message's transaction sends BEGIN only before its first write. Its reads run
# before that in autocommit, which under READ COMMITTED (PostgreSQL's default, which the bot
# keeps) sees what they would have seen inside: there every statement takes a snapshot of its
# own. What the engine guards with the conversation's version check and the processed message's
# unique key is unchanged. A step whose only write is one statement marked `RUNS_ALONE` (the
# engine's: the conversation and its processed message, with a level step's answer and score,
# storage/deliveries.py) sends no BEGIN and no COMMIT: one statement is atomic by itself. Two
# round trips fewer on about half the messages (bench/README.md, issue 18, sixth round).
BEGIN_AT_FIRST_WRITE = "hoctap_begin_at_first_write"  # session.info: set by `transaction`
RUNS_ALONE = "hoctap_runs_alone"  # execution option: may be the transaction's only write
_DEFERRED = "hoctap_deferred_begin"  # session.info: (connection info, driver connection)
_WROTE_ALONE = "wrote alone"
# A SELECT that locks rows or takes an advisory lock needs its transaction, as a write does (and
# so does one read through a server-side cursor: `_begin_before_first_write`).
_LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE)\b|\bFOR\s+KEY\s+SHARE\b|pg_advisory", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _plain_read(statement: str) -> bool:
    """A statement that only reads (the statements of a step are the same few strings)."""
    return statement.lstrip()[:6].upper() == "SELECT" and _LOCKING.search(statement) is None


@event.listens_for(Session, "after_begin")
def _defer_begin(session: Session, _transaction: Any, connection: Connection) -> None:
    if session.info.get(BEGIN_AT_FIRST_WRITE) and connection.dialect.driver == "asyncpg":
        dbapi_connection: Any = connection.connection.dbapi_connection
        dbapi_connection.autocommit = True  # SQLAlchemy's asyncpg adapter: no BEGIN until told
        connection.info[BEGIN_AT_FIRST_WRITE] = True
        session.info[_DEFERRED] = (connection.info, dbapi_connection)


def _begin_before_first_write(
    conn: Connection, _cursor: Any, statement: str, _parameters: Any, context: Any, _executemany: bool
) -> None:
    state = conn.info.get(BEGIN_AT_FIRST_WRITE)
    if state is None:
        return
    # A read through a server-side cursor (results streamed, `yield_per`) needs a transaction.
    streamed = context is not None and context.execution_options.get("stream_results", False)
    if _plain_read(statement) and not streamed:
        return
    if state == _WROTE_ALONE:
        raise RuntimeError("a write after the statement that ran as the transaction's only write")
    if context is not None and context.execution_options.get(RUNS_ALONE):
        conn.info[BEGIN_AT_FIRST_WRITE] = _WROTE_ALONE  # committed as it runs: nothing may follow
        return
    del conn.info[BEGIN_AT_FIRST_WRITE]
    driver: Any = conn.connection.dbapi_connection
    driver.autocommit = False  # the adapter sends BEGIN before this statement


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: newest). Safe to call from several workers."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
