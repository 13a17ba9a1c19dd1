"""Channel-neutral message types: what a person sends and what the bot answers.

Channels translate platform updates into `Incoming` and render `Outgoing` (inline buttons on
Telegram, numbered options on Zalo and in the terminal). Flows only ever see these types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Kind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"  # a button press: `choice` holds the token the channel got back
    PHOTO = "photo"
    COMMAND = "command"
    FILE = "file"  # a document that is not an image
    STICKER = "sticker"
    VOICE = "voice"
    UNSUPPORTED = "unsupported"
    FOLLOW = "follow"  # Zalo OA follow / Telegram first contact


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass
class PhotoInput:
    """A photo the channel can fetch; downloaded before any database work starts."""

    fetch: Callable[[], Awaitable[bytes]]
    declared_size: int | None = None
    mime: str | None = None


@dataclass
class Incoming:
    channel: str
    user_id: str
    kind: Kind
    message_id: str | None = None
    chat_id: str | None = None
    text: str | None = None
    choice: str | None = None
    command: str | None = None
    args: str = ""
    photo: PhotoInput | None = None
    language_code: str | None = None
    at: datetime | None = None


@dataclass
class Outgoing:
    text: str
    choices: list[Choice] = field(default_factory=list)
    # Token prefix for buttons, so a press on an old message can be told apart.
    prompt_seq: int | None = None
    photo: Path | None = None  # evidence shown to reviewers
    document: Path | None = None  # exports
    document_name: str | None = None
    footer: str | None = None  # e.g. "Trả lời 1, 2 hoặc 3" for channels without buttons
    # What the database keeps of this reply until it is delivered, when `text` holds a secret
    # (an invite code): a resend after a crash says this instead.
    stored_text: str | None = None

    def to_stored_json(self) -> dict[str, Any]:
        """The reply as stored for a resend: `stored_text` in place of a secret text."""
        raw = self.to_json()
        if self.stored_text is not None:
            raw["text"] = self.stored_text
        return raw

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "choices": [[c.value, c.label] for c in self.choices],
            "prompt_seq": self.prompt_seq,
            "photo": str(self.photo) if self.photo else None,
            "document": str(self.document) if self.document else None,
            "document_name": self.document_name,
            "footer": self.footer,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Outgoing:
        return cls(
            text=raw["text"],
            choices=[Choice(value, label) for value, label in raw.get("choices") or []],
            prompt_seq=raw.get("prompt_seq"),
            photo=Path(raw["photo"]) if raw.get("photo") else None,
            document=Path(raw["document"]) if raw.get("document") else None,
            document_name=raw.get("document_name"),
            footer=raw.get("footer"),
        )


COMMAND_PREFIX = "cmd:"
# Every command a button is declared to run (see `command_action`); the router, when it is built,
# checks that each names a command it has.
DECLARED_COMMAND_ACTIONS: set[str] = set()


def command_action(name: str) -> str:
    """The value of a button that runs the command /`name` whatever question is open (menu entries,
    buttons on reminders and notices). Declare these at module level, so that a misspelt command
    fails when the router is built rather than when someone presses the button."""
    DECLARED_COMMAND_ACTIONS.add(name)
    return COMMAND_PREFIX + name


def choice_token(prompt_seq: int | None, value: str) -> str:
    """What a button carries back: `<seq>:<value>` (kept short for Telegram's 64 bytes)."""
    return f"{prompt_seq}:{value}" if prompt_seq is not None else value


def parse_choice_token(token: str) -> tuple[int | None, str]:
    head, sep, tail = token.partition(":")
    if sep and head.isdigit():
        return int(head), tail
    return None, token


def parse_command(text: str) -> tuple[str, str] | None:
    """'/Start@hoctap_bot abc' → ('start', 'abc'); None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, args = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        return None
    return name, args.strip()
