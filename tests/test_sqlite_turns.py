"""SQLite on the event loop (bot/storage/sqlite_onloop.py): writers in the process take turns, first
come first served (an asyncio lock), and a database another process holds is waited for with
asyncio sleeps, never inside SQLite, so the loop goes on answering meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import text

from bot.storage import sqlite_onloop
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
    monkeypatch.setattr(sqlite_onloop, "TURN_TIMEOUT", 0.2)
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


async def test_a_turn_handed_to_a_waiter_is_not_taken_by_a_newcomer_who_still_waits_bounded(monkeypatch):
    """A free turn is taken at once (no timer); but in the moment between a release and the
    waiter it went to running, the turn looks free and is not: a newcomer queues behind, first
    come first served, with the same time bound."""
    monkeypatch.setattr(sqlite_onloop, "TURN_TIMEOUT", 0.2)
    turn = sqlite_onloop._Turn()
    order: list[str] = []

    async def writer(name: str) -> None:
        await turn.take()
        order.append(name)
        await asyncio.sleep(0.01)
        turn.release()

    await turn.take()
    first = asyncio.create_task(writer("first"))
    await asyncio.sleep(0)  # queued
    turn.release()  # handed to `first`, which has not run yet
    assert not turn.locked() and turn.waiting == 1
    await asyncio.gather(first, writer("newcomer"))
    assert order == ["first", "newcomer"]
    assert turn.waiting == 0 and not turn.locked()

    await turn.take()  # held and never given back: the next one fails after TURN_TIMEOUT
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await turn.take()
    assert turn.waiting == 0


class OtherProcess:
    """A writer outside the bot's process, as a CLI command or a second worker would be: a plain
    sqlite3 connection in its own thread that holds the database for `seconds`."""

    def __init__(self, path, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.holding = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO log VALUES ('other')")
        self.holding.set()
        threading.Event().wait(self.seconds)
        connection.execute("COMMIT")
        connection.close()

    async def start(self) -> None:
        self.thread.start()
        await asyncio.to_thread(self.holding.wait)


class Ticker:
    """Other work on the loop: counts its turns (every `every` seconds) while it runs."""

    def __init__(self, every: float) -> None:
        self.every, self.ticks = every, 0

    async def __aenter__(self) -> Ticker:
        self.task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.task.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.ticks += 1


async def _logged(engine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT who FROM log"))).scalars())


async def _log_table(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE log (who TEXT)"))
    return engine, tmp_path / "hoctap.db"


async def test_a_database_another_process_holds_is_waited_for_without_stopping_the_loop(tmp_path):
    engine, path = await _log_table(tmp_path)
    other = OtherProcess(path, 0.5)
    await other.start()
    async with Ticker(0.01) as ticker:
        started = asyncio.get_running_loop().time()
        async with engine.begin() as connection:  # waits for the other process, then goes ahead
            await connection.execute(text("INSERT INTO log VALUES ('bot')"))
        waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.3
    # The loop ran other work all along: about one tick per 10 ms of the wait.
    assert ticker.ticks >= waited / 0.01 / 4, (ticker.ticks, waited)
    assert await _logged(engine) == ["other", "bot"]
    other.thread.join()
    await engine.dispose()


async def test_a_database_held_past_the_timeout_fails_as_locked_and_the_next_turn_goes_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_onloop, "TURN_TIMEOUT", 0.2)
    engine, path = await _log_table(tmp_path)
    other = OtherProcess(path, 0.6)
    await other.start()
    with pytest.raises(Exception, match="database is locked"):
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO log VALUES ('bot')"))
    other.thread.join()
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO log VALUES ('later')"))
    assert await _logged(engine) == ["other", "later"]
    await engine.dispose()


async def test_a_long_result_is_read_in_batches_with_the_loop_free_between_them(tmp_path):
    engine, _path = await _log_table(tmp_path)
    count = sqlite_onloop.PREFETCH * 3 + 7
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO log VALUES (:who)"), [{"who": f"p{i}"} for i in range(count)])
    seen = 0
    async with Ticker(0) as ticker, engine.connect() as connection:
        result = await connection.stream(text("SELECT who FROM log"))
        async for partition in result.partitions(sqlite_onloop.PREFETCH):
            seen += len(partition)
    assert seen == count and ticker.ticks >= 3
    await engine.dispose()
