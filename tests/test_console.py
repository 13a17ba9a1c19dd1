"""The terminal chat as a person uses it: numbered choices, typed answers, a photo from a file."""

from __future__ import annotations

import io

from bot.channels.console import ConsoleChannel
from tests.support.images import jpeg


async def test_terminal_chat_registers_and_attaches_a_photo(engine, tmp_path, suite_app):
    photo = tmp_path / "tu sach.jpg"
    photo.write_bytes(jpeg((20, 30, 40)))
    lines = iter(
        ["chào", "1", "1", "Nguyễn Thị Hoa", "1975", "2", "1", "1", "1", f"/anh {photo}", "/anh /no/such/file.jpg", "xong"]
    )

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    await ConsoleChannel(engine, user_id="hoa", out=out, read_line=read_line).run()
    text = out.getvalue()
    assert text.startswith("Trò chuyện với hoctap-bot.")
    assert "1. Tôi đồng ý\n2. Không đồng ý\n3. Xem chi tiết\nTrả lời 1, 2 hoặc 3." in text
    assert "Đã đăng ký Công dân học tập, mã hồ sơ CD-2026-000001." in text
    assert "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong.\n\n1. Xong\nTrả lời 1." in text
    assert "Mình chưa tải được ảnh. Bạn gửi lại ảnh nhé." in text
    assert "Mục 2/10 (tối đa 10 điểm)" in text
