"""Transcripts: words that work at every question (back, cancel, help — never stored as an
answer), parts of labels, and option numbers that stay the same within a flow."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import Answer, Submission
from tests.support.journeys import register
from tests.support.scripts import agree, register_citizen


async def test_back_at_free_text_questions_is_never_a_name(person, suite_app):
    hoa = person()
    await agree(hoa)
    await hoa.says("cong dan")  # part of "Công dân học tập"
    turn = await hoa.says("quay lại")
    assert "Bạn muốn đăng ký danh hiệu nào năm 2026?" in turn  # the previous question
    await hoa.says("1")
    await hoa.says("Hoàng Thị Hoa")
    turn = await hoa.says("trở lại")  # at the birth year: back to the name
    assert "Họ và tên của bạn?" in turn
    turn = await hoa.says("Hoàng Thị Hòa")
    assert "Năm sinh của bạn?" in turn
    await hoa.says("1955")
    turn = await hoa.says("ha luong")
    assert "Hoàng Thị Hòa, sinh năm 1955" in turn and "Quay Lại" not in turn.text


async def test_help_explains_the_current_question_with_an_example(person):
    hoa = person()
    await agree(hoa)
    await hoa.says("1")
    turn = await hoa.says("tôi không hiểu")
    assert turn.text.startswith(
        "Bạn gõ họ và tên đầy đủ như trên giấy tờ, ví dụ: Nguyễn Thị Hoa (tên người dân tộc cũng được, "
        "ví dụ: Y Bhăm Niê).\nGõ “quay lại” để về câu trước, “hủy” để dừng việc đang làm, /huongdan để xem các lệnh."
    )
    assert turn.text.endswith("Họ và tên của bạn?")
    await hoa.says("Nguyễn Thị Hoa")
    turn = await hoa.says("giúp")
    assert "Bạn gõ năm sinh gồm 4 chữ số, ví dụ: 1975." in turn
    await hoa.says("1975")
    turn = await hoa.says("?")
    assert "Bạn trả lời bằng số thứ tự (1 đến 5) hoặc gõ chữ của lựa chọn" in turn
    assert "Ví dụ: gõ 1 hoặc “Buôn Ken”." in turn
    assert "Bạn ở thôn/buôn/khu phố nào?" in turn


async def test_escape_words_in_the_declaration(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    turn = await hoa.says("help")  # at the level question
    assert "Ví dụ: gõ 1 hoặc “Đạt”." in turn and turn.text.rstrip().endswith("Dừng, làm sau") is False
    await hoa.says("Chưa đạt")
    turn = await hoa.says("quay lại")  # item 2 → item 1, with its current answer
    assert turn.text.startswith("Mục 1/10") and "Bạn đã trả lời: Chưa đạt, 0 ảnh." in turn
    turn = await hoa.says("1")  # change it to achieved → its photos
    assert "ảnh minh chứng" in turn
    turn = await hoa.says("hủy")
    assert turn.text == "Dừng việc đang làm và về menu? Những gì đã trả lời vẫn được lưu."
    turn = await hoa.taps("Không, làm tiếp")
    assert "ảnh minh chứng" in turn  # the same question
    await hoa.says("huy")
    turn = await hoa.says("1")
    assert turn.text.startswith("Đã dừng. Những gì bạn đã trả lời vẫn được lưu.")
    assert "Bạn muốn làm gì?" in turn
    async with suite_app.sessions() as session:
        answers = list(await session.scalars(select(Answer.level)))
    assert answers == ["achieved"]  # nothing was discarded, no escape word stored


async def test_parts_of_labels_and_asking_which(person, suite_app):
    ba = person()
    await agree(ba)
    await ba.says("gia dinh")  # "Gia đình học tập"
    await ba.says("Y Bih Niê")
    await ba.says("1970")
    turn = await ba.says("thon")  # three villages begin with "Thôn"
    assert turn.text.startswith(
        "Câu trả lời khớp với nhiều lựa chọn: 2. Thôn Hà Lương; 3. Thôn Tân Lập; 5. Thôn Trung Hòa. "
        "Bạn gõ số của lựa chọn nhé."
    )
    await ba.says("buon ken")
    await ba.says("có")  # the head of the household
    await ba.says("1")  # add a member
    await ba.says("H'Nga Niê")
    await ba.says("1974")
    turn = await ba.says("vo")  # a word of "Vợ/chồng"
    assert "1. H'Nga Niê, 1974 — Vợ/chồng" in turn


async def test_option_numbers_are_stable_across_items(person, suite_app):
    ba = person()
    await agree(ba)
    await register(ba, "Gia đình học tập", "Y Bih Niê", "1970", "1", "có", "2")  # "2": that's everyone
    turn = await ba.taps("Bắt đầu")
    assert turn.choices == ["Đạt", "Đạt một phần", "Chưa đạt", "Bỏ qua", "Dừng, làm sau", "Không áp dụng"]
    for _ in range(3):  # items 1.1–1.3 offer "not applicable"
        await ba.says("6")
    turn = ba.last
    assert turn.text.startswith("Mục 2.1") and turn.choices == [
        "Đạt",
        "Đạt một phần",
        "Chưa đạt",
        "Bỏ qua",
        "Dừng, làm sau",
    ]
    turn = await ba.says("4")  # skip, as on every item
    assert turn.text.startswith("Mục 2.2")
    turn = await ba.says("5")  # stop, as on every item
    assert "Đã lưu" in turn
    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission))
        answers = list(await session.scalars(select(Answer.level).where(Answer.submission_id == submission.id)))
    assert answers == ["not_applicable"] * 3
