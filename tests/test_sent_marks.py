"""The "answered" marks (storage/deliveries.SentMarks): a message handled alone is marked at once;
messages handled together are marked by one statement once each has its mark waiting, or when the
gathering window ends; and every caller returns only once its own mark is committed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, insert, select

from bot.storage import deliveries
from bot.storage.deliveries import SentMarks, _processed


class Updates:
    """The mark statements sent to the database, each with the number of messages it marked."""

    def __init__(self, engine) -> None:
        self.batches: list[int] = []
        event.listen(engine.sync_engine, "after_cursor_execute", self._seen)

    def _seen(self, _conn, cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith("UPDATE PROCESSED_MESSAGES"):
            self.batches.append(cursor.rowcount)


async def _messages(app, count: int) -> list[int]:
    async with app.engine.begin() as connection:
        result = await connection.execute(
            insert(_processed).returning(_processed.c.id),
            [
                dict(channel="test", message_id=f"m{n}", received_at=app.clock.now(), replies=[{"text": "x"}])
                for n in range(count)
            ],
        )
        return [row[0] for row in result]


async def _answered(app, ids: list[int]) -> list[bool]:
    async with app.sessions() as session:
        rows = (await session.execute(select(_processed.c.id, _processed.c.replied_at))).all()
    marked = {row.id: row.replied_at is not None for row in rows}
    return [marked[i] for i in ids]


async def _handle(marks: SentMarks, processed_id: int | None, before_mark: asyncio.Event) -> None:
    """One message: handled, then (once told) marked; or ended without a mark (None)."""
    with marks.handling():
        await before_mark.wait()
        if processed_id is not None:
            await marks.mark(processed_id)


@pytest.fixture
def long_window(monkeypatch):
    # A window no test waits out: what ends the gathering in these tests is the messages.
    monkeypatch.setattr(deliveries, "GATHER_SECONDS", 3600.0)


async def test_a_message_handled_alone_is_marked_at_once(app, long_window):
    (one,) = await _messages(app, 1)
    marks, updates = SentMarks(app.engine, app.clock), Updates(app.engine)
    go = asyncio.Event()
    go.set()
    await asyncio.wait_for(_handle(marks, one, go), 10)
    assert updates.batches == [1]
    assert await _answered(app, [one]) == [True]


async def test_messages_handled_together_are_marked_by_one_statement(app, long_window):
    ids = await _messages(app, 3)
    marks, updates = SentMarks(app.engine, app.clock), Updates(app.engine)
    turns = [asyncio.Event() for _ in ids]
    handled = [asyncio.create_task(_handle(marks, i, turn)) for i, turn in zip(ids, turns, strict=True)]
    await asyncio.sleep(0)
    for turn in turns:  # their replies go out one after another
        turn.set()
        await asyncio.sleep(0.01)
        assert updates.batches == [] or turn is turns[-1]
    await asyncio.wait_for(asyncio.gather(*handled), 10)
    assert updates.batches == [3]
    assert await _answered(app, ids) == [True, True, True]


async def test_a_message_that_ends_without_a_mark_holds_nobody(app, long_window):
    ids = await _messages(app, 2)
    marks, updates = SentMarks(app.engine, app.clock), Updates(app.engine)
    first, duplicate = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(_handle(marks, ids[0], first))
    ignored = asyncio.create_task(_handle(marks, None, duplicate))  # e.g. a duplicate delivery
    await asyncio.sleep(0)
    first.set()
    await asyncio.sleep(0.05)
    assert updates.batches == []  # the other message may still mark
    duplicate.set()
    await asyncio.wait_for(asyncio.gather(waiting, ignored), 10)
    assert updates.batches == [1]
    assert await _answered(app, ids) == [True, False]


async def test_the_window_ends_the_wait_for_a_message_still_being_handled(app, monkeypatch):
    monkeypatch.setattr(deliveries, "GATHER_SECONDS", 0.05)
    ids = await _messages(app, 2)
    marks, updates = SentMarks(app.engine, app.clock), Updates(app.engine)
    sent, slow = asyncio.Event(), asyncio.Event()
    done = asyncio.create_task(_handle(marks, ids[0], sent))
    still = asyncio.create_task(_handle(marks, ids[1], slow))
    await asyncio.sleep(0)
    sent.set()
    await asyncio.wait_for(done, 10)  # returns once its own mark is committed
    assert updates.batches == [1] and await _answered(app, ids) == [True, False]
    slow.set()
    await asyncio.wait_for(still, 10)
    assert updates.batches == [1, 1] and await _answered(app, ids) == [True, True]
