"""Reports for commune officers in chat: exports sent as documents (/xuat) and the progress
chart with a short summary (/thongke)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bot.flows.common import found_by, menu_choice, unit_choices
from bot.flows.context import Context, Input
from bot.flows.drafts import Draft
from bot.flows.guards import require
from bot.flows.router import Router
from bot.flows.states import Reports, Start
from bot.i18n import N_
from bot.messages import Choice, Outgoing
from bot.review.chart import render_progress_chart
from bot.review.exports import FORMAT_KEYS, FORMATS, KIND_KEYS, KINDS, new_export_path, produce_export
from bot.review.scope import communes_in_scope
from bot.review.stats import commune_stats, stats_lines
from bot.storage.commune import campaign_for
from bot.storage.models import OrgUnit
from bot.storage.people import Role
from bot.text import fold

router = Router()
KIND_WORDS = {
    "submissions": "submissions",
    "hoso": "submissions",
    "ho": "submissions",
    "stats": "stats",
    "thongke": "stats",
    "register": "register",
    "so": "register",
    "sotheodoi": "register",
    "nhieunam": "register",
}


@dataclass
class ReportDraft(Draft):
    """What an officer asked for: a report (`then`: the state that makes it) for a commune and year."""

    KEY: ClassVar[str] = "rep"
    then: str = Reports.EXPORT_KIND
    kind: str | None = None
    format: str | None = None
    year: int | None = None
    commune: int | None = None


async def _start(ctx: Context, args: str, then: str) -> None:
    """Shared start: role check, words in args (kind, format, year, commune code), commune choice.
    Officers report on their commune; the province role reads every commune of its province."""
    communes = await communes_in_scope(ctx.session, ctx.person.id) if ctx.person else []
    if not communes and await require(ctx, Role.OFFICER) is None:
        return
    rep = ReportDraft(then=then)
    for word in fold(args).replace("-", " ").split():
        if word in KIND_WORDS:
            rep.kind = KIND_WORDS[word]
        elif word in FORMATS or word in ("excel", "xls"):
            rep.format = "csv" if word == "csv" else "xlsx"
        elif word.isdigit() and len(word) == 4:
            rep.year = int(word)
    for commune in communes:
        if commune.code in args:
            rep.commune = commune.id
    if rep.commune is None and len(communes) == 1:
        rep.commune = communes[0].id
    ctx.keep(rep)
    ctx.goto(Reports.COMMUNE if rep.commune is None else then)


async def _commune_and_year(ctx: Context) -> tuple[OrgUnit, int] | None:
    rep = ctx.draft(ReportDraft)
    communes = {c.id: c for c in await communes_in_scope(ctx.session, ctx.person.id)} if ctx.person else {}
    commune = communes.get(rep.commune) if rep.commune is not None else None
    if commune is None:
        ctx.forget(ReportDraft)
        ctx.say(ctx.t("staff.not_officer"))
        ctx.goto(Start.MENU)
        return None
    year = rep.year
    if year is None:
        campaign = await campaign_for(ctx.session, commune.id, ctx.today)
        year = campaign.year if campaign else ctx.today.year
    return commune, year


@router.prompt(Reports.COMMUNE)
async def ask_commune(ctx: Context) -> None:
    communes = await communes_in_scope(ctx.session, ctx.person.id) if ctx.person else []
    ctx.ask(ctx.t("rep.ask_commune"), [*unit_choices(communes, "c"), menu_choice(ctx)])


@router.handle(Reports.COMMUNE)
async def on_commune(ctx: Context, inp: Input) -> None:
    choice = inp.choice or ""
    if choice.startswith("c") and choice[1:].isdigit():
        rep = ctx.draft(ReportDraft)
        rep.commune = int(choice[1:])
        ctx.keep(rep)
        ctx.goto(rep.then)
    elif choice == "menu":
        ctx.forget(ReportDraft)
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


# ---- exports ----------------------------------------------------------------------------------


@router.command("xuat", "export", english="export", roles=(Role.OFFICER, Role.PROVINCE), help_key=N_("help.cmd.export"))
async def cmd_export(ctx: Context, args: str) -> None:
    await _start(ctx, args, Reports.EXPORT_KIND)


def _buttons(ctx: Context, values: tuple[str, ...], keys: dict[str, str]) -> list[Choice]:
    """One button per export kind (or format), labelled in the person's language."""
    return [Choice(value, ctx.t(keys[value])) for value in values]


