"""Transcript testing: a person talks to the flow engine, the test reads what the bot answered.

turn = await hoa.says("2")
assert "Năm sinh" in turn
await hoa.taps("Đạt")
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from bot.flows.engine import FlowEngine
from bot.messages import Incoming, Kind, Outgoing, PhotoInput, choice_token

_ids = count(1)


@dataclass
class Turn:
    replies: list[Outgoing]
    duplicate: bool = False

    @property
    def text(self) -> str:
        return "\n\n".join(r.text for r in self.replies)

    @property
    def choices(self) -> list[str]:
        """Labels of the last question's buttons."""
        for reply in reversed(self.replies):
            if reply.choices:
                return [c.label for c in reply.choices]
        return []

    def __contains__(self, fragment: str) -> bool:
        return fragment in self.text

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Turn({self.text!r}, choices={self.choices!r})"


class Person:
    def __init__(self, engine: FlowEngine, user_id: str, channel: str = "test") -> None:
        self.engine = engine
        self.user_id = user_id
        self.channel = channel
        self.last: Turn | None = None
        self.sent: list[list[Outgoing]] = []

    async def _send(self, replies: list[Outgoing]) -> None:
        self.sent.append(replies)

    async def deliver(self, msg: Incoming) -> Turn:
        outcome = await self.engine.process(msg, self._send)
        self.last = Turn(outcome.replies, outcome.duplicate)
        return self.last

    def _msg(self, kind: Kind, message_id: str | None = None, **fields) -> Incoming:
        return Incoming(
            self.channel, self.user_id, kind, message_id=message_id or f"m{next(_ids)}", chat_id=self.user_id, **fields
        )

    async def says(self, text: str, message_id: str | None = None) -> Turn:
        return await self.deliver(self._msg(Kind.TEXT, message_id, text=text))

    async def taps(self, label: str) -> Turn:
        """Press the button with this label on the last question (as Telegram would send it)."""
        assert self.last is not None, "nothing on screen to tap"
        for reply in reversed(self.last.replies):
            for choice in reply.choices:
                if choice.label == label:
                    token = choice_token(reply.prompt_seq, choice.value)
                    return await self.deliver(self._msg(Kind.CHOICE, choice=token))
        raise AssertionError(f"no button {label!r}; on screen: {self.last.choices}")

    async def presses_token(self, token: str) -> Turn:
        return await self.deliver(self._msg(Kind.CHOICE, choice=token))

    async def sends_photo(self, data: bytes, message_id: str | None = None, declared_size: int | None = None) -> Turn:
        async def fetch() -> bytes:
            return data

        return await self.deliver(
            self._msg(Kind.PHOTO, message_id, photo=PhotoInput(fetch, declared_size or len(data)))
        )

    async def sends(self, kind: Kind) -> Turn:
        return await self.deliver(self._msg(kind))

    async def command(self, name: str, args: str = "") -> Turn:
        return await self.deliver(self._msg(Kind.COMMAND, command=name, args=args))


async def console_session(engine: FlowEngine, user_id: str, typed: list[str]) -> str:
    """Run the terminal chat for `user_id`, typing the lines in `typed` until they run out (then
    end of input); returns everything the terminal showed."""
    import io

    from bot.channels.console import ConsoleChannel

    lines = iter(typed)

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    await ConsoleChannel(engine, user_id=user_id, out=out, read_line=read_line).run()
    return out.getvalue()
