"""Reviewers' decisions: branch recommendation, commune approval or rejection, and requests for
more information. Each one is checked against scope, the lifecycle table and the version the
reviewer looked at, recorded as an audit event, and announced to the person through the outbox."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import VN_TZ
from bot.domain.labels import STATE_KEYS
from bot.domain.lifecycle import Actor, IllegalTransition, State, check
from bot.i18n import N_
from bot.messages import command_action
from bot.review.retention import RETENTION_ACTOR
from bot.review.scope import Scope
from bot.storage.models import CampaignDeadline, ChannelAccount, Person, Submission, SubmissionEvent
from bot.storage.outbox import Notice, enqueue
from bot.storage.people import Role
from bot.storage.subjects import owners, subject_store
from bot.storage.submissions import transition

ANSWER_BUTTON = command_action("bosung")
STATUS_BUTTON = command_action("trangthai")
PROXY_BUTTON = command_action("lamho")


class Decision(StrEnum):
    RECOMMEND = "recommend"
    NOT_RECOMMEND = "not_recommend"
    NEEDS_INFO = "needs_info"
    APPROVE = "approve"
    REJECT = "reject"


TARGET = {
    Decision.RECOMMEND: State.RECOMMENDED,
    Decision.NOT_RECOMMEND: State.NOT_RECOMMENDED,
    Decision.NEEDS_INFO: State.NEEDS_INFO,
    Decision.APPROVE: State.APPROVED,
    Decision.REJECT: State.REJECTED,
}
ACTOR = {Role.LEADER: Actor.BRANCH, Role.OFFICER: Actor.COMMUNE}
COMMUNE_DECISIONS = (Decision.APPROVE, Decision.REJECT)
# The shortest reason the commune may give for deciding before the branch (kept in the audit trail).
OVERRIDE_MIN = 5
# Decisions each reviewing role may take (the lifecycle table decides from which states).
OFFERED = {
    Role.LEADER: (Decision.RECOMMEND, Decision.NOT_RECOMMEND, Decision.NEEDS_INFO),
    Role.OFFICER: (Decision.APPROVE, Decision.REJECT, Decision.NEEDS_INFO),
}
NOTICE_KEYS = {
    State.RECOMMENDED: N_("notice.recommended"),
    State.NOT_RECOMMENDED: N_("notice.not_recommended"),
    State.NEEDS_INFO: N_("notice.needs_info"),
    State.APPROVED: N_("notice.approved"),
    State.REJECTED: N_("notice.rejected"),
}


class OutOfScope(Exception):
    """The reviewer's scope does not cover this submission's branch."""


class OwnApplication(Exception):
    """The reviewer is part of the application (its subject, the household's head, a member or
    the registrant): nobody recommends or decides their own."""


class ProcessingStopped(Exception):
    """The person who registered withdrew their consent: the application waits until they agree
    again (or delete their data)."""


class AwaitingBranch(Exception):
    """The commune's rule: the commune decides only after the branch has given its view (or the
    branch's deadline has passed). An officer may still decide, giving a reason (`override`)."""

    def __init__(self, submission: Submission, due: date | None) -> None:
        self.submission = submission
        self.due = due
        super().__init__(f"{submission.reference} waits for the branch (due {due})")


async def branch_due(session: AsyncSession, submission: Submission) -> date | None:
    return await session.scalar(
        select(CampaignDeadline.due_on).where(
            CampaignDeadline.campaign_id == submission.campaign_id, CampaignDeadline.kind == "branch_review"
        )
    )


async def awaiting_branch(
    session: AsyncSession, submission: Submission, role: Role, decision: Decision, now: datetime
) -> date | None | Literal[False]:
    """False when the rule lets this decision through; otherwise the branch deadline it waits
    for (None when the campaign has none)."""
    if role != Role.OFFICER or decision not in COMMUNE_DECISIONS or submission.state != State.SUBMITTED.value:
        return False
    due = await branch_due(session, submission)
    if due is not None and now.astimezone(VN_TZ).date() > due:
        return False
    return due


class Conflict(Exception):
    """The submission changed since the reviewer looked at it (someone else decided, or the
    person resubmitted); `last` is the latest event, to say who and what."""

    def __init__(self, submission: Submission, last: SubmissionEvent | None) -> None:
        self.submission = submission
        self.last = last
        super().__init__(f"{submission.reference} changed (now {submission.state})")


def allowed_decisions(role: Role, state: str) -> list[Decision]:
    """What a reviewer in this role can do with a submission in this state."""
    actor = ACTOR[role]
    offered = []
    for decision in OFFERED[role]:
        try:
            check(state, TARGET[decision], actor, ignore_note=True)
        except IllegalTransition:
            continue
        offered.append(decision)
    return offered


def note_required(role: Role, state: str, decision: Decision) -> bool:
    try:
        check(state, TARGET[decision], ACTOR[role], None)
    except IllegalTransition:
        return True
    return False


async def last_event(session: AsyncSession, submission_id: int) -> SubmissionEvent | None:
    return await session.scalar(
        select(SubmissionEvent)
        .where(SubmissionEvent.submission_id == submission_id, SubmissionEvent.actor_kind != RETENTION_ACTOR)
        .order_by(SubmissionEvent.id.desc())
        .limit(1)
    )


