"""Typed handles for the Core statements that bypass the ORM unit of work (bulk updates, deletes).

SQLAlchemy types `Model.__table__` as a generic FromClause and `execute()` as a plain Result; the
statements here need the Table and the CursorResult they really are."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Result, Table, event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_MEMO = "hoctap.memo"
_Model = TypeVar("_Model")


def table_of(model: Any) -> Table:
    """The Table behind a mapped class."""
    return cast(Table, model.__table__)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (0 where the driver cannot tell)."""
    return max(cast(CursorResult[Any], result).rowcount or 0, 0)


async def get_held(session: AsyncSession, model: type[_Model], ident: Any) -> _Model | None:
    """`session.get`, looking in the session's identity map first. `AsyncSession.get` passes
    through SQLAlchemy's greenlet bridge even when it finds the row there, which cost about 45 µs
    a call; a declaration step asks for the submission it already holds once or twice
    (bench/README.md, issue 18, fifth round). Like `get`, an expired row is read again."""
    found = session.sync_session.identity_map.get(inspect(model).identity_key_from_primary_key((ident,)))
    if found is not None and isinstance(found, model) and not inspect(found).expired:
        return found
    return await session.get(model, ident)


_HELD = "held"  # transaction memo: objects kept alive (the identity map holds rows only weakly)


def hold(session: AsyncSession, obj: Any) -> None:
    """Keep `obj` in the session's identity map until the transaction ends, so that reading it
    again by primary key (`get_held`, `session.get`) costs no query."""
    transaction_memo(session, _HELD)[id(obj)] = obj


def transaction_memo(session: AsyncSession | Session, name: str) -> dict[Any, Any]:
    """A dict kept in the session for the current transaction only (forgotten when it ends): for
    what a step reads more than once (its handler and the prompt after it ask the same questions).
    Whoever changes the rows behind an entry in the same transaction updates or drops it."""
    return session.info.setdefault(_MEMO, {}).setdefault(name, {})


@event.listens_for(Session, "after_transaction_end")
def _forget_memos(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MEMO, None)
