"""A person's own data: see what is stored (/dulieu) and delete it (/xoadulieu), with one clear
confirmation. Titles already recognised stay in the year's statistics, without the person."""

from __future__ import annotations

from bot.flows.context import Context, Input
from bot.flows.messages import Choice
from bot.flows.router import Router
from bot.i18n import N_
from bot.review.privacy import delete_person_data, remove_files_after_deletion, summary

router = Router()
ROLE_KEYS = {"leader": N_("role.leader"), "officer": N_("role.officer"), "admin": N_("role.admin"), "resident": N_("role.resident")}


async def _summary_text(ctx: Context) -> str | None:
    if ctx.person is None:
        return None
    data = await summary(ctx.session, ctx.person)
    lines = [ctx.t("mydata.head")]
    lines.append(ctx.t("mydata.person", name=data.name, year=data.birth_year or "-", branch=data.branch or "-"))
    if data.references:
        lines.append(ctx.t("mydata.submissions", references=", ".join(data.references)))
    lines.append(ctx.t("mydata.answers", answers=data.answers, photos=data.photos))
    if data.household_members:
        lines.append(ctx.t("mydata.household", count=data.household_members))
    lines.append(ctx.t("mydata.channels", channels=", ".join(data.channels) or "-"))
    if data.roles:
        roles = []
        for role in data.roles:
            key = ROLE_KEYS.get(role, ROLE_KEYS["resident"])
            roles.append(ctx.t(key))
        lines.append(ctx.t("mydata.roles", roles=", ".join(roles)))
    return "\n".join(lines)


@router.command("dulieu", "mydata", english="mydata", needs_consent=False, help_key=N_("help.cmd.mydata"))
async def cmd_my_data(ctx: Context, args: str) -> None:
    text = await _summary_text(ctx)
    if text is None:
        ctx.say(ctx.t("mydata.nothing"))
    else:
        ctx.say(text + "\n\n" + ctx.t("mydata.how_to_delete"))
    ctx.again()


@router.command("xoadulieu", "deletedata", english="deletedata", needs_consent=False, help_key=N_("help.cmd.deletedata"))
async def cmd_delete_data(ctx: Context, args: str) -> None:
    if ctx.person is None:
        ctx.say(ctx.t("mydata.nothing"))
        ctx.again()
        return
    if ctx.proxy:
        ctx.stop_acting()
    ctx.goto("mydata.confirm")


@router.prompt("mydata.confirm")
async def ask_delete(ctx: Context) -> None:
    text = await _summary_text(ctx)
    if text is None:
        ctx.say(ctx.t("mydata.nothing"))
        ctx.goto("menu" if ctx.account.consent_at else "new")
        return
    ctx.ask(
        text + "\n\n" + ctx.t("mydata.confirm_ask"),
        [Choice("delete", ctx.t("mydata.confirm_delete")), Choice("keep", ctx.t("mydata.keep"))],
    )


@router.handle("mydata.confirm")
async def on_delete(ctx: Context, inp: Input) -> None:
    if inp.choice == "keep":
        ctx.say(ctx.t("mydata.kept"))
        ctx.goto("menu")
        return
    if inp.choice != "delete" or ctx.person is None:
        ctx.say(ctx.t("mydata.please_choose"))
        ctx.again()
        return
    result = await delete_person_data(ctx.session, ctx.person, ctx.now)
    app = ctx.app

    async def remove_files() -> None:
        await remove_files_after_deletion(app, result)

    ctx.after_commit.append(remove_files)
    ctx.person = None
    ctx.conv.data = {}
    ctx.say(ctx.t("mydata.deleted", submissions=result.submissions, photos=result.photos))
    ctx.goto("new")
