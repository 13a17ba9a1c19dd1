"""Transcript: a resident takes a wrong photo away from an item (e.g. after a reviewer said two
items have the same photo); the file goes once nothing uses it."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import Evidence
from tests.support.images import jpeg
from tests.support.scripts import register_citizen


async def test_remove_a_wrong_photo_from_an_item(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.sends_photo(jpeg((10, 20, 30)))
    await hoa.sends_photo(jpeg((200, 20, 30)))  # the wrong one
    await hoa.taps("Xong")
    turn = await hoa.says("quay lại")  # item 2 → item 1's photos
    turn = await hoa.says("quay lại")  # → item 1
    assert "Bạn đã trả lời: Đạt, 2 ảnh." in turn
    # The numbers of the other options do not move: removing comes last.
    assert turn.choices == ["Đạt", "Đạt một phần", "Chưa đạt", "Bỏ qua", "Dừng, làm sau", "Xóa ảnh của mục này"]
    turn = await hoa.taps("Xóa ảnh của mục này")
    assert [r.text for r in turn.replies[:2]] == ["Ảnh 1 của mục 1", "Ảnh 2 của mục 1"]
    assert all(r.photo is not None and r.photo.is_file() for r in turn.replies[:2])
    wrong = turn.replies[1].photo
    assert turn.replies[-1].text == "Bạn muốn xóa ảnh nào của mục 1?"
    turn = await hoa.taps("Xóa ảnh 2")
    assert turn.text.startswith("Đã xóa ảnh 2 của mục 1.")
    assert "Bạn đã trả lời: Đạt, 1 ảnh." in turn
    async with suite_app.sessions() as session:
        assert len(list(await session.scalars(select(Evidence)))) == 1
    assert not wrong.exists()
