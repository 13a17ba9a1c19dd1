"""No secrets in logs: bot tokens (in every Bot API URL), signed /files/… links (24-hour bearer
links, in the access log) and configured secrets, whatever channels run."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.web.signing import sign
from tests.conftest import TEST_SIGNING_SECRET
from tests.support.images import jpeg
from tests.support.processes import bot_env, free_port, start_module
from tests.support.zalo import BOT_WEBHOOK_SECRET, fake_bot  # noqa: F401  (fixture)

BOT_SECRET_PART = "fake-secret-token"  # the secret half of the fake's token "<bot id>:<secret>"


@pytest.mark.slow  # real `hoctap` subprocesses
async def test_hoctap_run_logs_neither_the_bot_token_nor_file_links(fake_bot, tmp_path):
    """A web worker for the Zalo Bot only (no Telegram): the token is in the URL of setWebhook
    and every other Bot API call, and a reviewer's photo link is fetched through /files/…"""
    port = free_port()
    evidence = tmp_path / "evidence"
    (evidence / "ab").mkdir(parents=True)
    (evidence / "ab" / "photo.jpg").write_bytes(jpeg())
    env = bot_env(
        tmp_path,
        PUBLIC_BASE_URL=f"https://127.0.0.1:{port}",  # the fake reaches it as http (tests.fakes.server)
        WEB_PORT=str(port),
        SIGNING_SECRET=TEST_SIGNING_SECRET,
        ZALO_BOT_TOKEN=fake_bot.token,
        ZALO_BOT_API_BASE_URL=fake_bot.base_url,
        ZALO_BOT_WEBHOOK_SECRET=BOT_WEBHOOK_SECRET,
    )
    process = await start_module("bot", "run", "--role", "web", cwd=tmp_path, env=env, stderr=asyncio.subprocess.STDOUT)
    token = sign(TEST_SIGNING_SECRET, "evidence", "ab/photo.jpg", datetime.now(UTC), timedelta(hours=1))
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(600):
                try:
                    served = await client.get(f"http://127.0.0.1:{port}/files/{token}")
                    break
                except httpx.TransportError:
                    assert process.returncode is None, "the worker stopped"
                    await asyncio.sleep(0.1)
        assert served.status_code == 200 and served.content == jpeg()
        for _ in range(200):  # set once the server listens, verified by the platform
            if fake_bot.webhook_url:
                break
            await asyncio.sleep(0.05)
        assert fake_bot.webhook_url == f"https://127.0.0.1:{port}/zalo/bot/webhook"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    log = output.decode()
    assert "Zalo Bot webhook set to" in log  # the log is there…
    assert '"GET /files/[redacted] HTTP/1.1" 200' in log  # …with the access log…
    assert BOT_SECRET_PART not in log and token not in log  # …but no token of either kind
    assert token.split(".")[1] not in log  # not even the signature half


def test_every_log_record_is_redacted(caplog):
    """The second line of defence, for whatever a library or an exception puts in a message."""
    from bot.config import load_settings
    from bot.logs import install_redaction

    settings = load_settings(zalo_oa_secret_key="oa-secret-key-for-webhooks", signing_secret=TEST_SIGNING_SECRET)
    install_redaction(settings)
    log = logging.getLogger("tests.logs")
    telegram_token = "123456789:AAH-telegram_SECRET-part"
    with caplog.at_level(logging.INFO):
        log.info("HTTP Request: %s %s", "POST", httpx.URL(f"https://api.telegram.org/bot{telegram_token}/getMe"))
        log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/files/eyJmIjoiZXZpZGVuY2UifQ.c2ln", "1.1", 200)
        log.warning("webhook secret %s, signing secret %s", "oa-secret-key-for-webhooks", TEST_SIGNING_SECRET)
        try:
            raise RuntimeError(f"could not reach https://bot-api.zaloplatforms.com/bot{telegram_token}/sendMessage")
        except RuntimeError:
            log.exception("send failed")
        log.info("ids and counts stay: person %d, update %s", 42, "2026-11-20 09:00:00")
    text = caplog.text
    for secret in (
        "AAH-telegram_SECRET-part",
        "eyJmIjoiZXZpZGVuY2UifQ",
        "oa-secret-key-for-webhooks",
        TEST_SIGNING_SECRET,
    ):
        assert secret not in text, secret
    assert "/bot[redacted]/getMe" in text and "/files/[redacted]" in text and '" 200' in text
    assert "RuntimeError: could not reach https://bot-api.zaloplatforms.com/bot[redacted]/sendMessage" in text
    assert "person 42, update 2026-11-20 09:00:00" in text
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
