"""Transcripts: first contact, consent, language, help, privacy, commands."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.storage.models import ChannelAccount, Person

WELCOME = (
    "Chào bạn! Mình là trợ lý tự động (chatbot), tin nhắn do máy trả lời. "
    'Mình giúp bạn đăng ký "Công dân học tập" hoặc "Gia đình học tập" năm 2026.'
)


async def test_first_contact_asks_consent_with_nothing_preselected(person):
    hoa = person("hoa")
    turn = await hoa.says("alo")
    assert turn.replies[0].text == WELCOME  # the first message says a machine answers
    consent = turn.replies[1].text
    assert consent.startswith(
        "Trước khi bắt đầu, xin bạn đọc kỹ:\n• Bên kiểm soát dữ liệu: Hội Khuyến học xã Ea Tul, liên hệ: Văn phòng UBND xã Ea Tul.\n"
    )
    for part in (
        "• Dữ liệu được lưu: họ tên, năm sinh, thôn/buôn của bạn; nếu đăng ký Gia đình học tập thì cả họ tên, năm sinh và quan hệ gia đình",
        "• Mục đích: đăng ký, tự đánh giá và xét công nhận danh hiệu; báo cáo kết quả và số liệu thống kê lên Hội Khuyến học cấp trên.",
        "• Thời gian lưu: ảnh minh chứng bị xóa khi hết thời hạn lưu",
        "• Quyền của bạn: xem dữ liệu (/dulieu), yêu cầu sửa, xóa dữ liệu (/xoadulieu) và rút lại đồng ý (/rutlai)",
        "Bot không hỏi số căn cước, ảnh giấy tờ, dân tộc hay tôn giáo.",
    ):
        assert part in consent
    assert consent.endswith("\n\nBạn có đồng ý không?")
    assert turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]

    turn = await hoa.taps("Xem chi tiết")
    assert turn.text.startswith("Thêm về dữ liệu của bạn:\n• Trẻ dưới 16 tuổi trong hộ chỉ được ghi khi cha, mẹ")
    assert "báo chi hội trưởng hoặc Hội Khuyến học xã Ea Tul, liên hệ: Văn phòng UBND xã Ea Tul." in turn
    assert "xác nhận trong 2 ngày làm việc và giải quyết trong 15 ngày" in turn
    # The text is just above: the question comes back short, with the same explicit choices.
    assert turn.replies[-1].text == "Bạn có đồng ý với nội dung trên không?"
    assert turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]

    turn = await hoa.says("dong y")  # typed without diacritics
    assert "Cảm ơn bạn đã đồng ý." in turn
    assert "Bạn muốn đăng ký danh hiệu nào năm 2026?" in turn
    assert turn.choices == ["Công dân học tập", "Gia đình học tập"]


async def test_declining_ends_politely_and_stores_nothing_personal(person, suite_app):
    ba = person("ba")
    await ba.says("chào")
    turn = await ba.says("2")
    assert turn.text == "Không sao. Bot không lưu thông tin gì của bạn. Khi nào muốn đăng ký, bạn gõ /start nhé."
    assert turn.choices == []
    async with suite_app.sessions() as session:
        account = await session.scalar(select(ChannelAccount))
        assert account.consent_at is None and account.person_id is None
        assert await session.scalar(select(func.count()).select_from(Person)) == 0
    # Writing again starts over, politely, with the same question.
    turn = await ba.says("tôi muốn đăng ký")
    assert turn.replies[0].text == WELCOME and "Bạn có đồng ý không?" in turn


async def test_commands_that_need_consent_ask_for_it_first(person):
    hoa = person()
    turn = await hoa.says("/dangky")
    # Even a command as the very first message is answered by the welcome first.
    assert [r.text for r in turn.replies[:2]] == [WELCOME, "Trước hết, bạn cần đồng ý cho lưu thông tin."]
    assert turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]
    turn = await hoa.command("trangthai")
    assert turn.text.startswith("Trước hết, bạn cần đồng ý")  # greeted once is enough
    assert WELCOME not in turn


async def test_every_first_contact_says_an_automated_assistant_answers(person):
    from bot.messages import Kind

    for user, first in (("help", "/huongdan"), ("privacy", "/baomat"), ("code", "ma ZZZZ-2345"), ("data", "/dulieu")):
        turn = await person(user).says(first)
        assert turn.replies[0].text == WELCOME, (first, turn)
    # A Zalo OA "follow" event (the first thing the bot hears from a follower) and /start.
    turn = await person("follower").sends(Kind.FOLLOW)
    assert turn.replies[0].text == WELCOME and turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]
    turn = await person("starter").command("start")
    assert turn.replies[0].text == WELCOME
    assert sum(r.text == WELCOME for r in turn.replies) == 1


async def test_garbage_on_the_consent_question_re_asks_it(person):
    hoa = person()
    await hoa.says("chào")
    turn = await hoa.says("asdfgh")
    assert 'Bạn bấm "Tôi đồng ý" hoặc "Không đồng ý" (hoặc trả lời 1, 2) nhé.' in turn
    assert turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]


async def test_language_switch_to_english_and_back(person):
    john = person("john")
    await john.says("hi")
    turn = await john.says("/lang")
    assert "Chọn ngôn ngữ / Choose a language:" in turn
    assert turn.choices == ["Tiếng Việt", "English"]
    turn = await john.says("2")
    assert turn.text.startswith("Switched to English.")
    assert (
        "Before we start, please read:\n• Data controller: Hội Khuyến học xã Ea Tul, contact: Văn phòng UBND xã Ea Tul."
        in turn
    )
    assert turn.text.endswith("Do you agree?")
    assert turn.choices == ["I agree", "I don't agree", "Details"]
    turn = await john.says("yes")
    assert "Which title do you want to register for in 2026?" in turn
    assert turn.choices == ["Learning citizen", "Learning family"]
    turn = await john.says("/ngonngu")
    turn = await john.says("tieng viet")
    assert turn.text.startswith("Đã chuyển sang tiếng Việt.")
    assert "Bạn muốn đăng ký danh hiệu nào năm 2026?" in turn  # back where they were


async def test_help_lists_commands_and_returns_to_the_question(person):
    hoa = person()
    await hoa.says("chào")
    await hoa.says("1")
    turn = await hoa.says("/huongdan")
    assert "Bot giúp bạn đăng ký danh hiệu học tập" in turn
    for line in (
        "/dangky — đăng ký danh hiệu",
        "/tudanhgia — tự đánh giá",
        "/trangthai — xem trạng thái hồ sơ",
        "/huy — dừng việc đang làm",
    ):
        assert line in turn
    assert "Bạn muốn đăng ký danh hiệu nào năm 2026?" in turn  # the open question comes back


async def test_unknown_command_gets_help(person):
    hoa = person()
    await hoa.says("chào")
    turn = await hoa.says("/xyz")
    assert "Mình không biết lệnh /xyz." in turn
    assert "Các lệnh:" in turn and "/rutlai — rút lại đồng ý cho bot xử lý dữ liệu" in turn
    assert turn.choices == ["Tôi đồng ý", "Không đồng ý", "Xem chi tiết"]


async def test_privacy_notice_in_english(person):
    john = person()
    turn = await john.says("/lang")
    turn = await john.says("English")
    assert (
        "Hello! I am an automated assistant (a chatbot): a machine answers these messages. "
        'I help you register as a "Learning citizen" or "Learning family" for 2026.'
    ) in turn
    turn = await john.says("/privacy")
    assert turn.text.startswith("• Data controller: Hội Khuyến học xã Ea Tul, contact: Văn phòng UBND xã Ea Tul.\n")
    assert (
        "• Your rights: see your data (/mydata), ask for corrections, delete your data (/deletedata) and withdraw your consent (/withdraw)"
        in turn
    )
    assert "never asks for ID numbers, ID-card photos, ethnicity or religion" in turn
    assert "Requests are acknowledged within 2 working days and completed within 15 days." in turn


async def test_menu_after_consent_offers_actions(person):
    from tests.support.scripts import register_citizen

    hoa = person()
    await register_citizen(hoa)
    turn = await hoa.taps("Để sau")
    assert "Đã lưu. Khi nào rảnh, bạn gõ /tudanhgia" in turn
    assert "Bạn muốn làm gì?" in turn
    assert turn.choices == ["Tự đánh giá", "Đăng ký danh hiệu", "Xem trạng thái", "Hướng dẫn", "Ngôn ngữ / Language"]
    turn = await hoa.says("/start")
    assert "Chào mừng bạn quay lại!" in turn and "Bạn muốn làm gì?" in turn


async def test_english_help_shows_english_command_names(person):
    john = person()
    await john.says("/lang")
    await john.says("2")
    turn = await john.says("/help")
    for line in (
        "/register — register for a title",
        "/declare — self-assess",
        "/status — see where your application stands",
        "/cancel — stop what you are doing",
        "/lang — change language",
    ):
        assert line in turn
    assert "/dangky" not in turn.text
    assert turn.choices == ["I agree", "I don't agree", "Details"]
