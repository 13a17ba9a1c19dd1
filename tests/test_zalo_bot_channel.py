"""The Zalo Bot Platform channel end to end: the bot (installers, poller or webhook, web app)
against the fake platform and a photo host, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.channels.base import RateLimited, TransientSendError
from bot.channels.zalo_common import ChatPacer, pieces_for
from bot.i18n import get_translator
from bot.messages import Choice, Outgoing
from bot.storage.models import (
    ChannelAccount,
    Evidence,
    Household,
    HouseholdMember,
    ProcessedMessage,
    Submission,
    SubmissionEvent,
)
from bot.storage.people import get_account
from tests.fakes.server import via_local_tls
from tests.fakes.zalo_bot import Failure, FakeZaloBotPlatform, internal_error, quota_exceeded
from tests.support.images import jpeg, png
from tests.support.zalo import (  # noqa: F401  (fixtures)
    BOT_WEBHOOK_SECRET,
    fake_bot,
    image_host,
    registers_hoa_up_to_the_first_photo,
    rest_without_photos_and_submit,
    running_bot,
    wait_until,
    zalo_settings,
)

# The first message says a machine answers (the Zalo Bot terms ask for it).
CONSENT = (
    "Chào bạn! Mình là trợ lý tự động (chatbot), tin nhắn do máy trả lời. "
    'Mình giúp bạn đăng ký "Công dân học tập" hoặc "Gia đình học tập" năm 2026.'
)


class ZaloBotPerson:
    """Someone writing to the bot on Zalo; returns what the bot sent back to their chat."""

    def __init__(self, stack, fake: FakeZaloBotPlatform, user_id: str, *, webhook: bool = False) -> None:
        self.stack, self.fake, self.user_id, self.webhook = stack, fake, user_id, webhook

    async def deliver(self, update: dict) -> list[str]:
        channel = self.stack.bot_channel
        before = len(self.fake.sent)
        if self.webhook:
            response = await self.fake.deliver(
                self.stack.public_url + "/zalo/bot/webhook", update, secret=BOT_WEBHOOK_SECRET
            )
            assert response.status_code == 200, response.text
        else:
            seen = channel.received
            self.fake.push(update)
            await wait_until(lambda: channel.received > seen)
        await channel.queue.drain()
        return [s.text or s.caption or "" for s in self.fake.sent[before:] if s.chat_id == self.user_id]

    async def says(self, text: str, **kwargs) -> str:
        return "\n\n".join(await self.deliver(self.fake.text_update(self.user_id, text, **kwargs)))

    async def sends_photo(self, url: str, field_name: str = "photo_url") -> str:
        return "\n\n".join(await self.deliver(self.fake.image_update(self.user_id, url, field_name=field_name)))


async def test_full_household_declaration_with_two_photos_by_polling(fake_bot, image_host, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, webhook=False, **zalo_settings(bot=fake_bot)) as stack:
        assert fake_bot.webhook_url == "" and "deleteWebhook" in fake_bot.calls  # polling mode
        ba = ZaloBotPerson(stack, fake_bot, "zalo-ba")
        text = await ba.says("Xin chào")
        assert text.startswith(CONSENT)
        assert text.endswith("1. Tôi đồng ý\n2. Không đồng ý\n3. Xem chi tiết\nTrả lời 1, 2 hoặc 3.")
        text = await ba.says("1")
        assert "1. Công dân học tập\n2. Gia đình học tập" in text
        text = await ba.says("gia dinh hoc tap")
        assert "Họ và tên" in text
        await ba.says("Y Bih Niê")
        text = await ba.says("1970")
        assert "1. Buôn Ken" in text
        text = await ba.says("Buon Ken")
        assert "chủ hộ" in text
        await ba.says("có")
        text = await ba.says("1")  # add a member
        await ba.says("H'Nga Niê")
        await ba.says("1974")
        text = await ba.says("Vợ/chồng")
        assert "H'Nga Niê" in text
        text = await ba.says("Đã đủ")
        assert "Thông tin đã đúng chưa?" in text
        text = await ba.says("Xác nhận")
        assert "GD-2026-000001" in text
        text = await ba.says("Bắt đầu")
        assert text.startswith("Mục 1.1 — câu 1/10 (tối đa 10 điểm)")

        for _ in range(3):  # 1.1–1.3: no school-age children
            text = await ba.says("khong ap dung")
        await ba.says("Đạt")  # 2.1
        await ba.says("Không có ảnh")
        text = await ba.says("dat")  # 2.2
        assert "Gửi 1–3 ảnh minh chứng" in text
        first = image_host.add("lop-hoc.jpg", jpeg((10, 120, 200), (800, 600)))
        text = await ba.sends_photo(first, field_name="photo")
        assert text.startswith("Đã nhận ảnh 1.")
        second = image_host.add("giay-khen.png", png((200, 30, 30), (300, 200)))
        text = await ba.sends_photo(second, field_name="photo_url")
        assert text.startswith("Đã nhận ảnh 2.")
        await ba.says("xong")
        await rest_without_photos_and_submit(ba, 5, "GD-2026-000001")  # 2.3, 3.1, 3.2, 4.1, 4.2

        async with stack.app.sessions() as session:
            submission = await session.scalar(select(Submission))
            household = await session.get(Household, submission.household_id)
            members = list(await session.scalars(select(HouseholdMember).order_by(HouseholdMember.position)))
            evidence = list(await session.scalars(select(Evidence).order_by(Evidence.id)))
            events = [e.to_state for e in await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id))]
            account = await get_account(session, "zalo_bot", "zalo-ba")
        assert (submission.state, submission.score, submission.subject_kind) == ("submitted", 100, "household")
        assert household is not None and [(m.full_name, m.relation) for m in members] == [
            ("Y Bih Niê", "head"),
            ("H'Nga Niê", "spouse"),
        ]
        # Both photos are re-encoded; the PNG has no transparency, so it is kept as a JPEG too.
        assert [(e.item_id, e.mime, e.source_channel) for e in evidence] == [
            ("2.2", "image/jpeg", "zalo_bot"),
            ("2.2", "image/jpeg", "zalo_bot"),
        ]
        stored = [Path(stack.app.settings.evidence_dir, e.path).read_bytes() for e in evidence]
        sent = [image_host.images["lop-hoc.jpg"], image_host.images["giay-khen.png"]]
        assert stored == [stack.app.evidence.prepare(data).data for data in sent]
        assert [(e.width, e.height) for e in evidence] == [(800, 600), (300, 200)]
        assert events == ["registered", "declaring", "submitted"]
        assert account.chat_id == "zalo-ba" and account.last_inbound_at == clock.now()
    assert all(len(s.text or "") <= 2000 for s in fake_bot.sent)


async def test_photo_links_are_fetched_at_once_and_expired_ones_are_asked_again(
    fake_bot, image_host, suite_db, tmp_path, clock
):
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **zalo_settings(bot=fake_bot)) as stack:
        hoa = ZaloBotPerson(stack, fake_bot, "zalo-hoa", webhook=True)
        await hoa.says("chào")
        await hoa.says("1")
        await hoa.says("1")  # Công dân học tập
        await hoa.says("Nguyễn Thị Hoa")
        await hoa.says("1975")
        await hoa.says("2")
        await hoa.says("Xác nhận")
        await hoa.says("Bắt đầu")
        await hoa.says("Đạt")
        url = image_host.add("sach.jpg", jpeg())
        image_host.expire("sach.jpg")  # the platform's link died before we fetched it
        text = await hoa.sends_photo(url)
        assert text.startswith("Mình chưa tải được ảnh. Bạn gửi lại ảnh nhé.")
        huge = image_host.add("huge.jpg", b"\xff\xd8" + b"0" * (10 * 1024 * 1024 + 10))
        text = await hoa.sends_photo(huge)
        assert text.startswith("Ảnh lớn quá (trên 10 MB).")
        text = await hoa.deliver(fake_bot.sticker_update("zalo-hoa"))
        assert text == [
            "Cảm ơn bạn! Bot chỉ đọc được chữ, nút bấm và ảnh.\n\n"
            'Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".\n\n1. Không có ảnh\nTrả lời 1.'
        ]
        fresh = image_host.add("sach2.jpg", jpeg((1, 2, 3)))
        text = await hoa.sends_photo(fresh)
        assert text.startswith("Đã nhận ảnh 1.") and image_host.hits["sach2.jpg"] == 1
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Evidence)) == 1
        # A photo sent in a group chat is not ours to answer.
        before = len(fake_bot.sent)
        await hoa.deliver(fake_bot.text_update("zalo-hoa", "hi", chat_type="GROUP"))
        assert len(fake_bot.sent) == before


async def test_webhook_checks_the_secret_accepts_both_body_shapes_and_dedupes(fake_bot, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **zalo_settings(bot=fake_bot)) as stack:
        url = stack.public_url + "/zalo/bot/webhook"
        await stack.webhook_confirmed()
        assert (fake_bot.webhook_url, fake_bot.webhook_secret) == (
            stack.https_url + "/zalo/bot/webhook",
            BOT_WEBHOOK_SECRET,
        )
        update = fake_bot.text_update("zalo-an", "xin chào", message_id="dup-1")
        for secret in (None, "wrong-secret", BOT_WEBHOOK_SECRET + "x"):
            response = await fake_bot.deliver(url, update, secret=secret)
            assert response.status_code == 403
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 0
            assert await session.scalar(select(func.count()).select_from(ChannelAccount)) == 0
        assert stack.bot_channel.received == 0 and fake_bot.sent == []

        async with httpx.AsyncClient() as http:
            garbage = await http.post(url, content=b"{not json", headers={"X-Bot-Api-Secret-Token": BOT_WEBHOOK_SECRET})
        assert garbage.status_code == 400

        # Zalo delivers the same update three times, wrapped and unwrapped.
        responses = [
            await fake_bot.deliver(url, update, secret=BOT_WEBHOOK_SECRET, wrapped=wrapped)
            for wrapped in (True, False, True)
        ]
        assert [r.status_code for r in responses] == [200, 200, 200]
        await stack.bot_channel.queue.drain()
        assert len(fake_bot.texts_to("zalo-an")) == 1 and fake_bot.texts_to("zalo-an")[0].startswith(CONSENT)
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 1

        # Unwrapped, a second message is handled normally.
        await fake_bot.deliver(url, fake_bot.text_update("zalo-an", "2"), secret=BOT_WEBHOOK_SECRET, wrapped=False)
        await stack.bot_channel.queue.drain()
        assert fake_bot.texts_to("zalo-an")[1:] == [
            "Không sao. Bot không lưu thông tin gì của bạn. Khi nào muốn đăng ký, bạn gõ /start nhé."
        ]


async def test_sender_sends_evidence_by_signed_link_and_documents_as_links(fake_bot, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **zalo_settings(bot=fake_bot)) as stack:
        app = stack.app
        blob = app.evidence.store(jpeg((5, 50, 150)))
        export = Path(app.settings.evidence_dir).parent / "exports" / "thong-ke.xlsx"
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_bytes(b"PK fake xlsx")
        async with app.sessions.begin() as session:
            from bot.storage.people import get_or_create_account

            account = await get_or_create_account(session, "zalo_bot", "leader-1", "leader-1", clock.now())
        sender = stack.runtime.senders.get("zalo_bot")
        await sender.send(
            account,
            [
                Outgoing("Ảnh mục 2.2 của hồ sơ GD-2026-000001", photo=Path(blob.path)),
                Outgoing("Danh sách hồ sơ", document=export, document_name="thong-ke.xlsx"),
                Outgoing("Duyệt hồ sơ này?", choices=[Choice("yes", "Duyệt"), Choice("no", "Không duyệt")]),
            ],
        )
        photo, text = fake_bot.sent
        assert photo.method == "sendPhoto" and photo.caption == "Ảnh mục 2.2 của hồ sơ GD-2026-000001"
        assert photo.photo.startswith(stack.https_url + "/files/")
        assert photo.photo_bytes == app.evidence.open_path(blob.path).read_bytes()
        assert text.text.startswith(
            "Danh sách hồ sơ\n\nTệp thong-ke.xlsx: bấm để tải về (liên kết dùng được trong 24 giờ)\n"
        )
        link = text.text.split("\n")[3]
        assert text.text.endswith("\n\nDuyệt hồ sơ này?\n\n1. Duyệt\n2. Không duyệt\nTrả lời 1 hoặc 2.")
        async with httpx.AsyncClient() as http:
            assert (await http.get(via_local_tls(link))).content == b"PK fake xlsx"

        # 429 "Quota exceeded" (no retry_after): minutes of waiting, reported as a quota problem.
        fake_bot.fail("sendMessage", quota_exceeded())
        with pytest.raises(RateLimited) as limited:
            await sender.send(account, [Outgoing("nhắc hạn")])
        assert limited.value.retry_after >= 300 and limited.value.category == "quota"
        # 403 "Internal server error": try again later; the person is not marked unreachable.
        fake_bot.fail("sendMessage", internal_error())
        with pytest.raises(TransientSendError):
            await sender.send(account, [Outgoing("nhắc hạn")])
        async with app.sessions() as session:
            assert (await get_account(session, "zalo_bot", "leader-1")).unreachable_at is None


def test_replies_become_few_messages_in_the_readers_language(suite_app):
    t = get_translator("en")
    replies = [
        Outgoing("Saved."),
        Outgoing("Which title?", choices=[Choice("cd", "Learning citizen"), Choice("gd", "Learning family")]),
        Outgoing("x" * 2500),
    ]
    pieces = pieces_for(suite_app, replies, t)
    assert pieces[0].text == "Saved.\n\nWhich title?\n\n1. Learning citizen\n2. Learning family\nReply 1 or 2."
    assert [len(p.text) for p in pieces[1:]] == [2000, 500]


async def test_chat_pacer_spaces_messages_to_one_chat():
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = ChatPacer(1.0, clock=lambda: now[0], sleep=sleep)
    for chat in ("a", "a", "b", "a"):
        await pacer.wait(chat)
    assert slept == [1.0, 1.0]  # a, a (+1s), b (no wait), a (+1s after the second a)


async def test_a_reply_that_could_not_be_sent_goes_out_on_redelivery(fake_bot, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **zalo_settings(bot=fake_bot)) as stack:
        url = stack.public_url + "/zalo/bot/webhook"
        update = fake_bot.text_update("zalo-tu", "xin chào", message_id="retry-1")
        fake_bot.fail("sendMessage", Failure(500), Failure(500), Failure(500))  # Zalo is down for a moment
        assert (await fake_bot.deliver(url, update, secret=BOT_WEBHOOK_SECRET)).status_code == 200
        await stack.bot_channel.queue.drain()
        assert fake_bot.texts_to("zalo-tu") == []
        async with stack.app.sessions() as session:
            processed = await session.scalar(select(ProcessedMessage))
        assert processed.replied_at is None and processed.replies  # answered and saved, not yet sent
        assert (await fake_bot.deliver(url, update, secret=BOT_WEBHOOK_SECRET)).status_code == 200
        await stack.bot_channel.queue.drain()
        (text,) = fake_bot.texts_to("zalo-tu")
        assert text.startswith(CONSENT)  # the stored replies, not a second run of the conversation
        assert (await fake_bot.deliver(url, update, secret=BOT_WEBHOOK_SECRET)).status_code == 200
        await stack.bot_channel.queue.drain()
        assert len(fake_bot.texts_to("zalo-tu")) == 1


async def test_updates_nobody_wrote_to_the_bot_get_no_answer(fake_bot, suite_db, tmp_path, clock):
    """Updates without a message, reactions, links and messages sent by a bot — our own echoed
    back, or another bot's — are dropped without an "unsupported" reply (Zalo Bot docs: events)."""
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **zalo_settings(bot=fake_bot)) as stack:
        await stack.webhook_confirmed()
        assert stack.bot_channel.bot_id == fake_bot.bot_id
        hoa = ZaloBotPerson(stack, fake_bot, "zalo-hoa", webhook=True)
        assert await hoa.deliver(fake_bot.messageless_update()) == []
        assert await hoa.deliver(fake_bot.reaction_update("zalo-hoa")) == []
        assert (
            await hoa.deliver(
                {"event_name": "message.link.received", "message": fake_bot.message("zalo-hoa", text="https://x.vn")}
            )
            == []
        )
        assert await hoa.deliver(fake_bot.echo_update("zalo-hoa", "Chào bạn!")) == []
        assert await hoa.deliver(fake_bot.text_update("zalo-hoa", "xin chào", is_bot=True)) == []
        own = fake_bot.text_update("zalo-hoa", "xin chào")
        own["message"]["from"]["id"] = fake_bot.bot_id  # our own id, even without is_bot
        assert await hoa.deliver(own) == []
        assert fake_bot.sent == []
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ChannelAccount)) == 0
        # The person writing themselves gets the usual answer.
        assert (await hoa.says("xin chào")).startswith(CONSENT)


