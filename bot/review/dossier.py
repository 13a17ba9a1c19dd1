"""What a reviewer sees of one application beyond its scores: every photo in the order of the
criteria items (a page at a time), notes too long to show inline, and the items whose evidence
deserves a second look (answered "not applicable", or achieved without the photo the criteria file
asks for). The resident's summary uses the same evidence gaps. A household's members come from its
subject store (`bot.storage.subjects`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaSet, Level
from bot.storage.models import Answer, Evidence

PHOTO_PAGE = 10
NOTE_PREVIEW = 300
# Levels that claim the item is met: a photo is expected where the criteria file asks for one.
CLAIMED = (Level.ACHIEVED.value, Level.PARTIAL.value)


@dataclass(frozen=True)
class PhotoPage:
    rows: list[Evidence]
    first: int  # 1-based number of the first photo on this page
    total: int
    next_offset: int | None  # where the next page starts, None on the last page


def item_positions(criteria_set: CriteriaSet) -> dict[str, int]:
    return {item.id: index for index, item in enumerate(criteria_set.items)}


async def evidence_in_item_order(
    session: AsyncSession, submission_id: int, criteria_set: CriteriaSet
) -> list[Evidence]:
    """Every photo of the application, by criteria item (as the file orders them), then upload."""
    rows = list(
        await session.scalars(select(Evidence).where(Evidence.submission_id == submission_id).order_by(Evidence.id))
    )
    positions = item_positions(criteria_set)
    return sorted(rows, key=lambda row: (positions.get(row.item_id, len(positions)), row.id))


def photo_page(rows: list[Evidence], offset: int, size: int = PHOTO_PAGE) -> PhotoPage:
    offset = max(0, min(offset, max(0, len(rows) - 1)))
    page = rows[offset : offset + size]
    following = offset + size
    return PhotoPage(page, offset + 1, len(rows), following if following < len(rows) else None)


def evidence_gaps(criteria_set: CriteriaSet, answers: dict[str, Answer], counts: dict[str, int]) -> list[str]:
    """Items answered as met (fully or partly) without a photo where the criteria file asks for one."""
    return [
        item.id
        for item in criteria_set.items
        if item.asks_for_photo
        and (answer := answers.get(item.id)) is not None
        and answer.level in CLAIMED
        and not counts.get(item.id)
    ]


def not_applicable(criteria_set: CriteriaSet, answers: dict[str, Answer]) -> list[str]:
    return [
        item.id
        for item in criteria_set.items
        if (answer := answers.get(item.id)) is not None and answer.level == Level.NOT_APPLICABLE.value
    ]


def long_notes(
    criteria_set: CriteriaSet, answers: dict[str, Answer], limit: int = NOTE_PREVIEW
) -> list[tuple[str, str]]:
    """(item, note) for notes cut short in the view, in item order."""
    return [
        (item.id, answer.note)
        for item in criteria_set.items
        if (answer := answers.get(item.id)) is not None and answer.note and len(answer.note) > limit
    ]
