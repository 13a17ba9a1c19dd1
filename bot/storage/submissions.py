"""Submissions: creation, answers, evidence, scoring and lifecycle moves with their audit events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from bot.domain import lifecycle
from bot.domain.criteria import CriteriaSet, Level, Score, points_for, score
from bot.domain.lifecycle import Actor, State
from bot.storage.core import transaction_memo
from bot.storage.evidence import StoredBlob
from bot.storage.models import Answer, Evidence, Submission, SubmissionEvent


class DuplicateRegistration(Exception):
    def __init__(self, existing: Submission) -> None:
        self.existing = existing
        super().__init__(f"already registered as {existing.reference}")


class NotEditable(Exception):
    """Answers can only change while the submission is with the person (EDITABLE states)."""


def reference_for(title: str, year: int, submission_id: int) -> str:
    return f"{title.upper()}-{year}-{submission_id:06d}"


def subject_key(person_id: int | None, household_id: int | None) -> str:
    if household_id is not None:
        return f"h:{household_id}"
    if person_id is None:
        raise ValueError("a submission needs a person or a household")
    return f"p:{person_id}"


async def find_existing(session: AsyncSession, campaign_id: int, title: str, key: str) -> Submission | None:
    return await session.scalar(
        select(Submission).where(
            Submission.campaign_id == campaign_id,
            Submission.title == title,
            Submission.subject_key == key,
        )
    )


async def create_submission(
    session: AsyncSession,
    *,
    campaign_id: int,
    year: int,
    criteria_set: CriteriaSet,
    branch_id: int,
    person_id: int | None,
    household_id: int | None,
    actor_person_id: int | None,
    now: datetime,
) -> Submission:
    """Register a subject for a title in a campaign; refuses a second one for the same year."""
    key = subject_key(person_id, household_id)
    existing = await find_existing(session, campaign_id, criteria_set.title, key)
    if existing is not None:
        raise DuplicateRegistration(existing)
    submission = Submission(
        campaign_id=campaign_id,
        title=criteria_set.title,
        subject_kind=criteria_set.subject,
        subject_key=key,
        person_id=person_id,
        household_id=household_id,
        branch_id=branch_id,
        criteria_set_id=criteria_set.id,
        state=State.REGISTERED.value,
        score=0,
        recognisable=False,
        created_by_person_id=actor_person_id,
        created_at=now,
        updated_at=now,
    )
    session.add(submission)
    await session.flush()
    submission.reference = reference_for(criteria_set.title, year, submission.id)
    session.add(
        SubmissionEvent(
            submission_id=submission.id,
            from_state=None,
            to_state=State.REGISTERED.value,
            actor_kind=Actor.OWNER.value,
            actor_person_id=actor_person_id,
            note=None,
            at=now,
        )
    )
    await session.flush()
    return submission


async def transition(
    session: AsyncSession,
    submission: Submission,
    target: State | str,
    *,
    actor: Actor | str,
    actor_person_id: int | None,
    note: str | None,
    now: datetime,
) -> SubmissionEvent:
    """Move a submission along the declared table and append the audit event.

    Raises `lifecycle.IllegalTransition` before changing anything. The submission's version
    column makes a concurrent decision on the same row fail instead of silently winning.
    """
    checked = lifecycle.check(submission.state, target, actor, note)
    event = SubmissionEvent(
        submission_id=submission.id,
        from_state=checked.source.value,
        to_state=checked.target.value,
        actor_kind=Actor(actor).value,
        actor_person_id=actor_person_id,
        note=note.strip() if note else None,
        at=now,
    )
    submission.state = checked.target.value
    submission.updated_at = now
    if checked.target == State.SUBMITTED:
        submission.submitted_at = now
    if checked.target in (State.APPROVED, State.REJECTED):
        submission.decided_at = now
    session.add(event)
    await session.flush()
    return event


# What one transaction has already read (`transaction_memo`, forgotten when it ends): a
# conversation step's handler and the prompt after it ask the same questions.
ANSWERS = "answers"  # submission id → {item id: Answer}, kept up to date by save_answer
LEVELS = "levels"  # submission id → {item id: level}, kept up to date by save_answer
PHOTOS = "photos"  # submission id → {item id: photo count}, kept up to date here


def forget_read(session: AsyncSession, submission_id: int) -> None:
    """Drop what this transaction read of a submission's answers and photos (they were deleted)."""
    transaction_memo(session, ANSWERS).pop(submission_id, None)
    transaction_memo(session, LEVELS).pop(submission_id, None)
    transaction_memo(session, PHOTOS).pop(submission_id, None)


