"""Evidence used twice: the same photo (same sha256 of the stored bytes) or a near copy of it
(perceptual hashes a few bits apart: re-sent, re-encoded, cropped a little) on two items of one
application, or on applications of different households or people in the same commune."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.images import hamming
from bot.storage.models import Campaign, Evidence, Submission

# Bits (of 64) two difference hashes may differ by and still be the same picture. Re-encoding
# and resizing change 0–3; a different photo of the same kind of scene differs by 20 or more.
NEAR_BITS = 6
MIN_BITS = 8  # a hash with fewer ones (or zeros) than this comes from a plain picture


@dataclass(frozen=True)
class Reuse:
    item_id: str  # the item of this application the photo is on
    other_item: str
    other_reference: str | None  # None: another item of the same application
    exact: bool  # the very same file; otherwise a near copy


async def reused_photos(session: AsyncSession, submission: Submission) -> list[Reuse]:
    """Each photo of this application that appears again elsewhere, once per other place."""
    own = list(
        await session.scalars(select(Evidence).where(Evidence.submission_id == submission.id).order_by(Evidence.id))
    )
    if not own:
        return []
    commune_id = await session.scalar(select(Campaign.commune_id).where(Campaign.id == submission.campaign_id))
    others = (
        await session.execute(
            select(Evidence.item_id, Evidence.sha256, Evidence.dhash, Submission.reference)
            .join(Submission, Submission.id == Evidence.submission_id)
            .join(Campaign, Campaign.id == Submission.campaign_id)
            .where(
                Campaign.commune_id == commune_id,
                Submission.id != submission.id,
                Submission.subject_key != submission.subject_key,  # the same family's other years are theirs
            )
            .order_by(Submission.id, Evidence.id)
        )
    ).all()
    found: list[Reuse] = []
    seen: set[tuple[str, str, str | None]] = set()

    def add(item: str, other_item: str, reference: str | None, exact: bool) -> None:
        key = (item, other_item, reference)
        if key not in seen:
            seen.add(key)
            found.append(Reuse(item, other_item, reference, exact))

    for index, row in enumerate(own):
        for other in own[index + 1 :]:
            if other.item_id != row.item_id and _same(row.sha256, row.dhash, other.sha256, other.dhash) is not None:
                add(other.item_id, row.item_id, None, other.sha256 == row.sha256)
        for item_id, sha256, perceptual, reference in others:
            exact = _same(row.sha256, row.dhash, sha256, perceptual)
            if exact is not None:
                add(row.item_id, item_id, reference, exact)
    return found


def _telling(perceptual: str | None) -> bool:
    """Whether a hash says anything: a plain or nearly plain picture (a wall, a dark shot) hashes
    to almost all zeros or ones, and would look like every other plain picture."""
    if not perceptual:
        return False
    ones = bin(int(perceptual, 16)).count("1")
    return MIN_BITS <= ones <= 64 - MIN_BITS


def _same(sha_a: str, hash_a: str | None, sha_b: str, hash_b: str | None) -> bool | None:
    """True for the same file, False for a near copy, None for different photos."""
    if sha_a == sha_b:
        return True
    if _telling(hash_a) and _telling(hash_b) and hamming(hash_a, hash_b) <= NEAR_BITS:  # type: ignore[arg-type]
        return False
    return None
