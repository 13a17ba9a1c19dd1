"""What the flow engine stores about each inbound message and its conversation: the one query
that loads a conversation, the duplicate check, the reply lease and the "answered" marks.

These are the engine's guarantees in SQL (see bot/flows/engine.py for the order of work): a
message is handled once (the unique key on channel + message id), its replies are stored with a
lease until they are delivered, and a redelivery resends them only once the lease has run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, insert, inspect, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from bot.clock import Clock
from bot.storage import direct
from bot.storage.core import affected, hold, table_of
from bot.storage.db import RUNS_ALONE
from bot.storage.models import Answer, ChannelAccount, Conversation, Person, ProcessedMessage, Submission
from bot.storage.submissions import levels_and_photos, remember_read


def _load_query(with_message: bool) -> Any:
    query = (
        select(
            ChannelAccount,
            Conversation,
            Person,
            ProcessedMessage if with_message else null(),
            Submission,
            *levels_and_photos(Submission.id),
        )
        .outerjoin(Conversation, Conversation.account_id == ChannelAccount.id)
        .outerjoin(Person, Person.id == ChannelAccount.person_id)
        .outerjoin(Submission, Submission.id == Conversation.data["sub"].as_integer())
        .where(ChannelAccount.channel == bindparam("channel"), ChannelAccount.external_id == bindparam("user_id"))
    )
    if with_message:
        query = query.outerjoin(
            ProcessedMessage,
            and_(
                ProcessedMessage.channel == bindparam("channel"), ProcessedMessage.message_id == bindparam("message_id")
            ),
        )
    return query


# The statements every message runs are built once, with parameters: building a statement and its
# cache key costs more than SQLAlchemy's cached compilation of it.
_LOAD = {True: _load_query(True), False: _load_query(False)}
_conversations = table_of(Conversation)
_SAVE_POSITION = (
    update(_conversations)
    .where(_conversations.c.account_id == bindparam("b_account"), _conversations.c.version == bindparam("b_version"))
    .values(
        state=bindparam("b_state"),
        data=bindparam("b_data"),
        prompt_seq=bindparam("b_prompt_seq"),
        updated_at=bindparam("b_updated_at"),
        version=_conversations.c.version + 1,
    )
)
_processed = table_of(ProcessedMessage)
_RECORDED = ("channel", "message_id", "account_id", "received_at", "replies", "sending_until")
_RECORD_VALUES = {name: bindparam(name, type_=_processed.c[name].type) for name in _RECORDED}
_RECORD = insert(_processed).values(_RECORD_VALUES)
# PostgreSQL: the conversation's new position and the processed message in one statement (one
# round trip to the server fewer on every message). The INSERT takes its row from the UPDATE's:
# when the version check finds the conversation moved, nothing is inserted and no id comes back.
_moved = _SAVE_POSITION.returning(_conversations.c.account_id).cte("moved")


def _record_after_move(channel: Any) -> Any:
    """The processed message's INSERT, its account taken from `_moved`'s row (none when the
    conversation had moved) and its channel from `channel`. Atomic by itself: when the step wrote
    nothing else, it runs without BEGIN and COMMIT."""
    values = {**_RECORD_VALUES, "account_id": _moved.c.account_id, "channel": channel}
    return (
        insert(_processed)
        .from_select(_RECORDED, select(*(values[name] for name in _RECORDED)).select_from(_moved))
        .returning(_processed.c.id)
        .execution_options(**{RUNS_ALONE: True})
    )


_SAVE_AND_RECORD = _record_after_move(_RECORD_VALUES["channel"])
# PostgreSQL, a level step (a first answer to an item, and the submission's new score): those two
# rows in the same statement as well, so the whole step writes once, without BEGIN and COMMIT
# (storage/db.transaction). Every write hangs on the ones before it: the score only when the
# conversation moved, the answer only when the score was written. The submission's version is
# checked as the ORM checks it; when another worker changed the submission, the conversation has
# moved already, so the processed message then gets no channel and the NOT NULL on it fails the
# whole statement: nothing is written, and the engine handles the message again, as after any
# IntegrityError.
_answers = table_of(Answer)
_submissions = table_of(Submission)
_ANSWERED = ("submission_id", "item_id", "level", "points", "note", "answered_by_person_id", "answered_at")
_SCORED = ("score", "recognisable", "updated_at")
# The new values of the two rows, as parameters (`_folded_params` gives them).
_ANSWER_VALUES = {name: bindparam(f"a_{name}", type_=_answers.c[name].type) for name in _ANSWERED}
_SCORE_VALUES = {name: bindparam(f"s_{name}", type_=_submissions.c[name].type) for name in _SCORED}
# SQLite, the same level step: the answer's INSERT and the score's version-checked UPDATE as two
# plain statements, without the ORM's unit of work (about 400 µs of CPU for these two rows).
_INSERT_ANSWER = insert(_answers).values(_ANSWER_VALUES)
_SAVE_SCORE = (
    update(_submissions)
    .where(_submissions.c.id == bindparam("s_id"), _submissions.c.version == bindparam("s_version"))
    .values(**_SCORE_VALUES, version=_submissions.c.version + 1)
)
_scored = _SAVE_SCORE.where(select(literal(1)).select_from(_moved).exists()).returning(_submissions.c.id).cte("scored")
_answered = (
    insert(_answers)
    .from_select(_ANSWERED, select(*_ANSWER_VALUES.values()).select_from(_scored))
    .returning(_answers.c.id)
).cte("answered")
_scored_at_all = select(literal(1)).select_from(_scored).exists()
_SAVE_ANSWER_AND_RECORD = _record_after_move(case((_scored_at_all, _RECORD_VALUES["channel"]), else_=null())).add_cte(
    _scored, _answered
)
_SENT: dict[str, Any] = {"replied_at": bindparam("b_now"), "sending_until": None, "replies": null()}
_MARK_SENT = update(_processed).where(_processed.c.id.in_(bindparam("ids", expanding=True))).values(_SENT)
# One message's mark (the usual case when messages do not overlap), without the list that an
# IN (…) of any length renders into the SQL on every execution.
_MARK_ONE_SENT = update(_processed).where(_processed.c.id == bindparam("b_id")).values(_SENT)


async def load_conversation(session: AsyncSession, channel: str, user_id: str, message_id: str | None) -> Row | None:
    """The account, its conversation, its person, the processed-message row when this message
    was handled before (or NULL), and the submission the conversation is on (its top-level "sub",
    where the declaration's draft keeps it: bot/flows/drafts.py), in one query; None for someone
    unknown. The submission is kept in the session for the transaction, so the flows find it
    there instead of querying again (they still check whose it is), and so are its answers'
    levels and its photo counts (`submissions.remember_read`): a typical declaration step reads
    nothing else."""
    params = {"channel": channel, "user_id": user_id}
    if message_id:
        params["message_id"] = message_id
    row = (await session.execute(_LOAD[bool(message_id)], params)).first()
    if row is not None and row[4] is not None:
        hold(session, row[4])
        remember_read(session, row[4].id, row[5], row[6])
    return row


async def save_position(session: AsyncSession, conv: Conversation) -> None:
    """Write where the conversation now is (state, draft, prompt count, time) as one UPDATE with
    its version check, outside the ORM unit of work (the engine keeps `conv` out of the session
    while a message is handled). When another worker moved the conversation since it was read,
    nothing is written and StaleDataError is raised, as the ORM's version counter would: the
    engine rolls back and handles the message again on the new position."""
    written = await direct.write(session, _SAVE_POSITION, _position_params(conv))
    _version_checked(conv, written.rowcount == 1)


def _version_checked(conv: Conversation, written: bool) -> None:
    """After the conversation's version-checked UPDATE: its new version, or StaleDataError when
    another worker had moved it (nothing was written)."""
    if not written:
        raise StaleDataError(f"conversation of account {conv.account_id} changed since it was read")
    conv.version += 1


def _position_params(conv: Conversation) -> dict[str, Any]:
    return {
        "b_account": conv.account_id,
        "b_version": conv.version,
        "b_state": conv.state,
        "b_data": conv.data,
        "b_prompt_seq": conv.prompt_seq,
        "b_updated_at": conv.updated_at,
    }


async def record_processed(session: AsyncSession, **values: Any) -> int:
    """Store a handled message with its replies (one INSERT); its id. A second worker handling
    the same message at the same time fails here on the unique key (channel, message id)."""
    written = await direct.write(session, _RECORD, values)
    assert written.new_id is not None
    return written.new_id


async def save_position_and_record(
    session: AsyncSession, conv: Conversation, folded: FoldedAnswer | None = None, **values: Any
) -> int:
    """`save_position`, then `record_processed` (the message handled in this step); the
    processed message's id. The same checks hold: StaleDataError when another worker moved the
    conversation, IntegrityError on the unique key when another took the message. On PostgreSQL
    both are one statement, with the step's answer and score when `folded` (see
    `foldable_answer`); SQLite cannot change rows inside a WITH, so there they are two, after
    the answer and the score (StaleDataError when another worker changed the submission)."""
    if session.get_bind().dialect.name != "postgresql":
        if folded is not None:
            params = _folded_params(folded)
            with session.no_autoflush:  # written here, not by the session
                scored = await direct.write(session, _SAVE_SCORE, params)
                if scored.rowcount != 1:
                    raise StaleDataError(f"submission {folded[1].id} changed since it was read")
                await direct.write(session, _INSERT_ANSWER, params)
            _written(session, folded)
        await save_position(session, conv)
        return await record_processed(session, **values)
    # The account comes from the conversation's own row, which the INSERT selects from.
    params = {**_position_params(conv), **{name: values[name] for name in _RECORDED if name != "account_id"}}
    if folded is None:
        result = await session.execute(_SAVE_AND_RECORD, params)
    else:
        with session.no_autoflush:  # the answer and the score are in this statement
            result = await session.execute(_SAVE_ANSWER_AND_RECORD, {**params, **_folded_params(folded)})
    processed_id = result.scalar()
    _version_checked(conv, processed_id is not None)
    assert processed_id is not None  # `_version_checked` raised otherwise
    if folded is not None:
        _written(session, folded)
    return int(processed_id)


def _folded_params(folded: FoldedAnswer) -> dict[str, Any]:
    answer, submission = folded
    return {
        **{f"a_{name}": getattr(answer, name) for name in _ANSWERED},
        **{f"s_{name}": getattr(submission, name) for name in _SCORED},
        "s_id": submission.id,
        "s_version": submission.version,
    }


def _written(session: AsyncSession, folded: FoldedAnswer) -> None:
    """The answer and the score are in the database: both leave the session, which then has
    nothing left to write (a flush would still go over an object it had seen changed, about
    150 µs), and the submission keeps the values and the version it now has."""
    answer, submission = folded
    for name in _SCORED:
        set_committed_value(submission, name, getattr(submission, name))
    set_committed_value(submission, "version", submission.version + 1)
    session.expunge(answer)
    session.expunge(submission)


FoldedAnswer = tuple[Answer, Submission]


def foldable_answer(session: AsyncSession) -> FoldedAnswer | None:
    """When all a step has left to write is one new answer and its submission's new score (a
    level step: `submissions.save_answer`), those two, for `save_position_and_record` to write
    instead of the session's flush: on PostgreSQL in its one statement, on SQLite as two plain
    statements. Anything else: None (the session flushes as usual first)."""
    if session.deleted or len(session.new) != 1:
        return None
    (answer,) = session.new
    if type(answer) is not Answer:
        return None
    changed = [obj for obj in session.dirty if session.is_modified(obj)]
    if len(changed) != 1 or type(changed[0]) is not Submission or changed[0].id != answer.submission_id:
        return None
    submission = changed[0]
    state = inspect(submission)
    if any(attr.history.has_changes() for attr in state.attrs if attr.key not in _SCORED):
        return None
    return answer, submission


async def processed_message(session: AsyncSession, channel: str, message_id: str) -> ProcessedMessage | None:
    """The duplicate check on its own (for someone with no account: a first contact)."""
    return await session.scalar(
        select(ProcessedMessage).where(ProcessedMessage.channel == channel, ProcessedMessage.message_id == message_id)
    )


async def photo_wanted(session: AsyncSession, channel: str, user_id: str, message_id: str | None) -> tuple | None:
    """For the look before downloading a photo: (consent time, conversation state) of the account,
    or None when the message was handled already or the account is unknown."""
    if message_id:
        seen = await session.scalar(
            select(ProcessedMessage.id).where(
                ProcessedMessage.channel == channel, ProcessedMessage.message_id == message_id
            )
        )
        if seen is not None:
            return None
    row = (
        await session.execute(
            select(ChannelAccount.consent_at, Conversation.state)
            .outerjoin(Conversation, Conversation.account_id == ChannelAccount.id)
            .where(ChannelAccount.channel == channel, ChannelAccount.external_id == user_id)
        )
    ).first()
    return tuple(row) if row is not None else None


async def restart_conversations(session: AsyncSession, account_ids: list[int], state: str) -> None:
    """Put these accounts' conversations back at `state` with nothing kept (consent withdrawn)."""
    if account_ids:
        await session.execute(
            update(Conversation)
            .where(Conversation.account_id.in_(account_ids))
            .values(state=state, data={}, version=Conversation.version + 1)
            .execution_options(synchronize_session=False)
        )


