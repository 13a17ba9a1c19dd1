"""Digests for the people who follow a branch or a commune.

* Branch leader (weekly, and before the branch review deadline): counts by state for the branch;
  who has not started, not finished, or was asked for more; who cannot be reached in chat and needs
  a visit; and a button that sends those members a reminder (`/nhacnho`, see commands.py).
* Officer (weekly, and before the commune report deadline): commune counts, reviews waiting at the
  branch and at the commune, progress against the commune's targets (percent of households for
  Gia đình học tập, of adults for Công dân học tập), a line per branch, and how many people cannot
  be reached.

A planned digest row holds only what identifies it (role, unit, campaign, heading; its deadline is
the row's `deadline_kind`): the dispatcher builds the text from the data of the moment it is sent,
in the reader's language. So nobody's name is frozen in the outbox days ahead, and someone who
deleted their data in between is not in it. `hoctap remind --dry-run --verbose` shows the same
text built for the planned sending time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.criteria import CriteriaCatalog
from bot.domain.labels import STATE_KEYS
from bot.domain.lifecycle import EDITABLE, PENDING_REVIEW, State
from bot.domain.subjects import population
from bot.i18n import N_
from bot.messages import command_action
from bot.reminders.planner import deadline_param, plural
from bot.reminders.recipients import (
    NO_ACCOUNT,
    CriteriaCache,
    Reach,
    linked_people,
    names_of,
    reach_of,
    route_for,
    submission_facts,
)
from bot.reminders.timing import days_left
from bot.reminders.zalo_lines import zalo_blocks
from bot.storage.commune import deadlines_of
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit, RoleGrant, Submission
from bot.storage.outbox import Deferred, Notice, Queued
from bot.storage.people import Role
from bot.text import fold

REMIND_BUTTON = command_action("nhacnho")
CALENDAR_BUTTON = command_action("lichnhac")

LIST_MAX = 15
LEADER, OFFICER = "leader", "officer"
DIGEST = "digest"
WEEKLY = N_("digest.heading_weekly")
BEFORE_DEADLINE = N_("digest.heading_deadline")

STATE_ORDER = [
    State.REGISTERED,
    State.DECLARING,
    State.NEEDS_INFO,
    State.SUBMITTED,
    State.RECOMMENDED,
    State.NOT_RECOMMENDED,
    State.APPROVED,
    State.REJECTED,
    State.WITHDRAWN,
    State.EXPIRED,
]
REASON_KEYS = {
    "blocked": N_("digest.reason.blocked"),
    "outside_window": N_("digest.reason.outside_window"),
    "not_found": N_("digest.reason.not_found"),
    "zns_opt_out": N_("digest.reason.zns_opt_out"),
    NO_ACCOUNT: N_("digest.reason.no_account"),
}
OTHER_REASON = N_("digest.reason.other")


def weekly_tag(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"w{year}-{week:02d}"


def digest_key(role: str, person_id: int, unit_id: int, tag: str) -> str:
    return f"digest:{role}:p{person_id}:u{unit_id}:{tag}"


@dataclass
class StaffTarget:
    """A leader (branch) or officer (commune) and the unit their digest is about."""

    role: str
    person_id: int
    unit: OrgUnit


async def staff_of(session: AsyncSession, commune: OrgUnit) -> list[StaffTarget]:
    branches = {
        u.id: u
        for u in await session.scalars(select(OrgUnit).where(OrgUnit.parent_id == commune.id, OrgUnit.kind == "branch"))
    }
    grants = await session.scalars(
        select(RoleGrant)
        .where(RoleGrant.revoked_at.is_(None), RoleGrant.role.in_([Role.LEADER.value, Role.OFFICER.value]))
        .order_by(RoleGrant.id)
    )
    found: dict[tuple[str, int, int], StaffTarget] = {}
    for grant in grants:
        if grant.role == Role.LEADER.value and grant.scope_unit_id in branches:
            found[(LEADER, grant.person_id, grant.scope_unit_id)] = StaffTarget(
                LEADER, grant.person_id, branches[grant.scope_unit_id]
            )
        elif grant.role == Role.OFFICER.value and grant.scope_unit_id == commune.id:
            found[(OFFICER, grant.person_id, commune.id)] = StaffTarget(OFFICER, grant.person_id, commune)
    return list(found.values())


def next_deadline(
    deadlines: list[CampaignDeadline], today: date, kinds: tuple[str, ...] | None = None
) -> CampaignDeadline | None:
    upcoming = [d for d in deadlines if d.due_on >= today and (kinds is None or d.kind in kinds)]
    return min(upcoming, key=lambda d: d.due_on) if upcoming else None


def _named_deadline(
    deadlines: list[CampaignDeadline], today: date, heading: str, own_kind: str
) -> CampaignDeadline | None:
    """The deadline a digest names: before a deadline, the reader's own one (`own_kind`: the
    branch review for a leader, the commune report for an officer); weekly, the next of any kind."""
    return next_deadline(deadlines, today, (own_kind,) if heading == BEFORE_DEADLINE else None)


def _deadline_block(deadline: CampaignDeadline | None, send_at: datetime, settings: Settings) -> dict:
    if deadline is None:
        return {"key": N_("status.no_deadline")}
    return deadline_param(deadline.kind, deadline.due_on, days_left(deadline.due_on, send_at, settings))


async def _state_counts(session: AsyncSession, campaign_id: int, branch_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = await session.execute(
        select(Submission.branch_id, Submission.state, func.count())
        .where(Submission.campaign_id == campaign_id, Submission.branch_id.in_(branch_ids))
        .group_by(Submission.branch_id, Submission.state)
    )
    counts: dict[int, dict[str, int]] = {}
    for branch_id, state, count in rows:
        counts.setdefault(branch_id, {})[state] = int(count)
    return counts


def _counts_block(counts: dict[str, int]) -> dict:
    lines = [
        {"key": N_("digest.count_line"), "params": {"state": {"key": STATE_KEYS[state]}, "count": counts[state.value]}}
        for state in STATE_ORDER
        if counts.get(state.value)
    ]
    if not lines:
        return {"key": N_("digest.no_submissions")}
    return {"key": N_("digest.by_state"), "params": {"lines": {"lines": lines}}}


def _names(entries: list[dict]) -> dict:
    shown = entries[:LIST_MAX]
    if len(entries) > LIST_MAX:
        shown = [*shown, plural("digest.more", "digest.more.plural", len(entries) - LIST_MAX)]
    return {"lines": shown, "sep": ", "}


async def _unreachable(
    session: AsyncSession, campaign_id: int, branch_ids: list[int], settings: Settings, at: datetime
) -> tuple[dict[int, Reach], dict[int, list[int]]]:
    """Reach of everyone linked to submissions still with their owners (EDITABLE states)."""
    pairs = linked_people(
        Submission.campaign_id == campaign_id,
        Submission.branch_id.in_(branch_ids),
        Submission.state.in_([s.value for s in EDITABLE]),
    ).subquery()
    people_of: dict[int, list[int]] = {}
    for pid, sid in await session.execute(select(pairs)):
        people_of.setdefault(sid, []).append(pid)
    # As reminders go: someone only a ZNS template reaches is reachable; someone the OA cannot
    # write to any more (and no ZNS) needs a visit.
    reach = await reach_of(session, {p for ps in people_of.values() for p in ps}, route=route_for(settings, at))
    return reach, people_of


def _reason(reaches: list[Reach]) -> str:
    reasons = [r.unreachable_reason for r in reaches if r.unreachable_reason]
    marked = [r for r in reasons if r != NO_ACCOUNT]
    reason = marked[0] if marked else (reasons[0] if reasons else NO_ACCOUNT)
    return REASON_KEYS.get(reason, OTHER_REASON)


async def leader_digest(
    session: AsyncSession,
    campaign: Campaign,
    deadlines: list[CampaignDeadline],
    branch: OrgUnit,
    criteria: CriteriaCache,
    settings: Settings,
    send_at: datetime,
    heading: str,
) -> Notice:
    today = send_at.astimezone(settings.tz).date()
    counts = (await _state_counts(session, campaign.id, [branch.id])).get(branch.id, {})
    editable_ids = list(
        await session.scalars(
            select(Submission.id)
            .where(
                Submission.campaign_id == campaign.id,
                Submission.branch_id == branch.id,
                Submission.state.in_([s.value for s in EDITABLE]),
                # Someone who deleted their data is counted above, but there is nobody to name.
                Submission.anonymised_at.is_(None),
            )
            .order_by(Submission.id)
        )
    )
    facts = await submission_facts(session, editable_ids, criteria)
    reach, people_of = await _unreachable(session, campaign.id, [branch.id], settings, send_at)
    ordered = sorted(facts.values(), key=lambda f: (fold(f.subject_name), f.id))
    not_started, unfinished, asked, away = [], [], [], []
    nudgeable = False
    for f in ordered:
        reaches = [reach[p] for p in people_of.get(f.id, []) if p in reach]
        reachable = any(r.reachable for r in reaches)
        nudgeable = nudgeable or reachable
        entry = {"key": N_("digest.entry"), "params": {"name": f.subject_name, "reference": f.reference}}
        if f.state == State.NEEDS_INFO.value:
            asked.append(entry)
        elif f.state == State.REGISTERED.value or f.answered == 0:
            not_started.append(entry)
        else:
            unfinished.append(
                {
                    "key": N_("digest.entry_progress"),
                    "params": {
                        "name": f.subject_name,
                        "reference": f.reference,
                        "answered": f.answered,
                        "total": f.total,
                    },
                }
            )
        if not reachable:
            away.append(
                {
                    "key": N_("digest.entry_away"),
                    "params": {"name": f.subject_name, "reason": {"key": _reason(reaches)}},
                }
            )
    blocks = [_counts_block(counts)]
    sections = [
        (
            not_started,
            plural("digest.not_started", "digest.not_started.plural", len(not_started), names=_names(not_started)),
        ),
        (
            unfinished,
            plural("digest.unfinished", "digest.unfinished.plural", len(unfinished), names=_names(unfinished)),
        ),
        (asked, plural("digest.asked", "digest.asked.plural", len(asked), names=_names(asked))),
        (away, plural("digest.away", "digest.away.plural", len(away), names=_names(away))),
    ]
    listed = [section for entries, section in sections if entries]
    if listed:
        blocks.append({"lines": listed})
    choices = []
    if nudgeable:
        blocks.append({"key": N_("digest.leader_tap")})
        choices.append((REMIND_BUTTON, N_("digest.button_remind")))
    elif not facts and counts:
        blocks.append({"key": N_("digest.leader_all_done")})
    deadline = _named_deadline(deadlines, today, heading, "branch_review")
    return Notice(
        N_("digest.leader"),
        {
            "heading": {"key": heading},
            "branch": branch.name,
            "date": {"date": today.isoformat()},
            "deadline": _deadline_block(deadline, send_at, settings),
            "details": {"lines": blocks, "sep": "\n\n"},
        },
        choices=choices,
    )


def _title_totals(commune: OrgUnit, branches: list[OrgUnit], subject: str) -> int | None:
    own = population(commune, subject)
    if own:
        return own
    parts = [population(b, subject) for b in branches]
    return sum(p for p in parts if p) or None


async def officer_digest(
    session: AsyncSession,
    campaign: Campaign,
    deadlines: list[CampaignDeadline],
    commune: OrgUnit,
    catalog: CriteriaCatalog,
    settings: Settings,
    send_at: datetime,
    heading: str,
) -> Notice:
    today = send_at.astimezone(settings.tz).date()
    branches = list(
        await session.scalars(
            select(OrgUnit)
            .where(OrgUnit.parent_id == commune.id, OrgUnit.kind == "branch")
            .order_by(OrgUnit.position, OrgUnit.name)
        )
    )
    branch_ids = [b.id for b in branches]
    per_branch = await _state_counts(session, campaign.id, branch_ids)
    totals: dict[str, int] = {}
    for counts in per_branch.values():
        for state, n in counts.items():
            totals[state] = totals.get(state, 0) + n
    blocks = [_counts_block(totals)]
    at_branch = totals.get(State.SUBMITTED.value, 0)
    at_commune = totals.get(State.RECOMMENDED.value, 0) + totals.get(State.NOT_RECOMMENDED.value, 0)
    blocks.append({"key": N_("digest.pending"), "params": {"branch": at_branch, "commune": at_commune}})

    by_title = await session.execute(
        select(Submission.title, Submission.state, func.count())
        .where(Submission.campaign_id == campaign.id, Submission.branch_id.in_(branch_ids))
        .group_by(Submission.title, Submission.state)
    )
    title_counts: dict[str, dict[str, int]] = {}
    for title, state, n in by_title:
        title_counts.setdefault(title, {})[state] = int(n)
    progress = []
    for title in sorted(set(campaign.targets or {}) | set(title_counts)):
        try:
            criteria_set = catalog.for_title(title, campaign.year)
        except LookupError:
            continue
        counts = title_counts.get(title, {})
        recognised = counts.get(State.APPROVED.value, 0)
        registered = sum(n for s, n in counts.items() if s != State.WITHDRAWN.value)
        target = (campaign.targets or {}).get(title)
        total = _title_totals(commune, branches, criteria_set.subject)
        name = {"text": {"vi": criteria_set.title_name.vi, "en": criteria_set.title_name.en}}
        household = criteria_set.subject == "household"
        if total and target is not None:
            progress.append(
                {
                    "key": N_("digest.progress_household") if household else N_("digest.progress_person"),
                    "params": {
                        "title": name,
                        "recognised": {"number": recognised},
                        "total": {"number": total},
                        "percent": {"percent": recognised / total},
                        "target": {"percent": float(target) / 100},
                        "target_count": {"number": math.ceil(total * float(target) / 100)},
                        "registered": {"number": registered},
                    },
                }
            )
        else:
            progress.append(
                {
                    "key": N_("digest.progress_plain"),
                    "params": {
                        "title": name,
                        "recognised": {"number": recognised},
                        "registered": {"number": registered},
                    },
                }
            )
    if progress:
        blocks.append({"key": N_("digest.progress"), "params": {"lines": {"lines": progress}}})

    branch_lines = []
    for branch in branches:
        counts = per_branch.get(branch.id, {})
        registered = sum(n for s, n in counts.items() if s != State.WITHDRAWN.value)
        submitted = sum(
            n
            for s, n in counts.items()
            if State(s) in PENDING_REVIEW or s in (State.APPROVED.value, State.REJECTED.value)
        )
        branch_lines.append(
            {
                "key": N_("digest.branch_line"),
                "params": {
                    "branch": branch.name,
                    "registered": registered,
                    "submitted": submitted,
                    "recognised": counts.get(State.APPROVED.value, 0),
                },
            }
        )
    if branch_lines:
        blocks.append({"key": N_("digest.branches"), "params": {"lines": {"lines": branch_lines}}})

    reach, people_of = await _unreachable(session, campaign.id, branch_ids, settings, send_at)
    away = sum(1 for people in people_of.values() if not any(reach[p].reachable for p in people if p in reach))
    if away:
        blocks.append(plural("digest.officer_away", "digest.officer_away.plural", away))

    blocks += await zalo_blocks(session, campaign, settings, send_at)
    deadline = _named_deadline(deadlines, today, heading, "commune_report")
    return Notice(
        N_("digest.officer"),
        {
            "heading": {"key": heading},
            "commune": commune.name,
            "year": campaign.year,
            "date": {"date": today.isoformat()},
            "deadline": _deadline_block(deadline, send_at, settings),
            "details": {"lines": blocks, "sep": "\n\n"},
        },
        choices=[(CALENDAR_BUTTON, N_("digest.button_calendar"))],
    )


def digest_spec(role: str, unit_id: int, campaign_id: int, heading: str) -> Deferred:
    """What a digest row stores: enough to build it when it is sent, nothing personal."""
    return Deferred(DIGEST, {"role": role, "unit": unit_id, "campaign": campaign_id, "heading": heading})


async def build_digest(
    session: AsyncSession,
    spec: dict,
    *,
    catalog: CriteriaCatalog,
    settings: Settings,
    at: datetime,
    criteria: CriteriaCache | None = None,
) -> Notice:
    """The digest described by `spec`, from the data of now, as it reads when sent at `at`."""
    role, heading = spec["role"], spec["heading"]
    campaign = await session.get(Campaign, spec["campaign"])
    unit = await session.get(OrgUnit, spec["unit"])
    if campaign is None or unit is None or role not in (LEADER, OFFICER) or heading not in (WEEKLY, BEFORE_DEADLINE):
        raise LookupError(f"digest {spec!r} no longer applies")
    deadlines = await deadlines_of(session, campaign.id)
    if role == LEADER:
        return await leader_digest(
            session, campaign, deadlines, unit, criteria or CriteriaCache(catalog), settings, at, heading
        )
    return await officer_digest(session, campaign, deadlines, unit, catalog, settings, at, heading)


@dataclass
class PlannedDigest:
    queued: Queued
    target: StaffTarget
    name: str
    reach: Reach
    # The text as it will read at the planned time (built only when asked: dry runs, --verbose).
    preview: Notice | None = None


async def plan_digests(
    session: AsyncSession,
    *,
    campaign: Campaign,
    deadlines: list[CampaignDeadline],
    commune: OrgUnit,
    roles: tuple[str, ...],
    heading: str,
    tag: str,
    send_at: datetime,
    criteria: CriteriaCache,
    catalog: CriteriaCatalog,
    settings: Settings,
    deadline: CampaignDeadline | None = None,
    offset: int | None = None,
    preview: bool = False,
) -> list[PlannedDigest]:
    """The digests of one commune for the given roles (nothing is written here)."""

    targets = [t for t in await staff_of(session, commune) if t.role in roles]
    if not targets:
        return []
    reach = await reach_of(session, {t.person_id for t in targets}, consent=False)
    names = await names_of(session, {t.person_id for t in targets})
    built: dict[tuple[str, int], Notice] = {}
    planned = []
    for target in targets:
        spec = digest_spec(target.role, target.unit.id, campaign.id, heading)
        cache_key = (target.role, target.unit.id)
        if preview and cache_key not in built:
            built[cache_key] = await build_digest(
                session, spec.spec, catalog=catalog, settings=settings, at=send_at, criteria=criteria
            )
        queued = Queued(
            key=digest_key(target.role, target.person_id, target.unit.id, tag),
            account_id=reach[target.person_id].account_id or 0,
            kind=f"{DIGEST}_{target.role}",
            notice=spec,
            not_before=send_at,
            campaign_id=campaign.id,
            deadline_kind=deadline.kind if deadline is not None else None,
            offset_days=offset,
        )
        planned.append(
            PlannedDigest(
                queued, target, names.get(target.person_id, ""), reach[target.person_id], built.get(cache_key)
            )
        )
    return planned
