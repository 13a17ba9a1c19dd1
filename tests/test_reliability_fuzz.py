"""Fuzzing with hypothesis, deterministic and bounded for CI (derandomized, no example database):

* malformed webhook bodies over real HTTP to the Telegram, Zalo Bot and Zalo OA routes, with the
  right secret or signature so they get past the door: random bytes, random JSON, JSON shaped like
  updates with wrong types and missing fields, huge strings. Never a 500; the process keeps
  serving; the database stays consistent.
* any text a person might type, at each point of the conversation, through the flow engine: a
  non-empty answer, a known conversation state, a consistent database.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router
from bot.storage.models import Conversation, Submission
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.support.chat import Person
from tests.support.images import jpeg
from tests.support.invariants import check_invariants
from tests.support.telegram import WEBHOOK_SECRET, start_webhook_bot
from tests.support.zalo import (  # noqa: F401  (fixtures)
    BOT_WEBHOOK_SECRET,
    fake_bot,
    fake_oa,
    running_bot,
    zalo_settings,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- bodies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
ids = st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.text(max_size=12), st.none(), any_json)
texts = st.one_of(st.text(max_size=200), st.just("/start"), st.just("1"), any_json)


def maybe(strategy):
    """A field that may be missing (None drops it below) or of any type."""
    return st.one_of(st.none(), strategy, any_json)


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


telegram_users = st.fixed_dictionaries(
    {
        "id": ids,
        "is_bot": maybe(st.booleans()),
        "first_name": maybe(st.text(max_size=20)),
        "language_code": maybe(st.sampled_from(["vi", "en", "xx"])),
    }
)
telegram_chats = st.fixed_dictionaries(
    {"id": ids, "type": maybe(st.sampled_from(["private", "group", "channel", "weird"]))}
)
telegram_messages = st.fixed_dictionaries(
    {
        "message_id": ids,
        "date": maybe(st.integers()),
        "chat": maybe(telegram_chats),
        "from": maybe(telegram_users),
        "text": maybe(texts),
        "photo": maybe(
            st.lists(st.fixed_dictionaries({"file_id": ids, "file_size": maybe(st.integers())}), max_size=2)
        ),
        "entities": maybe(
            st.lists(
                st.fixed_dictionaries({"type": maybe(st.text(max_size=10)), "offset": ids, "length": ids}), max_size=2
            )
        ),
    }
)
telegram_updates = st.fixed_dictionaries(
    {
        "update_id": ids,
        "message": maybe(telegram_messages),
        "callback_query": maybe(
            st.fixed_dictionaries(
                {
                    "id": ids,
                    "from": maybe(telegram_users),
                    "data": maybe(texts),
                    "chat_instance": maybe(st.text(max_size=5)),
                    "message": maybe(telegram_messages),
                }
            )
        ),
        "my_chat_member": maybe(any_json),
    }
).map(_drop_none)


def bodies(shaped) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        any_json.map(lambda v: json.dumps(v).encode()),
        shaped.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda n, c: ('{"update_id": 1, "message": {"text": "' + c * n + '"}}').encode(),
            st.integers(1000, 300_000),
            st.sampled_from(["a", "ệ", "\\u0000"]),
        ),
        st.just(b"{" * 5000),  # deep nesting
        st.just(b'"' + b"x" * (1024 * 1024 + 10) + b'"'),  # beyond the body limit
    )


async def _still_serving(url: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(url + "/healthz")).status_code == 200


# ---- Telegram -----------------------------------------------------------------------------------


@pytest.fixture
async def telegram_hook(suite_app):
    async with FakeBotApi() as fake:
        bot = await start_webhook_bot(suite_app, fake)
        try:
            yield suite_app, fake
        finally:
            await bot.stop()


@FUZZ
@given(body=bodies(telegram_updates))
@pytest.mark.slow
async def test_telegram_webhook_takes_any_body(telegram_hook, body):
    app, fake = telegram_hook
    url = fake.webhook["url"]
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url,
            content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET, "Content-Type": "application/json"},
        )
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text, body[:200])
    await _still_serving(url.rsplit("/telegram", 1)[0])
    summary = await check_invariants(app)
    assert not summary.submissions  # garbage never registers anyone


# ---- Zalo Bot Platform --------------------------------------------------------------------------

zalo_messages = st.fixed_dictionaries(
    {
        "message_id": ids,
        "from": maybe(st.fixed_dictionaries({"id": ids, "display_name": maybe(st.text(max_size=10))})),
        "chat": maybe(
            st.fixed_dictionaries({"id": ids, "chat_type": maybe(st.sampled_from(["PRIVATE", "GROUP", "x"]))})
        ),
        "date": maybe(st.integers(min_value=-(2**64), max_value=2**64)),
        "text": maybe(texts),
        "photo": maybe(st.text(max_size=30)),
        "photo_url": maybe(st.sampled_from(["http://127.0.0.1:9/x.jpg", "ftp://x", ""])),
    }
)
zalo_updates = st.fixed_dictionaries(
    {
        "event_name": maybe(
            st.sampled_from(["message.text.received", "message.image.received", "message.sticker.received", "nope"])
        ),
        "message": maybe(zalo_messages),
    }
).map(_drop_none)
zalo_bodies = st.one_of(
    bodies(zalo_updates), zalo_updates.map(lambda u: json.dumps({"ok": True, "result": u}).encode())
)


@asynccontextmanager
async def _zalo(suite_db, tmp_path, clock, **kw):
    async with running_bot(suite_db, tmp_path, clock, webhook=True, **kw) as stack:
        yield stack


async def _zalo_takes(stack, channel, path: str, body: bytes, headers: dict[str, str]) -> None:
    """`body` posted to the webhook at `path`: no server error; once `channel` has handled what it
    queued, the server still answers and nothing was submitted."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(stack.public_url + path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text, body[:200])
    await channel.queue.drain()
    await _still_serving(stack.public_url)
    summary = await check_invariants(stack.app)
    assert not summary.submissions