# Between the entries of the lists read in one column, and between an item id and its level
# (ids and levels never hold control characters).
_SEP = "\x1f"
_PAIR = "\x1e"


class _joined(FunctionElement[str]):
    """The strings of a group joined by `_SEP`, as `func.aggregate_strings(..., _SEP)` joins
    them, with the separator written into the SQL: SQLAlchemy sends aggregate_strings' separator
    as a value it renders into the statement's text on every execution, a regular-expression pass
    over the whole load query on every message (about 15 µs)."""

    type = String()
    name = "joined"
    inherit_cache = True


@compiles(_joined, "sqlite")
def _joined_sqlite(element: _joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, char({ord(_SEP)}))"


@compiles(_joined, "postgresql")
def _joined_postgresql(element: _joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, chr({ord(_SEP)}))"


@compiles(_joined)
def _joined_elsewhere(element: _joined, compiler: SQLCompiler, **kw: Any) -> str:
    (strings,) = element.clauses
    return compiler.process(func.aggregate_strings(strings, _SEP), **kw)


def levels_and_photos(submission_id: Any) -> tuple[Any, Any]:
    """Two scalar subqueries for a query that reads a submission (`submission_id`: its id column):
    its answers' levels and its photos' items, each as one string. The engine's load query reads
    them for the submission a conversation is on, so a typical declaration step needs no query of
    its own for them (`remember_read`)."""
    levels = (
        select(_joined(Answer.item_id + _PAIR + Answer.level))
        .where(Answer.submission_id == submission_id)
        .scalar_subquery()
    )
    return levels, _photo_items(submission_id)


def _photo_items(submission_id: Any) -> Any:
    """A scalar subquery: the item of each of a submission's photos, in one string."""
    return select(_joined(Evidence.item_id)).where(Evidence.submission_id == submission_id).scalar_subquery()


def _photo_counts(items: str | None) -> dict[str, int]:
    """Photos per item from the aggregated list of their items."""
    return dict(Counter(items.split(_SEP))) if items else {}


def remember_read(session: AsyncSession, submission_id: int, levels: str | None, photos: str | None) -> None:
    """Keep for the transaction what `levels_and_photos` read."""
    transaction_memo(session, LEVELS)[submission_id] = (
        dict(pair.split(_PAIR, 1) for pair in levels.split(_SEP)) if levels else {}
    )
    transaction_memo(session, PHOTOS)[submission_id] = _photo_counts(photos)


# Built once with a parameter: every level step reads the answers.
_ANSWERS_WITH_PHOTOS = (
    select(Answer, _photo_items(bindparam("submission_id")))
    .select_from(Submission)
    .outerjoin(Answer, Answer.submission_id == Submission.id)
    .where(Submission.id == bindparam("submission_id"))
)


async def answers_of(session: AsyncSession, submission_id: int) -> dict[str, Answer]:
    """The answers, read now; the photo counts come with them in the same statement (a step that
    answers an item then says how many photos it has), and both are kept for the transaction."""
    rows = (await session.execute(_ANSWERS_WITH_PHOTOS, {"submission_id": submission_id})).all()
    answers = {answer.item_id: answer for answer, _items in rows if answer is not None}
    items = rows[0][1] if rows else None  # the same photo list on every row
    transaction_memo(session, ANSWERS)[submission_id] = answers
    transaction_memo(session, LEVELS)[submission_id] = {item_id: answer.level for item_id, answer in answers.items()}
    transaction_memo(session, PHOTOS)[submission_id] = _photo_counts(items)
    return answers


