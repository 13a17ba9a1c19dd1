"""A separate process that refreshes the OA token, so a test can kill -9 it mid-refresh.

python -m tests.support.zalo_refresh_child DB_URL OAUTH_BASE APP_ID APP_SECRET NOW_ISO TOKEN_KEY
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import httpx

from bot.clock import FakeClock
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.secretbox import SecretBox
from bot.zalo.tokens import OATokenManager


async def main(db_url: str, oauth_base: str, app_id: str, app_secret: str, now: str, token_key: str) -> None:
    engine = make_engine(db_url)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            manager = OATokenManager(
                make_sessionmaker(engine),
                FakeClock(datetime.fromisoformat(now)),
                http,
                box=SecretBox(token_key),
                app_id=app_id,
                app_secret=app_secret,
                oauth_base=oauth_base,
            )
            print(await manager.access_token(), flush=True)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
