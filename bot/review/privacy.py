"""A person's own data: what the bot stores about them, and deleting it on request.

Deletion removes the personal part — name, birth year, household members, answers and notes,
photos (the files too, unless another submission still uses the same photo), role grants and
the link to their chat accounts — and keeps each submission row, in its state, detached from
anyone and flagged `anonymised_at`, so the year's registered/recognised counts per branch still
add up. Anonymised rows leave reviewers' queues and the named register.

Copies elsewhere go in the same transaction (`bot.review.traces`: other people's undelivered
replies, queued notices, conversations and notes that name the person); every export file is
removed once it commits, since exports list names (they can be made again).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.review.exports import sweep_exports
from bot.review.traces import TraceCounts, Traces, remove_traces
from bot.storage.core import affected
from bot.storage.evidence import EvidenceStore
from bot.storage.models import (
    Answer,
    ChannelAccount,
    Conversation,
    Evidence,
    OrgUnit,
    OutboxMessage,
    Person,
    ProcessedMessage,
    RoleGrant,
    SubmissionEvent,
)
from bot.storage.people import grants_changed
from bot.storage.subjects import detach, forget, others_listed, submissions_for_person
from bot.storage.submissions import forget_read
from bot.storage.thumbs import sweep_thumbnails

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


@dataclass
class DataSummary:
    name: str
    birth_year: int | None
    branch: str | None
    references: list[str]
    answers: int
    photos: int
    household_members: int
    channels: list[str]
    roles: list[str]


@dataclass
class DeletionResult:
    submissions: int = 0
    answers: int = 0
    photos: int = 0
    people: int = 0
    # Evidence files no longer referenced by this person's rows; removed after commit if unused.
    candidate_files: list[str] = field(default_factory=list)
    traces: TraceCounts = field(default_factory=TraceCounts)


async def summary(session: AsyncSession, person: Person) -> DataSummary:
    submissions = await submissions_for_person(session, person.id)
    ids = [s.id for s in submissions]
    answers = (
        await session.scalar(select(func.count()).select_from(Answer).where(Answer.submission_id.in_(ids)))
        if ids
        else 0
    )
    photos = (
        await session.scalar(select(func.count()).select_from(Evidence).where(Evidence.submission_id.in_(ids)))
        if ids
        else 0
    )
    members = await others_listed(session, person.id)
    branch = await session.get(OrgUnit, person.branch_id) if person.branch_id else None
    channels = sorted(
        set(await session.scalars(select(ChannelAccount.channel).where(ChannelAccount.person_id == person.id)))
    )
    roles = sorted(
        {
            g.role
            for g in await session.scalars(
                select(RoleGrant).where(RoleGrant.person_id == person.id, RoleGrant.revoked_at.is_(None))
            )
        }
    )
    return DataSummary(
        person.full_name,
        person.birth_year,
        branch.name if branch else None,
        [s.reference or "" for s in submissions],
        answers or 0,
        photos or 0,
        members,
        channels,
        roles,
    )


async def delete_person_data(session: AsyncSession, person: Person, now: datetime) -> DeletionResult:
    """Remove a person's personal data in the current transaction (see the module docstring).

    Only what is theirs: their submissions, of every kind; what each kind keeps beyond them goes
    through its store (`SubjectStore.forget`: a household they head or registered, its members)."""
    result = DeletionResult()
    submissions = await submissions_for_person(session, person.id)
    # What identifies them in other rows, read before it is erased here.
    names = [person.full_name]
    hashes: list[str] = []

    for submission in submissions:
        # The state stays as it is (registered, recognised…): the year's counts must not change.
        result.submissions += 1
        evidence = list(await session.scalars(select(Evidence).where(Evidence.submission_id == submission.id)))
        result.photos += len(evidence)
        result.candidate_files += [e.path for e in evidence]
        hashes += [e.sha256 for e in evidence]
        result.answers += affected(await session.execute(delete(Answer).where(Answer.submission_id == submission.id)))
        forget_read(session, submission.id)  # what this transaction read is gone
        await session.execute(delete(Evidence).where(Evidence.submission_id == submission.id))
        await session.execute(
            update(SubmissionEvent).where(SubmissionEvent.submission_id == submission.id).values(note=None)
        )
        detach(submission)
        submission.subject_key = f"x:{submission.id}"
        submission.anonymised_at = now
        submission.updated_at = now
    await session.flush()

    forgotten = await forget(session, person.id)
    names += forgotten.names
    extra_people = forgotten.people

    for someone in [person, *extra_people]:
        result.people += 1
        someone.full_name = ""
        someone.birth_year = None
        someone.branch_id = None
        someone.consent_at = None
        someone.deleted_at = now
    await session.execute(
        update(RoleGrant).where(RoleGrant.person_id == person.id, RoleGrant.revoked_at.is_(None)).values(revoked_at=now)
    )
    grants_changed(session, person.id)

    accounts = list(await session.scalars(select(ChannelAccount).where(ChannelAccount.person_id == person.id)))
    account_ids = [a.id for a in accounts]
    for account in accounts:
        account.person_id = None
        account.consent_at = None
        if account.channel == "zns" and account.external_id.startswith("phone:"):
            # A phone number given for ZNS reminders is the person's data: it goes. The row stays
            # (its sent messages count in the month's ZNS spend), with nothing left to reach.
            account.external_id = f"phone:removed-{account.id}"
            account.unreachable_at, account.unreachable_reason = now, "deleted"
    if account_ids:
        # Queued messages and stored replies may quote names and answers.
        await session.execute(
            delete(OutboxMessage).where(OutboxMessage.account_id.in_(account_ids), OutboxMessage.status != "sent")
        )
        await session.execute(update(OutboxMessage).where(OutboxMessage.account_id.in_(account_ids)).values(payload={}))
        await session.execute(
            update(ProcessedMessage).where(ProcessedMessage.account_id.in_(account_ids)).values(replies=null())
        )
        await session.execute(
            update(Conversation)
            .where(Conversation.account_id.in_(account_ids))
            .values(state="new", data={})
            .execution_options(synchronize_session=False)
        )
    traces = Traces(names, hashes, [person.id, *(p.id for p in extra_people)])
    result.traces = await remove_traces(session, traces, own_accounts=account_ids)
    await session.flush()
    return result


async def remove_unused_files(session: AsyncSession, store: EvidenceStore, paths: list[str]) -> int:
    """Delete evidence files no submission refers to any more (run after the deletion commits)."""
    removed = 0
    for relative in sorted(set(paths)):
        still_used = await session.scalar(select(Evidence.id).where(Evidence.path == relative).limit(1))
        if still_used is not None:
            continue
        try:
            target = store.open_path(relative)
        except ValueError:
            continue
        if target.is_file():
            target.unlink()
            removed += 1
    return removed


async def remove_files_after_deletion(app: App, result: DeletionResult) -> None:
    """Once a deletion has committed: its photo files (unless still used) and every export."""
    async with app.sessions() as session:
        photos = await remove_unused_files(session, app.evidence, result.candidate_files)
    # The review desk's thumbnails of those photos go with them.

    await asyncio.to_thread(sweep_thumbnails, app.evidence.root)
    # Exports list names; all go (an officer makes a fresh one when needed).
    exports = await asyncio.to_thread(sweep_exports, app.settings.export_dir)
    log.info(
        "personal data deleted: %d submission(s), %d photo file(s), %d export(s); copies elsewhere: "
        "%d stored reply set(s), %d queued and %d settled outbox row(s), %d conversation(s), %d note(s)",
        result.submissions,
        photos,
        exports,
        result.traces.replies,
        result.traces.outbox_deleted,
        result.traces.outbox_cleared,
        result.traces.conversations,
        result.traces.notes,
    )
