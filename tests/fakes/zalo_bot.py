"""A fake Zalo Bot Platform: `/bot<TOKEN>/<method>` with the {ok, result} envelope.

getUpdates long-polls the queue filled by `push()` and ends an idle poll with 408; sendMessage
and sendPhoto are recorded (sendPhoto fetches the photo URL, as Zalo does); `deliver()` posts an
update to a bot's webhook with the secret header. `fail(method, ...)` scripts failures.

Only documented behaviour (Zalo Bot Platform docs, bot.zaloplatforms.com/docs, and their copies
cited in /work/shared/reference/zalo.md):
- the error table: 403 is "Internal server error" (`internal_error()`), 429 "Quota exceeded"
  (`quota_exceeded()`); the error envelope is {ok:false, error_code, description}, with no
  `parameters.retry_after` (that is Telegram's) and no 409 from getUpdates while a webhook is set;
- setWebhook takes an https URL only and verifies it: Zalo calls the address and reports
  `result.verification.outcome` (the newer docs; one source, the shape of the call is not
  documented, so the fake posts an update without `message` with the secret header);
- image updates carry `photo_url` (current docs and SDK; `photo` in older docs);
- `message.unsupported.received` may come without `message`; other events exist (reactions,
  links: `message.reaction.received`, `message.link.received`) and `from.is_bot` is set on
  messages sent by a bot, which Zalo may hand back as updates.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import via_local_tls

_ids = count(1)


@dataclass
class Sent:
    method: str
    chat_id: str
    text: str | None = None
    photo: str | None = None
    caption: str | None = None
    photo_status: int | None = None
    photo_bytes: bytes | None = None


@dataclass
class Failure:
    status: int = 500
    body: dict[str, Any] | None = None
    hang: float = 0.0  # seconds to wait before answering (a client timeout)


def internal_error() -> Failure:
    """Zalo's documented 403: "Internal server error" (not a person blocking the bot)."""
    return Failure(403, {"ok": False, "error_code": 403, "description": "Internal server error"})


def quota_exceeded() -> Failure:
    """Zalo's documented 429: "Quota exceeded", with no retry_after."""
    return Failure(429, {"ok": False, "error_code": 429, "description": "Quota exceeded"})


