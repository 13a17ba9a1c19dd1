"""aiosqlite with one trip to its worker thread per SQL statement.

aiosqlite runs every call on the sqlite3 connection in a thread of its own; each call is a trip
there and back (a queue, then a wake-up of the event loop). SQLAlchemy's asyncio adapter makes
a call for each step of a statement — open a cursor, execute, fetch the rows, close the cursor —
so one statement costs four trips, `BEGIN IMMEDIATE` three; those trips were about half the CPU
a message cost. Here a cursor does all of it in one trip: it executes, fetches the first rows and
closes itself in the thread. A result longer than `PREFETCH` rows keeps its sqlite3 cursor open
and is read on in further trips, so a streamed export still holds at most one batch in memory.

Used by `make_engine` through SQLAlchemy's `async_creator`: the dialect, its adapter and every
guarantee of the driver (one thread per connection, statements in order) stay as they are.

Writers take turns in the process, first come first served. Every transaction starts with
`BEGIN IMMEDIATE` (see `db._sqlite_begin`), so only one can hold the database at a time; left to
SQLite, the others wait in its busy handler, which sleeps and retries (1, 2, 5 … 100 ms), and
under load some wait far longer than their turn. Here a connection first waits for the process's
write turn (an asyncio lock per database file, FIFO) and holds it until it commits, rolls back or
closes; SQLite's busy timeout still governs other processes on the same file. A turn not given
within the busy timeout fails as SQLite would ("database is locked").
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any

import aiosqlite

PREFETCH = 256
TURN_TIMEOUT = 30.0  # as the connection's busy timeout

# The write turn of each database file, per event loop (a lock belongs to one loop).
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def _turn(path: str) -> asyncio.Lock:
    per_loop = _turns.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(path)
    if lock is None:
        lock = per_loop[path] = asyncio.Lock()
    return lock


class OneTripCursor:
    """The part of aiosqlite's cursor SQLAlchemy's adapter uses, one trip per statement."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._open: sqlite3.Cursor | None = None  # a long result still being read, in the thread
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        await self.close()
        conn = self._connection
        begin = sql.startswith("BEGIN")
        if begin:
            await conn.take_turn()

        def run() -> tuple[Any, int, int | None, list[Any], sqlite3.Cursor | None]:
            cursor = conn._conn.cursor()
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, parameters)
                rows = cursor.fetchmany(PREFETCH) if cursor.description else []
            except BaseException:
                cursor.close()
                raise
            if cursor.description and len(rows) == PREFETCH:
                return cursor.description, cursor.rowcount, cursor.lastrowid, rows, cursor
            cursor.close()
            return cursor.description, cursor.rowcount, cursor.lastrowid, rows, None

        try:
            self.description, self.rowcount, self.lastrowid, rows, self._open = await conn._execute(run)
        except BaseException:
            if begin:  # no transaction began: the turn goes to the next
                conn._end_turn()
            raise
        self._rows = deque(rows)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        await self.close()
        conn = self._connection

        def run() -> tuple[Any, int, int | None]:
            cursor = conn._conn.cursor()
            try:
                cursor.executemany(sql, parameters)
                return cursor.description, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, self.rowcount, self.lastrowid = await conn._execute(run)
        return self

    async def _more(self, size: int | None) -> None:
        """Read on in a long result (one trip); closes the sqlite3 cursor at its end."""
        cursor = self._open
        if cursor is None:
            return

        def run() -> tuple[list[Any], bool]:
            rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
            done = size is None or len(rows) < size
            if done:
                cursor.close()
            return rows, done

        rows, done = await self._connection._execute(run)
        self._rows.extend(rows)
        if done:
            self._open = None

    async def fetchall(self) -> list[Any]:
        await self._more(None)
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            await self._more(max(size - len(self._rows), PREFETCH))
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    async def fetchone(self) -> Any:
        rows = await self.fetchmany(1)
        return rows[0] if rows else None

    async def close(self) -> None:
        self._rows.clear()
        cursor, self._open = self._open, None
        if cursor is not None:
            await self._connection._execute(cursor.close)

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None


class OneTripConnection(aiosqlite.Connection):
    path = ""
    _turn: asyncio.Lock | None = None  # held from BEGIN until commit, rollback or close

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def take_turn(self) -> None:
        """Wait for the process's write turn on this file (kept until the transaction ends)."""
        if self._turn is not None or self.path in ("", ":memory:"):
            return
        lock = _turn(self.path)
        try:
            await asyncio.wait_for(lock.acquire(), TURN_TIMEOUT)
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        self._turn = lock

    def _end_turn(self) -> None:
        lock, self._turn = self._turn, None
        if lock is not None:
            lock.release()

    async def _then_end_turn(self, ending: Awaitable[None]) -> None:
        """Await what ends the transaction, then give the write turn back, even when it failed."""
        try:
            await ending
        finally:
            self._end_turn()

    async def commit(self) -> None:
        await self._then_end_turn(super().commit())

    async def rollback(self) -> None:
        await self._then_end_turn(super().rollback())

    async def close(self) -> None:
        await self._then_end_turn(super().close())


def connect(path: str, **kwargs: Any) -> OneTripConnection:
    """Like `aiosqlite.connect`: awaiting the result opens the connection in its own thread."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, **kwargs)

    connection = OneTripConnection(connector, 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    connection.path = path if path == ":memory:" else os.path.abspath(path)
    return connection
