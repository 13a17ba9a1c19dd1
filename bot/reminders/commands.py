"""Chat commands for reminders: a leader's one-tap reminder and the officer's calendar.

* `/nhacnho` (`/remind`, branch leaders): reminds the members of their branch who have not
  started, not finished, or were asked for more — the button under the leader's digest runs it.
  Once per person per day, however often it is pressed.
* `/lichnhac` (`/calendar`, officers): shows the commune's deadlines and reminder offsets and
  changes them: `/lichnhac tudanhgia 30/11/2026` moves a deadline, `/lichnhac tudanhgia 14 3 1`
  sets that deadline's own offsets, `/lichnhac tatca 30 7 1` the campaign's.

Both check the person's role grants and scope (bot.storage.people) on every use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date

from babel.dates import format_time
from sqlalchemy import select

from bot.domain.labels import DEADLINE_KEYS
from bot.flows.context import Context
from bot.flows.router import Router
from bot.i18n import N_, all_aliases
from bot.reminders.digests import next_deadline
from bot.reminders.planner import NEEDS_INFO, UNFINISHED, Round, in_session, plan_reminders
from bot.reminders.recipients import CriteriaCache
from bot.reminders.timing import days_left, effective_offsets, in_quiet_hours, next_allowed
from bot.storage.commune import campaign_for, deadlines_of, order_problem
from bot.storage.models import CampaignDeadline, OrgUnit
from bot.storage.people import Role, branch_ids_in_scope, live_grants
from bot.text import fold

log = logging.getLogger(__name__)
router = Router()

NAMES_SHOWN = 15
MAX_OFFSETS = 6
NUDGE_KINDS = ("self_declaration", "branch_review", "commune_report")
ALL = "all"
KIND_ALIASES = {
    "registration": N_("alias.deadline_registration"),
    "self_declaration": N_("alias.deadline_self_declaration"),
    "branch_review": N_("alias.deadline_branch_review"),
    "commune_report": N_("alias.deadline_commune_report"),
    ALL: N_("alias.deadline_all"),
}


def _names(ctx: Context, names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        rest = len(names) - NAMES_SHOWN
        shown = ctx.t.plural("nudge.and_more", "nudge.and_more.plural", rest, names=shown)
    return shown


def _nudge_key(campaign_id: int, day: str) -> Callable[[int], str]:
    """The idempotency key of a nudge: once per person, campaign and day of sending."""
    return lambda pid: f"nudge:p{pid}:c{campaign_id}:{day}"


# -- /nhacnho: a leader reminds the members of their branch -------------------------------------


@router.command(
    "nhacnho",
    "remind",
    english="remind",
    help_key=N_("help.cmd.remind_members"),
    roles=(Role.LEADER,),
    needs_consent=False,
)
async def cmd_nudge(ctx: Context, args: str) -> None:

    ctx.again()
    scope = await branch_ids_in_scope(ctx.session, ctx.person.id, Role.LEADER) if ctx.person else set()
    if scope is not None and not scope:
        ctx.say(ctx.t("nudge.not_leader"))
        return
    query = select(OrgUnit).where(OrgUnit.kind == "branch")
    if scope is not None:
        query = query.where(OrgUnit.id.in_(scope))
    by_commune: dict[int, list[int]] = {}
    for branch in await ctx.session.scalars(query.order_by(OrgUnit.id)):
        if branch.parent_id is not None:
            by_commune.setdefault(branch.parent_id, []).append(branch.id)

    now = ctx.now
    send_at = next_allowed(now, ctx.app.settings)
    today = ctx.today
    # Once per person per day of sending: a press at 22:00 and one at 07:30 are the same morning.
    day = send_at.astimezone(ctx.app.settings.tz).date().isoformat()
    new: list[str] = []
    already: list[str] = []
    away: list[str] = []
    any_deadline = False
    for commune_id, branch_ids in by_commune.items():
        campaign = await campaign_for(ctx.session, commune_id, today)
        if campaign is None:
            continue
        deadlines = await deadlines_of(ctx.session, campaign.id)
        deadline = next_deadline(deadlines, today, NUDGE_KINDS)
        if deadline is None:
            continue
        any_deadline = True
        campaign_id = campaign.id
        rnd = Round(
            campaign,
            deadline,
            deadlines,
            offset=days_left(deadline.due_on, send_at, ctx.app.settings),
            send_at=send_at,
            groups=[UNFINISHED, NEEDS_INFO],
            branch_ids=branch_ids,
            key_fn=_nudge_key(campaign_id, day),
            kind="nudge",
            intro_key=N_("remind.nudge"),
        )
        planned: list = []
        result = await plan_reminders(
            in_session(ctx.session), rnd, CriteriaCache(ctx.app.catalog), ctx.app.settings, now, collect=planned
        )
        # A household is reached when anyone linked to it is (its head may have no phone).
        covered = {ref for p in planned if p.reach.reachable for ref in p.references}
        for p in planned:
            if not p.reach.reachable:
                if set(p.references) - covered:
                    away.append(p.name)
            elif p.queued.key in result.new_keys:
                new.append(p.name)
            else:
                already.append(p.name)
    if not any_deadline:
        ctx.say(ctx.t("nudge.no_deadline"))
        return
    if not (new or already or away):
        ctx.say(ctx.t("nudge.nobody"))
        return
    for names in (new, already, away):
        names.sort(key=fold)
    lines = []
    if new:
        lines.append(ctx.t.plural("nudge.done", "nudge.done.plural", len(new), names=_names(ctx, new)))
        if in_quiet_hours(now, ctx.app.settings):
            lines.append(
                ctx.t(
                    "nudge.morning", time=format_time(send_at, "short", tzinfo=ctx.app.settings.tz, locale=ctx.locale)
                )
            )
    if already:
        lines.append(ctx.t.plural("nudge.already", "nudge.already.plural", len(already), names=_names(ctx, already)))
    if away:
        lines.append(ctx.t.plural("nudge.away", "nudge.away.plural", len(away), names=_names(ctx, away)))
    ctx.say("\n".join(lines))


# -- /lichnhac: an officer's calendar -----------------------------------------------------------


async def _officer_communes(ctx: Context) -> list[OrgUnit]:
    if ctx.person is None:
        return []
    grants = await live_grants(ctx.session, ctx.person.id)
    query = select(OrgUnit).where(OrgUnit.kind == "commune").order_by(OrgUnit.name)
    if not any(g.role == Role.ADMIN.value for g in grants):
        ids = [g.scope_unit_id for g in grants if g.role == Role.OFFICER.value and g.scope_unit_id is not None]
        if not ids:
            return []
        query = query.where(OrgUnit.id.in_(ids))
    return list(await ctx.session.scalars(query))


def _deadline_kind(token: str) -> str | None:
    folded = fold(token)
    for kind, key in KIND_ALIASES.items():
        if folded in all_aliases(key):
            return kind
    return None


DATE_FORMS = (
    re.compile(r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
)


def _parse_date(token: str, year: int) -> date | None:
    for form in DATE_FORMS:
        match = form.match(token.strip())
        if match:
            try:
                found = date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
            return found if abs(found.year - year) <= 1 else None
    return None


def _parse_offsets(tokens: list[str]) -> list[int] | None:
    if not tokens or len(tokens) > MAX_OFFSETS or not all(t.isdigit() for t in tokens):
        return None
    values = [int(t) for t in tokens]
    if any(v > 365 for v in values):
        return None
    return sorted(set(values), reverse=True)


async def _calendar_text(ctx: Context, commune: OrgUnit, campaign) -> str:

    settings = ctx.app.settings
    lines = [ctx.t("calendar.head", year=campaign.year, commune=commune.name)]
    for deadline in await deadlines_of(ctx.session, campaign.id):
        offsets = effective_offsets(campaign, deadline)
        what = ctx.t(DEADLINE_KEYS.get(deadline.kind, deadline.kind))
        when = ctx.t.date(deadline.due_on)
        if not offsets:
            lines.append(ctx.t("calendar.line_none", what=what, date=when))
        elif deadline.reminder_offsets is not None:
            lines.append(ctx.t("calendar.line_own", what=what, date=when, offsets=", ".join(map(str, offsets))))
        else:
            lines.append(ctx.t("calendar.line", what=what, date=when, offsets=", ".join(map(str, offsets))))

    def clock(at) -> str:
        return format_time(at, "short", locale=ctx.locale)

    lines.append(
        ctx.t(
            "calendar.footer",
            time=clock(settings.reminder_time),
            quiet_start=clock(settings.quiet_start),
            quiet_end=clock(settings.quiet_end),
        )
    )
    return "\n".join(lines)


@router.command(
    "lichnhac",
    "calendar",
    "reminders",
    english="calendar",
    help_key=N_("help.cmd.calendar"),
    roles=(Role.OFFICER,),
    needs_consent=False,
)
async def cmd_calendar(ctx: Context, args: str) -> None:
    ctx.again()
    communes = await _officer_communes(ctx)
    if not communes:
        ctx.say(ctx.t("calendar.not_officer"))
        return
    tokens = args.split()
    commune = communes[0]
    if tokens and len(communes) > 1:
        chosen = next((c for c in communes if c.code == tokens[0].lower()), None)
        if chosen is None:
            ctx.say(ctx.t("calendar.which_commune", code=communes[0].code, codes=", ".join(c.code for c in communes)))
            return
        commune, tokens = chosen, tokens[1:]
    campaign = await campaign_for(ctx.session, commune.id, ctx.today)
    if campaign is None:
        ctx.say(ctx.t("calendar.no_campaign", commune=commune.name))
        return
    if not tokens:
        ctx.say(await _calendar_text(ctx, commune, campaign))
        return
    kind = _deadline_kind(tokens[0])
    rest = tokens[1:]
    if kind is None or not rest:
        ctx.say(ctx.t("calendar.usage"))
        return
    if kind == ALL:
        offsets = _parse_offsets(rest)
        if offsets is None:
            ctx.say(ctx.t("calendar.bad_offsets"))
            return
        campaign.reminder_offsets = offsets
        for each in await deadlines_of(ctx.session, campaign.id):
            each.reminder_offsets = None
        change = f"offsets={offsets}"
    else:
        deadline = await ctx.session.scalar(
            select(CampaignDeadline).where(CampaignDeadline.campaign_id == campaign.id, CampaignDeadline.kind == kind)
        )
        if len(rest) == 1 and not rest[0].isdigit():
            due_on = _parse_date(rest[0], campaign.year)
            if due_on is None:
                ctx.say(ctx.t("calendar.bad_date", value=rest[0][:20]))
                return
            dates = {d.kind: d.due_on for d in await deadlines_of(ctx.session, campaign.id)}
            problem = order_problem({**dates, kind: due_on})
            if problem is not None:
                # A deadline before the one it depends on, or after the next, is refused.
                other = problem[2] if problem[0] == kind else problem[0]
                ctx.say(
                    ctx.t(
                        N_("calendar.out_of_order_before") if problem[0] == kind else N_("calendar.out_of_order_after"),
                        what=ctx.t(DEADLINE_KEYS[kind]),
                        other=ctx.t(DEADLINE_KEYS[other]),
                        date=ctx.t.date(dates[other]),
                    )
                )
                return
            if deadline is None:
                deadline = CampaignDeadline(campaign_id=campaign.id, kind=kind, due_on=due_on)
                ctx.session.add(deadline)
            deadline.due_on = due_on
            change = f"{kind} due_on={due_on.isoformat()}"
        else:
            offsets = _parse_offsets(rest)
            if offsets is None:
                ctx.say(ctx.t("calendar.bad_offsets"))
                return
            if deadline is None:
                ctx.say(ctx.t("calendar.no_deadline", what=ctx.t(DEADLINE_KEYS[kind])))
                return
            deadline.reminder_offsets = offsets
            change = f"{kind} offsets={offsets}"
    await ctx.session.flush()
    who = ctx.person.id if ctx.person else None
    log.info("calendar of %s %s changed by person %s: %s", commune.code, campaign.year, who, change)
    await ctx.session.refresh(campaign)
    saved = ctx.t("calendar.saved", minutes=ctx.app.settings.scheduler_sync_minutes)
    ctx.say(saved + "\n" + await _calendar_text(ctx, commune, campaign))
