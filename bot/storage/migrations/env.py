"""Alembic environment: runs on a connection handed over by `bot.storage.db.migrate`,
or builds its own engine from `sqlalchemy.url` when called by the alembic CLI."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.storage.db import SCHEDULER_TABLE
from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata
# Tables other libraries own in our database: autogenerate must never propose dropping them.
FOREIGN_TABLES = {SCHEDULER_TABLE}


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "table" and name in FOREIGN_TABLES:
        return False
    if type_ in ("index", "column") and getattr(getattr(obj, "table", None), "name", None) in FOREIGN_TABLES:
        return False
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from bot.config import load_settings
    from bot.storage.db import make_engine

    url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
