"""The outbox: messages to send outside a conversation (reminders, digests, reviewer notices).

A row is written once per unique key — inserting the same key again does nothing — and is
rendered in the recipient's language only when it is sent, so texts follow a language change.
A `Deferred` row (digests) is even built only then, from the data of that moment. Once a row is
settled (sent, failed, expired…) the dispatcher empties its payload: the names and notes it
carried are not kept after their use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translator, get_translator
from bot.messages import Choice, Outgoing
from bot.storage.core import table_of
from bot.storage.models import OutboxMessage


@dataclass
class Notice:
    """A message by catalog key, rendered in the reader's language when it is sent.

    A parameter may be a plain value, or a dict that is rendered too:
    {"key": k, "params": {...}, "plural": k2, "count": n} — a nested notice (plural form by count);
    {"date": "YYYY-MM-DD"} — a date for the reader's locale; {"lines": [...]} — nested notices, one
    per line (or joined by "sep"); {"text": {"vi": …, "en": …}} — text from data (criteria titles); {"number": n} and
    {"percent": fraction} — formatted for the locale.
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)
    # (value, label key); a value "cmd:<command>" runs that command when pressed, whatever the state.
    choices: list[tuple[str, str]] = field(default_factory=list)
    photo: str | None = None
    document: str | None = None
    document_name: str | None = None
    plural: str | None = None  # plural catalog key: the text is chosen by `count`
    count: int | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "key": self.key,
            "params": self.params,
            "choices": [list(c) for c in self.choices],
            "photo": self.photo,
            "document": self.document,
            "document_name": self.document_name,
        }
        if self.plural is not None:
            payload["plural"] = self.plural
            payload["count"] = self.count
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Notice:
        return cls(
            key=payload["key"],
            params=dict(payload.get("params") or {}),
            choices=[(v, k) for v, k in payload.get("choices") or []],
            photo=payload.get("photo"),
            document=payload.get("document"),
            document_name=payload.get("document_name"),
            plural=payload.get("plural"),
            count=payload.get("count"),
        )


DEFERRED = "deferred"


@dataclass(frozen=True)
class Deferred:
    """A message whose text is built when it is sent (see `bot.reminders.digests`): the row keeps
    only `spec`, what identifies it, and no personal data."""

    kind: str
    spec: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        return {DEFERRED: self.kind, "spec": self.spec}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Deferred | None:
        """The deferred message a payload describes, or None for an ordinary notice."""
        kind = payload.get(DEFERRED)
        return cls(kind, dict(payload.get("spec") or {})) if kind else None


def _render_text(t: Translator, key: str, params: dict[str, Any], plural: str | None, count: Any) -> str:
    values = {name: _render_value(t, value) for name, value in params.items()}
    if plural is not None:
        return t.plural(key, plural, int(count or 0), **values)
    return t(key, **values)


def _render_value(t: Translator, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "key" in value:
        return _render_text(t, value["key"], value.get("params") or {}, value.get("plural"), value.get("count"))
    if "date" in value:
        return t.date(date.fromisoformat(value["date"]))
    if "lines" in value:
        return str(value.get("sep", "\n")).join(str(_render_value(t, line)) for line in value["lines"])
    if "text" in value:
        texts = value["text"]
        return texts.get(t.locale) or texts.get("vi") or next(iter(texts.values()), "")
    if "number" in value:
        return t.number(value["number"], 1)
    if "percent" in value:
        return t.percent(100 * value["percent"])
    return value


def render_notice(notice: Notice, locale: str | None, address: str | None = None) -> Outgoing:

    t = get_translator(locale, address)
    return Outgoing(
        text=_render_text(t, notice.key, notice.params, notice.plural, notice.count),
        choices=[Choice(value, t(label_key)) for value, label_key in notice.choices],
        photo=Path(notice.photo) if notice.photo else None,
        document=Path(notice.document) if notice.document else None,
        document_name=notice.document_name,
    )


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    account_id: int,
    kind: str,
    notice: Notice,
    not_before: datetime,
    now: datetime,
    campaign_id: int | None = None,
    deadline_kind: str | None = None,
    offset_days: int | None = None,
) -> bool:
    """Insert an outbox row unless one with this key exists; True when a row was added."""
    values = dict(
        dedupe_key=key,
        account_id=account_id,
        kind=kind,
        campaign_id=campaign_id,
        deadline_kind=deadline_kind,
        offset_days=offset_days,
        payload=notice.to_payload(),
        status="pending",
        not_before=not_before,
        attempts=0,
        created_at=now,
    )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await session.execute(statement)
    return bool(cast("CursorResult[Any]", result).rowcount)  # an INSERT: -1 (unknown) counts as new, as before


@dataclass
class Queued:
    """One row for `enqueue_many`; the same fields as `enqueue` takes."""

    key: str
    account_id: int
    kind: str
    notice: Notice | Deferred
    not_before: datetime
    campaign_id: int | None = None
    deadline_kind: str | None = None
    offset_days: int | None = None


async def enqueue_many(session: AsyncSession, rows: list[Queued], *, now: datetime) -> set[str]:
    """`enqueue` for many rows in one statement; returns the keys that were new (the rest existed)."""
    if not rows:
        return set()
    values = [
        dict(
            dedupe_key=row.key,
            account_id=row.account_id,
            kind=row.kind,
            campaign_id=row.campaign_id,
            deadline_kind=row.deadline_kind,
            offset_days=row.offset_days,
            payload=row.notice.to_payload(),
            status="pending",
            not_before=row.not_before,
            attempts=0,
            created_at=now,
        )
        for row in rows
    ]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = table_of(OutboxMessage)  # a Core insert: no ORM bookkeeping for thousands of rows
    statement = insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.dedupe_key)
    result = await session.execute(statement, values)
    return set(result.scalars())
