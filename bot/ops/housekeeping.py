"""Periodic clean-up of personal data that has served its purpose.

* Orphan photos: files in the evidence folder that no evidence row uses and no conversation holds
  (a photo kept while the person picks its item), once older than ORPHAN_GRACE — a younger file
  may belong to a message still being handled. Half-written temporary files go too.
* Exports: files made in chat, once their link has expired (`EXPORT_LIFETIME`).
* Delivered replies and settled outbox payloads left from before they were pruned on the spot.
* Retention: photos of decided applications, `bot.review.retention`.

The scheduler runs the first three hourly and the retention daily (`bot/reminders/schedule.py`);
`hoctap retention [--dry-run]` runs them all once. Logs carry counts, never names.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Text, cast, func, null, select, update

from bot.app import App
from bot.clock import local_date
from bot.reminders.dispatch import SETTLED
from bot.review.exports import EXPORT_LIFETIME, sweep_exports
from bot.review.privacy import remove_unused_files
from bot.review.retention import CHUNK, RetentionGroup, due_groups, remove_photos
from bot.storage.core import affected, table_of
from bot.storage.models import Conversation, Evidence, OutboxMessage, ProcessedMessage
from bot.storage.thumbs import sweep_thumbnails

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)
# How the evidence store names its files (xx/yy/<sha256>.<ext>) and its temporary files.
STORED_FILE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/(?:(?P<sha>[0-9a-f]{64})\.[A-Za-z0-9]+|\.tmp-[^/]+)$")


@dataclass
class FilesReport:
    orphans: int = 0
    exports: int = 0
    replies: int = 0
    payloads: int = 0


@dataclass
class RetentionReport:
    groups: list[RetentionGroup] = field(default_factory=list)
    files: int = 0

    @property
    def applications(self) -> int:
        return sum(g.applications for g in self.groups)

    @property
    def photos(self) -> int:
        return sum(g.photos for g in self.groups)


def _old_files(root: Path, cutoff: float) -> list[tuple[str, str | None]]:
    """(relative path, sha256 or None for a temporary file) of stored files older than `cutoff`."""
    found: list[tuple[str, str | None]] = []
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        match = STORED_FILE.match(relative)
        if match is None:
            continue
        try:
            if not path.is_file() or path.stat().st_mtime >= cutoff:
                continue
        except FileNotFoundError:
            continue
        found.append((relative, match["sha"]))
    return found


async def orphan_photos(app: App, *, grace: timedelta = ORPHAN_GRACE, dry_run: bool = False) -> int:
    """Remove evidence files nothing refers to (see the module docstring); returns how many."""
    cutoff = (app.clock.now() - grace).timestamp()
    root = app.evidence.root
    candidates = await asyncio.to_thread(_old_files, root, cutoff)
    orphans = []
    async with app.sessions() as session:
        for start in range(0, len(candidates), CHUNK):
            chunk = candidates[start : start + CHUNK]
            used = set(await session.scalars(select(Evidence.path).where(Evidence.path.in_([c[0] for c in chunk]))))
            for relative, sha in chunk:
                if relative in used:
                    continue
                if sha is not None:
                    held = await session.scalar(
                        select(Conversation.account_id)
                        .where(cast(Conversation.data, Text).contains(sha, autoescape=True))
                        .limit(1)
                    )
                    if held is not None:
                        continue
                orphans.append(relative)
    if not dry_run:
        for relative in orphans:
            (root / relative).unlink(missing_ok=True)
    if orphans:
        log.info("housekeeping: %d orphan photo file(s) %s", len(orphans), "found" if dry_run else "removed")
    return len(orphans)


async def prune_delivered(app: App, *, dry_run: bool = False) -> tuple[int, int]:
    """Stored replies of delivered messages and payloads of settled outbox rows (kept by older
    versions): (replies, payloads) cleared."""
    replies_table, outbox_table = table_of(ProcessedMessage), table_of(OutboxMessage)
    # SQL NULL, or the JSON null an ORM write of None leaves.
    delivered = (
        replies_table.c.replied_at.is_not(None),
        replies_table.c.replies.is_not(None),
        cast(replies_table.c.replies, Text) != "null",
    )
    settled = (outbox_table.c.status.in_(SETTLED), cast(outbox_table.c.payload, Text) != "{}")
    async with app.sessions.begin() as session:
        if dry_run:
            replies = await session.scalar(select(func.count()).select_from(replies_table).where(*delivered))
            payloads = await session.scalar(select(func.count()).select_from(outbox_table).where(*settled))
            return int(replies or 0), int(payloads or 0)
        replies = affected(await session.execute(update(replies_table).where(*delivered).values(replies=null())))
        payloads = affected(await session.execute(update(outbox_table).where(*settled).values(payload={})))
    return replies, payloads


async def clean_files(app: App, *, dry_run: bool = False) -> FilesReport:
    """The hourly part: orphan photos, expired exports, leftovers of delivered messages."""
    report = FilesReport()
    report.orphans = await orphan_photos(app, dry_run=dry_run)
    if not dry_run:  # the review desk's thumbnails of photos no longer stored
        await asyncio.to_thread(sweep_thumbnails, app.evidence.root)
    report.exports = await asyncio.to_thread(
        sweep_exports, app.settings.export_dir, now=app.clock.now(), older_than=EXPORT_LIFETIME, dry_run=dry_run
    )
    report.replies, report.payloads = await prune_delivered(app, dry_run=dry_run)
    if not dry_run and (report.exports or report.replies or report.payloads):
        log.info(
            "housekeeping: %d expired export(s), %d delivered repl(ies), %d settled outbox payload(s) removed",
            report.exports,
            report.replies,
            report.payloads,
        )
    return report


async def apply_retention(app: App, *, dry_run: bool = False) -> RetentionReport:
    """The daily part: photos of decided applications past their retention time."""
    now = app.clock.now()
    report = RetentionReport()
    async with app.sessions() as session:
        report.groups = await due_groups(session, app.settings.photo_retention_months, local_date(now, app.settings.tz))
    if dry_run:
        return report
    for group in report.groups:
        paths: list[str] = []
        for start in range(0, len(group.submission_ids), CHUNK):
            async with app.sessions.begin() as session:
                paths += await remove_photos(session, group.submission_ids[start : start + CHUNK], now)
        async with app.sessions() as session:
            files = await remove_unused_files(session, app.evidence, paths)
        report.files += files
        log.info(
            "photo retention: %d photo(s) of %d application(s) removed in %s %d (%d file(s))",
            group.photos,
            group.applications,
            group.commune_code,
            group.year,
            files,
        )
    return report


def describe(app: App, retention: RetentionReport, files: FilesReport, *, dry_run: bool) -> list[str]:
    """What `hoctap retention` prints: counts per commune and campaign, never a name."""
    months = app.settings.photo_retention_months
    verb = "would be removed" if dry_run else "removed"
    lines = []
    if months <= 0:
        lines.append("Photo retention: off (PHOTO_RETENTION_MONTHS=0).")
    else:
        lines.append(
            f"Photo retention: photos of recognised and refused applications go {months} month(s) "
            "after the commune report deadline."
        )
        for g in retention.groups:
            due = g.report_due.isoformat() if g.report_due else "none (31 Dec)"
            lines.append(
                f"    {g.commune_name} ({g.commune_code}) {g.year}: report deadline {due}, due since "
                f"{g.removable_from.isoformat()}: {g.photos} photo(s) of {g.applications} application(s) {verb}"
            )
        if not retention.groups:
            lines.append("    nothing is due")
    lines.append(f"Orphan photo files (no row uses them, older than {_hours(ORPHAN_GRACE)}): {files.orphans} {verb}")
    lines.append(f"Exports older than {_hours(EXPORT_LIFETIME)}: {files.exports} {verb}")
    lines.append(f"Replies of delivered messages still stored: {files.replies} {verb}")
    lines.append(f"Payloads of settled outbox messages: {files.payloads} {verb}")
    if dry_run:
        lines.append("Dry run: nothing was changed.")
    return lines


def _hours(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


async def run_all(app: App, *, dry_run: bool = False) -> tuple[RetentionReport, FilesReport]:
    retention = await apply_retention(app, dry_run=dry_run)
    files = await clean_files(app, dry_run=dry_run)
    return retention, files
