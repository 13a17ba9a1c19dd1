"""What every channel offers the rest of the bot: sending outside a conversation.

Reminders, digests and reviewer notices are sent through a `ChannelSender`; the errors below
tell the dispatcher what to do next (wait, retry later, or mark the person unreachable).
"""

from __future__ import annotations

from typing import Protocol

from bot.messages import Outgoing
from bot.storage.models import ChannelAccount


class SendError(Exception):
    """Base class: the message was not delivered."""


class RateLimited(SendError):
    """The platform asked us to slow down; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, detail: str = "") -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(f"rate limited, retry after {self.retry_after:.1f}s {detail}".strip())


class TransientSendError(SendError):
    """Network trouble, timeouts, 5xx: worth retrying with backoff."""


class Unreachable(SendError):
    """This person cannot be reached on this channel until they write again (or ever).

    `reason` is a short code stored on the account: blocked, not_found, outside_window, …
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"unreachable ({reason}) {detail}".strip())


class ChannelSender(Protocol):
    channel: str

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        """Deliver replies to the account's chat, raising a `SendError` subclass on failure."""


class SenderRegistry:
    """Senders by channel name, filled in by whichever channels this process runs."""

    def __init__(self) -> None:
        self._senders: dict[str, ChannelSender] = {}

    def register(self, sender: ChannelSender) -> None:
        self._senders[sender.channel] = sender

    def get(self, channel: str) -> ChannelSender | None:
        return self._senders.get(channel)

    def channels(self) -> list[str]:
        return sorted(self._senders)