async def involved_person_ids(session: AsyncSession, submission: Submission) -> set[int]:
    """Everyone the application is about or was made by (bot.storage.subjects: a household's
    head, its registrant and every member with a person row)."""
    return await subject_store(submission.subject_kind).involved(session, submission)


async def consent_withdrawn(session: AsyncSession, submission: Submission) -> bool:
    """Whether the person who registered it withdrew their consent (and has not agreed again)."""
    registrant_id = await subject_store(submission.subject_kind).registrant(session, submission)
    registrant = await session.get(Person, registrant_id) if registrant_id is not None else None
    return registrant is not None and registrant.deleted_at is None and registrant.consent_at is None


async def may_review(session: AsyncSession, submission: Submission, actor_person_id: int | None) -> None:
    """Raise OwnApplication or ProcessingStopped when this reviewer may not decide on it now."""
    if actor_person_id is not None and actor_person_id in await involved_person_ids(session, submission):
        raise OwnApplication(submission.id)
    if await consent_withdrawn(session, submission):
        raise ProcessingStopped(submission.id)


async def decide(
    session: AsyncSession,
    *,
    submission_id: int,
    decision: Decision,
    role: Role,
    scope: Scope,
    actor_person_id: int,
    note: str | None,
    now: datetime,
    expected_version: int | None = None,
    override: str | None = None,
    branch_first: bool = False,
) -> SubmissionEvent:
    """Apply a reviewer's decision. Raises OutOfScope, OwnApplication, ProcessingStopped, Conflict
    or IllegalTransition before anything changes; the version column also stops a concurrent
    decision at commit time."""
    submission = await session.get(Submission, submission_id, populate_existing=True)
    if submission is None or not scope.covers(submission.branch_id):
        raise OutOfScope(submission_id)
    await may_review(session, submission, actor_person_id)
    if expected_version is not None and submission.version != expected_version:
        raise Conflict(submission, await last_event(session, submission.id))
    if decision not in OFFERED[role]:
        raise IllegalTransition(State(submission.state), TARGET[decision], ACTOR[role], "not offered to this role")
    try:
        check(submission.state, TARGET[decision], ACTOR[role], ignore_note=True)
    except IllegalTransition as exc:
        # Decided, sent back or withdrawn by someone else in the meantime.
        raise Conflict(submission, await last_event(session, submission.id)) from exc
    check(submission.state, TARGET[decision], ACTOR[role], note)  # a missing required note
    # The commune's rule (branch first, or an override with a reason), where the caller offers the
    # override: the chat and the review desk both do.
    waiting = await awaiting_branch(session, submission, role, decision, now) if branch_first else False
    if waiting is not False and not (override or "").strip():
        raise AwaitingBranch(submission, waiting or None)
    event = await transition(
        session,
        submission,
        TARGET[decision],
        actor=ACTOR[role],
        actor_person_id=actor_person_id,
        note=note,
        now=now,
    )
    if waiting is not False:
        event.override_reason = (override or "").strip()  # kept with the decision, in the audit trail
        await session.flush()
    await notify_decision(session, submission, event, now)
    return event


async def subject_people(session: AsyncSession, submission: Submission) -> list[Person]:
    """The people a submission is about (bot.storage.subjects), those not deleted."""
    people = []
    for person_id in await owners(session, submission):
        person = await session.get(Person, person_id)
        if person is not None and person.deleted_at is None:
            people.append(person)
    return people


async def notify_decision(session: AsyncSession, submission: Submission, event: SubmissionEvent, now: datetime) -> int:
    """Queue a notice for the person (each of their chat accounts). A household registered by
    a branch leader for someone without a phone is announced to that leader instead."""
    target = State(event.to_state)
    key = NOTICE_KEYS.get(target)
    if key is None:
        return 0
    people = await subject_people(session, submission)
    accounts = await _accounts_of([p.id for p in people], session)
    params: dict[str, object] = {"reference": submission.reference, "note": event.note or ""}
    if target == State.NEEDS_INFO:
        choices = [(ANSWER_BUTTON, N_("notice.answer"))]
    else:
        choices = [(STATUS_BUTTON, N_("notice.see_status"))]
    notice = Notice(key, params, choices)
    if not accounts and submission.created_by_person_id is not None:
        accounts = await _accounts_of([submission.created_by_person_id], session)
        name = people[0].full_name if people else ""
        notice = Notice(
            N_("notice.proxy"),
            {
                "reference": submission.reference,
                "name": name,
                "state": {"key": STATE_KEYS[target]},
                "note": event.note or "-",
            },
            [(PROXY_BUTTON, N_("notice.open_proxy"))],
        )
    queued = 0
    for account in accounts:
        queued += await enqueue(
            session,
            key=f"decision:{event.id}:{account.id}",
            account_id=account.id,
            kind="decision",
            notice=notice,
            not_before=now,
            now=now,
            campaign_id=submission.campaign_id,
        )
    return queued


async def _accounts_of(person_ids: list[int], session: AsyncSession) -> list[ChannelAccount]:
    if not person_ids:
        return []
    return list(
        await session.scalars(
            select(ChannelAccount).where(ChannelAccount.person_id.in_(person_ids)).order_by(ChannelAccount.id)
        )
    )
