"""Roles in chat: invite codes (created by officers, redeemed with or without the slash), help
that lists only a person's own commands, and a clear refusal for every command out of scope."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from bot.review.invites import looks_like_code, new_code, normalise_code
from bot.storage.models import InviteCode, RoleGrant
from bot.storage.people import Role
from tests.support.review import chat, flow, make_staff, submit_citizen  # noqa: F401
from tests.support.scripts import agree

CODE = re.compile(r"[A-Z0-9]{4}-[A-Z0-9]{4}")


def test_codes_are_unambiguous_and_forgiving():
    for _ in range(50):
        code = new_code()
        assert CODE.fullmatch(code) and not set(code) & set("01OIL")
        assert normalise_code(code.lower().replace("-", " ")) == code.replace("-", "")
        assert looks_like_code(f"  {code.lower()} ") == code.replace("-", "")
    assert looks_like_code("Ma Van Tai") is None and looks_like_code("1975") is None
    assert normalise_code("ABCDEFGH") is None  # a word is never a code: codes carry digits


async def test_officer_invites_a_leader_who_redeems_without_the_slash(engine, person, suite_app):
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    turn = await can.says("/moi")
    assert turn.text == "Bạn muốn tạo mã mời cho ai?"
    assert turn.choices == ["chi hội trưởng", "cán bộ xã", "Về menu"]
    turn = await can.taps("chi hội trưởng")
    assert turn.text == "Mời chi hội trưởng của thôn/buôn nào?"
    turn = await can.taps("Buôn Ken")
    code = CODE.search(turn.text).group(0)
    assert turn.text.startswith(
        f"Mã mời chi hội trưởng Buôn Ken: {code}\nMã dùng được một lần, hết hạn ngày 27/11/2026 (sau 7 ngày). "
        f"Người được mời nhắn cho bot: ma {code}"
    )

    # A first-time user types "ma <code>" as their very first message.
    y_bih = person("ybih")
    turn = await y_bih.says(f"ma {code.lower()}")
    assert turn.replies[0].text.startswith("Chào bạn! Mình là trợ lý tự động (chatbot)")  # a first contact
    assert turn.replies[1].text == "Mã mời hợp lệ. Trước khi nhận vai trò, bạn cần đồng ý cho lưu thông tin."
    turn = await y_bih.taps("Tôi đồng ý")
    assert turn.text == "Cảm ơn bạn đã đồng ý.\n\nHọ và tên của bạn?"
    turn = await y_bih.says("y bih niê")
    assert turn.text.startswith("Xong! Bạn đã là chi hội trưởng — Buôn Ken. Gõ /huongdan để xem các lệnh mới.")
    assert "Bình xét (0 chờ)" in turn.choices and "Duyệt hồ sơ (0 chờ)" not in turn.choices

    turn = await y_bih.says("/huongdan")
    assert "/binhxet — bình xét hồ sơ của chi hội" in turn
    assert "/lamho — đăng ký, tự đánh giá giúp hộ không có điện thoại" in turn
    assert "/duyet" not in turn and "/moi" not in turn and "/xuat" not in turn

    # The same code a second time, by someone else: refused, nothing granted.
    other = person("other")
    await agree(other)
    turn = await other.says(code)
    assert turn.text.startswith("Mã mời này đã được dùng rồi. Mỗi mã chỉ dùng một lần.")
    async with suite_app.sessions() as session:
        grants = list(await session.scalars(select(RoleGrant).order_by(RoleGrant.id)))
        invite = await session.scalar(select(InviteCode))
    assert [(g.role, g.granted_by_person_id is not None) for g in grants] == [("officer", False), ("leader", True)]
    assert invite.redeemed_at is not None and code.replace("-", "") not in invite.code_hash


async def test_invite_errors_and_names_that_look_like_the_word_ma(engine, person, suite_app):
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    await can.says("/moi officer")
    turn = can.last
    code = CODE.search(turn.text).group(0)
    assert turn.text.startswith(f"Mã mời cán bộ xã Xã Ea Tul: {code}")

    suite_app.clock.advance(timedelta(days=8))
    late = person("late")
    await agree(late)
    turn = await late.says(f"/ma {code}")
    assert turn.text.startswith("Mã mời này đã hết hạn. Bạn xin cán bộ xã mã mới nhé.")
    turn = await late.says("/ma XXXX-2222")
    assert turn.text.startswith("Mình không tìm thấy mã mời này.")
    turn = await late.says("/ma")
    assert turn.text.startswith("Bạn gõ mã mời sau chữ ma, ví dụ: ma ABCD-2345")

    # "Ma Văn Tài" is a Tày name, not a code: registration goes on.
    ma = person("ma")
    await agree(ma)
    await ma.taps("Công dân học tập")
    turn = await ma.says("Ma Văn Tài")
    assert turn.text == "Năm sinh của bạn? (ví dụ: 1975)"

    # Too many wrong codes in a day.
    for _ in range(4):
        await late.says("ma ZZZZ-2345")
    turn = await late.says("ma ZZZZ-2345")
    assert turn.text.startswith("Bạn đã nhập sai mã quá nhiều lần hôm nay.")


async def test_residents_and_leaders_are_refused_what_is_not_theirs(engine, person):
    hoa = person("hoa")
    await submit_citizen(hoa)  # CD-2026-000001 in Thôn Hà Lương
    refusals = {
        "/duyet": "Lệnh này dành cho cán bộ xã.",
        "/congnhan CD-2026-000001": "Lệnh này dành cho cán bộ xã.",
        "/tuchoi CD-2026-000001 không đủ": "Lệnh này dành cho cán bộ xã.",
        "/xuat": "Lệnh này dành cho cán bộ xã.",
        "/thongke": "Lệnh này dành cho cán bộ xã.",
        "/moi": "Lệnh này dành cho cán bộ xã.",
        "/binhxet": "Lệnh này dành cho chi hội trưởng.",
        "/thanhvien": "Lệnh này dành cho chi hội trưởng.",
        "/lamho": "Lệnh này dành cho chi hội trưởng.",
        "/dexuat CD-2026-000001": "Lệnh này dành cho chi hội trưởng.",
        "/xem CD-2026-000001": "Lệnh này dành cho chi hội trưởng và cán bộ xã.",
        "/yeucau CD-2026-000001 thêm ảnh": "Lệnh này dành cho chi hội trưởng và cán bộ xã.",
    }
    for command, refusal in refusals.items():
        turn = await hoa.says(command)
        assert turn.text.startswith(refusal), (command, turn)
        assert "CD-2026-000001 —" not in turn.text
    turn = await hoa.says("/huongdan")
    assert "/duyet" not in turn and "/binhxet" not in turn and "/xoadulieu — xóa dữ liệu của bạn" in turn

    # A leader of another branch cannot see or decide on it, and is told so without details.
    ken = await make_staff(engine, "ken", Role.LEADER, "buon-ken", "Y Ken")
    for command in (
        "/xem CD-2026-000001",
        "/dexuat CD-2026-000001",
        "/binhxet CD-2026-000001",
        "/yeucau CD-2026-000001 them anh",
    ):
        turn = await ken.says(command)
        assert turn.text.startswith("Không tìm thấy hồ sơ CD-2026-000001 trong phạm vi của bạn."), (command, turn)
    for command, answer in (
        ("/binhxet", "Không có hồ sơ nào chờ chi hội bình xét."),
        ("/congnhan CD-2026-000001", "Lệnh này dành cho cán bộ xã."),
        ("/xem", "Bạn ghi mã hồ sơ sau lệnh, ví dụ: /xem CD-2026-000001"),
    ):
        turn = await ken.says(command)
        assert turn.text.startswith(answer), (command, turn)


async def test_officer_of_another_commune_sees_nothing_here(engine, suite_app):
    from bot.storage.commune import apply_commune, parse_commune
    from tests.support.chat import Person as ChatPerson

    hoa = ChatPerson(engine, "hoa")
    await submit_citizen(hoa)  # before the second commune exists: no commune question
    other = parse_commune(
        "commune: {code: ea-kpam, name: Xã Ea Kpam}\nbranches:\n  - {code: thon-1, name: Thôn 1}\n", "other.yaml"
    )
    async with suite_app.sessions.begin() as session:
        await apply_commune(session, other, suite_app.clock.now())
    kpam = await make_staff(engine, "kpam", Role.OFFICER, "ea-kpam", "Officer Kpam")
    turn = await kpam.says("/duyet")
    assert turn.text.startswith("Không có hồ sơ nào chờ duyệt.")
    turn = await kpam.says("/xem cd-2026-1")
    assert turn.text.startswith("Không tìm thấy hồ sơ CD-2026-000001 trong phạm vi của bạn.")
    turn = await kpam.says("/moi leader")
    assert turn.text.startswith("Mã mời chi hội trưởng Thôn 1:")  # only their own branch is offered


async def test_english_officer_commands_and_help(engine):
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Tran Van Can")
    await can.command("lang")
    turn = await can.taps("English")
    assert "Review (0 waiting)" in turn.choices
    turn = await can.says("/help")
    assert "/review — applications waiting for review (filter by branch, title, status)" in turn
    assert "/approve — <reference>: recognise" in turn and "/invite — " in turn
    assert "/branchreview" not in turn
    turn = await can.says("/review")
    assert turn.text.startswith("No application is waiting for review.")
