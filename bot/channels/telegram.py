"""The Telegram channel, on python-telegram-bot 22.x.

* Long polling when `TELEGRAM_BOT_TOKEN` is set and there is no `PUBLIC_BASE_URL`; a webhook at
  `POST /telegram/webhook` on the shared Starlette app when there is one (the request must carry
  `X-Telegram-Bot-Api-Secret-Token` = `TELEGRAM_WEBHOOK_SECRET`, else 403 and nothing happens).
* Conversation state lives in our database (the flow engine), never in PTB's persistence.
* Updates from one chat are handled one at a time and in order; different chats run concurrently.
* A webhook update is answered 200 only once its replies are out: when Telegram could not take the
  replies (a long 429, network trouble) the answer is 503 and Telegram delivers the update again,
  and the engine then resends the stored replies instead of running the step twice.
* A person who blocked the bot is marked unreachable on their channel account, from the send
  that failed with 403 or from Telegram's `my_chat_member` notice, until they write again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import (
    BotCommand,
    Chat,
    ChatMember,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.channels.base import RateLimited, SendError, TransientSendError, Unreachable
from bot.channels.telegram_limits import TelegramRateLimiter, retry_after_seconds
from bot.channels.telegram_render import Keyboard, Planned, merge_replies, plan
from bot.channels.telegram_request import JsonBodyRequest
from bot.channels.telegram_updates import CHANNEL, to_incoming
from bot.config import ConfigError, Settings
from bot.flows.engine import FlowEngine, PhotoDownloadError
from bot.i18n import LOCALES, get_translator
from bot.messages import Outgoing
from bot.storage.evidence import PhotoTooLarge
from bot.storage.models import ChannelAccount
from bot.storage.people import clear_unreachable, get_account, mark_unreachable
from bot.web.body import MAX_WEBHOOK_BODY, BodyTooLarge, read_body

if TYPE_CHECKING:
    from bot.runner import Runtime

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
BOT_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # Bot API servers refuse getFile above this
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
COMMAND_PATTERN = re.compile(r"[a-z0-9_]{1,32}")
MAX_COMMAND_DESCRIPTION = 256
DOWNLOAD_ATTEMPTS = 3


class TelegramConfigError(ConfigError):
    """The Telegram settings cannot work as given (the message says which one to fix)."""


@dataclass
class TelegramOptions:
    token: str
    base_url: str | None = None
    file_url: str | None = None
    webhook_url: str | None = None  # set: webhook mode; None: long polling
    webhook_secret: str | None = None
    poll_timeout: float = 30
    read_timeout: float = 10
    rate_per_second: float = 30
    chat_rate_per_second: float = 1
    chat_burst: int = 3
    send_retries: int = 3
    retry_after_max: float = 30
    backoff_base: float = 0.5
    concurrent_updates: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramOptions:
        if not settings.telegram_bot_token:
            raise TelegramConfigError("TELEGRAM_BOT_TOKEN is not set")
        webhook_url = None
        if settings.public_base_url:
            webhook_url = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
        return cls(
            token=settings.telegram_bot_token,
            base_url=settings.telegram_api_base_url,
            file_url=settings.telegram_api_file_url,
            webhook_url=webhook_url,
            webhook_secret=settings.telegram_webhook_secret,
            poll_timeout=settings.telegram_poll_timeout,
            read_timeout=settings.telegram_read_timeout,
            rate_per_second=settings.telegram_rate_per_second,
            chat_rate_per_second=settings.telegram_chat_rate_per_second,
            chat_burst=settings.telegram_chat_burst,
            send_retries=settings.telegram_send_retries,
            retry_after_max=settings.telegram_retry_after_max,
            concurrent_updates=settings.telegram_concurrent_updates,
        )

    def check(self) -> None:
        if self.webhook_url is not None:
            if not self.webhook_secret:
                raise TelegramConfigError(
                    "TELEGRAM_WEBHOOK_SECRET is required when PUBLIC_BASE_URL is set: without it "
                    "anyone could post fake updates to the webhook"
                )
            if not SECRET_PATTERN.fullmatch(self.webhook_secret):
                raise TelegramConfigError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
            if not self.webhook_url.startswith(("https://", "http://")):
                raise TelegramConfigError(
                    "PUBLIC_BASE_URL must be an https:// address (http:// only for a self-hosted Bot API server)"
                )


def build_application(options: TelegramOptions) -> Application:
    """A PTB Application pointed at the configured Bot API server, with our rate limiter."""
    limiter = TelegramRateLimiter(
        overall_rate=options.rate_per_second,
        chat_rate=options.chat_rate_per_second,
        chat_burst=options.chat_burst,
        retry_after_max=options.retry_after_max,
        transient_retries=options.send_retries,
        backoff_base=options.backoff_base,
    )
    builder = (
        ApplicationBuilder()
        .token(options.token)
        .rate_limiter(limiter)
        .concurrent_updates(options.concurrent_updates)
        .job_queue(None)
        .request(
            JsonBodyRequest(
                connection_pool_size=256,  # PTB's own default for everything but getUpdates
                read_timeout=options.read_timeout,
                write_timeout=max(options.read_timeout, 20),
                connect_timeout=options.read_timeout,
                pool_timeout=options.read_timeout,
                media_write_timeout=max(options.read_timeout, 60),
            )
        )
        .get_updates_request(
            JsonBodyRequest(
                connection_pool_size=1,
                # The long poll holds the request open for poll_timeout seconds: allow for that.
                read_timeout=options.poll_timeout + options.read_timeout,
                connect_timeout=options.read_timeout,
                pool_timeout=options.read_timeout,
            )
        )
    )
    if options.base_url:
        builder = builder.base_url(options.base_url)
    if options.file_url:
        builder = builder.base_file_url(options.file_url)
    if options.webhook_url is not None:
        builder = builder.updater(None)
    return builder.build()


def _markup(planned: Planned) -> InlineKeyboardMarkup | None:
    """The keyboard as PTB's own object, for its send_photo and send_document (evidence shown to
    a reviewer, exports: rare; a text message sends `Keyboard.to_dict()` as it is)."""
    if planned.markup is None:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.text, callback_data=b.callback_data) for b in row]
            for row in planned.markup.inline_keyboard
        ]
    )


def map_error(exc: TelegramError) -> SendError:
    """What a failed Bot API call means for whoever tries again."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_after_seconds(exc), text)
    if isinstance(exc, Forbidden):
        if "blocked" in lowered:
            reason = "blocked"
        elif "deactivated" in lowered:
            reason = "deactivated"
        else:
            reason = "forbidden"
        return Unreachable(reason, text)
    if isinstance(exc, BadRequest):
        if "chat not found" in lowered or "user not found" in lowered:
            return Unreachable("not_found", text)
        return SendError(text)  # this message is wrong; retrying will not help
    if isinstance(exc, NetworkError):  # timeouts, connection errors, 5xx (after our retries)
        return TransientSendError(text)
    return SendError(text)


