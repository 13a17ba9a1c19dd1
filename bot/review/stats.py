"""Statistics per branch and commune: registered and recognised per title, against the commune's
population figures and the year's targets. Anonymised submissions still count."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaCatalog, CriteriaError
from bot.domain.lifecycle import State
from bot.domain.subjects import population
from bot.i18n import N_, Translator
from bot.storage.commune import branches_of
from bot.storage.models import Campaign, OrgUnit, Submission

SENT_STATES = tuple(
    s.value
    for s in (
        State.SUBMITTED,
        State.RECOMMENDED,
        State.NOT_RECOMMENDED,
        State.APPROVED,
        State.REJECTED,
    )
)


@dataclass
class TitleCount:
    registered: int = 0
    recognised: int = 0
    submitted: int = 0  # sent for review (and not sent back or withdrawn), decided or not


@dataclass
class UnitStats:
    code: str
    name: str
    households: int | None
    adults: int | None
    titles: dict[str, TitleCount] = field(default_factory=dict)

    @property
    def households_total(self) -> int | None:
        return self.households

    @property
    def adults_total(self) -> int | None:
        return self.adults

    def base(self, subject: str) -> int | None:
        """The unit's population this kind's rate counts against (bot.domain.subjects)."""
        return population(self, subject)

    def rate(self, title: str, subject: str) -> float | None:
        """Percent recognised of the households (or adults) of the unit; None without a base."""
        base = self.base(subject)
        if not base:
            return None
        return 100.0 * self.titles.get(title, TitleCount()).recognised / base

    def registered_rate(self, title: str, subject: str) -> float | None:
        """Percent registered of the households (or adults) of the unit; None without a base."""
        base = self.base(subject)
        if not base:
            return None
        return 100.0 * self.titles.get(title, TitleCount()).registered / base


@dataclass
class CommuneStats:
    commune: OrgUnit
    year: int
    campaign: Campaign | None
    titles: list[str]
    subjects: dict[str, str]  # title -> household | person
    targets: dict[str, float]
    branches: list[UnitStats]
    total: UnitStats
    # Applications of people whose data was deleted: still counted, anonymised (stated once).
    anonymised: int = 0


def title_subjects(catalog: CriteriaCatalog, year: int) -> dict[str, str]:
    subjects = {}
    for title in catalog.titles():
        try:
            subjects[title] = catalog.for_title(title, year).subject
        except CriteriaError:
            subjects[title] = next(s.subject for s in catalog.sets.values() if s.title == title)
    # Households first: the order commune reports use.
    return dict(sorted(subjects.items(), key=lambda kv: (kv[1] != "household", kv[0])))


async def commune_stats(session: AsyncSession, catalog: CriteriaCatalog, commune: OrgUnit, year: int) -> CommuneStats:
    subjects = title_subjects(catalog, year)
    titles = list(subjects)
    campaign = await session.scalar(select(Campaign).where(Campaign.commune_id == commune.id, Campaign.year == year))
    branches = await branches_of(session, commune.id)
    units = {
        b.id: UnitStats(b.code, b.name, b.households_total, b.adults_total, {t: TitleCount() for t in titles})
        for b in branches
    }
    anonymised_count = 0
    if campaign is not None:
        rows = await session.execute(
            select(
                Submission.branch_id,
                Submission.title,
                func.count(),
                func.sum(case((Submission.state == State.APPROVED.value, 1), else_=0)),
                func.sum(case((Submission.state.in_(SENT_STATES), 1), else_=0)),
                func.sum(case((Submission.anonymised_at.is_not(None), 1), else_=0)),
            )
            .where(Submission.campaign_id == campaign.id, Submission.state != State.WITHDRAWN.value)
            .group_by(Submission.branch_id, Submission.title)
        )
        for branch_id, title, registered, recognised, submitted, anonymised in rows:
            unit = units.get(branch_id)
            if unit is None:
                continue
            count = unit.titles.setdefault(title, TitleCount())
            count.registered += int(registered or 0)
            count.recognised += int(recognised or 0)
            count.submitted += int(submitted or 0)
            anonymised_count += int(anonymised or 0)
            if title not in titles:
                titles.append(title)
    branch_stats = list(units.values())

    def total_of(attribute: str) -> int | None:
        own = getattr(commune, f"{attribute}_total")
        if own is not None:
            return own
        values = [getattr(u, attribute) for u in branch_stats if getattr(u, attribute) is not None]
        return sum(values) if values else None

    total = UnitStats(commune.code, commune.name, total_of("households"), total_of("adults"))
    for title in titles:
        total.titles[title] = TitleCount(
            sum(u.titles.get(title, TitleCount()).registered for u in branch_stats),
            sum(u.titles.get(title, TitleCount()).recognised for u in branch_stats),
            sum(u.titles.get(title, TitleCount()).submitted for u in branch_stats),
        )
    targets = {k: float(v) for k, v in (campaign.targets if campaign else {}).items()}
    return CommuneStats(commune, year, campaign, titles, subjects, targets, branch_stats, total, anonymised_count)


NOUNS = {True: N_("rep.noun.household"), False: N_("rep.noun.person")}


def stats_lines(stats: CommuneStats, names: dict[str, str], t: Translator) -> list[str]:
    """The statistics as a chat message: each rate with its base in words ("Đã công nhận 1 trên
    538 hộ (0,2%) — chỉ tiêu 70%"), numbers written for the reader's language."""
    lines = [t("rep.stats_head", commune=stats.commune.name, year=stats.year)]
    for unit in [*stats.branches, stats.total]:
        lines.append(t("rep.stats_unit", unit=unit.name))
        for title in stats.titles:
            subject = stats.subjects.get(title, "person")
            noun = t(NOUNS[subject == "household"])
            count = unit.titles.get(title, TitleCount())
            base = unit.base(subject)
            target = stats.targets.get(title)
            target_text = t("rep.stats_target_part", target=t.percent(target)) if target is not None else ""
            params = dict(
                title=names.get(title, title),
                noun=noun,
                registered=t.number(count.registered),
                submitted=t.number(count.submitted),
                recognised=t.number(count.recognised),
                target=target_text,
            )
            if base:
                lines.append(
                    t("rep.stats_title", base=t.number(base), rate=t.percent(unit.rate(title, subject)), **params)
                )
            else:
                lines.append(t("rep.stats_title_plain", **params))
    if stats.anonymised:
        lines.append(t("rep.stats_anonymised", count=t.number(stats.anonymised)))
    return lines
