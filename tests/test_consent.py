"""Consent that can be proven: each consent is a row naming the account (and the person once
registration creates one), the time, the version and sha256 of the exact text shown, the locale,
the controller and the purposes; withdrawing (/rutlai, or deleting one's data) is a row of its
own and stops processing until the person agrees again."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.flows.consent import CONSENT_VERSION
from bot.i18n import LOCALES, Translator
from bot.storage.commune import apply_commune, parse_commune
from bot.storage.consents import PURPOSES
from bot.storage.models import Answer, ChannelAccount, Consent, Conversation, Person, Submission
from bot.storage.people import Role
from tests.conftest import START, make_app
from tests.support.chat import Person as ChatPerson
from tests.support.journeys import Tap, register
from tests.support.review import make_staff, submit_citizen
from tests.support.scripts import register_citizen

CONTROLLER = "Hội Khuyến học xã Ea Tul, liên hệ: Văn phòng UBND xã Ea Tul"
CONSENT_CHOICES = ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]


def notice_in(text: str, locale: str = "vi") -> str:
    """The consent text inside the question as shown (the catalog's frame taken off)."""
    before, after = Translator(locale)("consent.ask", notice="\0").split("\0")
    assert text.startswith(before) and text.endswith(after), text
    return text[len(before) : len(text) - len(after)]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def rows(app) -> list[Consent]:
    async with app.sessions() as session:
        return list(await session.scalars(select(Consent).order_by(Consent.id)))


async def account_of(app, user_id: str) -> ChannelAccount:
    async with app.sessions() as session:
        return await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == user_id))


# The consent texts as they are now. Changing one of them changes what people agree to: give the
# text a new CONSENT_VERSION (bot/flows/consent.py) and put the new fingerprints here.
PINNED = {
    "2026-12": {
        "vi": {
            "consent.notice": "a7dac74d3e5882db1432fce3b833438d9345fbcfa5e702642c1fbc47f4d28d41",
            "reg.guardian_ask": "2b511b45934c31a16b00a96703e352daa31c9e20e60677cb3ef342ce0abb3816",
            "reg.guardian_ask_older": "9fc8cafec5d1d799294fb9483c594be9853b006c82f62a21a410dbdea1393311",
            "reg.proxy.guardian_ask": "f98b08219af2ed3382e85f379f60adbfd7ef99106b3f8093775bad5d13226106",
            "reg.proxy.guardian_ask_older": "e471854a2899bc22c3e85ed9d48b4393e4bccaca18cea750ecd2c90d59ad3a7c",
        },
        "en": {
            "consent.notice": "ac36abc150f0167c5c9b97046b3d04da938f25fcbf043e75f1370814cd40cf55",
            "reg.guardian_ask": "c472ec7de11aa92e22d889821cfa1a2a210107ab1bc438dd51dfe7d8db953ee7",
            "reg.guardian_ask_older": "e055da3e426837b5a74f5c1a0cef877b757a2296478635a16b1517df68372ee2",
            "reg.proxy.guardian_ask": "64d28f527792fa4d26c6356719c625831dfd7cf6771f8dade484d0f44069951f",
            "reg.proxy.guardian_ask_older": "2c34b55c108400ebf17b1080410e2a8f7feb071b39786da5a4ffb5b377bed919",
        },
    },
}
VERSIONED_KEYS = (
    "consent.notice",
    "reg.guardian_ask",
    "reg.guardian_ask_older",
    "reg.proxy.guardian_ask",
    "reg.proxy.guardian_ask_older",
)


def test_consent_texts_are_the_ones_their_version_names():
    current = {locale: {key: sha256(Translator(locale)(key)) for key in VERSIONED_KEYS} for locale in LOCALES}
    assert CONSENT_VERSION in PINNED, "a new consent version needs its fingerprints pinned here"
    assert current == PINNED[CONSENT_VERSION], (
        "a consent text changed: give it a new CONSENT_VERSION and pin these fingerprints",
        current,
    )


def test_the_privacy_page_quotes_the_consent_text_of_this_version():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "privacy.md").read_text(encoding="utf-8")
    assert f"Version **{CONSENT_VERSION}**" in page
    for locale in LOCALES:
        assert f"```\n{Translator(locale)('consent.notice')}\n```" in page, locale


