"""Zalo Official Account Open API v3 client, OAuth v4 token refresh and webhook signatures.

Errors come back as HTTP 200 with a non-zero `error` field: every answer is checked.
Access tokens come from a `TokenSource` (normally `bot.zalo.tokens.OATokenManager`); when Zalo
says a token is invalid or expired, the client asks the source for a fresh one and tries once more.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from PIL import Image, UnidentifiedImageError

from bot.images import in_image_thread, upright_within
from bot.zalo.errors import (
    BadSignature,
    OutsideWindow,
    RecipientUnavailable,
    StaleEvent,
    TokenRefreshError,
    ZaloAPIError,
    ZaloAuthError,
    ZaloBillingError,
    ZaloPermissionError,
    ZaloRateLimited,
)
from bot.zalo.transport import TEXT_LIMIT, RetryPolicy, ZaloHTTPClient, answer_object, request_with_retries, split_text

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://openapi.zalo.me"
DEFAULT_OAUTH_BASE = "https://oauth.zaloapp.com"
MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
USER_DETAIL_PATH = "/v3.0/oa/user/detail"
QUOTA_PATH = "/v3.0/oa/quota/message"
TOKEN_PATH = "/v4/oa/access_token"
UPLOAD_LIMIT = 1024 * 1024  # the image upload API takes jpg/png up to 1 MB
UPLOAD_SIDE = 2560  # longest side of an image re-encoded for upload (as evidence photos are stored)
# The consultation-message window: free for 48 hours after the person's last interaction; up
# to 7 days when a Zalo Cloud Account pays for the rest (ZALO_OA_PAID_WINDOW).
FREE_WINDOW = timedelta(hours=48)


def oa_window(settings: Any) -> timedelta:
    """How long after a person's last interaction the OA may write to them."""
    if settings.zalo_oa_paid_window:
        return max(FREE_WINDOW, timedelta(days=settings.zalo_oa_window_days))
    return FREE_WINDOW


AUTH_ERRORS = {-216, -220, -124}  # access token invalid / expired or removed
# What an operator can act on, grouped as the integration review (docs/…/zalo.md) found them in
# Zalo's error table and integrators' code; the exact wording of some codes is not public.
RATE_ERRORS = {-32: 60.0, -211: 3600.0, -218: 3600.0, -234: 3600.0}  # quota: code -> seconds to wait
WINDOW_ERRORS = {-230, -232}  # no interaction within the window: unreachable until they write
RECIPIENT_ERRORS = {-213: "not_follower", -217: "blocked", -227: "inactive", -244: "restricted"}
BILLING_ERRORS = {-320, -321, -240}  # a billed message without a Zalo Cloud Account or balance
PERMISSION_ERRORS = {-221, -224, -248}  # the OA (tier, verification) or app may not send this
MAX_BUTTONS = 5
BUTTON_TITLE = 100


def oa_error(code: int, message: str, what: str, http_status: int | None = None) -> ZaloAPIError:
    """The exception for an OA error code."""
    if code in AUTH_ERRORS:
        return ZaloAuthError(code, message, method=what, http_status=http_status)
    if code in RATE_ERRORS:
        return ZaloRateLimited(code, message, retry_after=RATE_ERRORS[code], method=what, http_status=http_status)
    if code in WINDOW_ERRORS:
        return OutsideWindow(code, message, method=what, http_status=http_status)
    if code in RECIPIENT_ERRORS:
        return RecipientUnavailable(code, message, reason=RECIPIENT_ERRORS[code], method=what, http_status=http_status)
    if code in BILLING_ERRORS:
        return ZaloBillingError(code, message, method=what, http_status=http_status)
    if code in PERMISSION_ERRORS:
        return ZaloPermissionError(code, message, method=what, http_status=http_status)
    return ZaloAPIError(code, message, method=what, http_status=http_status)


# OAuth errors that say the refresh token itself is unusable (invalid, expired, already used):
# only these need an admin to authorise the OA again; anything else is tried again later.
REFRESH_TOKEN_REFUSED = {-14014, -14019, -14020}


def refresh_refused_for_good(code: int | None, description: str) -> bool:
    lowered = description.lower().replace("_", " ")
    if code in REFRESH_TOKEN_REFUSED:
        return True
    return "refresh token" in lowered and any(w in lowered for w in ("invalid", "expired", "used", "revoked"))


@dataclass(frozen=True)
class MessageQuota:
    """What POST /v3.0/oa/quota/message says about one person (fields as far as they are given)."""

    last_interaction: datetime | None
    remain: int | None  # consultation messages still allowed in the current window
    raw: dict[str, Any]


