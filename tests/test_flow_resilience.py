"""Transcripts under stress: restarts, duplicate deliveries, crashes, stale buttons, odd input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import NullPool, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.flows.router import Router
from bot.messages import Kind
from bot.storage import db
from bot.storage.deliveries import foldable_answer, save_position, save_position_and_record
from bot.storage.models import Answer, ChannelAccount, Conversation, Evidence, ProcessedMessage, Submission
from bot.storage.submissions import save_answer
from tests.conftest import SUITE_DB, make_app
from tests.support.chat import Person
from tests.support.images import jpeg
from tests.support.journeys import Tap, answer
from tests.support.scripts import agree, register_citizen


def _chat(app, user_id: str) -> Person:
    """Someone writing to a bot process running on `app`."""
    return Person(FlowEngine(app, build_router()), user_id)


async def test_restart_in_the_middle_resumes_at_the_same_question(suite_db, tmp_path, clock):
    app = await make_app(suite_db, tmp_path, clock)
    hoa = _chat(app, "hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.sends_photo(jpeg((7, 7, 7)))
    await hoa.taps("Xong")
    before = await hoa.taps("Đạt một phần")  # item 2, now on the photo question
    assert before.text == 'Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".'
    await app.close()

    # A new process on the same database file, days later.
    clock.advance(timedelta(days=3))
    app2 = await make_app(suite_db, tmp_path, clock, commune=False)
    hoa2 = _chat(app2, "hoa")
    turn = await hoa2.says("alo")
    assert "Bạn bấm một nút" not in turn
    assert turn.text.endswith('Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".')
    turn = await hoa2.sends_photo(jpeg((8, 8, 8)))
    assert turn.text == "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."
    turn = await hoa2.taps("Xong")
    assert turn.text.startswith("Mục 3/10")
    async with app2.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Answer)) == 2
        assert await session.scalar(select(func.count()).select_from(Evidence)) == 2
    await app2.close()


async def test_restart_mid_registration_keeps_the_draft(suite_db, tmp_path, clock):
    app = await make_app(suite_db, tmp_path, clock)
    ba = _chat(app, "ba")
    await agree(ba)
    await answer(ba, Tap("Gia đình học tập"), "Hoàng Văn Ba")
    await app.close()
    app2 = await make_app(suite_db, tmp_path, clock, commune=False)
    ba2 = _chat(app2, "ba")
    turn = await ba2.says("1961")
    assert turn.text == "Bạn ở thôn/buôn/khu phố nào?"
    await app2.close()


async def test_duplicate_delivery_is_processed_once(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    first = await hoa.sends_photo(jpeg((3, 3, 3)), message_id="photo-1")
    assert first.text == "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."
    again = await hoa.sends_photo(jpeg((3, 3, 3)), message_id="photo-1")
    assert again.duplicate and again.replies == []
    text_again = await hoa.says("xong", message_id="done-1")
    assert text_again.text.startswith("Mục 2/10")
    repeat = await hoa.says("xong", message_id="done-1")
    assert repeat.duplicate and repeat.replies == []
    async with suite_app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Evidence)) == 1


async def test_a_conversation_moved_by_another_worker_is_not_overwritten(person, suite_app):
    """The engine writes a conversation's new place with its version check (storage/deliveries.py):
    a worker that read it before another moved it writes nothing and is told to start over."""
    hoa = person()
    await register_citizen(hoa)
    account, stale = await _conversation_as_read(suite_app, hoa)
    await hoa.taps("Bắt đầu")  # another worker moves the conversation on
    stale.state = "start.menu"
    with pytest.raises(StaleDataError):
        async with suite_app.sessions.begin() as session:
            await save_position(session, stale)
    # The same check where the position is written together with the processed message (one
    # statement on PostgreSQL): neither row is written.
    with pytest.raises(StaleDataError):
        async with suite_app.sessions.begin() as session:
            await save_position_and_record(session, stale, **_processed_row(account.id, "late-worker"))
    async with suite_app.sessions() as session:
        assert (await session.get(Conversation, account.id)).state != "start.menu"
        assert (
            await session.scalar(select(ProcessedMessage).where(ProcessedMessage.message_id == "late-worker")) is None
        )
    turn = await hoa.taps("Đạt")  # the person goes on from where the other worker left them
    assert turn.choices == ["Không có ảnh"]


NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


async def _conversation_as_read(app, someone) -> tuple[ChannelAccount, Conversation]:
    """Someone's account and conversation as a worker read them (detached, kept as they were)."""
    async with app.sessions() as session:
        account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == someone.user_id))
        conversation = await session.get(Conversation, account.id)
        session.expunge(conversation)
    return account, conversation