async def test_consent_is_a_row_with_the_exact_text_and_gets_its_person_at_registration(person, suite_app):
    hoa = person("hoa")
    turn = await hoa.says("alo")
    shown = notice_in(turn.replies[1].text)
    assert shown.startswith(f"• Bên kiểm soát dữ liệu: {CONTROLLER}.\n")
    assert await rows(suite_app) == []  # shown is not agreed: silence is no consent
    await hoa.taps("Tôi đồng ý")

    account = await account_of(suite_app, "hoa")
    [given] = await rows(suite_app)
    assert (given.kind, given.method, given.person_id, given.account_id) == ("given", "chat", None, account.id)
    assert (given.text_version, given.text_sha256, given.locale) == ("2026-12", sha256(shown), "vi")
    assert (given.controller, given.purposes) == (CONTROLLER, list(PURPOSES))
    assert given.at == START and given.at.utcoffset() is not None
    assert account.consent_at == START

    await register(hoa, "Công dân học tập", "Nguyễn Thị Hoa", "1975", "2")
    async with suite_app.sessions() as session:
        hoa_person = await session.scalar(select(Person))
    [given] = await rows(suite_app)
    assert given.person_id == hoa_person.id and hoa_person.consent_at == START

    turn = await hoa.says("/dulieu")
    when = Translator("vi").datetime(START)
    assert (
        f"Tài khoản nhắn tin: test\nĐồng ý lúc {when}, nội dung bản 2026-12, bên kiểm soát dữ liệu: {CONTROLLER}\n"
        "Muốn rút lại đồng ý, bạn gõ /rutlai.\n\nMuốn xóa, bạn gõ /xoadulieu."
    ) in turn


async def test_what_is_agreed_is_the_text_last_shown_in_its_language(person, suite_app):
    john = person("john")
    await john.says("hello")
    turn = await john.command("lang")
    turn = await john.taps("English")
    shown = notice_in(turn.replies[-1].text, "en")
    assert shown.startswith(
        "• Data controller: Hội Khuyến học xã Ea Tul, contact: Văn phòng UBND xã Ea Tul.\n"
        "• Data kept: your name, birth year and village; for a Learning family also the names, birth years "
        "and family relations of the household members"
    )
    turn = await john.taps("Details")
    assert turn.replies[-1].text == "Do you agree to the text above?"
    turn = await john.says("yes")
    assert "Which title do you want to register for in 2026?" in turn
    [given] = await rows(suite_app)
    assert (given.locale, given.text_sha256) == ("en", sha256(shown))
    assert given.controller == "Hội Khuyến học xã Ea Tul, contact: Văn phòng UBND xã Ea Tul"


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        (None, "Hội Khuyến học của xã nơi bạn đăng ký"),
        ("Hội Khuyến học tỉnh Đắk Lắk, 0262 3812 345", "Hội Khuyến học tỉnh Đắk Lắk, 0262 3812 345"),
    ],
)
async def test_the_controller_named_follows_the_commune(suite_db, tmp_path, clock, operator, expected):
    """One commune: its association. Several, and the person's commune not known yet: the
    installation's operator (PRIVACY_CONTROLLER), or "the association of your commune". A known
    commune whose file names no association: "Hội Khuyến học" and the commune's name."""
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router

    second = parse_commune(
        "commune: {code: ea-kpam, name: Xã Ea Kpam}\nbranches:\n  - {code: thon-1, name: Thôn 1}\n"
        "campaigns:\n  - year: 2026\n    deadlines: {registration: 2026-12-31}\n",
        "ea-kpam.yaml",
    )
    app = await make_app(suite_db, tmp_path, clock, privacy_controller=operator)
    try:
        async with app.sessions.begin() as session:
            await apply_commune(session, second, clock.now())
        user = ChatPerson(FlowEngine(app, build_router()), "kpa")
        turn = await user.says("alo")
        assert notice_in(turn.replies[1].text).startswith(f"• Bên kiểm soát dữ liệu: {expected}.\n")
        await user.taps("Tôi đồng ý")
        assert (await rows(app))[-1].controller == expected
        # Registered in Ea Kpam, whose file names no association: after withdrawing and agreeing
        # again, the text names that commune's association.
        turn = await register(user, "Công dân học tập", "Trần Văn Kpă", "1980", Tap("Xã Ea Kpam"), Tap("Thôn 1"))
        assert turn.text.startswith("Đã đăng ký Công dân học tập"), turn
        await user.says("/rutlai")
        await user.taps("Rút lại đồng ý")
        turn = await user.says("alo")
        assert notice_in(turn.replies[1].text).startswith("• Bên kiểm soát dữ liệu: Hội Khuyến học Xã Ea Kpam.\n")
    finally:
        await app.close()


