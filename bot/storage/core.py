"""Typed handles for the Core statements that bypass the ORM unit of work (bulk updates, deletes).

SQLAlchemy types `Model.__table__` as a generic FromClause and `execute()` as a plain Result; the
statements here need the Table and the CursorResult they really are."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Table, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_MEMO = "hoctap.memo"


def table_of(model: Any) -> Table:
    """The Table behind a mapped class."""
    return cast(Table, model.__table__)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (0 where the driver cannot tell)."""
    return max(cast(CursorResult[Any], result).rowcount or 0, 0)


def transaction_memo(session: AsyncSession | Session, name: str) -> dict[Any, Any]:
    """A dict kept in the session for the current transaction only (forgotten when it ends): for
    what a step reads more than once (its handler and the prompt after it ask the same questions).
    Whoever changes the rows behind an entry in the same transaction updates or drops it."""
    return session.info.setdefault(_MEMO, {}).setdefault(name, {})


@event.listens_for(Session, "after_transaction_end")
def _forget_memos(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MEMO, None)
