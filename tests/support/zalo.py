"""Zalo test rigs: the fake servers as fixtures, and the bot itself (app, channels, web app)
running against them over real HTTP on 127.0.0.1. Import the fixtures into a test module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.runner import Runtime, build_runtime
from bot.web.app import create_web_app
from tests.conftest import make_app
from tests.fakes.image_host import FakeImageHost
from tests.fakes.server import bound_socket, serve, url_of
from tests.fakes.zalo_bot import FakeZaloBotPlatform
from tests.fakes.zalo_oa import FakeZaloOA
from tests.fakes.zalo_zns import FakeZNS

BOT_WEBHOOK_SECRET = "webhook-secret-123"
FAKE_MEDIA_HOST = "127.0.0.1"


@pytest.fixture
async def fake_bot() -> AsyncIterator[FakeZaloBotPlatform]:
    fake = FakeZaloBotPlatform()
    async with serve(fake.app) as url:
        fake.base_url = url  # type: ignore[attr-defined]
        yield fake
    await fake.aclose()


@pytest.fixture
async def fake_oa(clock) -> AsyncIterator[FakeZaloOA]:
    """The OA signs events with the time on the test's clock (the bot refuses stale ones)."""
    fake = FakeZaloOA(now=lambda: clock.now().timestamp())
    async with serve(fake.app) as url:
        fake.base_url = url  # type: ignore[attr-defined]
        yield fake
    await fake.aclose()


@pytest.fixture
async def fake_zns(fake_oa, clock) -> AsyncIterator[FakeZNS]:
    """ZNS with the fake OA's tokens and the test's clock; by user id through the OA's host."""
    fake = FakeZNS(tokens=lambda: set(fake_oa.access_tokens), now=lambda: clock.now().timestamp())
    fake_oa.zns = fake  # type: ignore[attr-defined]
    async with serve(fake.app) as url:
        fake.base_url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
async def image_host() -> AsyncIterator[FakeImageHost]:
    host = FakeImageHost()
    async with serve(host.app) as url:
        host.base_url = url
        yield host


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.005)


@dataclass
class Stack:
    app: App
    runtime: Runtime
    public_url: str  # where the web app listens (http on 127.0.0.1)
    https_url: str = ""  # PUBLIC_BASE_URL: the same behind a TLS proxy (see fakes.server.via_local_tls)

    @property
    def bot_channel(self):
        return self.app.extras["zalo_bot_channel"]

    @property
    def oa_channel(self):
        return self.app.extras["zalo_oa_channel"]

    async def webhook_confirmed(self, timeout: float = 10.0) -> None:
        """Wait until Zalo (the fake) has verified and accepted the Bot Platform webhook."""
        (setup,) = [s for s in self.runtime.services if s.name == "zalo-bot-webhook"]
        await asyncio.wait_for(setup.confirmed.wait(), timeout)


def zalo_settings(
    *, bot: FakeZaloBotPlatform | None = None, oa: FakeZaloOA | None = None, refresh_token: str | None = None
) -> dict[str, Any]:
    # The fake image host runs on 127.0.0.1: allowed as that one address (it is not a public one).
    settings: dict[str, Any] = dict(
        zalo_http_backoff=0.01, zalo_http_timeout=5.0, zalo_bot_chat_interval=0, zalo_media_hosts=FAKE_MEDIA_HOST
    )
    if bot is not None:
        settings.update(
            zalo_bot_token=bot.token,
            zalo_bot_api_base_url=bot.base_url,  # type: ignore[attr-defined]
            zalo_bot_webhook_secret=BOT_WEBHOOK_SECRET,
            zalo_bot_poll_timeout=1,
        )
    if oa is not None:
        settings.update(
            zalo_oa_app_id=oa.app_id,
            zalo_oa_secret_key=oa.oa_secret_key,
            zalo_oa_app_secret=oa.app_secret,
            zalo_oa_refresh_token=refresh_token,
            zalo_oa_api_base_url=oa.base_url,  # type: ignore[attr-defined]
            zalo_oa_oauth_base_url=oa.base_url,  # type: ignore[attr-defined]
        )
    return settings


@asynccontextmanager
async def running_bot(
    database_url: str, tmp_path: Path, clock, *, webhook: bool = True, role: str = "all", **settings: Any
) -> AsyncIterator[Stack]:
    """The bot as `hoctap run` builds it: installers, services and the shared web app."""
    sock = bound_socket()
    public = url_of(sock)
    https = "https://" + public[len("http://") :]
    app = await make_app(database_url, tmp_path, clock, public_base_url=https if webhook else None, **settings)
    try:
        runtime, _any = await build_runtime(app, role)
        web = create_web_app(app, runtime.routes)
        async with serve(web, sock):
            runtime.listening.set()
            started = []
            try:
                for service in runtime.services:
                    await service.start()
                    started.append(service)
                yield Stack(app, runtime, public, https)
            finally:
                for service in reversed(started):
                    await service.stop()
    finally:
        await app.close()


async def rest_without_photos_and_submit(
    person: Any,
    items: int,
    number: str,
    *,
    choose: Callable[[str], Awaitable[str]] | None = None,
    confirm: str = "nộp ngay",
) -> None:
    """From the next item's level question: `items` items achieved ("1") with no photo, landing on a
    100-point summary, then application `number` submitted (the choices typed, or pressed through
    `choose`) and confirmed."""
    choose = choose or person.says
    for _ in range(items):
        await person.says("1")
        text = await person.says("khong co anh")
    assert "Tổng 100/100 điểm." in text
    text = await choose("Nộp hồ sơ")
    assert text.startswith(f"Nộp hồ sơ {number} (100 điểm)?")  # asked first
    text = await choose(confirm)
    assert text.startswith(f"Đã nộp hồ sơ {number} (100 điểm).")


async def registers_hoa_up_to_the_first_photo(person: Any) -> None:
    """From the name question of "Công dân học tập": Nguyễn Thị Hoa, born 1975, of branch 2,
    confirmed (CD-2026-000001); the declaration started and item 1 answered "Đạt", its photo next."""
    await person.says("Nguyễn Thị Hoa")
    await person.says("1975")
    await person.says("2")
    text = await person.says("1")  # Xác nhận
    assert "CD-2026-000001" in text
    text = await person.says("1")  # Bắt đầu
    assert text.startswith("Mục 1/10 (tối đa 10 điểm)")
    await person.says("Đạt")
