"""Photo intake: a photo reaches the evidence folder only when the conversation keeps it.

Kept: a photo sent where the question takes photos, by someone who has consented, attached as a
new photo of an item (or held at the summary until they pick the item). Everything else leaves
nothing on disk: no consent, a question that wants no photo, an item already full, a redelivered
message, a photo held at the summary and then not attached.
"""

from __future__ import annotations

import io
from itertools import count
from pathlib import Path

from PIL import ExifTags, Image
from sqlalchemy import func, select, update

from bot.messages import Incoming, Kind, PhotoInput
from bot.storage.models import ChannelAccount, Evidence
from tests.support.chat import Person
from tests.support.declaring import at_the_first_photo_question
from tests.support.images import PHONE_MAKE, jpeg, phone_jpeg
from tests.support.invariants import check_invariants
from tests.support.scripts import agree, declare_all, register_citizen

NOT_EXPECTED = "Mình đã nhận ảnh, nhưng lúc này chưa cần ảnh."
_ids = count(1)


class Camera:
    """Sends photos as a channel would, counting how often the bot downloaded one."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.downloads = 0

    def message(self, data: bytes, message_id: str | None = None) -> Incoming:
        async def fetch() -> bytes:
            self.downloads += 1
            return data

        return Incoming(
            self.person.channel,
            self.person.user_id,
            Kind.PHOTO,
            message_id=message_id or f"photo-{next(_ids)}",
            chat_id=self.person.user_id,
            photo=PhotoInput(fetch, len(data)),
        )

    async def sends(self, data: bytes, message_id: str | None = None):
        return await self.person.deliver(self.message(data, message_id))


def files(app) -> list[Path]:
    return sorted(p for p in Path(app.settings.evidence_dir).rglob("*") if p.is_file())


async def evidence_rows(app) -> list[Evidence]:
    async with app.sessions() as session:
        return list(await session.scalars(select(Evidence).order_by(Evidence.id)))


async def test_photos_from_someone_who_never_consented_are_not_kept(person, suite_app):
    hoa = person()
    camera = Camera(hoa)
    turn = await camera.sends(jpeg((1, 2, 3)))  # the very first message: greeted first
    assert "trợ lý tự động" in turn.replies[0].text
    assert turn.replies[1].text.startswith(NOT_EXPECTED)
    turn = await hoa.says("xin chào")
    assert "Tôi đồng ý" in turn.choices
    for color in ((4, 5, 6), (7, 8, 9)):
        turn = await camera.sends(jpeg(color))
        assert turn.text.startswith(NOT_EXPECTED)
    assert files(suite_app) == [] and await evidence_rows(suite_app) == []
    assert camera.downloads == 0  # not even downloaded
    turn = await hoa.command("xoadulieu")
    assert "Bot chưa lưu thông tin cá nhân nào" in turn


async def test_a_photo_at_the_menu_is_not_kept(person, suite_app):
    hoa = person()
    await agree(hoa)
    await hoa.command("menu")
    camera = Camera(hoa)
    turn = await camera.sends(jpeg())
    assert turn.text.startswith(NOT_EXPECTED)
    assert files(suite_app) == [] and camera.downloads == 0


async def test_a_photo_during_the_declaration_is_kept_clean(person, suite_app):
    hoa = person()
    await at_the_first_photo_question(hoa)
    camera = Camera(hoa)
    turn = await camera.sends(phone_jpeg(orientation=6))
    assert turn.text.startswith("Đã nhận ảnh 1.")
    [row] = await evidence_rows(suite_app)
    assert files(suite_app) == [Path(suite_app.settings.evidence_dir) / row.path]
    stored = suite_app.evidence.open_path(row.path).read_bytes()
    assert PHONE_MAKE.encode() not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo) and "xmp" not in image.info
        assert image.size == (row.width, row.height) == (200, 400)  # turned upright
    # Sent again: recognised by the digest of the clean file, nothing new on disk.
    turn = await camera.sends(phone_jpeg(orientation=6))
    assert turn.text.startswith("Ảnh này bạn đã gửi rồi, mình không lưu thêm lần nữa.")
    assert len(files(suite_app)) == 1 and len(await evidence_rows(suite_app)) == 1
    await check_invariants(suite_app)


async def test_a_redelivered_photo_is_not_written_again(person, suite_app):
    hoa = person()
    await at_the_first_photo_question(hoa)
    camera = Camera(hoa)
    photo = camera.message(jpeg((90, 10, 10)), message_id="photo-once")
    turn = await hoa.deliver(photo)
    assert turn.text.startswith("Đã nhận ảnh 1.")
    [stored] = files(suite_app)
    written = stored.stat().st_mtime_ns
    turn = await hoa.deliver(photo)  # the platform delivers it again
    assert turn.duplicate and files(suite_app) == [stored] and stored.stat().st_mtime_ns == written
    # After the person deleted their data, a late redelivery must not bring the file back.
    await hoa.command("xoadulieu")
    turn = await hoa.taps("Xóa dữ liệu của tôi")
    assert turn.text.startswith("Đã xóa dữ liệu của bạn (1 hồ sơ, 1 ảnh).")
    assert files(suite_app) == []
    turn = await hoa.deliver(photo)
    assert turn.duplicate and files(suite_app) == []
    assert camera.downloads == 1


async def test_a_photo_for_an_item_that_is_full_is_not_written(person, suite_app):
    hoa = person()
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    camera = Camera(hoa)
    turn = await camera.sends(jpeg((10, 10, 10)))  # at the level question: achieved, with this photo
    assert turn.text.startswith("Đã nhận ảnh, ghi mục 1 là Đạt (1 ảnh).")
    await hoa.says("quay lại")
    for shade in (20, 30):  # more photos for the item, now answered
        turn = await camera.sends(jpeg((shade, shade, shade)))
        assert turn.text.startswith("Đã nhận ảnh cho mục này.")
    turn = await camera.sends(jpeg((40, 40, 40)))
    assert turn.text.startswith("Mục này đã đủ 3 ảnh.")
    assert len(files(suite_app)) == 3 and len(await evidence_rows(suite_app)) == 3
    await check_invariants(suite_app)


async def _at_the_summary(hoa: Person) -> None:
    await register_citizen(hoa)
    await declare_all(hoa)
    assert "Sửa một mục" in hoa.last.choices


async def test_a_photo_held_at_the_summary_is_removed_when_not_attached(person, suite_app):
    hoa = person()
    await _at_the_summary(hoa)
    camera = Camera(hoa)
    turn = await camera.sends(jpeg((50, 60, 70)))
    assert turn.text.startswith("Đã nhận ảnh. Ảnh này dùng cho mục nào?")
    assert len(files(suite_app)) == 1  # held on disk while they choose: nothing they sent is lost
    turn = await hoa.taps("Quay lại")
    assert "Sửa một mục" in turn.choices
    assert files(suite_app) == [] and await evidence_rows(suite_app) == []

    # Held, then they went elsewhere; coming back to edit an item does not attach the old photo.
    await camera.sends(jpeg((80, 90, 100)))
    await hoa.command("menu")
    await hoa.command("tudanhgia")
    turn = await hoa.taps("Sửa một mục")
    assert turn.text.startswith("Bạn muốn sửa mục nào?")
    turn = await hoa.says("4")
    assert "Đã gắn ảnh" not in turn.text
    assert files(suite_app) == [] and await evidence_rows(suite_app) == []


async def test_a_photo_held_at_the_summary_is_attached_to_the_chosen_item(person, suite_app):
    hoa = person()
    await _at_the_summary(hoa)
    camera = Camera(hoa)
    await camera.sends(jpeg((50, 60, 70)))
    turn = await hoa.says("4")
    assert turn.text.startswith("Đã gắn ảnh vào mục 4.")
    [row] = await evidence_rows(suite_app)
    assert row.item_id == "4" and files(suite_app) == [Path(suite_app.settings.evidence_dir) / row.path]
    await check_invariants(suite_app)


async def test_no_photo_is_kept_once_consent_is_gone(person, suite_app):
    hoa = person()
    await at_the_first_photo_question(hoa)
    # Consent withdrawn while the question still takes photos (the conversation was left there).
    async with suite_app.sessions.begin() as session:
        await session.execute(update(ChannelAccount).values(consent_at=None))
    camera = Camera(hoa)
    turn = await camera.sends(jpeg())
    assert turn.text.startswith("Trước hết, bạn cần đồng ý cho lưu thông tin.")
    assert "Tôi đồng ý" in turn.choices
    assert files(suite_app) == [] and camera.downloads == 0
    async with suite_app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Evidence)) == 0