class TokenSource(Protocol):
    async def access_token(self) -> str:
        """A usable access token (refreshed first when it is about to expire)."""

    async def invalidate(self, token: str) -> None:
        """Zalo rejected `token`: make the next `access_token()` return a different one."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds


@dataclass(frozen=True)
class FollowerProfile:
    user_id: str
    display_name: str | None
    is_follower: bool | None
    avatar: str | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    mime: str
    filename: str


def prepare_image(data: bytes, limit: int = UPLOAD_LIMIT) -> PreparedImage:
    """A JPEG or PNG of at most `limit` bytes: kept as is when it already is one, otherwise decoded
    within the memory budget of `bot.images` (refused beyond it), re-encoded as JPEG and, when
    still too large, scaled down step by step. CPU work: `upload_image` runs it in a thread."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not an image: {exc}") from exc
    if fmt in ("JPEG", "PNG") and len(data) <= limit:
        return PreparedImage(
            data, "image/jpeg" if fmt == "JPEG" else "image/png", "photo.jpg" if fmt == "JPEG" else "photo.png"
        )
    with Image.open(io.BytesIO(data)) as original:
        try:
            image = upright_within(original, UPLOAD_SIDE)
        except OSError as exc:  # truncated or broken data
            raise ValueError(f"not a readable image: {exc}") from exc
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        elif image.mode != "RGB":
            image = image.convert("RGB")
        for _ in range(12):
            for quality in (85, 75, 65):
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=quality, optimize=True)
                if buffer.tell() <= limit:
                    return PreparedImage(buffer.getvalue(), "image/jpeg", "photo.jpg")
            width, height = image.size
            if width <= 16 or height <= 16:
                break
            image = image.resize((max(16, int(width * 0.75)), max(16, int(height * 0.75))), Image.Resampling.LANCZOS)
    raise ValueError("could not make the image small enough to upload")


def expected_signature(app_id: str, raw_body: bytes, timestamp: str, secret_key: str) -> str:
    """X-ZEvent-Signature = "mac=" + sha256(app_id + raw body + timestamp + OA secret key)."""
    digest = hashlib.sha256(app_id.encode() + raw_body + timestamp.encode() + secret_key.encode()).hexdigest()
    return f"mac={digest}"


def verify_signature(
    raw_body: bytes, signature: str | None, *, app_id: str, secret_key: str, header_timestamp: str | None = None
) -> str:
    """Raise BadSignature unless `signature` matches the body; return the timestamp it signs. That
    is the event's `timestamp` field (a `timestamp` header, when Zalo sends one, is tried too)."""
    if not signature:
        raise BadSignature("missing X-ZEvent-Signature")
    given = signature.strip()
    if not given.startswith("mac="):
        given = f"mac={given}"
    candidates: list[str] = []
    try:
        body = json.loads(raw_body)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("timestamp") is not None:
        candidates.append(str(body["timestamp"]))
    if header_timestamp:
        candidates.append(header_timestamp)
    for timestamp in candidates:
        if hmac.compare_digest(given.encode(), expected_signature(app_id, raw_body, timestamp, secret_key).encode()):
            return timestamp
    raise BadSignature("X-ZEvent-Signature does not match")


def check_fresh(timestamp: str, now: datetime, max_age: timedelta) -> None:
    """Raise StaleEvent unless the signed `timestamp` (epoch ms) is within `max_age` of `now`,
    either way: a captured event delivered again later carries its old, signed time."""
    try:
        at = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise StaleEvent("the signed timestamp is not a time") from exc
    if abs(now - at) > max_age:
        raise StaleEvent(f"event signed at {at.isoformat()} is more than {int(max_age.total_seconds())} s from now")


