"""Start whatever this installation is configured for.

No channel token set: the terminal chat. Later parts add Telegram, Zalo and the scheduler here.
"""

from __future__ import annotations

import logging

from bot.app import build_app
from bot.config import Settings

log = logging.getLogger(__name__)


async def run_bot(settings: Settings, role: str = "all", console_user: str = "local") -> None:
    from bot.channels.console import ConsoleChannel
    from bot.flows import ROUTER
    from bot.flows.engine import FlowEngine

    app = await build_app(settings)
    try:
        engine = FlowEngine(app, ROUTER)
        log.info("no channel token configured: starting the terminal chat")
        await ConsoleChannel(engine, user_id=console_user).run()
    finally:
        await app.close()
