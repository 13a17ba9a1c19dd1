"""Forgiving text handling: Unicode NFC, diacritic-free comparison, names and years.

Farmers type on old phones, often without Vietnamese diacritics ("chua dat" for "chưa đạt"),
so matching compares a folded form while stored text keeps its proper NFC spelling.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s/']", re.UNICODE)
_NAME_OK = re.compile(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+)*\.?$", re.UNICODE)


# Whitespace controls stay (nfc folds them into spaces); every other control character goes.
_KEEP_CONTROLS = frozenset("\t\n\r\x0b\x0c")


def strip_controls(text: str) -> str:
    """Remove control characters (NUL and the other C0/C1 codes) and lone surrogates.

    Typed text may carry them (a pasted byte, a broken keyboard); PostgreSQL refuses NUL in text
    and lone surrogates cannot be encoded, so they are dropped where a message enters the bot."""
    if text.isprintable():
        return text
    return "".join(ch for ch in text if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cs"))


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters: cut at a word boundary and marked with "…" when longer."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def nfc(text: str) -> str:
    """NFC-normalise and collapse whitespace (Zalo and some keyboards send decomposed text)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def fold(text: str) -> str:
    """Lower-case, strip diacritics (đ → d), drop punctuation: the key for forgiving matching."""
    text = unicodedata.normalize("NFD", nfc(text).lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("đ", "d").replace("Đ", "d")
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def clean_name(raw: str, max_length: int = 100) -> str | None:
    """A person's name as they would write it, or None when it cannot be a name.

    Accepts single-word and ethnic-minority names (Y Bih, H'Nga); refuses digits and symbols.
    All-lower or all-upper input is title-cased; mixed case is kept as typed. NFKC first: look-alike
    letters (fullwidth, mathematical "ℌ𝔬𝔞") become the plain letters they stand for.
    """
    name = nfc(unicodedata.normalize("NFKC", strip_controls(raw)))
    if not 2 <= len(name) <= max_length or not _NAME_OK.match(name):
        return None
    if name == name.lower() or name == name.upper():
        name = " ".join(_title_word(word) for word in name.split(" "))
    return name


def name_problem(raw: str, max_length: int = 100) -> str | None:
    """Why `raw` is not a name: "short" (fewer than 2 characters), "long", or "characters"
    (digits or symbols); None when `clean_name` accepts it."""
    name = nfc(unicodedata.normalize("NFKC", strip_controls(raw)))
    if len(name) < 2:
        return "short"
    if len(name) > max_length:
        return "long"
    return None if _NAME_OK.match(name) else "characters"


def year_problem(raw: str, low: int, high: int) -> str | None:
    """Why `raw` is not a birth year from `low` to `high`: "digits" (not a four-digit year),
    "young" (after `high`), "old" (before `low`); None when it is one."""
    year = parse_year(raw)
    if year is None:
        return "digits"
    if year > high:
        return "young"
    if year < low:
        return "old"
    return None


def _title_word(word: str) -> str:
    # "h'nga" -> "H'Nga", "nguyễn" -> "Nguyễn"
    return "'".join(part[:1].upper() + part[1:].lower() for part in word.split("'"))


def parse_year(raw: str) -> int | None:
    text = nfc(raw)
    digits = re.sub(r"[^\d]", "", text)
    if len(digits) != 4 or len(text) > 12:
        return None
    return int(digits)
