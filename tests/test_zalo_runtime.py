"""How `hoctap run` wires the Zalo channels for each role and setting, and that polling survives
platform errors."""

from __future__ import annotations

import pytest

from bot.runner import build_runtime
from bot.zalo.errors import ZaloConfigError
from tests.conftest import make_app
from tests.fakes.zalo_bot import Failure
from tests.support.zalo import fake_bot, fake_oa, running_bot, wait_until, zalo_settings  # noqa: F401


async def test_roles_decide_what_runs(fake_bot, fake_oa, suite_db, tmp_path, clock):
    _access, refresh = fake_oa.issue_pair()
    settings = zalo_settings(bot=fake_bot, oa=fake_oa, refresh_token=refresh)
    app = await make_app(suite_db, tmp_path, clock, public_base_url="https://hoctap.example.vn", **settings)
    try:
        runtime, any_channel = await build_runtime(app, "scheduler")
        assert any_channel and runtime.senders.channels() == ["zalo_bot", "zalo_oa"]
        assert runtime.routes == []  # no webhooks and no poller in the scheduler process
        assert sorted(s.name for s in runtime.services) == [
            "elected: reminder-scheduler + outbox-dispatcher",
            "zalo-bot-shutdown",
            "zalo-oa-shutdown",
            "zalo-oa-tokens",
        ]
        for service in reversed(runtime.services):
            await service.stop()

        runtime, _ = await build_runtime(app, "web")
        assert sorted(r.path for r in runtime.routes) == ["/zalo/bot/webhook", "/zalo/oa/webhook"]
        assert "zalo-bot-webhook" in [s.name for s in runtime.services]
        for service in reversed(runtime.services):
            await service.stop()
    finally:
        await app.close()

    app = await make_app(suite_db, tmp_path, clock, commune=False, **settings)  # no PUBLIC_BASE_URL
    try:
        runtime, _ = await build_runtime(app, "all")
        assert "zalo-bot-poller" in [s.name for s in runtime.services]
        assert [r.path for r in runtime.routes] == ["/zalo/oa/webhook"]
        for service in reversed(runtime.services):
            await service.stop()
    finally:
        await app.close()


async def test_incomplete_oa_settings_are_named(fake_oa, suite_db, tmp_path, clock):
    app = await make_app(
        suite_db,
        tmp_path,
        clock,
        commune=False,
        zalo_oa_app_id="123",
        zalo_oa_refresh_token="rt",
        token_encryption_key=None,
    )
    try:
        with pytest.raises(ZaloConfigError) as error:
            await build_runtime(app, "all")
        for name in ("ZALO_OA_SECRET_KEY", "ZALO_OA_APP_SECRET", "TOKEN_ENCRYPTION_KEY"):
            assert name in str(error.value)
    finally:
        await app.close()


async def test_polling_goes_on_after_platform_errors(fake_bot, suite_db, tmp_path, clock):
    fake_bot.fail(
        "getUpdates", Failure(502), Failure(200, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    )
    async with running_bot(suite_db, tmp_path, clock, webhook=False, **zalo_settings(bot=fake_bot)) as stack:
        fake_bot.push(fake_bot.text_update("zalo-tam", "xin chào"))
        await wait_until(lambda: stack.bot_channel.received == 1, timeout=15)
        await stack.bot_channel.queue.drain()
    assert fake_bot.count("getUpdates") >= 3
    assert fake_bot.texts_to("zalo-tam")[0].startswith("Chào bạn!")


async def test_a_webhook_secret_is_never_derived_from_the_placeholder(fake_bot, suite_db, tmp_path, clock):
    """HMAC(placeholder, "zalo-bot-webhook") is public knowledge: with it anyone could post
    forged updates in any resident's name. Polling needs no secret and still works."""
    from bot.config import ConfigError

    settings = dict(zalo_settings(bot=fake_bot), zalo_bot_webhook_secret=None, signing_secret="change-me-in-production")
    app = await make_app(suite_db, tmp_path, clock, public_base_url="https://hoctap.example.vn", **settings)
    try:
        with pytest.raises(ConfigError, match="ZALO_BOT_WEBHOOK_SECRET"):
            await build_runtime(app, "web")
        assert fake_bot.webhook_url == ""  # nothing was registered
    finally:
        await app.close()

    # Polling (no PUBLIC_BASE_URL, nothing served): no secret is needed, none is made.
    app = await make_app(suite_db, tmp_path / "polling", clock, **settings)
    try:
        runtime, _ = await build_runtime(app, "all")
        channel = app.extras["zalo_bot_channel"]
        assert runtime.routes == [] and channel.secret is None
        for service in runtime.services:
            await service.start()
        try:
            fake_bot.push(fake_bot.text_update("zalo-tam", "xin chào"))
            await wait_until(lambda: channel.received == 1, timeout=15)
            await channel.queue.drain()
        finally:
            for service in reversed(runtime.services):
                await service.stop()
    finally:
        await app.close()
    assert fake_bot.texts_to("zalo-tam")[0].startswith("Chào bạn!")