async def test_the_webhook_is_set_once_the_server_listens_and_until_zalo_confirms(
    fake_bot, suite_db, tmp_path, clock, caplog
):
    """setWebhook makes Zalo call the address: it is called after the web app listens, its
    `verification` is logged, and a failure (Zalo's 403 internal error, a failed verification)
    is tried again until the platform confirms."""
    import asyncio
    import logging

    from bot.runner import build_runtime
    from bot.web.app import create_web_app
    from tests.conftest import make_app
    from tests.fakes.server import bound_socket, serve, url_of

    sock = bound_socket()
    https = "https://" + url_of(sock)[len("http://") :]
    app = await make_app(suite_db, tmp_path, clock, public_base_url=https, **zalo_settings(bot=fake_bot))
    caplog.set_level(logging.INFO, logger="bot.channels.zalo_bot")
    try:
        runtime, _ = await build_runtime(app, "web")
        (setup,) = [s for s in runtime.services if s.name == "zalo-bot-webhook"]
        for service in runtime.services:
            await service.start()
        try:
            await asyncio.sleep(0.2)
            assert fake_bot.count("setWebhook") == 0  # nothing listens yet: not asked
            fake_bot.fail("setWebhook", internal_error())
            runtime.listening.set()  # (too early here: Zalo cannot reach the address yet)
            await wait_until(lambda: fake_bot.verifications != [], timeout=10)
            assert fake_bot.webhook_url == "" and fake_bot.verifications[0] != 200
            async with serve(create_web_app(app, runtime.routes), sock):
                await asyncio.wait_for(setup.confirmed.wait(), 20)
            assert fake_bot.webhook_url == https + "/zalo/bot/webhook"
            assert fake_bot.verifications[-1] == 200 and setup.attempts >= 3
        finally:
            for service in reversed(runtime.services):
                await service.stop()
    finally:
        await app.close()
    logged = caplog.text
    assert "verification: success" in logged and "not confirmed" in logged


