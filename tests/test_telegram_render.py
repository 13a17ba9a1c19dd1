"""Rendering replies for Telegram: keyboards, callback data, splitting long texts and captions."""

from __future__ import annotations

from pathlib import Path

from telegram import Update

from bot.channels.telegram_render import MAX_CAPTION, MAX_TEXT, keyboard_for, merge_replies, plan, split_text, utf16_len
from bot.channels.telegram_updates import to_incoming
from bot.i18n import get_translator
from bot.messages import Choice, Kind, Outgoing

VI = get_translator("vi")


def _rows(reply: Outgoing) -> list[list[str]]:
    markup = keyboard_for(reply)
    assert markup is not None
    return [[button.text for button in row] for row in markup.inline_keyboard]


def test_short_labels_share_rows_and_long_labels_get_their_own():
    levels = Outgoing(
        "Mục 1/10",
        [
            Choice(v, label)
            for v, label in [
                ("achieved", "Đạt"),
                ("partial", "Đạt một phần"),
                ("not_yet", "Chưa đạt"),
                ("skip", "Bỏ qua"),
                ("stop", "Dừng, làm sau"),
            ]
        ],
        prompt_seq=4,
    )
    assert _rows(levels) == [["Đạt", "Đạt một phần"], ["Chưa đạt", "Bỏ qua"], ["Dừng, làm sau"]]
    items = Outgoing(
        "Sửa mục nào?",
        [
            Choice("1", "1. Thường xuyên đọc, cập nhật thông tin… (Đạt)"),
            Choice("back", "Quay lại"),
            Choice("x", "Xong"),
        ],
        prompt_seq=5,
    )
    assert _rows(items) == [["1. Thường xuyên đọc, cập nhật thông tin… (Đạt)"], ["Quay lại", "Xong"]]
    data = [b.callback_data for row in keyboard_for(items).inline_keyboard for b in row]
    assert data == ["5:1", "5:back", "5:x"]
    assert keyboard_for(Outgoing("no choices")) is None


def test_callback_data_over_64_bytes_falls_back_to_numbered_options():
    reply = Outgoing("Chọn", [Choice("v" * 70, "Một"), Choice("b", "Hai")], prompt_seq=1)
    [message] = plan(reply, VI)
    assert message.markup is None
    assert message.text == "Chọn\n\n1. Một\n2. Hai\nTrả lời 1 hoặc 2."


def test_split_prefers_paragraphs_then_lines_then_words():
    paragraph = "a" * 3000
    assert split_text(f"{paragraph}\n\n{paragraph}") == [paragraph, paragraph]
    lines = "\n".join(["dòng " * 100] * 12)
    chunks = split_text(lines)
    assert all(utf16_len(c) <= MAX_TEXT for c in chunks) and len(chunks) == 2
    assert all(not c.startswith("\n") and not c.endswith("\n") for c in chunks)
    words = " ".join(["chữ"] * 3000)
    chunks = split_text(words)
    assert " ".join(chunks) == words and all(len(c) <= MAX_TEXT for c in chunks)
    unbroken = "x" * 9000
    assert split_text(unbroken) == ["x" * 4096, "x" * 4096, "x" * 808]
    assert split_text("") == [] and split_text("ngắn") == ["ngắn"]


def test_limits_count_utf16_units_like_telegram():
    emoji = "🎓" * 3000  # 2 units each
    chunks = split_text(emoji)
    assert [utf16_len(c) for c in chunks] == [4096, 1904]
    assert "".join(chunks) == emoji


