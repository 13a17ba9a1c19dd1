"""The terminal chat: the same conversations as on Zalo, typed at a prompt.

Choices appear as numbered lines (like the Zalo Bot Platform); `/anh <file>` sends a photo
(without a file it says how; a file that is not there is said so, nothing is sent). Notices and
reminders queued for the terminal user are printed here too: the channel registers a sender
with the outbox dispatcher, so a newcomer sees the whole loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import TextIO

from bot.channels.base import Unreachable
from bot.channels.render import numbered_text
from bot.flows.engine import FlowEngine
from bot.i18n import N_, Translator, get_translator
from bot.messages import Incoming, Kind, Outgoing, PhotoInput
from bot.storage.models import ChannelAccount

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

    def photo_problem(self, line: str) -> str | None:
        """The catalog key of what is wrong with a `/anh` line (no file named, or none there)."""
        head, _, rest = line.strip().partition(" ")
        if head.lower() not in PHOTO_COMMANDS:
            return None
        if not rest.strip():
            return N_("console.photo_usage")
        if not Path(rest.strip().strip('"')).expanduser().is_file():
            return N_("console.file_not_found")
        return None

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
        t = await self._translator()
        for reply in replies:
            print(numbered_text(reply, t), file=self.out)
            # A terminal cannot show pictures or files: say where they are.
            for attachment in (reply.photo, reply.document):
                if attachment is not None:
                    print(f"[{attachment}]", file=self.out)
            print(file=self.out)
        self.out.flush()

    async def _translator(self) -> Translator:
        """The terminal user's language and form of address."""
        app = self.engine.app
        async with app.sessions() as session:
            return get_translator(*await app.address_forms.of_account(session, CHANNEL, self.user_id))

    async def send_line(self, line: str) -> list[Outgoing]:
        problem = self.photo_problem(line)
        if problem is not None:
            t = await self._translator()
            path = line.strip().partition(" ")[2].strip().strip('"')
            print(t(problem, path=path) + "\n", file=self.out)
            self.out.flush()
            return []
        outcome = await self.engine.process(self.to_incoming(line), self.show)
        return outcome.replies

    def sender(self) -> ConsoleSender:
        """What the outbox dispatcher sends notices and reminders through."""
        return ConsoleSender(self)

    async def run(self) -> None:
        t = await self._translator()
        print(t("console.intro"), file=self.out)
        while True:
            try:
                line = await asyncio.to_thread(self.read_line, "> ")
            except (EOFError, KeyboardInterrupt):
                print(file=self.out)
                return
            if line.strip():
                await self.send_line(line)


class ConsoleSender:
    """Delivers queued messages (notices, reminders, digests) for the terminal user by printing them."""

    channel = CHANNEL

    def __init__(self, console: ConsoleChannel) -> None:
        self.console = console

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        if account.external_id != self.console.user_id:
            # Another terminal user id: nobody is at this terminal to read it.
            raise Unreachable("not_at_terminal")
        t = get_translator(account.locale)
        print("\n" + t("console.notice"), file=self.console.out)
        await self.console.show(replies)
