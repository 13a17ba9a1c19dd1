"""Zalo Bot Platform client: `{base}/bot<TOKEN>/<method>`, Telegram-like `{ok, result}` envelope.

No buttons, no edits and no file download API: photos arrive as URLs and leave as URLs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.zalo.errors import (
    RecipientUnavailable,
    ZaloAPIError,
    ZaloAuthError,
    ZaloInternalError,
    ZaloRateLimited,
)
from bot.zalo.transport import TEXT_LIMIT, RetryPolicy, ZaloHTTPClient, split_text

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://bot-api.zaloplatforms.com"
IDLE_POLL = 408  # getUpdates ends an idle long poll with this error code
# The Bot docs' error table: 403 "Internal server error" (not a refusal by the person), 429 "Quota
# exceeded", with no retry_after in the envelope. A used-up quota may be daily: wait minutes.
INTERNAL_ERROR = 403
QUOTA_EXCEEDED = 429
QUOTA_BACKOFF = 600.0  # seconds to wait after a 429 that says nothing of how long

# Event names of updates (message.voice.received is not in every version of the docs).
TEXT_EVENT = "message.text.received"
IMAGE_EVENT = "message.image.received"
STICKER_EVENT = "message.sticker.received"
VOICE_EVENT = "message.voice.received"
UNSUPPORTED_EVENT = "message.unsupported.received"


@dataclass(frozen=True)
class BotInfo:
    id: str
    account_name: str | None = None
    account_type: str | None = None
    can_join_groups: bool | None = None


@dataclass(frozen=True)
class WebhookInfo:
    url: str
    updated_at: datetime | None = None
    verification: str | None = None  # setWebhook's `result.verification.outcome`, when Zalo reports it

    @property
    def verified(self) -> bool:
        """Zalo reached the webhook (or did not say it tried)."""
        return self.verification is None or self.verification.lower() in ("success", "succeeded", "ok", "verified")


def _outcome(result: dict[str, Any]) -> str | None:
    verification = result.get("verification")
    if isinstance(verification, dict):
        return _str(verification.get("outcome") or verification.get("status"))
    return _str(verification) if isinstance(verification, str) else None


@dataclass(frozen=True)
class SentMessage:
    message_id: str | None
    date: datetime | None = None


@dataclass(frozen=True)
class ZaloUser:
    id: str
    display_name: str | None = None


@dataclass(frozen=True)
class ZaloChat:
    id: str
    chat_type: str = "PRIVATE"


@dataclass(frozen=True)
class ZaloMessage:
    message_id: str | None
    sender: ZaloUser
    chat: ZaloChat
    date: datetime | None = None
    text: str | None = None
    photo_url: str | None = None  # from `photo_url` (current docs) or `photo` (older ones)
    caption: str | None = None
    sticker: str | None = None
    from_bot: bool = False  # `from.is_bot`: another bot, or our own message echoed back


@dataclass(frozen=True)
class ZaloUpdate:
    event_name: str
    message: ZaloMessage | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def from_millis(value: Any) -> datetime | None:
    """Zalo dates are epoch milliseconds (number or string)."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):  # not a number, or no date there is
        return None


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _photo_of(message: dict[str, Any]) -> str | None:
    for key in ("photo_url", "photo"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):  # tolerate {"url": ...}
            url = value.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def parse_message(raw: dict[str, Any]) -> ZaloMessage | None:
    raw_sender, raw_chat = raw.get("from"), raw.get("chat")
    sender = raw_sender if isinstance(raw_sender, dict) else {}
    chat = raw_chat if isinstance(raw_chat, dict) else {}
    sender_id = _str(sender.get("id")) or _str(chat.get("id"))
    if sender_id is None:
        return None
    return ZaloMessage(
        message_id=_str(raw.get("message_id")),
        sender=ZaloUser(sender_id, _str(sender.get("display_name") or sender.get("first_name"))),
        chat=ZaloChat(_str(chat.get("id")) or sender_id, str(chat.get("chat_type") or "PRIVATE").upper()),
        date=from_millis(raw.get("date")),
        text=raw.get("text") if isinstance(raw.get("text"), str) else None,
        photo_url=_photo_of(raw),
        caption=raw.get("caption") if isinstance(raw.get("caption"), str) else None,
        sticker=_str(raw.get("sticker")),
        from_bot=sender.get("is_bot") is True,
    )


def parse_update(raw: dict[str, Any]) -> ZaloUpdate | None:
    if not isinstance(raw, dict):
        return None
    message_raw = raw.get("message")
    message = parse_message(message_raw) if isinstance(message_raw, dict) else None
    event = raw.get("event_name")
    if not isinstance(event, str) or not event:
        event = _guess_event(message)
    return ZaloUpdate(event, message, raw)


def _guess_event(message: ZaloMessage | None) -> str:
    if message is None:
        return ""
    if message.photo_url:
        return IMAGE_EVENT
    if message.sticker:
        return STICKER_EVENT
    if message.text is not None:
        return TEXT_EVENT
    return UNSUPPORTED_EVENT


def parse_updates(payload: Any) -> list[ZaloUpdate]:
    """Updates from a getUpdates answer or a webhook body, wrapped in {ok, result} or not,
    holding one update or a list of them."""
    if isinstance(payload, dict) and "result" in payload and ("ok" in payload or "message" not in payload):
        payload = payload["result"]
    items = payload if isinstance(payload, list) else [payload]
    updates = []
    for item in items:
        update = parse_update(item) if isinstance(item, dict) else None
        if update is not None and update.message is not None:
            updates.append(update)
    return updates


