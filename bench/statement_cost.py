"""CPU per statement and per transaction through the layers the bot uses, on a scratch table:
the AsyncSession, its AsyncConnection, `exec_driver_sql`, and the driver connection itself; then an
empty transaction opened by `sessions.begin()` and by `db.transaction` (the one each message runs
in), and a sent mark on its own.

The figures bound what moving a hot-path statement off SQLAlchemy's execution path could save
(bench/README.md, issue 18, fourth round). Usage:

    .venv/bin/python bench/statement_cost.py
    .venv/bin/python bench/statement_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SystemClock
from bot.storage.db import make_engine, make_sessionmaker, migrate, transaction
from bot.storage.deliveries import SentMarks, _processed

scratch = MetaData()
table = Table("bench_statement_cost", scratch, Column("id", Integer, primary_key=True), Column("b", Integer))
UPDATE = update(table).where(table.c.id == bindparam("i")).values(b=bindparam("bb"))
REPEAT = 2000


def cpu_per_call(total: float, calls: int) -> str:
    return f"{1e6 * total / calls:7.0f} µs"


async def statements(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(scratch.drop_all)
        await connection.run_sync(scratch.create_all)
        await connection.execute(insert(table), [{"b": 0}])
    sql = str(UPDATE.compile(dialect=engine.dialect))
    postgres = engine.dialect.name == "postgresql"

    async def via_session(session: AsyncSession) -> None:
        await session.execute(UPDATE, {"i": 1, "bb": 2})

    async def via_connection(session: AsyncSession) -> None:
        await (await session.connection()).execute(UPDATE, {"i": 1, "bb": 2})

    async def via_driver_sql(session: AsyncSession) -> None:
        await (await session.connection()).exec_driver_sql(sql, (2, 1))

    async def via_driver(session: AsyncSession) -> None:
        raw = await (await session.connection()).get_raw_connection()
        if postgres:
            await raw.driver_connection.execute(sql, 2, 1)
        else:
            raw.driver_connection.sqlite.execute(sql, (2, 1))

    ways: list[tuple[str, Callable[[AsyncSession], Awaitable[None]]]] = [
        ("session.execute (Core UPDATE)", via_session),
        ("connection.execute", via_connection),
        ("exec_driver_sql", via_driver_sql),
        ("driver connection", via_driver),
    ]
    sessions = make_sessionmaker(engine)
    for name, way in ways:
        async with sessions() as session, session.begin():
            for _ in range(100):
                await way(session)
            started = time.thread_time()
            for _ in range(REPEAT):
                await way(session)
            print(f"{name:34s}{cpu_per_call(time.thread_time() - started, REPEAT)} per statement")
    async with engine.begin() as connection:
        await connection.run_sync(scratch.drop_all)
    await engine.dispose()


async def transactions(url: str) -> None:
    engine = make_engine(url)
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    for label, begin in (
        ("empty transaction, sessions.begin()", sessions.begin),
        ("empty transaction, db.transaction", lambda: transaction(sessions)),
    ):
        started = time.thread_time()
        for _ in range(REPEAT // 2):
            async with begin() as session:
                await session.connection()
        print(f"{label:34s}{cpu_per_call(time.thread_time() - started, REPEAT // 2)}")
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(_processed).returning(_processed.c.id),
            [dict(channel="bench", message_id=f"m{i}", received_at=now, replies=[{"text": "x"}]) for i in range(1200)],
        )
        ids = [row[0] for row in result]
    marks = SentMarks(engine, SystemClock())
    for processed_id in ids[:200]:
        await marks.mark(processed_id)
    started = time.thread_time()
    for processed_id in ids[200:]:
        await marks.mark(processed_id)
    print(f"{'sent mark on its own':34s}{cpu_per_call(time.thread_time() - started, len(ids) - 200)}")
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL database to use (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        print(f"CPU time of the loop thread; {REPEAT} statements each; database: {url.split(':', 1)[0]}")
        await statements(url)
        if args.database_url:  # a shared server: the bot's tables go in a database of their own
            print("(transactions and marks: SQLite only, they need the bot's tables)")
            return
        await transactions(url)


if __name__ == "__main__":
    asyncio.run(main())
