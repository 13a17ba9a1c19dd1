"""The Zalo OA channel end to end: signed webhooks into the bot's web app, consultation messages
out to the fake OA API, the 7-day window, follow/unfollow — over real HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.channels.base import RateLimited, Unreachable
from bot.messages import Outgoing
from bot.storage.models import Answer, ChannelAccount, Evidence, OperatorAlert, ProcessedMessage, Submission
from bot.storage.people import get_account
from tests.fakes.zalo_oa import FakeZaloOA
from tests.support.images import jpeg, lossless_webp
from tests.support.zalo import (  # noqa: F401  (fixtures)
    fake_oa,
    image_host,
    registers_hoa_up_to_the_first_photo,
    rest_without_photos_and_submit,
    running_bot,
    zalo_settings,
)

# The first message, also to a new follower, says a machine answers.
WELCOME = (
    "Chào bạn! Mình là trợ lý tự động (chatbot), tin nhắn do máy trả lời. "
    'Mình giúp bạn đăng ký "Công dân học tập" hoặc "Gia đình học tập" năm 2026.'
)


class OAPerson:
    def __init__(self, stack, fake: FakeZaloOA, user_id: str) -> None:
        self.stack, self.fake, self.user_id = stack, fake, user_id
        self.url = stack.public_url + "/zalo/oa/webhook"

    async def deliver(self, event: dict, **kwargs) -> list[str]:
        before = len(self.fake.sent)
        response = await self.fake.deliver(self.url, event, **kwargs)
        assert response.status_code == 200, response.text
        await self.stack.oa_channel.queue.drain()
        return [s.text or "" for s in self.fake.sent[before:] if s.user_id == self.user_id]

    async def says(self, text: str, msg_id: str | None = None) -> str:
        return "\n\n".join(await self.deliver(self.fake.text_event(self.user_id, text, msg_id)))

    async def sends_photos(self, *urls: str) -> str:
        return "\n\n".join(await self.deliver(self.fake.image_event(self.user_id, *urls)))

    async def follows(self) -> str:
        return "\n\n".join(await self.deliver(self.fake.follow_event(self.user_id)))


def oa_settings(fake: FakeZaloOA) -> dict:
    _access, refresh = fake.issue_pair()
    return zalo_settings(oa=fake, refresh_token=refresh)


async def test_full_citizen_declaration_on_the_oa(fake_oa, image_host, migrated_database_url, tmp_path, clock):
    async with running_bot(migrated_database_url, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        hoa = OAPerson(stack, fake_oa, "oa-hoa")
        text = await hoa.follows()
        assert text.startswith(WELCOME)
        assert text.endswith("1. Tôi đồng ý\n2. Không đồng ý\n3. Xem chi tiết\nTrả lời 1, 2 hoặc 3.")
        await hoa.says("toi dong y")
        await hoa.says("Công dân học tập")
        await registers_hoa_up_to_the_first_photo(hoa)
        one = image_host.add("tu-sach.jpg", jpeg((120, 80, 40), (640, 480)))
        two = image_host.add("the-thu-vien.jpg", jpeg((40, 80, 120), (480, 640)))
        text = await hoa.sends_photos(one, two)  # one Zalo message carrying two photos
        assert "Đã nhận ảnh 1." in text and "Đã nhận ảnh 2." in text
        await hoa.says("xong")
        await rest_without_photos_and_submit(hoa, 9, "CD-2026-000001")

        async with stack.app.sessions() as session:
            submission = await session.scalar(select(Submission))
            answers = await session.scalar(select(func.count()).select_from(Answer))
            evidence = list(await session.scalars(select(Evidence).order_by(Evidence.id)))
        assert (submission.state, submission.score, submission.recognisable, answers) == ("submitted", 100, True, 10)
        assert [(e.item_id, e.source_channel) for e in evidence] == [("1", "zalo_oa"), ("1", "zalo_oa")]
        # The photo downloaded from the link, cleaned and re-encoded.
        stored = Path(stack.app.settings.evidence_dir, evidence[0].path).read_bytes()
        assert stored == stack.app.evidence.prepare(image_host.images["tu-sach.jpg"]).data
    # Every reply went out with a token from the OAuth refresh, saved in the database first.
    assert fake_oa.refresh_calls == 1 and {s.access_token for s in fake_oa.sent} == {fake_oa.issued[-1][0]}


async def test_bad_signatures_are_dropped_with_200_and_an_alert_and_nothing_is_stored(
    fake_oa, suite_db, tmp_path, clock, caplog
):
    """Zalo retries a webhook that fails for 12 hours and then turns it off: a wrong secret must
    not get it turned off. Bad requests are answered 200, dropped, and an operator is alerted."""
    import logging

    caplog.set_level(logging.WARNING, logger="bot.channels.zalo_oa")
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        url = stack.public_url + "/zalo/oa/webhook"
        event = fake_oa.text_event("oa-x", "xin chào")
        other_key = FakeZaloOA(oa_secret_key="someone-else")
        import json

        raw = json.dumps(event, ensure_ascii=False).encode()
        for signature in ("", "mac=deadbeef", other_key.signature(raw, event["timestamp"])):
            response = await fake_oa.deliver(url, event, signature=signature)
            assert response.status_code == 200
        tampered = dict(event, message={"msg_id": "m", "text": "đã sửa"})
        response = await fake_oa.deliver(url, tampered, signature=fake_oa.signature(raw, event["timestamp"]))
        assert response.status_code == 200
        assert "wrong signature" not in caplog.text  # four: not yet an alert
        async with httpx.AsyncClient() as http:
            response = await http.post(url, content=b"not json", headers={"X-ZEvent-Signature": "mac=00"})
        assert response.status_code == 200
        await other_key.aclose()
        assert stack.oa_channel.received == 0 and stack.oa_channel.dropped == 5 and fake_oa.sent == []
        assert "5 requests with a wrong signature" in caplog.text and "ZALO_OA_SECRET_KEY" in caplog.text
        async with stack.app.sessions() as session:
            (alert,) = (await session.scalars(select(OperatorAlert))).all()
        assert (alert.key, alert.count) == ("zalo_oa_signature", 5)
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 0
            assert await session.scalar(select(func.count()).select_from(ChannelAccount)) == 0


async def test_duplicate_delivery_is_handled_once(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        an = OAPerson(stack, fake_oa, "oa-an")
        event = fake_oa.text_event("oa-an", "chào", msg_id="zalo-msg-1")
        first = await an.deliver(event)
        again = await an.deliver(event)  # Zalo retries when it did not see our 200 in time
        assert len(first) == 1 and first[0].startswith(WELCOME) and again == []
        follow = fake_oa.follow_event("oa-an")
        await an.deliver(follow)
        assert await an.deliver(follow) == []
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 2


async def test_messaging_window_and_unfollow(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        app = stack.app
        sender = stack.runtime.senders.get("zalo_oa")
        binh = OAPerson(stack, fake_oa, "oa-binh")
        await binh.says("xin chào")

        async def account():
            async with app.sessions() as session:
                return await get_account(session, "zalo_oa", "oa-binh")

        clock.advance(timedelta(hours=47))  # the free 48 hours
        await sender.send(await account(), [Outgoing("Còn 1 ngày nữa là hết hạn tự đánh giá.")])
        assert fake_oa.sent[-1].text == "Còn 1 ngày nữa là hết hạn tự đánh giá." and fake_oa.billed == []

        clock.advance(timedelta(hours=2))  # 49 hours: it would be billed, and ZALO_OA_PAID_WINDOW is off
        calls = len(fake_oa.api_calls)
        with pytest.raises(Unreachable) as outside:
            await sender.send(await account(), [Outgoing("Nhắc lần nữa")])
        assert outside.value.reason == "outside_window"
        assert len(fake_oa.api_calls) == calls  # not attempted blindly
        row = await account()
        assert (row.unreachable_reason, row.unreachable_at) == ("outside_window", clock.now())

        text = await binh.says("menu")  # Bình writes again: reachable, and answered
        assert text
        row = await account()
        assert row.unreachable_at is None and row.last_inbound_at == clock.now()

        fake_oa.window_closed.add("oa-binh")  # Zalo itself says -230 (e.g. our clocks differ)
        with pytest.raises(Unreachable):
            await sender.send(row, [Outgoing("Nhắc")])
        assert (await account()).unreachable_reason == "outside_window"
        fake_oa.window_closed.clear()

        await binh.says("chào")
        await binh.deliver(fake_oa.follow_event("oa-binh", "unfollow"))
        row = await account()
        assert (row.unreachable_reason, row.unreachable_at) == ("unfollowed", clock.now())


async def test_evidence_photos_are_uploaded_for_reviewers(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        app = stack.app
        leader = OAPerson(stack, fake_oa, "oa-leader")
        await leader.says("chào")
        photo = jpeg((9, 99, 199), (320, 240))
        blob = app.evidence.store(photo)
        async with app.sessions() as session:
            account = await get_account(session, "zalo_oa", "oa-leader")
        sender = stack.runtime.senders.get("zalo_oa")
        await sender.send(account, [Outgoing("Ảnh mục 1 của hồ sơ CD-2026-000001", photo=Path(blob.path))])
        sent = fake_oa.sent[-1]
        assert sent.text == "Ảnh mục 1 của hồ sơ CD-2026-000001"
        # A stored photo is already a small JPEG: uploaded as it is.
        assert fake_oa.uploads[sent.attachment_id] == app.evidence.open_path(blob.path).read_bytes()


async def test_an_evidence_file_too_large_to_decode_sends_its_caption_and_the_rest(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        app = stack.app
        leader = OAPerson(stack, fake_oa, "oa-leader")
        await leader.says("chào")
        # A 25-megapixel WebP stored as it was sent, before photos were cleaned and bounded.
        legacy = Path(app.settings.evidence_dir) / "ab" / "cd" / "legacy.webp"
        legacy.parent.mkdir(parents=True)
        legacy.write_bytes(lossless_webp((5000, 5000)))
        small = app.evidence.store(jpeg((9, 99, 199), (320, 240)))
        async with app.sessions() as session:
            account = await get_account(session, "zalo_oa", "oa-leader")
        sender = stack.runtime.senders.get("zalo_oa")
        before = len(fake_oa.sent)
        await sender.send(
            account,
            [
                Outgoing("Ảnh 1 mục 1 của hồ sơ CD-2026-000001", photo=Path("ab/cd/legacy.webp")),
                Outgoing("Ảnh 2 mục 1 của hồ sơ CD-2026-000001", photo=Path(small.path)),
            ],
        )
        legacy_caption, second = fake_oa.sent[before:]
        assert (legacy_caption.text, legacy_caption.attachment_id) == ("Ảnh 1 mục 1 của hồ sơ CD-2026-000001", None)
        assert second.text == "Ảnh 2 mục 1 của hồ sơ CD-2026-000001" and second.attachment_id is not None
        assert len(fake_oa.uploads) == 1


async def test_an_english_reader_gets_english_numbered_options(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        mai = OAPerson(stack, fake_oa, "oa-mai")
        await mai.follows()
        text = await mai.says("/lang")
        assert text == "Chọn ngôn ngữ / Choose a language:\n\n1. Tiếng Việt\n2. English\nTrả lời 1 hoặc 2."
        text = await mai.says("English")
        assert text.startswith(
            "Switched to English.\n\nBefore we start, please read:\n"
            "• Data controller: Hội Khuyến học xã Ea Tul, contact: Văn phòng UBND xã Ea Tul.\n"
        )
        assert text.endswith("Do you agree?\n\n1. I agree\n2. I don't agree\n3. Details\nReply 1, 2, or 3.")
        text = await mai.says("2")
        assert text == "No problem. The bot keeps nothing about you. Whenever you want to register, send /start."


def _at(clock, delta: timedelta = timedelta()) -> str:
    """A Zalo event timestamp (epoch milliseconds, as a string) `delta` away from the clock."""
    return str(int((clock.now() + delta).timestamp() * 1000))


async def test_signed_events_are_refused_when_old_or_from_the_future(fake_oa, suite_db, tmp_path, clock):
    """A captured event keeps its valid signature: only its signed time shows it is replayed."""
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        binh = OAPerson(stack, fake_oa, "oa-binh")
        captured = fake_oa.text_event("oa-binh", "xin chào", msg_id="m-1")
        captured["timestamp"] = _at(clock)
        assert (await binh.deliver(captured))[0].startswith(WELCOME)
        unfollow = fake_oa.follow_event("oa-binh", "unfollow")
        unfollow["timestamp"] = _at(clock)

        clock.advance(timedelta(minutes=6))
        refused = []
        for event, stamp in (
            (unfollow, None),  # the captured unfollow, replayed 6 minutes later
            (fake_oa.text_event("oa-binh", "tôi đồng ý"), _at(clock, -timedelta(days=30))),
            (fake_oa.follow_event("oa-mai"), _at(clock, timedelta(minutes=10))),
            (fake_oa.text_event("oa-binh", "1"), "not-a-time"),
        ):
            if stamp is not None:
                event = dict(event, timestamp=stamp)
            refused.append((await fake_oa.deliver(binh.url, event)).status_code)
        assert refused == [200, 200, 200, 200] and stack.oa_channel.dropped == 4  # answered, dropped
        await stack.oa_channel.queue.drain()
        async with stack.app.sessions() as session:
            account = await get_account(session, "zalo_oa", "oa-binh")
            assert account.unreachable_at is None and account.last_inbound_at == clock.now() - timedelta(minutes=6)
            assert await get_account(session, "zalo_oa", "oa-mai") is None
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 1

        # A few minutes of delay (Zalo's retries, clocks apart) is fine.
        late = dict(fake_oa.text_event("oa-binh", "menu"), timestamp=_at(clock, -timedelta(minutes=4)))
        assert await binh.deliver(late)


async def test_the_replay_window_is_a_setting(fake_oa, suite_db, tmp_path, clock):
    settings = dict(oa_settings(fake_oa), zalo_oa_max_event_age_seconds=60)
    async with running_bot(suite_db, tmp_path, clock, **settings) as stack:
        url = stack.public_url + "/zalo/oa/webhook"
        two_minutes = dict(fake_oa.text_event("oa-an", "chào"), timestamp=_at(clock, -timedelta(minutes=2)))
        assert (await fake_oa.deliver(url, two_minutes)).status_code == 200
        assert stack.oa_channel.dropped == 1 and stack.oa_channel.received == 0
        half_a_minute = dict(fake_oa.text_event("oa-an", "chào"), timestamp=_at(clock, -timedelta(seconds=30)))
        assert (await fake_oa.deliver(url, half_a_minute)).status_code == 200


async def test_events_with_wrongly_typed_fields_are_answered_200_and_skipped(fake_oa, suite_db, tmp_path, clock):
    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        url = stack.public_url + "/zalo/oa/webhook"
        text = {"msg_id": "m", "text": "xin chào"}
        odd = [
            {"event_name": "user_send_text", "sender": "oa-x", "message": text},
            {"event_name": "user_send_text", "sender": ["oa-x"], "message": text},
            {"event_name": "user_send_text", "sender": {"id": {"nested": 1}}, "message": text},
            {"event_name": "user_send_text", "sender": {"id": True}, "message": text},
            {"event_name": "user_send_text", "sender": {"id": "oa-x"}, "message": "xin chào"},
            {"event_name": "user_send_text", "sender": {"id": "oa-x"}, "message": ["xin chào"]},
            {"event_name": "follow", "follower": "oa-x"},
            {"event_name": "follow", "follower": [{"id": "oa-x"}]},
            {"event_name": "unfollow", "follower": 42.5},
            {"event_name": ["user_send_text"], "sender": {"id": "oa-x"}, "message": text},
            {"event_name": {"name": "follow"}, "follower": {"id": "oa-x"}},
        ]
        statuses = []
        for fields in odd:
            event = {"app_id": fake_oa.app_id, "timestamp": _at(clock), **fields}
            statuses.append((await fake_oa.deliver(url, event)).status_code)
        assert statuses == [200] * len(odd)
        await stack.oa_channel.queue.drain()
        assert stack.oa_channel.received == len(odd) and fake_oa.sent == []
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ChannelAccount)) == 0
        # The worker is fine: the next ordinary message is answered.
        x = OAPerson(stack, fake_oa, "oa-x")
        assert (await x.says("xin chào")).startswith(WELCOME)
        # Photos whose attachments are not a list: the person is told the bot cannot read that.
        for attachments in (5, {"url": "x"}, "x"):
            event = {
                "app_id": fake_oa.app_id,
                "timestamp": _at(clock),
                "event_name": "user_send_image",
                "sender": {"id": "oa-x"},
                "message": {"msg_id": f"img-{attachments!r}", "attachments": attachments},
            }
            assert (await x.deliver(event))[0].startswith("Bot chưa đọc được loại tin nhắn này.")


async def test_the_paid_window_bills_from_48_hours_to_7_days_and_errors_say_what_to_fix(
    fake_oa, suite_db, tmp_path, clock
):
    """ZALO_OA_PAID_WINDOW: 48 h – 7 days is billed; without a Zalo Cloud Account Zalo refuses
    (-320), which is an operator's billing matter, not the person's; after 7 days -230."""
    from bot.channels.base import SendError

    settings = dict(oa_settings(fake_oa), zalo_oa_paid_window=True)
    async with running_bot(suite_db, tmp_path, clock, **settings) as stack:
        sender = stack.runtime.senders.get("zalo_oa")
        chi = OAPerson(stack, fake_oa, "oa-chi")
        await chi.says("xin chào")

        async def account():
            async with stack.app.sessions() as session:
                return await get_account(session, "zalo_oa", "oa-chi")

        clock.advance(timedelta(days=3))
        with pytest.raises(SendError) as billing:
            await sender.send(await account(), [Outgoing("Nhắc hạn")])
        assert billing.value.category == "billing" and "-320" in str(billing.value)
        assert (await account()).unreachable_at is None  # the person is not at fault

        fake_oa.cloud_account = True  # the association links a Zalo Cloud Account
        await sender.send(await account(), [Outgoing("Nhắc hạn")])
        assert fake_oa.billed == ["oa-chi"]

        for code, category in ((-221, "permission"), (-248, "permission"), (-240, "billing"), (-321, "billing")):
            fake_oa.script("message", (200, {"error": code, "message": "scripted"}))
            with pytest.raises(SendError) as error:
                await sender.send(await account(), [Outgoing("Nhắc hạn")])
            assert error.value.category == category, code
        fake_oa.script("message", (200, {"error": -234, "message": "quota"}))
        with pytest.raises(RateLimited) as quota:
            await sender.send(await account(), [Outgoing("Nhắc hạn")])
        assert quota.value.category == "quota"

        clock.advance(timedelta(days=4, hours=1))  # past 7 days
        with pytest.raises(Unreachable) as outside:
            await sender.send(await account(), [Outgoing("Nhắc hạn")])
        assert outside.value.reason == "outside_window"


async def test_the_quota_check_keeps_a_reminder_from_being_refused(fake_oa, suite_db, tmp_path, clock):
    """ZALO_OA_QUOTA_CHECK: before a queued message Zalo is asked whether a free one is left."""
    settings = dict(oa_settings(fake_oa), zalo_oa_quota_check=True)
    async with running_bot(suite_db, tmp_path, clock, **settings) as stack:
        sender = stack.runtime.senders.get("zalo_oa")
        dan = OAPerson(stack, fake_oa, "oa-dan")
        await dan.says("xin chào")
        async with stack.app.sessions() as session:
            account = await get_account(session, "zalo_oa", "oa-dan")
        await sender.send_queued(account, Outgoing("Nhắc hạn"))
        assert fake_oa.sent[-1].text == "Nhắc hạn" and fake_oa.api_calls[-2:] == ["quota", "message"]
        fake_oa.replies_since["oa-dan"] = 8  # the free replies since Dân last wrote are used up
        sent = len(fake_oa.sent)
        with pytest.raises(Unreachable):
            await sender.send_queued(account, Outgoing("Nhắc lần nữa"))
        assert len(fake_oa.sent) == sent and fake_oa.api_calls[-1] == "quota"


async def test_what_an_operator_must_fix_shows_in_the_outbox_report_and_the_officer_digest(
    fake_oa, suite_db, tmp_path, clock
):
    """A billed reminder refused for want of a Zalo Cloud Account is held up as "billing":
    `hoctap outbox --problems` and the officer's digest say so."""
    from sqlalchemy import select as sql_select

    from bot.reminders.dispatch import Dispatcher
    from bot.reminders.report import outbox_status
    from bot.reminders.zalo_lines import zalo_blocks
    from bot.storage.models import Campaign
    from bot.storage.outbox import Notice, enqueue, render_notice
    from tests.support.reminders import VirtualTimer

    settings = dict(oa_settings(fake_oa), zalo_oa_paid_window=True)
    async with running_bot(suite_db, tmp_path, clock, **settings) as stack:
        app = stack.app
        await OAPerson(stack, fake_oa, "oa-em").says("xin chào")
        clock.advance(timedelta(days=3))
        async with app.sessions.begin() as session:
            account = await get_account(session, "zalo_oa", "oa-em")
            campaign = await session.scalar(sql_select(Campaign))
            await enqueue(
                session,
                key="remind:test",
                account_id=account.id,
                kind="reminder",
                campaign_id=campaign.id,
                notice=Notice("remind.due_today", {"what": "x", "date": "y"}),
                not_before=clock.now(),
                now=clock.now(),
            )
        await Dispatcher(app, stack.runtime.senders, worker_id="w1", timer=VirtualTimer(app.clock)).run_once()
        lines: list[str] = []
        await outbox_status(app, lines.append, problems=True, limit=10)
        assert "held up for an operator (last 7 days): billing 1" in lines
        assert any("remind:test" in line and "[billing]" in line and "-320" in line for line in lines)
        async with app.sessions() as session:
            blocks = await zalo_blocks(session, campaign, app.settings, clock.now())
        text = render_notice(Notice("digest.zalo_problems", blocks[0]["params"]), "vi").text
        assert "tài khoản Zalo Cloud" in text and ": 1 tin" in text


