"""SQLite statements run on the event loop; writers take turns; a busy database is waited for
without blocking the loop.

aiosqlite runs every call on the sqlite3 connection in a thread of its own, and each call is a
trip there and back: a queue, a wake-up of the event loop through its self-pipe, a future. Those
trips cost more CPU than the statements themselves (SQLite answers the bot's statements in tens of
microseconds; the issue 18 profile measured the trips at about a tenth of a message's CPU even at
one trip per statement). Here the connection is still opened by aiosqlite, in its thread, but every
statement, commit and rollback runs at once on the loop's thread: no trip, no wake-up.

What makes that safe:

* A connection is used by one task at a time (SQLAlchemy's pool gives it to one session), and its
  thread runs nothing once it is open except what SQLAlchemy's adapter queues there itself (the
  isolation level, set before any statement) and the final close, each awaited; so the sqlite3
  connection is never used from two threads at once (it is opened with check_same_thread off).
* Nothing waits inside SQLite on the loop. The connection's busy timeout is 0 (see
  `db._sqlite_pragmas`): where SQLite would sleep in its busy handler until another *process*
  lets go of the database (a second worker, a CLI command), the statement fails at once with
  SQLITE_BUSY and is tried again after an asyncio sleep (1 ms, doubling to 50 ms), for up to
  `TURN_TIMEOUT` seconds, as the busy timeout did. Only statements that can be repeated are
  retried: `BEGIN` (no transaction began), `COMMIT` (a busy COMMIT leaves the transaction as it
  was) and any statement outside a transaction. In WAL mode, which every connection sets, a
  statement inside a `BEGIN IMMEDIATE` transaction already holds the write lock and is not busy.
* Writers in this process take turns, first come first served: every transaction starts with
  `BEGIN IMMEDIATE` (see `db._sqlite_begin`), and a connection first waits for the process's write
  turn (an asyncio lock per database file) and holds it until it commits, rolls back or closes.
  Left to SQLite's busy handler, writers under load waited far longer than their turn.
* A long result is read on in batches of `PREFETCH` rows, so a streamed export still holds one
  batch at a time and gives the loop back between batches.

Used by `make_engine` through SQLAlchemy's `async_creator`: the aiosqlite dialect and its adapter
stay as they are.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

PREFETCH = 256
TURN_TIMEOUT = 30.0  # as long as a busy timeout would wait
BUSY_FIRST_WAIT, BUSY_MAX_WAIT = 0.001, 0.05


# The write turn of each database file, per event loop (a lock belongs to one loop).
class _Turn(asyncio.Lock):
    """The write turn of one database file: a lock that knows whether anyone waits for it."""

    waiting = 0  # tasks in `take` waiting for the lock

    async def take(self) -> None:
        """Take the turn, waiting at most `TURN_TIMEOUT` seconds for it."""
        if not self.locked() and not self.waiting:
            # Free and nobody queued: acquired without suspending, so without arming a timer
            # (that cost about 30 µs of CPU, on nearly every transaction).
            await self.acquire()
            return
        self.waiting += 1
        try:
            # A deadline, not `wait_for`: that costs a task and trips round the event loop.
            async with asyncio.timeout(TURN_TIMEOUT):
                await self.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        finally:
            self.waiting -= 1


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Turn]] = weakref.WeakKeyDictionary()


def _turn(path: str) -> _Turn:
    per_loop = _turns.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(path)
    if lock is None:
        lock = per_loop[path] = _Turn()
    return lock


def _busy(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class LoopCursor:
    """The part of aiosqlite's cursor SQLAlchemy's adapter uses, run on the loop."""

    def __init__(self, connection: LoopConnection) -> None:
        self._connection = connection
        self._open: sqlite3.Cursor | None = None  # a long result still being read
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> LoopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> LoopCursor:
        await self.close()
        conn = self._connection
        begin = sql.startswith("BEGIN")
        if begin:
            await conn.take_turn()

        def run() -> tuple[Any, int, int | None, list[Any], sqlite3.Cursor | None]:
            cursor = conn.sqlite.cursor()
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
            self.description, self.rowcount, self.lastrowid, rows, self._open = await conn.run(
                run, retry=begin or sql.startswith("COMMIT")
            )
        except BaseException:
            if begin:  # no transaction began: the turn goes to the next
                conn._end_turn()
            raise
        self._rows = deque(rows)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> LoopCursor:
        await self.close()
        conn = self._connection

        def run() -> tuple[Any, int, int | None]:
            cursor = conn.sqlite.cursor()
            try:
                cursor.executemany(sql, parameters)
                return cursor.description, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, self.rowcount, self.lastrowid = await conn.run(run)
        return self

    async def _more(self, size: int | None) -> None:
        """Read on in a long result; closes the sqlite3 cursor at its end. A batch at a time, with
        the loop given back in between, so other messages are answered during an export."""
        cursor = self._open
        if cursor is None:
            return
        await asyncio.sleep(0)
        rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
        if size is None or len(rows) < size:
            cursor.close()
            self._open = None
        self._rows.extend(rows)

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
            cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None


class LoopConnection(aiosqlite.Connection):
    path = ""
    _turn: _Turn | None = None  # held from BEGIN until commit, rollback or close

    @property
    def sqlite(self) -> sqlite3.Connection:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    async def run(self, fn: Callable[[], Any], *, retry: bool = False) -> Any:
        """Run `fn` on the loop now. SQLITE_BUSY (another process holds the database) is waited
        out with asyncio sleeps when the statement may be repeated: `retry`, or no transaction
        open on this connection."""
        wait, deadline = BUSY_FIRST_WAIT, None
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or not (retry or not self.sqlite.in_transaction):
                    raise
                now = asyncio.get_running_loop().time()
                deadline = deadline if deadline is not None else now + TURN_TIMEOUT
                if now >= deadline:
                    raise
                await asyncio.sleep(min(wait, deadline - now))
                wait = min(wait * 2, BUSY_MAX_WAIT)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """aiosqlite's own calls on the connection (create_function, close…) run on the loop too."""
        self.sqlite  # noqa: B018 - raises as aiosqlite does once the connection is closed
        return fn(*args, **kwargs)

    def cursor(self) -> LoopCursor:  # type: ignore[override]
        return LoopCursor(self)

    async def take_turn(self) -> None:
        """Wait for the process's write turn on this file (kept until the transaction ends)."""
        if self._turn is not None or self.path in ("", ":memory:"):
            return
        lock = _turn(self.path)
        await lock.take()
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
        await self._then_end_turn(self.run(self.sqlite.commit, retry=True))

    async def rollback(self) -> None:
        await self._then_end_turn(self.run(self.sqlite.rollback))

    async def close(self) -> None:
        await self._then_end_turn(super().close())


def connect(path: str, **kwargs: Any) -> LoopConnection:
    """Like `aiosqlite.connect`: awaiting the result opens the connection (in aiosqlite's thread);
    from then on its statements run on the loop."""
    options = {**kwargs, "check_same_thread": False}

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, **options)

    connection = LoopConnection(connector, 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    connection.path = path if path == ":memory:" else os.path.abspath(path)
    return connection