def _processed_row(account_id: int, message_id: str) -> dict:
    now = datetime.now(UTC)
    return dict(
        channel="telegram",
        message_id=message_id,
        account_id=account_id,
        received_at=now,
        replies=[],
        sending_until=None,
    )


async def test_a_message_another_worker_recorded_first_is_not_recorded_twice(person, suite_app):
    """Two workers handling the same message: the one that writes second fails on the unique key
    of the processed message, and its new position of the conversation is rolled back with it."""
    hoa = person()
    await register_citizen(hoa)
    account, conversation = await _conversation_as_read(suite_app, hoa)
    async with suite_app.sessions.begin() as session:
        session.add(ProcessedMessage(**_processed_row(account.id, "both-workers")))
    conversation.state = "start.menu"
    with pytest.raises(IntegrityError):
        async with suite_app.sessions.begin() as session:
            await save_position_and_record(session, conversation, **_processed_row(account.id, "both-workers"))
    async with suite_app.sessions() as session:
        assert (await session.get(Conversation, account.id)).state != "start.menu"
        rows = await session.scalars(select(ProcessedMessage).where(ProcessedMessage.message_id == "both-workers"))
        assert len(rows.all()) == 1


async def test_a_level_step_written_without_the_session_writes_all_of_it_or_nothing(person, suite_app):
    """A level step's answer and score are written with the conversation and the processed
    message, without the session's unit of work (deliveries.foldable_answer): on PostgreSQL as
    one statement, on SQLite as four in the step's transaction. When another worker changed the
    submission or the conversation since they were read, none of the four is written, and the
    message is handled again (IntegrityError or StaleDataError, as from the session's flush)."""
    postgres = SUITE_DB == "postgres"
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.taps("Không có ảnh")  # item 1 answered: item 2 is a typical level step
    account, conversation = await _conversation_as_read(suite_app, hoa)

    async def level_step(message_id: str, meanwhile=None, read_before=None) -> None:  # noqa: ANN001
        async with db.transaction(suite_app.sessions) as session:
            submission = await session.scalar(select(Submission))
            if read_before is not None:  # as read before another worker's change
                set_committed_value(submission, "version", read_before)
            criteria_set = suite_app.catalog.sets[submission.criteria_set_id]
            await save_answer(session, submission, criteria_set, "2", "achieved", actor_person_id=None, now=NOW)
            folded = foldable_answer(session)
            assert folded is not None
            if meanwhile is not None:
                await meanwhile()
            conversation.state = "decl.photos"
            await save_position_and_record(session, conversation, folded, **_processed_row(account.id, message_id))

    async def another_worker_changes_the_submission() -> None:
        async with suite_app.sessions.begin() as session:
            (await session.scalar(select(Submission))).updated_at = NOW + timedelta(seconds=1)

    async def stored() -> tuple:
        async with suite_app.sessions() as session:
            submission = await session.scalar(select(Submission))
            return (
                (await session.get(Conversation, account.id)).version,
                submission.version,
                submission.score,
                await session.scalar(select(func.count()).select_from(Answer)),
                await session.scalar(select(func.count()).select_from(ProcessedMessage)),
            )

    before = await stored()
    if postgres:
        with pytest.raises(IntegrityError):  # the NOT NULL on the processed message's channel
            await level_step("stale-submission", meanwhile=another_worker_changes_the_submission)
    else:
        # SQLite's write lock is taken at the step's first statement: no other worker can change
        # the submission meanwhile. One read before another worker's change is refused all the same.
        await another_worker_changes_the_submission()
        with pytest.raises(StaleDataError):
            await level_step("stale-submission", read_before=before[1])
    submission_moved = await stored()
    assert submission_moved[0] == before[0]  # the conversation did not move
    assert submission_moved[1] == before[1] + 1  # only the other worker's change
    assert submission_moved[2:] == before[2:]  # no score, answer or processed message

    conversation.version -= 1  # as read before another worker moved the conversation
    with pytest.raises(StaleDataError):
        await level_step("stale-conversation")
    assert await stored() == submission_moved

    conversation.version += 1
    await level_step("as-read")
    conversation_version, submission_version, score, answers, processed = await stored()
    assert (conversation_version, submission_version) == (submission_moved[0] + 1, submission_moved[1] + 1)
    assert (score, answers, processed) == (20, 2, submission_moved[4] + 1)


