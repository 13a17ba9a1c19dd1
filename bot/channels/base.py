"""What every channel offers the rest of the bot: sending outside a conversation.

Reminders, digests and reviewer notices are sent through a `ChannelSender`; the errors below
tell the dispatcher what to do next (wait, retry later, or mark the person unreachable).
"""

from __future__ import annotations

from typing import Protocol

from bot.messages import Outgoing
from bot.storage.models import ChannelAccount


class SendError(Exception):
    """Base class: the message was not delivered.

    `category`, when set, is what an operator can act on — quota, billing, permission,
    unreachable — and is shown in `hoctap outbox --problems` and the officer's digest.
    """

    category: str | None = None

    def __init__(self, *args: object, category: str | None = None) -> None:
        super().__init__(*args)
        if category is not None:
            self.category = category


class RateLimited(SendError):
    """The platform asked us to slow down; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, detail: str = "", *, category: str | None = None) -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(f"rate limited, retry after {self.retry_after:.1f}s {detail}".strip(), category=category)


class TransientSendError(SendError):
    """Network trouble, timeouts, 5xx: worth retrying with backoff."""


class Unreachable(SendError):
    """This person cannot be reached on this channel until they write again (or ever).

    `reason` is a short code stored on the account: blocked, not_found, outside_window, …
    """

    category = "unreachable"

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"unreachable ({reason}) {detail}".strip())


def describe(error: BaseException) -> str:
    """What the outbox stores as `last_error`: "[category] detail" when the error has a category
    (read back by `category_of` for the outbox report and the officer's digest)."""
    text = str(error) or repr(error)
    category = getattr(error, "category", None)
    if category:
        text = f"[{category}] {text}"
    return text[:500]


def category_of(last_error: str | None) -> str | None:
    if last_error and last_error.startswith("[") and "]" in last_error:
        return last_error[1 : last_error.index("]")]
    return None


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
