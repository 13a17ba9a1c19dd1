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


async def register_citizen(p: Person, name: str = "Nguyễn Thị Hoa", year: str = "1975", branch: str = "2") -> None:
    """From a consented person: register for Công dân học tập and land on the declaration intro."""
    await agree(p)
    await p.taps("Công dân học tập")
    await p.says(name)
    await p.says(year)
    await p.says(branch)
    turn = await p.taps("Xác nhận")
    assert "Đã đăng ký Công dân học tập" in turn, turn
