"""The project's own fake Telegram Bot API server: real HTTP on 127.0.0.1, the part of the API
python-telegram-bot calls for this bot.

    async with FakeBotApi() as fake:
        settings: TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_API_FILE_URL=fake.file_url
        update = fake.send_text(hoa, "xin chào")       # queued for getUpdates
        ...                                             # the bot polls, answers
        fake.sent_to(hoa)                               # what the bot sent to that chat

Methods: getMe, getUpdates (offset confirms, long-poll `timeout`, `allowed_updates`), setWebhook,
deleteWebhook, getWebhookInfo, setMyCommands, getMyCommands, sendMessage, sendPhoto,
sendDocument, answerCallbackQuery, editMessageReplyMarkup, getFile and the file download path
`/file/bot<token>/<file_path>`. Parameters come as the Bot API documents ("Making requests":
the URL query string, application/x-www-form-urlencoded, application/json, or multipart/form-data
for uploads). Every call is recorded (`fake.calls`, with how its parameters came). Tests can
inject any update (including the same update twice), block a user (403 "bot was blocked by the
user"), and program failures: `fake.fail("sendMessage", status=429, retry_after=1)`, a 5xx, or a
delay that makes the client time out; `fake.latency["sendMessage"] = 0.3` makes every such call
slow but successful. `post_webhook` plays Telegram's side of a webhook delivery.

Run alone (for the benchmark) with `python -m tests.fakes.telegram_bot_api --port 0`: it prints
`READY <port>` and offers `/_control/*` endpoints to inject updates, store a file a person
sends (for getFile) and read counters.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456789:TEST-token_for-the-fake-server"
BOT_ID = 123456789
BOT_USERNAME = "hoctap_test_bot"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
JSON_FIELDS = {
    "reply_markup",
    "allowed_updates",
    "commands",
    "scope",
    "link_preview_options",
    "reply_parameters",
    "entities",
    "caption_entities",
}
INT_FIELDS = {"offset", "limit", "timeout", "message_id", "cache_time", "max_connections"}
SEND_METHODS = {"sendMessage", "sendPhoto", "sendDocument", "editMessageReplyMarkup"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str | None, bytes, str | None]]
    at: float
    body: str = "none"  # how the parameters came: "json", "form" (urlencoded), "multipart" or "none"


@dataclass
class Sent:
    """A message the bot sent."""

    chat_id: int
    message: dict[str, Any]
    kind: str  # text | photo | document
    text: str | None
    data: bytes | None = None
    filename: str | None = None

    @property
    def message_id(self) -> int:
        return self.message["message_id"]

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        return (self.message.get("reply_markup") or {}).get("inline_keyboard", [])

    @property
    def labels(self) -> list[str]:
        return [button["text"] for row in self.keyboard for button in row]


@dataclass
class Failure:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    delay: float = 0.0
    chat_id: int | None = None


@dataclass
class FakeUser:
    id: int
    first_name: str = "Hoa"
    language_code: str | None = "vi"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


def _jpeg(size: tuple[int, int], color: tuple[int, int, int] = (90, 90, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)


class BotApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class FakeBotApi:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.sent: list[Sent] = []
        self.webhook: dict[str, Any] | None = None
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.answered_queries: set[str] = set()
        self.blocked: set[int] = set()
        self._pending: list[dict[str, Any]] = []  # not yet confirmed by an offset
        self._redeliveries: list[dict[str, Any]] = []  # returned once whatever the offset
        self._allowed: list[str] | None = None
        self._update_ids = itertools.count(700_000)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, bytes)
        self._failures: list[Failure] = []
        self.latency: dict[str, float] = {}  # method → seconds every successful call takes
        self._changed: asyncio.Condition | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
                Route("/_control/inject", self._control_inject, methods=["POST"]),
                Route("/_control/stats", self._control_stats, methods=["GET"]),
                Route("/_control/file", self._control_file, methods=["POST"]),
            ]
        )

    async def start(self, port: int = 0) -> FakeBotApi:
        self._changed = asyncio.Condition()
        config = uvicorn.Config(
            self.asgi(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._closing = True
        await self._notify()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        """Wait until predicate() is truthy (re-checked on every API call); return its value."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
        return predicate()

    # ---- what tests read ------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent_to(self, user: FakeUser | int) -> list[Sent]:
        chat_id = user.id if isinstance(user, FakeUser) else user
        return [message for message in self.sent if message.chat_id == chat_id]

    def find_sent(self, chat_id: int, message_id: int) -> Sent | None:
        for message in self.sent:
            if message.chat_id == chat_id and message.message_id == message_id:
                return message
        return None

    @property
    def pending_updates(self) -> int:
        return len(self._pending) + len(self._redeliveries)

    # ---- programmable behaviour -----------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """The next `times` calls of `method` fail (429 with retry_after, 5xx, 403, …). With a
        delay the answer comes late, so a client with a shorter read timeout gives up first."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                403: "Forbidden: bot was blocked by the user",
                502: "Bad Gateway",
                504: "Gateway Timeout",
            }.get(status, "Internal Server Error")
        for _ in range(times):
            self._failures.append(Failure(method, status, description, retry_after, delay, chat_id))

    def block(self, user: FakeUser, notify: bool = False) -> dict[str, Any] | None:
        """The person blocks the bot: sends to them fail with 403; optionally Telegram's notice."""
        self.blocked.add(user.id)
        if notify:
            return self._member_update(user, "member", "kicked")
        return None

    def unblock(self, user: FakeUser, notify: bool = False) -> dict[str, Any] | None:
        self.blocked.discard(user.id)
        if notify:
            return self._member_update(user, "kicked", "member")
        return None

    # ---- updates a person produces --------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (given without update_id: one is assigned)."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        self._pending.append(update)
        self._poke()
        return update

    def redeliver(self, update: dict[str, Any]) -> dict[str, Any]:
        """Deliver the very same update again, as Telegram does after a restart before the
        offset was confirmed, or when a webhook answer got lost."""
        self._redeliveries.append(update)
        self._poke()
        return update

    def _poke(self) -> None:
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._notify())

    def _message(self, user: FakeUser, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": self._next_message_id(user.id),
            "date": int(time.time()),
            "chat": user.chat(),
            "from": user.to_dict(),
            **content,
        }
        return {"message": message}

    def send_text(self, user: FakeUser, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(" ", 1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.inject(self._message(user, **content))

    def add_file(
        self, data: bytes, folder: str = "photos", extension: str = "jpg", declared_size: int | None = None
    ) -> dict[str, Any]:
        number = next(self._file_ids)
        file_id = f"FILE{number:06d}"
        path = f"{folder}/file_{number}.{extension}"
        self._files[file_id] = (path, data)
        return {"file_id": file_id, "file_unique_id": f"U{number:06d}", "file_size": declared_size or len(data)}

    def send_photo(
        self, user: FakeUser, data: bytes, caption: str | None = None, size: tuple[int, int] = (1280, 960)
    ) -> dict[str, Any]:
        """A photo as Telegram delivers it: several sizes, the real one last and largest."""
        thumb = {**self.add_file(_jpeg((90, 67))), "width": 90, "height": 67}
        medium = {**self.add_file(_jpeg((320, 240))), "width": 320, "height": 240}
        full = {**self.add_file(data), "width": size[0], "height": size[1]}
        content: dict[str, Any] = {"photo": [thumb, medium, full]}
        if caption:
            content["caption"] = caption
        return self.inject(self._message(user, **content))

    def send_document(
        self, user: FakeUser, data: bytes, file_name: str, mime_type: str | None, declared_size: int | None = None
    ) -> dict[str, Any]:
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        document = {**self.add_file(data, "documents", extension, declared_size), "file_name": file_name}
        if mime_type:
            document["mime_type"] = mime_type
        return self.inject(self._message(user, document=document))

    def send_sticker(self, user: FakeUser) -> dict[str, Any]:
        sticker = {
            **self.add_file(b"RIFF-not-really-a-webp", "stickers", "webp"),
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": "👍",
        }
        return self.inject(self._message(user, sticker=sticker))

    def send_voice(self, user: FakeUser) -> dict[str, Any]:
        voice = {**self.add_file(b"OggS-not-really-audio", "voice", "oga"), "duration": 3, "mime_type": "audio/ogg"}
        return self.inject(self._message(user, voice=voice))

    def send_location(self, user: FakeUser) -> dict[str, Any]:
        return self.inject(self._message(user, location={"latitude": 12.68, "longitude": 108.05}))

    def press(self, user: FakeUser, label: str, message: Sent | None = None) -> dict[str, Any]:
        """Press the button with this label on `message` (default: the newest message to this
        person that has buttons)."""
        if message is None:
            with_buttons = [m for m in self.sent_to(user) if m.keyboard]
            assert with_buttons, "no message with buttons to press"
            message = with_buttons[-1]
        for row in message.keyboard:
            for button in row:
                if button["text"] == label:
                    query = {
                        "id": f"{user.id}{next(self._query_ids):08d}",
                        "from": user.to_dict(),
                        "message": message.message,
                        "chat_instance": f"ci{user.id}",
                        "data": button["callback_data"],
                    }
                    return self.inject({"callback_query": query})
        raise AssertionError(f"no button {label!r} on message {message.message_id}: {message.labels}")

    def _member_update(self, user: FakeUser, old: str, new: str) -> dict[str, Any]:
        bot = {"id": BOT_ID, "is_bot": True, "first_name": "Hoc tap", "username": BOT_USERNAME}
        change = {
            "chat": user.chat(),
            "from": user.to_dict(),
            "date": int(time.time()),
            "old_chat_member": {"status": old, "user": bot}
            if old != "kicked"
            else {"status": old, "user": bot, "until_date": 0},
            "new_chat_member": {"status": new, "user": bot}
            if new != "kicked"
            else {"status": new, "user": bot, "until_date": 0},
        }
        return self.inject({"my_chat_member": change})

    async def post_webhook(
        self, update: dict[str, Any], secret: str | None = "use-registered", url: str | None = None
    ) -> httpx.Response:
        """Deliver an update to the registered webhook as Telegram would (real HTTP)."""
        target = url or (self.webhook or {}).get("url")
        assert target, "no webhook registered"
        headers = {"Content-Type": "application/json"}
        if secret == "use-registered":
            secret = (self.webhook or {}).get("secret_token")
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(target, content=json.dumps(update), headers=headers)

    # ---- the HTTP side --------------------------------------------------------------------

    async def _params(self, request: Request) -> tuple[dict[str, Any], dict[str, tuple[str | None, bytes, str | None]]]:
        params: dict[str, Any] = dict(request.query_params)
        files: dict[str, tuple[str | None, bytes, str | None]] = {}
        content_type = request.headers.get("content-type", "")
        if "application/json" in content_type:
            body = await request.body()
            if body:
                params.update(json.loads(body))
        elif content_type:
            form = await request.form()
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[key] = (value.filename, await value.read(), value.content_type)
                else:
                    params[key] = value
        for key, value in list(params.items()):
            if isinstance(value, str) and key in JSON_FIELDS:
                params[key] = json.loads(value)
            elif isinstance(value, str) and key in INT_FIELDS:
                params[key] = int(value)
            elif isinstance(value, str) and key == "chat_id" and value.lstrip("-").isdigit():
                params[key] = int(value)
        return params, files

    def _take_failure(self, method: str, params: dict[str, Any]) -> Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.method == method and (failure.chat_id is None or failure.chat_id == params.get("chat_id")):
                return self._failures.pop(index)
        return None

    async def _api(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        try:
            params, files = await self._params(request)
        except ClientDisconnect:  # the caller died while sending (a killed worker): nothing arrived
            return Response(status_code=499)
        self.calls.append(
            Call(method, params, files, time.monotonic(), _body_kind(request.headers.get("content-type")))
        )
        await self._notify()
        failure = self._take_failure(method, params)
        if failure is not None:
            if failure.delay:
                await asyncio.sleep(failure.delay)
            return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            return _error(404, "Not Found")
        if self.latency.get(method):
            # A slow platform: the call is taken now and done later, whether or not the caller
            # is still there to hear the answer (as Telegram delivers a message whose client died).
            await asyncio.sleep(self.latency[method])
        if method in SEND_METHODS and params.get("chat_id") in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        try:
            result = await handler(params, files)
        except BotApiError as exc:
            return _error(exc.status, exc.description)
        except (KeyError, ValueError) as exc:
            return _error(400, f"Bad Request: {exc}")
        await self._notify()
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.path_params["path"]
        for file_path, data in self._files.values():
            if file_path == path:
                return Response(data, media_type="application/octet-stream")
        return _error(404, "Not Found")

    # ---- Bot API methods ------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Hoc tap",
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getMe(self, params, files):
        return self._bot_user()

    async def _m_getUpdates(self, params, files):
        if self.webhook is not None:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if offset:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if "allowed_updates" in params and params["allowed_updates"] is not None:
            self._allowed = params["allowed_updates"] or None
        limit = params.get("limit") or 100
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 50)
        while True:
            ready = self._deliverable(limit)
            if ready or self._closing or time.monotonic() >= deadline:
                return ready
            assert self._changed is not None
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    pass

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        def allowed(update: dict[str, Any]) -> bool:
            kinds = set(update) - {"update_id"}
            default = {"message", "edited_message", "channel_post", "callback_query", "my_chat_member", "inline_query"}
            return bool(kinds & set(self._allowed or default))

        self._pending = [u for u in self._pending if allowed(u)]  # Telegram drops what was not asked for
        ready = self._redeliveries[:limit]
        del self._redeliveries[: len(ready)]
        return ready + self._pending[: max(0, limit - len(ready))]

    async def _m_setWebhook(self, params, files):
        self.webhook = {
            "url": params["url"],
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections"),
        }
        if str(params.get("drop_pending_updates")).lower() == "true":
            self._pending.clear()
        return True

    async def _m_deleteWebhook(self, params, files):
        self.webhook = None
        if str(params.get("drop_pending_updates")).lower() == "true":
            self._pending.clear()
        return True

    async def _m_getWebhookInfo(self, params, files):
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    async def _m_setMyCommands(self, params, files):
        self.commands[params.get("language_code") or ""] = params["commands"]
        return True

    async def _m_getMyCommands(self, params, files):
        return self.commands.get(params.get("language_code") or "", [])

    def _bot_message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "first_name": "Person"},
            "from": self._bot_user(),
            **{key: value for key, value in content.items() if value is not None},
        }

    def _check_text(self, text: str | None, limit: int, what: str) -> None:
        if text is not None and len(text.encode("utf-16-le")) // 2 > limit:
            raise BotApiError(400, f"Bad Request: {what} is too long")

    def _check_markup(self, markup: dict[str, Any] | None) -> None:
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise BotApiError(400, "Bad Request: BUTTON_DATA_INVALID")

    async def _m_sendMessage(self, params, files):
        text = params["text"]
        if not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        self._check_text(text, 4096, "message")
        self._check_markup(params.get("reply_markup"))
        message = self._bot_message(params["chat_id"], text=text, reply_markup=params.get("reply_markup"))
        self.sent.append(Sent(params["chat_id"], message, "text", text))
        return message

    def _upload(self, params, files, field: str) -> tuple[bytes, str | None, str | None]:
        if field in files:
            filename, data, mime = files[field]
            return data, filename, mime
        reference = params.get(field, "")
        if reference.startswith("attach://") and reference[9:] in files:
            filename, data, mime = files[reference[9:]]
            return data, filename, mime
        if reference in self._files:
            return self._files[reference][1], None, None
        raise BotApiError(400, f"Bad Request: wrong {field}")

    async def _m_sendPhoto(self, params, files):
        data, _name, _mime = self._upload(params, files, "photo")
        self._check_text(params.get("caption"), 1024, "message caption")
        self._check_markup(params.get("reply_markup"))
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception as exc:
            raise BotApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from exc
        photo = {**self.add_file(data), "width": width, "height": height}
        message = self._bot_message(
            params["chat_id"], photo=[photo], caption=params.get("caption"), reply_markup=params.get("reply_markup")
        )
        self.sent.append(Sent(params["chat_id"], message, "photo", params.get("caption"), data))
        return message

    async def _m_sendDocument(self, params, files):
        data, name, mime = self._upload(params, files, "document")
        self._check_text(params.get("caption"), 1024, "message caption")
        self._check_markup(params.get("reply_markup"))
        document = {**self.add_file(data, "documents"), "file_name": name, "mime_type": mime}
        message = self._bot_message(
            params["chat_id"], document=document, caption=params.get("caption"), reply_markup=params.get("reply_markup")
        )
        self.sent.append(Sent(params["chat_id"], message, "document", params.get("caption"), data, name))
        return message

    async def _m_answerCallbackQuery(self, params, files):
        query_id = params["callback_query_id"]
        if query_id in self.answered_queries:
            raise BotApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.answered_queries.add(query_id)
        return True

    async def _m_editMessageReplyMarkup(self, params, files):
        sent = self.find_sent(params["chat_id"], params["message_id"])
        if sent is None:
            raise BotApiError(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup") or None
        if markup == sent.message.get("reply_markup"):
            raise BotApiError(400, "Bad Request: message is not modified")
        if markup is None:
            sent.message.pop("reply_markup", None)
        else:
            sent.message["reply_markup"] = markup
        return sent.message

    async def _m_getFile(self, params, files):
        file_id = params["file_id"]
        if file_id not in self._files:
            raise BotApiError(400, "Bad Request: invalid file_id")
        path, data = self._files[file_id]
        if len(data) > DOWNLOAD_LIMIT:
            raise BotApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": "U" + file_id, "file_size": len(data), "file_path": path}

    # ---- control endpoints (benchmark in another process) ---------------------------------

    async def _control_inject(self, request: Request) -> Response:
        body = await request.json()
        for update in body["updates"]:
            self._pending.append(update)
        await self._notify()
        return JSONResponse({"ok": True, "pending": len(self._pending)})

    async def _control_file(self, request: Request) -> Response:
        """Store the body as a file a person sent; answers the PhotoSize/Document fields
        (`file_id`, `file_unique_id`, `file_size`) to put in an update."""
        return JSONResponse(self.add_file(await request.body()))

    async def _control_stats(self, request: Request) -> Response:
        counts: dict[str, int] = {}
        for call in self.calls:
            counts[call.method] = counts.get(call.method, 0) + 1
        return JSONResponse({"calls": counts, "sent": len(self.sent), "pending": len(self._pending)})


def _body_kind(content_type: str | None) -> str:
    if not content_type:
        return "none"
    if "application/json" in content_type:
        return "json"
    return "multipart" if "multipart/form-data" in content_type else "form"


async def _serve_forever(port: int, token: str) -> None:
    fake = FakeBotApi(token)
    await fake.start(port)
    print(f"READY {fake.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.port, args.token))
