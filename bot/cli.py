"""`hoctap` command line: set up a commune, run the bot, chat in the terminal, administer roles."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from bot.app import App, build_app
from bot.config import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.storage.models import OrgUnit

cli = typer.Typer(help="hoctap-bot: learning-society titles on Zalo and Telegram.", no_args_is_help=True)
admin = typer.Typer(help="Installation administration (roles).", no_args_is_help=True)
cli.add_typer(admin, name="admin")


def _fail(message: str, code: int = 2) -> NoReturn:
    """End the command with `error: <message>` on stderr and no traceback; exit code 2 (the
    default) says the command was given something it cannot use."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code) from None


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return load_settings()
    except ValidationError as exc:  # a setting that cannot be read: say which, without a traceback
        for error in exc.errors():
            name = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            typer.echo(f"error: {name}: {error.get('msg')}", err=True)
        raise typer.Exit(2) from None


async def _with_app(work, settings: Settings | None = None, clock=None):
    app = await build_app(settings or _settings(), clock)
    try:
        return await work(app)
    finally:
        await app.close()


def _run(coro) -> object:
    return asyncio.run(coro)


async def _unit_or_exit(session: AsyncSession, code: str, kind: str | None = None) -> OrgUnit:
    """The org unit a command names by its code (of that kind: commune, province…, when given);
    a usage error when there is none."""
    from sqlalchemy import select

    from bot.storage.models import OrgUnit

    query = select(OrgUnit).where(OrgUnit.code == code)
    if kind is not None:
        query = query.where(OrgUnit.kind == kind)
    unit = await session.scalar(query)
    if unit is None:
        _fail(f"no {kind or 'org unit'} with code {code!r}")
    return unit


