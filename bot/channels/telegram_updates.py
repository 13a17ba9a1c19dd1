"""Telegram updates → channel-neutral `Incoming` messages.

Every message gets a stable id for the engine's duplicate check. Telegram's `update_id` is not
one: after a week without updates Telegram starts the sequence again at a random number, so an old
id could come back. Instead a message is `m:<chat id>:<message id>` (Telegram never reuses a
message id within a chat) and a button press is `cb:<callback query id>` (unique per press).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Message, Update

from bot.messages import Incoming, Kind, PhotoInput, parse_command

CHANNEL = "telegram"

# Durations in PTB objects become `timedelta` in its next major version; PTB 22 warns on every
# access until one opts in. We opt in (see also telegram_limits.retry_after_seconds).
os.environ.setdefault("PTB_TIMEDELTA", "true")

# Downloads a file by id; the declared size lets it refuse a big file before fetching it.
Downloader = Callable[[str, int | None], Awaitable[bytes]]


def message_key(message: Message) -> str:
    return f"m:{message.chat_id}:{message.message_id}"


def callback_key(query_id: str) -> str:
    return f"cb:{query_id}"


def _fetcher(download: Downloader, file_id: str, size: int | None) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        return await download(file_id, size)

    return fetch


def _document_mime(message: Message) -> str:
    document = message.document
    assert document is not None
    if document.mime_type:
        return document.mime_type.lower()
    guessed = mimetypes.guess_type(document.file_name or "")[0]
    return (guessed or "application/octet-stream").lower()


def to_incoming(update: Update, download: Downloader) -> Incoming | None:
    """The neutral message for an update from a private chat, or None for updates that carry
    nothing a person said (service messages, edits, inline queries)."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None:
        return None
    common: dict[str, Any] = dict(user_id=str(user.id), chat_id=str(chat.id), language_code=user.language_code)

    query = update.callback_query
    if query is not None:
        if query.data is None:  # game buttons and the like
            return None
        return Incoming(CHANNEL, kind=Kind.CHOICE, message_id=callback_key(query.id), choice=query.data, **common)

    message = update.message
    if message is None:
        return None
    common.update(message_id=message_key(message), at=message.date)

    if message.text is not None:
        parsed = parse_command(message.text)
        if parsed is not None:
            name, args = parsed
            return Incoming(CHANNEL, kind=Kind.COMMAND, command=name, args=args, text=message.text, **common)
        return Incoming(CHANNEL, kind=Kind.TEXT, text=message.text, **common)

    if message.photo:
        # Telegram offers several sizes of the same photo; evidence needs the largest.
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        photo = PhotoInput(_fetcher(download, largest.file_id, largest.file_size), largest.file_size, "image/jpeg")
        return Incoming(CHANNEL, kind=Kind.PHOTO, photo=photo, text=message.caption, **common)

    if message.animation is not None or message.video is not None:
        # A GIF also fills `document`: it is a video to us, not an image.
        return Incoming(CHANNEL, kind=Kind.UNSUPPORTED, **common)

    if message.document is not None:
        mime = _document_mime(message)
        if mime.startswith("image/"):
            # "Send as file" keeps the original photo: as good as (or better than) a photo.
            document = message.document
            photo = PhotoInput(_fetcher(download, document.file_id, document.file_size), document.file_size, mime)
            return Incoming(CHANNEL, kind=Kind.PHOTO, photo=photo, text=message.caption, **common)
        return Incoming(CHANNEL, kind=Kind.FILE, **common)

    if message.sticker is not None:
        return Incoming(CHANNEL, kind=Kind.STICKER, **common)

    if message.voice is not None or message.audio is not None or message.video_note is not None:
        return Incoming(CHANNEL, kind=Kind.VOICE, **common)

    if message.effective_attachment is not None:
        # Location, contact, poll, dice, game, story…: answered with a clear "not understood".
        return Incoming(CHANNEL, kind=Kind.UNSUPPORTED, **common)

    return None  # service messages (timer changed, pinned, …) need no answer
