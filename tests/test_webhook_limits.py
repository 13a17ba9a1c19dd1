"""Webhook bodies are read with a cap before anything parses or verifies them: a large declared
Content-Length is refused without reading, a chunked body as soon as it passes 1 MiB. Checked on
all three webhooks (Telegram, Zalo Bot, Zalo OA) over real HTTP, with a client that never
finishes its body: a server that waited for the whole body would never answer it."""

from __future__ import annotations

import httpx

from tests.support.rawhttp import post_unfinished
from tests.support.telegram import WEBHOOK_SECRET, fake, start_webhook_bot  # noqa: F401  (fake: a fixture)
from tests.support.zalo import BOT_WEBHOOK_SECRET, fake_bot, fake_oa, running_bot, zalo_settings  # noqa: F401

MiB = 1024 * 1024


async def test_every_webhook_refuses_a_large_body_before_reading_it(fake, fake_bot, fake_oa, suite_db, tmp_path, clock):
    _access, refresh = fake_oa.issue_pair()
    settings = zalo_settings(bot=fake_bot, oa=fake_oa, refresh_token=refresh)
    async with running_bot(suite_db, tmp_path, clock, **settings) as stack:
        telegram = await start_webhook_bot(stack.app, fake)
        try:
            hooks = {
                "telegram": (fake.webhook["url"], {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}),
                "zalo bot": (stack.public_url + "/zalo/bot/webhook", {"X-Bot-Api-Secret-Token": BOT_WEBHOOK_SECRET}),
                "zalo oa": (stack.public_url + "/zalo/oa/webhook", {}),  # unauthenticated: no signature at all
            }
            for name, (url, headers) in hooks.items():
                # The OA answers 200 and drops it: Zalo turns off a webhook that keeps failing.
                refused = 200 if name == "zalo oa" else 413
                # 400 MiB announced, 1 KiB sent: refused at once, nothing more is awaited.
                declared = await post_unfinished(url, headers, declared_length=400 * MiB, send=1024)
                assert declared == refused, name
                # No length announced: refused once past 1 MiB, though the body never ends.
                streamed = await post_unfinished(url, headers, declared_length=None, send=3 * MiB)
                assert streamed == refused, name
                # A body just under the cap is still read whole (and then judged on its content).
                async with httpx.AsyncClient() as client:
                    normal = await client.post(url, content=b"[1]" + b" " * (MiB - 8), headers=headers)
                assert normal.status_code != 413 and normal.status_code < 500, (name, normal.status_code)
            assert stack.oa_channel.received == 0 and stack.bot_channel.received == 0
            async with httpx.AsyncClient() as client:
                assert (await client.get(stack.public_url + "/healthz")).text == "ok"
        finally:
            await telegram.stop()
