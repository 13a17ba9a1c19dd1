"""Points of a citizen's declaration that photo tests start from (registered for "Công dân học
tập" with tests/support/scripts.py's register_citizen, every item answered "Đạt")."""

from __future__ import annotations

from tests.support.chat import Person, Turn
from tests.support.journeys import answer_items
from tests.support.scripts import register_citizen


async def at_the_first_photo_question(p: Person) -> None:
    """Registered, the declaration started and item 1 answered "Đạt": its photo question is on screen."""
    await register_citizen(p)
    await p.taps("Bắt đầu")
    await p.taps("Đạt")


async def at_the_summary_with_one_photo(p: Person, photo: bytes) -> Turn:
    """Item 1 with `photo`, the other nine with none: the summary (returned), nothing submitted."""
    await at_the_first_photo_question(p)
    await p.sends_photo(photo)
    await p.taps("Xong")
    return await answer_items(p, 9)