async def test_withdrawing_stops_processing_until_the_person_agrees_again(engine, person, suite_app):
    hoa = person("hoa")
    await submit_citizen(hoa)  # CD-2026-000001, submitted
    # The same person also writes on Zalo (an admin linked the accounts), in the middle of a question.
    async with suite_app.sessions.begin() as session:
        hoa_id = await session.scalar(select(Person.id))
        session.add(
            ChannelAccount(
                channel="zalo_bot",
                external_id="hoa-zalo",
                chat_id="hoa-zalo",
                person_id=hoa_id,
                consent_at=START,
                created_at=START,
            )
        )
    hoa_zalo = person("hoa-zalo", "zalo_bot")
    turn = await hoa_zalo.says("/trangthai")
    assert "CD-2026-000001" in turn
    turn = await hoa_zalo.says("/lang")
    assert turn.choices == ["Tiếng Việt", "English"]
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")

    suite_app.clock.advance(timedelta(hours=2))
    turn = await hoa.says("/rutlai")
    assert turn.text.startswith("Rút lại đồng ý? Khi đó bot ngừng xử lý dữ liệu của bạn: không nhắc hạn,")
    assert turn.choices == ["Rút lại đồng ý", "Rút lại và xóa dữ liệu", "Không, giữ nguyên"]
    turn = await hoa.taps("Không, giữ nguyên")
    assert turn.text.startswith("Bạn vẫn giữ đồng ý như trước.\n\nBạn muốn làm gì?")
    await hoa.says("/rutlai")
    turn = await hoa.taps("Rút lại đồng ý")
    withdrawn_at = START + timedelta(hours=2)
    assert turn.text == (
        f"Đã ghi nhận bạn rút lại đồng ý lúc {Translator('vi').datetime(withdrawn_at)}. Từ giờ bot ngừng xử lý "
        "dữ liệu của bạn: không nhắc hạn, hồ sơ tạm dừng xét. Dữ liệu đã lưu vẫn còn; muốn xóa hẳn, bạn gõ "
        "/xoadulieu. Muốn dùng bot lại, bạn gõ /start và đồng ý."
    )
    assert turn.choices == []

    given, withdrawal = [r for r in await rows(suite_app) if r.person_id == hoa_id]
    assert (withdrawal.kind, withdrawal.method, withdrawal.person_id) == ("withdrawn", "chat", hoa_id)
    assert (withdrawal.text_version, withdrawal.controller, withdrawal.at) == ("2026-12", CONTROLLER, withdrawn_at)
    assert withdrawal.text_sha256 is None and given.kind == "given"
    async with suite_app.sessions() as session:
        accounts = list(await session.scalars(select(ChannelAccount).where(ChannelAccount.person_id == hoa_id)))
        hoa_person = await session.get(Person, hoa_id)
        zalo_conv = await session.get(Conversation, next(a.id for a in accounts if a.channel == "zalo_bot"))
    assert [a.consent_at for a in accounts] == [None, None] and hoa_person.consent_at is None
    assert zalo_conv.state == "new"  # the open question on the other channel is gone too

    # Nothing is processed now: commands and answers lead to the consent question.
    turn = await hoa.says("/trangthai")
    assert turn.text.startswith("Trước hết, bạn cần đồng ý cho lưu thông tin.")
    turn = await hoa_zalo.says("2")
    assert "Bạn có đồng ý không?" in turn and "Switched to English" not in turn
    # Reviewers see the application on hold and cannot decide on it.
    turn = await can.says("/congnhan CD-2026-000001")
    assert turn.text.startswith(
        "Hồ sơ CD-2026-000001 đang tạm dừng: người đăng ký đã rút lại đồng ý cho xử lý dữ liệu. Chỉ xét tiếp khi "
        "họ đồng ý lại."
    )
    turn = await can.says("/xem CD-2026-000001")
    assert turn.replies[-1].text.startswith("Hồ sơ CD-2026-000001 đang tạm dừng")
    assert turn.choices == ["Về danh sách", "Về menu"]
    turn = await hoa.says("/dulieu")
    assert f"Đã rút lại đồng ý lúc {Translator('vi').datetime(withdrawn_at)}: bot ngừng xử lý dữ liệu của bạn." in turn
    turn = await hoa.says("/rutlai")
    assert turn.text.startswith("Bạn chưa đồng ý (hoặc đã rút lại) nên bot không xử lý dữ liệu của bạn.")

    # Declining again keeps things as they are, and says so.
    await hoa.says("/start")
    turn = await hoa.taps("Không đồng ý")
    assert turn.text.startswith("Không sao. Dữ liệu đã lưu vẫn còn nhưng bot không dùng đến")
    # Agreeing again: a new row, consent back on, the application can be reviewed.
    turn = await hoa.says("/start")
    turn = await hoa.taps("Tôi đồng ý")
    assert "Bạn muốn làm gì?" in turn
    *_, again = [r for r in await rows(suite_app) if r.person_id == hoa_id]
    assert (again.kind, again.person_id, again.at) == ("given", hoa_id, withdrawn_at)
    await can.says("/congnhan CD-2026-000001")
    await can.taps("Xác nhận")  # before the branch review: a reason
    turn = await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    assert turn.text.startswith("Đã công nhận hồ sơ CD-2026-000001 (Nguyễn Thị Hoa).")


