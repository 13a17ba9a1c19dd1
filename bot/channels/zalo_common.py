"""What both Zalo channels share: photo download at once (from the platform's hosts only, see
bot.channels.media_fetch), rendering replies as numbered text, file links, per-chat pacing and
the per-person background queue behind the webhooks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import httpx

from bot.app import App
from bot.channels.base import ChannelSender, SendError
from bot.channels.media_fetch import HostPolicy, download_image
from bot.channels.render import numbered_text
from bot.i18n import Translator
from bot.messages import Outgoing, PhotoInput
from bot.storage.people import get_account
from bot.web.app import folder_root, signed_url
from bot.zalo.transport import TEXT_LIMIT, RetryPolicy, split_text

log = logging.getLogger(__name__)

DOCUMENT_LINK_TTL = timedelta(hours=24)
PHOTO_LINK_TTL = timedelta(hours=24)


def retry_policy(app: App) -> RetryPolicy:
    settings = app.settings
    return RetryPolicy(attempts=settings.zalo_http_attempts, backoff=settings.zalo_http_backoff)


class LoopService:
    """A start-up service whose work is one background loop (`_loop`): `start_loop` runs it,
    `stop` cancels it and waits for it to end."""

    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        raise NotImplementedError

    def start_loop(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


# --- incoming photos ---------------------------------------------------------------------


def photo_input(app: App, http: httpx.AsyncClient, url: str) -> PhotoInput:
    """A PhotoInput the engine downloads before anything else (platform links expire)."""
    settings = app.settings
    policy = HostPolicy(settings.media_hosts)

    async def fetch() -> bytes:
        return await download_image(
            http, url, settings.max_photo_bytes, retry_policy(app), settings.zalo_http_timeout, policy
        )

    return PhotoInput(fetch)


# --- outgoing ----------------------------------------------------------------------------


@dataclass
class Piece:
    """One message to send: text, optionally with a photo (a stored evidence or export file)."""

    text: str
    photo: Path | None = None
    # Labels of the numbered choices that end this message (1, 2, … in order), for channels that
    # can also show them as quick-reply buttons (the OA).
    choices: list[str] = field(default_factory=list)


def file_ref(app: App, path: Path, default_folder: str) -> tuple[str, str]:
    """(folder, path relative to it) for a file the web app may serve by signed link."""
    if not path.is_absolute():
        return default_folder, path.as_posix()
    resolved = path.resolve()
    for folder in ("evidence", "exports"):
        root = folder_root(app, folder).resolve()
        if root in resolved.parents:
            return folder, resolved.relative_to(root).as_posix()
    raise ValueError(f"{path} is outside the evidence and export folders")


def file_path(app: App, path: Path, default_folder: str) -> Path:
    folder, relative = file_ref(app, path, default_folder)
    return folder_root(app, folder) / relative


def file_url(app: App, path: Path, default_folder: str, ttl: timedelta) -> str:
    folder, relative = file_ref(app, path, default_folder)
    return signed_url(app, folder, relative, ttl)


def reply_text(app: App, reply: Outgoing, t: Translator) -> str:
    """The reply as a person reads it on Zalo: numbered options, the footer, a link for a file."""
    text = numbered_text(reply, t)
    if reply.footer and reply.footer not in text:
        text = f"{text}\n{reply.footer}"
    if reply.document is not None:
        name = reply.document_name or reply.document.name
        url = file_url(app, reply.document, "exports", DOCUMENT_LINK_TTL)
        link = t("channel.document_link", name=name, url=url, hours=int(DOCUMENT_LINK_TTL.total_seconds() // 3600))
        text = f"{text}\n\n{link}" if text else link
    return text


def pieces_for(app: App, replies: list[Outgoing], t: Translator, limit: int = TEXT_LIMIT) -> list[Piece]:
    """Replies as messages: consecutive texts joined (fewer messages for a slow phone and the
    platform's pace), a photo with its text as caption, nothing longer than `limit`."""
    pieces: list[Piece] = []
    buffer: list[str] = []
    last_choices: list[str] = []

    def flush() -> None:
        if buffer:
            pieces.append(Piece("\n\n".join(buffer), choices=list(last_choices)))
            buffer.clear()

    for reply in replies:
        text = reply_text(app, reply, t)
        if reply.photo is not None:
            flush()
            last_choices = []
            pieces.append(Piece(text, reply.photo))
            continue
        if not text.strip():
            continue
        if buffer and len("\n\n".join([*buffer, text])) > limit:
            flush()
        buffer.append(text)
        last_choices = [choice.label for choice in reply.choices]
    flush()
    result: list[Piece] = []
    for piece in pieces:
        if piece.photo is not None or len(piece.text) <= limit:
            result.append(piece)
        else:
            parts = split_text(piece.text, limit)
            result += [
                Piece(part, choices=piece.choices if i == len(parts) - 1 else []) for i, part in enumerate(parts)
            ]
    return result


class ChatPacer:
    """Spaces messages to one chat by `interval` seconds (the first one goes at once)."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, chat_id: str) -> None:
        if self.interval <= 0:
            return
        now = self._clock()
        if len(self._next) > 10_000:
            self._next = {k: v for k, v in self._next.items() if v > now}
        slot = max(now, self._next.get(chat_id, now))
        self._next[chat_id] = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)


# --- background processing ---------------------------------------------------------------


class PerPersonQueue:
    """Runs jobs in the background, one at a time per person and in arrival order, so a webhook
    can answer 200 at once while a person's messages are still handled in the order they wrote."""

    def __init__(self, concurrency: int = 16) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)

    def submit(self, key: str, job: Callable[[], Awaitable[None]], what: str = "message") -> asyncio.Task[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1

        async def run() -> None:
            try:
                async with lock:
                    async with self._slots:
                        await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failed to handle a %s", what)
            finally:
                self._waiting[key] -= 1
                if self._waiting[key] == 0:
                    del self._waiting[key]
                    self._locks.pop(key, None)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every submitted job (and any submitted meanwhile) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except TimeoutError:
            log.warning("stopping with %d message(s) still being handled", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def account_sender(
    app: App, channel: str, user_id: str, sender: ChannelSender
) -> Callable[[list[Outgoing]], Awaitable[None]]:
    """The engine's `send` for one Zalo user: their account, looked up once the replies are ready
    (the engine creates it on a first message), handed to the channel's sender."""

    async def send(replies: list[Outgoing]) -> None:
        async with app.sessions() as session:
            account = await get_account(session, channel, user_id)
        if account is None:  # pragma: no cover - the engine has just created it
            raise SendError(f"no {channel} account for the chat")
        await sender.send(account, replies)

    return send


class _Closing(Protocol):
    async def close(self) -> None: ...


class _AsyncClosing(Protocol):
    async def aclose(self) -> None: ...


class ChannelShutdown:
    """The service that, when the process stops, lets a Zalo channel finish the messages it has in
    hand and then closes the HTTP client it sent them with."""

    def __init__(self, name: str, channel: _Closing | None, client: _AsyncClosing) -> None:
        self.name = name
        self.channel = channel
        self.client = client

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.client.aclose()
