"""The Zalo Bot Platform client against the fake platform over real HTTP."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.zalo.bot_api import ZaloBotClient, parse_updates
from bot.zalo.errors import (
    RecipientUnavailable,
    ZaloAPIError,
    ZaloAuthError,
    ZaloInternalError,
    ZaloNetworkError,
    ZaloRateLimited,
    ZaloServerError,
)
from bot.zalo.transport import RetryPolicy, split_text
from tests.fakes.server import serve
from tests.fakes.zalo_bot import Failure, internal_error, quota_exceeded
from tests.support.zalo import fake_bot, image_host  # noqa: F401  (fixtures)

FAST = RetryPolicy(attempts=3, backoff=0.01)


def client_for(fake, **kwargs) -> ZaloBotClient:
    return ZaloBotClient(fake.token, fake.base_url, retry=kwargs.pop("retry", FAST), **kwargs)


async def test_get_me_webhook_methods_and_chat_action(fake_bot):
    client = client_for(fake_bot)
    try:
        me = await client.get_me()
        assert me.id == "1459232241454765289" and me.account_name == "bot.HocTap" and me.can_join_groups is False
        # Zalo calls the address to verify it: nobody answers there, so it is not set.
        info = await client.set_webhook("https://127.0.0.1:9/zalo/bot/webhook", "s" * 8)
        assert info.url == "https://127.0.0.1:9/zalo/bot/webhook" and info.updated_at is not None
        assert info.verification == "failed" and not info.verified and fake_bot.webhook_url == ""

        async def hook(request):
            return JSONResponse({"ok": True})

        async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as listener:
            url = "https://" + listener[len("http://") :] + "/hook"
            info = await client.set_webhook(url, "s" * 8)
            assert info.verification == "success" and info.verified
        assert (await client.get_webhook_info()).url == url
        assert fake_bot.webhook_secret == "s" * 8
        assert (await client.delete_webhook()).url == ""
        assert fake_bot.webhook_url == ""
        await client.send_chat_action("u1", "typing")
        for bad in ("short", "x" * 257):
            with pytest.raises(ValueError):
                await client.set_webhook("https://bot.example.vn/hook", bad)
        with pytest.raises(ValueError, match="https"):  # Zalo takes https addresses only
            await client.set_webhook("http://bot.example.vn/hook", "s" * 8)
    finally:
        await client.aclose()


async def test_get_updates_long_poll_and_idle_408(fake_bot):
    client = client_for(fake_bot)
    try:
        assert await client.get_updates(timeout=1) == []  # idle: the platform answers 408
        fake_bot.push(fake_bot.text_update("u7", "Xin chào", message_id="m-1"))
        (update,) = await client.get_updates(timeout=1)
        assert update.event_name == "message.text.received"
        assert (update.message.message_id, update.message.sender.id, update.message.text) == ("m-1", "u7", "Xin chào")
        assert update.message.chat.chat_type == "PRIVATE" and update.message.date is not None
    finally:
        await client.aclose()


def test_updates_are_read_wrapped_or_not_and_photo_from_either_field():
    raw = {
        "event_name": "message.image.received",
        "message": {
            "message_id": "1",
            "from": {"id": "a"},
            "chat": {"id": "a", "chat_type": "PRIVATE"},
            "photo_url": "https://x/1.jpg",
        },
    }
    wrapped = {"ok": True, "result": raw}
    for payload in (raw, wrapped, [raw], {"ok": True, "result": [raw]}):
        (update,) = parse_updates(payload)
        assert update.message.photo_url == "https://x/1.jpg"
    raw["message"]["photo"] = raw["message"].pop("photo_url")
    assert parse_updates(raw)[0].message.photo_url == "https://x/1.jpg"
    assert parse_updates({"ok": True, "result": {}}) == []
    assert parse_updates("garbage") == []


def test_updates_with_fields_of_the_wrong_type_are_read_or_skipped_never_raise():
    # Seen by the fuzz tests: these made the webhook answer 500, which Zalo retries for ever.
    assert parse_updates({"message": {"message_id": "1", "from": [1], "chat": 7, "text": "hi"}}) == []
    (update,) = parse_updates({"message": {"from": {"id": "a"}, "chat": "x", "date": 10**30, "text": "hi"}})
    assert (update.message.chat.id, update.message.date, update.message.text) == ("a", None, "hi")


async def test_long_texts_are_split_at_2000_characters(fake_bot):
    client = client_for(fake_bot)
    paragraph = "Chỉ số " + ("rất dài " * 60).strip()  # ≈ 490 characters
    text = "\n\n".join(f"{i}. {paragraph}" for i in range(9))
    try:
        sent = await client.send_message("u1", text)
    finally:
        await client.aclose()
    texts = fake_bot.texts_to("u1")
    assert len(sent) == len(texts) >= 3
    assert all(1 <= len(t) <= 2000 for t in texts)
    assert "\n\n".join(texts) == text  # cut at paragraph boundaries: nothing lost


def test_split_text_edges():
    assert split_text("ngắn") == ["ngắn"]
    assert split_text("") == [""]
    assert split_text("a" * 4500) == ["a" * 2000, "a" * 2000, "a" * 500]
    words = ("xin chào " * 400).strip()
    pieces = split_text(words)
    assert all(len(p) <= 2000 for p in pieces) and " ".join(pieces) == words


async def test_send_photo_by_url_with_caption(fake_bot, image_host):
    from tests.support.images import jpeg

    url = image_host.add("p1", jpeg())
    client = client_for(fake_bot)
    try:
        await client.send_photo("u1", url, caption="Ảnh minh chứng mục 1")
    finally:
        await client.aclose()
    (sent,) = fake_bot.sent
    assert (sent.method, sent.photo, sent.caption, sent.photo_bytes) == (
        "sendPhoto",
        url,
        "Ảnh minh chứng mục 1",
        jpeg(),
    )


async def test_error_envelopes_map_to_exceptions(fake_bot):
    client = client_for(fake_bot)
    try:
        # 429 is "Quota exceeded" with no retry_after: a long pause, not a second.
        fake_bot.fail("sendMessage", quota_exceeded())
        with pytest.raises(ZaloRateLimited) as limited:
            await client.send_message("u1", "x")
        assert limited.value.retry_after >= 300
        # 403 is Zalo's "Internal server error": nothing to do with the person.
        fake_bot.fail("sendMessage", internal_error())
        with pytest.raises(ZaloInternalError) as internal:
            await client.send_message("u1", "x")
        assert not isinstance(internal.value, RecipientUnavailable)
        fake_bot.fail(
            "sendMessage", Failure(400, {"ok": False, "error_code": 400, "description": "Bad Request: text is empty"})
        )
        with pytest.raises(ZaloAPIError) as bad:
            await client.send_message("u1", "x")
        assert (bad.value.code, bad.value.description) == (400, "Bad Request: text is empty")
        assert fake_bot.count("sendMessage") == 3  # none of these is retried
    finally:
        await client.aclose()
    wrong = ZaloBotClient("999:wrong", fake_bot.base_url, retry=FAST)
    try:
        with pytest.raises(ZaloAuthError):
            await wrong.get_me()
    finally:
        await wrong.aclose()


async def test_retries_on_5xx_and_timeouts_only(fake_bot):
    client = client_for(fake_bot, timeout=0.3)
    try:
        fake_bot.fail("sendMessage", Failure(502), Failure(503))
        await client.send_message("u1", "sau hai lần lỗi")
        assert fake_bot.count("sendMessage") == 3 and fake_bot.texts_to("u1") == ["sau hai lần lỗi"]

        fake_bot.fail("getMe", Failure(200, hang=1.0))  # answers after the client gave up
        assert (await client.get_me()).id
        assert fake_bot.count("getMe") == 2

        fake_bot.fail("sendMessage", Failure(500), Failure(500), Failure(500))
        with pytest.raises(ZaloServerError) as server:
            await client.send_message("u1", "x")
        assert server.value.status == 500
        assert fake_bot.count("sendMessage") == 6

        fake_bot.fail("getWebhookInfo", *[Failure(200, hang=1.0)] * 3)
        with pytest.raises(ZaloNetworkError):
            await client.get_webhook_info()
        assert fake_bot.count("getWebhookInfo") == 3
    finally:
        await client.aclose()
