"""Zalo Bot Platform channel: long polling (no public URL) or webhooks on the shared web app.

The platform has no buttons: choices are numbered and people answer "1", "2" or the label.
Photos arrive as links that expire, so the engine downloads them before anything else; photos
we send (evidence for reviewers) go out as signed, expiring links to our own web app.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import App
from bot.channels.base import RateLimited, SendError, TransientSendError, Unreachable
from bot.channels.zalo_common import (
    PHOTO_LINK_TTL,
    ChannelShutdown,
    ChatPacer,
    LoopService,
    PerPersonQueue,
    account_sender,
    file_url,
    photo_input,
    pieces_for,
    retry_policy,
)
from bot.config import ConfigError
from bot.flows.engine import FlowEngine
from bot.i18n import get_translator
from bot.messages import Incoming, Kind, Outgoing
from bot.storage.models import ChannelAccount
from bot.web.body import BodyTooLarge, read_body
from bot.zalo import bot_api
from bot.zalo.bot_api import ZaloBotClient, ZaloUpdate
from bot.zalo.errors import (
    RecipientUnavailable,
    ZaloAPIError,
    ZaloAuthError,
    ZaloError,
    ZaloInternalError,
    ZaloNetworkError,
    ZaloRateLimited,
)

if TYPE_CHECKING:
    from bot.runner import Runtime

log = logging.getLogger(__name__)

CHANNEL = "zalo_bot"
SECRET_HEADER = "X-Bot-Api-Secret-Token"

KINDS = {
    bot_api.TEXT_EVENT: Kind.TEXT,
    bot_api.IMAGE_EVENT: Kind.PHOTO,
    bot_api.STICKER_EVENT: Kind.STICKER,
    bot_api.VOICE_EVENT: Kind.VOICE,
    "message.audio.received": Kind.VOICE,
    "message.file.received": Kind.FILE,
    bot_api.UNSUPPORTED_EVENT: Kind.UNSUPPORTED,
}


def webhook_secret(app: App) -> str:
    """ZALO_BOT_WEBHOOK_SECRET, or one derived from SIGNING_SECRET (64 hex characters) — never
    from a placeholder or short one: anyone could compute it and post forged updates."""
    configured = app.settings.zalo_bot_webhook_secret
    if configured:
        return configured
    if app.settings.signing_secret_is_weak:
        raise ConfigError(
            "the Zalo Bot webhook needs ZALO_BOT_WEBHOOK_SECRET, or a long random SIGNING_SECRET to derive it from"
        )
    return hmac.new(app.settings.signing_secret.encode(), b"zalo-bot-webhook", hashlib.sha256).hexdigest()


class ZaloBotSender:
    """Sends replies and notices to a Zalo Bot Platform chat (ChannelSender)."""

    channel = CHANNEL

    def __init__(self, app: App, client: ZaloBotClient, pacer: ChatPacer | None = None) -> None:
        self.app = app
        self.client = client
        self.pacer = pacer or ChatPacer(app.settings.zalo_bot_chat_interval)

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        chat_id = account.chat_id or account.external_id
        t = get_translator(account.locale)
        try:
            for piece in pieces_for(self.app, replies, t):
                await self.pacer.wait(chat_id)
                if piece.photo is not None and self.app.settings.public_base_url:
                    url = file_url(self.app, piece.photo, "evidence", PHOTO_LINK_TTL)
                    await self.client.send_photo(chat_id, url, caption=piece.text or None)
                elif piece.photo is not None:
                    # Zalo fetches photos by URL: without a public address only the text can go.
                    log.warning("PUBLIC_BASE_URL is not set: sending a photo's text without the photo")
                    if piece.text.strip():
                        await self.client.send_message(chat_id, piece.text)
                else:
                    await self.client.send_message(chat_id, piece.text)
        except ZaloRateLimited as exc:
            # A 429 is Zalo's "quota exceeded": the dispatcher waits and the outbox report and the
            # officer's digest show it (category "quota").
            raise RateLimited(exc.retry_after, str(exc), category="quota") from exc
        except RecipientUnavailable as exc:
            raise Unreachable(exc.reason, str(exc)) from exc
        except (ZaloNetworkError, ZaloAuthError, ZaloInternalError) as exc:
            # Network trouble, Zalo's internal error (403), or our own token refused (a setting to
            # fix): worth trying later, and never a reason to think the person left.
            raise TransientSendError(str(exc)) from exc
        except ZaloAPIError as exc:
            raise SendError(str(exc)) from exc


class ZaloBotChannel:
    """Turns Bot Platform updates into engine messages and sends the replies."""

    def __init__(
        self, app: App, engine: FlowEngine, client: ZaloBotClient, sender: ZaloBotSender, secret: str | None = None
    ) -> None:
        self.app = app
        self.engine = engine
        self.client = client
        self.sender = sender
        self.queue = PerPersonQueue()
        self.photo_http = httpx.AsyncClient(timeout=app.settings.zalo_http_timeout)
        self.secret = secret  # the webhook's; None when polling (every webhook call is refused)
        self.received = 0  # updates seen, handled or ignored (a health figure; tests wait on it)
        self.bot_id: str | None = None  # from getMe: our own messages echoed back are ignored

    def to_incoming(self, update: ZaloUpdate) -> Incoming | None:
        message = update.message
        if message is None:
            return None
        if message.chat.chat_type != "PRIVATE":
            log.info("ignoring a %s message in a group chat", update.event_name)
            return None
        if message.from_bot or (self.bot_id is not None and message.sender.id == self.bot_id):
            log.debug("ignoring a %s sent by a bot", update.event_name)
            return None
        kind = KINDS.get(update.event_name)
        if kind is None:  # reactions, links and whatever Zalo adds later: nothing to answer
            log.debug("ignoring a Zalo Bot %s update", update.event_name)
            return None
        if kind == Kind.TEXT and message.text is None:
            kind = Kind.UNSUPPORTED
        message_id = message.message_id
        if message_id is None and message.date is not None:
            message_id = f"{message.sender.id}:{int(message.date.timestamp() * 1000)}"
        incoming = Incoming(
            CHANNEL,
            message.sender.id,
            kind,
            message_id=message_id,
            chat_id=message.chat.id,
            at=message.date,
        )
        if kind == Kind.TEXT:
            incoming.text = message.text
        elif kind == Kind.PHOTO:
            if not message.photo_url:
                incoming.kind = Kind.UNSUPPORTED
            else:
                incoming.photo = photo_input(self.app, self.photo_http, message.photo_url)
        return incoming

    def submit(self, update: ZaloUpdate) -> bool:
        """Queue an update for handling in the background; False when there is nothing to do."""
        self.received += 1
        incoming = self.to_incoming(update)
        if incoming is None:
            return False
        self.queue.submit(incoming.user_id, lambda: self.handle(incoming), what=f"Zalo Bot {update.event_name}")
        return True

    async def handle(self, incoming: Incoming) -> None:
        if incoming.kind == Kind.PHOTO and incoming.chat_id:
            try:  # downloading and checking a photo takes a moment: show "typing…"
                await self.client.send_chat_action(incoming.chat_id, "typing")
            except ZaloError as exc:
                log.debug("sendChatAction failed: %s", exc)

        await self.engine.process(incoming, account_sender(self.app, CHANNEL, incoming.user_id, self.sender))

    async def webhook(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not self.secret or not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning(
                "Zalo Bot webhook call with a wrong secret from %s", request.client.host if request.client else "?"
            )
            return JSONResponse({"ok": False, "description": "forbidden"}, status_code=403)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"ok": False, "description": "body too large"}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"ok": False, "description": "body is not JSON"}, status_code=400)
        for update in bot_api.parse_updates(payload):
            self.submit(update)
        return JSONResponse({"ok": True})

    async def close(self) -> None:
        await self.queue.close()
        await self.photo_http.aclose()


class ZaloBotPoller(LoopService):
    """getUpdates in a loop (when no public URL is configured); errors back off, never stop it."""

    name = "zalo-bot-poller"

    def __init__(self, channel: ZaloBotChannel, timeout: int, backoff: float = 0.5, max_backoff: float = 60.0) -> None:
        self.channel = channel
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff

    async def start(self) -> None:
        try:
            await self.channel.client.delete_webhook()  # a webhook left set would take the updates
        except ZaloError as exc:
            log.warning("could not remove the Zalo Bot webhook before polling: %s", exc)
        await learn_bot_id(self.channel)
        self.start_loop()

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                updates = await self.channel.client.get_updates(timeout=self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(self.max_backoff, max(self.backoff, 0.01) * 2 ** min(failures, 8))
                level = logging.ERROR if isinstance(exc, ZaloAuthError) else logging.WARNING
                log.log(level, "Zalo Bot getUpdates failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for update in updates:
                self.channel.submit(update)


async def learn_bot_id(channel: ZaloBotChannel) -> None:
    """Our own id (getMe), so that our messages echoed back as updates are ignored."""
    try:
        channel.bot_id = (await channel.client.get_me()).id or None
    except ZaloError as exc:
        log.warning("Zalo Bot getMe failed (%s): messages from bots are still ignored by is_bot", exc)


class ZaloBotWebhookSetup(LoopService):
    """Points the Bot Platform at our webhook once the web app listens: Zalo verifies the address
    when it is set (`result.verification`), so setting it earlier would fail. Tried again, with a
    growing pause, until Zalo confirms it; the process serves meanwhile. Stopping leaves the webhook
    set: other workers (or the next start) keep receiving."""

    name = "zalo-bot-webhook"

    def __init__(
        self,
        channel: ZaloBotChannel,
        url: str,
        listening: asyncio.Event,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.channel = channel
        self.url = url
        self.listening = listening
        self.backoff = max(backoff, 0.01)
        self.max_backoff = max_backoff
        self.confirmed = asyncio.Event()
        self.attempts = 0

    async def start(self) -> None:
        assert self.channel.secret is not None
        await learn_bot_id(self.channel)
        self.start_loop()

    async def _loop(self) -> None:
        assert self.channel.secret is not None
        await self.listening.wait()
        while True:
            self.attempts += 1
            try:
                info = await self.channel.client.set_webhook(self.url, self.channel.secret)
            except asyncio.CancelledError:
                raise
            except ValueError as exc:  # the address itself is refused: no point in trying again
                log.error("Zalo Bot webhook not set: %s", exc)
                return
            except ZaloError as exc:
                problem = str(exc)
            else:
                if info.verified:
                    log.info(
                        "Zalo Bot webhook set to %s (verification: %s)", self.url, info.verification or "not reported"
                    )
                    self.confirmed.set()
                    return
                problem = f"Zalo could not verify it (verification: {info.verification})"
            delay = min(self.max_backoff, self.backoff * 2 ** min(self.attempts - 1, 12))
            log.warning("Zalo Bot webhook %s not confirmed: %s; trying again in %.0fs", self.url, problem, delay)
            await asyncio.sleep(delay)


def webhook_url(app: App) -> str | None:
    """Our webhook's address, when there is a public https one (Zalo accepts no other)."""
    base = app.settings.public_base_url
    if not base or not base.lower().startswith("https://"):
        return None
    return base.rstrip("/") + app.settings.zalo_bot_webhook_path


