"""Telegram end to end: the real python-telegram-bot Application against our fake Bot API server
over real HTTP on 127.0.0.1 (getUpdates long polling, or webhooks into our own Starlette app)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.channels.base import RateLimited, SendError, TransientSendError, Unreachable
from bot.channels.telegram import (
    ALLOWED_UPDATES,
    TelegramChannel,
    TelegramConfigError,
    TelegramSender,
    TelegramService,
    map_error,
)
from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.i18n import Translator
from bot.messages import Choice, Outgoing
from bot.storage.models import Answer, ChannelAccount, Conversation, Evidence, ProcessedMessage, Submission
from tests.conftest import TEST_SIGNING_SECRET
from tests.fakes.telegram_bot_api import FakeBotApi, FakeUser
from tests.support.images import jpeg, png
from tests.support.journeys import Tap, answer, answer_items, submit
from tests.support.processes import bot_env, free_port, start_module
from tests.support.scripts import register_citizen
from tests.support.telegram import (  # noqa: F401  (fake: a fixture)
    HOA,
    WEBHOOK_SECRET,
    TgPerson,
    fake,
    options_for,
    start_polling_bot,
    start_webhook_bot,
)

LEVELS = ["Đạt", "Đạt một phần", "Chưa đạt", "Bỏ qua", "Dừng, làm sau"]
# The whole consent question (its wording is checked in tests/test_flow_start.py).
CONSENT_QUESTION = Translator("vi")(
    "consent.ask",
    notice=Translator("vi")("consent.notice", controller="Hội Khuyến học xã Ea Tul, liên hệ: Văn phòng UBND xã Ea Tul"),
)


@pytest.fixture
async def polling(suite_app, fake):
    bot = await start_polling_bot(suite_app, fake)
    yield bot
    await bot.stop()


async def _account(app, user: FakeUser) -> ChannelAccount | None:
    async with app.sessions() as session:
        return await session.scalar(
            select(ChannelAccount).where(
                ChannelAccount.channel == "telegram", ChannelAccount.external_id == str(user.id)
            )
        )


async def test_full_citizen_declaration_with_photos_over_long_polling(app, fake):
    bot = await start_polling_bot(app, fake)
    try:
        hoa = TgPerson(fake, bot.channel, HOA)
        turn = await hoa.says("xin chào")
        # The first message says an automated assistant answers, then the whole consent text.
        assert turn.texts[0].startswith("Chào bạn! Mình là trợ lý tự động (chatbot), tin nhắn do máy trả lời.")
        assert turn.texts[-1].endswith(CONSENT_QUESTION)
        assert turn.labels == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]
        consent = turn.messages[-1]
        assert consent.keyboard == [
            [
                {"text": "Tôi đồng ý", "callback_data": "1:agree"},
                {"text": "Không đồng ý", "callback_data": "1:decline"},
            ],
            [{"text": "Xem chi tiết", "callback_data": "1:details"}],
        ]
        turn = await hoa.taps("Tôi đồng ý")
        # The remark and the next question arrive as one message, the buttons under it.
        assert turn.texts == [
            "Cảm ơn bạn đã đồng ý.\n\nBạn muốn đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
        ]
        # The press was answered (no endless spinner) and the used keyboard taken away.
        assert (
            fake.calls_to("answerCallbackQuery")[-1].params["callback_query_id"]
            == hoa.last_update["callback_query"]["id"]
        )
        assert fake.find_sent(HOA.id, consent.message_id).keyboard == []

        await hoa.taps("Công dân học tập")
        turn = await hoa.says("Nguyễn Thị Hoa")
        assert turn.text == "Năm sinh của bạn? (ví dụ: 1975)"
        turn = await answer(hoa, "1975", "Thôn Hà Lương", Tap("Xác nhận"))
        assert "Đã đăng ký Công dân học tập" in turn
        turn = await hoa.taps("Bắt đầu")
        assert turn.text.startswith("Mục 1/10 (tối đa 10 điểm)")
        assert turn.labels == LEVELS

        await hoa.taps("Đạt")
        full_size = jpeg((200, 10, 10), size=(640, 480))
        turn = await hoa.sends_photo(full_size, caption="tủ sách nhà mình")
        assert turn.text == "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."
        # "Send as file": the original image arrives as a document and counts as a photo.
        turn = await hoa.sends_document(png(), "tu-sach.png", "image/png")
        assert turn.text == "Đã nhận ảnh 2. Gửi thêm (tối đa 3) hoặc bấm Xong."
        turn = await hoa.taps("Xong")
        assert turn.text.startswith("Mục 2/10")
        await answer_items(hoa, 8)  # items 2–9
        await hoa.says("dat mot phan")  # item 10, typed without diacritics
        turn = await hoa.taps("Không có ảnh")
        assert turn.text == (
            "Hồ sơ CD-2026-000001 — Công dân học tập\n"
            "Tổng 95/100 điểm.\n"
            "Đủ điều kiện đề nghị công nhận (từ 80 điểm, không mục nào dưới 5).\n"
            "Chưa có ảnh minh chứng cho mục 2, 3, 4, 5, 6, 7, 9, 10. Bạn vẫn nộp được, nhưng chi hội có thể hỏi thêm; "
            "nên gửi ảnh trước khi nộp.\n"
            "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
        )
        turn = await submit(hoa)
        assert turn.text.startswith("Đã nộp hồ sơ CD-2026-000001 (95 điểm).")
    finally:
        await bot.stop()

    async with app.sessions() as session:
        submission = await session.scalar(select(Submission))
        answers = {a.item_id: a.points for a in await session.scalars(select(Answer))}
        evidence = list(await session.scalars(select(Evidence).order_by(Evidence.id)))
        account = await session.scalar(select(ChannelAccount))
        unreplied = await session.scalar(
            select(func.count()).select_from(ProcessedMessage).where(ProcessedMessage.replied_at.is_(None))
        )
    assert (submission.state, submission.score, submission.recognisable) == ("submitted", 95, True)
    assert answers == {"1": 10, "2": 10, "3": 10, "4": 10, "5": 10, "6": 10, "7": 10, "8": 10, "9": 10, "10": 5}
    assert (account.channel, account.external_id, account.chat_id) == ("telegram", "1001", "1001")
    # The largest of Telegram's photo sizes was downloaded, not a thumbnail; what is stored is its
    # clean re-encoding (an opaque PNG becomes a JPEG too).
    stored = [(Path(app.settings.evidence_dir) / row.path).read_bytes() for row in evidence]
    assert stored == [app.evidence.prepare(full_size).data, app.evidence.prepare(png()).data]
    assert [(row.item_id, row.mime, row.width, row.height, row.source_channel) for row in evidence] == [
        ("1", "image/jpeg", 640, 480, "telegram"),
        ("1", "image/jpeg", 32, 32, "telegram"),
    ]
    assert evidence[0].source_message_id.startswith("m:1001:")
    assert unreplied == 0  # every reply went out
    # Long polling asked only for what the bot handles.
    assert all(c.params["allowed_updates"] == ALLOWED_UPDATES for c in fake.calls_to("getUpdates"))


async def test_command_menu_in_vietnamese_and_english(polling, fake):
    vi = [(c["command"], c["description"]) for c in fake.commands[""]]
    en = [(c["command"], c["description"]) for c in fake.commands["en"]]
    assert vi[:2] == [("start", "bắt đầu"), ("huongdan", "hướng dẫn")]
    assert ("dangky", "đăng ký danh hiệu") in vi and ("tudanhgia", "tự đánh giá") in vi
    assert ("register", "register for a title") in en and ("declare", "self-assess") in en
    assert [name for name, _ in en] == [
        "start",
        "help",
        "menu",
        "cancel",
        "privacy",
        "lang",
        "register",
        "answer",
        "declare",
        "status",
        "code",
        "mydata",
        "deletedata",
        "withdraw",
    ]


async def test_commands_with_bot_name_and_english_aliases(polling, fake):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("/start@hoctap_test_bot")
    await hoa.taps("Tôi đồng ý")
    turn = await hoa.says("/help")
    assert "/dangky — đăng ký danh hiệu" in turn


async def test_other_kinds_of_message_get_a_clear_answer(polling, fake):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    turn = await hoa.deliver(lambda: fake.send_sticker(HOA))
    assert turn.texts == ["Cảm ơn bạn! Bot chỉ đọc được chữ, nút bấm và ảnh.\n\n" + CONSENT_QUESTION]
    assert turn.labels == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]  # and the question again
    turn = await hoa.deliver(lambda: fake.send_voice(HOA))
    assert turn.texts == ["Bot chưa nghe được tin nhắn thoại. Bạn bấm nút hoặc gõ chữ nhé.\n\n" + CONSENT_QUESTION]
    turn = await hoa.sends_document(b"%PDF-1.4 not an image", "giay-khen.pdf", "application/pdf")
    assert turn.texts[0].startswith("Bot chỉ nhận ảnh (JPG, PNG).")
    turn = await hoa.deliver(lambda: fake.send_location(HOA))
    assert turn.texts == [
        "Bot chưa đọc được loại tin nhắn này. Bạn bấm nút, gõ chữ hoặc gửi ảnh nhé.\n\n" + CONSENT_QUESTION
    ]
    assert not fake.calls_to("getFile")  # nothing was downloaded for any of them


async def test_a_too_large_image_is_refused_before_downloading(polling, fake):
    hoa = TgPerson(fake, polling.channel, HOA)
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    turn = await hoa.sends_document(png(), "scan.png", "image/png", declared_size=12 * 1024 * 1024)
    assert turn.texts == [
        'Ảnh lớn quá (trên 10 MB). Bạn gửi ảnh nhỏ hơn nhé.\n\nGửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".'
    ]
    assert not fake.calls_to("getFile")


async def test_stale_button_on_an_old_message(polling, fake):
    hoa = TgPerson(fake, polling.channel, HOA)
    turn = await hoa.says("xin chào")
    old = turn.messages[-1]
    await hoa.says("1")  # answered by typing: the old keyboard stays on screen
    turn = await hoa.taps("Xem chi tiết", message=old)
    assert turn.texts == [
        "Nút đó thuộc tin nhắn cũ. Câu hỏi hiện tại là:\n\nBạn muốn đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
    ]
    assert turn.labels == ["Công dân học tập", "Gia đình học tập"]
    assert fake.find_sent(HOA.id, old.message_id).keyboard == []  # and now it is gone


async def test_a_duplicate_update_is_processed_once(polling, fake, suite_app):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    await hoa.taps("Tôi đồng ý")
    await hoa.taps("Công dân học tập")
    press_update = hoa.last_update
    turn = await hoa.says("Nguyễn Thị Hoa")
    assert turn.text == "Năm sinh của bạn? (ví dụ: 1975)"
    name_update = hoa.last_update
    turn = await hoa.sends_again(name_update)
    assert turn.messages == []  # handled, silently
    turn = await hoa.sends_again(press_update)  # a duplicated button press
    assert turn.messages == []
    turn = await hoa.says("1975")
    assert turn.text == "Bạn ở thôn/buôn/khu phố nào?"
    async with suite_app.sessions() as session:
        keys = list(await session.scalars(select(ProcessedMessage.message_id)))
    assert len(keys) == len(set(keys))
    assert f"m:1001:{name_update['message']['message_id']}" in keys


async def test_rate_limit_429_is_waited_out_then_sent(polling, fake):
    hoa = TgPerson(fake, polling.channel, HOA)
    fake.fail("sendMessage", status=429, retry_after=1)
    turn = await hoa.says("xin chào")
    assert turn.texts[0].startswith("Chào bạn!")
    sends = fake.calls_to("sendMessage")
    assert len(sends) == 2  # the refused one, then the reply
    assert sends[0].params["text"] == sends[1].params["text"]
    assert sends[1].at - sends[0].at >= 1.0  # Telegram's retry_after was honoured


async def test_network_trouble_is_retried_with_backoff(suite_app, fake):
    bot = await start_polling_bot(suite_app, fake, read_timeout=0.5)
    try:
        hoa = TgPerson(fake, bot.channel, HOA)
        fake.fail("sendMessage", status=502)
        fake.fail("sendMessage", status=500)
        fake.fail("sendMessage", status=504, delay=2)  # answers late: the client times out first
        turn = await hoa.says("xin chào")
        assert [m.text for m in turn.messages][0].startswith("Chào bạn!")
        assert len(turn.messages) == 1
        assert len(fake.calls_to("sendMessage")) == 4  # three failures, then the reply
    finally:
        await bot.stop()


async def test_a_person_who_blocked_the_bot_is_marked_unreachable(polling, fake, suite_app):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    fake.block(HOA)
    sender = TelegramSender(polling.channel)
    account = await _account(suite_app, HOA)
    calls_before = len(fake.calls_to("sendMessage"))
    with pytest.raises(Unreachable) as raised:
        await sender.send(account, [Outgoing("Nhắc hạn tự đánh giá")])
    assert raised.value.reason == "blocked"
    assert len(fake.calls_to("sendMessage")) == calls_before + 1  # refused once, not retried
    marked = await _account(suite_app, HOA)
    assert marked.unreachable_reason == "blocked" and marked.unreachable_at == suite_app.clock.now()

    # Writing again lifts the mark.
    fake.unblock(HOA)
    await hoa.says("1")
    assert (await _account(suite_app, HOA)).unreachable_at is None

    # Telegram's own notice of a block marks the account too, and an unblock lifts it.
    await hoa.deliver(lambda: fake.block(HOA, notify=True))
    assert (await _account(suite_app, HOA)).unreachable_reason == "blocked"
    await hoa.deliver(lambda: fake.unblock(HOA, notify=True))
    assert (await _account(suite_app, HOA)).unreachable_at is None


async def test_replies_to_a_person_who_blocked_meanwhile_mark_them(polling, fake, suite_app):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    fake.fail("sendMessage", status=403)
    turn = await hoa.says("1")
    assert turn.messages == []
    assert (await _account(suite_app, HOA)).unreachable_reason == "blocked"


async def test_sender_maps_errors_for_the_dispatcher(polling, fake, suite_app):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    sender = TelegramSender(polling.channel)
    account = await _account(suite_app, HOA)
    fake.fail("sendMessage", status=429, retry_after=120)  # longer than we wait in-process
    with pytest.raises(RateLimited) as limited:
        await sender.send(account, [Outgoing("Nhắc hạn")])
    assert limited.value.retry_after == 120
    fake.fail("sendMessage", status=500, times=4)  # more than the retries
    with pytest.raises(TransientSendError):
        await sender.send(account, [Outgoing("Nhắc hạn")])
    fake.fail("sendMessage", status=400, description="Bad Request: chat not found")
    with pytest.raises(Unreachable) as missing:
        await sender.send(account, [Outgoing("Nhắc hạn")])
    assert missing.value.reason == "not_found"
    await sender.send(account, [Outgoing("Nhắc hạn", [Choice("cmd:tudanhgia", "Tự đánh giá")])])
    assert fake.sent_to(HOA)[-1].keyboard == [[{"text": "Tự đánh giá", "callback_data": "cmd:tudanhgia"}]]


async def test_long_texts_and_captions_are_split(polling, fake, suite_app, tmp_path):
    hoa = TgPerson(fake, polling.channel, HOA)
    await hoa.says("xin chào")
    account = await _account(suite_app, HOA)
    sender = TelegramSender(polling.channel)
    paragraphs = [(f"Đoạn {i}: " + "học tập suốt đời " * 40).strip() for i in range(1, 13)]
    long_text = "\n\n".join(paragraphs)
    assert len(long_text) > 2 * 4096
    before = len(fake.sent_to(HOA))
    await sender.send(account, [Outgoing(long_text, [Choice("ok", "Đã hiểu")], prompt_seq=9)])
    parts = fake.sent_to(HOA)[before:]
    assert len(parts) == 3
    assert all(len(p.text) <= 4096 for p in parts)
    assert "\n\n".join(p.text for p in parts) == long_text  # split between paragraphs, nothing lost
    assert [bool(p.keyboard) for p in parts] == [False, False, True]  # buttons under the last part

    photo = tmp_path / "minh-chung.jpg"
    photo.write_bytes(jpeg())
    report = tmp_path / "bao-cao.xlsx"
    report.write_bytes(b"PK\x03\x04 pretend spreadsheet")
    caption = "Ảnh minh chứng " * 100  # 1500 characters: too long for a caption
    before = len(fake.sent_to(HOA))
    await sender.send(
        account,
        [
            Outgoing("Ảnh mục 1", photo=photo),
            Outgoing(caption.strip(), photo=photo),
            Outgoing("Danh sách", document=report, document_name="danh-sach-2026.xlsx"),
        ],
    )
    sent = fake.sent_to(HOA)[before:]
    assert [(m.kind, (m.text or "")[:9]) for m in sent] == [
        ("photo", "Ảnh mục 1"),
        ("photo", ""),
        ("text", "Ảnh minh "),
        ("document", "Danh sách"),
    ]
    assert sent[0].data == jpeg() and sent[3].filename == "danh-sach-2026.xlsx"


async def test_pacing_one_chat_spreads_a_burst(suite_app, fake):
    """Per-chat pacing: after the burst, messages wait their turn (a lower bound only)."""
    bot = await start_polling_bot(suite_app, fake, chat_rate_per_second=10, chat_burst=1)
    try:
        hoa = TgPerson(fake, bot.channel, HOA)
        await hoa.says("xin chào")
        account = await _account(suite_app, HOA)
        started = time.monotonic()
        questions = [Outgoing(f"câu {i}", [Choice("ok", "Được")], prompt_seq=i) for i in range(6)]  # six messages
        await TelegramSender(bot.channel).send(account, questions)
        assert len(fake.sent_to(HOA)) == 1 + 6
        assert time.monotonic() - started >= 0.4  # ≥ 5 intervals of 0.1 s after the first
    finally:
        await bot.stop()


async def test_group_chats_are_not_served(polling, fake, suite_app):
    group = {"id": -100200, "type": "group", "title": "Thôn Hà Lương"}
    update = fake.inject(
        {"message": {"message_id": 5, "date": 0, "chat": group, "from": HOA.to_dict(), "text": "chào cả nhà"}}
    )
    fake.inject(
        {
            "message": {
                "message_id": 6,
                "date": 0,
                "chat": group,
                "from": HOA.to_dict(),
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            }
        }
    )
    await polling.channel.wait_handled(2)
    assert update["update_id"]
    sent = fake.sent_to(-100200)
    assert [m.text for m in sent] == [
        "Bot chỉ trò chuyện riêng để giữ kín thông tin của bạn. Bạn nhắn riêng cho bot nhé."
    ]
    assert await _account(suite_app, HOA) is None  # nothing stored about anyone


# ---- webhooks ---------------------------------------------------------------------------------


async def test_webhook_with_good_and_bad_secrets(app, fake):
    bot = await start_webhook_bot(app, fake)
    try:
        assert fake.webhook["secret_token"] == WEBHOOK_SECRET
        assert fake.webhook["allowed_updates"] == ALLOWED_UPDATES
        assert fake.webhook["url"].endswith("/telegram/webhook")
        assert fake.commands[""] and fake.commands["en"]

        update = fake.send_text(HOA, "xin chào")
        for secret in ("wrong-secret", None, WEBHOOK_SECRET + "x"):
            refused = await fake.post_webhook(update, secret=secret)
            assert refused.status_code == 403
        assert fake.sent_to(HOA) == []
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 0
            assert await session.scalar(select(func.count()).select_from(ChannelAccount)) == 0

        garbage = await fake.post_webhook({"no": "update"})
        assert garbage.status_code == 400
        assert (await fake.post_webhook([1, 2, 3])).status_code == 400

        hoa = TgPerson(fake, bot.channel, HOA, webhook=True)
        turn = await hoa.deliver(lambda: update)
        assert turn.texts[0].startswith("Chào bạn!")
        turn = await hoa.sends_again(update)  # Telegram retried: handled once
        assert turn.messages == []
        turn = await hoa.taps("Tôi đồng ý")
        assert turn.texts == [
            "Cảm ơn bạn đã đồng ý.\n\nBạn muốn đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
        ]
        assert not fake.calls_to("getUpdates")  # webhook mode never polls
    finally:
        await bot.stop()
    assert (await _account(app, HOA)).consent_at is not None


async def test_webhook_asks_telegram_to_deliver_again_when_replies_could_not_go_out(suite_app, fake):
    bot = await start_webhook_bot(suite_app, fake)
    try:
        update = fake.send_text(HOA, "xin chào")
        fake.fail("sendMessage", status=429, retry_after=60)  # too long to wait inside the request
        first = await fake.post_webhook(update)
        assert first.status_code == 503
        assert fake.sent_to(HOA) == []
        second = await fake.post_webhook(update)  # Telegram's redelivery
        assert second.status_code == 200
        texts = [m.text for m in fake.sent_to(HOA)]
        assert len(texts) == 1 and texts[0].startswith("Chào bạn!") and texts[0].endswith(CONSENT_QUESTION)
        async with suite_app.sessions() as session:
            conversation = await session.scalar(select(Conversation))
            processed = list(await session.scalars(select(ProcessedMessage)))
        assert conversation.prompt_seq == 1  # the step ran once; the stored replies were resent
        assert len(processed) == 1 and processed[0].replied_at is not None
    finally:
        await bot.stop()


async def test_a_webhook_needs_a_secret(suite_app, fake):
    engine = FlowEngine(suite_app, build_router())
    with pytest.raises(TelegramConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        TelegramChannel(engine, options_for(fake, webhook_url="https://bot.example.vn/telegram/webhook"))
    with pytest.raises(TelegramConfigError, match="characters"):
        TelegramChannel(
            engine, options_for(fake, webhook_url="https://bot.example.vn/telegram/webhook", webhook_secret="có dấu")
        )


# ---- wiring -----------------------------------------------------------------------------------


async def test_install_follows_the_settings(suite_db, tmp_path, clock, fake):
    from bot.runner import build_runtime
    from tests.conftest import make_app

    plain = await make_app(suite_db, tmp_path, clock)
    try:
        runtime, any_channel = await build_runtime(plain, "all")
        assert not any_channel and runtime.senders.channels() == []
    finally:
        await plain.close()

    common = dict(
        telegram_bot_token="123456789:TEST-token_for-the-fake-server",
        telegram_api_base_url=fake.base_url,
        telegram_api_file_url=fake.file_url,
    )
    polling = await make_app(suite_db, tmp_path, clock, **common)
    try:
        runtime, any_channel = await build_runtime(polling, "all")
        assert any_channel and runtime.senders.get("telegram") is not None
        assert [s.name for s in runtime.services] == [
            "telegram (polling)",
            "elected: reminder-scheduler + outbox-dispatcher",
        ]
        assert runtime.routes == []
        bot = polling.extras["telegram"].bot
        assert bot.base_url == fake.base_url + common["telegram_bot_token"]
        assert bot.base_file_url == fake.file_url + common["telegram_bot_token"]
        runtime, _ = await build_runtime(polling, "scheduler")
        assert [s.name for s in runtime.services] == [
            "telegram (send)",
            "elected: reminder-scheduler + outbox-dispatcher",
        ]
    finally:
        await polling.close()

    webhook = await make_app(
        suite_db,
        tmp_path,
        clock,
        public_base_url="https://bot.example.vn/",
        telegram_webhook_secret="abc_DEF-123",
        **common,
    )
    try:
        runtime, _ = await build_runtime(webhook, "web")
        assert [r.path for r in runtime.routes] == ["/telegram/webhook"]
        assert webhook.extras["telegram"].options.webhook_url == "https://bot.example.vn/telegram/webhook"
    finally:
        await webhook.close()

    no_secret = await make_app(suite_db, tmp_path, clock, public_base_url="https://bot.example.vn", **common)
    try:
        with pytest.raises(TelegramConfigError):
            await build_runtime(no_secret, "web")
    finally:
        await no_secret.close()


async def test_send_only_service_for_the_scheduler(suite_app, fake):
    channel = TelegramChannel(FlowEngine(suite_app, build_router()), options_for(fake))
    service = TelegramService(channel, "send")
    await service.start()
    try:
        await channel.send_replies(HOA.id, [Outgoing("Nhắc hạn")])
        assert [m.text for m in fake.sent_to(HOA)] == ["Nhắc hạn"]
        assert not fake.calls_to("getUpdates") and not fake.calls_to("setWebhook")
    finally:
        await service.stop()


def test_errors_map_to_what_the_dispatcher_does():
    from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

    assert isinstance(map_error(RetryAfter(7)), RateLimited) and map_error(RetryAfter(7)).retry_after == 7
    assert map_error(Forbidden("Forbidden: bot was blocked by the user")).reason == "blocked"
    assert map_error(Forbidden("Forbidden: user is deactivated")).reason == "deactivated"
    assert map_error(BadRequest("Bad Request: chat not found")).reason == "not_found"
    assert type(map_error(BadRequest("Bad Request: message text is empty"))) is SendError
    assert isinstance(map_error(TimedOut()), TransientSendError)
    assert isinstance(map_error(NetworkError("Bad Gateway")), TransientSendError)


# ---- `hoctap run` as an operator starts it ------------------------------------------------------


async def _hoctap_run(tmp_path, fake: FakeBotApi, *args: str, **env: str) -> asyncio.subprocess.Process:
    environment = bot_env(
        tmp_path,
        TELEGRAM_BOT_TOKEN="123456789:TEST-token_for-the-fake-server",
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_API_FILE_URL=fake.file_url,
        TELEGRAM_POLL_TIMEOUT="1",
        SIGNING_SECRET=TEST_SIGNING_SECRET,
    )
    return await start_module("bot", "run", *args, cwd=tmp_path, env={**environment, **env})


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return err.decode()


@pytest.mark.slow
async def test_hoctap_run_polls_telegram_and_stops_cleanly(tmp_path, fake):
    process = await _hoctap_run(tmp_path, fake)
    try:
        await fake.wait_for(lambda: fake.calls_to("getUpdates"), timeout=60)
        fake.send_text(HOA, "/start")
        await fake.wait_for(lambda: fake.sent_to(HOA), timeout=30)
    finally:
        log = await _stop(process)
    assert fake.sent_to(HOA)[0].text.startswith("Chào bạn!")
    assert "starting telegram (polling)" in log and "stopping telegram (polling)" in log
    assert "TEST-token" not in log  # request URLs carry the token: they are not logged
    assert fake.pending_updates == 0  # the last getUpdates confirmed what was handled


@pytest.mark.slow
async def test_hoctap_run_serves_the_webhook_and_stops_cleanly(tmp_path, fake):
    port = free_port()
    process = await _hoctap_run(
        tmp_path,
        fake,
        "--role",
        "web",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WEB_PORT=str(port),
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    try:
        await fake.wait_for(lambda: fake.webhook, timeout=60)
        update = fake.send_text(HOA, "/start")
        for _ in range(100):  # uvicorn may still be binding its port
            try:
                response = await fake.post_webhook(update)
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
        assert response.status_code == 200
        assert (await fake.post_webhook(update, secret="guess")).status_code == 403
    finally:
        log = await _stop(process)
    assert fake.webhook["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
    assert [m.text[:9] for m in fake.sent_to(HOA)] == ["Chào bạn!"]
    assert "stopping telegram (webhook)" in log


async def test_replies_go_out_as_json_bodies_and_files_as_multipart(polling, fake, suite_app, tmp_path):
    """Bot API calls carry their parameters as a JSON body (the keyboard a JSON object in it);
    only uploads use a multipart form (bot/channels/telegram_request.py)."""
    hoa = TgPerson(fake, polling.channel, HOA)
    turn = await hoa.says("xin chào")
    assert turn.messages[-1].keyboard
    reply = fake.calls_to("sendMessage")[-1]
    assert reply.body == "json"
    assert isinstance(reply.params["reply_markup"], dict) and reply.params["reply_markup"]["inline_keyboard"]
    assert {call.body for call in fake.calls_to("getUpdates")} == {"json"}
    photo = tmp_path / "minh-chung.jpg"
    photo.write_bytes(jpeg())
    await TelegramSender(polling.channel).send(await _account(suite_app, HOA), [Outgoing("Ảnh mục 1", photo=photo)])
    assert fake.calls_to("sendPhoto")[-1].body == "multipart"
