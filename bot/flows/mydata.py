"""A person's own data: see what is stored (/dulieu) and delete it (/xoadulieu), with one clear
confirmation. Titles already recognised stay in the year's statistics, without the person."""

from __future__ import annotations

from bot.flows.consent import own_data_command, record_withdrawal
from bot.flows.context import Context, Input
from bot.flows.router import Router
from bot.flows.states import MyData, Start
from bot.i18n import N_
from bot.messages import Choice
from bot.review.privacy import delete_person_data, remove_files_after_deletion, summary
from bot.storage.consents import ConsentKind, ConsentMethod, count, latest

router = Router()
ROLE_KEYS = {
    "leader": N_("role.leader"),
    "officer": N_("role.officer"),
    "province": N_("role.province"),
    "admin": N_("role.admin"),
    "resident": N_("role.resident"),
}


async def _consent_lines(ctx: Context) -> list[str]:
    """When they agreed, to which version of the text, naming whom; and any withdrawal since."""
    person_id = ctx.person.id if ctx.person is not None else None
    whose = {"person_id": person_id, "account_id": ctx.account.id}
    given = await latest(ctx.session, ConsentKind.GIVEN, **whose)
    withdrawn = await latest(ctx.session, ConsentKind.WITHDRAWN, **whose)
    lines = []
    if given is not None:
        key = N_("mydata.consent_proxy") if given.method == ConsentMethod.PROXY.value else N_("mydata.consent")
        lines.append(
            ctx.t(
                key,
                when=ctx.t.datetime(given.at),
                version=given.text_version or "-",
                controller=given.controller or "-",
            )
        )
    elif ctx.account.consent_at is not None:
        # Agreed before consent rows were kept: only the time is known.
        lines.append(ctx.t("mydata.consent_unrecorded", when=ctx.t.datetime(ctx.account.consent_at)))
    if withdrawn is not None and (given is None or withdrawn.id > given.id):
        lines.append(ctx.t("mydata.withdrawn", when=ctx.t.datetime(withdrawn.at)))
    elif given is not None:
        lines.append(ctx.t("mydata.how_to_withdraw"))
    guardians = await count(ctx.session, ConsentKind.GUARDIAN, person_id=person_id, account_id=None)
    if guardians:
        lines.append(ctx.t("mydata.guardian", count=guardians))
    return lines


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
    consent = "\n".join(await _consent_lines(ctx))
    if text is None:
        ctx.say(ctx.t("mydata.nothing") + ("\n" + consent if consent else ""))
    else:
        ctx.say(text + ("\n" + consent if consent else "") + "\n\n" + ctx.t("mydata.how_to_delete"))
    ctx.again()


@router.command(
    "xoadulieu", "deletedata", english="deletedata", needs_consent=False, help_key=N_("help.cmd.deletedata")
)
async def cmd_delete_data(ctx: Context, args: str) -> None:
    own_data_command(ctx, N_("mydata.nothing") if ctx.person is None else None, MyData.CONFIRM)


@router.prompt(MyData.CONFIRM, before_consent=True)
async def ask_delete(ctx: Context) -> None:
    text = await _summary_text(ctx)
    if text is None:
        ctx.say(ctx.t("mydata.nothing"))
        ctx.goto(Start.MENU if ctx.account.consent_at else Start.NEW)
        return
    ctx.ask(
        text + "\n\n" + ctx.t("mydata.confirm_ask"),
        [Choice("delete", ctx.t("mydata.confirm_delete")), Choice("keep", ctx.t("mydata.keep"))],
    )


@router.handle(MyData.CONFIRM, before_consent=True)
async def on_delete(ctx: Context, inp: Input) -> None:
    if inp.choice == "keep":
        ctx.say(ctx.t("mydata.kept"))
        ctx.goto(Start.MENU if ctx.account.consent_at else Start.NEW)
        return
    if inp.choice != "delete" or ctx.person is None:
        ctx.retry("mydata.please_choose")
        return
    # Deleting ends processing: recorded as a withdrawal of consent, in its own row.
    await record_withdrawal(ctx, ConsentMethod.DELETION, ctx.now)
    result = await delete_person_data(ctx.session, ctx.person, ctx.now)
    app = ctx.app

    async def remove_files() -> None:
        await remove_files_after_deletion(app, result)

    ctx.after_commit.append(remove_files)
    ctx.person = None
    ctx.conv.data = {}
    ctx.say(ctx.t("mydata.deleted", submissions=result.submissions, photos=result.photos))
    ctx.goto(Start.NEW)
