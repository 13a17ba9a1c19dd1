"""`/web`: a one-time link to the review desk in the browser, sent only to the officer or leader
who asked (ten minutes, one use); `/web thoat` signs that person out of every browser."""

from __future__ import annotations

from bot.domain.roles import Role
from bot.flows.context import Context
from bot.flows.router import Router
from bot.i18n import N_
from bot.text import fold
from bot.web.auth import LINK_TTL, desk_roles, issue_link, sign_out_everywhere

router = Router()
SIGN_OUT_WORDS = {"thoat", "dangxuat", "out", "signout", "logout"}
SIGN_IN_PATH = "/desk/in/"


def desk_base_url(ctx: Context) -> str:
    settings = ctx.app.settings
    return (settings.public_base_url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")


@router.command("web", english="web", roles=(Role.LEADER, Role.OFFICER, Role.PROVINCE), help_key=N_("help.cmd.web"))
async def cmd_web(ctx: Context, args: str) -> None:
    roles = await desk_roles(ctx.session, ctx.person.id if ctx.person else None)
    if ctx.person is None or not roles:
        ctx.retry("staff.not_staff")
        return
    if fold(args).strip() in SIGN_OUT_WORDS:
        ended = await sign_out_everywhere(ctx.session, ctx.person.id, ctx.now)
        ctx.say(ctx.t("web.chat.signed_out", count=ended))
        ctx.again()
        return
    token = await issue_link(ctx.session, ctx.person.id, ctx.now)
    ctx.say(
        ctx.t(
            "web.chat.link",
            url=desk_base_url(ctx) + SIGN_IN_PATH + token,
            minutes=int(LINK_TTL.total_seconds() // 60),
        )
    )
    ctx.again()
