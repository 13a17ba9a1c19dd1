"""Running reminder rounds and digests: what the scheduler's jobs and `hoctap remind` call.

A round re-reads its deadline when it runs. If an officer moved the date or changed the offsets
since the job was scheduled, or the deadline has passed, the round does nothing (the scheduler's
sync puts the right jobs in place).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.app import App
from bot.clock import local_date
from bot.reminders.digests import (
    BEFORE_DEADLINE,
    LEADER,
    OFFICER,
    WEEKLY,
    PlannedDigest,
    plan_digests,
    weekly_tag,
)
from bot.reminders.planner import Planned, RoundResult, make_round, plan_reminders
from bot.reminders.recipients import CriteriaCache
from bot.reminders.timing import Moment, effective_offsets, moments_of, next_allowed
from bot.storage.commune import campaign_for, deadlines_of
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit
from bot.storage.outbox import enqueue_many

log = logging.getLogger(__name__)

# Which staff get a digest before which deadline.
DIGEST_BEFORE = {"branch_review": (LEADER,), "commune_report": (OFFICER,)}


@dataclass
class Collected:
    reminders: list[Planned] = field(default_factory=list)
    digests: list[PlannedDigest] = field(default_factory=list)


class Rounds:
    def __init__(self, app: App) -> None:
        self.app = app

    @property
    def settings(self):
        return self.app.settings

    def _opener(self, dry_run: bool):
        return self.app.sessions if dry_run else self.app.sessions.begin

    async def run_round(
        self,
        campaign_id: int,
        deadline_kind: str,
        offset: int,
        *,
        due_on: date | None = None,
        planned_at: datetime | None = None,
        dry_run: bool = False,
        collect: Collected | None = None,
    ) -> RoundResult | None:
        """Plan one round now. None when the round no longer applies (moved, removed, passed)."""
        now = self.app.clock.now()
        async with self.app.sessions() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None:
                log.info("round %s/%s/%s: campaign is gone", campaign_id, deadline_kind, offset)
                return None
            commune = await session.get(OrgUnit, campaign.commune_id)
            deadlines = await deadlines_of(session, campaign_id)
        deadline = next((d for d in deadlines if d.kind == deadline_kind), None)
        if deadline is None or offset not in effective_offsets(campaign, deadline):
            log.info("round %s/%s/%s no longer configured: skipped", campaign_id, deadline_kind, offset)
            return None
        if due_on is not None and deadline.due_on != due_on:
            log.info(
                "round %s/%s/%s: deadline moved to %s: skipped", campaign_id, deadline_kind, offset, deadline.due_on
            )
            return None
        if local_date(now, self.settings.tz) > deadline.due_on:
            log.info(
                "round %s/%s/%s: deadline %s has passed: skipped", campaign_id, deadline_kind, offset, deadline.due_on
            )
            return None
        rnd = make_round(campaign, deadline, deadlines, offset, now, planned_at, self.settings)
        criteria = CriteriaCache(self.app.catalog)
        result = await plan_reminders(
            self._opener(dry_run),
            rnd,
            criteria,
            self.settings,
            now,
            dry_run=dry_run,
            collect=collect.reminders if collect is not None else None,
        )
        roles = DIGEST_BEFORE.get(deadline_kind)
        if roles and commune is not None:
            result.digests, result.digests_queued = await self._digests(
                dry_run=dry_run,
                collect=collect,
                now=now,
                campaign=campaign,
                deadlines=deadlines,
                commune=commune,
                roles=roles,
                heading=BEFORE_DEADLINE,
                tag=f"c{campaign.id}:{deadline_kind}:{offset}",
                send_at=rnd.send_at,
                criteria=criteria,
                deadline=deadline,
                offset=offset,
            )
        log.info(
            "round %s/%s/%s: %d reminders (%d new, %d unreachable), %d digests (%d new)",
            campaign_id,
            deadline_kind,
            offset,
            result.planned,
            result.queued,
            result.unreachable,
            result.digests,
            result.digests_queued,
        )
        return result

    async def _digests(
        self, *, dry_run: bool, collect: Collected | None, now: datetime, **plan: Any
    ) -> tuple[int, int]:
        """Plan one commune's digests in one transaction (`plan`: what `plan_digests` takes
        besides the session, catalog, settings and preview), keep them for a preview and queue the
        reachable ones unless on a dry run; returns (planned, newly queued)."""
        async with self._opener(dry_run)() as session:
            digests = await plan_digests(
                session, catalog=self.app.catalog, settings=self.settings, preview=collect is not None, **plan
            )
            if collect is not None:
                collect.digests.extend(digests)
            if dry_run:
                return len(digests), 0
            return len(digests), len(
                await enqueue_many(session, [d.queued for d in digests if d.reach.reachable], now=now)
            )

    async def current_campaigns(self, today: date) -> list[tuple[OrgUnit, Campaign, list[CampaignDeadline]]]:
        """Each commune's campaign of this year, while any of its deadlines is still ahead."""
        found = []
        async with self.app.sessions() as session:
            for commune in await session.scalars(select(OrgUnit).where(OrgUnit.kind == "commune").order_by(OrgUnit.id)):
                campaign = await campaign_for(session, commune.id, today)
                if campaign is None or campaign.year != today.year:
                    continue
                deadlines = await deadlines_of(session, campaign.id)
                if any(d.due_on >= today for d in deadlines):
                    found.append((commune, campaign, deadlines))
        return found

    async def run_weekly(self, *, dry_run: bool = False, collect: Collected | None = None) -> int:
        """Weekly digests for every leader and officer of a commune in season; returns new rows."""
        now = self.app.clock.now()
        send_at = next_allowed(now, self.settings)
        today = local_date(send_at, self.settings.tz)
        queued = 0
        criteria = CriteriaCache(self.app.catalog)
        for commune, campaign, deadlines in await self.current_campaigns(today):
            _planned, new = await self._digests(
                dry_run=dry_run,
                collect=collect,
                now=now,
                campaign=campaign,
                deadlines=deadlines,
                commune=commune,
                roles=(LEADER, OFFICER),
                heading=WEEKLY,
                tag=weekly_tag(today),
                send_at=send_at,
                criteria=criteria,
            )
            queued += new
        log.info("weekly digests: %d new", queued)
        return queued

    async def all_moments(self) -> list[Moment]:
        moments = []
        async with self.app.sessions() as session:
            for campaign in await session.scalars(select(Campaign).order_by(Campaign.id)):
                moments += moments_of(campaign, await deadlines_of(session, campaign.id), self.settings)
        return sorted(moments, key=lambda m: (m.at, m.campaign_id, m.deadline_kind))

    async def due_now(self) -> list[Moment]:
        """The current round of each deadline still ahead: its latest reminder moment already
        passed. `hoctap remind` plans these (a no-op for rounds the scheduler already ran)."""
        now = self.app.clock.now()
        today = local_date(now, self.settings.tz)
        latest: dict[tuple[int, str], Moment] = {}
        for moment in await self.all_moments():
            if moment.at <= now and moment.due_on >= today:
                latest[(moment.campaign_id, moment.deadline_kind)] = moment
        return sorted(latest.values(), key=lambda m: m.at)

    async def upcoming(self, days: int) -> list[Moment]:
        now = self.app.clock.now()
        until = now + timedelta(days=days)
        return [m for m in await self.all_moments() if now < m.at <= until]
