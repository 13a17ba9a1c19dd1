"""What the review desk shows about applications beyond the chat's lists: ages, lateness and
evidence flags for many applications at once (the queue), and one application in full.

Scope is never decided here: callers pass the ids the review services already allowed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import VN_TZ
from bot.domain.criteria import CriteriaCatalog, CriteriaSet, Level
from bot.review.details import SubmissionDetail
from bot.storage.models import Answer, CampaignDeadline, CriteriaSetRecord, Evidence, Submission

CHUNK = 500
FLAG_REUSED = "reused"
FLAG_MISSING = "missing"
FLAG_NOT_APPLICABLE = "not_applicable"
# The flags the queue's "flagged evidence" filter looks for.
EVIDENCE_FLAGS = (FLAG_REUSED, FLAG_MISSING)


@dataclass
class RowFacts:
    submitted_at: datetime | None
    late: bool
    flags: set[str] = field(default_factory=set)


async def criteria_set_for(session: AsyncSession, catalog: CriteriaCatalog, set_id: str) -> CriteriaSet:
    """The set a submission was registered under; the database snapshot if the file is gone."""
    found = catalog.sets.get(set_id)
    if found is not None:
        return found
    record = await session.get(CriteriaSetRecord, set_id)
    if record is None:
        raise LookupError(f"criteria set {set_id} is unknown")
    return CriteriaSet.model_validate(record.data)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def reused_hashes(session: AsyncSession, ids: list[int]) -> set[str]:
    """Photo hashes of these submissions that also appear in another submission."""
    found: set[str] = set()
    for chunk in _chunks(ids):
        own = select(Evidence.sha256).where(Evidence.submission_id.in_(chunk))
        rows = await session.execute(
            select(Evidence.sha256)
            .where(Evidence.sha256.in_(own))
            .group_by(Evidence.sha256)
            .having(func.count(func.distinct(Evidence.submission_id)) > 1)
        )
        found |= {sha for (sha,) in rows}
    return found


async def row_facts(session: AsyncSession, catalog: CriteriaCatalog, ids: list[int]) -> dict[int, RowFacts]:
    """For each submission: when it was submitted, whether after its self-declaration deadline,
    and its evidence flags (a photo used in another application, a required photo missing, an
    item answered "not applicable")."""
    facts: dict[int, RowFacts] = {}
    sets: dict[int, str] = {}
    campaigns: dict[int, int] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(Submission.id, Submission.submitted_at, Submission.campaign_id, Submission.criteria_set_id).where(
                Submission.id.in_(chunk)
            )
        )
        for sub_id, submitted_at, campaign_id, set_id in rows:
            facts[sub_id] = RowFacts(submitted_at, False)
            sets[sub_id], campaigns[sub_id] = set_id, campaign_id
    deadlines: dict[int, date] = dict(
        (
            await session.execute(
                select(CampaignDeadline.campaign_id, CampaignDeadline.due_on).where(
                    CampaignDeadline.kind == "self_declaration",
                    CampaignDeadline.campaign_id.in_(set(campaigns.values()) or {-1}),
                )
            )
        ).all()
    )
    photo_required: dict[str, set[str]] = {}
    for set_id in set(sets.values()):
        try:
            criteria = await criteria_set_for(session, catalog, set_id)
        except LookupError:
            photo_required[set_id] = set()
            continue
        photo_required[set_id] = {item.id for item in criteria.items if item.photo_required}
    reused = await reused_hashes(session, ids)
    with_photo: set[tuple[int, str]] = set()
    for chunk in _chunks(ids):
        for sub_id, item_id, sha in await session.execute(
            select(Evidence.submission_id, Evidence.item_id, Evidence.sha256).where(Evidence.submission_id.in_(chunk))
        ):
            with_photo.add((sub_id, item_id))
            if sha in reused:
                facts[sub_id].flags.add(FLAG_REUSED)
    claimed = (Level.ACHIEVED.value, Level.PARTIAL.value)
    required_anywhere = set().union(*photo_required.values()) if photo_required else set()
    # Only the answers that can raise a flag: "not applicable", or a claim on a photo item.
    telling = or_(
        Answer.level == Level.NOT_APPLICABLE.value,
        and_(Answer.item_id.in_(required_anywhere or {""}), Answer.level.in_(claimed)),
    )
    for chunk in _chunks(ids):
        for sub_id, item_id, level in await session.execute(
            select(Answer.submission_id, Answer.item_id, Answer.level).where(Answer.submission_id.in_(chunk), telling)
        ):
            if level == Level.NOT_APPLICABLE.value:
                facts[sub_id].flags.add(FLAG_NOT_APPLICABLE)
            elif (
                level in claimed
                and item_id in photo_required.get(sets[sub_id], ())
                and (sub_id, item_id) not in with_photo
            ):
                facts[sub_id].flags.add(FLAG_MISSING)
    for sub_id, fact in facts.items():
        due = deadlines.get(campaigns[sub_id])
        if due is not None and fact.submitted_at is not None:
            fact.late = fact.submitted_at.astimezone(_tz()).date() > due
    return facts


def _tz():

    return VN_TZ


@dataclass
class ItemView:
    id: str
    text: str
    level: str | None
    points: int
    max_points: int
    note: str | None
    photos: list[Evidence]
    flags: list[str]


async def item_views(
    session: AsyncSession, submission: Submission, detail: SubmissionDetail, criteria: CriteriaSet, locale: str
) -> list[ItemView]:
    """Every item of the set with the answer, note, photos and the item's flags, from what
    `submission_detail` read; only the photos used elsewhere are looked up here."""
    evidence = detail.evidence
    photos_gone = detail.retention_at is not None
    reused = await reused_hashes(session, [submission.id]) if evidence else set()
    views = []
    for item in criteria.items:
        answer = detail.answers.get(item.id)
        photos = [e for e in evidence if e.item_id == item.id]
        flags = []
        if any(p.sha256 in reused for p in photos):
            flags.append(FLAG_REUSED)
        if (
            item.photo_required
            and answer is not None
            and not photos
            and not photos_gone
            and answer.level in (Level.ACHIEVED.value, Level.PARTIAL.value)
        ):
            flags.append(FLAG_MISSING)
        if answer is not None and answer.level == Level.NOT_APPLICABLE.value:
            flags.append(FLAG_NOT_APPLICABLE)
        views.append(
            ItemView(
                item.id,
                item.text.get(locale),
                answer.level if answer else None,
                answer.points if answer else 0,
                item.max_points,
                answer.note if answer else None,
                photos,
                flags,
            )
        )
    return views