@pytest.mark.parametrize("public_base_url, role", [("http://hoctap.example.vn", "all"), (None, "web")])
async def test_polling_where_a_webhook_belongs_is_warned_about(
    fake_bot, suite_db, tmp_path, clock, caplog, public_base_url, role
):
    import logging

    from bot.runner import build_runtime
    from tests.conftest import make_app

    app = await make_app(suite_db, tmp_path, clock, public_base_url=public_base_url, **zalo_settings(bot=fake_bot))
    caplog.set_level(logging.WARNING, logger="bot.channels.zalo_bot")
    try:
        runtime, _ = await build_runtime(app, role)
        assert "zalo-bot-poller" in [s.name for s in runtime.services]
        for service in reversed(runtime.services):
            await service.stop()
    finally:
        await app.close()
    assert "Zalo advises a webhook in production" in caplog.text


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_full_citizen_declaration_over_the_bot_platform(fake_bot, image_host, suite_db, tmp_path, clock, webhook):
    """A whole "Công dân học tập" declaration as Zalo delivers it, by getUpdates and by webhook;
    the photo comes as `photo_url` (the current docs)."""
    async with running_bot(suite_db, tmp_path, clock, webhook=webhook, **zalo_settings(bot=fake_bot)) as stack:
        if webhook:
            await stack.webhook_confirmed()
        hoa = ZaloBotPerson(stack, fake_bot, "zalo-hoa", webhook=webhook)
        text = await hoa.says("Xin chào")
        assert text.startswith(CONSENT)
        text = await hoa.says("1")
        assert "1. Công dân học tập\n2. Gia đình học tập" in text
        text = await hoa.says("1")
        assert "Họ và tên" in text
        await registers_hoa_up_to_the_first_photo(hoa)
        photo = image_host.add("tu-sach.jpg", jpeg((120, 80, 40), (640, 480)))
        text = await hoa.sends_photo(photo)
        assert text.startswith("Đã nhận ảnh 1.")
        await hoa.says("xong")
        await rest_without_photos_and_submit(hoa, 9, "CD-2026-000001")
        async with stack.app.sessions() as session:
            submission = await session.scalar(select(Submission))
            evidence = list(await session.scalars(select(Evidence)))
        assert (submission.state, submission.score, submission.subject_kind) == ("submitted", 100, "person")
        assert [(e.item_id, e.source_channel) for e in evidence] == [("1", "zalo_bot")]
    assert fake_bot.count("getUpdates" if not webhook else "setWebhook") >= 1
