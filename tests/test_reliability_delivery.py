"""Delivery order and platform failures, in sequences: the same update again and again (at once
and one after another), updates out of order, stale buttons, 5xx and timeouts on the platform
side, on Telegram (webhook) and the Zalo Bot Platform (webhook). Each test walks a conversation
and ends with the database invariant checker; tests/test_telegram.py and tests/test_zalo_* cover
each behaviour alone."""

from __future__ import annotations

import asyncio
import copy

import pytest
from sqlalchemy import func, select

from bot.storage.models import Answer, Conversation, Evidence, ProcessedMessage, Submission, SubmissionEvent
from tests.fakes.telegram_bot_api import FakeBotApi, FakeUser, Sent
from tests.fakes.zalo_bot import Failure, FakeZaloBotPlatform
from tests.support.images import jpeg
from tests.support.invariants import check_invariants
from tests.support.telegram import HOA, fake, start_webhook_bot  # noqa: F401  (fake: a fixture)
from tests.support.zalo import (  # noqa: F401  (fixtures)
    BOT_WEBHOOK_SECRET,
    fake_bot,
    image_host,
    running_bot,
    zalo_settings,
)


class Webhook:
    """Telegram's side: deliver an update `times` times at once, then `again` more times in turn."""

    def __init__(self, fake: FakeBotApi, user: FakeUser) -> None:
        self.fake, self.user = fake, user

    async def deliver(self, update: dict, *, times: int = 1, again: int = 0, status: int = 200) -> list[Sent]:
        before = len(self.fake.sent_to(self.user))
        responses = await asyncio.gather(*(self.fake.post_webhook(update) for _ in range(times)))
        for _ in range(again):
            responses.append(await self.fake.post_webhook(update))
        assert {r.status_code for r in responses} == {status}, [(r.status_code, r.text) for r in responses]
        return self.fake.sent_to(self.user)[before:]

    async def says(self, text: str, **kw) -> list[Sent]:
        return await self.deliver(self.fake.send_text(self.user, text), **kw)

    async def taps(self, label: str, message: Sent | None = None, **kw) -> list[Sent]:
        return await self.deliver(self.fake.press(self.user, label, message), **kw)


def texts(messages: list[Sent]) -> list[str]:
    return [m.text or "" for m in messages]


@pytest.mark.slow
async def test_telegram_every_step_delivered_four_times_is_answered_once(suite_app, fake):
    """Each update of a whole registration and declaration arrives three times at once and once
    more afterwards: one answer each, one submission, each answer and photo saved once."""
    bot = await start_webhook_bot(suite_app, fake)
    try:
        hoa = Webhook(fake, HOA)
        many = dict(times=3, again=1)
        assert len(await hoa.says("xin chào", **many)) == 1
        assert texts(await hoa.taps("Tôi đồng ý", **many)) == [
            "Cảm ơn bạn đã đồng ý.\n\nBạn muốn đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
        ]
        assert len(await hoa.taps("Công dân học tập", **many)) == 1
        assert texts(await hoa.says("Nguyễn Thị Hoa", **many)) == ["Năm sinh của bạn? (ví dụ: 1975)"]
        assert len(await hoa.says("1975", **many)) == 1
        assert len(await hoa.says("2", **many)) == 1
        confirmed = await hoa.taps("Xác nhận", **many)
        assert len(confirmed) == 1 and "Đã đăng ký Công dân học tập" in confirmed[0].text
        assert texts(await hoa.taps("Bắt đầu", **many))[0].startswith("Mục 1/10")
        assert len(await hoa.taps("Đạt", **many)) == 1
        photo = fake.send_photo(HOA, jpeg((9, 9, 9)))
        assert texts(await hoa.deliver(photo, **many)) == ["Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."]
        assert texts(await hoa.taps("Xong", **many))[0].startswith("Mục 2/10")
        for _ in range(2, 11):
            assert len(await hoa.taps("Đạt", **many)) == 1
            assert len(await hoa.taps("Không có ảnh", **many)) == 1
        assert len(await hoa.taps("Nộp hồ sơ", **many)) == 1
        submitted = await hoa.taps("Nộp ngay", **many)
        assert len(submitted) == 1 and submitted[0].text.startswith("Đã nộp hồ sơ CD-2026-000001")
    finally:
        await bot.stop()
    summary = await check_invariants(suite_app)
    assert summary.submissions == {"submitted": 1} and (summary.answers, summary.evidence) == (10, 1)
    async with suite_app.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(SubmissionEvent))
    assert events == 3  # registered, declaring, submitted: no step ran twice


