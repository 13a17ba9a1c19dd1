"""Exports for commune officers: submissions, statistics and the multi-year register, as XLSX
or CSV. Rows are streamed from the database in batches and written as they come (XlsxWriter in
constant-memory mode, CSV line by line), so a province-sized export stays within modest memory.

CSV files start with a UTF-8 byte order mark so that Excel shows Vietnamese correctly.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import xlsxwriter
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.clock import VN_TZ
from bot.config import Settings
from bot.domain.criteria import CriteriaCatalog, CriteriaError
from bot.domain.labels import STATE_KEYS
from bot.domain.lifecycle import State
from bot.i18n import N_, Translator, get_translator
from bot.review.retention import RETENTION_ACTOR
from bot.review.stats import CommuneStats, commune_stats
from bot.storage.models import (
    Campaign,
    CampaignDeadline,
    Evidence,
    OrgUnit,
    Submission,
    SubmissionEvent,
)
from bot.storage.subjects import join_subjects

log = logging.getLogger(__name__)

KINDS = ("submissions", "stats", "register")
FORMATS = ("xlsx", "csv")
BATCH = 2000
MILESTONES = (5, 3, 1)
# A file made in chat is kept as long as a link to it works (the 24-hour signed link on Zalo;
# Telegram receives the file itself), then swept; every deletion of someone's data removes all.
EXPORT_LIFETIME = timedelta(hours=24)

SUBMISSION_COLUMNS = (
    N_("export.col.reference"),
    N_("export.col.name"),
    N_("export.col.birth_year"),
    N_("export.col.branch"),
    N_("export.col.title"),
    N_("export.col.members"),
    N_("export.col.state"),
    N_("export.col.score"),
    N_("export.col.recognisable"),
    N_("export.col.evidence_count"),
    N_("export.col.proxy"),
    N_("export.col.late"),
    N_("export.col.recommendation"),
    N_("export.col.recommendation_note"),
    N_("export.col.decision"),
    N_("export.col.decision_note"),
    N_("export.col.registered_at"),
    N_("export.col.first_submitted_at"),
    N_("export.col.resubmitted_at"),
    N_("export.col.decided_at"),
)
REGISTER_COLUMNS = (
    N_("export.col.title"),
    N_("export.col.name"),
    N_("export.col.branch"),
    N_("export.col.years"),
    N_("export.col.streak"),
    N_("export.col.milestone"),
)
# What each export and format is called, in chat and on the review desk.
KIND_KEYS = {
    "submissions": N_("exp.kind.submissions"),
    "stats": N_("exp.kind.stats"),
    "register": N_("exp.kind.register"),
}
FORMAT_KEYS = {"xlsx": N_("exp.format.xlsx"), "csv": N_("exp.format.csv")}
SHEET_KEYS = {
    "submissions": N_("export.sheet.submissions"),
    "stats": N_("export.sheet.stats"),
    "register": N_("export.sheet.register"),
}
# Column widths are fitted to what the column holds, within these bounds (in characters).
MIN_WIDTH, MAX_WIDTH = 8, 50
DATE_WIDTH = 17  # dd/mm/yyyy hh:mm


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    filename: str


# ---- sinks: where rows go -------------------------------------------------------------------


class XlsxSink:
    """XlsxWriter in constant_memory mode: each row is flushed to a temporary file once written.
    Column widths are fitted at the end from the longest value seen in each column."""

    def __init__(self, path: Path, sheet: str) -> None:
        self.workbook = xlsxwriter.Workbook(
            str(path), {"constant_memory": True, "remove_timezone": True, "strings_to_numbers": False}
        )
        self.sheet = self.workbook.add_worksheet(sheet[:31])
        self.bold = self.workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top"})
        self.heading = self.workbook.add_format({"bold": True, "font_size": 13})
        self.when = self.workbook.add_format({"num_format": "dd/mm/yyyy hh:mm"})
        self.percent = self.workbook.add_format({"num_format": "0.0"})
        self.row = 0
        self.widths: dict[int, int] = {}

    def _fit(self, col: int, width: int) -> None:
        if width > self.widths.get(col, 0):
            self.widths[col] = width

    def title(self, lines: Sequence[str]) -> None:
        """Rows above the header: the commune, the year, the date of export, notes."""
        for index, line in enumerate(lines):
            self.sheet.write_string(self.row, 0, line, self.heading if index == 0 else None)
            self.row += 1
        self.row += 1  # a blank row before the header

    def header(self, names: Sequence[str], keys: Sequence[str]) -> None:
        self.sheet.freeze_panes(self.row + 1, 0)
        self.sheet.write_row(self.row, 0, list(names), self.bold)
        for col, name in enumerate(names):
            # A header wraps: its longest word must fit, and it should not need more than three lines.
            words = max((len(w) for w in str(name).split()), default=0)
            self._fit(col, max(words, (len(str(name)) + 2) // 3) + 2)
        self.row += 1

    def rows(self, batch: Iterable[Sequence[Any]]) -> None:
        sheet, row = self.sheet, self.row
        for values in batch:
            for col, value in enumerate(values):
                if value is None or value == "":
                    continue
                if isinstance(value, datetime):
                    sheet.write_datetime(row, col, value.astimezone(VN_TZ), self.when)
                    self._fit(col, DATE_WIDTH)
                elif isinstance(value, float):
                    sheet.write_number(row, col, round(value, 1), self.percent)
                    self._fit(col, len(f"{value:.1f}") + 2)
                elif isinstance(value, (int,)) and not isinstance(value, bool):
                    sheet.write_number(row, col, value)
                    self._fit(col, len(str(value)) + 2)
                else:
                    sheet.write_string(row, col, str(value))
                    self._fit(col, len(str(value)) + 2)
            row += 1
        self.row = row

    def close(self) -> None:
        for col, width in self.widths.items():
            self.sheet.set_column(col, col, min(MAX_WIDTH, max(MIN_WIDTH, width)))
        self.workbook.close()


class CsvSink:
    def __init__(self, path: Path, sheet: str) -> None:
        self.handle = open(path, "w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.handle)

    def title(self, lines: Sequence[str]) -> None:
        """A CSV file is a plain table: no rows above the header (the file name says what it is)."""

    def header(self, names: Sequence[str], keys: Sequence[str]) -> None:
        self.writer.writerow([csv_text(name) for name in names])

    def rows(self, batch: Iterable[Sequence[Any]]) -> None:
        self.writer.writerows([_csv_value(v) for v in values] for values in batch)

    def close(self) -> None:
        self.handle.close()


# A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")  # as in the XLSX and as people write dates
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, str):
        return csv_text(value)
    return "" if value is None else value


def csv_text(text: str) -> str:
    """Text as a spreadsheet shows it, never run: a leading ' before a formula-like start."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