async def known_answers(session: AsyncSession, submission_id: int) -> dict[str, Answer]:
    """The answers as this transaction last read or saved them (`save_answer` keeps them up to
    date); read from the database only the first time. Do not change the dict."""
    known = transaction_memo(session, ANSWERS).get(submission_id)
    return known if known is not None else await answers_of(session, submission_id)


async def known_levels(session: AsyncSession, submission_id: int) -> dict[str, str]:
    """Each answered item's level, as this transaction last read or saved them (the engine's load
    query reads them for the submission a conversation is on: `remember_read`); read from the
    database only the first time. Do not change the dict."""
    known = transaction_memo(session, LEVELS).get(submission_id)
    if known is None:
        await answers_of(session, submission_id)
        known = transaction_memo(session, LEVELS)[submission_id]
    return known


async def rescore(
    session: AsyncSession,
    submission: Submission,
    criteria_set: CriteriaSet,
    answers: dict[str, Answer] | None = None,
) -> Score:
    """Recompute the score from stored answers (or `answers`, read in this transaction); the
    resident never types a score."""
    if answers is None:
        answers = await answers_of(session, submission.id)
    return _set_score(submission, criteria_set, {item_id: a.level for item_id, a in answers.items()})


def _set_score(submission: Submission, criteria_set: CriteriaSet, levels: dict[str, str]) -> Score:
    result = score(criteria_set, levels)
    submission.score = result.total
    submission.recognisable = result.recognisable
    return result


def _ensure_editable(submission: Submission) -> None:
    if State(submission.state) not in lifecycle.EDITABLE:
        raise NotEditable(f"{submission.reference} is {submission.state}")


async def save_answer(
    session: AsyncSession,
    submission: Submission,
    criteria_set: CriteriaSet,
    item_id: str,
    level: Level | str,
    *,
    actor_person_id: int | None,
    now: datetime,
) -> Score:
    """Store (or replace) one answer, move registered → declaring, and rescore."""
    _ensure_editable(submission)
    item = criteria_set.item(item_id)
    points = points_for(item, level)
    answer = None
    if item_id in await known_levels(session, submission.id):
        # Answered before: its row is read now, to be changed (a first answer needs no read).
        answer = (await answers_of(session, submission.id)).get(item_id)
    if answer is None:
        answer = Answer(
            submission_id=submission.id,
            item_id=item_id,
            level=Level(level).value,
            points=points,
            answered_by_person_id=actor_person_id,
            answered_at=now,
        )
        session.add(answer)
        answers = transaction_memo(session, ANSWERS).get(submission.id)
        if answers is not None:  # the dict `known_answers` gives for the rest of the transaction
            answers[item_id] = answer
    else:
        answer.level = Level(level).value
        answer.points = points
        answer.answered_by_person_id = actor_person_id
        answer.answered_at = now
    if submission.state == State.REGISTERED.value:
        await transition(
            session,
            submission,
            State.DECLARING,
            actor=Actor.OWNER,
            actor_person_id=actor_person_id,
            note=None,
            now=now,
        )
    levels = await known_levels(session, submission.id)
    levels[item_id] = answer.level  # the dict `known_levels` gives for the rest of the transaction
    # No flush here: the answer and the submission's new score are written together at the end
    # of the step, by the engine (deliveries.foldable_answer) or by its flush, or by autoflush
    # before any later query.
    result = _set_score(submission, criteria_set, levels)
    submission.updated_at = now
    return result


@dataclass(frozen=True)
class AttachResult:
    evidence: Evidence
    created: bool  # False when the same photo was already attached to this item


