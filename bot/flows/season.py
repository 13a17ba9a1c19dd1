"""The season as residents live it: which campaign is open, which deadline matters to a person's
application now, and how it reads ("Hạn tự đánh giá: ngày 30/11/2026 — còn 5 ngày").

A commune sets in its file what happens after a deadline (`after_deadline`): "late" accepts the
work and marks it late for reviewers; "closed" refuses it and points to the next campaign (with
its dates) once the commune has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from bot.domain.labels import DEADLINE_KEYS
from bot.domain.lifecycle import State
from bot.flows.context import Context
from bot.storage.calendar import CampaignDates, CommuneCalendar

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
    campaign: CampaignDates
    policy: str  # "late" | "closed"

    @property
    def deadlines(self) -> Mapping[str, date]:
        return self.campaign.deadlines

    def passed(self, kind: str, today: date) -> bool:
        due = self.deadlines.get(kind)
        return due is not None and today > due


async def season_of_campaign(ctx: Context, campaign_id: int) -> Season | None:
    """From the process's calendar snapshot (storage/calendar.py): no query on a typical step."""
    snapshot = await ctx.app.calendars.snapshot(ctx.session)
    campaign = snapshot.campaigns.get(campaign_id)
    if campaign is None:
        return None
    commune = snapshot.communes.get(campaign.commune_id)
    return Season(campaign, commune.policy if commune is not None else "late")


def _season_now(ctx: Context, commune: CommuneCalendar | None) -> Season | None:
    campaign = commune.current(ctx.today) if commune is not None else None
    return Season(campaign, commune.policy) if commune is not None and campaign is not None else None


async def current_campaign(ctx: Context, unit_id: int | None) -> CampaignDates | None:
    """The campaign open now in a commune (or a branch's commune), chosen by its window."""
    commune = await ctx.app.calendars.commune_of(ctx.session, unit_id) if unit_id is not None else None
    return commune.current(ctx.today) if commune is not None else None


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
    commune = await ctx.app.calendars.commune_of(ctx.session, season.campaign.commune_id)
    following = commune.after(season.campaign.id) if commune is not None else None
    if following is not None:
        if "registration" in following.deadlines:
            lines.append(
                ctx.t(
                    "season.next",
                    year=following.year,
                    opens=ctx.t.date(following.opens),
                    registration=ctx.t.date(following.deadlines["registration"]),
                )
            )
        else:
            lines.append(ctx.t("season.next_opens", year=following.year, opens=ctx.t.date(following.opens)))
    else:
        lines.append(ctx.t("season.next_unknown"))
    return "\n".join(lines)


async def registration_season(ctx: Context, branch_id: int | None = None) -> Season | None:
    """The season registration would go into (for the person's branch, or the only commune)."""
    branch_id = branch_id or (ctx.subject.branch_id if ctx.subject is not None else None)
    return _season_now(ctx, await ctx.app.calendars.commune_of(ctx.session, branch_id or None))


def registration_line(ctx: Context, season: Season | None) -> str | None:
    if season is None or "registration" not in season.deadlines:
        return None
    return deadline_line(ctx, "registration", season.deadlines["registration"])
