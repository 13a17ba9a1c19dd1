"""Stretches of conversation that transcript tests pass through on the way to what they check:
answering a run of questions, registering from the title question (for oneself, for a household,
or as a branch leader for someone without a phone), answering the remaining items and submitting.
Each returns the last turn for the test to check. A test whose subject is one of these steps keeps
the steps written out, with its assertions between them.

    await register(hoa, "Công dân học tập", "Nguyễn Thị Hoa", "1975", "2")
    await register(kpa, "Công dân học tập", "Trần Văn Kpă", "1980", Tap("Xã Ea Kpam"), Tap("Thôn 1"))

(Consenting and registering in one go, and declaring from the intro, are in tests/support/scripts.py.)
"""

from __future__ import annotations

from tests.support.chat import Person, Turn


class Tap(str):
    """An answer given by pressing the button with this label (a plain string is typed)."""


async def answer(p: Person, first: str, *more: str) -> Turn:
    """Give each answer in turn, a Tap pressed and anything else typed; returns the last turn."""
    for text in (first, *more):
        turn = await (p.taps(text) if isinstance(text, Tap) else p.says(text))
    return turn


async def register(p: Person, title: str, *answers: str, confirm: str = "Xác nhận") -> Turn:
    """From the title question: choose `title`, give `answers` (as `answer` does) and confirm;
    returns the answer to the confirmation."""
    return await answer(p, Tap(title), *answers, Tap(confirm))


async def answer_items(p: Person, count: int, level: str = "Đạt", *, no_photo: str = "Không có ảnh") -> Turn:
    """At an item's question: answer it and the items after it, `count` in all, with `level` and no
    photo; returns the last turn (the summary, after the last item)."""
    for _ in range(count):
        await p.taps(level)
        turn = await p.taps(no_photo)
    return turn


async def submit(p: Person, *, button: str = "Nộp hồ sơ", now: str = "Nộp ngay") -> Turn:
    """At the summary: submit, and confirm at once; returns the answer."""
    await p.taps(button)
    return await p.taps(now)