async def test_full_household_declaration_on_the_oa_with_quick_replies(fake_oa, image_host, suite_db, tmp_path, clock):
    """Choices come as numbered text and as quick-reply buttons (`oa.query.hide`); a tap comes
    back as the person's text carrying the number, read like a typed one."""

    async def taps(person: OAPerson, title: str) -> str:
        (last,) = [s for s in fake_oa.sent if s.user_id == person.user_id][-1:]
        assert title in [b["title"] for b in last.buttons], [b["title"] for b in last.buttons]
        return "\n\n".join(await person.deliver(fake_oa.tap(person.user_id, last, title)))

    async with running_bot(suite_db, tmp_path, clock, **oa_settings(fake_oa)) as stack:
        ba = OAPerson(stack, fake_oa, "oa-ba")
        text = await ba.follows()
        assert text.startswith(WELCOME)
        consent = fake_oa.sent[-1]
        assert [(b["title"], b["type"], b["payload"]) for b in consent.buttons] == [
            ("Tôi đồng ý", "oa.query.hide", "1"),
            ("Không đồng ý", "oa.query.hide", "2"),
            ("Xem chi tiết", "oa.query.hide", "3"),
        ]
        text = await taps(ba, "Tôi đồng ý")
        assert "1. Công dân học tập\n2. Gia đình học tập" in text
        text = await taps(ba, "Gia đình học tập")
        assert "Họ và tên" in text
        await ba.says("Y Bih Niê")
        text = await ba.says("1970")
        assert "1. Buôn Ken" in text
        text = await taps(ba, "Buôn Ken")
        assert "chủ hộ" in text
        await ba.says("có")
        await ba.says("1")  # add a member
        await ba.says("H'Nga Niê")
        await ba.says("1974")
        text = await taps(ba, "Vợ/chồng")
        assert "H'Nga Niê" in text
        text = await taps(ba, "Đã đủ")
        assert "Thông tin đã đúng chưa?" in text
        text = await taps(ba, "Xác nhận")
        assert "GD-2026-000001" in text
        text = await taps(ba, "Bắt đầu")
        assert text.startswith("Mục 1.1 — câu 1/10 (tối đa 10 điểm)")
        for _ in range(3):
            text = await ba.says("khong ap dung")
        await ba.says("Đạt")
        await ba.says("Không có ảnh")
        await ba.says("dat")
        photo = image_host.add("lop-hoc.jpg", jpeg((10, 120, 200), (800, 600)))
        text = await ba.sends_photos(photo)
        assert "Đã nhận ảnh 1." in text
        await ba.says("xong")
        await rest_without_photos_and_submit(ba, 5, "GD-2026-000001", choose=partial(taps, ba), confirm="Nộp ngay")
        async with stack.app.sessions() as session:
            submission = await session.scalar(select(Submission))
        assert (submission.state, submission.score, submission.subject_kind) == ("submitted", 100, "household")
    assert all(len(s.buttons) <= 5 for s in fake_oa.sent) and fake_oa.billed == []
