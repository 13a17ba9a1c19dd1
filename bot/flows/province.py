"""The province role in chat (/baocaotinh): the yearly upward report of its province, one line
per commune and the totals, with the spreadsheet attached. Read-only: nothing here changes data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.domain.roles import Role
from bot.flows.common import unit_choices
from bot.flows.context import Context, Input
from bot.flows.drafts import Draft
from bot.flows.router import Router
from bot.flows.states import Province, Start
from bot.i18n import N_
from bot.messages import Outgoing
from bot.review.exports import new_export_path
from bot.review.province import province_report, province_report_filename, write_province_report
from bot.review.scope import provinces_in_scope
from bot.review.stats import TitleCount

router = Router()


@dataclass
class ProvinceDraft(Draft):
    """The year asked for while the province is picked."""

    KEY: ClassVar[str] = "prov"
    year: int | None = None


@router.command(
    "baocaotinh", "provincereport", english="provincereport", roles=(Role.PROVINCE,), help_key=N_("help.cmd.province")
)
async def cmd_province(ctx: Context, args: str) -> None:
    provinces = await provinces_in_scope(ctx.session, ctx.person.id) if ctx.person else []
    if not provinces:
        ctx.say(ctx.t("prov.not_province"))
        ctx.goto(Start.MENU)
        return
    year = next((int(w) for w in args.split() if w.isdigit() and len(w) == 4), ctx.today.year)
    ctx.keep(ProvinceDraft(year=year))
    if len(provinces) == 1:
        await _send(ctx, provinces[0].id)
        return
    ctx.goto(Province.PICK)


@router.prompt(Province.PICK)
async def ask_province(ctx: Context) -> None:
    provinces = await provinces_in_scope(ctx.session, ctx.person.id) if ctx.person else []
    ctx.ask(ctx.t("prov.ask"), unit_choices(provinces, "p"))


@router.handle(Province.PICK)
async def on_province(ctx: Context, inp: Input) -> None:
    choice = inp.choice or ""
    if choice.startswith("p") and choice[1:].isdigit():
        await _send(ctx, int(choice[1:]))
    else:
        ctx.say(ctx.t("menu.please_choose"))
        ctx.again()


async def _send(ctx: Context, province_id: int) -> None:
    provinces = {p.id: p for p in await provinces_in_scope(ctx.session, ctx.person.id)} if ctx.person else {}
    province = provinces.get(province_id)
    year = int(ctx.draft(ProvinceDraft).year or ctx.today.year)
    ctx.forget(ProvinceDraft)
    if province is None:
        ctx.say(ctx.t("prov.not_province"))
        ctx.goto(Start.MENU)
        return
    report = await province_report(ctx.session, ctx.app.catalog, province, year)
    names = {t: ctx.app.catalog.for_title(t, year).title_name.get(ctx.locale) for t in report.titles}
    lines = [ctx.t("prov.head", province=province.name, year=year, communes=len(report.communes))]
    units = [line.stats for line in report.communes] + [report.total]
    for n, unit in enumerate(units):
        parts = []
        for title in report.titles:
            count = unit.titles.get(title, TitleCount())
            rate = unit.rate(title, report.subjects.get(title, "person"))
            parts.append(
                ctx.t(
                    "prov.stats_title",
                    title=names[title],
                    recognised=ctx.t.number(count.recognised),
                    registered=ctx.t.number(count.registered),
                    rate=ctx.t.percent(rate),
                )
            )
        name = ctx.t("export.row.province_total", province=unit.name) if n == len(units) - 1 else unit.name
        lines.append(ctx.t("rep.stats_line", unit=name, parts="; ".join(parts)))
    ctx.say("\n".join(lines))
    filename = province_report_filename(province, year, "xlsx")
    path = new_export_path(ctx.app.settings.export_dir, filename)
    await write_province_report(
        ctx.session, ctx.app.catalog, province=province, year=year, fmt="xlsx", locale=ctx.locale, path=path
    )
    ctx.replies.append(
        Outgoing(
            text=ctx.t("prov.file", province=province.name, year=year),
            document=path,
            document_name=filename,
        )
    )
    ctx.goto(Start.MENU)
