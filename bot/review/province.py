"""The province's view: statistics of every commune of a province, and the yearly upward report.

Each commune reports to the provincial learning association, which reports on to the central
association and the education department before 15 December. The report has one row per commune
(its official code, households and adults, registered and recognised per title, rate, target) and
a row of province totals. Reading it is all the province role may do: no review, no decisions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import CriteriaCatalog
from bot.i18n import N_, get_translator
from bot.review.exports import FORMATS, SINKS, ExportError, _title_names
from bot.review.stats import TitleCount, UnitStats, commune_stats, title_subjects
from bot.storage.models import OrgUnit


@dataclass
class CommuneLine:
    official_code: str | None
    stats: UnitStats
    targets: dict[str, float]


@dataclass
class ProvinceReport:
    province: OrgUnit
    year: int
    titles: list[str]
    subjects: dict[str, str]
    total: UnitStats
    communes: list[CommuneLine] = field(default_factory=list)


async def province_report(
    session: AsyncSession, catalog: CriteriaCatalog, province: OrgUnit, year: int
) -> ProvinceReport:
    subjects = title_subjects(catalog, year)
    titles = list(subjects)
    communes = list(
        await session.scalars(
            select(OrgUnit)
            .where(OrgUnit.kind == "commune", OrgUnit.parent_id == province.id)
            .order_by(OrgUnit.official_code, OrgUnit.name)
        )
    )
    report = ProvinceReport(province, year, titles, subjects, UnitStats(province.code, province.name, None, None))
    for commune in communes:
        stats = await commune_stats(session, catalog, commune, year)
        for title in stats.titles:
            if title not in titles:
                titles.append(title)
        report.communes.append(CommuneLine(commune.official_code, stats.total, stats.targets))

    def summed(attribute: str) -> int | None:
        values = [getattr(line.stats, attribute) for line in report.communes]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    total = report.total
    total.households, total.adults = summed("households"), summed("adults")
    for title in titles:
        total.titles[title] = TitleCount(
            sum(line.stats.titles.get(title, TitleCount()).registered for line in report.communes),
            sum(line.stats.titles.get(title, TitleCount()).recognised for line in report.communes),
        )
    return report


def report_table(
    report: ProvinceReport, catalog: CriteriaCatalog, locale: str | None
) -> tuple[list[str], list[str], list[list[Any]]]:
    """Header, column keys and rows (one per commune, then the province totals)."""
    t = get_translator(locale)
    names = _title_names(catalog, report.year, t)
    keys = [
        N_("export.col.official_code"),
        N_("export.col.commune"),
        N_("export.col.households"),
        N_("export.col.adults"),
    ]
    header = [t(k) for k in keys]
    for title in report.titles:
        for key in (
            N_("export.col.registered"),
            N_("export.col.recognised"),
            N_("export.col.rate"),
            N_("export.col.target"),
        ):
            header.append(t(key, title=names.get(title, title)))
            keys.append(key)
    rows = []
    lines = [(line.official_code, line.stats, line.targets) for line in report.communes]
    lines.append((report.province.official_code, report.total, {}))
    for n, (code, unit, targets) in enumerate(lines):
        name = t("export.row.province_total", province=unit.name) if n == len(lines) - 1 else unit.name
        row: list[Any] = [code, name, unit.households, unit.adults]
        for title in report.titles:
            count = unit.titles.get(title, TitleCount())
            row += [
                count.registered,
                count.recognised,
                unit.rate(title, report.subjects.get(title, "person")),
                targets.get(title),
            ]
        rows.append(row)
    return header, keys, rows


def province_report_filename(province: OrgUnit, year: int, fmt: str) -> str:
    return f"province-{province.code}-{year}.{fmt}"


async def write_province_report(
    session: AsyncSession,
    catalog: CriteriaCatalog,
    *,
    province: OrgUnit,
    year: int,
    fmt: str,
    locale: str | None,
    path: Path,
) -> int:
    """Write the upward report; returns the number of commune rows (the totals row not counted)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    report = await province_report(session, catalog, province, year)
    header, keys, rows = report_table(report, catalog, locale)
    sink = await asyncio.to_thread(SINKS[fmt], path, get_translator(locale)(N_("export.sheet.province")))
    try:
        await asyncio.to_thread(sink.header, header, keys)
        await asyncio.to_thread(sink.rows, rows)
    finally:
        await asyncio.to_thread(sink.close)
    return len(report.communes)
