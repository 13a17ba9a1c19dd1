"""SQLite writers take turns in the process (bot/storage/sqlite_onetrip.py): a transaction waits
for the one before it to end, first come first served (an asyncio lock), instead of polling SQLite's busy handler."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text

from bot.storage import sqlite_onetrip
from bot.storage.db import make_engine
from tests.support.db import sqlite_url


async def test_transactions_wait_for_the_one_holding_the_database(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE log (who TEXT)"))
    order: list[str] = []
    first_holds = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO log VALUES ('first')"))
            order.append("first in")
            first_holds.set()
            await release_first.wait()
        order.append("first out")

    async def writer(name: str) -> None:
        async with engine.begin() as connection:
            order.append(f"{name} in")
            await connection.execute(text(f"INSERT INTO log VALUES ('{name}')"))

    holder = asyncio.create_task(first())
    await first_holds.wait()
    waiting = [asyncio.create_task(writer(name)) for name in ("second", "third")]
    await asyncio.sleep(0.2)
    assert order == ["first in"]  # the others wait for their turn
    release_first.set()
    await asyncio.gather(holder, *waiting)
    assert order[0] == "first in" and sorted(order[1:]) == ["first out", "second in", "third in"]
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM log"))).scalar_one() == 3
    await engine.dispose()


async def test_a_turn_not_given_in_time_fails_as_a_locked_database(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_onetrip, "TURN_TIMEOUT", 0.2)
    engine = make_engine(sqlite_url(tmp_path))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        with pytest.raises(Exception) as failure:
            async with engine.begin() as second:  # the same task waits for itself
                await second.execute(text("INSERT INTO t VALUES (1)"))
        assert isinstance(failure.value.__cause__ or failure.value, sqlite3.OperationalError) or (
            "database is locked" in str(failure.value)
        )
    # The turn came back: the next transaction goes ahead at once.
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t VALUES (2)"))
    await engine.dispose()
