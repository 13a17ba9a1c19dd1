"""The respectful forms of address: a commune chooses "bác" or "ông/bà" instead of "bạn", and
everything the bot says to its people (questions, errors, reminders) speaks that way."""

from __future__ import annotations

import importlib.util
import re
import string
import sys

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select, update

from bot.i18n import get_translator, locales_dir
from bot.reminders.rounds import Rounds
from bot.storage.address_forms import AddressForms
from bot.storage.commune import load_commune_file
from bot.storage.models import OrgUnit
from tests.conftest import EXAMPLE_COMMUNE
from tests.support.reminders import RecordingSender, campaign, resident, vn
from tests.test_reminders_dispatch import dispatcher

_spec = importlib.util.spec_from_file_location("address_forms", locales_dir() / "address_forms.py")
address_forms = importlib.util.module_from_spec(_spec)
sys.modules["address_forms"] = address_forms
_spec.loader.exec_module(address_forms)

YOU = re.compile(r"\b[Bb]ạn\b")


def _po(name: str):
    with (locales_dir() / "vi" / "LC_MESSAGES" / name).open("rb") as handle:
        return read_po(handle, locale="vi")


def _fields(strings) -> set[str]:
    strings = strings if isinstance(strings, tuple) else (strings,)
    return {f for s in strings for _lit, f, _spec, _conv in string.Formatter().parse(s) if f}


@pytest.mark.parametrize("form", address_forms.FORMS, ids=lambda f: f.name)
def test_each_form_covers_every_message_that_says_ban_and_is_up_to_date(form):
    neutral = _po("messages.po")
    overlay = {m.id: m for m in _po(f"address_{form.name}.po") if m.id}
    expected = address_forms.changes(neutral, form)
    assert set(overlay) == set(expected), "run: .venv/bin/python locales/address_forms.py"
    for key, (before, _after) in expected.items():
        message = overlay[key]
        assert address_forms.made_from(message) == address_forms.source_comment(before), (
            f"{key}: made from an older text"
        )
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not any(YOU.search(s) for s in strings), key
        assert _fields(message.string) == _fields(neutral[key].string), key


def test_translator_uses_the_overlay_and_falls_back_to_the_neutral_text():
    assert get_translator("vi", "bac")("common.cancelled") == "Đã dừng. Những gì bác đã gửi vẫn được lưu."
    assert get_translator("vi", "ong_ba")("common.cancelled") == "Đã dừng. Những gì ông/bà đã gửi vẫn được lưu."
    assert get_translator("vi")("common.cancelled") == "Đã dừng. Những gì bạn đã gửi vẫn được lưu."
    # A message without a pronoun is the same in every form; English has no forms.
    assert get_translator("vi", "bac")("consent.agree") == "Tôi đồng ý"
    assert get_translator("en", "bac")("common.cancelled") == get_translator("en")("common.cancelled")
    assert get_translator("vi", "unknown").address == "neutral"


def test_commune_file_validates_the_form(tmp_path):
    text = EXAMPLE_COMMUNE.read_text(encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(text + "\naddress: bac\n", encoding="utf-8")
    assert load_commune_file(good).address == "bac"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\naddress: chu\n", encoding="utf-8")
    with pytest.raises(ValueError, match="address"):
        load_commune_file(bad)


async def _address(app, form: str) -> None:
    async with app.sessions.begin() as session:
        await session.execute(update(OrgUnit).where(OrgUnit.code == "ea-tul").values(address_form=form))
    app.address_forms.forget()


async def _greeted(app, form: str, person, user_id: str, greeting: str, you: str):
    """In a commune that speaks as `form`, `user_id` says hello: the bot's greeting starts with
    `greeting`, its consent question asks `you` (capitalised); the person, at that question."""
    await _address(app, form)
    somebody = person(user_id)
    turn = await somebody.says("alo")
    assert turn.replies[0].text.startswith(greeting)
    assert turn.replies[1].text.endswith(f"\n\n{you} có đồng ý không?")
    return somebody


async def test_a_bac_commune_is_spoken_to_as_bac_from_the_first_message(person, suite_app):
    hoa = await _greeted(suite_app, "bac", person, "hoa", "Cháu chào bác! Cháu là trợ lý tự động (chatbot)", "Bác")
    turn = await hoa.says("dong y")
    assert "Cảm ơn bác đã đồng ý." in turn
    assert "Bác muốn đăng ký danh hiệu nào năm 2026?" in turn
    await hoa.taps("Công dân học tập")
    turn = await hoa.says("Nguyễn Thị Hoa")
    turn = await hoa.says("năm ngoái")  # not a year: the error speaks the same way
    assert "bác" in turn.text.lower() and not YOU.search(turn.text)
    turn = await hoa.says("huy")
    assert not YOU.search(turn.text)


async def test_an_ong_ba_commune_and_back_to_neutral(person, suite_app):
    # A wording corrected by hand in the overlay ("Đây là", not "Chúng tôi là").
    greeting = "Kính chào ông/bà! Đây là trợ lý tự động (chatbot)"
    mai = await _greeted(suite_app, "ong_ba", person, "mai", greeting, "Ông/bà")
    # English readers are unaffected.
    turn = await mai.says("/lang en")
    assert not YOU.search(turn.text)
    await _address(suite_app, "neutral")
    nam = person("nam")
    turn = await nam.says("alo")
    assert turn.replies[1].text.endswith("\n\nBạn có đồng ý không?")


async def test_reminders_speak_in_the_communes_form(app):
    await _address(app, "bac")
    await resident(app, "Nguyễn Thị Hoa", external_id="hoa")  # has not registered yet
    camp = await campaign(app)
    app.clock.set(vn(2026, 3, 24, 8, 0))
    await Rounds(app).run_round(camp.id, "registration", 7)
    sender = RecordingSender()
    await dispatcher(app, sender).run_once()
    (reminder,) = sender.to("hoa")
    assert "Năm 2026 bác chưa đăng ký “Công dân học tập” hay “Gia đình học tập”." in reminder.text
    assert "Bác bấm “Đăng ký” (hoặc gõ /dangky) để bắt đầu ạ" in reminder.text


async def test_a_form_changed_in_a_transaction_is_kept_only_once_committed(suite_app):
    forms = AddressForms(refresh_seconds=3600)
    async with suite_app.sessions() as session:
        assert await forms.of_branch(session, None) == "neutral"
    async with suite_app.sessions() as session, session.begin():
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        commune.address_form = "bac"
        assert await forms.of_branch(session, None) == "bac"  # this transaction's own view
        await session.rollback()
    async with suite_app.sessions() as session:
        assert await forms.of_branch(session, None) == "neutral"
    async with suite_app.sessions.begin() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        commune.address_form = "bac"
    async with suite_app.sessions() as session:  # committed in this process: at once, no forget()
        assert await forms.of_branch(session, None) == "bac"
