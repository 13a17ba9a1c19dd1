"""The season as residents live it: which campaign is open, which deadline matters to a person's
application now, and how it reads ("Hạn tự đánh giá: ngày 30/11/2026 — còn 5 ngày").

A commune sets in its file what happens after a deadline (`after_deadline`): "late" accepts the
work and marks it late for reviewers; "closed" refuses it and points to the next campaign (with
its dates) once the commune has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bot.domain.labels import DEADLINE_KEYS
from bot.domain.lifecycle import State
from bot.flows.context import Context
from bot.storage.commune import campaign_for, communes, deadlines_of, next_campaign
from bot.storage.models import Campaign, OrgUnit

# The deadline that matters for an application in each state; a decided one has none.
DEADLINE_FOR_STATE: dict[State, str | None] = {
    State.REGISTERED: "self_declaration",
    State.DECLARING: "self_declaration",
    State.NEEDS_INFO: "self_declaration",
    State.SUBMITTED: "branch_review",
    State.RECOMMENDED: "commune_report",
    State.NOT_RECOMMENDED: "commune_report",
    State.APPROVED: None,
    State.REJECTED: None,
    State.WITHDRAWN: None,
    State.EXPIRED: None,
}


@dataclass
class Season:
    campaign: Campaign
    policy: str  # "late" | "closed"
    deadlines: dict[str, date]

    def passed(self, kind: str, today: date) -> bool:
        due = self.deadlines.get(kind)
        return due is not None and today > due


async def season_of_campaign(ctx: Context, campaign_id: int) -> Season | None:
    campaign = await ctx.session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    commune = await ctx.session.get(OrgUnit, campaign.commune_id)
    deadlines = {d.kind: d.due_on for d in await deadlines_of(ctx.session, campaign.id)}
    policy = (commune.after_deadline if commune is not None else None) or "late"
    return Season(campaign, policy, deadlines)


async def season_of_commune(ctx: Context, commune_id: int) -> Season | None:
    campaign = await campaign_for(ctx.session, commune_id, ctx.today)
    return await season_of_campaign(ctx, campaign.id) if campaign is not None else None


async def resident_commune(ctx: Context, branch_id: int | None = None) -> OrgUnit | None:
    """The commune of a branch (or of whom the conversation is about); the only one installed
    when that is not known yet."""
    branch_id = branch_id or (ctx.subject.branch_id if ctx.subject is not None else None)
    if branch_id:
        branch = await ctx.session.get(OrgUnit, branch_id)
        if branch is not None and branch.parent_id:
            return await ctx.session.get(OrgUnit, branch.parent_id)
    installed = await communes(ctx.session)
    return installed[0] if len(installed) == 1 else None


def deadline_line(ctx: Context, kind: str, due_on: date) -> str:
    """ "Hạn tự đánh giá: ngày 30/11/2026 — còn 5 ngày" (or "— hôm nay là ngày cuối", "— đã quá hạn")."""
    what = ctx.t(DEADLINE_KEYS.get(kind, kind))
    days = (due_on - ctx.today).days
    when = ctx.t.date(due_on)
    if days < 0:
        return ctx.t("season.deadline_passed", what=what, date=when)
    if days == 0:
        return ctx.t("season.deadline_today", what=what, date=when)
    return ctx.t.plural("season.deadline_left", "season.deadline_left.plural", days, what=what, date=when)


async def state_deadline_line(ctx: Context, campaign_id: int, state: str) -> str | None:
    """The one deadline that matters to an application in this state, in words; None when decided."""
    kind = DEADLINE_FOR_STATE.get(State(state))
    if kind is None:
        return None
    season = await season_of_campaign(ctx, campaign_id)
    if season is None or kind not in season.deadlines:
        return None
    return deadline_line(ctx, kind, season.deadlines[kind])


async def closed_text(ctx: Context, season: Season, kind: str) -> str:
    """What a closed deadline says: which deadline passed, and the next campaign's dates if any."""
    lines = [
        ctx.t(
            "season.closed",
            what=ctx.t(DEADLINE_KEYS.get(kind, kind)),
            date=ctx.t.date(season.deadlines[kind]),
            year=season.campaign.year,
        )
    ]
    following = await next_campaign(ctx.session, season.campaign)
    if following is not None:
        campaign, opens = following
        dates = {d.kind: d.due_on for d in await deadlines_of(ctx.session, campaign.id)}
        if "registration" in dates:
            lines.append(
                ctx.t(
                    "season.next",
                    year=campaign.year,
                    opens=ctx.t.date(opens),
                    registration=ctx.t.date(dates["registration"]),
                )
            )
        else:
            lines.append(ctx.t("season.next_opens", year=campaign.year, opens=ctx.t.date(opens)))
    else:
        lines.append(ctx.t("season.next_unknown"))
    return "\n".join(lines)


async def registration_season(ctx: Context, branch_id: int | None = None) -> Season | None:
    """The season registration would go into (for the person's branch, or the only commune)."""
    commune = await resident_commune(ctx, branch_id)
    return await season_of_commune(ctx, commune.id) if commune is not None else None


def registration_line(ctx: Context, season: Season | None) -> str | None:
    if season is None or "registration" not in season.deadlines:
        return None
    return deadline_line(ctx, "registration", season.deadlines["registration"])
