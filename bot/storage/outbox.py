"""The outbox: messages to send outside a conversation (reminders, digests, reviewer notices).

A row is written once per unique key — inserting the same key again does nothing — and is
rendered in the recipient's language only when it is sent, so texts follow a language change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.flows.messages import Choice, Outgoing
from bot.i18n import get_translator
from bot.storage.models import OutboxMessage


@dataclass
class Notice:
    """A message by catalog key. A parameter may itself be {"key": ...} (translated) or
    {"date": "YYYY-MM-DD"} (formatted for the reader's locale)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)
    # (value, label key); a value "cmd:<command>" runs that command when pressed, whatever the state.
    choices: list[tuple[str, str]] = field(default_factory=list)
    photo: str | None = None
    document: str | None = None
    document_name: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "params": self.params,
            "choices": [list(c) for c in self.choices],
            "photo": self.photo,
            "document": self.document,
            "document_name": self.document_name,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Notice":
        return cls(
            key=payload["key"],
            params=dict(payload.get("params") or {}),
            choices=[(v, k) for v, k in payload.get("choices") or []],
            photo=payload.get("photo"),
            document=payload.get("document"),
            document_name=payload.get("document_name"),
        )


def render_notice(notice: Notice, locale: str | None) -> Outgoing:
    from pathlib import Path

    t = get_translator(locale)
    params = {}
    for name, value in notice.params.items():
        if isinstance(value, dict) and "key" in value:
            nested_key = value["key"]
            params[name] = t(nested_key)
        elif isinstance(value, dict) and "date" in value:
            params[name] = t.date(date.fromisoformat(value["date"]))
        else:
            params[name] = value
    return Outgoing(
        text=t(notice.key, **params),
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
    return bool(result.rowcount)
