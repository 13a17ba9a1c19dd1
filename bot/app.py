"""The running application's shared parts, built once and handed to channels and jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain.criteria import CriteriaCatalog, load_catalog
from bot.storage.address_forms import AddressForms
from bot.storage.calendar import Calendars
from bot.storage.criteria_sync import sync_criteria
from bot.storage.db import make_engine, make_sessionmaker, migrate
from bot.storage.evidence import EvidenceStore


@dataclass
class App:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalog: CriteriaCatalog
    evidence: EvidenceStore
    extras: dict[str, object] = field(default_factory=dict)
    address_forms: AddressForms = field(default_factory=AddressForms)
    calendars: Calendars = field(default_factory=Calendars)

    async def close(self) -> None:
        await self.engine.dispose()


async def build_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    criteria_dirs: tuple[Path, ...] = (),
    run_migrations: bool = True,
) -> App:
    """Open the database (migrating it to the newest schema) and load criteria data."""
    clock = clock or SystemClock()
    engine = make_engine(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    if run_migrations:
        await migrate(engine)
    if settings.criteria_dir is not None and settings.criteria_dir not in criteria_dirs:
        criteria_dirs = (*criteria_dirs, settings.criteria_dir)
    catalog = load_catalog(criteria_dirs)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:
        await sync_criteria(session, catalog, clock.now())
    evidence = EvidenceStore(Path(settings.evidence_dir), settings.max_photo_bytes)
    return App(settings, clock, engine, sessions, catalog, evidence)