@router.prompt(Reports.EXPORT_KIND)
async def ask_kind(ctx: Context) -> None:
    if ctx.draft(ReportDraft).kind in KINDS:
        ctx.goto(Reports.EXPORT_FORMAT)
        return
    ctx.ask(ctx.t("exp.ask_kind"), [*_buttons(ctx, KINDS, KIND_KEYS), Choice("menu", ctx.t("common.to_menu"))])


@router.handle(Reports.EXPORT_KIND)
async def on_kind(ctx: Context, inp: Input) -> None:
    if inp.choice in KINDS:
        rep = ctx.draft(ReportDraft)
        rep.kind = inp.choice
        ctx.keep(rep)
        ctx.goto(Reports.EXPORT_FORMAT)
    elif inp.choice == "menu":
        ctx.forget(ReportDraft)
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


@router.prompt(Reports.EXPORT_FORMAT)
async def ask_format(ctx: Context) -> None:
    if ctx.draft(ReportDraft).format in FORMATS:
        await _export(ctx)
        return
    ctx.ask(ctx.t("exp.ask_format"), [*_buttons(ctx, FORMATS, FORMAT_KEYS), Choice("back", ctx.t("common.back"))])


@router.handle(Reports.EXPORT_FORMAT)
async def on_format(ctx: Context, inp: Input) -> None:
    rep = ctx.draft(ReportDraft)
    if inp.choice in FORMATS:
        rep.format = inp.choice
        ctx.keep(rep)
        await _export(ctx)
    elif inp.choice == "back":
        rep.kind = None
        ctx.keep(rep)
        ctx.goto(Reports.EXPORT_KIND)
    else:
        ctx.retry("menu.please_choose")


@found_by(_commune_and_year)
async def _export(ctx: Context, commune: OrgUnit, year: int) -> None:
    rep = ctx.draft(ReportDraft)
    kind, fmt = rep.kind, rep.format
    assert kind is not None and fmt is not None  # both asked before the export is made
    made = await produce_export(
        ctx.session,
        ctx.app.settings,
        ctx.app.catalog,
        kind=kind,
        fmt=fmt,
        commune=commune,
        year=year,
        locale=ctx.locale,
        now=ctx.now,
    )
    kind_key = KIND_KEYS[kind]
    ctx.replies.append(
        Outgoing(
            text=ctx.t("exp.done", what=ctx.t(kind_key), commune=commune.name, year=year, rows=made.rows),
            document=made.path,
            document_name=made.filename,
        )
    )
    ctx.forget(ReportDraft)
    ctx.goto(Start.MENU)


# ---- the progress chart -----------------------------------------------------------------------


@router.command("thongke", "stats", english="stats", roles=(Role.OFFICER, Role.PROVINCE), help_key=N_("help.cmd.stats"))
async def cmd_stats(ctx: Context, args: str) -> None:
    await _start(ctx, args, Reports.STATS)


@router.prompt(Reports.STATS)
@found_by(_commune_and_year)
async def show_stats(ctx: Context, commune: OrgUnit, year: int) -> None:
    stats = await commune_stats(ctx.session, ctx.app.catalog, commune, year)
    names = {}
    for title in stats.titles:
        names[title] = ctx.app.catalog.for_title(title, year).title_name.get(ctx.locale)
    lines = stats_lines(stats, names, ctx.t)
    filename = f"chart-{commune.code}-{year}.png"
    path = new_export_path(ctx.app.settings.export_dir, filename)
    await asyncio.to_thread(render_progress_chart, stats, names, ctx.t, Path(path))
    ctx.replies.append(Outgoing(text=ctx.t("rep.chart_caption", commune=commune.name, year=year), photo=path))
    ctx.say("\n".join(lines))
    ctx.forget(ReportDraft)
    ctx.goto(Start.MENU)
