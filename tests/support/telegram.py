"""Driving the real Telegram channel (python-telegram-bot) against the fake Bot API server.

bot = await start_polling_bot(app, fake)
hoa = TgPerson(fake, bot.channel, FakeUser(1001))
turn = await hoa.says("xin chào")       # injected into getUpdates, waits until handled
await hoa.taps("Tôi đồng ý")            # a callback query on the newest keyboard
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from bot.app import App
from bot.channels.telegram import TelegramChannel, TelegramOptions, TelegramService
from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.web.app import create_web_app
from tests.fakes.telegram_bot_api import TOKEN, FakeBotApi, FakeUser, Sent

WEBHOOK_SECRET = "s3cret_for-the-tests"
HOA = FakeUser(1001, "Hoa", "vi")


@pytest.fixture
async def fake():
    """The fake Bot API on a loopback port (import it into a test module to use it)."""
    async with FakeBotApi() as server:
        yield server


def fake_api_options(base_url: str, file_url: str, **overrides: Any) -> TelegramOptions:
    """Options for the fake Bot API at these addresses (its token): quick retries, no per-chat
    pacing (a test that checks pacing turns it on)."""
    values: dict[str, Any] = dict(
        token=TOKEN, base_url=base_url, file_url=file_url, chat_rate_per_second=0, backoff_base=0.05
    )
    values.update(overrides)
    return TelegramOptions(**values)


def options_for(fake: FakeBotApi, **overrides: Any) -> TelegramOptions:
    """Options for tests: the fake server, a short long-poll, quick retries, no per-chat pacing."""
    return fake_api_options(
        fake.base_url, fake.file_url, **{"poll_timeout": 1, "read_timeout": 5, "retry_after_max": 5, **overrides}
    )


@dataclass
class RunningBot:
    channel: TelegramChannel
    service: TelegramService
    web: uvicorn.Server | None = None
    web_task: asyncio.Task | None = None

    async def stop(self) -> None:
        await self.service.stop()
        if self.web is not None and self.web_task is not None:
            self.web.should_exit = True
            await asyncio.wait_for(self.web_task, 10)


async def start_polling_bot(app: App, fake: FakeBotApi, **overrides: Any) -> RunningBot:
    channel = TelegramChannel(FlowEngine(app, build_router()), options_for(fake, **overrides))
    service = TelegramService(channel, "polling")
    await service.start()
    return RunningBot(channel, service)


async def start_webhook_bot(app: App, fake: FakeBotApi, **overrides: Any) -> RunningBot:
    """Our Starlette app served by uvicorn on a free port, the webhook registered at the fake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    values: dict[str, Any] = dict(
        webhook_url=f"http://127.0.0.1:{port}/telegram/webhook", webhook_secret=WEBHOOK_SECRET
    )
    values.update(overrides)
    channel = TelegramChannel(FlowEngine(app, build_router()), options_for(fake, **values))
    service = TelegramService(channel, "webhook")
    web = uvicorn.Server(
        uvicorn.Config(create_web_app(app, channel.routes()), log_level="warning", lifespan="off", access_log=False)
    )
    web.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(web.serve(sockets=[sock]))
    while not web.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    await service.start()
    return RunningBot(channel, service, web, task)


@dataclass
class TgTurn:
    messages: list[Sent]

    @property
    def text(self) -> str:
        return "\n\n".join(m.text or "" for m in self.messages if m.text)

    @property
    def texts(self) -> list[str]:
        return [m.text or "" for m in self.messages]

    @property
    def labels(self) -> list[str]:
        for message in reversed(self.messages):
            if message.keyboard:
                return message.labels
        return []

    def __contains__(self, fragment: str) -> bool:
        return fragment in self.text

    def __repr__(self) -> str:
        return f"TgTurn({self.text!r}, labels={self.labels!r})"


class TgPerson:
    """A person on Telegram. `webhook=True` delivers through the webhook instead of getUpdates."""

    def __init__(self, fake: FakeBotApi, channel: TelegramChannel, user: FakeUser, webhook: bool = False) -> None:
        self.fake = fake
        self.channel = channel
        self.user = user
        self.webhook = webhook
        self.last_update: dict[str, Any] | None = None

    async def deliver(self, make_update: Callable[[], dict[str, Any]], timeout: float = 15) -> TgTurn:
        before = len(self.fake.sent_to(self.user))
        target = self.channel.handled + 1
        update = make_update()
        self.last_update = update
        if self.webhook:
            response = await self.fake.post_webhook(update)
            assert response.status_code == 200, (response.status_code, response.text)
        await self.channel.wait_handled(target, timeout)
        return TgTurn(self.fake.sent_to(self.user)[before:])

    async def says(self, text: str) -> TgTurn:
        return await self.deliver(lambda: self.fake.send_text(self.user, text))

    async def taps(self, label: str, message: Sent | None = None) -> TgTurn:
        return await self.deliver(lambda: self.fake.press(self.user, label, message))

    async def sends_photo(self, data: bytes, caption: str | None = None) -> TgTurn:
        return await self.deliver(lambda: self.fake.send_photo(self.user, data, caption))

    async def sends_document(
        self, data: bytes, name: str, mime: str | None, declared_size: int | None = None
    ) -> TgTurn:
        return await self.deliver(lambda: self.fake.send_document(self.user, data, name, mime, declared_size))

    async def sends_again(self, update: dict[str, Any]) -> TgTurn:
        """The same update delivered a second time."""
        if self.webhook:
            return await self.deliver(lambda: update)
        return await self.deliver(lambda: self.fake.redeliver(update))
