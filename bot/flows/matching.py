"""Turn what a person typed into one of the offered choices: a number, a label, or a synonym.

"2", "2.", "Đạt", "dat", "ĐẠT" and "ok" can all mean the same button; diacritics are optional.
Part of a label works too, the same way at every question: its beginning ("cong dan" for "Công dân
học tập", "excel" for "Excel (XLSX)") or a word of it ("vo" for "Vợ/chồng", "ha luong" for "Thôn
Hà Lương"). When that fits more than one label, nothing is chosen and the person is asked which.

Some words mean the same at every question and are never taken as an answer: back ("quay lại"),
cancel ("hủy", "thôi") and help ("tôi không hiểu", "?").
"""

from __future__ import annotations

import re
from functools import cache

from bot.i18n import N_, all_aliases
from bot.messages import Choice
from bot.text import fold

# Choice value → catalog key of its comma-separated synonyms (both languages are accepted).
ALIAS_KEYS: dict[str, str] = {
    "agree": N_("alias.agree"),
    "decline": N_("alias.decline"),
    "yes": N_("alias.yes"),
    "no": N_("alias.no"),
    "achieved": N_("alias.achieved"),
    "partial": N_("alias.partial"),
    "not_yet": N_("alias.not_yet"),
    "not_applicable": N_("alias.not_applicable"),
    "skip": N_("alias.skip"),
    "stop": N_("alias.stop"),
    "done": N_("alias.done"),
    "nophoto": N_("alias.nophoto"),
    "submit": N_("alias.submit"),
    "back": N_("alias.back"),
    "menu": N_("alias.menu"),
    "later": N_("alias.later"),
    "start": N_("alias.start"),
}
HELP_KEY = N_("alias.help")
MENU_KEY = N_("alias.menu")
BACK_KEY = N_("alias.back")
CANCEL_KEY = N_("alias.cancel")

_NUMBERED = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")
_WORDS = re.compile(r"[\s/']+")
# A part of a label shorter than this is not taken as that label.
MIN_PART = 2


@cache
def aliases_for(value: str) -> frozenset[str]:
    key = ALIAS_KEYS.get(value)
    return frozenset(all_aliases(key)) if key else frozenset()


def _words(text: str) -> list[str]:
    return [word for word in _WORDS.split(fold(text)) if word]


def _part_of(typed: list[str], label: list[str]) -> int | None:
    """Where the typed words sit in the label's words (whole words, the last one may be cut
    short): 0 for its beginning, 1 for further in; None when they are not part of it."""
    if not typed or len(typed) > len(label):
        return None
    for start in range(len(label) - len(typed) + 1):
        window = label[start : start + len(typed)]
        if window[:-1] == typed[:-1] and window[-1].startswith(typed[-1]):
            return 0 if start == 0 else 1
    return None


def match_choices(text: str, choices: list[Choice], partial: bool = True) -> list[Choice]:
    """The choices `text` designates: one, none (free text), or several (ask which). Without
    `partial`, only a number, a whole label or a synonym counts."""
    if not choices:
        return []
    numbered = _NUMBERED.match(text)
    if numbered:
        index = int(numbered.group(1))
        return [choices[index - 1]] if 1 <= index <= len(choices) else []
    folded = fold(text)
    if not folded:
        return []
    for choice in choices:
        if fold(choice.label) == folded:
            return [choice]
    for choice in choices:
        if folded in aliases_for(choice.value):
            return [choice]
    if not partial or len(folded) < MIN_PART:
        return []
    typed = _words(text)
    beginning, inside = [], []
    for choice in choices:
        where = _part_of(typed, _words(choice.label))
        if where == 0:
            beginning.append(choice)
        elif where == 1:
            inside.append(choice)
    return beginning or inside


def match_choice(text: str, choices: list[Choice]) -> str | None:
    """The value of the choice `text` designates, or None when it is free text or ambiguous."""
    found = match_choices(text, choices)
    return found[0].value if len(found) == 1 else None


def is_keyword(text: str, key: str) -> bool:
    return fold(text) in all_aliases(key)


def escape_word(text: str) -> str | None:
    """ "back", "cancel" or "help" when the text is one of the words that mean it at every question."""
    if text.strip() in ("?", "？"):
        return "help"
    for word, key in (("back", BACK_KEY), ("cancel", CANCEL_KEY), ("help", HELP_KEY)):
        if is_keyword(text, key):
            return word
    return None