def test_caption_or_separate_text_with_buttons_on_the_last_message(tmp_path):
    photo = tmp_path / "a.jpg"
    short = plan(Outgoing("Ảnh mục 1", [Choice("ok", "Xong")], prompt_seq=2, photo=photo), VI)
    assert [(m.method, m.text, m.markup is not None) for m in short] == [("photo", "Ảnh mục 1", True)]
    long_text = "x" * (MAX_CAPTION + 1)
    long = plan(Outgoing(long_text, [Choice("ok", "Xong")], prompt_seq=2, photo=photo), VI)
    assert [(m.method, m.text, m.markup is not None) for m in long] == [
        ("photo", None, False),
        ("text", long_text, True),
    ]
    document = plan(Outgoing("", document=Path("x.xlsx"), document_name="bao-cao.xlsx"), VI)
    assert [(m.method, m.filename, m.text) for m in document] == [("document", "bao-cao.xlsx", None)]


async def _no_download(file_id: str, size: int | None) -> bytes:
    raise AssertionError("nothing should be downloaded while translating")


def _update(**message) -> Update:
    base = {
        "message_id": 7,
        "date": 1_790_000_000,
        "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "Ba"},
    }
    return Update.de_json({"update_id": 1, "message": {**base, **message}}, None)


def test_updates_become_neutral_messages():
    text = to_incoming(_update(text="Nguyễn Văn Ba"), _no_download)
    assert (text.kind, text.text, text.message_id, text.user_id, text.chat_id) == (
        Kind.TEXT,
        "Nguyễn Văn Ba",
        "m:42:7",
        "42",
        "42",
    )
    command = to_incoming(_update(text="/start@hoctap_bot invite-123"), _no_download)
    assert (command.kind, command.command, command.args) == (Kind.COMMAND, "start", "invite-123")
    sizes = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 60, "file_size": 1000},
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 853, "file_size": 90000},
        {"file_id": "mid", "file_unique_id": "m", "width": 320, "height": 213, "file_size": 9000},
    ]
    photo = to_incoming(_update(photo=sizes, caption="tủ sách"), _no_download)
    assert (photo.kind, photo.photo.declared_size, photo.text) == (Kind.PHOTO, 90000, "tủ sách")
    image_file = to_incoming(
        _update(document={"file_id": "d", "file_unique_id": "d", "file_name": "Scan.HEIC"}), _no_download
    )
    assert (image_file.kind, image_file.photo.mime) == (Kind.PHOTO, "image/heic")
    pdf = to_incoming(
        _update(document={"file_id": "p", "file_unique_id": "p", "mime_type": "application/pdf"}), _no_download
    )
    assert pdf.kind == Kind.FILE
    gif = {"file_id": "g", "file_unique_id": "g", "width": 1, "height": 1, "duration": 1}
    animation = to_incoming(
        _update(animation=gif, document={"file_id": "g", "file_unique_id": "g", "mime_type": "video/mp4"}), _no_download
    )
    assert animation.kind == Kind.UNSUPPORTED
    contact = to_incoming(_update(contact={"phone_number": "0900000000", "first_name": "Ba"}), _no_download)
    assert contact.kind == Kind.UNSUPPORTED
    assert (
        to_incoming(_update(message_auto_delete_timer_changed={"message_auto_delete_time": 60}), _no_download) is None
    )


def test_a_remark_and_the_next_question_become_one_message(tmp_path):
    yes = [Choice("yes", "Có")]
    merged = merge_replies(
        [
            Outgoing("Cảm ơn bạn."),
            Outgoing("Đã lưu."),
            Outgoing("Câu hỏi?", yes, prompt_seq=3),
            Outgoing("Sau nút."),
        ]
    )
    assert [(m.text, m.prompt_seq, len(m.choices)) for m in merged] == [
        ("Cảm ơn bạn.\n\nĐã lưu.\n\nCâu hỏi?", 3, 1),  # buttons stay under the question
        ("Sau nút.", None, 0),  # a reply after buttons is its own message
    ]
    photo = tmp_path / "a.jpg"
    kept = merge_replies(
        [Outgoing("Ảnh:"), Outgoing("", photo=photo), Outgoing("x" * (MAX_TEXT - 3)), Outgoing("y" * 10)]
    )
    assert [m.text[:4] for m in kept] == ["Ảnh:", "", "xxxx", "yyyy"]  # attachments and length limits respected
