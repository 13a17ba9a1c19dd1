"""Reliability with real processes: web workers started as `python -m bot run --role web` (Telegram
webhooks, configured by environment variables) and outbox dispatchers in child processes, killed
with SIGKILL at chosen moments while the fake Bot API server holds a call open. Every test ends
with the database invariant checker (tests/support/invariants.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from bot.clock import UTC
from bot.storage.models import Answer, Conversation, Evidence, OutboxMessage, ProcessedMessage, Submission
from bot.storage.outbox import Notice, enqueue
from bot.storage.people import get_or_create_account
from tests.conftest import make_app
from tests.fakes.telegram_bot_api import FakeBotApi, FakeUser, Sent
from tests.support.images import jpeg
from tests.support.invariants import check_invariants
from tests.support.telegram import HOA, fake  # noqa: F401  (fake: a fixture)
from tests.support.workers import DispatchChild, WebWorker

# Real worker processes killed mid-work: in the full run (./dev.sh test --full), not the fast pass.
pytestmark = pytest.mark.slow


class WebhookChat:
    """One person whose updates Telegram delivers to whichever worker is up."""

    def __init__(self, fake: FakeBotApi, user: FakeUser, worker: WebWorker) -> None:
        self.fake, self.user, self.worker = fake, user, worker
        self.redelivered = 0

    async def deliver(self, update: dict) -> list[Sent]:
        """Deliver until answered 200, as Telegram does (a 503 means: again later)."""
        before = len(self.fake.sent_to(self.user))
        for _ in range(100):
            response = await self.worker.post(update)
            if response.status_code != 503:
                break
            self.redelivered += 1
            await asyncio.sleep(0.2)
        assert response.status_code == 200, (response.status_code, response.text, self.worker.log())
        return self.fake.sent_to(self.user)[before:]

    async def says(self, text: str) -> list[Sent]:
        return await self.deliver(self.fake.send_text(self.user, text))

    async def taps(self, label: str) -> list[Sent]:
        return await self.deliver(self.fake.press(self.user, label))

    def texts(self) -> list[str]:
        return [m.text or "" for m in self.fake.sent_to(self.user)]


async def _killed_while(worker: WebWorker, fake: FakeBotApi, update: dict, method: str) -> None:
    """Deliver `update` and kill -9 the worker once it is inside a held `method` call."""
    calls = len(fake.calls_to(method))
    delivery = asyncio.create_task(worker.post(update))
    await fake.wait_for(lambda: len(fake.calls_to(method)) > calls, timeout=30)
    await worker.kill()
    with pytest.raises(httpx.TransportError):  # Telegram got no answer: it will deliver again
        await delivery


async def _processed(app, update: dict) -> ProcessedMessage | None:
    """The processed-message row of a Telegram update (ids are 'm:<chat>:<message>' or 'cb:<query>')."""
    async with app.sessions() as session:
        rows = list(await session.scalars(select(ProcessedMessage)))
    wanted = (
        f"cb:{update['callback_query']['id']}"
        if "callback_query" in update
        else f"m:{update['message']['chat']['id']}:{update['message']['message_id']}"
    )
    found = [r for r in rows if r.message_id == wanted]
    return found[0] if found else None


async def test_kill_9_of_a_web_worker_in_the_middle_of_a_conversation(suite_db, tmp_path, clock, fake):
    """A person registers and declares through webhooks while three workers in turn are killed:
    inside a photo download (nothing committed yet), after a step was committed while its reply
    was on its way (not yet accepted by Telegram), and after the replies were out (while the
    pressed keyboard was being taken away). Each time Telegram redelivers the unanswered update
    to a fresh worker on the same database.

    The rule (bot/flows/engine.py, bot/channels/telegram.py): a step runs exactly once per update;
    its replies are stored with it and sent again on redelivery only while no worker recorded
    them as delivered, and only once the dead worker's lease on them (REPLY_LEASE_SECONDS, 2 s
    here) has run out — until then the redelivery is answered 503 and comes again. So a reply
    Telegram never accepted arrives exactly once, and an update whose replies were out gets
    nothing more. (A kill in the instant after Telegram accepted a reply and before it was
    recorded would show that reply twice: at most one extra copy per kill, never a step run
    twice; the kills here fall outside that instant.)
    """
    app = await make_app(suite_db, tmp_path, clock)
    evidence = tmp_path / "evidence"
    workers = [await WebWorker.start(suite_db, fake, tmp_path / "w1", evidence)]
    try:
        hoa = WebhookChat(fake, HOA, workers[0])
        assert (await hoa.says("xin chào"))[0].text.startswith("Chào bạn!")
        await hoa.taps("Tôi đồng ý")
        await hoa.taps("Công dân học tập")
        await hoa.says("Nguyễn Thị Hoa")
        await hoa.says("1975")
        await hoa.says("2")
        assert "Đã đăng ký Công dân học tập" in (await hoa.taps("Xác nhận"))[0].text
        await hoa.taps("Bắt đầu")
        await hoa.taps("Đạt")

        # 1. Killed while downloading the photo: nothing of this update was committed.
        fake.fail("getFile", status=502, delay=30)
        photo = fake.send_photo(HOA, jpeg((1, 2, 3), size=(320, 240)))
        await _killed_while(workers[0], fake, photo, "getFile")
        assert await _processed(app, photo) is None
        await check_invariants(app)
        workers.append(await WebWorker.start(suite_db, fake, tmp_path / "w2", evidence))
        hoa.worker = workers[-1]
        assert [m.text for m in await hoa.deliver(photo)] == ["Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."]

        # 2. Killed after the step was committed, while its reply was on its way.
        fake.fail("sendMessage", status=502, delay=30, chat_id=HOA.id)
        done = fake.press(HOA, "Xong")
        await _killed_while(workers[1], fake, done, "sendMessage")
        row = await _processed(app, done)
        assert row is not None and row.replied_at is None and row.replies  # committed, not delivered
        async with app.sessions() as session:
            assert (await session.scalar(select(Conversation))).data.get("item") == "2"
        workers.append(await WebWorker.start(suite_db, fake, tmp_path / "w3", evidence))
        hoa.worker = workers[-1]
        again = await hoa.deliver(done)  # Telegram's redelivery: the stored reply, not a second step
        assert len(again) == 1 and again[0].text.startswith("Mục 2/10")
        assert (await _processed(app, done)).replied_at is not None

        for _ in range(2, 11):
            await hoa.taps("Đạt")
            await hoa.taps("Không có ảnh")
        assert "Tổng 100/100 điểm." in hoa.texts()[-1]

        # 3. Killed after the replies were out, while the pressed keyboard was being removed.
        await hoa.taps("Nộp hồ sơ")  # the bot asks to confirm
        fake.fail("editMessageReplyMarkup", status=502, delay=30)
        submit = fake.press(HOA, "Nộp ngay")
        await _killed_while(workers[2], fake, submit, "editMessageReplyMarkup")
        workers.append(await WebWorker.start(suite_db, fake, tmp_path / "w4", evidence))
        hoa.worker = workers[-1]
        assert await hoa.deliver(submit) == []  # answered before the kill: nothing more
        turn = await hoa.says("/trangthai")
        assert turn and "CD-2026-000001" in turn[0].text
    finally:
        for worker in workers:
            await worker.kill()

    texts = hoa.texts()
    assert sum(t.startswith("Đã nhận ảnh 1.") for t in texts) == 1
    assert sum(t.startswith("Mục 2/10") for t in texts) == 1
    assert sum(t.startswith("Đã nộp hồ sơ CD-2026-000001") for t in texts) == 1
    summary = await check_invariants(app)
    assert summary.submissions == {"submitted": 1}
    assert (summary.answers, summary.evidence) == (10, 1)
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Answer)) == 10
        assert (await session.scalar(select(Evidence))).source_channel == "telegram"
        assert (await session.scalar(select(Submission))).score == 100
        unreplied = await session.scalar(
            select(func.count()).select_from(ProcessedMessage).where(ProcessedMessage.replied_at.is_(None))
        )
    assert unreplied == 0
    await app.close()


async def _outbox_rows(app, count: int, first_id: int = 2001) -> list[FakeUser]:
    """`count` people on Telegram with one notice each, due now (real time: the children use it)."""
    users = [FakeUser(first_id + i, f"P{i}") for i in range(count)]
    now = datetime.now(UTC)
    async with app.sessions.begin() as session:
        for i, user in enumerate(users):
            account = await get_or_create_account(session, "telegram", str(user.id), str(user.id), now)
            await enqueue(
                session,
                key=f"rel:{i}",
                account_id=account.id,
                kind="notice",
                notice=Notice("status.none"),
                not_before=now - timedelta(minutes=1),
                now=now,
            )
    return users


async def _statuses(app) -> dict[int, tuple[str, str | None, str]]:
    async with app.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.status, OutboxMessage.claimed_by, OutboxMessage.account_id)
        )
        return {int(key.split(":")[1]): (status, worker, account) for key, status, worker, account in rows}


async def test_kill_9_of_a_dispatcher_in_the_middle_of_a_batch(suite_db, tmp_path, clock, fake):
    """The documented rule (bot/reminders/dispatch.py): rows a dead dispatcher had claimed but not
    handed to the platform are sent by the next one once the lease ran out; the row whose send was
    in flight becomes 'unconfirmed' and is never sent again (it may well have arrived, as here)."""
    app = await make_app(suite_db, tmp_path, clock)
    users = await _outbox_rows(app, 24)
    fake.latency["sendMessage"] = 0.15  # a slow platform: each send is in flight for a while
    first = await DispatchChild.start(suite_db, fake, tmp_path / "d1", name="first", rate=50)
    try:
        await fake.wait_for(lambda: len(fake.calls_to("sendMessage")) >= 8, timeout=30)
        await first.kill()
    finally:
        await first.kill()
    after_kill = await _statuses(app)
    in_flight = {i for i, (status, _, _) in after_kill.items() if status == "sending"}
    assert len(in_flight) == 1 and all(after_kill[i][1] == "first" for i in in_flight)
    counts = {s: sum(1 for v in after_kill.values() if v[0] == s) for s in ("sent", "claimed")}
    assert counts["sent"] >= 1 and counts["claimed"] >= 1
    assert counts["sent"] + counts["claimed"] + 1 == 24
    await check_invariants(app, in_flight_ok=True)
    await fake.wait_for(lambda: len(fake.sent) == counts["sent"] + 1)  # the in-flight one arrives anyway

    # A second dispatcher, its clock past the dead one's lease.
    second = await DispatchChild.start(suite_db, fake, tmp_path / "d2", name="second", shift=15, rate=50)
    report = await second.finish()
    assert (report["recovered"], report["unconfirmed"], report["sent"]) == (counts["claimed"], 1, counts["claimed"])

    final = await _statuses(app)
    assert {i for i, v in final.items() if v[0] == "unconfirmed"} == in_flight
    assert {i for i, v in final.items() if v[0] == "sent"} == set(range(24)) - in_flight
    per_chat = {u.id: len(fake.sent_to(u)) for u in users}
    assert set(per_chat.values()) == {1}  # everyone heard it once: nothing lost, nothing doubled
    summary = await check_invariants(app)
    assert summary.outbox == {"sent": 23, "unconfirmed": 1}
    await app.close()


async def test_two_dispatcher_processes_on_one_outbox(suite_db, tmp_path, clock, fake):
    """Two dispatcher processes start at the same moment on one outbox. Claims are one transaction
    each (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single writer and the status check in the
    claim on SQLite), so no row is sent twice and every row is sent; both take part."""
    app = await make_app(suite_db, tmp_path, clock)
    users = await _outbox_rows(app, 40)
    fake.latency["sendMessage"] = 0.03
    go = tmp_path / "go"
    children = [
        await DispatchChild.start(suite_db, fake, tmp_path / name, name=name, rate=4, go_file=go)
        for name in ("one", "two")
    ]
    try:
        go.touch()
        reports = await asyncio.gather(*(child.finish() for child in children))
    finally:
        for child in children:
            await child.kill()
    assert sum(r["sent"] for r in reports) == 40 and all(r["sent"] > 0 for r in reports)
    assert {u.id: len(fake.sent_to(u)) for u in users} == {u.id: 1 for u in users}
    final = await _statuses(app)
    assert {v[0] for v in final.values()} == {"sent"}
    assert {v[1] for v in final.values()} == {"one", "two"}
    summary = await check_invariants(app)
    assert summary.outbox == {"sent": 40}
    await app.close()