class TelegramChannel:
    """Receives updates (polling or webhook), runs them through the flow engine, renders replies."""

    def __init__(self, engine: FlowEngine, options: TelegramOptions, application: Application | None = None) -> None:
        options.check()
        self.engine = engine
        self.app = engine.app
        self.options = options
        self.application = application or build_application(options)
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self._locks: dict[int, list] = {}  # chat id → [lock, users]
        self.handled = 0  # updates handled so far (for monitoring, benchmarks and tests)
        self._progress = asyncio.Condition()

    @property
    def bot(self):  # noqa: ANN201 - telegram.ext.ExtBot
        return self.application.bot

    @property
    def webhook_mode(self) -> bool:
        return self.options.webhook_url is not None

    # ---- receiving -------------------------------------------------------------------------

    async def _on_update(self, update: object, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            await self.handle_update(update)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)

    @asynccontextmanager
    async def _chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        entry = self._locks.setdefault(chat_id, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(chat_id, None)

    async def wait_handled(self, count: int, timeout: float = 10) -> None:
        """Wait until `count` updates have been handled in total."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.handled >= count), timeout)

    async def handle_update(self, update: Update) -> bool:
        """Handle one update; False means "not done, deliver it again later" (webhook 503)."""
        try:
            return await self._handle(update)
        finally:
            self.handled += 1
            async with self._progress:
                self._progress.notify_all()

    async def _handle(self, update: Update) -> bool:
        if update.my_chat_member is not None:
            await self._member_changed(update.my_chat_member)
            return True
        query = update.callback_query
        if query is not None:
            await self._answer_query(query.id)
        chat = update.effective_chat
        if chat is None or update.effective_user is None:
            return True
        if chat.type != Chat.PRIVATE:
            await self._not_private(update)
            return True
        incoming = to_incoming(update, self._download)
        if incoming is None:
            return True
        locale = incoming.language_code

        async def send(replies: list[Outgoing]) -> None:
            await self.send_replies(chat.id, replies, locale)

        async with self._chat_lock(chat.id):
            try:
                outcome = await self.engine.process(incoming, send)
            except Unreachable as exc:
                log.info("telegram chat %s unreachable (%s)", chat.id, exc.reason)
                await self._mark_user(update.effective_user.id, exc.reason)
                return True
            except (RateLimited, TransientSendError) as exc:
                log.warning("telegram replies to %s not sent yet: %s", incoming.message_id, exc)
                return False
            except SendError as exc:
                log.error("telegram replies to %s refused: %s", incoming.message_id, exc)
                return True
        if outcome.in_flight:
            # Another worker took this update and may still be sending its replies: ask Telegram
            # to deliver it again later rather than send them twice.
            return False
        if (
            query is not None
            and isinstance(query.message, Message)
            and not outcome.duplicate
            and any(reply.prompt_seq is not None for reply in outcome.replies)
        ):
            # The pressed keyboard has been answered and a new question asked: take the old
            # buttons away so they cannot be pressed again by mistake.
            await self._remove_keyboard(query.message)
        return True

    async def _answer_query(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as exc:  # too old, already answered: the press is still handled
            log.debug("could not answer callback query %s: %s", query_id, exc)

    async def _remove_keyboard(self, message: Message) -> None:
        try:
            await self.bot.edit_message_reply_markup(
                chat_id=message.chat_id, message_id=message.message_id, reply_markup=None
            )
        except TelegramError as exc:
            log.debug("could not remove the keyboard of message %s: %s", message.message_id, exc)

    async def _not_private(self, update: Update) -> None:
        """The bot talks about personal data: it works in private chats only."""
        message = update.message
        if message is None or not (message.text or "").startswith("/"):
            return  # stay silent in groups unless someone addresses the bot with a command
        t = get_translator(update.effective_user.language_code if update.effective_user else None)
        try:
            await self.bot.send_message(message.chat_id, t("telegram.private_only"))
        except TelegramError as exc:
            log.debug("could not answer in group %s: %s", message.chat_id, exc)

    async def _member_changed(self, change: ChatMemberUpdated) -> None:
        # A forged or truncated update can leave out the required fields: nothing to record.
        if change.chat is None or change.new_chat_member is None or change.from_user is None:
            return
        if change.chat.type != Chat.PRIVATE:
            return
        status = change.new_chat_member.status
        async with self.app.sessions.begin() as session:
            account = await get_account(session, CHANNEL, str(change.from_user.id))
            if account is None:
                return
            if status == ChatMember.BANNED:
                await mark_unreachable(session, account.id, "blocked", self.app.clock.now())
            elif status == ChatMember.MEMBER:
                await clear_unreachable(session, account.id, "blocked")

    async def _mark_user(self, user_id: int, reason: str) -> None:
        async with self.app.sessions.begin() as session:
            account = await get_account(session, CHANNEL, str(user_id))
            if account is not None:
                await mark_unreachable(session, account.id, reason, self.app.clock.now())

    async def mark_account(self, account_id: int, reason: str) -> None:
        async with self.app.sessions.begin() as session:
            await mark_unreachable(session, account_id, reason, self.app.clock.now())

    async def _download(self, file_id: str, declared_size: int | None) -> bytes:
        """A person's photo, by file id: refused before downloading when it is too big."""
        limit = min(self.app.settings.max_photo_bytes, BOT_DOWNLOAD_LIMIT)
        if declared_size is not None and declared_size > limit:
            raise PhotoTooLarge(f"{declared_size} bytes > {limit}")
        try:
            tg_file = await self.bot.get_file(file_id)
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                raise PhotoTooLarge(str(exc)) from exc
            raise PhotoDownloadError(str(exc)) from exc
        except TelegramError as exc:
            raise PhotoDownloadError(str(exc)) from exc
        if tg_file.file_size is not None and tg_file.file_size > limit:
            raise PhotoTooLarge(f"{tg_file.file_size} bytes > {limit}")
        for attempt in range(DOWNLOAD_ATTEMPTS):
            try:
                data = bytes(await tg_file.download_as_bytearray())
                break
            except BadRequest as exc:
                raise PhotoDownloadError(str(exc)) from exc
            except NetworkError as exc:
                if attempt == DOWNLOAD_ATTEMPTS - 1:
                    raise PhotoDownloadError(str(exc)) from exc
                await asyncio.sleep(self.options.backoff_base * (2**attempt))
            except TelegramError as exc:
                raise PhotoDownloadError(str(exc)) from exc
        if len(data) > limit:
            raise PhotoTooLarge(f"{len(data)} bytes > {limit}")
        return data

    # ---- sending ---------------------------------------------------------------------------

    async def send_replies(self, chat_id: int | str, replies: list[Outgoing], locale: str | None = None) -> None:
        """Send replies in order, raising a `SendError` subclass when Telegram would not take one."""
        t = get_translator(locale)
        for reply in merge_replies(replies):
            for planned in plan(reply, t):
                try:
                    await self._send_planned(chat_id, planned)
                except TelegramError as exc:
                    raise map_error(exc) from exc

    def _file_path(self, path: Path) -> Path:
        return path if path.is_absolute() else Path(self.app.settings.evidence_dir) / path

    async def _send_text(self, chat_id: int | str, text: str, markup: Keyboard | None) -> None:
        """sendMessage through the bot's own request method, `_post` (defaults, our rate limiter,
        retries and error mapping all apply), without turning Telegram's answer into a `Message`
        as `send_message` does: nothing here reads it, and parsing a message with its keyboard
        cost about 0.15 ms of CPU per reply (bench/README.md, issue 18, fifth round)."""
        data: dict[str, object] = {"chat_id": chat_id, "text": text}
        if markup is not None:
            data["reply_markup"] = markup.to_dict()
        await self.bot._post("sendMessage", data)

    async def _send_planned(self, chat_id: int | str, planned: Planned) -> None:
        if planned.method == "text":
            await self._send_text(chat_id, planned.text or "", planned.markup)
            return
        assert planned.path is not None
        path = self._file_path(planned.path)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            # The text still matters more than the file: say it without the attachment.
            log.error("cannot read %s for a Telegram %s: %s", path, planned.method, exc)
            if planned.text or planned.markup:
                await self._send_text(chat_id, planned.text or "…", planned.markup)
            return
        if planned.method == "photo":
            try:
                await self.bot.send_photo(chat_id, data, caption=planned.text, reply_markup=_markup(planned))
                return
            except BadRequest as exc:
                # Odd dimensions or size for a photo: the same file as a document still arrives.
                log.info("photo refused (%s); sending %s as a document", exc, path.name)
        await self.bot.send_document(
            chat_id, data, filename=planned.filename or path.name, caption=planned.text, reply_markup=_markup(planned)
        )

    async def publish_commands(self) -> None:
        """The command menu in Vietnamese (the default) and English, for everyone's commands."""
        for locale in LOCALES:
            t = get_translator(locale)
            commands = []
            for spec in self.engine.router.command_order:
                name = spec.name_for(locale)
                if not spec.help_key or spec.roles or not COMMAND_PATTERN.fullmatch(name):
                    continue
                description = t(spec.help_key)[:MAX_COMMAND_DESCRIPTION]
                commands.append(BotCommand(name, description))
            language_code = None if locale == LOCALES[0] else locale
            await self.bot.set_my_commands(commands, language_code=language_code)

    # ---- webhook ---------------------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        expected = self.options.webhook_secret or ""
        given = request.headers.get(SECRET_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("telegram webhook call without the right secret from %s", request.client)
            return JSONResponse({"ok": False, "error": "forbidden"}, status_code=403)
        try:
            body = await read_body(request, MAX_WEBHOOK_BODY)
        except BodyTooLarge:
            return JSONResponse({"ok": False, "error": "too large"}, status_code=413)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            update = Update.de_json(payload, self.bot)
            if update is None:
                raise ValueError("empty update")
        except Exception as exc:  # garbage of any shape: refuse it, change nothing
            log.warning("telegram webhook body refused: %s", exc)
            return JSONResponse({"ok": False, "error": "bad update"}, status_code=400)
        try:
            done = await self.handle_update(update)
        except Exception:
            log.exception("telegram update %s failed", update.update_id)
            return JSONResponse({"ok": False, "error": "internal"}, status_code=500)
        if not done:
            return JSONResponse({"ok": False, "error": "try again"}, status_code=503)
        return JSONResponse({"ok": True})

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.webhook, methods=["POST"])]


