"""Write the Vietnamese catalogs for the respectful forms of address from the neutral one.

The neutral catalog (`vi/LC_MESSAGES/messages.po`) speaks as "mình" to "bạn". A commune can
choose (`address:` in its file) to be addressed as "bác" (the bot speaks as "cháu") or as
"ông/bà" (the bot speaks as "chúng tôi"). Each form is an overlay catalog
(`vi/LC_MESSAGES/address_<form>.po`) holding only the messages that change; everything else
falls back to the neutral text.

Run after changing the neutral catalog:  .venv/bin/python locales/address_forms.py
An overlay entry remembers (as a comment) the neutral text it was made from: while that text is
unchanged the entry is kept as it is, so a hand-corrected wording survives the next run; when the
neutral text changed, the entry is made again. tests/test_address_forms.py fails on a stale or
missing entry.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
NEUTRAL = HERE / "vi" / "LC_MESSAGES" / "messages.po"
SOURCE_MARK = "from: "


@dataclass(frozen=True)
class Form:
    name: str
    you: str  # how the person is called, lower case
    me: str  # how the bot speaks of itself, lower case
    greeting: str  # replaces "Chào bạn"

    def overlay_path(self) -> Path:
        return HERE / "vi" / "LC_MESSAGES" / f"address_{self.name}.po"


FORMS = (
    Form("bac", you="bác", me="cháu", greeting="Cháu chào bác"),
    Form("ong_ba", you="ông/bà", me="chúng tôi", greeting="Kính chào ông/bà"),
)

_YOU = re.compile(r"\b([Bb])ạn\b")
# "mình" is the bot speaking, except in "của mình" (the person's own: "xã của mình").
_ME = re.compile(r"(?<!của )\b([Mm])ình\b")
_NHE = re.compile(r" nhé\b")


def _cap(word: str, upper: bool) -> str:
    return word[0].upper() + word[1:] if upper else word


def speak(text: str, form: Form) -> str:
    """`text` (neutral) as said in `form`."""
    text = text.replace("Chào bạn", form.greeting)
    text = _YOU.sub(lambda m: _cap(form.you, m.group(1) == "B"), text)
    text = _ME.sub(lambda m: _cap(form.me, m.group(1) == "M"), text)
    # "nhé" is between equals; to an elder (or formally) a request ends in "ạ".
    return _NHE.sub(" ạ", text)


def _strings(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def changes(neutral: Catalog, form: Form) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """key -> (neutral strings, strings in this form) for every message the form changes."""
    found = {}
    for message in neutral:
        if not message.id or str(message.id if isinstance(message.id, str) else message.id[0]).startswith("alias."):
            continue
        before = _strings(message.string)
        after = tuple(speak(s, form) for s in before)
        if after != before:
            found[message.id] = (before, after)
    return found


def source_comment(strings: tuple[str, ...]) -> str:
    return SOURCE_MARK + " | ".join(strings).replace("\n", "\\n")


def made_from(message: Message) -> str:
    """The source comment of an overlay entry (the .po writer wraps long comments)."""
    return " ".join(message.auto_comments)


def build(form: Form) -> Catalog:
    with NEUTRAL.open("rb") as handle:
        neutral = read_po(handle, locale="vi")
    previous: dict = {}
    if form.overlay_path().exists():
        with form.overlay_path().open("rb") as handle:
            previous = {m.id: m for m in read_po(handle, locale="vi") if m.id}
    overlay = Catalog(
        locale="vi",
        domain=f"address_{form.name}",
        project="hoctap-bot",
        version=neutral.version,
        copyright_holder="hoctap-bot",
        creation_date=neutral.creation_date,
        revision_date=neutral.creation_date,
        fuzzy=False,
    )
    for key, (before, after) in changes(neutral, form).items():
        kept = previous.get(key)
        if kept is not None and made_from(kept) == source_comment(before):
            after = _strings(kept.string)  # unchanged source: keep the (maybe hand-edited) wording
        overlay.add(key, after if isinstance(key, tuple) else after[0], auto_comments=[source_comment(before)])
    return overlay


def main() -> int:
    for form in FORMS:
        catalog = build(form)
        with form.overlay_path().open("wb") as handle:
            write_po(handle, catalog, width=0, sort_output=True)
        print(f"{form.overlay_path().relative_to(HERE)}: {len(catalog)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
