"""The engine's per-message writes on SQLite, run straight on the sqlite3 connection of the
session's transaction (or of a connection's, for the sent marks).

Through `session.execute` one of these statements cost about 77 µs of CPU, of which SQLite's own
work is about 15 µs: the rest is SQLAlchemy's execution path (its execution context, parameter
processing, result object, events, the greenlet bridge), the same for every call of a statement
that never changes (bench/README.md, issue 18, seventh round). Here each statement is still a
Core expression from storage, compiled by SQLAlchemy once for its dialect; a call only converts
its parameters as SQLAlchemy's types would (`bind_processor`) and runs the SQL on the connection
the session's transaction holds, which runs on the event loop (storage/sqlite_onloop.py). The
session has taken the write turn and sent BEGIN IMMEDIATE before the first statement, so SQLite
never answers busy here; the writes commit or roll back with the session.

What stays as it was: the errors (sqlite3's are raised as SQLAlchemy's, so the engine's retry on
IntegrityError still applies), the engine's `before_cursor_execute` and `after_cursor_execute`
listeners (the statement counters of the tests and benchmarks see these statements, with the
sqlite3 cursor but no execution context), and SQL echo (with `echo` on, the statements go through
`execute` and its log).
Anything but SQLite on the loop (PostgreSQL, another SQLite driver) takes `execute` as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from bot.storage import sqlite_onloop
from bot.storage.core import affected, transaction_memo

_CONNECTION = "direct"  # transaction memo: the session's connection, once looked up


@dataclass(frozen=True)
class Written:
    """What a write reports back, as SQLAlchemy's result would: the rows it changed, and the new
    row's id when it inserted one."""

    rowcount: int
    new_id: int | None


@dataclass(frozen=True)
class _Compiled:
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]


# Per statement object and dialect (the hot path's statements are module constants, built once).
_compiled: dict[tuple[int, str], tuple[Executable, _Compiled]] = {}


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    key = (id(statement), dialect.name)
    held = _compiled.get(key)
    if held is not None and held[0] is statement:
        return held[1]
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup or ())
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    ready = _Compiled(compiled, str(compiled), names, processors)
    _compiled[key] = (statement, ready)
    return ready


def _direct(connection: Connection | None) -> tuple[Connection, sqlite3.Connection] | None:
    """The connection and its sqlite3 connection when statements may run on it directly."""
    assert connection is not None
    driver: Any = connection.connection.driver_connection
    on_loop = isinstance(driver, sqlite_onloop.LoopConnection) and not connection.engine.echo
    return (connection, driver.sqlite) if on_loop else None


async def _connection(target: AsyncSession | AsyncConnection) -> tuple[Connection, sqlite3.Connection] | None:
    """`_direct` for the connection of a session's transaction (begun now if it had not begun;
    looked up once per transaction) or of a connection in a transaction."""
    if isinstance(target, AsyncConnection):
        return _direct(target.sync_connection)
    memo = transaction_memo(target, _CONNECTION)
    if "found" not in memo:
        memo["found"] = _direct((await target.connection()).sync_connection)
    return cast("tuple[Connection, sqlite3.Connection] | None", memo["found"])


async def write(target: AsyncSession | AsyncConnection, statement: Executable, params: dict[str, Any]) -> Written:
    """Run an INSERT, UPDATE or DELETE in the transaction of a session (or of a connection that
    has begun one): straight on SQLite when it can (see above), through `execute` otherwise."""
    found = await _connection(target)
    if found is None:
        result = cast(CursorResult[Any], await target.execute(statement, params))
        key = result.inserted_primary_key if result.is_insert else None
        return Written(affected(result), key[0] if key else None)
    connection, sqlite = found
    ready = _compile(statement, connection.dialect)
    values = cast(dict[str, Any], ready.compiled.construct_params(params))
    args = [
        value if process is None else process(value)
        for value, process in zip((values[name] for name in ready.names), ready.processors, strict=True)
    ]
    events = connection.dispatch
    cursor = sqlite.cursor()
    try:
        if events.before_cursor_execute:
            events.before_cursor_execute(connection, cursor, ready.sql, args, None, False)
        try:
            cursor.execute(ready.sql, args)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(ready.sql, None, exc, sqlite3.Error, hide_parameters=True) from exc
        if events.after_cursor_execute:
            events.after_cursor_execute(connection, cursor, ready.sql, args, None, False)
        return Written(cursor.rowcount, cursor.lastrowid if ready.compiled.isinsert else None)
    finally:
        cursor.close()
