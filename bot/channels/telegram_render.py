"""Turning channel-neutral replies into Telegram messages (pure functions, no network).

* Choices become an inline keyboard whose buttons carry `choice_token(prompt_seq, value)` as
  callback data (Telegram allows at most 64 bytes). Short labels share a row two by two; a long
  label gets a row of its own so old phones do not cut it off.
* Texts longer than 4096 characters are split on paragraph, line or word boundaries; a photo or
  document caption holds at most 1024 characters, anything longer follows as separate messages.
  Telegram counts these limits in UTF-16 code units, and so do we.
* The keyboard always goes on the last message of a reply, right under the question.
* A short remark and the question after it go out as one message (see `merge_replies`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.channels.render import numbered_text
from bot.i18n import Translator
from bot.messages import Outgoing, choice_token

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
# Labels up to this many characters may share a keyboard row with one other short label.
SHORT_LABEL = 16
BUTTONS_PER_ROW = 2


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: characters outside the BMP (emoji) count twice."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> int:
    """The largest prefix length (in Python characters) whose UTF-16 length fits `limit`."""
    if utf16_len(text) <= limit:
        return len(text)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split into chunks of at most `limit` UTF-16 units, preferring paragraph, line and word
    boundaries; never returns an empty chunk (an empty text gives an empty list)."""
    chunks: list[str] = []
    rest = text
    while rest:
        if utf16_len(rest) <= limit:
            chunks.append(rest)
            break
        hard = max(1, _cut(rest, limit))
        window = rest[:hard]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            # Only accept a boundary that keeps the chunk reasonably full.
            if position >= hard // 2:
                cut = position
                break
        if cut <= 0:
            head, rest = rest[:hard], rest[hard:]
        else:
            head, rest = rest[:cut], rest[cut:].lstrip("\n ")
        head = head.rstrip()
        if head:
            chunks.append(head)
    return chunks


def callback_data(reply: Outgoing, value: str) -> str:
    return choice_token(reply.prompt_seq, value)


def keyboard_fits(reply: Outgoing) -> bool:
    return all(len(callback_data(reply, c.value).encode("utf-8")) <= MAX_CALLBACK_DATA for c in reply.choices)


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button that sends back `callback_data` when pressed."""

    text: str
    callback_data: str


@dataclass(frozen=True, slots=True)
class Keyboard:
    """An inline keyboard, in the Bot API's shape (`reply_markup`). Our own rather than PTB's
    InlineKeyboardMarkup: building PTB's objects and turning them back into the dict the call
    sends cost about 60 µs per reply, this about 5 (bench/README.md, issue 18, seventh round)."""

    inline_keyboard: tuple[tuple[Button, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inline_keyboard": [
                [{"text": button.text, "callback_data": button.callback_data} for button in row]
                for row in self.inline_keyboard
            ]
        }


def keyboard_for(reply: Outgoing) -> Keyboard | None:
    """Inline buttons for the reply's choices, or None when it has none."""
    if not reply.choices:
        return None
    rows: list[tuple[Button, ...]] = []
    row: list[Button] = []
    for choice in reply.choices:
        data = callback_data(reply, choice.value)
        if len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
            raise ValueError(f"callback data {data!r} is longer than {MAX_CALLBACK_DATA} bytes")
        button = Button(choice.label, data)
        if utf16_len(choice.label) > SHORT_LABEL:
            if row:
                rows.append(tuple(row))
                row = []
            rows.append((button,))
            continue
        row.append(button)
        if len(row) == BUTTONS_PER_ROW:
            rows.append(tuple(row))
            row = []
    if row:
        rows.append(tuple(row))
    return Keyboard(tuple(rows))


def merge_replies(replies: list[Outgoing]) -> list[Outgoing]:
    """Join a plain remark with the reply after it ("Thanks." + the next question) into one
    message: fewer notifications on the person's phone and fewer sends against Telegram's
    one-message-per-second pace. Replies with buttons end a group; attachments stay apart."""
    merged: list[Outgoing] = []
    for reply in replies:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and not previous.choices
            and previous.photo is None
            and previous.document is None
            and reply.photo is None
            and reply.document is None
            and previous.text
            and reply.text
            and utf16_len(previous.text) + 2 + utf16_len(reply.text) <= MAX_TEXT
        ):
            merged[-1] = replace(reply, text=f"{previous.text}\n\n{reply.text}")
        else:
            merged.append(reply)
    return merged


@dataclass
class Planned:
    """One Bot API call: sendMessage, sendPhoto or sendDocument."""

    method: str  # "text" | "photo" | "document"
    text: str | None = None  # message text or caption
    markup: Keyboard | None = None
    path: Path | None = None
    filename: str | None = None


def plan(reply: Outgoing, t: Translator) -> list[Planned]:
    """The Telegram messages that show one reply, in order."""
    text = reply.text or ""
    try:
        markup = keyboard_for(reply)
    except ValueError:
        # A programming error, but the person must still be able to answer: fall back to
        # numbered options, which they can answer by typing the number.
        log.error("choices of prompt %s do not fit Telegram's callback data; sending numbers", reply.prompt_seq)
        markup = None
        text = numbered_text(reply, t)

    messages: list[Planned] = []
    attachment = reply.photo or reply.document
    if attachment is not None:
        method = "photo" if reply.photo is not None else "document"
        filename = reply.document_name if method == "document" else None
        if text and utf16_len(text) <= MAX_CAPTION:
            return [Planned(method, text, markup, attachment, filename)]
        messages.append(Planned(method, None, None if text else markup, attachment, filename))
    chunks = split_text(text)
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        messages.append(Planned("text", chunk, markup if last else None))
    if not messages and markup is not None:
        # Choices with no text at all: Telegram needs some text to hang the keyboard on.
        messages.append(Planned("text", "…", markup))
    return messages
