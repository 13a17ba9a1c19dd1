"""The officer's digest lines about Zalo: messages held up for a reason an operator must fix
(quota, billing, permission, re-authorisation), recent operator alerts, and this month's ZNS
messages with what they cost."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import category_of
from bot.config import Settings
from bot.i18n import N_
from bot.reminders.planner import plural
from bot.storage.models import Campaign, ChannelAccount, OutboxMessage
from bot.zalo.alerts import OA_REAUTH, SIGNATURE_FAILURES, recent_alerts

ZNS_CHANNEL = "zns"
OPERATOR_CATEGORIES = {
    "quota": N_("digest.problem.quota"),
    "billing": N_("digest.problem.billing"),
    "permission": N_("digest.problem.permission"),
    "reauth": N_("digest.problem.reauth"),
}
ALERT_LINES = {
    SIGNATURE_FAILURES: N_("digest.alert.zalo_oa_signature"),
    OA_REAUTH: N_("digest.alert.zalo_oa_reauth"),
}
RECENT = timedelta(days=7)


def month_start(at: datetime, settings: Settings) -> datetime:
    local = at.astimezone(settings.tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def problem_counts(session: AsyncSession, at: datetime, campaign_id: int | None = None) -> dict[str, int]:
    """Outbox rows of the last week still waiting or given up for an operator's reason."""
    query = select(OutboxMessage.last_error).where(
        OutboxMessage.status.in_(("pending", "failed")),
        OutboxMessage.last_error.like("[%"),
        OutboxMessage.created_at >= at - RECENT,
    )
    if campaign_id is not None:
        query = query.where(OutboxMessage.campaign_id == campaign_id)
    counts: dict[str, int] = {}
    for (last_error,) in await session.execute(query):
        category = category_of(last_error)
        if category in OPERATOR_CATEGORIES:
            counts[category] = counts.get(category, 0) + 1
    return counts


async def zns_month(session: AsyncSession, at: datetime, settings: Settings) -> tuple[int, int]:
    """(ZNS messages sent this month, their cost in VND at ZALO_ZNS_COST_VND)."""
    count = (
        await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .join(ChannelAccount, ChannelAccount.id == OutboxMessage.account_id)
            .where(
                ChannelAccount.channel == ZNS_CHANNEL,
                OutboxMessage.status == "sent",
                OutboxMessage.sent_at >= month_start(at, settings),
            )
        )
        or 0
    )
    return count, count * settings.zalo_zns_cost_vnd


async def zalo_blocks(session: AsyncSession, campaign: Campaign, settings: Settings, at: datetime) -> list[dict]:
    blocks: list[dict] = []
    counts = await problem_counts(session, at, campaign.id)
    lines = [
        plural("digest.problem", "digest.problem.plural", n, what={"key": OPERATOR_CATEGORIES[c]})
        for c, n in sorted(counts.items())
    ]
    for alert in await recent_alerts(session, at):
        if alert.key in ALERT_LINES:
            lines.append(
                {
                    "key": ALERT_LINES[alert.key],
                    "params": {
                        "count": alert.count,
                        "date": {"date": alert.first_at.astimezone(settings.tz).date().isoformat()},
                    },
                }
            )
    if lines:
        blocks.append({"key": N_("digest.zalo_problems"), "params": {"lines": {"lines": lines}}})
    if settings.zalo_zns_templates:
        sent, spend = await zns_month(session, at, settings)
        local = at.astimezone(settings.tz)
        blocks.append(
            plural(
                "digest.zns_spend",
                "digest.zns_spend.plural",
                sent,
                month=f"{local.month:02d}/{local.year}",
                amount={"number": spend},
            )
        )
    return blocks