async def test_an_answer_waiting_when_consent_went_is_not_taken(person, suite_app):
    """Consent switched off under an open question (another worker recorded a withdrawal): the
    next answer is not stored; the person is asked to agree first."""
    hoa = person("hoa")
    await register_citizen(hoa)
    turn = await hoa.taps("Bắt đầu")
    assert turn.choices[0] == "Đạt"
    async with suite_app.sessions.begin() as session:
        await session.execute(update(ChannelAccount).values(consent_at=None))
    turn = await hoa.taps("Đạt")
    assert turn.text.startswith("Trước hết, bạn cần đồng ý cho lưu thông tin.")
    assert turn.choices == CONSENT_CHOICES
    async with suite_app.sessions() as session:
        assert list(await session.scalars(select(Answer))) == []


async def test_deleting_ones_data_is_recorded_as_a_withdrawal(person, suite_app):
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Để sau")
    turn = await hoa.says("/rutlai")
    turn = await hoa.taps("Rút lại và xóa dữ liệu")
    assert turn.choices == ["Xóa dữ liệu của tôi", "Không xóa"]
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 0 ảnh).")
    account = await account_of(suite_app, "hoa")
    given, withdrawal = await rows(suite_app)
    assert (given.kind, withdrawal.kind, withdrawal.method) == ("given", "withdrawn", "deletion")
    assert withdrawal.account_id == account.id and account.consent_at is None
    async with suite_app.sessions() as session:
        deleted = await session.get(Person, withdrawal.person_id)
        assert deleted.full_name == "" and deleted.deleted_at is not None

    fresh = person("fresh")
    await fresh.says("alo")
    await fresh.taps("Tôi đồng ý")
    turn = await fresh.says("/rutlai")
    assert turn.choices == ["Rút lại đồng ý", "Không, giữ nguyên"]  # nothing stored to delete yet
    await fresh.taps("Rút lại đồng ý")
    *_, withdrawal = await rows(suite_app)
    assert (withdrawal.kind, withdrawal.person_id, withdrawal.account_id) == (
        "withdrawn",
        None,
        (await account_of(suite_app, "fresh")).id,
    )
    turn = await fresh.says("/dulieu")
    assert turn.text.startswith("Bot chưa lưu thông tin cá nhân nào của bạn.\nĐồng ý lúc")
    assert "Đã rút lại đồng ý lúc" in turn


async def test_a_leader_confirms_consent_for_someone_without_a_phone(engine, suite_app):
    lan = await make_staff(engine, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    await lan.says("/lamho")
    turn = await lan.taps("Đăng ký người mới")
    frame_before, frame_after = Translator("vi")("proxy.consent_ask", notice="\0").split("\0")
    text = turn.text
    assert text.startswith(
        "Đăng ký hộ người không có điện thoại. Bạn đọc cho người đó nghe nội dung dưới đây, nói rõ đây là trợ lý "
        "tự động (chatbot) ghi hồ sơ, rồi hỏi họ có đồng ý không:\n• Bên kiểm soát dữ liệu: " + CONTROLLER
    )
    shown = text[len(frame_before) : len(text) - len(frame_after)]
    assert turn.choices == ["Đã đồng ý", "Chưa hỏi"]
    suite_app.clock.advance(timedelta(minutes=5))
    await lan.taps("Đã đồng ý")
    turn = await register(lan, "Công dân học tập", "Y Bih Niê", "1958")
    assert turn.text.startswith("Đã đăng ký Công dân học tập")
    async with suite_app.sessions() as session:
        ybih = await session.scalar(select(Person).where(Person.full_name == "Y Bih Niê"))
        leader = await session.scalar(select(Person).where(Person.full_name == "Lê Thị Lan"))
    proxy = (await rows(suite_app))[-1]
    assert (proxy.kind, proxy.method, proxy.person_id, proxy.account_id) == ("given", "proxy", ybih.id, None)
    assert (proxy.recorded_by_person_id, proxy.text_sha256, proxy.at) == (
        leader.id,
        sha256(shown),
        START + timedelta(minutes=5),
    )
    assert ybih.consent_at is not None
    async with suite_app.sessions() as session:
        assert await session.scalar(select(Submission.person_id)) == ybih.id
