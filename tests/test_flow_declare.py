"""Transcripts: self-declaration item by item with photos, summary, edits, submission."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.storage.models import Answer, Evidence, Submission, SubmissionEvent
from tests.support.images import jpeg, png
from tests.support.journeys import Tap, answer_items, register, submit
from tests.support.scripts import agree, declare_all, register_citizen

ITEM_1 = (
    "Mục 1/10 (tối đa 10 điểm)\n"
    "Nhóm: Năng lực tự học và học tập suốt đời\n"
    "Thường xuyên đọc, cập nhật thông tin qua sách báo, ti vi, điện thoại, internet\n"
    "Gợi ý minh chứng: ảnh tủ sách, thẻ thư viện, tờ báo đang đọc."
)
LEVELS = ["Đạt", "Đạt một phần", "Chưa đạt", "Bỏ qua", "Dừng, làm sau"]


async def test_full_citizen_declaration_with_photos(person, suite_app):
    hoa = person("hoa")
    await register_citizen(hoa)
    turn = await hoa.taps("Bắt đầu")
    assert turn.text == ITEM_1 + "\nHạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
    assert turn.choices == LEVELS

    turn = await hoa.taps("Đạt")
    assert turn.text == 'Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".'
    assert turn.choices == ["Không có ảnh"]
    turn = await hoa.sends_photo(jpeg((200, 10, 10)))
    assert turn.text == "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."
    assert turn.choices == ["Xong"]
    turn = await hoa.sends_photo(png())
    assert turn.text == "Đã nhận ảnh 2. Gửi thêm (tối đa 3) hoặc bấm Xong."
    turn = await hoa.says("xong")
    assert turn.text.startswith("Mục 2/10 (tối đa 10 điểm)")

    # Items 2–9: a mix of typed labels, numbers and buttons; one note instead of a photo.
    await hoa.says("dat")
    await hoa.says("khong co anh")
    turn = await hoa.says("2")  # item 3: partly
    assert turn.text == 'Gửi 1–3 ảnh minh chứng, hoặc bấm "Không có ảnh".'
    await hoa.sends_photo(jpeg((0, 0, 200)))
    await hoa.taps("Xong")
    for _ in range(4, 8):
        await hoa.taps("Đạt")
        await hoa.taps("Không có ảnh")
    turn = await hoa.taps("Đạt")  # item 8
    assert turn.choices == ["Không có ảnh"]
    turn = await hoa.says("Tôi luôn kiểm tra tin trên báo Nhân Dân trước khi chia sẻ")
    assert turn.text.startswith("Đã lưu ghi chú của bạn cho mục này.")
    await hoa.taps("Không có ảnh")
    await hoa.taps("Đạt")  # item 9
    await hoa.sends_photo(jpeg((10, 200, 10)))
    await hoa.taps("Xong")
    turn = await hoa.says("Đạt một phần")  # item 10
    await hoa.taps("Không có ảnh")
    turn = hoa.last
    assert turn.text == (
        "Hồ sơ CD-2026-000001 — Công dân học tập\n"
        "Tổng 90/100 điểm.\n"
        "Đủ điều kiện đề nghị công nhận (từ 80 điểm, không mục nào dưới 5).\n"
        "Chưa có ảnh minh chứng cho mục 2, 4, 5, 6, 7, 10. Bạn vẫn nộp được, nhưng chi hội có thể hỏi thêm; "
        "nên gửi ảnh trước khi nộp.\n"
        "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
    )
    assert turn.choices == ["Nộp hồ sơ", "Xem lại", "Sửa một mục", "Để sau"]

    turn = await hoa.taps("Xem lại")
    assert "1. Thường xuyên đọc, cập nhật thông tin…: Đạt — 10/10 điểm, 2 ảnh" in turn
    assert "3. Dành thời gian tham gia hoạt động học…: Đạt một phần — 5/10 điểm, 1 ảnh" in turn
    turn = await submit(hoa)
    assert turn.text.startswith(
        "Đã nộp hồ sơ CD-2026-000001 (90 điểm). Chi hội sẽ xem xét; bot sẽ báo khi có kết quả hoặc cần bổ sung."
    )

    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission))
        answers = {a.item_id: a for a in await session.scalars(select(Answer))}
        evidence = list(await session.scalars(select(Evidence).order_by(Evidence.id)))
        events = [
            (e.from_state, e.to_state)
            for e in await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id))
        ]
    assert (submission.state, submission.score, submission.recognisable) == ("submitted", 90, True)
    assert submission.submitted_at == suite_app.clock.now()
    assert {k: a.points for k, a in answers.items()} == {
        "1": 10,
        "2": 10,
        "3": 5,
        "4": 10,
        "5": 10,
        "6": 10,
        "7": 10,
        "8": 10,
        "9": 10,
        "10": 5,
    }
    assert answers["8"].note == "Tôi luôn kiểm tra tin trên báo Nhân Dân trước khi chia sẻ"
    # Every photo is re-encoded; a PNG without transparency becomes a JPEG like the others.
    assert [(e.item_id, e.mime) for e in evidence] == [
        ("1", "image/jpeg"),
        ("1", "image/jpeg"),
        ("3", "image/jpeg"),
        ("9", "image/jpeg"),
    ]
    for row in evidence:
        assert (Path(suite_app.settings.evidence_dir) / row.path).is_file()
        assert row.source_channel == "test" and row.source_message_id
    assert events == [(None, "registered"), ("registered", "declaring"), ("declaring", "submitted")]

    # Once submitted, the declaration cannot be changed from the chat.
    turn = await hoa.says("/tudanhgia")
    assert "Bạn chưa có hồ sơ nào cần tự đánh giá." in turn


async def test_full_household_declaration_in_english_with_photos(person, suite_app):
    ba = person("ba")
    await agree(ba, "en")
    await register(
        ba,
        "Learning family",
        *("Y Bih Niê", "1970", "Buon Ken", "yes"),  # Ba, the head of the household
        *(Tap("Add a member"), "H'Nga Niê", "1974", "Spouse", Tap("That's everyone")),  # and his wife
        confirm="Confirm",
    )
    turn = await ba.taps("Start")
    assert turn.text == (
        "Item 1.1 — question 1/10 (up to 10 points)\n"
        "Group: Children's learning\n"
        "Children of compulsory-education age all go to school and complete compulsory education as required "
        "(except through illness, disability or inability to learn)\n"
        "Evidence idea: a photo of a school admission letter or a student card.\n"
        "Self-assessment deadline: November 30, 2026 — 10 days left"
    )
    assert turn.choices == ["Achieved", "Partly", "Not yet", "Skip", "Stop for now", "Not applicable"]
    for _ in range(3):
        await ba.taps("Not applicable")
    turn = await ba.taps("Achieved")  # 2.1
    assert turn.text == 'Send 1–3 evidence photos, or tap "No photo".'
    await ba.taps("No photo")
    await ba.taps("Achieved")  # 2.2
    turn = await ba.sends_photo(jpeg((1, 2, 3)))
    assert turn.text == "Photo 1 received. Send more (up to 3) or tap Done."
    await ba.sends_photo(jpeg((4, 5, 6)))
    await ba.taps("Done")
    turn = await answer_items(ba, 5, "Achieved", no_photo="No photo")  # 2.3, 3.1, 3.2, 4.1, 4.2
    assert turn.text == (
        "Application GD-2026-000001 — Learning family\n"
        "Total 100/100 points.\n"
        "Points per item: 1.1: 10, 1.2: 10, 1.3: 10, 2.1: 10, 2.2: 10, 2.3: 10, 3.1: 10, 3.2: 10, 4.1: 10, 4.2: 10.\n"
        "The commune will assess and decide on recognition (the pass rule for this title has not been "
        "confirmed by the province).\n"
        "No photo yet for item(s) 2.3, 3.1, 3.2, 4.1, 4.2. You can still send it, but the branch may ask; "
        "better add photos before sending.\n"
        "Self-assessment deadline: November 30, 2026 — 10 days left"
    )
    turn = await submit(ba, button="Submit", now="Submit now")
    assert turn.text.startswith("Application GD-2026-000001 submitted (100 points).")
    async with suite_app.sessions() as session:
        submission = await session.scalar(select(Submission))
        photos = list(await session.scalars(select(Evidence.item_id)))
    assert (submission.state, submission.score) == ("submitted", 100)
    assert photos == ["2.2", "2.2"]


async def test_a_family_is_never_told_eligible_while_the_pass_rule_is_unconfirmed(person):
    """Issue 17: a childless family answering "Đạt" everywhere with no photo used to be told
    "Đủ điều kiện" at 100/100; QĐ 448's pass rule is not known, so the commune assesses."""
    ba = person("ba")
    await agree(ba)
    await register(ba, "Gia đình học tập", "Y Bih Niê", "1970", "Buôn Ken", Tap("Có"), Tap("Không có ai khác"))
    turn = await ba.taps("Bắt đầu")
    assert turn.text.startswith("Mục 1.1 — câu 1/10 (tối đa 10 điểm)")
    for _ in range(3):
        await ba.taps("Không áp dụng")
    turn = await answer_items(ba, 2)  # 2.1, 2.2
    assert "Mục 2.3" in turn.text
    # A suggested item says so.
    assert "(Mục gợi ý, chưa có văn bản gốc; tỉnh cần xác nhận.)" in turn.text
    turn = await answer_items(ba, 5)  # 2.3, 3.1, 3.2, 4.1, 4.2
    assert turn.text == (
        "Hồ sơ GD-2026-000001 — Gia đình học tập\n"
        "Tổng 100/100 điểm.\n"
        "Điểm từng mục: 1.1: 10, 1.2: 10, 1.3: 10, 2.1: 10, 2.2: 10, 2.3: 10, 3.1: 10, 3.2: 10, 4.1: 10, 4.2: 10.\n"
        "Xã sẽ xét và quyết định công nhận (cách tính đạt của danh hiệu này chưa được tỉnh xác nhận).\n"
        "Chưa có ảnh minh chứng cho mục 2.2, 2.3, 3.1, 3.2, 4.1, 4.2. Bạn vẫn nộp được, nhưng chi hội có thể hỏi "
        "thêm; nên gửi ảnh trước khi nộp.\n"
        "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
    )
    assert "Đủ điều kiện" not in turn.text
    assert turn.choices[0] == "Nộp hồ sơ"