async def test_telegram_out_of_order_and_stale_buttons(suite_app, fake):
    """The birth year overtakes the name; a title button and a level button from old questions
    are pressed late: each gets a sensible answer, nothing is saved against the wrong question."""
    bot = await start_webhook_bot(suite_app, fake)
    try:
        hoa = Webhook(fake, HOA)
        await hoa.says("xin chào")
        await hoa.taps("Tôi đồng ý")
        # As the person's phone still shows it (the bot takes used keyboards away, but a press can
        # already be on its way).
        title_question = copy.deepcopy(fake.sent_to(HOA)[-1])
        await hoa.taps("Công dân học tập")
        name = fake.send_text(HOA, "Nguyễn Thị Hoa")  # written first…
        year = fake.send_text(HOA, "1975")
        early = texts(await hoa.deliver(year))  # …but the year arrives first
        assert len(early) == 1 and early[0].endswith("Họ và tên của bạn?")
        assert texts(await hoa.deliver(name)) == ["Năm sinh của bạn? (ví dụ: 1975)"]
        assert texts(await hoa.deliver(year, again=1)) == []  # Telegram repeats the early one: already handled
        # The title button of the old question, pressed again.
        stale = texts(await hoa.taps("Gia đình học tập", title_question))
        assert len(stale) == 1 and stale[0].startswith("Nút đó thuộc tin nhắn cũ.")
        assert stale[0].endswith("Năm sinh của bạn? (ví dụ: 1975)")
        await hoa.says("1975")
        await hoa.says("2")
        await hoa.taps("Xác nhận")
        await hoa.taps("Bắt đầu")
        item_one = copy.deepcopy(fake.sent_to(HOA)[-1])
        await hoa.taps("Đạt")
        await hoa.taps("Không có ảnh")
        late = texts(await hoa.taps("Chưa đạt", item_one))  # item 1's buttons, now at item 2
        assert late[0].startswith("Nút đó thuộc tin nhắn cũ.") and "Mục 2/10" in late[0]
    finally:
        await bot.stop()
    async with suite_app.sessions() as session:
        answers = {a.item_id: a.level for a in await session.scalars(select(Answer))}
        conversation = await session.scalar(select(Conversation))
    assert answers == {"1": "achieved"}
    assert (conversation.state, conversation.data.get("item")) == ("decl.item", "2")
    await check_invariants(suite_app)


async def test_telegram_5xx_and_timeouts_on_sends_and_downloads(suite_app, fake):
    """Bad Gateway beyond the retries and a read timeout on sendMessage: the webhook answers 503,
    Telegram redelivers, the stored reply goes out once. getFile failing once is retried; failing
    every time asks the person to send the photo again and saves nothing."""
    bot = await start_webhook_bot(suite_app, fake, read_timeout=0.5, send_retries=1)
    try:
        hoa = Webhook(fake, HOA)
        greeting = fake.send_text(HOA, "xin chào")
        fake.fail("sendMessage", status=502, times=2)  # the attempt and its one retry
        assert await hoa.deliver(greeting, status=503) == []
        assert len(await hoa.deliver(greeting)) == 1
        press = fake.press(HOA, "Tôi đồng ý")
        fake.fail("sendMessage", status=500, delay=1.0, times=2)  # longer than the read timeout
        assert await hoa.deliver(press, status=503) == []
        answer = texts(await hoa.deliver(press))
        assert answer == [
            "Cảm ơn bạn đã đồng ý.\n\nBạn muốn đăng ký danh hiệu nào năm 2026?\nHạn đăng ký: ngày 31/3/2026 — đã quá hạn"
        ]
        await hoa.taps("Công dân học tập")
        await hoa.says("Nguyễn Thị Hoa")
        await hoa.says("1975")
        await hoa.says("2")
        await hoa.taps("Xác nhận")
        await hoa.taps("Bắt đầu")
        await hoa.taps("Đạt")
        fake.fail("getFile", status=502)
        got = texts(await hoa.deliver(fake.send_photo(HOA, jpeg((4, 4, 4)))))
        assert got == ["Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."]
        fake.fail("getFile", status=502, times=10)
        lost = texts(await hoa.deliver(fake.send_photo(HOA, jpeg((5, 5, 5)))))
        assert len(lost) == 1 and lost[0].startswith("Mình chưa tải được ảnh. Bạn gửi lại ảnh nhé.")
        fake._failures.clear()
        again = texts(await hoa.deliver(fake.send_photo(HOA, jpeg((5, 5, 5)))))
        assert again == ["Đã nhận ảnh 2. Gửi thêm (tối đa 3) hoặc bấm Xong."]
    finally:
        await bot.stop()
    sent = texts(fake.sent_to(HOA))
    assert sum(t.startswith("Chào bạn!") for t in sent) == 1
    assert sum(t.startswith("Cảm ơn bạn đã đồng ý.") for t in sent) == 1
    async with suite_app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Evidence)) == 2
        unreplied = await session.scalar(
            select(func.count()).select_from(ProcessedMessage).where(ProcessedMessage.replied_at.is_(None))
        )
    assert unreplied == 0
    await check_invariants(suite_app)


