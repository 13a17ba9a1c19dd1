"""The terminal chat as a person uses it: numbered choices, typed answers, a photo from a file."""

from __future__ import annotations

import io

from bot.channels.console import ConsoleChannel
from tests.support.chat import console_session
from tests.support.images import jpeg


async def test_terminal_chat_registers_and_attaches_a_photo(engine, tmp_path, suite_app):
    photo = tmp_path / "tu sach.jpg"
    photo.write_bytes(jpeg((20, 30, 40)))
    text = await console_session(
        engine,
        "hoa",
        [
            "chào",
            "1",
            "1",
            "Nguyễn Thị Hoa",
            "1975",
            "2",
            "1",
            "1",
            "1",
            f"/anh {photo}",
            "/anh /no/such/file.jpg",
            "xong",
        ],
    )
    assert text.startswith("Trò chuyện với hoctap-bot.")
    assert "1. Tôi đồng ý\n2. Không đồng ý\n3. Xem chi tiết\nTrả lời 1, 2 hoặc 3." in text
    assert "Đã đăng ký Công dân học tập, mã hồ sơ CD-2026-000001." in text
    assert "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong.\n\n1. Xong\nTrả lời 1." in text
    assert "Không tìm thấy tệp “/no/such/file.jpg”. Bạn kiểm tra lại đường dẫn nhé." in text
    assert "Traceback" not in text and "Mình chưa tải được ảnh" not in text
    assert "Mục 2/10 (tối đa 10 điểm)" in text


async def test_photo_command_without_a_file_explains_itself(engine, tmp_path, suite_app, caplog):
    out = io.StringIO()
    console = ConsoleChannel(engine, user_id="hoa", out=out)
    assert await console.send_line("/anh") == []
    assert await console.send_line("/anh /no/such/file.jpg") == []
    text = out.getvalue()
    assert "Gửi ảnh: /anh <đường dẫn tệp ảnh>, ví dụ: /anh ~/Pictures/tu-sach.jpg" in text
    assert "Không tìm thấy tệp “/no/such/file.jpg”." in text
    assert "không biết lệnh" not in text and "Traceback" not in caplog.text


async def test_notices_for_the_terminal_user_are_shown_in_the_terminal(engine, suite_app):
    from bot.channels.base import SenderRegistry
    from bot.reminders.dispatch import Dispatcher
    from bot.storage.outbox import Notice, enqueue
    from bot.storage.people import get_or_create_account

    out = io.StringIO()
    console = ConsoleChannel(engine, user_id="hoa", out=out)
    await console.send_line("chào")
    app = suite_app
    async with app.sessions.begin() as session:
        account = await get_or_create_account(session, "console", "hoa", "hoa", app.clock.now())
        await enqueue(
            session,
            key="n1",
            account_id=account.id,
            kind="notice",
            notice=Notice("status.none"),
            not_before=app.clock.now(),
            now=app.clock.now(),
        )
    registry = SenderRegistry()
    registry.register(console.sender())
    report = await Dispatcher(app, registry, worker_id="w1").run_once()
    assert "[Tin nhắn từ bot]\nBạn chưa đăng ký danh hiệu nào." in out.getvalue(), (report, out.getvalue())