@pytest.mark.skipif(SUITE_DB != "postgres", reason="a server that drops connections: PostgreSQL pass only")
async def test_a_pooled_connection_the_server_dropped_costs_the_person_nothing(person, suite_app):
    """Connections used moments ago are not pinged (storage/db.py); when the server has dropped
    one all the same, the message is handled again on a fresh connection and answered as usual."""
    hoa = person()
    await register_citizen(hoa)
    # The server ends every session of the bot's pool (as a restart would); the pool still holds
    # the connections, given back moments ago.
    outside = create_async_engine(suite_app.engine.url.render_as_string(hide_password=False), poolclass=NullPool)
    async with outside.connect() as connection:
        ended = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await outside.dispose()
    assert ended >= 1
    turn = await hoa.taps("Bắt đầu")
    assert turn.text.startswith("Mục 1/10"), turn
    assert (await hoa.taps("Đạt")).choices == ["Không có ảnh"]


async def test_crash_between_commit_and_reply_resends_the_stored_reply(engine, suite_app):
    hoa = Person(engine, "hoa")
    await register_citizen(hoa)

    async def broken_send(replies):
        raise ConnectionError("network down while replying")

    from bot.messages import Incoming

    msg = Incoming("test", "hoa", Kind.CHOICE, message_id="start-1", choice="start")
    # A bare choice value (no prompt number) is accepted when the current question offers it.
    with pytest.raises(ConnectionError):
        await engine.process(msg, broken_send)
    async with suite_app.sessions() as session:
        row = await session.scalar(select(ProcessedMessage).where(ProcessedMessage.message_id == "start-1"))
        assert row.replied_at is None and row.replies
    sent = []

    async def good_send(replies):
        sent.append(replies)

    outcome = await engine.process(msg, good_send)
    assert outcome.duplicate
    assert sent and sent[0][0].text.startswith("Mục 1/10")
    # Once delivered, a third copy is silent, and the conversation did not advance twice.
    outcome = await engine.process(msg, good_send)
    assert outcome.duplicate and outcome.replies == []
    turn = await hoa.says("1")
    assert turn.text == 'Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".'


async def test_a_bug_in_a_handler_keeps_earlier_answers_and_says_what_to_do(suite_app):
    router = Router()
    router.include(build_router())
    boom = Router()

    @boom.command("boom", needs_consent=False)
    async def explode(ctx, args):
        ctx.account.locale = "en"  # would be committed if the transaction survived
        raise RuntimeError("bug")

    router.include(boom)
    hoa = Person(FlowEngine(suite_app, router), "hoa")
    await register_citizen(hoa)
    turn = await hoa.says("/boom")
    assert turn.text == (
        "Xin lỗi, bot vừa gặp lỗi. Những gì bạn gửi trước đó vẫn được lưu. Bạn gửi lại tin nhắn vừa rồi nhé."
    )
    turn = await hoa.says("1")
    assert turn.text.startswith("Mục 1/10")  # still Vietnamese, still at the same place


