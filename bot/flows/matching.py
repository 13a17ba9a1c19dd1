"""Turn what a person typed into one of the offered choices: a number, a label, or a synonym.

"2", "2.", "Đạt", "dat", "ĐẠT" and "ok" can all mean the same button; diacritics are optional.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.messages import Choice
from bot.i18n import N_, all_aliases
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

_NUMBERED = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")


@lru_cache(maxsize=None)
def aliases_for(value: str) -> frozenset[str]:
    key = ALIAS_KEYS.get(value)
    return frozenset(all_aliases(key)) if key else frozenset()


def match_choice(text: str, choices: list[Choice]) -> str | None:
    """The value of the choice `text` designates, or None when it is free text."""
    if not choices:
        return None
    numbered = _NUMBERED.match(text)
    if numbered:
        index = int(numbered.group(1))
        return choices[index - 1].value if 1 <= index <= len(choices) else None
    folded = fold(text)
    if not folded:
        return None
    for choice in choices:
        if fold(choice.label) == folded:
            return choice.value
    for choice in choices:
        if folded in aliases_for(choice.value):
            return choice.value
    return None


def is_keyword(text: str, key: str) -> bool:
    return fold(text) in all_aliases(key)
