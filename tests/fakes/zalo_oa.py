"""A fake Zalo Official Account: Open API v3 (messages, image upload, follower profile, message
quota), the OAuth v4 token endpoint (single-use refresh tokens) and signed webhook deliveries.

Like the real one, API errors come back as HTTP 200 with a non-zero `error`. What it encodes,
with the sources named in /work/shared/reference/zalo.md:
- the consultation window is derived from each person's last interaction (a message or a
  follow, as events made here or `interacted()`): after 7 days -230 (PT, VD, SPEC); from 48 hours
  to 7 days, or after 8 replies since the last interaction, a message is billed (FD, SPEC): with
  no Zalo Cloud Account linked (`cloud_account`) it is refused with -320, otherwise counted in
  `billed`;
- quick-reply buttons `oa.query.hide` / `oa.query.show` in a CS message's template payload (JSDK,
  ZaloDotNetSDK); a tap comes back as the person's text message carrying the payload;
- `/v3.0/oa/quota/message` answers the last interaction and the replies left (SPEC, one source;
  the field names are assumed);
- uploaded image ids expire after 7 days (SPEC);
- the OAuth refresh answers JSON errors (the shape is undocumented, SPEC): an invalid or used
  refresh token (-14014), other errors via `script("oauth", …)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from itertools import count
from typing import Any

import httpx
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_ids = count(1)


@dataclass
class OASent:
    user_id: str
    text: str | None = None
    attachment_id: str | None = None
    access_token: str | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeZaloOA:
    app_id: str = "4321987654321"
    app_secret: str = "app-secret-for-oauth"
    oa_secret_key: str = "oa-secret-for-webhooks"
    sent: list[OASent] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    followers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # People the platform itself considers outside the 7-day window (answers -230).
    window_closed: set[str] = field(default_factory=set)
    # When each person last interacted with the OA (seconds, the fake's clock).
    last_interaction: dict[str, float] = field(default_factory=dict)
    replies_since: dict[str, int] = field(default_factory=dict)
    cloud_account: bool = False  # a Zalo Cloud Account is linked: messages beyond 48 h are billed
    billed: list[str] = field(default_factory=list)  # user ids of billed messages
    refresh_calls: int = 0
    api_calls: list[str] = field(default_factory=list)
    # Seconds since the epoch when an event is made (Zalo signs its time): the test's clock.
    now: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v3.0/oa/message/cs", self._message, methods=["POST"]),
                Route("/v2.0/oa/upload/image", self._upload, methods=["POST"]),
                Route("/v3.0/oa/user/detail", self._user_detail, methods=["GET"]),
                Route("/v3.0/oa/quota/message", self._quota, methods=["POST"]),
                Route("/v3.0/oa/message/template", self._zns_by_uid, methods=["POST"]),
                Route("/v4/oa/access_token", self._oauth, methods=["POST"]),
            ]
        )
        self.access_tokens: dict[str, float] = {}  # token -> expiry (time.time)
        self.upload_times: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.consumed: set[str] = set()
        self.issued: list[tuple[str, str]] = []
        self.expires_in = 90000
        self.scripted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        # Test hooks around a refresh: before the token is consumed (return "drop" to stop
        # there), and after a new pair is issued but before the answer leaves (a crash there
        # loses the pair).
        self.before_consume: Callable[[], Awaitable[None] | None] | None = None
        self.before_answer: Callable[[], Awaitable[None] | None] | None = None
        self.on_message: Callable[[OASent], Awaitable[None]] | None = None
        self.http = httpx.AsyncClient(timeout=5)

    # --- tokens --------------------------------------------------------------------------

    def issue_pair(self) -> tuple[str, str]:
        access, refresh = f"AT-{secrets.token_hex(6)}", f"RT-{secrets.token_hex(6)}"
        self.access_tokens[access] = time.time() + self.expires_in
        self.refresh_tokens.add(refresh)
        self.issued.append((access, refresh))
        return access, refresh

    def revoke_access(self, token: str) -> None:
        self.access_tokens.pop(token, None)

    def script(self, path_key: str, *answers: tuple[int, dict[str, Any]]) -> None:
        """Queue answers (HTTP status, JSON body) for "message", "upload", "detail" or "oauth"."""
        self.scripted.setdefault(path_key, []).extend(answers)

    def _scripted(self, key: str) -> Response | None:
        queue = self.scripted.get(key)
        if queue:
            status, body = queue.pop(0)
            return JSONResponse(body, status_code=status)
        return None

    # --- webhooks ------------------------------------------------------------------------

    def signature(self, raw: bytes, timestamp: str) -> str:
        return (
            "mac="
            + hashlib.sha256(self.app_id.encode() + raw + timestamp.encode() + self.oa_secret_key.encode()).hexdigest()
        )

    def interacted(self, user_id: str, at: float | None = None) -> None:
        """The person wrote to (or followed) the OA at `at` (default now)."""
        self.last_interaction[user_id] = self.now() if at is None else at
        self.replies_since[user_id] = 0

    def event(self, event_name: str, user_id: str, **fields: Any) -> dict[str, Any]:
        if event_name.startswith("user_send_") or event_name == "follow":
            self.interacted(user_id)
        return {
            "app_id": self.app_id,
            "event_name": event_name,
            "timestamp": str(int(self.now() * 1000) + next(_ids)),
            "user_id_by_app": f"app-{user_id}",
            **fields,
        }

    def message_event(self, event_name: str, user_id: str, msg_id: str | None = None, **message: Any) -> dict[str, Any]:
        """A `user_send_*` event from the person to the OA carrying `message`."""
        return self.event(
            event_name,
            user_id,
            sender={"id": user_id},
            recipient={"id": "oa-1"},
            message={"msg_id": msg_id or f"oamsg{next(_ids)}", **message},
        )

    def text_event(self, user_id: str, text: str, msg_id: str | None = None) -> dict[str, Any]:
        return self.message_event("user_send_text", user_id, msg_id, text=text)

    def image_event(self, user_id: str, *urls: str, msg_id: str | None = None) -> dict[str, Any]:
        attachments = [{"type": "image", "payload": {"thumbnail": url, "url": url}} for url in urls]
        return self.message_event("user_send_image", user_id, msg_id, attachments=attachments)

    def sticker_event(self, user_id: str) -> dict[str, Any]:
        attachments = [{"type": "sticker", "payload": {"id": "x"}}]
        return self.message_event("user_send_sticker", user_id, attachments=attachments)

    def tap(self, user_id: str, sent: OASent, title: str) -> dict[str, Any]:
        """The person taps the quick-reply button `title` of a message they got."""
        (button,) = [b for b in sent.buttons if b["title"] == title]
        return self.text_event(user_id, button["payload"])

    def follow_event(self, user_id: str, name: str = "follow") -> dict[str, Any]:
        return self.event(name, user_id, oa_id="oa-1", follower={"id": user_id}, source="oa_profile")

    async def deliver(self, url: str, event: dict[str, Any], *, signature: str | None = None) -> httpx.Response:
        """POST an event to a webhook with a correct signature (or the one given)."""
        raw = json.dumps(event, ensure_ascii=False).encode()
        mac = signature if signature is not None else self.signature(raw, str(event["timestamp"]))
        return await self.http.post(
            url, content=raw, headers={"Content-Type": "application/json", "X-ZEvent-Signature": mac}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- API -----------------------------------------------------------------------------

    def _auth(self, request: Request) -> JSONResponse | None:
        token = request.headers.get("access_token", "")
        expiry = self.access_tokens.get(token)
        if expiry is None:
            return JSONResponse({"error": -216, "message": "Access token is invalid"})
        if expiry < time.time():
            return JSONResponse({"error": -220, "message": "access_token is expired or removed"})
        return None

    def _gate(self, key: str, request: Request) -> Response | None:
        """Count an API call, then answer a scripted reply or an auth error if there is one."""
        self.api_calls.append(key)
        scripted = self._scripted(key)
        return scripted if scripted is not None else self._auth(request)

    async def _message(self, request: Request) -> Response:
        refused = self._gate("message", request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
            user_id = body["recipient"]["user_id"]
            message = body["message"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": -201, "message": "body is invalid"})
        last = self.last_interaction.get(user_id)
        age = self.now() - last if last is not None else None
        if user_id in self.window_closed or age is None or age > 7 * 86400:
            return JSONResponse({"error": -230, "message": "User has not interacted with the OA in the past 7 days"})
        billed = age > 48 * 3600 or self.replies_since.get(user_id, 0) >= 8
        if billed and not self.cloud_account:
            return JSONResponse(
                {"error": -320, "message": "Your app needs to connect with Zalo Cloud Account to use this feature"}
            )
        text = message.get("text")
        attachment_id = None
        buttons: list[dict[str, Any]] = []
        attachment = message.get("attachment")
        if (
            attachment is not None
            and isinstance(attachment.get("payload"), dict)
            and "buttons" in attachment["payload"]
        ):
            buttons = attachment["payload"]["buttons"]
            if (
                not isinstance(buttons, list)
                or not buttons
                or not all(
                    isinstance(b, dict)
                    and b.get("type") in ("oa.query.hide", "oa.query.show", "oa.open.url", "oa.open.phone")
                    and isinstance(b.get("title"), str)
                    and b["title"]
                    and isinstance(b.get("payload"), (str, dict))
                    for b in buttons
                )
            ):
                return JSONResponse({"error": -201, "message": "buttons are invalid"})
        elif attachment is not None:
            try:
                element = attachment["payload"]["elements"][0]
                attachment_id = element["attachment_id"]
            except (KeyError, IndexError, TypeError):
                return JSONResponse({"error": -201, "message": "attachment is invalid"})
            if attachment_id not in self.uploads or self.now() - self.upload_times.get(attachment_id, 0) > 7 * 86400:
                return JSONResponse({"error": -100, "message": "attachment_id was expired"})
        if attachment_id is None and (not isinstance(text, str) or not 1 <= len(text) <= 2000):
            return JSONResponse({"error": -201, "message": "text is invalid"})
        if text is not None and len(text) > 2000:
            return JSONResponse({"error": -210, "message": "text exceeds 2000 characters"})
        sent = OASent(
            user_id,
            text=text,
            attachment_id=attachment_id,
            access_token=request.headers.get("access_token"),
            buttons=buttons,
        )
        if self.on_message is not None:
            await self.on_message(sent)
        self.sent.append(sent)
        self.replies_since[user_id] = self.replies_since.get(user_id, 0) + 1
        if billed:
            self.billed.append(user_id)
        return JSONResponse(
            {"error": 0, "message": "Success", "data": {"message_id": f"oaout{next(_ids)}", "user_id": user_id}}
        )

    async def _upload(self, request: Request) -> Response:
        refused = self._gate("upload", request)
        if refused is not None:
            return refused
        raw = await request.body()
        head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + raw)
        data = None
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True)
        if not data:
            return JSONResponse({"error": -201, "message": "file is missing"})
        if len(data) > 1024 * 1024:
            return JSONResponse({"error": -210, "message": "file is larger than 1MB"})
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
        except OSError:
            fmt = None
        if fmt not in ("JPEG", "PNG"):
            return JSONResponse({"error": -201, "message": "only jpg and png images are accepted"})
        attachment_id = f"att{next(_ids)}"
        self.uploads[attachment_id] = data
        self.upload_times[attachment_id] = self.now()
        return JSONResponse({"error": 0, "message": "Success", "data": {"attachment_id": attachment_id}})

    async def _user_detail(self, request: Request) -> Response:
        refused = self._gate("detail", request)
        if refused is not None:
            return refused
        try:
            user_id = json.loads(request.query_params["data"])["user_id"]
        except (KeyError, ValueError, TypeError):
            return JSONResponse({"error": -201, "message": "data is invalid"})
        profile = self.followers.get(user_id)
        if profile is None:
            return JSONResponse({"error": -213, "message": "User has not followed OA"})
        return JSONResponse({"error": 0, "message": "Success", "data": {"user_id": user_id, **profile}})

    async def _zns_by_uid(self, request: Request) -> Response:
        """ZNS by user id is on the OA's host: handled by the fake ZNS given as `zns`."""
        zns = getattr(self, "zns", None)
        if zns is None:
            return JSONResponse({"error": -201, "message": "ZNS is not enabled for this OA"})
        return await zns.uid_template(request)

    async def _quota(self, request: Request) -> Response:
        refused = self._gate("quota", request)
        if refused is not None:
            return refused
        try:
            user_id = (await request.json())["user_id"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": -201, "message": "user_id is invalid"})
        last = self.last_interaction.get(user_id)
        remain = 0
        if last is not None and self.now() - last <= 48 * 3600:
            remain = max(0, 8 - self.replies_since.get(user_id, 0))
        data: dict[str, Any] = {"user_id": user_id, "cs_reply": {"remain": remain, "total": 8}}
        if last is not None:
            data["last_interaction"] = int(last * 1000)
        return JSONResponse({"error": 0, "message": "Success", "data": data})

    async def _oauth(self, request: Request) -> Response:
        self.refresh_calls += 1
        scripted = self._scripted("oauth")
        if scripted is not None:
            return scripted
        if request.headers.get("secret_key") != self.app_secret:
            return JSONResponse({"error": -14002, "error_name": "Invalid secret key"})
        form = dict(pair.split("=", 1) for pair in (await request.body()).decode().split("&") if "=" in pair)
        form = {k: httpx.QueryParams(f"v={v}")["v"] for k, v in form.items()}
        if form.get("app_id") != self.app_id or form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": -14003, "error_name": "Invalid app_id or grant_type"})
        token = form.get("refresh_token", "")
        if self.before_consume is not None and await _maybe_await(self.before_consume()) == "drop":
            return Response(status_code=503)  # the caller is gone; nothing consumed
        if token not in self.refresh_tokens:
            return JSONResponse(
                {
                    "error": -14014,
                    "error_name": "Invalid refresh_token",
                    "error_description": "refresh token is invalid or already used",
                }
            )
        self.refresh_tokens.discard(token)
        self.consumed.add(token)
        access, refresh = self.issue_pair()
        if self.before_answer is not None:
            await _maybe_await(self.before_answer())
        return JSONResponse({"access_token": access, "refresh_token": refresh, "expires_in": str(self.expires_in)})


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value
