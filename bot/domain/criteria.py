"""Criteria sets as versioned data: models, loader with precise errors, and scoring.

The official frameworks (QĐ 244/QĐ-KHVN, QĐ 448/QĐ-KHVN) are adapted by each province, so the
items, points and thresholds live in YAML files, never in code. Score is always computed here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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
    provisional: bool = False

    @property
    def asks_for_photo(self) -> bool:
        """A photo is expected when the item is met: required, or asked for by its hint."""
        return self.photo_required or (self.evidence_hint is not None and not self.no_photo)

    @model_validator(mode="after")
    def _points(self) -> "Item":
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
                raise ValueError(
                    f"points.{level.value} = {value} is outside 0..max_points ({self.max_points})"
                )
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
    subject: Literal["person", "household"]
    issuer: str
    decision: str
    province: str | None = None
    valid_from_year: int = Field(ge=2000, le=2100)
    valid_to_year: int | None = Field(default=None, ge=2000, le=2100)
    provisional_note: Localized | None = None
    criteria: list[Criterion] = Field(min_length=1)
    recognition: RecognitionRule

    @model_validator(mode="after")
    def _consistent(self) -> "CriteriaSet":
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
    recognisable = (
        total >= rule.total_min and not unanswered and not below_floor and not mandatory_missing
    )
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


def _describe(error: dict) -> str:
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

    def for_title(self, title: str, year: int, province: str | None = None) -> CriteriaSet:
        """The newest set for a title valid in a year; a province's own set wins over the national one."""
        candidates = [s for s in self.sets.values() if s.title == title and s.valid_in(year)]
        if province:
            own = [s for s in candidates if s.province == province]
            candidates = own or [s for s in candidates if s.province is None]
        if not candidates:
            raise CriteriaError(f"no criteria set for title {title!r} in {year}")
        return max(candidates, key=lambda s: (s.valid_from_year, s.version))

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