@dataclass
class FakeZaloBotPlatform:
    token: str = "1459232241454765289:fake-secret-token"
    fetch_photos: bool = True
    sent: list[Sent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    webhook_url: str = ""
    webhook_secret: str | None = None
    handed_out: int = 0
    verifications: list[int] = field(default_factory=list)  # HTTP status of each verification call

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"])])
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._failures: dict[str, list[Failure]] = {}
        self.http = httpx.AsyncClient(timeout=5)

    # --- test controls -------------------------------------------------------------------

    @property
    def queue(self) -> asyncio.Queue[dict[str, Any]]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    def push(self, update: dict[str, Any]) -> None:
        """Make an update available to getUpdates."""
        self.queue.put_nowait(update)

    def fail(self, method: str, *failures: Failure) -> None:
        self._failures.setdefault(method, []).extend(failures)

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c == method)

    def texts_to(self, chat_id: str) -> list[str]:
        return [s.text or s.caption or "" for s in self.sent if s.chat_id == chat_id]

    @property
    def bot_id(self) -> str:
        return self.token.split(":")[0]

    async def deliver(
        self, url: str, update: dict[str, Any], *, secret: str | None, wrapped: bool = True
    ) -> httpx.Response:
        """POST an update to a webhook, as the platform does."""
        body = {"ok": True, "result": update} if wrapped else update
        headers = {"X-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await self.http.post(
            via_local_tls(url), content=json.dumps(body), headers={"Content-Type": "application/json", **headers}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- update builders -----------------------------------------------------------------

    @staticmethod
    def message(
        user_id: str,
        *,
        message_id: str | None = None,
        display_name: str = "Người dùng",
        chat_type: str = "PRIVATE",
        **fields: Any,
    ) -> dict[str, Any]:
        return {
            "message_id": message_id or f"zm{next(_ids):06d}",
            "from": {"id": user_id, "display_name": display_name, "is_bot": fields.pop("is_bot", False)},
            "chat": {"id": user_id, "chat_type": chat_type},
            "date": int(time.time() * 1000),
            **fields,
        }

    def text_update(self, user_id: str, text: str, **kwargs: Any) -> dict[str, Any]:
        return {"event_name": "message.text.received", "message": self.message(user_id, text=text, **kwargs)}

    def image_update(self, user_id: str, url: str, *, field_name: str = "photo_url", **kwargs: Any) -> dict[str, Any]:
        return {"event_name": "message.image.received", "message": self.message(user_id, **{field_name: url}, **kwargs)}

    def sticker_update(self, user_id: str, **kwargs: Any) -> dict[str, Any]:
        return {"event_name": "message.sticker.received", "message": self.message(user_id, sticker="abc123", **kwargs)}

    @staticmethod
    def messageless_update(event_name: str = "message.unsupported.received") -> dict[str, Any]:
        return {"event_name": event_name}

    def reaction_update(self, user_id: str, **kwargs: Any) -> dict[str, Any]:
        return {"event_name": "message.reaction.received", "message": self.message(user_id, **kwargs)}

    def echo_update(self, chat_id: str, text: str) -> dict[str, Any]:
        """Our own message handed back as an update: sent by the bot (`is_bot`) from its id."""
        update = self.text_update(chat_id, text, is_bot=True)
        update["message"]["from"]["id"] = self.bot_id
        return update

    # --- the API -------------------------------------------------------------------------

    @staticmethod
    def _ok(result: Any) -> JSONResponse:
        return JSONResponse({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str, status: int | None = None) -> JSONResponse:
        return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=status or code)

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        self.calls.append(method)
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        scripted = self._failures.get(method)
        if scripted:
            failure = scripted.pop(0)
            if failure.hang:
                await asyncio.sleep(failure.hang)
            return JSONResponse(
                failure.body or {"ok": False, "error_code": failure.status, "description": "scripted"},
                status_code=failure.status,
            )
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._error(400, "Bad Request: body is not JSON")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, f"Not Found: method {method}")
        return await handler(body)

    async def _m_getMe(self, body: dict[str, Any]) -> Response:
        return self._ok(
            {
                "id": self.token.split(":")[0],
                "account_name": "bot.HocTap",
                "account_type": "BASIC",
                "can_join_groups": False,
            }
        )

    async def _m_getUpdates(self, body: dict[str, Any]) -> Response:
        timeout = float(body.get("timeout") or 30)
        try:
            update = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return self._error(408, "Request timeout")
        self.handed_out += 1
        return self._ok(update)

    async def _m_setWebhook(self, body: dict[str, Any]) -> Response:
        url, secret = body.get("url"), body.get("secret_token")
        if not isinstance(url, str) or not url.startswith("https://"):
            return self._error(400, "Bad Request: url must be https")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            return self._error(400, "Bad Request: secret_token must be 8-256 characters")
        try:
            answer = await self.http.post(
                via_local_tls(url),
                content=json.dumps({"ok": True, "result": self.messageless_update()}),
                headers={"Content-Type": "application/json", "X-Bot-Api-Secret-Token": secret},
            )
            status = answer.status_code
        except httpx.HTTPError:
            status = 0
        self.verifications.append(status)
        outcome = "success" if status == 200 else "failed"
        if outcome == "success":
            self.webhook_url, self.webhook_secret = url, secret
        return self._ok({"url": url, "updated_at": int(time.time() * 1000), "verification": {"outcome": outcome}})

    async def _m_deleteWebhook(self, body: dict[str, Any]) -> Response:
        self.webhook_url, self.webhook_secret = "", None
        return self._ok({"url": "", "updated_at": int(time.time() * 1000)})

    async def _m_getWebhookInfo(self, body: dict[str, Any]) -> Response:
        return self._ok({"url": self.webhook_url, "updated_at": int(time.time() * 1000)})

    def _check_chat(self, body: dict[str, Any]) -> str | None:
        chat_id = body.get("chat_id")
        return chat_id if isinstance(chat_id, str) and chat_id else None

    async def _m_sendMessage(self, body: dict[str, Any]) -> Response:
        chat_id, text = self._check_chat(body), body.get("text")
        if chat_id is None:
            return self._error(400, "Bad Request: chat_id is required")
        if not isinstance(text, str) or not 1 <= len(text) <= 2000:
            return self._error(400, "Bad Request: text must be 1-2000 characters")
        self.sent.append(Sent("sendMessage", chat_id, text=text))
        return self._ok({"message_id": f"out{next(_ids)}", "date": int(time.time() * 1000)})

    async def _m_sendPhoto(self, body: dict[str, Any]) -> Response:
        chat_id, photo, caption = self._check_chat(body), body.get("photo"), body.get("caption")
        if chat_id is None or not isinstance(photo, str) or not photo.startswith("http"):
            return self._error(400, "Bad Request: chat_id and a photo URL are required")
        if caption is not None and (not isinstance(caption, str) or not 1 <= len(caption) <= 2000):
            return self._error(400, "Bad Request: caption must be 1-2000 characters")
        sent = Sent("sendPhoto", chat_id, photo=photo, caption=caption)
        if self.fetch_photos:
            response = await self.http.get(via_local_tls(photo))
            sent.photo_status = response.status_code
            sent.photo_bytes = response.content if response.status_code == 200 else None
            if response.status_code != 200:
                return self._error(400, "Bad Request: could not fetch the photo")
        self.sent.append(sent)
        return self._ok({"message_id": f"out{next(_ids)}", "date": int(time.time() * 1000)})

    async def _m_sendChatAction(self, body: dict[str, Any]) -> Response:
        if self._check_chat(body) is None or body.get("action") not in ("typing", "upload_photo"):
            return self._error(400, "Bad Request: chat_id and action are required")
        return JSONResponse({"ok": True})

    async def _m_sendSticker(self, body: dict[str, Any]) -> Response:
        chat_id = self._check_chat(body)
        if chat_id is None or not body.get("sticker"):
            return self._error(400, "Bad Request: chat_id and sticker are required")
        self.sent.append(Sent("sendSticker", chat_id))
        return self._ok({"message_id": f"out{next(_ids)}", "date": int(time.time() * 1000)})