class ZaloWebhook:
    def __init__(self, stack, fake: FakeZaloBotPlatform, user_id: str) -> None:
        self.stack, self.fake, self.user_id = stack, fake, user_id
        self.url = stack.public_url + "/zalo/bot/webhook"

    async def deliver(self, update: dict, *, times: int = 1, again: int = 0) -> list[str]:
        before = len(self.fake.texts_to(self.user_id))
        responses = await asyncio.gather(
            *(self.fake.deliver(self.url, update, secret=BOT_WEBHOOK_SECRET, wrapped=i % 2 == 0) for i in range(times))
        )
        for _ in range(again):
            responses.append(await self.fake.deliver(self.url, update, secret=BOT_WEBHOOK_SECRET))
        assert {r.status_code for r in responses} == {200}
        await self.stack.bot_channel.queue.drain()
        return self.fake.texts_to(self.user_id)[before:]

    async def says(self, text: str, **kw) -> list[str]:
        return await self.deliver(self.fake.text_update(self.user_id, text), **kw)


async def test_zalo_bot_duplicates_out_of_order_and_platform_failures(fake_bot, image_host, suite_db, tmp_path, clock):
    """On the Zalo Bot Platform (numbered options, webhook answered at once, handled in the
    background): duplicates at once and later, the year overtaking the name, 5xx and a timeout on
    sendMessage within the client's retries, 5xx beyond them healed by the redelivery."""
    settings = {**zalo_settings(bot=fake_bot), "zalo_http_timeout": 0.5}
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **settings) as stack:
        an = ZaloWebhook(stack, fake_bot, "zalo-an")
        assert len(await an.says("xin chào", times=3, again=1)) == 1
        assert len(await an.says("1", times=3, again=1)) == 1  # I agree
        fake_bot.fail("sendMessage", Failure(502), Failure(500, hang=1.0))  # retried inside the client
        assert len(await an.says("1", times=2)) == 1  # Công dân học tập
        name = fake_bot.text_update("zalo-an", "Lê Văn An")
        year = fake_bot.text_update("zalo-an", "1980")
        early = await an.deliver(year)
        assert len(early) == 1 and early[0].endswith("Họ và tên của bạn?")
        assert await an.deliver(name) == ["Năm sinh của bạn? (ví dụ: 1975)"]
        await an.says("1980")
        fake_bot.fail("sendMessage", Failure(500), Failure(500), Failure(500))  # down past the retries
        branch = fake_bot.text_update("zalo-an", "1")
        assert await an.deliver(branch) == []
        shown = await an.deliver(branch, times=2)  # Zalo delivers again (twice at once)
        assert len(shown) == 1
        confirm = await an.says("1", times=2, again=1)
        assert len(confirm) == 1 and "Đã đăng ký Công dân học tập" in confirm[0]
        await an.says("1")  # start the declaration
        await an.says("1")  # item 1: achieved
        photo = fake_bot.image_update("zalo-an", image_host.add("a.jpg", jpeg((7, 1, 7))))
        assert len(await an.deliver(photo, times=3, again=1)) == 1
        assert image_host.hits["a.jpg"] >= 1
        app = stack.app
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Evidence)) == 1
            assert await session.scalar(select(func.count()).select_from(Submission)) == 1
        await check_invariants(app)


async def test_telegram_a_redelivery_while_another_worker_is_still_sending(suite_db, tmp_path, clock, fake):
    """Two workers on one database; Telegram delivers an update to the second while the first is
    still sending its reply (a slow platform). The second must not send the stored reply again:
    it answers 503, and Telegram's later delivery finds the reply delivered."""
    from tests.conftest import make_app

    first_app = await make_app(suite_db, tmp_path, clock)
    second_app = await make_app(suite_db, tmp_path, clock, commune=False)
    first = await start_webhook_bot(first_app, fake)
    first_url = fake.webhook["url"]
    second = await start_webhook_bot(second_app, fake)
    second_url = fake.webhook["url"]
    try:
        fake.latency["sendMessage"] = 0.5
        update = fake.send_text(HOA, "xin chào")
        slow = asyncio.create_task(fake.post_webhook(update, url=first_url))
        await fake.wait_for(lambda: fake.calls_to("sendMessage"))
        meanwhile = await fake.post_webhook(update, url=second_url)
        assert meanwhile.status_code == 503
        assert (await slow).status_code == 200
        assert (await fake.post_webhook(update, url=second_url)).status_code == 200
        assert len(fake.sent_to(HOA)) == 1 and fake.sent_to(HOA)[0].text.startswith("Chào bạn!")
    finally:
        await first.stop()
        await second.stop()
    await check_invariants(first_app)
    async with first_app.sessions() as session:
        row = await session.scalar(select(ProcessedMessage))
    assert row.replied_at is not None and row.sending_until is None
    await first_app.close()
    await second_app.close()