@cli.command()
def init(
    commune: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Commune YAML file"),
    province: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Province YAML file: many communes at once"
    ),
    if_new: bool = typer.Option(
        False, "--if-new", help="Only set communes up that are not in the database yet (keeps chat changes)"
    ),
) -> None:
    """Create or update a commune (or every commune of a province file), branches, deadlines and targets.

    Prints every calendar value it changes (e.g. a deadline an officer moved with /lichnhac)."""
    from sqlalchemy import select

    from bot.storage.commune import (
        CommuneFileError,
        apply_commune,
        apply_province,
        branches_of,
        load_commune_file,
        load_province_file,
    )
    from bot.storage.models import OrgUnit

    if (commune is None) == (province is None):
        _fail("give --commune FILE or --province FILE")
    try:
        commune_spec = load_commune_file(commune) if commune else None
        province_spec = load_province_file(province) if province else None
    except CommuneFileError as exc:
        _fail(str(exc))

    async def work(app: App) -> None:
        async with app.sessions.begin() as session:
            if if_new:
                if commune_spec is not None:
                    wanted = [commune_spec.commune.code]
                else:
                    assert province_spec is not None
                    wanted = [c.commune.code for c in province_spec.commune_specs()]
                known = set(await session.scalars(select(OrgUnit.code).where(OrgUnit.code.in_(wanted))))
                if known == set(wanted):
                    typer.echo(
                        f"{', '.join(wanted)} already set up; the calendar is kept as it is "
                        f"(run `hoctap init` without --if-new to apply the file)."
                    )
                    return
            changes: list[str] = []
            if commune_spec is not None:
                units = [await apply_commune(session, commune_spec, app.clock.now(), changes)]
                campaigns = [len(commune_spec.campaigns)]
            else:
                assert province_spec is not None
                units = await apply_province(session, province_spec, app.clock.now(), changes)
                campaigns = [len(c.campaigns) for c in province_spec.commune_specs()]
            counts = [len(await branches_of(session, unit.id)) for unit in units]
        for line in changes:
            typer.echo(f"changed: {line}")
        for unit, branches, count in zip(units, counts, campaigns, strict=False):
            typer.echo(f"{unit.name}: {branches} branches, {count} campaign(s) ready.")

    _run(_with_app(work))


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version (the bot also does this on start)."""

    async def work(app: App) -> None:
        from bot.storage.db import current_revision

        typer.echo(f"database at revision {await current_revision(app.engine)}")

    _run(_with_app(work))


@cli.command()
def chat(user: str = typer.Option("local", help="Terminal user id (several ids = several people)")) -> None:
    """Talk to the bot in this terminal, as a resident would on Zalo."""
    from bot.channels.console import ConsoleChannel
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router

    async def work(app: App) -> None:
        await ConsoleChannel(FlowEngine(app, build_router()), user_id=user).run()

    _run(_with_app(work))


@cli.command()
def run(
    role: str = typer.Option("all", help="web | scheduler | all"),
    user: str = typer.Option("local", help="Terminal user id when no channel is configured"),
) -> None:
    """Run the bot: configured channels, or the terminal chat when no token is set."""
    from bot.config import ConfigError
    from bot.logs import setup_logging
    from bot.runner import run_bot

    if role not in ("web", "scheduler", "all"):
        _fail("--role must be web, scheduler or all")
    settings = _settings()
    setup_logging(settings)
    try:
        _run(run_bot(settings, role=role, console_user=user))
    except ConfigError as exc:  # the message names the setting to fix; a traceback would not help
        _fail(str(exc))


def _clock_at(at: str | None, settings: Settings):
    """A clock stopped at `at` (ISO date-time; local time when no offset is given), or None."""
    if not at:
        return None
    from datetime import datetime

    from bot.clock import FakeClock

    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        _fail(f"--at {at!r} is not an ISO date-time such as 2026-11-23T08:00")
    return FakeClock(when if when.tzinfo else when.replace(tzinfo=settings.tz))


@cli.command()
def remind(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list who would get what and when; write nothing"),
    days: int = typer.Option(35, min=1, max=400, help="How far ahead the dry run looks"),
    at: str | None = typer.Option(None, help="Plan as of this local time (ISO, e.g. 2026-11-23T08:00)"),
    limit: int = typer.Option(50, min=1, help="Recipients listed per round"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each message as its reader gets it"),
) -> None:
    """Reminders: queue the current round of every deadline now, or (--dry-run) list what is planned.

    Safe to run any number of times: a reminder already queued is never queued again.
    """
    from bot.reminders.report import remind as run

    settings = _settings()

    async def work(app: App) -> None:
        await run(app, typer.echo, dry_run=dry_run, days=days, limit=limit, verbose=verbose)

    _run(_with_app(work, settings, _clock_at(at, settings)))


@cli.command()
def outbox(
    problems: bool = typer.Option(False, "--problems", help="List unconfirmed, failed and unreachable messages"),
    limit: int = typer.Option(100, min=1, help="Rows listed with --problems"),
) -> None:
    """Outbox messages by state and kind (pending, sent, unconfirmed after a crash, …)."""
    from bot.reminders.report import outbox_status

    async def work(app: App) -> None:
        await outbox_status(app, typer.echo, problems=problems, limit=limit)

    _run(_with_app(work))


@cli.command()
def retention(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be removed; change nothing"),
    at: str | None = typer.Option(None, help="As of this local time (ISO, e.g. 2027-12-11T08:00)"),
) -> None:
    """Remove photos past PHOTO_RETENTION_MONTHS, orphan photo files and expired exports (the
    scheduler does this daily and hourly). Prints counts per commune and campaign, no names."""
    from bot.ops.housekeeping import describe, run_all

    settings = _settings()

    async def work(app: App) -> None:
        found, files = await run_all(app, dry_run=dry_run)
        for line in describe(app, found, files, dry_run=dry_run):
            typer.echo(line)

    _run(_with_app(work, settings, _clock_at(at, settings)))


@admin.command("grant")
def admin_grant(
    role: str = typer.Option(..., help="officer | leader | province | admin"),
    channel: str = typer.Option(..., help="telegram | zalo_bot | zalo_oa | console"),
    user_id: str = typer.Option(..., "--user-id", help="The person's id on that channel"),
    scope: str | None = typer.Option(
        None,
        help="Commune code (officer), branch code (leader) or province code (province: reads every commune's reports)",
    ),
    name: str | None = typer.Option(None, help="Full name, if the person has not registered yet"),
) -> None:
    """Give someone a role (bootstrap the first officer of a commune)."""

    _check_channel(channel)
    if role not in ("officer", "leader", "admin", "province"):
        _fail("--role must be officer, leader, admin or province")
    from bot.storage.consents import attach_person
    from bot.storage.models import Person
    from bot.storage.people import Role, get_or_create_account, grant_role

    async def work(app: App) -> None:
        now = app.clock.now()
        async with app.sessions.begin() as session:
            unit = None
            if scope:
                unit = await _unit_or_exit(session, scope)
            account = await get_or_create_account(session, channel, user_id, None, now)
            person = await session.get(Person, account.person_id) if account.person_id else None
            if person is None:
                if not name:
                    _fail("this account has no person yet; pass --name")
                person = Person(full_name=name, branch_id=None, consent_at=account.consent_at, created_at=now)
                session.add(person)
                await session.flush()
                account.person_id = person.id
                await attach_person(session, account.id, person.id)  # consent given in chat before
            try:
                grant = await grant_role(session, person, Role(role), unit, granted_by=None, now=now)
            except ValueError as exc:
                _fail(str(exc))
            typer.echo(
                f"granted {grant.role} to {person.full_name} (person {person.id})"
                + (f" for {unit.name}" if unit else "")
            )

    _run(_with_app(work))


CHANNELS = ("telegram", "zalo_bot", "zalo_oa", "console")


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        _fail(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")


@admin.command("revoke")
def admin_revoke(
    role: str = typer.Option(..., help="officer | leader | admin"),
    channel: str = typer.Option(..., help="telegram | zalo_bot | zalo_oa | console"),
    user_id: str = typer.Option(..., "--user-id", help="The person's id on that channel"),
    scope: str | None = typer.Option(None, help="Only the grant for this commune or branch code"),
) -> None:
    """Take a role away (the person keeps their own applications)."""
    from sqlalchemy import select

    from bot.storage.models import RoleGrant
    from bot.storage.people import get_account

    _check_channel(channel)

    async def work(app: App) -> None:
        async with app.sessions.begin() as session:
            account = await get_account(session, channel, user_id)
            if account is None or account.person_id is None:
                _fail(f"nobody with id {user_id!r} on {channel}")
            query = select(RoleGrant).where(
                RoleGrant.person_id == account.person_id, RoleGrant.role == role, RoleGrant.revoked_at.is_(None)
            )
            if scope:
                unit = await _unit_or_exit(session, scope)
                query = query.where(RoleGrant.scope_unit_id == unit.id)
            grants = list(await session.scalars(query))
            if not grants:
                _fail(f"{channel}:{user_id} holds no live {role} role" + (f" for {scope}" if scope else ""))
            for grant in grants:
                grant.revoked_at = app.clock.now()
            typer.echo(f"revoked {len(grants)} {role} grant(s) of person {account.person_id}")

    _run(_with_app(work))


@admin.command("invite")
def admin_invite(
    role: str = typer.Option(..., help="leader | officer"),
    scope: str = typer.Option(..., help="Branch code (leader) or commune code (officer)"),
    days: int = typer.Option(7, min=1, max=90, help="Days until the code expires"),
) -> None:
    """Create a one-time invite code; the person types it in chat: ma <code>."""
    from datetime import timedelta

    from bot.review.invites import NotAllowed, create_invite

    async def work(app: App) -> None:
        async with app.sessions.begin() as session:
            unit = await _unit_or_exit(session, scope)
            try:
                created = await create_invite(
                    session, role=role, scope=unit, created_by=None, now=app.clock.now(), ttl=timedelta(days=days)
                )
            except (NotAllowed, ValueError) as exc:
                _fail(str(exc))
            expires = created.invite.expires_at.astimezone(app.settings.tz)
            typer.echo(f"{created.code}  ({role} of {unit.name}, one use, expires {expires:%Y-%m-%d %H:%M})")
            typer.echo(f"In chat: ma {created.code}")

    _run(_with_app(work))


@cli.command("export")
def export_cmd(
    kind: str = typer.Argument(..., help="submissions | stats | register"),
    format: str = typer.Option("xlsx", "--format", "-f", help="xlsx | csv"),
    commune: str = typer.Option(..., help="Commune code"),
    year: int | None = typer.Option(None, help="Campaign year (default: this year's campaign)"),
    out: Path | None = typer.Option(None, help="Output file (default: <kind>-<commune>-<year>.<format>)"),
    lang: str = typer.Option("vi", help="Language of headers and labels: vi | en"),
) -> None:
    """Export submissions, statistics or the multi-year register as XLSX or CSV."""
    from sqlalchemy import select

    from bot.clock import local_date
    from bot.review.exports import FORMATS, KINDS, export_filename, write_export
    from bot.storage.commune import campaign_for
    from bot.storage.models import Campaign

    if kind not in KINDS or format not in FORMATS:
        _fail(f"kind must be one of {', '.join(KINDS)}; format one of {', '.join(FORMATS)}")
    if lang not in ("vi", "en"):
        _fail(f"--lang must be vi or en, not {lang!r}")
    if out is not None and out.suffix.lower() != f".{format}":
        _fail(
            f"--out {out} does not end in .{format} (the --format); "
            f"use --format {out.suffix.lstrip('.') or '?'} or rename"
        )
    settings = _settings()
    typer.echo(f"database: {_describe_database(settings.database_url)}")
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        # Run from another folder, the default ./hoctap.db would be a new, empty database.
        _fail(f"no database at {missing}; run from the bot's folder or set DATABASE_URL")

    async def work(app: App) -> None:
        async with app.sessions() as session:
            unit = await _unit_or_exit(session, commune, "commune")
            chosen = year
            if chosen is None:
                campaign = await campaign_for(session, unit.id, local_date(app.clock.now(), app.settings.tz))
                chosen = campaign.year if campaign else local_date(app.clock.now(), app.settings.tz).year
            elif kind != "register":
                years = set(await session.scalars(select(Campaign.year).where(Campaign.commune_id == unit.id)))
                if chosen not in years:
                    listed = ", ".join(str(y) for y in sorted(years)) or "none"
                    _fail(f"{commune} has no campaign for {chosen} (campaigns: {listed})")
            target = out or Path(export_filename(kind, unit, chosen, format))
            target.parent.mkdir(parents=True, exist_ok=True)
            rows = await write_export(
                session,
                app.catalog,
                kind=kind,
                fmt=format,
                commune=unit,
                year=chosen,
                locale=lang,
                path=target,
                now=app.clock.now(),
            )
        typer.echo(f"wrote {rows} rows to {target}")

    _run(_with_app(work, settings))


def _describe_database(url: str) -> str:
    """The database a command uses, without a password: a SQLite file's full path."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(Path(parsed.database).expanduser().resolve())
    return parsed.render_as_string(hide_password=True)