@pytest.fixture
async def zalo_bot_hook(fake_bot, suite_db, tmp_path, clock):
    async with _zalo(suite_db, tmp_path, clock, **zalo_settings(bot=fake_bot)) as stack:
        yield stack


@FUZZ
@given(body=zalo_bodies)
@pytest.mark.slow
async def test_zalo_bot_webhook_takes_any_body(zalo_bot_hook, body):
    stack = zalo_bot_hook
    headers = {"X-Bot-Api-Secret-Token": BOT_WEBHOOK_SECRET}
    await _zalo_takes(stack, stack.bot_channel, "/zalo/bot/webhook", body, headers)


# ---- Zalo OA --------------------------------------------------------------------------------------

oa_events = st.fixed_dictionaries(
    {
        "app_id": maybe(st.just("APP")),
        "event_name": maybe(
            st.sampled_from(["user_send_text", "user_send_image", "follow", "unfollow", "user_submit_info", "x"])
        ),
        "timestamp": maybe(st.integers()),
        "sender": maybe(st.fixed_dictionaries({"id": ids})),
        "follower": maybe(st.fixed_dictionaries({"id": ids})),
        "message": maybe(
            st.fixed_dictionaries(
                {
                    "msg_id": ids,
                    "text": maybe(texts),
                    "attachments": maybe(
                        st.lists(
                            st.fixed_dictionaries({"type": maybe(st.text(max_size=6)), "payload": maybe(any_json)}),
                            max_size=2,
                        )
                    ),
                }
            )
        ),
    }
).map(_drop_none)


@pytest.fixture
async def zalo_oa_hook(fake_oa, suite_db, tmp_path, clock):
    async with _zalo(suite_db, tmp_path, clock, **zalo_settings(oa=fake_oa, refresh_token="rt-0")) as stack:
        yield stack, fake_oa


@FUZZ
@given(body=bodies(oa_events))
@pytest.mark.slow
async def test_zalo_oa_webhook_takes_any_body(zalo_oa_hook, body):
    stack, fake_oa = zalo_oa_hook
    body = body.replace(b'"APP"', json.dumps(fake_oa.app_id).encode())
    timestamp = str(int(stack.app.clock.now().timestamp() * 1000))  # signed now: older events are replays
    headers = {"X-ZEvent-Signature": fake_oa.signature(body, timestamp), "timestamp": timestamp}
    await _zalo_takes(stack, stack.oa_channel, "/zalo/oa/webhook", body, headers)


# ---- any text, at every point of the conversation ------------------------------------------------