async def attach_evidence(
    session: AsyncSession,
    submission: Submission,
    item_id: str,
    blob: StoredBlob,
    *,
    channel: str | None,
    message_id: str | None,
    actor_person_id: int | None,
    now: datetime,
) -> AttachResult:
    _ensure_editable(submission)
    existing = await session.scalar(
        select(Evidence).where(
            Evidence.submission_id == submission.id,
            Evidence.item_id == item_id,
            Evidence.sha256 == blob.sha256,
        )
    )
    if existing is not None:
        return AttachResult(existing, created=False)
    evidence = Evidence(
        submission_id=submission.id,
        item_id=item_id,
        sha256=blob.sha256,
        dhash=blob.dhash,
        path=blob.path,
        size=blob.size,
        mime=blob.mime,
        width=blob.width,
        height=blob.height,
        source_channel=channel,
        source_message_id=message_id,
        uploaded_by_person_id=actor_person_id,
        created_at=now,
    )
    session.add(evidence)
    submission.updated_at = now
    await session.flush()
    _photos_changed(session, submission.id, item_id, +1)
    return AttachResult(evidence, created=True)


async def evidence_counts(session: AsyncSession, submission_id: int) -> dict[str, int]:
    """Photos per item, as this transaction last read them with the answers (`attach_evidence` and
    `remove_evidence` keep them up to date). Do not change the dict."""
    known = transaction_memo(session, PHOTOS).get(submission_id)
    if known is None:
        await answers_of(session, submission_id)
        known = transaction_memo(session, PHOTOS)[submission_id]
    return known


def _photos_changed(session: AsyncSession, submission_id: int, item_id: str, change: int) -> None:
    counts = transaction_memo(session, PHOTOS).get(submission_id)
    if counts is not None:
        left = counts.get(item_id, 0) + change
        if left > 0:
            counts[item_id] = left
        else:
            counts.pop(item_id, None)


async def remove_evidence(session: AsyncSession, submission: Submission, item_id: str) -> int:
    _ensure_editable(submission)
    rows = list(
        await session.scalars(
            select(Evidence).where(Evidence.submission_id == submission.id, Evidence.item_id == item_id)
        )
    )
    for row in rows:
        await session.delete(row)
    _photos_changed(session, submission.id, item_id, -len(rows))
    return len(rows)


async def item_photos(session: AsyncSession, submission_id: int, item_id: str) -> list[Evidence]:
    """An item's photos in the order they came (the order people see them numbered)."""
    return list(
        await session.scalars(
            select(Evidence)
            .where(Evidence.submission_id == submission_id, Evidence.item_id == item_id)
            .order_by(Evidence.id)
        )
    )


async def remove_photo(session: AsyncSession, submission: Submission, photo: Evidence) -> None:
    """Remove one photo of an item (the file goes once no row uses it, see evidence cleanup)."""
    _ensure_editable(submission)
    await session.delete(photo)
    await session.flush()
    _photos_changed(session, submission.id, photo.item_id, -1)


def missing_photos(criteria_set: CriteriaSet, answers: dict[str, Answer], counts: dict[str, int]) -> list[str]:
    """Items whose data requires a photo, answered as achieved/partly, with none attached."""
    missing = []
    for item in criteria_set.items:
        answer = answers.get(item.id)
        if (
            item.photo_required
            and answer is not None
            and answer.level in (Level.ACHIEVED.value, Level.PARTIAL.value)
            and not counts.get(item.id)
        ):
            missing.append(item.id)
    return missing


async def last_request_note(session: AsyncSession, submission_id: int) -> SubmissionEvent | None:
    """The latest reviewer request for more information, shown to the person."""
    return await session.scalar(
        select(SubmissionEvent)
        .where(
            SubmissionEvent.submission_id == submission_id,
            SubmissionEvent.to_state == State.NEEDS_INFO.value,
        )
        .order_by(SubmissionEvent.id.desc())
        .limit(1)
    )
