"""Babel catalogs for every user-facing string.

Messages are looked up by stable keys (`consent.ask`); `locales/vi` holds what people read by
default and `locales/en` the English version. The .po files are compiled in memory at start, so
there is no build step to forget.

How people are addressed is a catalog choice too: the neutral Vietnamese speaks as "mình" to
"bạn"; a commune may choose "bác" or "ông/bà" (`address:` in its file). Each such form is an
overlay catalog (`locales/vi/LC_MESSAGES/address_<form>.po`, made by `locales/address_forms.py`)
with only the messages that change; the rest falls back to the neutral text.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from bot.clock import VN_TZ
from bot.text import fold

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
DOMAIN = "messages"
NEUTRAL = "neutral"
ADDRESS_FORMS = (NEUTRAL, "bac", "ong_ba")


def N_(key: str) -> str:
    """Mark a key for extraction where it is translated later (tables, enums)."""
    return key


def locales_dir() -> Path:
    package = Path(__file__).resolve().parent
    bundled = package / "_locales"
    return bundled if bundled.is_dir() else package.parent / "locales"


def _compile(po_path: Path, locale: str, domain: str) -> Translations:
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=domain)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=domain)


@cache
def translations(locale: str, address: str = NEUTRAL) -> Translations:
    """The catalog of `locale`, seen through the overlay of an address form where it has one (the
    neutral catalog is compiled once and shared as every overlay's fallback)."""
    overlay_path = locales_dir() / locale / "LC_MESSAGES" / f"address_{address}.po"
    if address == NEUTRAL or not overlay_path.is_file():
        return _compile(locales_dir() / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale, DOMAIN)
    overlay = _compile(overlay_path, locale, f"address_{address}")
    overlay.add_fallback(translations(locale))
    return overlay


def normalise_address(value: str | None) -> str:
    return value if value in ADDRESS_FORMS else NEUTRAL


def normalise_locale(value: str | None) -> str:
    if not value:
        return DEFAULT_LOCALE
    short = value.replace("-", "_").split("_", 1)[0].lower()
    return short if short in LOCALES else DEFAULT_LOCALE


class Translator:
    """Translate keys and format dates for one locale (and one form of address)."""

    def __init__(self, locale: str, address: str | None = None) -> None:
        self.locale = normalise_locale(locale)
        self.address = normalise_address(address)
        self._translations = translations(self.locale, self.address)
        self._babel_locale = Locale.parse(self.locale)

    def __call__(self, key: str, **params: object) -> str:
        text = self._translations.gettext(key)
        return text.format(**params) if params else text

    def plural(self, singular: str, plural: str, count: int, **params: object) -> str:
        text = self._translations.ngettext(singular, plural, count)
        return text.format(count=count, **params)

    def date(self, value: date, format: str = "long") -> str:
        """Vietnamese date style: "ngày 5/12/2026" ("short": "5/12/2026"), never a two-digit year."""
        if self.locale == "vi":
            plain = f"{value.day}/{value.month}/{value.year}"
            return plain if format == "short" else self(N_("date.long"), date=plain)
        return format_date(value, format=format, locale=self._babel_locale)

    def datetime(self, value: datetime, format: str = "short") -> str:
        if self.locale == "vi":
            local = value.astimezone(VN_TZ)
            return self(
                N_("date.time"), time=f"{local.hour:02d}:{local.minute:02d}", date=self.date(local.date(), "short")
            )
        return format_datetime(value, format=format, tzinfo=VN_TZ, locale=self._babel_locale)

    def number(self, value: float | int, decimals: int = 0) -> str:
        """A number as people read it in this language: 5.840 and 0,2 in Vietnamese, 5,840 and
        0.2 in English; at most `decimals` digits after the comma, none when they are zeros.
        The one helper for chat, charts, digests and exports' notes."""
        pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=self._babel_locale)

    def percent(self, value: float | None, decimals: int = 1) -> str:
        """A share given in percent (70.0 for 70%), written "0,2%" or "70%"; "-" without one."""
        return "-" if value is None else f"{self.number(value, decimals)}%"

    def aliases(self, key: str) -> frozenset[str]:
        """Folded synonyms from a catalog entry holding a comma-separated list."""
        return frozenset(folded for folded in (fold(part) for part in self(key).split(",")) if folded)


@cache
def all_aliases(key: str) -> frozenset[str]:
    """Synonyms accepted in any language: a Vietnamese reader may still type "ok" or "yes".
    Kept once read: the catalogs do not change while the process runs, and every escape-word
    check asks."""
    found: set[str] = set()
    for locale in LOCALES:
        found |= Translator(locale).aliases(key)
    return frozenset(found)


@cache
def get_translator(locale: str | None, address: str | None = None) -> Translator:
    return Translator(normalise_locale(locale), address)