typed = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Mn"]), max_size=40),  # controls, marks
    st.text(
        alphabet="aăâeêioôơuưyđAĂÂĐ\u0300\u0301\u0303\u0309\u0323 0123456789", max_size=40
    ),  # decomposed diacritics
    st.text(alphabet="😀🎓📚👍🏽‍👩‍👧\ufe0f", max_size=30),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "ệ", "😀", " "]), st.integers(1990, 2100)),
    st.sampled_from(
        [
            "1",
            "0",
            "99",
            "-1",
            "1975",
            "  2  ",
            "/",
            "//",
            "/start@x",
            "/dangky extra",
            "menu",
            "xong",
            "Đạt",
            "dat",
            "\u0000",
        ]
    ),
)

# Each point: how to get a fresh person there (from the state before it).
STEPS: dict[str, list[tuple[str, str]]] = {
    "new": [],
    "consent": [("says", "xin chào")],
    "reg.title": [("says", "xin chào"), ("taps", "Tôi đồng ý")],
    "reg.name": [("says", "xin chào"), ("taps", "Tôi đồng ý"), ("taps", "Công dân học tập")],
    "reg.birth_year": [
        ("says", "xin chào"),
        ("taps", "Tôi đồng ý"),
        ("taps", "Công dân học tập"),
        ("says", "Nguyễn Thị Hoa"),
    ],
}
STEPS["reg.branch"] = STEPS["reg.birth_year"] + [("says", "1975")]
STEPS["reg.confirm"] = STEPS["reg.branch"] + [("says", "2")]
STEPS["decl.intro"] = STEPS["reg.confirm"] + [("taps", "Xác nhận")]
STEPS["decl.item"] = STEPS["decl.intro"] + [("taps", "Bắt đầu")]
STEPS["decl.photos"] = STEPS["decl.item"] + [("taps", "Đạt")]
STEPS["decl.summary"] = STEPS["decl.item"] + [("says", "Bỏ qua")] * 10
STEPS["menu"] = STEPS["reg.title"] + [("says", "menu")]


class People:
    """A person waiting at `state` for each example; a new one when the last moved on."""

    def __init__(self, engine: FlowEngine, state: str) -> None:
        self.engine, self.state, self.count, self.current = engine, state, 0, None

    async def at_state(self) -> Person:
        if self.current is not None and await self.state_of(self.current) == self.state:
            return self.current
        self.count += 1
        person = Person(self.engine, f"fuzz-{self.state}-{self.count}")
        for action, value in STEPS[self.state]:
            await getattr(person, action)(value)
        assert self.state == "new" or await self.state_of(person) == self.state, (self.state, person.last)
        self.current = person
        return person

    async def state_of(self, person: Person) -> str | None:
        from bot.storage.people import get_account

        async with self.engine.app.sessions() as session:
            account = await get_account(session, person.channel, person.user_id)
            if account is None:
                return "new"
            return await session.scalar(select(Conversation.state).where(Conversation.account_id == account.id))


@pytest.fixture
def people(request, suite_app):
    return People(FlowEngine(suite_app, build_router()), request.param)


@pytest.mark.parametrize("people", list(STEPS), indirect=True)
@settings(FUZZ, max_examples=20)
@given(text=typed)
async def test_any_text_at_any_point_of_the_conversation(people, suite_app, text):
    person = await people.at_state()
    turn = await person.says(text)
    assert turn.replies and all(r.text.strip() for r in turn.replies), turn
    assert await people.state_of(person) in build_router().states
    await check_invariants(suite_app)


async def test_fuzzed_text_then_the_conversation_still_completes(suite_app):
    """After garbage at every step, a person still finishes a declaration."""
    person = Person(FlowEngine(suite_app, build_router()), "resilient")
    junk = ["\u0000\u200b", "😀" * 500, "ệ" * 2500, "/", "-1"]
    for action, value in STEPS["decl.item"]:
        for noise in junk:
            assert (await person.says(noise)).replies
        if action == "taps":
            person.last = await person.says(value)  # typed labels work as well as buttons
        else:
            await person.says(value)
    await person.says("Đạt")
    await person.sends_photo(jpeg((3, 1, 4)))
    await person.says("Xong")
    for _ in range(9):
        await person.says("Bỏ qua")
    turn = await person.says("Nộp hồ sơ")
    if "Nộp ngay" in turn.choices:  # asked first
        turn = await person.says("Nộp ngay")
    assert "Đã nộp hồ sơ" in turn or "chưa" in turn.text.lower(), turn
    async with suite_app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Submission)) == 1
    await check_invariants(suite_app)