class TelegramSender:
    """`ChannelSender` for reminders, digests and reviewer notices."""

    channel = CHANNEL

    def __init__(self, telegram: TelegramChannel) -> None:
        self.telegram = telegram

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        chat_id = account.chat_id or account.external_id
        try:
            await self.telegram.send_replies(chat_id, replies, account.locale)
        except Unreachable as exc:
            # Not retried forever: the account is marked until the person writes again.
            await self.telegram.mark_account(account.id, exc.reason)
            raise


class TelegramService:
    """Starts and stops the PTB application: polling, webhook registration, or sending only."""

    def __init__(self, telegram: TelegramChannel, mode: str) -> None:
        if mode not in ("polling", "webhook", "send"):
            raise ValueError(f"unknown mode {mode!r}")
        self.telegram = telegram
        self.mode = mode
        self.name = f"telegram ({mode})"

    async def start(self) -> None:
        application = self.telegram.application
        options = self.telegram.options
        await application.initialize()  # getMe: fails early on a wrong token or server
        await application.start()
        if self.mode == "send":
            return
        try:
            await self.telegram.publish_commands()
        except TelegramError as exc:  # the menu is a convenience; the bot works without it
            log.warning("could not publish the Telegram command menu: %s", exc)
        if self.mode == "webhook":
            await application.bot.set_webhook(
                options.webhook_url,
                secret_token=options.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
            log.info("telegram webhook set to %s", options.webhook_url)
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                timeout=int(options.poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
                bootstrap_retries=3,
            )
            log.info("telegram long polling started")

    async def stop(self) -> None:
        application = self.telegram.application
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()


async def install(runtime: Runtime, options: TelegramOptions | None = None) -> bool:
    """Serve Telegram when a bot token is configured (see the module docstring for the modes)."""
    settings = runtime.app.settings
    if not settings.telegram_bot_token and options is None:
        return False
    options = options or TelegramOptions.from_settings(settings)
    telegram = TelegramChannel(runtime.engine, options)
    runtime.senders.register(TelegramSender(telegram))
    if runtime.role == "scheduler":
        mode = "send"  # reminders go out from here; the web workers receive
    elif telegram.webhook_mode:
        mode = "webhook"
        runtime.routes.extend(telegram.routes())
    else:
        mode = "polling"
    runtime.services.append(TelegramService(telegram, mode))
    runtime.app.extras["telegram"] = telegram
    return True


__all__ = [
    "ALLOWED_UPDATES",
    "SECRET_HEADER",
    "WEBHOOK_PATH",
    "TelegramChannel",
    "TelegramConfigError",
    "TelegramOptions",
    "TelegramSender",
    "TelegramService",
    "build_application",
    "install",
    "map_error",
]
