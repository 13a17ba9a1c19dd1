"""Copies of a deleted person's name and photos in rows that are not theirs.

A name travels: reviewers were shown it (stored replies not yet delivered), a notice about the
person waits in someone else's outbox, a leader acting for them or an officer looking at a list
holds it in their conversation, a reviewer quoted it in a note on another application. When the
person deletes their data these copies go too:

* stored replies still waiting to be delivered (delivered ones are not kept at all): dropped;
* outbox rows: queued ones are deleted (they were about someone who is gone), settled ones lose
  their payload;
* other people's conversations: the list of buttons that named the person is dropped, and a
  conversation that held more (a leader acting for them, a draft) goes back to the menu;
* notes on other applications (reviewers' events, answers' notes): the name is replaced by "…".

Rows are found with a LIKE on their text (or JSON text) and then checked in Python for the whole
name, so a name inside a longer word is left alone. A namesake's mention is removed as well: the
safe side. Household member lists typed by other registrants stay (they are those people's own
declarations).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, delete, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.core import table_of
from bot.storage.models import (
    Answer,
    ChannelAccount,
    Conversation,
    OutboxMessage,
    ProcessedMessage,
    SubmissionEvent,
)

REDACTED = "…"
QUEUED = ("pending", "claimed")
CHOICES_KEY = "_choices"
PROXY_KEY = "for"


@dataclass
class TraceCounts:
    replies: int = 0
    outbox_deleted: int = 0
    outbox_cleared: int = 0
    conversations: int = 0
    notes: int = 0


class Traces:
    """What identifies the deleted people: their names and the sha256 of their photos."""

    def __init__(self, names: Iterable[str], hashes: Iterable[str], person_ids: Iterable[int]) -> None:
        self.names = sorted({n for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True)
        self.hashes = sorted({h for h in hashes if h})
        self.person_ids = set(person_ids)
        needles = [*self.names, *self.hashes]
        self._pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in needles) + r")(?!\w)") if needles else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def _fragments(self) -> list[str]:
        """Each needle as typed and as it appears inside JSON text (non-ASCII escaped)."""
        found: set[str] = set()
        for needle in [*self.names, *self.hashes]:
            found.add(needle)
            found.add(json.dumps(needle)[1:-1])
        return sorted(found)

    def like(self, column: Any) -> Any:
        """A cheap SQL filter for rows that may hold a trace (confirmed with `found_in`)."""
        text = cast(column, Text)
        return or_(*(text.contains(fragment, autoescape=True) for fragment in self._fragments()))

    def found_in(self, value: Any) -> bool:
        if self._pattern is None:
            return False
        if isinstance(value, str):
            return self._pattern.search(value) is not None
        if isinstance(value, dict):
            return any(self.found_in(k) or self.found_in(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.found_in(v) for v in value)
        return False

    def redact(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text


async def remove_traces(session: AsyncSession, traces: Traces, *, own_accounts: list[int]) -> TraceCounts:
    """Remove the copies described in the module docstring, in the current transaction."""
    counts = TraceCounts()
    if not traces:
        return counts
    await _replies(session, traces, counts)
    await _outbox(session, traces, counts)
    await _conversations(session, traces, own_accounts, counts)
    await _notes(session, traces, counts)
    return counts


async def _replies(session: AsyncSession, traces: Traces, counts: TraceCounts) -> None:
    table = table_of(ProcessedMessage)
    rows = await session.execute(
        select(table.c.id, table.c.replies).where(table.c.replies.is_not(None), traces.like(table.c.replies))
    )
    ids = [row_id for row_id, replies in rows if traces.found_in(replies)]
    if ids:
        # A resend after a crash would show the person again; the reviewer simply asks again.
        await session.execute(update(table).where(table.c.id.in_(ids)).values(replies=null(), sending_until=None))
    counts.replies = len(ids)


async def _outbox(session: AsyncSession, traces: Traces, counts: TraceCounts) -> None:
    table = table_of(OutboxMessage)
    rows = await session.execute(
        select(table.c.id, table.c.status, table.c.payload).where(traces.like(table.c.payload))
    )
    queued: list[int] = []
    settled: list[int] = []
    for row_id, status, payload in rows:
        if traces.found_in(payload):
            (queued if status in QUEUED else settled).append(row_id)
    if queued:
        # A claimed row that is gone is simply not sent: marking it 'sending' finds no row.
        await session.execute(delete(table).where(table.c.id.in_(queued), table.c.status.in_(QUEUED)))
    if settled:
        await session.execute(update(table).where(table.c.id.in_(settled)).values(payload={}))
    counts.outbox_deleted, counts.outbox_cleared = len(queued), len(settled)


async def _conversations(session: AsyncSession, traces: Traces, own_accounts: list[int], counts: TraceCounts) -> None:
    proxy_marker = json.dumps(PROXY_KEY)
    found = await session.execute(
        select(Conversation, ChannelAccount.consent_at)
        .join(ChannelAccount, ChannelAccount.id == Conversation.account_id)
        .where(
            Conversation.account_id.not_in(own_accounts) if own_accounts else Conversation.account_id.is_not(None),
            or_(traces.like(Conversation.data), cast(Conversation.data, Text).contains(proxy_marker, autoescape=True)),
        )
    )
    for conv, consent_at in found:
        data = dict(conv.data or {})
        acting_for = data.get(PROXY_KEY) in traces.person_ids
        rest = {k: v for k, v in data.items() if k != CHOICES_KEY}
        if acting_for or traces.found_in(rest):
            # A leader acting for the person, or a draft naming them: back to the menu. (While
            # acting, the engine would also stop at the next message; the draft must not wait.)
            conv.state = "menu" if consent_at is not None else "new"
            conv.data = {}
        elif traces.found_in(data.get(CHOICES_KEY)):
            # Only the buttons of the last question named them: the question is asked afresh.
            conv.data = rest
        else:
            continue
        counts.conversations += 1
    await session.flush()


async def _notes(session: AsyncSession, traces: Traces, counts: TraceCounts) -> None:
    for model in (SubmissionEvent, Answer):
        rows = await session.execute(
            select(model.id, model.note).where(model.note.is_not(None), traces.like(model.note))
        )
        for row_id, note in rows:
            redacted = traces.redact(note or "")
            if redacted != note:
                await session.execute(update(model).where(model.id == row_id).values(note=redacted))
                counts.notes += 1
