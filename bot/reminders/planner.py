"""Who gets which reminder: computed when a round runs, from the submission states of that moment.

A round is one deadline of one campaign, so many days before it. Which people a deadline
concerns is declared in `AUDIENCES`:

* registration — people of the commune who gave consent and have a branch but no submission in
  this campaign yet (typically last year's participants);
* self_declaration — declarations not finished (registered, declaring) and requests for more
  information (needs_info);
* branch_review, commune_report — requests for more information, plus the branch leader's and the
  officer's digests (see `bot.reminders.digests`).

A person asked for more information is reminded of the *nearest* deadline only, so they do not
get a reminder for every deadline of the season in the same week.

Every reminder goes into the outbox under the key (recipient, kind, campaign, deadline, offset):
planning the same round twice — a job that ran twice, a restart, `hoctap remind` by hand — adds
nothing the first run did not.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.labels import DEADLINE_KEYS
from bot.domain.lifecycle import State
from bot.i18n import N_
from bot.messages import command_action
from bot.reminders.recipients import (
    CriteriaCache,
    Reach,
    SubmissionFacts,
    chunked,
    linked_people,
    names_of,
    reach_of,
    route_for,
    submission_facts,
)
from bot.reminders.timing import days_left, next_allowed
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit, Person, Submission
from bot.storage.outbox import Notice, Queued, enqueue_many
from bot.storage.people import get_or_create_account
from bot.storage.subjects import concerned_people

REGISTER_BUTTON = command_action("dangky")
DECLARE_BUTTON = command_action("tudanhgia")
STATUS_BUTTON = command_action("trangthai")

NOT_REGISTERED = "not_registered"
UNFINISHED = "unfinished"
NEEDS_INFO = "needs_info"

AUDIENCES: dict[str, tuple[str, ...]] = {
    "registration": (NOT_REGISTERED,),
    "self_declaration": (UNFINISHED, NEEDS_INFO),
    "branch_review": (NEEDS_INFO,),
    "commune_report": (NEEDS_INFO,),
}
STATES_OF: dict[str, tuple[State, ...]] = {
    UNFINISHED: (State.REGISTERED, State.DECLARING),
    NEEDS_INFO: (State.NEEDS_INFO,),
}
REMINDER = "reminder"


def plural(key: str, plural_key: str, count: int, **params: object) -> dict:
    """A nested notice whose form depends on `count` (rendered by the outbox in the reader's locale)."""
    return {"key": key, "plural": plural_key, "count": count, "params": params}


def deadline_param(kind: str, due_on: date, days: int) -> dict:
    """ "Hạn tự đánh giá: 30 tháng 11, 2026 (còn 7 ngày)." as a nested notice."""
    what_key = DEADLINE_KEYS[kind]
    what = {"key": what_key}
    when = {"date": due_on.isoformat()}
    if days <= 0:
        return {"key": N_("remind.due_today"), "params": {"what": what, "date": when}}
    return plural("status.deadline", "status.deadline.plural", days, what=what, date=when)


def audience(deadline: CampaignDeadline, deadlines: list[CampaignDeadline], today: date) -> list[str]:
    groups = list(AUDIENCES.get(deadline.kind, ()))
    if NEEDS_INFO in groups:
        nearer = [
            d
            for d in deadlines
            if d.kind != deadline.kind
            and NEEDS_INFO in AUDIENCES.get(d.kind, ())
            and today <= d.due_on < deadline.due_on
        ]
        if nearer:
            groups.remove(NEEDS_INFO)
    return groups


def reminder_key(person_id: int, campaign_id: int, deadline_kind: str, offset: int) -> str:
    return f"remind:p{person_id}:c{campaign_id}:{deadline_kind}:{offset}"


@dataclass
class Planned:
    """One reminder about to be queued, with what a dry run shows about it."""

    queued: Queued
    person_id: int
    name: str
    reach: Reach
    references: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One planning pass: a deadline of a campaign, so many days before it.

    A branch leader's one-tap reminder is a round too, limited to their branches, with its own
    key (once per person per day) and wording.
    """

    campaign: Campaign
    deadline: CampaignDeadline
    deadlines: list[CampaignDeadline]
    offset: int
    send_at: datetime  # when the messages may go out (after quiet hours)
    groups: list[str] | None = None  # None: the deadline's audience
    branch_ids: list[int] | None = None  # None: the whole commune
    key_fn: Callable[[int], str] | None = None
    kind: str = REMINDER
    intro_key: str = N_("remind.declare")

    def key_for(self, person_id: int) -> str:
        if self.key_fn is not None:
            return self.key_fn(person_id)
        return reminder_key(person_id, self.campaign.id, self.deadline.kind, self.offset)


@dataclass
class RoundResult:
    planned: int = 0  # reminders computed
    queued: int = 0  # new outbox rows (the rest were already queued)
    unreachable: int = 0  # people concerned with no account to write to
    digests: int = 0
    digests_queued: int = 0
    new_keys: set[str] = field(default_factory=set)  # filled when the caller collects the reminders


def make_round(
    campaign: Campaign,
    deadline: CampaignDeadline,
    deadlines: list[CampaignDeadline],
    offset: int,
    now: datetime,
    planned_at: datetime | None,
    settings: Settings,
) -> Round:
    start = max(now, planned_at) if planned_at is not None else now
    return Round(campaign, deadline, deadlines, offset, next_allowed(start, settings))


def submission_line(facts: SubmissionFacts, title: dict[str, str]) -> dict:
    params = {"reference": facts.reference, "title": {"text": title}}
    if facts.state == State.NEEDS_INFO.value:
        return {"key": N_("remind.line_needs_info"), "params": {**params, "note": facts.note or ""}}
    if facts.state == State.REGISTERED.value or facts.answered == 0:
        return {"key": N_("remind.line_not_started"), "params": params}
    left = max(0, facts.total - facts.answered)
    if left == 0:
        return {"key": N_("remind.line_ready"), "params": params}
    return plural("remind.line_unfinished", "remind.line_unfinished.plural", left, **params)


async def _branch_ids(session: AsyncSession, commune_id: int) -> list[int]:
    return list(
        await session.scalars(select(OrgUnit.id).where(OrgUnit.parent_id == commune_id, OrgUnit.kind == "branch"))
    )


def _conditions(campaign_id: int, states: list[str], branch_ids: list[int] | None) -> list:
    found = [Submission.campaign_id == campaign_id, Submission.state.in_(states)]
    if branch_ids is not None:
        found.append(Submission.branch_id.in_(branch_ids))
    return found


@dataclass
class Pairs:
    """(person, submission) pairs sorted by person, in two flat arrays (16 bytes a pair)."""

    pids: array = field(default_factory=lambda: array("q"))
    sids: array = field(default_factory=lambda: array("q"))

    def people(self) -> list[int]:
        return sorted(set(self.pids))

    def of(self, chunk: Sequence[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        if not chunk:
            return found
        lo, hi = bisect_left(self.pids, chunk[0]), bisect_right(self.pids, chunk[-1])
        for k in range(lo, hi):
            found.setdefault(self.pids[k], []).append(self.sids[k])
        return found


async def _submission_pairs(
    session: AsyncSession, campaign_id: int, states: list[str], branch_ids: list[int] | None
) -> Pairs:
    """Everyone the submissions in `states` concern, read once for the whole round (streamed)."""
    pairs = linked_people(*_conditions(campaign_id, states, branch_ids)).subquery()
    live = select(Person.id).where(Person.deleted_at.is_(None))
    found = Pairs()
    result = await session.stream(
        select(pairs.c.pid, pairs.c.sid).where(pairs.c.pid.in_(live)).order_by(pairs.c.pid, pairs.c.sid)
    )
    async for partition in result.partitions(5000):
        for pid, sid in partition:
            found.pids.append(pid)
            found.sids.append(sid)
    return found


async def not_registered_people(
    session: AsyncSession, campaign: Campaign, only_branches: list[int] | None = None
) -> list[int]:
    """Consenting people of the commune's branches with no submission in this campaign.

    Set-based (NOT IN over an id list per way a person is concerned by a submission, as
    bot.storage.subjects says) so it stays linear for a whole province.
    """
    branch_ids = await _branch_ids(session, campaign.commune_id)
    if only_branches is not None:
        branch_ids = [b for b in branch_ids if b in only_branches]
    if not branch_ids:
        return []
    in_campaign = Submission.campaign_id == campaign.id
    rows = await session.scalars(
        select(Person.id)
        .where(
            Person.branch_id.in_(branch_ids),
            Person.consent_at.is_not(None),
            Person.deleted_at.is_(None),
            *(Person.id.not_in(ids) for ids in concerned_people(in_campaign)),
        )
        .order_by(Person.id)
    )
    return list(rows)


@dataclass
class Part:
    mode: str  # "register" or "declare"
    people: list[int]
    pairs: Pairs | None = None


async def round_people(session: AsyncSession, rnd: Round, settings: Settings) -> list[Part]:
    """Everyone the round concerns, sorted by person id, in two parts: people to remind to
    register, and people with a declaration to finish or a request to answer."""
    today = rnd.send_at.astimezone(settings.tz).date()
    groups = rnd.groups if rnd.groups is not None else audience(rnd.deadline, rnd.deadlines, today)
    parts: list[Part] = []
    if NOT_REGISTERED in groups:
        parts.append(Part("register", await not_registered_people(session, rnd.campaign, rnd.branch_ids)))
    states = _states(groups)
    if states:
        pairs = await _submission_pairs(session, rnd.campaign.id, states, rnd.branch_ids)
        parts.append(Part("declare", pairs.people(), pairs))
    return parts


def _states(groups: list[str]) -> list[str]:
    return [s.value for g in groups if g in STATES_OF for s in STATES_OF[g]]


async def build_batch(
    session: AsyncSession, rnd: Round, criteria: CriteriaCache, settings: Settings, part: Part, chunk: list[int]
) -> list[Planned]:
    """The reminders of one chunk of people (a few queries, whatever the chunk size)."""
    days = days_left(rnd.deadline.due_on, rnd.send_at, settings)
    deadline = deadline_param(rnd.deadline.kind, rnd.deadline.due_on, days)
    # In-window chat, else ZNS (when set up and consented), else "needs a visit" (leader digest).
    reach = await reach_of(session, chunk, route=route_for(settings, rnd.send_at))
    names = await names_of(session, chunk)
    batch = []
    if part.mode == "register":
        for pid in chunk:
            notice = Notice(
                N_("remind.register"),
                {"name": names.get(pid, ""), "year": rnd.campaign.year, "deadline": deadline},
                choices=[(REGISTER_BUTTON, N_("remind.button_register"))],
            )
            batch.append(_planned(rnd, pid, names.get(pid, ""), reach[pid], notice, [], [NOT_REGISTERED]))
        return batch
    today = rnd.send_at.astimezone(settings.tz).date()
    groups = rnd.groups if rnd.groups is not None else audience(rnd.deadline, rnd.deadlines, today)
    states = set(_states(groups))
    pairs = part.pairs.of(chunk) if part.pairs is not None else {}
    facts = await submission_facts(session, sorted({s for sids in pairs.values() for s in sids}), criteria)
    for pid in chunk:
        # States are read again now: a declaration submitted since the round began is left out.
        subs = [facts[sid] for sid in pairs.get(pid, []) if sid in facts and facts[sid].state in states]
        if not subs:
            continue
        lines = [submission_line(f, await criteria.title_text(session, f.criteria_set_id)) for f in subs]
        asked_only = all(f.state == State.NEEDS_INFO.value for f in subs)
        notice = Notice(
            rnd.intro_key,
            {
                "name": names.get(pid, ""),
                "deadline": deadline,
                "lines": {"lines": lines},
                "action": {"key": N_("remind.tap_answer") if asked_only else N_("remind.tap_declare")},
            },
            choices=[
                (DECLARE_BUTTON, N_("remind.button_answer") if asked_only else N_("remind.button_declare")),
                (STATUS_BUTTON, N_("remind.button_status")),
            ],
        )
        kinds = sorted({NEEDS_INFO if f.state == State.NEEDS_INFO.value else UNFINISHED for f in subs})
        batch.append(_planned(rnd, pid, names.get(pid, ""), reach[pid], notice, [f.reference for f in subs], kinds))
    return batch


def _planned(
    rnd: Round, pid: int, name: str, reach: Reach, notice: Notice, references: list[str], groups: list[str]
) -> Planned:
    queued = Queued(
        key=rnd.key_for(pid),
        account_id=reach.account_id or 0,
        kind=rnd.kind,
        notice=notice,
        not_before=rnd.send_at,
        campaign_id=rnd.campaign.id,
        deadline_kind=rnd.deadline.kind,
        offset_days=rnd.offset,
    )
    return Planned(queued, pid, name, reach, references, groups)


SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def plan_reminders(
    open_session: SessionOpener,
    rnd: Round,
    criteria: CriteriaCache,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    collect: list[Planned] | None = None,
) -> RoundResult:
    """Queue the round's reminders, one short transaction per chunk of people.

    `open_session` gives a session in a transaction (committed when the block ends); nothing is
    written with `dry_run`; `collect` receives every computed reminder (dry runs, tests).
    Because every row has its unique key, a run cut short and run again finishes the job.
    """
    result = RoundResult()
    async with open_session() as session:
        parts = await round_people(session, rnd, settings)
    for part in parts:
        for chunk in chunked(part.people):
            async with open_session() as session:
                batch = await build_batch(session, rnd, criteria, settings, part, list(chunk))
                reachable = [p for p in batch if p.reach.reachable]
                result.planned += len(batch)
                result.unreachable += len(batch) - len(reachable)
                if collect is not None:
                    collect.extend(batch)
                if not dry_run:
                    await _make_zns_accounts(session, reachable, now)
                    new = await enqueue_many(session, [p.queued for p in reachable], now=now)
                    result.queued += len(new)
                    if collect is not None:
                        result.new_keys |= new
    return result


async def _make_zns_accounts(session: AsyncSession, planned: list[Planned], now: datetime) -> None:
    """A ZNS route by OA user id becomes an account of its own ("zns", "uid:<id>") when the first
    reminder goes that way; the person's consent is the one they gave on the OA."""

    for p in planned:
        if p.reach.account_id is None and p.reach.channel == "zns" and p.reach.external_id:
            account = await get_or_create_account(session, "zns", p.reach.external_id, None, now)
            if account.person_id is None:
                account.person_id, account.consent_at, account.locale = p.person_id, now, p.reach.locale
            await session.flush()
            p.queued.account_id = account.id


def in_session(session: AsyncSession) -> SessionOpener:
    """Plan inside a transaction that is already open (a chat command's)."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[AsyncSession]:
        yield session

    return opener