SINKS: dict[str, Callable[[Path, str], Any]] = {"xlsx": XlsxSink, "csv": CsvSink}


# ---- row sources ----------------------------------------------------------------------------


def _title_names(catalog: CriteriaCatalog, year: int, t: Translator) -> dict[str, str]:
    names = {}
    for title in catalog.titles():
        try:
            names[title] = catalog.for_title(title, year).title_name.get(t.locale)
        except CriteriaError:
            names[title] = next(s.title_name.get(t.locale) for s in catalog.sets.values() if s.title == title)
    return names


def submissions_query(commune_id: int, year: int) -> Select:
    event = aliased(SubmissionEvent)
    joined, subject = join_subjects(
        select(Submission.reference)
        .join(Campaign, Campaign.id == Submission.campaign_id)
        .join(OrgUnit, OrgUnit.id == Submission.branch_id)
    )

    def last_note(states: Sequence[str], actor: str | None = None) -> Any:
        query = select(event.note).where(
            event.submission_id == Submission.id,
            event.to_state.in_(list(states)),
            event.actor_kind != RETENTION_ACTOR,  # a photo removal is not a decision
        )
        if actor is not None:
            query = query.where(event.actor_kind == actor)
        return query.order_by(event.id.desc()).limit(1).scalar_subquery()

    def last_state(states: Sequence[str], actor: str) -> Any:
        return (
            select(event.to_state)
            .where(event.submission_id == Submission.id, event.to_state.in_(list(states)), event.actor_kind == actor)
            .order_by(event.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    submitted = (event.submission_id == Submission.id, event.to_state == State.SUBMITTED.value)
    first_submitted = select(func.min(event.at)).where(*submitted).scalar_subquery()
    last_submitted = select(func.max(event.at)).where(*submitted).scalar_subquery()
    times_submitted = select(func.count(event.id)).where(*submitted).scalar_subquery()
    # Sent by someone other than its subject (a person, or a household's registrant or head): a
    # branch leader declared it for them (/lamho).
    by_proxy = (
        select(func.count(event.id))
        .where(
            *submitted,
            event.actor_person_id.is_not(None),
            event.actor_person_id != func.coalesce(subject.registrant_id, -1),
            event.actor_person_id != func.coalesce(subject.person_id, -1),
        )
        .scalar_subquery()
    )
    evidence_count = select(func.count(Evidence.id)).where(Evidence.submission_id == Submission.id).scalar_subquery()
    branch_states = (State.RECOMMENDED.value, State.NOT_RECOMMENDED.value, State.NEEDS_INFO.value)
    return (
        joined.add_columns(
            subject.name,
            subject.birth_year,
            OrgUnit.name,
            Submission.title,
            subject.members,
            Submission.state,
            Submission.score,
            Submission.recognisable,
            evidence_count,
            by_proxy,
            last_state(branch_states[:2], "branch"),
            last_note(branch_states, "branch"),
            last_note((State.APPROVED.value, State.REJECTED.value)),
            Submission.created_at,
            first_submitted,
            last_submitted,
            times_submitted,
            Submission.decided_at,
            Submission.anonymised_at,
        )
        .where(Campaign.commune_id == commune_id, Campaign.year == year)
        .order_by(Submission.id)
    )


async def _stream(session: AsyncSession, query: Select) -> AsyncIterator[Sequence[Any]]:
    result = await session.stream(query.execution_options(yield_per=BATCH))
    async for partition in result.partitions(BATCH):
        yield partition


async def self_declaration_due(session: AsyncSession, commune_id: int, year: int) -> date | None:
    return await session.scalar(
        select(CampaignDeadline.due_on)
        .join(Campaign, Campaign.id == CampaignDeadline.campaign_id)
        .where(Campaign.commune_id == commune_id, Campaign.year == year, CampaignDeadline.kind == "self_declaration")
    )


async def submission_rows(
    session: AsyncSession, catalog: CriteriaCatalog, commune_id: int, year: int, t: Translator
) -> AsyncIterator[list[list[Any]]]:
    titles = _title_names(catalog, year, t)
    states = {state.value: t(key) for state, key in STATE_KEYS.items()}
    yes, no = t("export.yes"), t("export.no")
    decisions = {
        State.APPROVED.value: t("export.decision.approved"),
        State.REJECTED.value: t("export.decision.rejected"),
    }
    recommendations = {
        State.RECOMMENDED.value: t("export.recommendation.yes"),
        State.NOT_RECOMMENDED.value: t("export.recommendation.no"),
    }
    proxy_mark, late_mark = t("export.proxy_mark"), t("export.late_mark")
    anonymous = t("export.anonymised")
    due = await self_declaration_due(session, commune_id, year)
    async for partition in _stream(session, submissions_query(commune_id, year)):
        batch = []
        for (
            reference,
            name,
            birth_year,
            branch,
            title,
            members,
            state,
            score,
            recognisable,
            evidence,
            proxy,
            recommendation,
            recommendation_note,
            decision_note,
            created_at,
            first_submitted,
            last_submitted,
            times_submitted,
            decided_at,
            anonymised_at,
        ) in partition:
            first_submitted, last_submitted = _aware(first_submitted), _aware(last_submitted)
            late = due is not None and first_submitted is not None and first_submitted.astimezone(VN_TZ).date() > due
            batch.append(
                [
                    reference,
                    anonymous if anonymised_at else (name or ""),
                    None if anonymised_at else birth_year,
                    branch,
                    titles.get(title, title),
                    members,
                    states.get(state, state),
                    score,
                    yes if recognisable else no,
                    evidence,
                    proxy_mark if proxy else "",
                    late_mark if late else "",
                    recommendations.get(recommendation or "", ""),
                    "" if anonymised_at else (recommendation_note or ""),
                    decisions.get(state, ""),
                    "" if anonymised_at else (decision_note or ""),
                    created_at,
                    first_submitted,
                    last_submitted if (times_submitted or 0) > 1 else None,
                    decided_at,
                ]
            )
        yield batch


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands aggregated times back as naive UTC (or as text); PostgreSQL as aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def register_query(commune_id: int, year: int) -> Select:
    query, subject = join_subjects(
        select(Submission.title, Submission.subject_key, Campaign.year)
        .join(Campaign, Campaign.id == Submission.campaign_id)
        .join(OrgUnit, OrgUnit.id == Submission.branch_id)
    )
    return (
        query.add_columns(subject.name, OrgUnit.name)
        .where(
            Campaign.commune_id == commune_id,
            Campaign.year <= year,
            Submission.state == State.APPROVED.value,
            Submission.anonymised_at.is_(None),
        )
        .order_by(Submission.title, Submission.subject_key, Campaign.year)
    )


def streak(years: Iterable[int], year: int) -> int:
    """Consecutive years holding the title, counting back from `year` (0 if not held then)."""
    held = set(years)
    count = 0
    while year - count in held:
        count += 1
    return count


def milestone(consecutive: int) -> int | None:
    return next((m for m in MILESTONES if consecutive >= m), None)


async def register_rows(
    session: AsyncSession, catalog: CriteriaCatalog, commune_id: int, year: int, t: Translator
) -> AsyncIterator[list[list[Any]]]:
    """One row per household/person recognised in `year`: the years held and the consecutive run
    (the 1, 3 and 5-year milestones). Grouped while streaming: rows arrive sorted by subject."""
    titles = _title_names(catalog, year, t)
    current: tuple[str, str] | None = None
    years: list[int] = []
    last_name = last_branch = ""
    out: list[list[Any]] = []

    def flush() -> None:
        if current is not None and year in years:
            run = streak(years, year)
            out.append(
                [
                    titles.get(current[0], current[0]),
                    last_name,
                    last_branch,
                    ", ".join(str(y) for y in sorted(set(years))),
                    run,
                    milestone(run),
                ]
            )

    async for partition in _stream(session, register_query(commune_id, year)):
        for title, key, held_year, name, branch in partition:
            if (title, key) != current:
                flush()
                current, years = (title, key), []
            years.append(held_year)
            last_name, last_branch = name or "", branch
        if out:
            yield out
            out = []
    flush()
    if out:
        yield out


async def stats_rows(
    session: AsyncSession, catalog: CriteriaCatalog, commune: OrgUnit, year: int, t: Translator
) -> tuple[list[str], list[str], list[list[Any]], CommuneStats]:
    """The report a commune sends upward each year: per branch, its households and adults, then
    for each title the registered and recognised counts, their shares and the target; totals."""
    stats = await commune_stats(session, catalog, commune, year)
    names = _title_names(catalog, year, t)
    keys = [N_("export.col.branch"), N_("export.col.households"), N_("export.col.adults")]
    header = [t(k) for k in keys]
    for title in stats.titles:
        name = names.get(title, title)
        for key in (
            N_("export.col.registered"),
            N_("export.col.registered_rate"),
            N_("export.col.recognised"),
            N_("export.col.rate"),
            N_("export.col.target"),
        ):
            header.append(t(key, title=name))
            keys.append(key)
    rows = []
    for unit in [*stats.branches, stats.total]:
        row: list[Any] = [unit.name, unit.households, unit.adults]
        for title in stats.titles:
            count = unit.titles.get(title)
            subject = stats.subjects.get(title, "person")
            row += [
                count.registered if count else 0,
                unit.registered_rate(title, subject),
                count.recognised if count else 0,
                unit.rate(title, subject),
                stats.targets.get(title),
            ]
        rows.append(row)
    return header, keys, rows, stats


# ---- running an export ----------------------------------------------------------------------


def sweep_exports(
    folder: Path, *, now: datetime | None = None, older_than: timedelta | None = None, dry_run: bool = False
) -> int:
    """Remove exports made in chat: all of them, or those older than `older_than` (by the time
    their folder was made, against `now`). Returns how many exports were (or would be) removed."""
    if not folder.is_dir():
        return 0
    cutoff = None
    if older_than is not None:
        cutoff = ((now or datetime.now(UTC)) - older_than).timestamp()
    removed = 0
    for entry in folder.iterdir():
        try:
            if cutoff is not None and entry.stat().st_mtime >= cutoff:
                continue
            if not dry_run:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            removed += 1
        except FileNotFoundError:  # removed meanwhile by another process
            continue
    return removed


def new_export_path(folder: Path, filename: str) -> Path:
    """A fresh sub-folder per export (names stay readable, links cannot be guessed); old ones go."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        sweep_exports(folder, older_than=EXPORT_LIFETIME)
    except OSError:  # the housekeeping job sweeps again; this export must not fail for it
        log.warning("could not remove old exports", exc_info=True)
    target = folder / uuid.uuid4().hex
    target.mkdir()
    return target / filename


def export_filename(kind: str, commune: OrgUnit, year: int, fmt: str) -> str:
    return f"{kind}-{commune.code}-{year}.{fmt}"


async def write_export(
    session: AsyncSession,
    catalog: CriteriaCatalog,
    *,
    kind: str,
    fmt: str,
    commune: OrgUnit,
    year: int,
    locale: str | None,
    path: Path,
    now: datetime | None = None,
) -> int:
    """Write one export to `path`; returns the number of data rows. File writing runs in a worker
    thread batch by batch, so the event loop keeps serving chats during a large export."""
    if kind not in KINDS:
        raise ExportError(f"unknown export {kind!r}; use {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    t = get_translator(locale)
    sheet_key = SHEET_KEYS[kind]
    sheet = t(sheet_key)
    sink = await asyncio.to_thread(SINKS[fmt], path, sheet)
    count = 0
    try:
        lines = [
            t(
                "export.heading",
                what=t(KIND_KEYS[kind]),
                commune=commune.name,
                year=year,
                date=(now or datetime.now(UTC)).astimezone(VN_TZ).strftime("%d/%m/%Y"),
            )
        ]
        if kind == "stats":
            header, keys, rows, stats = await stats_rows(session, catalog, commune, year, t)
            if stats.anonymised:
                lines.append(t("export.anonymised_note", count=t.number(stats.anonymised)))
            await asyncio.to_thread(sink.title, lines)
            await asyncio.to_thread(sink.header, header, keys)
            await asyncio.to_thread(sink.rows, rows)
            count = len(rows)
        else:
            keys = list(SUBMISSION_COLUMNS if kind == "submissions" else REGISTER_COLUMNS)
            source = submission_rows if kind == "submissions" else register_rows
            if kind == "register":
                lines.append(t("export.streak_note", year=year))
            await asyncio.to_thread(sink.title, lines)
            await asyncio.to_thread(sink.header, [t(k) for k in keys], keys)
            async for batch in source(session, catalog, commune.id, year, t):
                await asyncio.to_thread(sink.rows, batch)
                count += len(batch)
    finally:
        await asyncio.to_thread(sink.close)
    return count


@dataclass(frozen=True)
class Produced:
    """An export written to the export folder: where it is, the name to offer it under, its rows."""

    path: Path
    filename: str
    rows: int


async def produce_export(
    session: AsyncSession,
    settings: Settings,
    catalog: CriteriaCatalog,
    *,
    kind: str,
    fmt: str,
    commune: OrgUnit,
    year: int,
    locale: str | None,
    now: datetime,
) -> Produced:
    """One export for chat (/xuat) or the review desk: named, placed in a fresh folder of the
    export folder (so that its link cannot be guessed) and written."""
    filename = export_filename(kind, commune, year, fmt)
    path = new_export_path(settings.export_dir, filename)
    rows = await write_export(
        session, catalog, kind=kind, fmt=fmt, commune=commune, year=year, locale=locale, path=path, now=now
    )
    return Produced(path, filename, rows)