async def test_stale_button_from_an_old_message(person):
    hoa = person()
    await agree(hoa)
    consent_turn_token = "1:agree"
    await hoa.taps("Công dân học tập")
    turn = await hoa.presses_token("2:gd")  # the title button, pressed again after moving on
    assert turn.text.startswith("Nút đó thuộc tin nhắn cũ. Câu hỏi hiện tại là:")
    assert turn.text.endswith("Họ và tên của bạn?")
    turn = await hoa.presses_token(consent_turn_token)
    assert "Nút đó thuộc tin nhắn cũ" in turn


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        (Kind.STICKER, "Cảm ơn bạn! Bot chỉ đọc được chữ, nút bấm và ảnh."),
        (Kind.VOICE, "Bot chưa nghe được tin nhắn thoại. Bạn bấm nút hoặc gõ chữ nhé."),
        (Kind.FILE, "Bot chỉ nhận ảnh (JPG, PNG). Tệp này không phải ảnh; bạn chụp ảnh rồi gửi lại nhé."),
        (Kind.UNSUPPORTED, "Bot chưa đọc được loại tin nhắn này. Bạn bấm nút, gõ chữ hoặc gửi ảnh nhé."),
    ],
)
async def test_other_message_kinds_get_a_clear_message_and_the_question_again(person, kind, answer):
    hoa = person()
    await agree(hoa)
    await hoa.taps("Công dân học tập")
    turn = await hoa.sends(kind)
    assert turn.text == f"{answer}\n\nHọ và tên của bạn?"


async def test_photo_where_none_is_expected(person):
    hoa = person()
    await agree(hoa)
    await hoa.taps("Công dân học tập")
    turn = await hoa.sends_photo(jpeg())
    assert turn.text.startswith("Mình đã nhận ảnh, nhưng lúc này chưa cần ảnh.")
    assert turn.text.endswith("Họ và tên của bạn?")


async def test_empty_and_very_long_text(person):
    hoa = person()
    await agree(hoa)
    await hoa.taps("Công dân học tập")
    turn = await hoa.says("   ")
    assert turn.text == "Tin nhắn trống. Bạn trả lời lại nhé.\n\nHọ và tên của bạn?"
    turn = await hoa.says("a" * 5000)
    assert turn.text.startswith("Tin nhắn dài quá.")


async def test_photo_download_failure_asks_to_resend(person):
    from bot.messages import Incoming, PhotoInput

    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")

    async def fails() -> bytes:
        raise TimeoutError("platform slow")

    turn = await hoa.deliver(Incoming("test", hoa.user_id, Kind.PHOTO, message_id="p-x", photo=PhotoInput(fails)))
    assert turn.text.startswith("Mình chưa tải được ảnh. Bạn gửi lại ảnh nhé.")
    assert turn.choices == ["Không có ảnh"]


async def test_a_level_button_of_an_earlier_item_does_not_answer_the_current_one(person, suite_app):
    """Every item offers the same levels: a late press on item 1's buttons must not be taken as
    the answer to item 2."""
    hoa = person()
    await register_citizen(hoa)
    item_one = await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.taps("Không có ảnh")
    hoa.last = item_one  # the phone still shows item 1's question
    turn = await hoa.taps("Chưa đạt")
    assert turn.text.startswith("Nút đó thuộc tin nhắn cũ.") and "Mục 2/10" in turn.text
    async with suite_app.sessions() as session:
        assert {a.item_id: a.level for a in await session.scalars(select(Answer))} == {"1": "achieved"}
