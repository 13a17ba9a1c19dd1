"""Zalo Official Account channel: signed webhooks in, consultation messages out.

A consultation message is free within 48 hours of the person's last interaction with the OA;
from 48 hours to 7 days it is billed and needs a Zalo Cloud Account linked to the OA
(ZALO_OA_PAID_WINDOW); after 7 days Zalo refuses it (-230). Outside the window in use the sender
does not try: it marks the account unreachable (until the person writes again, which the engine
notes) and raises `Unreachable("outside_window")`, so reminders go by ZNS when it is set up, or
show the person in the branch leader's "needs a visit" list instead of failing silently.

Zalo's errors are turned into what an operator can act on (the `category` of the send error,
shown in `hoctap outbox --problems` and the officer's digest): unreachable, quota, billing,
permission.

The webhook always answers 200 quickly: Zalo retries a failing webhook for hours and then turns
it off. A request that is not signed correctly is dropped and counted; when they keep coming, an
operator alert is raised (a log line and a line in the officer's digest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import App
from bot.channels.base import RateLimited, SendError, TransientSendError, Unreachable
from bot.channels.zalo_common import (
    ChannelShutdown,
    LoopService,
    PerPersonQueue,
    account_sender,
    file_path,
    photo_input,
    pieces_for,
    retry_policy,
)
from bot.flows.engine import FlowEngine
from bot.i18n import get_translator
from bot.messages import Incoming, Kind, Outgoing
from bot.storage.models import ChannelAccount
from bot.storage.people import get_account
from bot.storage.secretbox import SecretBox
from bot.web.body import BodyTooLarge, read_body
from bot.zalo.alerts import SIGNATURE_FAILURES, note_alert
from bot.zalo.bot_api import from_millis
from bot.zalo.errors import (
    BadSignature,
    OutsideWindow,
    RecipientUnavailable,
    StaleEvent,
    TokenRefreshError,
    ZaloAPIError,
    ZaloAuthError,
    ZaloBillingError,
    ZaloConfigError,
    ZaloError,
    ZaloNetworkError,
    ZaloPermissionError,
    ZaloRateLimited,
)
from bot.zalo.oa import ZaloOAClient, check_fresh, oa_window, verify_signature
from bot.zalo.tokens import OATokenManager
from bot.zalo.zns import ZNSSender

if TYPE_CHECKING:
    from bot.runner import Runtime

log = logging.getLogger(__name__)

CHANNEL = "zalo_oa"
SIGNATURE_HEADER = "X-ZEvent-Signature"
SIGNATURE_ALERT_COUNT = 5  # wrong signatures within SIGNATURE_ALERT_PERIOD that raise an alert
SIGNATURE_ALERT_PERIOD = 3600
OUTSIDE_WINDOW = "outside_window"
UNFOLLOWED = "unfollowed"

MESSAGE_KINDS = {
    "user_send_text": Kind.TEXT,
    "user_send_image": Kind.PHOTO,
    "user_send_sticker": Kind.STICKER,
    "user_send_gif": Kind.STICKER,
    "user_send_audio": Kind.VOICE,
    "user_send_file": Kind.FILE,
    "user_send_video": Kind.UNSUPPORTED,
    "user_send_location": Kind.UNSUPPORTED,
    "user_send_link": Kind.UNSUPPORTED,
    "user_send_business_card": Kind.UNSUPPORTED,
}


def _id_of(party: Any) -> str:
    """`sender` / `follower` → its id, or "" when the field is not an object with an id."""
    if not isinstance(party, dict):
        return ""
    value = party.get("id")
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else ""


async def mark_unreachable(app: App, account: ChannelAccount, reason: str) -> None:
    """Record that this person cannot be reached until they write again (unless they just did)."""
    now = app.clock.now()
    condition = (
        ChannelAccount.last_inbound_at.is_(None)
        if account.last_inbound_at is None
        else ChannelAccount.last_inbound_at <= account.last_inbound_at
    )
    async with app.sessions.begin() as session:
        await session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.id == account.id, condition)
            .values(unreachable_at=now, unreachable_reason=reason)
        )
    account.unreachable_at = now
    account.unreachable_reason = reason


class ZaloOASender:
    """Sends consultation messages (ChannelSender), respecting the window."""

    channel = CHANNEL

    def __init__(self, app: App, client: ZaloOAClient) -> None:
        self.app = app
        self.client = client
        self.window = oa_window(app.settings)

    def in_window(self, account: ChannelAccount, now: datetime | None = None) -> bool:
        now = now or self.app.clock.now()
        return account.last_inbound_at is not None and now - account.last_inbound_at < self.window

    async def send_queued(self, account: ChannelAccount, outgoing: Outgoing, notice: Any = None) -> None:
        """A message from the outbox (not an answer): with ZALO_OA_QUOTA_CHECK, Zalo is asked
        first whether this person can still get one, so nothing is sent that would be refused."""
        if self.app.settings.zalo_oa_quota_check and self.in_window(account):
            try:
                quota = await self.client.message_quota(account.external_id)
            except (ZaloNetworkError, ZaloAuthError, TokenRefreshError) as exc:
                raise TransientSendError(str(exc)) from exc
            except ZaloAPIError as exc:  # the check itself is refused: send as we would without it
                log.info("Zalo OA quota check failed (%s); sending anyway", exc)
            else:
                now = self.app.clock.now()
                closed = quota.last_interaction is not None and now - quota.last_interaction >= self.window
                used_up = quota.remain == 0 and not self.app.settings.zalo_oa_paid_window
                if closed or used_up:
                    await mark_unreachable(self.app, account, OUTSIDE_WINDOW)
                    raise Unreachable(OUTSIDE_WINDOW, "the OA quota check says no free message is left")
        await self.send(account, [outgoing])

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        if not self.in_window(account):
            await mark_unreachable(self.app, account, OUTSIDE_WINDOW)
            raise Unreachable(OUTSIDE_WINDOW, "no message from this person within the OA window")
        user_id = account.external_id
        t = get_translator(account.locale)
        buttons = self.app.settings.zalo_oa_buttons
        try:
            for piece in pieces_for(self.app, replies, t):
                if piece.photo is not None:
                    data = await asyncio.to_thread(file_path(self.app, piece.photo, "evidence").read_bytes)
                    try:
                        attachment_id = await self.client.upload_image(data)
                    except ValueError:
                        # A file that cannot be made an upload (e.g. a huge canvas stored before
                        # photos were bounded): the caption still goes, and the rest of the reply.
                        log.warning("an evidence image could not be prepared for the OA; sent its caption alone")
                        if piece.text:
                            await self.client.send_text(user_id, piece.text)
                        continue
                    await self.client.send_image(user_id, attachment_id=attachment_id, caption=piece.text or None)
                else:
                    quick = [(label, str(n)) for n, label in enumerate(piece.choices, 1)] if buttons else None
                    await self.client.send_text(user_id, piece.text, buttons=quick or None)
        except OutsideWindow as exc:
            await mark_unreachable(self.app, account, OUTSIDE_WINDOW)
            raise Unreachable(OUTSIDE_WINDOW, str(exc)) from exc
        except RecipientUnavailable as exc:
            await mark_unreachable(self.app, account, exc.reason)
            raise Unreachable(exc.reason, str(exc)) from exc
        except ZaloRateLimited as exc:
            raise RateLimited(exc.retry_after, str(exc), category="quota") from exc
        except ZaloBillingError as exc:
            # A billed message and no Zalo Cloud Account (or balance): an operator's matter.
            raise SendError(str(exc), category="billing") from exc
        except ZaloPermissionError as exc:
            raise SendError(str(exc), category="permission") from exc
        except TokenRefreshError as exc:
            # The OA's authorisation (channel-wide): an admin re-authorises when it is refused for good.
            raise TransientSendError(str(exc), category="reauth" if exc.permanent else None) from exc
        except (ZaloNetworkError, ZaloAuthError) as exc:
            raise TransientSendError(str(exc)) from exc
        except (ZaloAPIError, ValueError, OSError) as exc:
            raise SendError(str(exc)) from exc


class ZaloOAChannel:
    """Turns verified OA webhook events into engine messages and sends the replies."""

    def __init__(self, app: App, engine: FlowEngine, sender: ZaloOASender, *, app_id: str, secret_key: str) -> None:
        self.app = app
        self.engine = engine
        self.sender = sender
        self.app_id = app_id
        self.secret_key = secret_key
        self.queue = PerPersonQueue()
        self.photo_http = httpx.AsyncClient(timeout=app.settings.zalo_http_timeout)
        self.max_event_age = timedelta(seconds=app.settings.zalo_oa_max_event_age_seconds)
        self.received = 0  # events seen, handled or ignored
        self.dropped = 0  # requests answered 200 and dropped (bad signature, not an event…)
        self._refused: list[float] = []  # monotonic times of recent signature failures
        self._alerted_at: float | None = None

    def to_incoming(self, event: dict[str, Any]) -> list[Incoming]:
        """Engine messages for one event (an image event may carry several photos). An event
        whose fields have the wrong shape gives nothing (it is skipped, never an error)."""
        name = event.get("event_name")
        at = from_millis(event.get("timestamp"))
        if name == "follow":
            user_id = _id_of(event.get("follower"))
            if not user_id:
                return []
            stamp = str(event.get("timestamp") or "")
            return [
                Incoming(CHANNEL, user_id, Kind.FOLLOW, message_id=f"follow:{user_id}:{stamp}", chat_id=user_id, at=at)
            ]
        kind = MESSAGE_KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            return []
        user_id = _id_of(event.get("sender"))
        message = event.get("message")
        if not user_id or not isinstance(message, dict):
            return []
        raw_id = message.get("msg_id")
        msg_id = (
            str(raw_id) if isinstance(raw_id, (str, int)) and raw_id != "" else f"{user_id}:{event.get('timestamp')}"
        )
        base: dict[str, Any] = dict(message_id=msg_id, chat_id=user_id, at=at)
        if kind == Kind.TEXT:
            text = message.get("text")
            if not isinstance(text, str):
                return [Incoming(CHANNEL, user_id, Kind.UNSUPPORTED, **base)]
            return [Incoming(CHANNEL, user_id, Kind.TEXT, text=text, **base)]
        if kind == Kind.PHOTO:
            urls = []
            attachments = message.get("attachments")
            for attachment in attachments if isinstance(attachments, list) else []:
                payload = attachment.get("payload") if isinstance(attachment, dict) else None
                url = payload.get("url") if isinstance(payload, dict) else None
                if isinstance(url, str) and url:
                    urls.append(url)
            if not urls:
                return [Incoming(CHANNEL, user_id, Kind.UNSUPPORTED, **base)]
            return [
                Incoming(
                    CHANNEL,
                    user_id,
                    Kind.PHOTO,
                    message_id=msg_id if index == 0 else f"{msg_id}#{index}",
                    chat_id=user_id,
                    at=at,
                    photo=photo_input(self.app, self.photo_http, url),
                )
                for index, url in enumerate(urls)
            ]
        return [Incoming(CHANNEL, user_id, kind, **base)]

    def submit(self, event: dict[str, Any]) -> bool:
        self.received += 1
        name = event.get("event_name")
        if name == "unfollow":
            user_id = _id_of(event.get("follower"))
            if user_id:
                self.queue.submit(user_id, lambda: self.unfollowed(user_id), what="Zalo OA unfollow")
                return True
            return False
        messages = self.to_incoming(event)
        if not messages:
            log.debug("ignoring Zalo OA event %s", name)
            return False
        for incoming in messages:
            self.queue.submit(incoming.user_id, partial(self.handle, incoming), what=f"Zalo OA {name}")
        return True

    async def handle(self, incoming: Incoming) -> None:
        await self.engine.process(incoming, account_sender(self.app, CHANNEL, incoming.user_id, self.sender))

    async def unfollowed(self, user_id: str) -> None:
        async with self.app.sessions() as session:
            account = await get_account(session, CHANNEL, user_id)
        if account is not None:
            await mark_unreachable(self.app, account, UNFOLLOWED)
            log.info("Zalo OA follower %s unfollowed; marked unreachable", account.id)

    def _ok(self) -> Response:
        return JSONResponse({"error": 0, "message": "ok"})

    def _drop(self, why: str) -> Response:
        """Answer 200 all the same: Zalo retries a failing webhook for 12 hours and then turns it
        off, which a wrong secret or a stranger's requests must not achieve."""
        self.dropped += 1
        log.warning("Zalo OA webhook request dropped: %s", why)
        return self._ok()

    async def _signature_failed(self, why: str) -> Response:
        now = time.monotonic()
        self._refused = [t for t in self._refused if now - t < SIGNATURE_ALERT_PERIOD] + [now]
        if len(self._refused) >= SIGNATURE_ALERT_COUNT and (
            self._alerted_at is None or now - self._alerted_at >= SIGNATURE_ALERT_PERIOD
        ):
            self._alerted_at = now
            log.error(
                "Zalo OA webhook: %d requests with a wrong signature in the last %d minutes; if they are Zalo's, "
                "ZALO_OA_SECRET_KEY (the OA secret key) is wrong and events are being lost",
                len(self._refused),
                SIGNATURE_ALERT_PERIOD // 60,
            )
            try:
                async with self.app.sessions.begin() as session:
                    await note_alert(
                        session, SIGNATURE_FAILURES, self.app.clock.now(), count=len(self._refused), detail=why
                    )
            except Exception:  # the alert must never make the webhook fail
                log.exception("could not record the Zalo OA signature alert")
        return self._drop(why)

    async def webhook(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return self._drop("body too large")
        try:
            timestamp = verify_signature(
                body,
                request.headers.get(SIGNATURE_HEADER),
                app_id=self.app_id,
                secret_key=self.secret_key,
                header_timestamp=request.headers.get("timestamp"),
            )
            check_fresh(timestamp, self.app.clock.now(), self.max_event_age)
        except StaleEvent as exc:
            return self._drop(str(exc))
        except BadSignature as exc:
            return await self._signature_failed(str(exc))
        try:
            event = json.loads(body)
        except ValueError:
            return self._drop("body is not JSON")
        if not isinstance(event, dict):
            return self._drop("body is not an event")
        if str(event.get("app_id") or self.app_id) != self.app_id:
            return self._drop("event for another app")
        try:
            self.submit(event)
        except Exception:  # an event of a shape nobody foresaw: skipped, and Zalo is not asked to retry it
            log.exception("skipped a Zalo OA event that could not be read")
        return self._ok()

    async def close(self) -> None:
        await self.queue.close()
        await self.photo_http.aclose()


class ZaloOATokenKeeper(LoopService):
    """Keeps the OA access token fresh ahead of expiry, so the refresh-token chain never lapses."""

    name = "zalo-oa-tokens"

    def __init__(self, tokens: OATokenManager, interval: float = 900.0, retry_after: float = 60.0) -> None:
        self.tokens = tokens
        self.interval = interval
        self.retry_after = retry_after

    async def start(self) -> None:
        self.start_loop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tokens.ensure_fresh()
            except asyncio.CancelledError:
                raise
            except ZaloError as exc:
                log.error("Zalo OA token check failed: %s", exc)
                await asyncio.sleep(min(self.interval, self.retry_after))  # a transient failure: sooner
                continue
            except Exception:
                log.exception("Zalo OA token check failed")
            await asyncio.sleep(self.interval)


def check_settings(app: App) -> None:
    settings = app.settings
    missing = [
        name
        for name, value in (
            ("ZALO_OA_SECRET_KEY", settings.zalo_oa_secret_key),
            ("TOKEN_ENCRYPTION_KEY", settings.token_encryption_key),
            ("ZALO_OA_APP_SECRET", settings.zalo_oa_app_secret if settings.zalo_oa_refresh_token else "n/a"),
            (
                "ZALO_OA_REFRESH_TOKEN or ZALO_OA_ACCESS_TOKEN",
                settings.zalo_oa_refresh_token or settings.zalo_oa_access_token,
            ),
        )
        if not value
    ]
    if missing:
        raise ZaloConfigError(f"ZALO_OA_APP_ID is set but {', '.join(missing)} missing")


def build_oa(app: App, http: httpx.AsyncClient) -> tuple[OATokenManager, ZaloOAClient]:
    settings = app.settings
    if not settings.token_encryption_key:
        raise ZaloConfigError("ZALO_OA_APP_ID is set but TOKEN_ENCRYPTION_KEY missing")
    tokens = OATokenManager(
        app.sessions,
        app.clock,
        http,
        box=SecretBox(settings.token_encryption_key),
        app_id=settings.zalo_oa_app_id or "",
        app_secret=settings.zalo_oa_app_secret,
        oauth_base=settings.zalo_oa_oauth_base_url,
        margin=timedelta(minutes=settings.zalo_oa_refresh_margin_minutes),
        timeout=min(settings.zalo_http_timeout, 10.0),
    )
    client = ZaloOAClient(
        tokens, settings.zalo_oa_api_base_url, client=http, timeout=settings.zalo_http_timeout, retry=retry_policy(app)
    )
    return tokens, client


async def install(runtime: Runtime) -> bool:
    """Serve a Zalo OA when ZALO_OA_APP_ID is set: the webhook route (web roles), the sender and
    the token keeper (every role)."""
    app = runtime.app
    settings = app.settings
    if not settings.zalo_oa_app_id:
        return False
    check_settings(app)
    http = httpx.AsyncClient(timeout=settings.zalo_http_timeout)
    tokens, client = build_oa(app, http)
    await tokens.seed(settings.zalo_oa_refresh_token, settings.zalo_oa_access_token)
    sender = ZaloOASender(app, client)
    runtime.senders.register(sender)
    if settings.zalo_zns_templates:
        phone_client = ZaloOAClient(
            tokens,
            settings.zalo_zns_api_base_url,
            client=http,
            timeout=settings.zalo_http_timeout,
            retry=retry_policy(app),
        )
        runtime.senders.register(ZNSSender(app, phone_client, client))
    channel: ZaloOAChannel | None = None
    if runtime.role in ("web", "all"):
        channel = ZaloOAChannel(
            app, runtime.engine, sender, app_id=settings.zalo_oa_app_id, secret_key=settings.zalo_oa_secret_key or ""
        )
        app.extras["zalo_oa_channel"] = channel
        runtime.routes.append(Route(settings.zalo_oa_webhook_path, channel.webhook, methods=["POST"]))
    runtime.services.append(ChannelShutdown("zalo-oa-shutdown", channel, http))
    runtime.services.append(ZaloOATokenKeeper(tokens))
    return True