async def refresh_access_token(
    http: httpx.AsyncClient,
    *,
    oauth_base: str,
    app_id: str,
    app_secret: str,
    refresh_token: str,
    retry: RetryPolicy,
    timeout: float,
) -> TokenPair:
    """Trade a (single-use) refresh token for a new access + refresh token pair."""
    response = await request_with_retries(
        http,
        "POST",
        oauth_base.rstrip("/") + TOKEN_PATH,
        policy=retry,
        what="Zalo OAuth refresh",
        headers={"secret_key": app_secret},
        data={"app_id": app_id, "refresh_token": refresh_token, "grant_type": "refresh_token"},
        timeout=timeout,
    )
    data = answer_object(response)
    if data is None:
        # Not Zalo's JSON (a proxy's page, a cut answer): says nothing about our refresh token.
        raise TokenRefreshError(response.status_code, f"unexpected answer: {response.text[:200]}", permanent=False)
    if data.get("access_token") and data.get("refresh_token"):
        try:
            expires_in = int(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0
        return TokenPair(str(data["access_token"]), str(data["refresh_token"]), expires_in or 3600)
    raw_code = data.get("error")
    code = int(raw_code) if isinstance(raw_code, (int, str)) and str(raw_code).lstrip("-").isdigit() else None
    description = str(data.get("error_description") or data.get("error_name") or data.get("message") or "")
    raise TokenRefreshError(code, description, permanent=refresh_refused_for_good(code, description))


class ZaloOAClient(ZaloHTTPClient):
    def __init__(
        self,
        tokens: TokenSource,
        api_base: str = DEFAULT_API_BASE,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        super().__init__(client=client, timeout=timeout, retry=retry)
        self.tokens = tokens
        self.api_base = api_base.rstrip("/")

    async def call(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """Call the OA API and return the answer, raising on a non-zero `error` (even with HTTP 200)."""
        for attempt in range(2):
            token = await self.tokens.access_token()
            response, data = await self.answer(
                method, self.api_base + path, what=what, headers={"access_token": token}, **kwargs
            )
            try:
                code = int(data.get("error", 0) or 0)
            except (TypeError, ValueError):
                code = -1
            if code == 0 and response.status_code < 400:
                return data
            if code == 0:
                code = response.status_code
            error = oa_error(code, str(data.get("message") or ""), what, response.status_code)
            if isinstance(error, ZaloAuthError) and attempt == 0:
                log.info("Zalo OA rejected the access token (%s); getting a fresh one", code)
                await self.tokens.invalidate(token)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_text(self, user_id: str, text: str, buttons: list[tuple[str, str]] | None = None) -> list[str]:
        """Send a consultation text (split at 2000 characters); returns the message ids.

        `buttons` (title, payload) become quick replies (`oa.query.hide`: a tap sends the payload
        back as the person's text message without showing it) under the last piece."""
        ids = []
        pieces = split_text(text, TEXT_LIMIT)
        for index, piece in enumerate(pieces):
            message: dict[str, Any] = {"text": piece}
            if buttons and index == len(pieces) - 1:
                message["attachment"] = {
                    "type": "template",
                    "payload": {
                        "buttons": [
                            {"title": title[:BUTTON_TITLE], "type": "oa.query.hide", "payload": payload}
                            for title, payload in buttons[:MAX_BUTTONS]
                        ]
                    },
                }
            data = await self.call(
                "POST",
                MESSAGE_PATH,
                what="OA send text",
                json={"recipient": {"user_id": user_id}, "message": message},
            )
            ids.append(str((data.get("data") or {}).get("message_id", "")))
        return ids

    async def message_quota(self, user_id: str) -> MessageQuota:
        """Whether a consultation message can still reach this person, before sending one."""
        answer = await self.call("POST", QUOTA_PATH, what="OA message quota", json={"user_id": user_id})
        raw = answer.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        last = data.get("last_interaction")
        try:
            at = datetime.fromtimestamp(int(last) / 1000, tz=UTC) if last is not None else None
        except (TypeError, ValueError, OverflowError, OSError):
            at = None
        raw_reply = data.get("cs_reply")
        reply: dict[str, Any] = raw_reply if isinstance(raw_reply, dict) else {}
        remain = reply.get("remain", data.get("remain"))
        return MessageQuota(at, remain if isinstance(remain, int) and not isinstance(remain, bool) else None, data)

    async def send_image(
        self, user_id: str, *, attachment_id: str | None = None, url: str | None = None, caption: str | None = None
    ) -> list[str]:
        """Send an image (an uploaded attachment id or a public URL) with an optional caption."""
        if bool(attachment_id) == bool(url):
            raise ValueError("give exactly one of attachment_id or url")
        element: dict[str, Any] = {"media_type": "image"}
        if attachment_id:
            element["attachment_id"] = attachment_id
        else:
            element["url"] = url
        pieces = split_text(caption, TEXT_LIMIT) if caption else []
        message: dict[str, Any] = {
            "attachment": {"type": "template", "payload": {"template_type": "media", "elements": [element]}}
        }
        if pieces:
            message["text"] = pieces[0]
        data = await self.call(
            "POST", MESSAGE_PATH, what="OA send image", json={"recipient": {"user_id": user_id}, "message": message}
        )
        ids = [str((data.get("data") or {}).get("message_id", ""))]
        for piece in pieces[1:]:
            ids += await self.send_text(user_id, piece)
        return ids

    async def upload_image(self, data: bytes) -> str:
        """Upload an image (made a ≤ 1 MB JPEG/PNG first) and return its attachment id."""
        prepared = await in_image_thread(prepare_image, data)
        answer = await self.call(
            "POST",
            UPLOAD_IMAGE_PATH,
            what="OA upload image",
            files={"file": (prepared.filename, prepared.data, prepared.mime)},
        )
        attachment_id = (answer.get("data") or {}).get("attachment_id")
        if not attachment_id:
            raise ZaloAPIError(-1, "upload answered without an attachment_id", method="OA upload image")
        return str(attachment_id)

    async def get_follower_profile(self, user_id: str) -> FollowerProfile:
        answer = await self.call(
            "GET",
            USER_DETAIL_PATH,
            what="OA user detail",
            params={"data": json.dumps({"user_id": user_id})},
        )
        data = answer.get("data") or {}
        raw_avatars = data.get("avatars")
        avatars = raw_avatars if isinstance(raw_avatars, dict) else {}
        return FollowerProfile(
            user_id=str(data.get("user_id", user_id)),
            display_name=data.get("display_name"),
            is_follower=data.get("user_is_follower"),
            avatar=data.get("avatar") or avatars.get("240"),
            raw=data,
        )