async def test_skip_stop_come_back_and_answer_missing(person):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    turn = await hoa.taps("Bỏ qua")
    assert turn.text.startswith("Mục 2/10")
    await hoa.taps("Chưa đạt")  # item 2: not yet, no photo step
    turn = await hoa.taps("Dừng, làm sau")
    assert "Đã lưu. Khi nào rảnh" in turn
    turn = await hoa.taps("Tự đánh giá")
    assert turn.text.startswith("Mục 1/10")  # the first unanswered item
    await hoa.taps("Bỏ qua")  # skip 1 again: next unanswered is 3
    turn = hoa.last
    assert turn.text.startswith("Mục 3/10")
    for _ in range(3, 11):
        await hoa.taps("Chưa đạt")
    turn = hoa.last
    assert turn.text == (
        "Hồ sơ CD-2026-000001 — Công dân học tập\n"
        "Tổng 0/100 điểm.\n"
        "Chưa đủ điều kiện công nhận:\n"
        "- chưa trả lời mục 1\n"
        "- cần từ 80 điểm trở lên\n"
        "- mục 2, 3, 4, 5, 6, 7, 8, 9, 10 dưới 5 điểm\n"
        "Hạn tự đánh giá: ngày 30/11/2026 — còn 10 ngày"
    )
    assert turn.choices == ["Trả lời mục còn thiếu", "Xem lại", "Sửa một mục", "Để sau"]
    turn = await hoa.taps("Trả lời mục còn thiếu")
    assert turn.text.startswith("Mục 1/10")
    await hoa.taps("Chưa đạt")
    turn = hoa.last
    assert "- chưa trả lời" not in turn
    assert turn.choices[0] == "Nộp hồ sơ"  # a low score may still be submitted for the branch to see


