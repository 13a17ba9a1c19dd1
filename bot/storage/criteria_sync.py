"""Keep the database's criteria snapshots in line with the loaded criteria files."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaCatalog
from bot.storage.models import CriteriaSetRecord


async def sync_criteria(session: AsyncSession, catalog: CriteriaCatalog, now: datetime) -> None:
    for set_id, criteria_set in catalog.sets.items():
        digest = catalog.digests[set_id]
        record = await session.get(CriteriaSetRecord, set_id)
        if record is None:
            record = CriteriaSetRecord(id=set_id, loaded_at=now)
            session.add(record)
        elif record.digest == digest:
            continue
        record.version = criteria_set.version
        record.title = criteria_set.title
        record.subject = criteria_set.subject
        record.digest = digest
        record.data = criteria_set.model_dump(mode="json")
        record.loaded_at = now
    await session.flush()
