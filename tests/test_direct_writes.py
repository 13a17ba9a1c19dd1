"""`storage/direct.write`, the engine's per-message writes: on SQLite straight on the sqlite3
connection of the session's transaction, elsewhere through `session.execute`; either way the
same rows, types, transaction, errors and statement listeners. Against real databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.storage import db, direct
from bot.storage.core import table_of
from bot.storage.db import make_engine
from bot.storage.models import ProcessedMessage

NOW = datetime(2026, 12, 5, 8, 30, tzinfo=UTC)
_processed = table_of(ProcessedMessage)
RECORD = insert(_processed).values(
    {
        name: bindparam(name, type_=_processed.c[name].type)
        for name in ("channel", "message_id", "received_at", "replies")
    }
)
MARK = (
    update(_processed)
    .where(_processed.c.message_id == bindparam("b_message_id"))
    .values(replied_at=bindparam("b_now"), replies=None)
)


class Listener:
    """What the engine's `before_cursor_execute` listeners are shown: (SQL, has a context)."""

    def __init__(self, engine) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.rowcounts: list[int] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, _conn, _cursor, statement: str, _parameters, context, _many) -> None:
        self.seen.append((statement.split(None, 1)[0].upper(), context is not None))

    def _after(self, _conn, cursor, statement: str, *_args) -> None:
        if statement.startswith(("INSERT", "UPDATE")):
            self.rowcounts.append(cursor.rowcount)


def record(message_id: str) -> dict:
    return {"channel": "test", "message_id": message_id, "received_at": NOW, "replies": [{"text": "Chào bà Mai"}]}


async def test_writes_commit_and_roll_back_with_the_session_and_keep_sqlalchemys_types(app):
    on_sqlite = app.engine.dialect.name == "sqlite"
    listener = Listener(app.engine)
    async with db.transaction(app.sessions) as session:
        written = await direct.write(session, RECORD, record("m1"))
        assert written.rowcount == 1 and written.new_id is not None
        stored = await session.get(ProcessedMessage, written.new_id)  # read back in the same transaction
        assert stored is not None
        assert stored.replies == [{"text": "Chào bà Mai"}]  # JSON written as SQLAlchemy's type writes it
        assert stored.received_at == NOW and stored.received_at.tzinfo is not None
        marked = await direct.write(session, MARK, {"b_message_id": "m1", "b_now": NOW})
        assert (marked.rowcount, marked.new_id) == (1, None)
        missing = await direct.write(session, MARK, {"b_message_id": "nobody", "b_now": NOW})
        assert missing.rowcount == 0
    # On SQLite the writes ran on the driver (no SQLAlchemy execution context), and the
    # listeners that count statements still saw them.
    writes = [seen for seen in listener.seen if seen[0] in ("INSERT", "UPDATE")]
    assert writes == [("INSERT", not on_sqlite), ("UPDATE", not on_sqlite), ("UPDATE", not on_sqlite)]
    assert listener.rowcounts == [1, 1, 0]

    with pytest.raises(RuntimeError):
        async with db.transaction(app.sessions) as session:
            await direct.write(session, RECORD, record("m2"))
            raise RuntimeError("a bug after the write")

    with pytest.raises(IntegrityError) as caught:  # as SQLAlchemy raises it: the engine retries on it
        async with db.transaction(app.sessions) as session:
            await direct.write(session, RECORD, record("m1"))  # the unique key (channel, message id)
    assert "Chào bà Mai" not in str(caught.value)  # parameters stay out of the message

    async with app.sessions() as session:
        rows = (await session.execute(select(ProcessedMessage.message_id, ProcessedMessage.replies))).all()
    assert [tuple(row) for row in rows] == [("m1", None)]


async def test_with_sql_echo_on_the_writes_go_through_sqlalchemy_and_its_log(migrated_database_url, caplog):
    engine = make_engine(migrated_database_url, echo=True)
    listener = Listener(engine)
    try:
        async with db.transaction(db.make_sessionmaker(engine)) as session:
            written = await direct.write(session, RECORD, record("m1"))
        assert written.rowcount == 1 and written.new_id is not None
        assert ("INSERT", True) in listener.seen
        assert any("INSERT INTO processed_messages" in r.getMessage() for r in caplog.records)
    finally:
        await engine.dispose()


async def test_a_write_on_a_connection_in_its_own_transaction(app):
    """What the sent marks use: a connection that has begun its transaction, no session."""
    async with db.transaction(app.sessions) as session:
        await direct.write(session, RECORD, record("m1"))
    listener = Listener(app.engine)
    connection = await app.engine.connect()
    try:
        async with connection.begin():
            marked = await direct.write(connection, MARK, {"b_message_id": "m1", "b_now": NOW})
        assert marked.rowcount == 1
        with pytest.raises(RuntimeError):
            async with connection.begin():
                await direct.write(connection, RECORD, record("m2"))
                raise RuntimeError("rolled back")
    finally:
        await connection.close()
    assert listener.rowcounts == [1, 1]
    async with app.sessions() as session:
        rows = (await session.execute(select(ProcessedMessage.message_id, ProcessedMessage.replied_at))).all()
    assert [(row[0], row[1] == NOW) for row in rows] == [("m1", True)]