async def test_edit_one_answer_from_the_summary(person):
    hoa = person()
    await register_citizen(hoa)
    await declare_all(hoa, "Đạt một phần")
    turn = hoa.last
    assert "Tổng 50/100 điểm." in turn
    turn = await hoa.taps("Sửa một mục")
    assert turn.text == "Bạn muốn sửa mục nào? Bấm nút hoặc trả lời số thứ tự."
    assert turn.choices[0] == "1. Thường xuyên đọc, cập nhật thông tin… (Đạt một phần)"
    assert turn.choices[-1] == "Quay lại"
    turn = await hoa.says("7")
    assert turn.text.startswith("Mục 7/10")
    assert "Bạn đã trả lời: Đạt một phần, 0 ảnh. Chọn lại nếu muốn sửa." in turn
    await hoa.taps("Đạt")
    turn = await hoa.taps("Không có ảnh")
    assert "Tổng 55/100 điểm." in turn  # straight back to the summary


async def test_photo_rules(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    # A photo at the level question means "achieved, with this photo", and the next item comes.
    turn = await hoa.sends_photo(jpeg((9, 9, 9)))
    assert turn.text.startswith(
        "Đã nhận ảnh, ghi mục 1 là Đạt (1 ảnh). Muốn gửi thêm ảnh cho mục này thì gõ “quay lại”."
    )
    assert "Mục 2/10" in turn
    turn = await hoa.says("quay lại")
    assert turn.text.startswith("Mục 1/10") and "Bạn đã trả lời: Đạt, 1 ảnh." in turn
    turn = await hoa.taps("Đạt")
    assert turn.text == "Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong."
    turn = await hoa.sends_photo(jpeg((9, 9, 9)))
    assert turn.text.startswith("Ảnh này bạn đã gửi rồi, mình không lưu thêm lần nữa.")
    turn = await hoa.sends_photo(b"%PDF-1.7 this is not a photo")
    assert turn.text.startswith("Tệp này không phải ảnh hợp lệ. Bạn chụp ảnh rồi gửi lại nhé.")
    turn = await hoa.sends_photo(jpeg(), declared_size=11 * 1024 * 1024)
    assert turn.text.startswith("Ảnh lớn quá (trên 10 MB). Bạn gửi ảnh nhỏ hơn nhé.")
    await hoa.sends_photo(jpeg((1, 1, 1)))
    turn = await hoa.sends_photo(jpeg((2, 2, 2)))
    assert turn.text.startswith("Đã nhận đủ 3 ảnh cho mục này.")
    assert "Mục 2/10" in turn
    async with suite_app.sessions() as session:
        assert len(list(await session.scalars(select(Evidence)))) == 3


async def test_photo_sent_at_the_summary_is_kept_and_attached_to_a_chosen_item(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await declare_all(hoa)
    turn = await hoa.sends_photo(jpeg((50, 60, 70)))
    assert turn.text.startswith("Đã nhận ảnh. Ảnh này dùng cho mục nào?")
    turn = await hoa.says("4")
    assert turn.text.startswith("Đã gắn ảnh vào mục 4.")
    assert "Bạn đã trả lời: Đạt, 1 ảnh." in turn
    async with suite_app.sessions() as session:
        assert list(await session.scalars(select(Evidence.item_id))) == ["4"]


async def test_item_garbage_text_re_asks_with_the_levels(person):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    turn = await hoa.says("abc")
    assert turn.text.startswith("Bạn chọn một mức: bấm nút hoặc trả lời số (1, 2, 3…).")
    assert ITEM_1 in turn
    assert turn.choices == LEVELS
    turn = await hoa.says("9")
    assert turn.text.startswith("Bạn chọn một mức")


async def test_free_text_at_the_level_question_is_kept_as_a_note(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    turn = await hoa.taps("Bắt đầu")
    turn = await hoa.says("Tôi có đi học lớp khuyến nông tháng 5")
    assert turn.text.startswith("Đã ghi lại lời bạn viết làm ghi chú cho mục này. Bạn chọn một mức nhé.")
    await hoa.taps("Đạt")
    turn = await hoa.says("chưa đạt")  # the next item's answer: item 1's photos are done
    assert turn.text.startswith("Xong ảnh mục trước. Mục 2: Chưa đạt.")
    assert "Mục 3/10" in turn
    async with suite_app.sessions() as session:
        answers = {a.item_id: (a.level, a.note) for a in await session.scalars(select(Answer))}
    assert answers == {"1": ("achieved", "Tôi có đi học lớp khuyến nông tháng 5"), "2": ("not_yet", None)}


async def test_an_item_gone_back_to_shows_its_answer_and_photos_and_takes_a_new_one(person, suite_app):
    """The question of an item answered before says its level and its photos (read with the
    conversation: storage/deliveries.load_conversation); a new level replaces the old one, the
    photos stay, and the score follows."""
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.sends_photo(jpeg((200, 10, 10)))
    await hoa.taps("Xong")
    turn = await hoa.taps("Chưa đạt")  # item 2: no photo question
    assert turn.text.startswith("Mục 3/10")
    turn = await hoa.says("quay lại")
    assert turn.text.startswith("Mục 2/10")
    assert "Bạn đã trả lời: Chưa đạt, 0 ảnh. Chọn lại nếu muốn sửa." in turn.text
    turn = await hoa.says("quay lại")  # item 1's photos
    turn = await hoa.says("quay lại")
    assert turn.text.startswith("Mục 1/10")
    assert "Bạn đã trả lời: Đạt, 1 ảnh. Chọn lại nếu muốn sửa." in turn.text

    turn = await hoa.taps("Đạt một phần")
    assert (turn.text, turn.choices) == ("Đã nhận ảnh 1. Gửi thêm (tối đa 3) hoặc bấm Xong.", ["Xong"])
    async with suite_app.sessions() as session:
        answers = {a.item_id: a.level for a in await session.scalars(select(Answer))}
        submission = await session.scalar(select(Submission))
        photos = (await session.scalars(select(Evidence.item_id))).all()
    assert answers == {"1": "partial", "2": "not_yet"}
    assert photos == ["1"]
    assert submission.score == 5
