"""Commune setup from a YAML file: commune, branches, yearly campaigns (deadlines, targets).

Units follow the two-level local government in force since 1 July 2025: province → commune
(xã, phường, đặc khu; its official 5-digit code from QĐ 19/2025/QĐ-TTg) → branch (thôn, buôn,
tổ dân phố). There is no district level; a file that still names one is refused with the reason.

Running it again updates names, figures and deadlines in place (codes are the stable keys),
so an officer can correct the file and re-run `hoctap init` without duplicating anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.calendar import current_of, windows
from bot.storage.core import get_held, hold, transaction_memo
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit
from bot.text import fold

DEADLINE_KINDS = ("registration", "self_declaration", "branch_review", "commune_report")
DEFAULT_OFFSETS = [30, 7, 1]
# What a commune does once a deadline has passed: accept late (marked for reviewers) or close.
AFTER_DEADLINE = ("late", "closed")
# How residents are addressed: a catalog choice per commune ("neutral" is the catalogs' default).
ADDRESS_FORMS = ("neutral", "bac", "ong_ba")


def order_problem(dates: dict[str, date]) -> tuple[str, str, str] | None:
    """The first deadline out of order, as (kind, "before"/"after", other kind); None when the
    deadlines follow each other (registration ≤ self-declaration ≤ branch review ≤ report)."""
    present = [kind for kind in DEADLINE_KINDS if kind in dates]
    for earlier, later in zip(present, present[1:], strict=False):
        if dates[later] < dates[earlier]:
            return later, "before", earlier
    return None


ModelT = TypeVar("ModelT", bound=BaseModel)


class CommuneFileError(ValueError):
    """The commune file is unusable; the message names the file and field."""


class UnitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    name: str = Field(min_length=1, max_length=200)
    official_code: str | None = Field(default=None, pattern=r"^[0-9]{2,5}$")
    households: int | None = Field(default=None, ge=0)
    adults: int | None = Field(default=None, ge=0)


class CommuneUnitSpec(UnitSpec):
    # A commune's official code has 5 digits (QĐ 19/2025/QĐ-TTg).
    official_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$")


class ProvinceUnitSpec(UnitSpec):
    official_code: str | None = Field(default=None, pattern=r"^[0-9]{2}$")


def _no_district(raw: object) -> object:
    if isinstance(raw, dict) and "district" in raw:
        raise ValueError(
            "district: districts were abolished on 1 July 2025; remove it (a commune belongs to its province)"
        )
    return raw


def _check_offsets(value: list[int]) -> list[int]:
    if any(v < 0 or v > 365 for v in value):
        raise ValueError("reminder offsets are days before a deadline, 0–365")
    return sorted(set(value), reverse=True)


class DeadlineSpec(BaseModel):
    """A deadline with its own reminder offsets: `self_declaration: {date: 2026-11-30, reminder_offsets: [14, 3]}`."""

    model_config = ConfigDict(extra="forbid")
    date: date
    reminder_offsets: list[int] | None = None

    @field_validator("reminder_offsets")
    @classmethod
    def _offsets(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else _check_offsets(value)


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: int = Field(ge=2000, le=2100)
    # First day of registration (default: the day after the previous campaign's last deadline).
    opens: date | None = None
    targets: dict[str, float] = Field(default_factory=dict)
    reminder_offsets: list[int] = Field(default_factory=lambda: list(DEFAULT_OFFSETS))
    deadlines: dict[str, DeadlineSpec | date]

    @field_validator("deadlines")
    @classmethod
    def _known_kinds(cls, value: dict[str, DeadlineSpec | date]) -> dict[str, DeadlineSpec | date]:
        unknown = sorted(set(value) - set(DEADLINE_KINDS))
        if unknown:
            raise ValueError(f"unknown deadline kinds {unknown}; use {list(DEADLINE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _in_order(self) -> CampaignSpec:
        problem = order_problem({kind: spec.date for kind, spec in self.deadline_specs().items()})
        if problem is not None:
            raise ValueError(f"deadline {problem[0]} must not be {problem[1]} {problem[2]}")
        first = min((spec.date for spec in self.deadline_specs().values()), default=None)
        if self.opens is not None and first is not None and self.opens > first:
            raise ValueError("opens must not be after the first deadline")
        return self

    def deadline_specs(self) -> dict[str, DeadlineSpec]:
        return {
            kind: spec if isinstance(spec, DeadlineSpec) else DeadlineSpec(date=spec)
            for kind, spec in self.deadlines.items()
        }

    @field_validator("targets")
    @classmethod
    def _percent(cls, value: dict[str, float]) -> dict[str, float]:
        for title, percent in value.items():
            if not 0 <= percent <= 100:
                raise ValueError(f"target for {title!r} must be a percentage 0–100")
        return value

    @field_validator("reminder_offsets")
    @classmethod
    def _offsets(cls, value: list[int]) -> list[int]:
        return _check_offsets(value)


class AssociationSpec(BaseModel):
    """The commune's learning association: the data controller named in the consent text."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    contact: str | None = Field(default=None, min_length=1, max_length=200)


class CommuneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    province: ProvinceUnitSpec | None = None
    commune: CommuneUnitSpec
    association: AssociationSpec | None = None
    # After a deadline: "late" (accept, marked late for reviewers) or "closed" (point to next year).
    after_deadline: str = Field(default="late", pattern="^(late|closed)$")
    # How the bot addresses residents: "neutral" (default), "bac" or "ong_ba".
    address: str = Field(default="neutral", pattern="^(neutral|bac|ong_ba)$")
    branches: list[UnitSpec] = Field(min_length=1)
    campaigns: list[CampaignSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _two_levels(cls, raw: object) -> object:
        return _no_district(raw)


class ProvinceCommuneSpec(BaseModel):
    """One commune inside a province file: like a commune file without `province`; campaigns
    default to the province's."""

    model_config = ConfigDict(extra="forbid")
    commune: CommuneUnitSpec
    association: AssociationSpec | None = None
    branches: list[UnitSpec] = Field(min_length=1)
    campaigns: list[CampaignSpec] | None = None

    @model_validator(mode="before")
    @classmethod
    def _two_levels(cls, raw: object) -> object:
        return _no_district(raw)


class ProvinceSpec(BaseModel):
    """A whole province for one installation: its communes (each with its thôn), and the
    campaigns every commune follows unless it lists its own."""

    model_config = ConfigDict(extra="forbid")
    province: ProvinceUnitSpec
    association: AssociationSpec | None = None
    campaigns: list[CampaignSpec] = Field(default_factory=list)
    communes: list[ProvinceCommuneSpec] = Field(min_length=1)

    def commune_specs(self) -> list[CommuneSpec]:
        return [
            CommuneSpec(
                province=self.province,
                commune=c.commune,
                association=c.association,
                branches=c.branches,
                campaigns=self.campaigns if c.campaigns is None else c.campaigns,
            )
            for c in self.communes
        ]


def _validate(model: type[ModelT], text: str, source: str) -> ModelT:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommuneFileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise CommuneFileError(f"{source}: {details}") from exc


def _load(path: Path, parse: Callable[[str, str], ModelT]) -> ModelT:
    """Read a YAML file and parse it; a file that cannot be read is a CommuneFileError too."""
    try:
        return parse(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise CommuneFileError(f"{path}: cannot read: {exc}") from exc


def _unique(values: list[str], what: str) -> None:
    """Refuse a file in which `values` repeat; `what` names them (where in the file, and which)."""
    if len(values) != len(set(values)):
        raise CommuneFileError(f"{what} must be unique")


def parse_province(text: str, source: str) -> ProvinceSpec:
    spec = _validate(ProvinceSpec, text, source)
    codes: list[str] = [spec.province.code]
    official: list[str] = []
    for n, commune in enumerate(spec.communes):
        codes.append(commune.commune.code)
        codes.extend(b.code for b in commune.branches)
        if commune.commune.official_code:
            official.append(commune.commune.official_code)
        _unique([b.code for b in commune.branches], f"{source}: communes.{n}.branches: codes")
    if len(codes) != len(set(codes)):
        twice = sorted({c for c in codes if codes.count(c) > 1})
        raise CommuneFileError(f"{source}: codes must be unique across the province file: {twice}")
    _unique(official, f"{source}: communes: official codes")
    return spec


def load_province_file(path: Path) -> ProvinceSpec:
    return _load(path, parse_province)


async def apply_province(
    session: AsyncSession, spec: ProvinceSpec, now: datetime, changes: list[str] | None = None
) -> list[OrgUnit]:
    """Create or update the province and every commune of the file; returns the communes."""
    units = []
    for commune_spec in spec.commune_specs():
        units.append(await apply_commune(session, commune_spec, now, changes))
    if spec.association is not None:
        province = await session.scalar(select(OrgUnit).where(OrgUnit.code == spec.province.code))
        assert province is not None  # made by apply_commune just above
        province.association_name = spec.association.name
        province.association_contact = spec.association.contact
    return units


async def province_of(session: AsyncSession, unit_id: int | None) -> OrgUnit | None:
    """The province a branch or commune belongs to (None when it has none). The units on the way
    are kept for the transaction: registration asks this of the same branch in a handler and in
    the question after it."""
    unit = await _unit(session, unit_id)
    while unit is not None and unit.kind != "province":
        unit = await _unit(session, unit.parent_id)
    return unit


async def _unit(session: AsyncSession, unit_id: int | None) -> OrgUnit | None:
    if unit_id is None:
        return None
    unit = await get_held(session, OrgUnit, unit_id)
    if unit is not None:
        hold(session, unit)
    return unit


async def find_communes(session: AsyncSession, text: str, limit: int = 8) -> list[OrgUnit]:
    """Communes whose name (or official code) matches what a person typed, diacritics and case
    ignored: "ea tul" finds "Xã Ea Tul", "hoa phu" finds "Xã Hòa Phú". Whole-word starts rank first."""

    wanted = " ".join(fold(text).replace("-", " ").split())
    if not wanted:
        return []
    for prefix in ("xa ", "phuong ", "dac khu "):
        if wanted.startswith(prefix) and len(wanted) > len(prefix):
            wanted = wanted[len(prefix) :]
    ranked = []
    for unit in await communes(session):
        name = " ".join(fold(unit.name).replace("-", " ").split())
        if unit.official_code and unit.official_code == wanted:
            ranked.append((0, name, unit))
        elif f" {wanted} " in f" {name} ":
            ranked.append((1, name, unit))
        elif wanted in name:
            ranked.append((2, name, unit))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [unit for _rank, _name, unit in ranked[:limit]]


def parse_commune(text: str, source: str) -> CommuneSpec:
    spec = _validate(CommuneSpec, text, source)
    _unique([b.code for b in spec.branches], f"{source}: branches: codes")
    return spec


def load_commune_file(path: Path) -> CommuneSpec:
    return _load(path, parse_commune)


async def _upsert_unit(
    session: AsyncSession, spec: UnitSpec, kind: str, parent: OrgUnit | None, position: int, now: datetime
) -> OrgUnit:
    transaction_memo(session, _UNITS).clear()  # the lists read so far may change
    unit = await session.scalar(select(OrgUnit).where(OrgUnit.code == spec.code))
    if unit is None:
        unit = OrgUnit(code=spec.code, kind=kind, created_at=now)
        session.add(unit)
    elif unit.kind != kind:
        raise CommuneFileError(f"code {spec.code!r} already names a {unit.kind}, not a {kind}")
    unit.name = spec.name
    unit.official_code = spec.official_code
    unit.parent_id = parent.id if parent else None
    unit.households_total = spec.households
    unit.adults_total = spec.adults
    unit.position = position
    await session.flush()
    return unit


async def apply_commune(
    session: AsyncSession, spec: CommuneSpec, now: datetime, changes: list[str] | None = None
) -> OrgUnit:
    """Create or update the commune, its branches and campaigns; returns the commune.

    `changes` (if given) receives one line per calendar value that differed in the database
    (a deadline an officer moved in chat, say), so `hoctap init` can say what it overwrote."""
    changes = changes if changes is not None else []
    parent = None
    if spec.province:
        parent = await _upsert_unit(session, spec.province, "province", None, 0, now)
    commune = await _upsert_unit(session, spec.commune, "commune", parent, 0, now)
    commune.association_name = spec.association.name if spec.association else None
    commune.association_contact = spec.association.contact if spec.association else None
    for field, value in (("after_deadline", spec.after_deadline), ("address_form", spec.address)):
        if getattr(commune, field) not in (None, value):
            changes.append(f"{commune.code}: {field} {getattr(commune, field)} -> {value}")
        setattr(commune, field, value)
    for position, branch in enumerate(spec.branches):
        await _upsert_unit(session, branch, "branch", commune, position, now)
    for campaign_spec in spec.campaigns:
        campaign = await session.scalar(
            select(Campaign).where(Campaign.commune_id == commune.id, Campaign.year == campaign_spec.year)
        )
        if campaign is None:
            campaign = Campaign(commune_id=commune.id, year=campaign_spec.year, created_at=now)
            session.add(campaign)
            changes.append(f"{commune.code} {campaign_spec.year}: new campaign")
        campaign.opens_on = campaign_spec.opens
        campaign.targets = dict(campaign_spec.targets)
        campaign.reminder_offsets = list(campaign_spec.reminder_offsets)
        await session.flush()
        existing = {
            d.kind: d
            for d in await session.scalars(select(CampaignDeadline).where(CampaignDeadline.campaign_id == campaign.id))
        }
        for kind, deadline_spec in campaign_spec.deadline_specs().items():
            deadline = existing.get(kind)
            if deadline is None:
                deadline = CampaignDeadline(campaign_id=campaign.id, kind=kind, due_on=deadline_spec.date)
                session.add(deadline)
            elif deadline.due_on != deadline_spec.date:
                changes.append(
                    f"{commune.code} {campaign_spec.year}: {kind} "
                    f"{deadline.due_on.isoformat()} -> {deadline_spec.date.isoformat()}"
                )
            deadline.due_on = deadline_spec.date
            deadline.reminder_offsets = deadline_spec.reminder_offsets
    await session.flush()
    return commune


# Transaction memo: the communes and each commune's branches as read (`_upsert_unit`, which
# changes units, forgets them). A registration step and the question after it list them both.
_UNITS = "org units"


async def communes(session: AsyncSession) -> list[OrgUnit]:
    memo = transaction_memo(session, _UNITS)
    if "communes" not in memo:
        query = select(OrgUnit).where(OrgUnit.kind == "commune").order_by(OrgUnit.name)
        memo["communes"] = list(await session.scalars(query))
    return list(memo["communes"])


async def branches_of(session: AsyncSession, commune_id: int) -> list[OrgUnit]:
    memo = transaction_memo(session, _UNITS)
    key = ("branches", commune_id)
    if key not in memo:
        query = (
            select(OrgUnit)
            .where(OrgUnit.kind == "branch", OrgUnit.parent_id == commune_id)
            .order_by(OrgUnit.position, OrgUnit.name)
        )
        memo[key] = list(await session.scalars(query))
    return list(memo[key])


async def campaign_windows(session: AsyncSession, commune_id: int) -> list[tuple[Campaign, date, date]]:
    """The commune's campaigns, oldest first, each with its window: the first day people can
    register, and its last deadline (the day its work ends); see `calendar.windows`."""
    rows = list(
        await session.scalars(select(Campaign).where(Campaign.commune_id == commune_id).order_by(Campaign.year))
    )
    dates = {campaign.id: [d.due_on for d in await deadlines_of(session, campaign.id)] for campaign in rows}
    spans = windows(((campaign.id, campaign.year, campaign.opens_on) for campaign in rows), dates)
    return [(campaign, opens, ends) for campaign, (opens, ends) in zip(rows, spans, strict=True)]


async def campaign_for(session: AsyncSession, commune_id: int, today: date) -> Campaign | None:
    """The current campaign, chosen by its window (`calendar.current_of`)."""
    return current_of(
        [(campaign, opens) for campaign, opens, _ends in await campaign_windows(session, commune_id)], today
    )


async def deadlines_of(session: AsyncSession, campaign_id: int) -> list[CampaignDeadline]:
    return list(
        await session.scalars(
            select(CampaignDeadline)
            .where(CampaignDeadline.campaign_id == campaign_id)
            .order_by(CampaignDeadline.due_on)
        )
    )