def error_for(
    method: str, code: int, description: str, http_status: int | None, retry_after: float | None
) -> ZaloAPIError:
    """Map a Bot Platform error envelope to an exception class."""
    lowered = description.lower()
    if code == QUOTA_EXCEEDED:
        wait = retry_after or QUOTA_BACKOFF
        return ZaloRateLimited(
            code, description or "Quota exceeded", retry_after=wait, method=method, http_status=http_status
        )
    if code == 401:
        return ZaloAuthError(code, description, method=method, http_status=http_status)
    if code == INTERNAL_ERROR:
        # Documented as Zalo's internal error: never a reason to think the person blocked us.
        return ZaloInternalError(code, description or "Internal server error", method=method, http_status=http_status)
    if method.startswith("send"):
        if code in (400, 404) and ("chat not found" in lowered or "user not found" in lowered):
            return RecipientUnavailable(code, description, reason="not_found", method=method, http_status=http_status)
    elif code == 404 and not description:
        return ZaloAuthError(code, "invalid bot token?", method=method, http_status=http_status)
    return ZaloAPIError(code, description, method=method, http_status=http_status)


class ZaloBotClient(ZaloHTTPClient):
    """One bot token; share the instance (it keeps one HTTP connection pool)."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        if not token:
            raise ValueError("a Zalo bot token is required")
        super().__init__(client=client, timeout=timeout, retry=retry)
        self._token = token
        self.base_url = base_url.rstrip("/")

    def _url(self, method: str) -> str:
        return f"{self.base_url}/bot{self._token}/{method}"

    async def call(
        self,
        method: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Call a method and return its `result`, raising a ZaloError subclass on failure."""
        response, data = await self.answer(
            "POST",
            self._url(method),
            what=f"Zalo Bot {method}",
            method=method,
            policy=retry,
            json=payload or {},
            timeout=timeout,
        )
        if data.get("ok") is True:
            return data.get("result")
        try:
            code = int(data.get("error_code") or response.status_code)
        except (TypeError, ValueError):
            code = response.status_code
        description = str(data.get("description") or "")
        retry_after = None
        parameters = data.get("parameters")
        if isinstance(parameters, dict) and parameters.get("retry_after") is not None:
            retry_after = float(parameters["retry_after"])
        elif response.headers.get("retry-after", "").isdigit():
            retry_after = float(response.headers["retry-after"])
        raise error_for(method, code, description, response.status_code, retry_after)

    # --- methods -------------------------------------------------------------------------

    async def get_me(self) -> BotInfo:
        result = await self.call("getMe") or {}
        return BotInfo(
            id=str(result.get("id", "")),
            account_name=_str(result.get("account_name")),
            account_type=_str(result.get("account_type")),
            can_join_groups=result.get("can_join_groups"),
        )

    async def get_updates(self, timeout: int = 30) -> list[ZaloUpdate]:
        """Long poll for up to `timeout` seconds. An idle poll (error 408) is simply no updates."""
        try:
            result = await self.call(
                "getUpdates",
                {"timeout": str(timeout)},
                timeout=timeout + 10,
                retry=RetryPolicy(attempts=1),
            )
        except ZaloAPIError as exc:
            if exc.code == IDLE_POLL or exc.http_status == IDLE_POLL:
                return []
            raise
        if result is None:
            return []
        return parse_updates(result)

    async def set_webhook(self, url: str, secret_token: str) -> WebhookInfo:
        if not 8 <= len(secret_token) <= 256:
            raise ValueError("the webhook secret_token must be 8 to 256 characters")
        if not url.startswith("https://"):
            raise ValueError("the webhook url must be an https URL (Zalo refuses any other)")
        result = await self.call("setWebhook", {"url": url, "secret_token": secret_token}) or {}
        return WebhookInfo(str(result.get("url", url)), from_millis(result.get("updated_at")), _outcome(result))

    async def delete_webhook(self) -> WebhookInfo:
        result = await self.call("deleteWebhook") or {}
        return WebhookInfo(str(result.get("url", "")), from_millis(result.get("updated_at")))

    async def get_webhook_info(self) -> WebhookInfo:
        result = await self.call("getWebhookInfo") or {}
        return WebhookInfo(str(result.get("url", "")), from_millis(result.get("updated_at")))

    async def send_message(self, chat_id: str, text: str) -> list[SentMessage]:
        """Send a text, split into several messages when it is longer than 2000 characters."""
        sent = []
        for piece in split_text(text, TEXT_LIMIT):
            result = await self.call("sendMessage", {"chat_id": chat_id, "text": piece}) or {}
            sent.append(SentMessage(_str(result.get("message_id")), from_millis(result.get("date"))))
        return sent

    async def send_photo(self, chat_id: str, photo_url: str, caption: str | None = None) -> list[SentMessage]:
        """Send a photo by public URL; a caption over 2000 characters follows as text messages."""
        pieces = split_text(caption, TEXT_LIMIT) if caption else []
        payload: dict[str, Any] = {"chat_id": chat_id, "photo": photo_url}
        if pieces:
            payload["caption"] = pieces[0]
        result = await self.call("sendPhoto", payload) or {}
        sent = [SentMessage(_str(result.get("message_id")), from_millis(result.get("date")))]
        for piece in pieces[1:]:
            sent += await self.send_message(chat_id, piece)
        return sent

    async def send_sticker(self, chat_id: str, sticker: str) -> SentMessage:
        result = await self.call("sendSticker", {"chat_id": chat_id, "sticker": sticker}) or {}
        return SentMessage(_str(result.get("message_id")), from_millis(result.get("date")))

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action})
