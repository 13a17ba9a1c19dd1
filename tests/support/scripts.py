"""Conversation steps several transcript tests share (each test still asserts its own replies)."""

from __future__ import annotations

from tests.support.chat import Person


async def agree(p: Person, locale: str = "vi") -> None:
    await p.says("xin chào" if locale == "vi" else "hello")
    if locale == "en":
        await p.command("lang")
        await p.taps("English")
        await p.taps("I agree")
    else:
        await p.taps("Tôi đồng ý")


# What registering for Công dân học tập reads in each language: the title, the confirm button,
# and the start of the answer once registered.
_CITIZEN = {
    "vi": ("Công dân học tập", "Xác nhận", "Đã đăng ký Công dân học tập"),
    "en": ("Learning citizen", "Confirm", "Registered for Learning citizen"),
}


async def register_citizen(
    p: Person, name: str = "Nguyễn Thị Hoa", year: str = "1975", branch: str = "2", *, locale: str = "vi"
) -> None:
    """From a consented person: register for Công dân học tập and land on the declaration intro."""
    title, confirm, registered = _CITIZEN[locale]
    await agree(p, locale)
    await p.taps(title)
    await p.says(name)
    await p.says(year)
    await p.says(branch)
    turn = await p.taps(confirm)
    assert registered in turn, turn


async def register_citizen_en(p: Person, name: str = "John Nguyen", year: str = "1988", branch: str = "3") -> None:
    """The same in English."""
    await register_citizen(p, name, year, branch, locale="en")


async def declare_all(p: Person, level: str = "Đạt", *, start: str = "Bắt đầu", no_photo: str = "Không có ảnh") -> None:
    """From the declaration intro: answer all ten items with `level`, no photos (lands on the summary)."""
    await p.taps(start)
    for _ in range(10):
        await p.taps(level)
        await p.taps(no_photo)