async def install(runtime: Runtime) -> bool:
    """Serve the Zalo Bot Platform when ZALO_BOT_TOKEN is set: webhooks with PUBLIC_BASE_URL,
    long polling without; the sender is registered in every role (reminders use it)."""
    app = runtime.app
    settings = app.settings
    if not settings.zalo_bot_token:
        return False
    client = ZaloBotClient(
        settings.zalo_bot_token,
        settings.zalo_bot_api_base_url,
        timeout=settings.zalo_http_timeout,
        retry=retry_policy(app),
    )
    sender = ZaloBotSender(app, client)
    runtime.senders.register(sender)
    url = webhook_url(app)
    channel = None
    if runtime.role in ("web", "all"):
        channel = ZaloBotChannel(app, runtime.engine, client, sender, webhook_secret(app) if url else None)
    # Services stop in reverse order: the shutdown (drain, close clients) goes first in the list.
    runtime.services.append(ChannelShutdown("zalo-bot-shutdown", channel, client))
    if channel is not None:
        app.extras["zalo_bot_channel"] = channel
        if url:
            runtime.routes.append(Route(settings.zalo_bot_webhook_path, channel.webhook, methods=["POST"]))
            runtime.services.append(
                ZaloBotWebhookSetup(channel, url, runtime.listening, backoff=max(settings.zalo_http_backoff, 0.01) * 2)
            )
        else:
            # The Bot docs: getUpdates is for local development, production uses a webhook.
            if settings.public_base_url:
                log.warning(
                    "Zalo Bot: PUBLIC_BASE_URL is not an https address, so no webhook can be set; "
                    "polling instead (Zalo advises a webhook in production)"
                )
            elif runtime.role == "web":
                log.warning(
                    "Zalo Bot: polling in a web process (no PUBLIC_BASE_URL); Zalo advises a webhook "
                    "in production: set PUBLIC_BASE_URL to the https address of this server"
                )
            runtime.services.append(
                ZaloBotPoller(channel, settings.zalo_bot_poll_timeout, backoff=settings.zalo_http_backoff)
            )
    return True
