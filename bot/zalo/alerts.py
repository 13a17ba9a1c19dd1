"""Telling operators about Zalo trouble they must fix: a counted alert row (shown in the
officer's digest and `hoctap outbox --problems`), and, for what needs an admin at once, a chat
message to every admin through the outbox (once a day per kind)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import N_
from bot.reminders.recipients import reach_of
from bot.storage.models import OperatorAlert, RoleGrant
from bot.storage.outbox import Notice, Queued, enqueue_many

SIGNATURE_FAILURES = "zalo_oa_signature"
OA_REAUTH = "zalo_oa_reauth"
ALERT = "alert"
RECENT = timedelta(days=7)

ALERT_KEYS = {
    SIGNATURE_FAILURES: N_("alert.zalo_oa_signature"),
    OA_REAUTH: N_("alert.zalo_oa_reauth"),
}


async def note_alert(
    session: AsyncSession, key: str, now: datetime, *, count: int = 1, detail: str | None = None
) -> OperatorAlert:
    """Count `count` more occurrences of `key` (a row per key)."""
    row = await session.get(OperatorAlert, key, with_for_update=True)
    if row is None or now - row.last_at > RECENT:
        if row is None:
            row = OperatorAlert(key=key, count=0, first_at=now, last_at=now)
            session.add(row)
        else:  # an old episode: start counting again
            row.count, row.first_at = 0, now
    row.count += count
    row.last_at = now
    if detail is not None:
        row.detail = detail[:500]
    return row


async def clear_alert(session: AsyncSession, key: str) -> None:
    row = await session.get(OperatorAlert, key)
    if row is not None:
        await session.delete(row)


async def recent_alerts(session: AsyncSession, now: datetime) -> list[OperatorAlert]:
    rows = await session.scalars(
        select(OperatorAlert).where(OperatorAlert.last_at >= now - RECENT).order_by(OperatorAlert.key)
    )
    return list(rows)


async def alert_admins(session: AsyncSession, key: str, now: datetime, params: dict | None = None) -> int:
    """Queue a chat message about `key` to every admin (once a day); returns how many were new."""

    admins = set(
        await session.scalars(
            select(RoleGrant.person_id).where(RoleGrant.role == "admin", RoleGrant.revoked_at.is_(None))
        )
    )
    reach = await reach_of(session, admins, consent=False)
    day = now.date().isoformat()
    rows = [
        Queued(
            key=f"alert:{key}:{day}:p{pid}",
            account_id=r.account_id,
            kind=ALERT,
            notice=Notice(ALERT_KEYS[key], dict(params or {})),
            not_before=now,
        )
        for pid, r in sorted(reach.items())
        if r.account_id is not None
    ]
    return len(await enqueue_many(session, rows, now=now))