def _missing_sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).expanduser().resolve()
    return None if path.exists() else path


@cli.command("province-report")
def province_report_cmd(
    province: str = typer.Option(..., help="Province code"),
    year: int = typer.Option(..., help="Campaign year"),
    format: str = typer.Option("xlsx", "--format", "-f", help="xlsx | csv"),
    out: Path | None = typer.Option(None, help="Output file (default: province-<code>-<year>.<format>)"),
    lang: str = typer.Option("vi", help="Language of headers: vi | en"),
) -> None:
    """The yearly upward report of a province: one row per commune, then the province totals."""
    from bot.review.exports import FORMATS
    from bot.review.province import province_report_filename, write_province_report

    if format not in FORMATS:
        _fail(f"format must be one of {', '.join(FORMATS)}")

    async def work(app: App) -> None:
        async with app.sessions() as session:
            unit = await _unit_or_exit(session, province, "province")
            target = out or Path(province_report_filename(unit, year, format))
            target.parent.mkdir(parents=True, exist_ok=True)
            rows = await write_province_report(
                session, app.catalog, province=unit, year=year, fmt=format, locale=lang, path=target
            )
        typer.echo(f"wrote {rows} communes and the province totals to {target}")

    _run(_with_app(work))


@admin.command("roles")
def admin_roles() -> None:
    """List live role grants."""
    from sqlalchemy import select

    from bot.storage.models import OrgUnit, Person, RoleGrant

    async def work(app: App) -> None:
        async with app.sessions() as session:
            rows = await session.execute(
                select(RoleGrant, Person, OrgUnit)
                .join(Person, Person.id == RoleGrant.person_id)
                .outerjoin(OrgUnit, OrgUnit.id == RoleGrant.scope_unit_id)
                .where(RoleGrant.revoked_at.is_(None))
                .order_by(RoleGrant.id)
            )
            for grant, person, unit in rows:
                typer.echo(f"{grant.role:8} {person.full_name} (person {person.id}) {unit.code if unit else '-'}")

    _run(_with_app(work))


@cli.command("backup")
def backup_command(out: Path = typer.Option(Path("backups"), help="Folder that receives the backup")) -> None:
    """Back up the database and the evidence files into a new dated folder."""
    from bot.clock import SystemClock
    from bot.ops.backup import BackupError, backup

    settings = _settings()
    try:
        result = backup(settings.database_url, Path(settings.evidence_dir), out, SystemClock().now())
    except BackupError as exc:
        _fail(str(exc), code=1)
    typer.echo(f"backup written to {result.folder} ({result.evidence_files} evidence files)")


@cli.command("restore")
def restore_command(folder: Path = typer.Argument(..., exists=True, file_okay=False, help="A backup folder")) -> None:
    """Restore a backup folder into the configured database and evidence folder (stop the bot first)."""
    from bot.ops.backup import BackupError, restore

    settings = _settings()
    try:
        count = restore(folder, settings.database_url, Path(settings.evidence_dir))
    except BackupError as exc:
        _fail(str(exc), code=1)
    typer.echo(f"restored {folder} ({count} evidence files)")


def main() -> None:
    cli()