async def take_resend_lease(session: AsyncSession, processed_id: int, now: datetime, until: datetime) -> bool:
    """Take the lease on a message's stored replies to resend them — only when no other worker
    may still be sending them (its lease ran out: it died), so two duplicates do not both resend."""
    taken = await session.execute(
        update(_processed)
        .where(
            _processed.c.id == processed_id,
            _processed.c.replied_at.is_(None),
            or_(_processed.c.sending_until.is_(None), _processed.c.sending_until <= now),
        )
        .values(sending_until=until)
        .execution_options(synchronize_session=False)
    )
    return affected(taken) > 0


async def release_lease(engine: AsyncEngine, processed_id: int) -> None:
    """The replies were not sent: a redelivery may send them at once (no lease to wait out)."""
    async with engine.begin() as connection:
        await connection.execute(update(_processed).where(_processed.c.id == processed_id).values(sending_until=None))


# How long the marks of messages still being handled are waited for, so that one transaction
# writes them together. Only while other messages are in flight: a lone message is marked at once.
GATHER_SECONDS = 0.005


class SentMarks:
    """Marks messages answered once their replies went out: a plain Core UPDATE (no ORM session
    is needed to flag rows), which also clears the stored replies (a duplicate is now ignored).

    Under load the marks of many messages cost one transaction (`UPDATE … WHERE id IN (…)`):
    while other messages are in flight (`handling`), the writer waits for their marks too, at
    most `GATHER_SECONDS`, and marks that arrive while a batch is being written go in the next.
    With nothing else in flight a mark is written at once. Each caller still returns only once
    its own mark is committed."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        # One UPDATE is atomic by itself: on PostgreSQL it runs without BEGIN and COMMIT (two
        # round trips fewer). SQLite keeps its transaction, which is what takes the write turn.
        self.single = (
            engine if engine.dialect.name == "sqlite" else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.waiting: list[tuple[int, asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None
        self.in_flight = 0  # messages being handled (see `handling`), marked or not yet
        self._all_in: asyncio.Future[None] | None = None  # set once every message in flight waits

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Around the handling of one message, so the writer knows whose marks are still to come."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._check_all_in()

    async def mark(self, processed_id: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((processed_id, future))
        self._check_all_in()
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write())
        await future

    def _check_all_in(self) -> None:
        if self._all_in is not None and len(self.waiting) >= self.in_flight:
            _resolve(self._all_in)

    async def _gather(self) -> None:
        """Wait until every message in flight has its mark waiting, or GATHER_SECONDS."""
        if len(self.waiting) >= self.in_flight:
            return
        loop = asyncio.get_running_loop()
        self._all_in = all_in = loop.create_future()
        timer = loop.call_later(GATHER_SECONDS, _resolve, all_in)
        try:
            await all_in
        finally:
            timer.cancel()
            self._all_in = None

    async def _update(self, ids: list[int]) -> None:
        # Closed in place: `async with` on an AsyncConnection closes it in a task of its own.
        connection = await self.single.connect()
        try:
            async with connection.begin():
                if len(ids) == 1:
                    await direct.write(connection, _MARK_ONE_SENT, {"b_id": ids[0], "b_now": self.clock.now()})
                else:
                    await connection.execute(_MARK_SENT, {"ids": ids, "b_now": self.clock.now()})
        finally:
            await connection.close()

    async def _write(self) -> None:
        while self.waiting:
            await self._gather()
            batch, self.waiting = self.waiting, []
            try:
                await self._update([processed_id for processed_id, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, future in batch:
                    _resolve(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
