"""What a title is awarded to: its subject. Today a person (Công dân học tập) or a household
(Gia đình học tập); later a clan (Dòng họ học tập) or a village community.

A kind says, as data, what every layer needs to know about it without asking which kind it is:
- its name, as criteria files write it (`subject: household`);
- the population figure of a branch or commune that its rates are counted against;
- whether registering one lists the people in it (a household's members).
Whose submission it is, who may act on it and who is told of decisions live with its storage
(`bot.storage.subjects`), since they are answered from the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SubjectKind:
    name: str
    # The OrgUnit figure rates are counted against (`adults_total`, `households_total`).
    population: str
    # Registration asks who else belongs to it (a household's members, a clan's families).
    has_members: bool = False

    def population_of(self, unit: Any) -> int | None:
        """This kind's population in a branch or commune (anything with the figure as attribute)."""
        value = getattr(unit, self.population, None)
        return value if isinstance(value, int) else None


PERSON = SubjectKind("person", population="adults_total")
HOUSEHOLD = SubjectKind("household", population="households_total", has_members=True)

_KINDS: dict[str, SubjectKind] = {}


def add_kind(kind: SubjectKind) -> SubjectKind:
    """Make a kind known (criteria files may name it from then on). Adding it again is harmless."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"subject kind {kind.name!r} is already defined differently")
    _KINDS[kind.name] = kind
    return kind


def remove_kind(name: str) -> None:
    """Forget a kind (tests that define their own)."""
    if name in (PERSON.name, HOUSEHOLD.name):
        raise ValueError(f"subject kind {name!r} is built in")
    _KINDS.pop(name, None)


def subject_kind(name: str) -> SubjectKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"unknown subject kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def known_kinds() -> list[str]:
    return sorted(_KINDS)


def population(unit: Any, kind: str) -> int | None:
    """The population a kind's rates are counted against in a branch or commune; None when unknown."""
    return subject_kind(kind).population_of(unit)


add_kind(PERSON)
add_kind(HOUSEHOLD)
