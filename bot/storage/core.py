"""Typed handles for the Core statements that bypass the ORM unit of work (bulk updates, deletes).

SQLAlchemy types `Model.__table__` as a generic FromClause and `execute()` as a plain Result; the
statements here need the Table and the CursorResult they really are."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Table


def table_of(model: Any) -> Table:
    """The Table behind a mapped class."""
    return cast(Table, model.__table__)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (0 where the driver cannot tell)."""
    return max(cast(CursorResult[Any], result).rowcount or 0, 0)
