"""Criteria sets as versioned data: models, loader with precise errors, and scoring.

The official frameworks (QĐ 244/QĐ-KHVN, QĐ 448/QĐ-KHVN) are adapted by each province, so the
items, points and thresholds live in YAML files, never in code. Score is always computed here.

What no public source supports is marked in the data: `provisional` on an item, criterion or
pass rule (a suggestion the province must confirm), `provisional_levels` on an item (the points
of those answer levels are our own design). A pass rule marked provisional is never shown to a
resident as "eligible". A province replaces a national set with its own file (`province:` set to
its code); a set may serve one target group (`target_group`), and a person picks their group
when a title has more than one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from bot.domain.subjects import known_kinds


class CriteriaError(ValueError):
    """A criteria file is unusable; the message names the file and the field."""


class Level(StrEnum):
    """How a person answers one item. `not_applicable` only where the data allows it."""

    ACHIEVED = "achieved"
    PARTIAL = "partial"
    NOT_YET = "not_yet"
    NOT_APPLICABLE = "not_applicable"


class Localized(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.vi


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    text: Localized
    max_points: int = Field(gt=0, le=100)
    # Points awarded per answer level; levels missing here are not offered to the person.
    points: dict[Level, int] = Field(default_factory=dict)
    evidence_hint: Localized | None = None
    photo_required: bool = False
    # The item needs no photo (its hint says so); otherwise a hint means a photo is asked for.
    no_photo: bool = False
    # The item itself (its text) has no source: a suggestion the province must confirm.
    provisional: bool = False
    # Answer levels whose points are our own design (e.g. "partly" = 5), not the decision's.
    provisional_levels: list[Level] = Field(default_factory=list)

    @property
    def asks_for_photo(self) -> bool:
        """A photo is expected when the item is met: required, or asked for by its hint."""
        return self.photo_required or (self.evidence_hint is not None and not self.no_photo)

    @model_validator(mode="after")
    def _points(self) -> Item:
        if not self.points:
            self.points = {
                Level.ACHIEVED: self.max_points,
                Level.PARTIAL: self.max_points // 2,
                Level.NOT_YET: 0,
            }
        if Level.ACHIEVED not in self.points or Level.NOT_YET not in self.points:
            raise ValueError("points must offer at least 'achieved' and 'not_yet'")
        for level, value in self.points.items():
            if not 0 <= value <= self.max_points:
                raise ValueError(f"points.{level.value} = {value} is outside 0..max_points ({self.max_points})")
        for level in self.provisional_levels:
            if level not in self.points:
                raise ValueError(f"provisional_levels names {level.value!r}, which points does not offer")
        return self

    @property
    def levels(self) -> list[Level]:
        order = [Level.ACHIEVED, Level.PARTIAL, Level.NOT_YET, Level.NOT_APPLICABLE]
        return [level for level in order if level in self.points]


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    text: Localized
    items: list[Item] = Field(min_length=1)
    provisional: bool = False


class RecognitionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_min: int = Field(ge=0)
    item_floor: int | None = Field(default=None, ge=0)
    mandatory_items: list[str] = Field(default_factory=list)
    provisional: bool = False


class CriteriaSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[a-z0-9_.-]+$")
    version: int = Field(ge=1)
    title: Literal["cd", "gd"] | str = Field(min_length=1)
    title_name: Localized
    subject: str = Field(min_length=1)  # a kind of bot.domain.subjects: person | household | …
    issuer: str
    decision: str
    decision_title: str | None = None
    period: str | None = None
    note: Localized | None = None
    # A province's own set (its province code) replaces the national one for its communes.
    province: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    # The group of people this form is for; None: the general form, offered when no group form exists.
    target_group: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=32)
    target_group_name: Localized | None = None
    valid_from_year: int = Field(ge=2000, le=2100)
    valid_to_year: int | None = Field(default=None, ge=2000, le=2100)
    provisional_note: Localized | None = None
    criteria: list[Criterion] = Field(min_length=1)
    recognition: RecognitionRule

    @field_validator("subject")
    @classmethod
    def _known_subject(cls, value: str) -> str:
        if value not in known_kinds():
            raise ValueError(f"Input should be one of {', '.join(repr(k) for k in known_kinds())}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CriteriaSet:
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"duplicate item id {item.id!r}")
            seen.add(item.id)
        for item_id in self.recognition.mandatory_items:
            if item_id not in seen:
                raise ValueError(f"recognition.mandatory_items names unknown item {item_id!r}")
        if self.recognition.total_min > self.max_total:
            raise ValueError(
                f"recognition.total_min ({self.recognition.total_min}) exceeds the total of "
                f"max_points ({self.max_total})"
            )
        if self.valid_to_year is not None and self.valid_to_year < self.valid_from_year:
            raise ValueError("valid_to_year is before valid_from_year")
        if (self.target_group is None) != (self.target_group_name is None):
            raise ValueError("target_group and target_group_name go together")
        return self

    @property
    def items(self) -> list[Item]:
        return [item for criterion in self.criteria for item in criterion.items]

    @property
    def max_total(self) -> int:
        return sum(item.max_points for item in self.items)

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def criterion_of(self, item_id: str) -> Criterion:
        for criterion in self.criteria:
            if any(item.id == item_id for item in criterion.items):
                return criterion
        raise KeyError(item_id)

    def valid_in(self, year: int) -> bool:
        return self.valid_from_year <= year and (self.valid_to_year is None or year <= self.valid_to_year)

    @property
    def pass_rule_confirmed(self) -> bool:
        """Whether the bot may tell a person they are eligible; otherwise the commune assesses."""
        return not self.recognition.provisional

    @property
    def is_provisional(self) -> bool:
        return (
            self.recognition.provisional
            or any(c.provisional for c in self.criteria)
            or any(i.provisional for i in self.items)
        )


@dataclass(frozen=True)
class Score:
    """The computed result of a declaration against its criteria set."""

    total: int
    max_total: int
    threshold: int
    per_item: dict[str, int]
    unanswered: list[str]
    below_floor: list[str]
    mandatory_missing: list[str]
    recognisable: bool

    @property
    def blocking_items(self) -> list[str]:
        """Items that stop recognition, in criteria order without repeats."""
        ordered: list[str] = []
        for item_id in (*self.unanswered, *self.below_floor, *self.mandatory_missing):
            if item_id not in ordered:
                ordered.append(item_id)
        return ordered


def points_for(item: Item, level: Level | str) -> int:
    level = Level(level)
    if level not in item.points:
        raise ValueError(f"item {item.id} does not accept the answer {level.value!r}")
    return item.points[level]


def score(criteria_set: CriteriaSet, answers: dict[str, Level | str]) -> Score:
    """Score answers (item id → level); unanswered items count 0 and block recognition."""
    rule = criteria_set.recognition
    per_item: dict[str, int] = {}
    unanswered: list[str] = []
    below_floor: list[str] = []
    mandatory_missing: list[str] = []
    for item in criteria_set.items:
        level = answers.get(item.id)
        if level is None:
            unanswered.append(item.id)
            per_item[item.id] = 0
            continue
        points = points_for(item, level)
        per_item[item.id] = points
        if (
            rule.item_floor is not None
            and Level(level) != Level.NOT_APPLICABLE
            and points < min(rule.item_floor, item.max_points)
        ):
            below_floor.append(item.id)
        if item.id in rule.mandatory_items and Level(level) not in (Level.ACHIEVED, Level.NOT_APPLICABLE):
            mandatory_missing.append(item.id)
    total = sum(per_item.values())
    recognisable = total >= rule.total_min and not unanswered and not below_floor and not mandatory_missing
    return Score(
        total=total,
        max_total=criteria_set.max_total,
        threshold=rule.total_min,
        per_item=per_item,
        unanswered=unanswered,
        below_floor=below_floor,
        mandatory_missing=mandatory_missing,
        recognisable=recognisable,
    )


def _describe(error: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    return f"{loc}: {error.get('msg')}"


def parse_criteria(text: str, source: str) -> CriteriaSet:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CriteriaError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CriteriaError(f"{source}: the file must hold one mapping (id, title, criteria, …)")
    try:
        return CriteriaSet.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(_describe(err) for err in exc.errors())
        raise CriteriaError(f"{source}: {details}") from exc


def load_criteria_file(path: Path) -> CriteriaSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CriteriaError(f"{path}: cannot read: {exc}") from exc
    return parse_criteria(text, str(path))


@dataclass
class CriteriaCatalog:
    """All criteria sets an installation knows, by id, with the file digest kept for audit."""

    sets: dict[str, CriteriaSet] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def add(self, criteria_set: CriteriaSet, digest: str, source: str) -> None:
        if criteria_set.id in self.sets:
            raise CriteriaError(f"{source}: id {criteria_set.id!r} is already defined by another file")
        self.sets[criteria_set.id] = criteria_set
        self.digests[criteria_set.id] = digest

    def get(self, set_id: str) -> CriteriaSet:
        return self.sets[set_id]

    def _candidates(self, title: str, year: int, province: str | None) -> list[CriteriaSet]:
        """Sets for a title valid in a year: the province's own when it has any for the title,
        else the national ones (other provinces' sets never)."""
        candidates = [s for s in self.sets.values() if s.title == title and s.valid_in(year)]
        own = [s for s in candidates if province and s.province == province]
        return own or [s for s in candidates if s.province is None]

    def target_groups(self, title: str, year: int, province: str | None = None) -> list[CriteriaSet]:
        """One set per target group (the newest of each), in file order of group id; the general
        form (no group) only when no group form exists."""
        newest: dict[str | None, CriteriaSet] = {}
        for s in self._candidates(title, year, province):
            held = newest.get(s.target_group)
            if held is None or (s.valid_from_year, s.version) > (held.valid_from_year, held.version):
                newest[s.target_group] = s
        if len(newest) > 1:
            newest.pop(None, None)
        return [newest[group] for group in sorted(newest, key=lambda g: g or "")]

    def for_title(
        self, title: str, year: int, province: str | None = None, target_group: str | None = None
    ) -> CriteriaSet:
        """The newest set for a title valid in a year; a province's own set wins over the national
        one. With a target group, that group's form (failing that, the first form there is)."""
        forms = self.target_groups(title, year, province)
        if not forms:
            raise CriteriaError(f"no criteria set for title {title!r} in {year}")
        for form in forms:
            if form.target_group == target_group:
                return form
        return forms[0]

    def titles(self) -> list[str]:
        return sorted({s.title for s in self.sets.values()})


def _bundled_files() -> Iterable[tuple[str, str]]:
    folder = resources.files("bot") / "criteria"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield f"bot/criteria/{entry.name}", entry.read_text(encoding="utf-8")


def load_catalog(extra_dirs: Iterable[Path] = ()) -> CriteriaCatalog:
    """Load the bundled criteria sets plus any commune-supplied folders."""
    catalog = CriteriaCatalog()
    sources: list[tuple[str, str]] = list(_bundled_files())
    for folder in extra_dirs:
        for path in sorted(Path(folder).glob("*.y*ml")):
            sources.append((str(path), path.read_text(encoding="utf-8")))
    for source, text in sources:
        criteria_set = parse_criteria(text, source)
        catalog.add(criteria_set, hashlib.sha256(text.encode()).hexdigest(), source)
    return catalog
