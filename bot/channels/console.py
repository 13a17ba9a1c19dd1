"""The terminal chat: the same conversations as on Zalo, typed at a prompt.

Choices appear as numbered lines (like the Zalo Bot Platform); `/anh <file>` sends a photo.
"""

from __future__ import annotations

import asyncio
import sys
from itertools import count
from pathlib import Path
from typing import Callable, TextIO

from bot.channels.render import numbered_text
from bot.flows.engine import FlowEngine
from bot.messages import Incoming, Kind, Outgoing, PhotoInput
from bot.i18n import get_translator

CHANNEL = "console"
PHOTO_COMMANDS = ("/anh", "/photo")


class ConsoleChannel:
    def __init__(
        self,
        engine: FlowEngine,
        user_id: str = "local",
        out: TextIO | None = None,
        read_line: Callable[[str], str] = input,
    ) -> None:
        self.engine = engine
        self.user_id = user_id
        self.out = out or sys.stdout
        self.read_line = read_line
        self._ids = count(1)

    def to_incoming(self, line: str) -> Incoming:
        stripped = line.strip()
        head, _, rest = stripped.partition(" ")
        if head.lower() in PHOTO_COMMANDS and rest:
            path = Path(rest.strip().strip('"')).expanduser()

            async def fetch() -> bytes:
                return await asyncio.to_thread(path.read_bytes)

            size = path.stat().st_size if path.is_file() else None
            return Incoming(CHANNEL, self.user_id, Kind.PHOTO, photo=PhotoInput(fetch, size), chat_id=self.user_id)
        return Incoming(CHANNEL, self.user_id, Kind.TEXT, text=line, chat_id=self.user_id)

    async def show(self, replies: list[Outgoing]) -> None:
        locale = await self._locale()
        t = get_translator(locale)
        for reply in replies:
            print(numbered_text(reply, t), file=self.out)
            # A terminal cannot show pictures or files: say where they are.
            for attachment in (reply.photo, reply.document):
                if attachment is not None:
                    print(f"[{attachment}]", file=self.out)
            print(file=self.out)
        self.out.flush()

    async def _locale(self) -> str | None:
        from bot.storage.people import get_account

        async with self.engine.app.sessions() as session:
            account = await get_account(session, CHANNEL, self.user_id)
            return account.locale if account else None

    async def send_line(self, line: str) -> list[Outgoing]:
        outcome = await self.engine.process(self.to_incoming(line), self.show)
        return outcome.replies

    async def run(self) -> None:
        t = get_translator(await self._locale())
        print(t("console.intro"), file=self.out)
        while True:
            try:
                line = await asyncio.to_thread(self.read_line, "> ")
            except (EOFError, KeyboardInterrupt):
                print(file=self.out)
                return
            if line.strip():
                await self.send_line(line)
