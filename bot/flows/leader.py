"""Branch leaders: their members by state, and registering or declaring for households without
a smartphone ("làm hộ"). While acting for someone, the ordinary register and declare flows run
with that person as their subject; everything is recorded as done by the leader."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from bot.domain.lifecycle import State
from bot.flows.common import menu_choice, state_label, unit_choices
from bot.flows.consent import consent_notice
from bot.flows.context import Context, Input
from bot.flows.drafts import FlatDraft, ProxyDraft, RegistrationDraft
from bot.flows.guards import require
from bot.flows.router import Router
from bot.flows.staff import cmd_branch_review
from bot.flows.states import Decl, Leader, Reg, Start, Status
from bot.i18n import N_
from bot.messages import Choice
from bot.review.queries import Member, branch_members, people_for_proxy
from bot.review.scope import branches_in, scope_for
from bot.storage.consents import ShownText
from bot.storage.models import OrgUnit, Person
from bot.storage.people import Role

router = Router()
MAX_NAMES = 15
PROXY_LIST = 8
STATE_ORDER = [
    State.NEEDS_INFO,
    State.SUBMITTED,
    State.DECLARING,
    State.REGISTERED,
    State.RECOMMENDED,
    State.NOT_RECOMMENDED,
    State.APPROVED,
    State.REJECTED,
    State.EXPIRED,
    State.WITHDRAWN,
]


@dataclass
class MembersDraft(FlatDraft):
    """The branch whose members are shown (kept: "back" from the proxy list returns to them)."""

    STORED: ClassVar[dict[str, str]] = {"branch": "members_branch"}
    branch: int | None = None


@dataclass
class ProxySearchDraft(FlatDraft):
    """What the leader typed to find the person to act for, while the list is shown."""

    STORED: ClassVar[dict[str, str]] = {"text": "proxy_search"}
    text: str | None = None


# ---- members by state -----------------------------------------------------------------------


@router.command("thanhvien", "members", english="members", roles=(Role.LEADER,), help_key=N_("help.cmd.members"))
async def cmd_members(ctx: Context, args: str) -> None:
    scope = await require(ctx, Role.LEADER)
    if scope is None:
        return
    branches = await branches_in(ctx.session, scope)
    if len(branches) == 1:
        ctx.keep(MembersDraft(branch=branches[0].id))
        ctx.goto(Leader.MEMBERS)
    else:
        ctx.goto(Leader.MEMBERS_BRANCH)


@router.prompt(Leader.MEMBERS_BRANCH)
async def ask_members_branch(ctx: Context) -> None:
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, Role.LEADER)
    branches = await branches_in(ctx.session, scope) if scope else []
    ctx.ask(ctx.t("lead.pick_branch"), [*unit_choices(branches, "b"), menu_choice(ctx)])


@router.handle(Leader.MEMBERS_BRANCH)
async def on_members_branch(ctx: Context, inp: Input) -> None:
    choice = inp.choice or ""
    if choice.startswith("b") and choice[1:].isdigit():
        ctx.keep(MembersDraft(branch=int(choice[1:])))
        ctx.goto(Leader.MEMBERS)
    elif choice == "menu":
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


def _member_line(ctx: Context, member: Member) -> str:
    line = (
        ctx.t("lead.member", reference=member.reference, name=member.name)
        if member.reference
        else ctx.t("lead.member_unregistered", name=member.name)
    )
    if member.unreachable:
        line += " " + ctx.t("lead.unreachable")
    return line


@router.prompt(Leader.MEMBERS)
async def ask_members(ctx: Context) -> None:
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, Role.LEADER)
    branch = await ctx.session.get(OrgUnit, ctx.draft(MembersDraft).branch or 0)
    if scope is None or branch is None or not scope.covers(branch.id):
        ctx.say(ctx.t("staff.not_leader"))
        ctx.goto(Start.MENU)
        return
    campaign, members = await branch_members(ctx.session, branch, ctx.today)
    year = campaign.year if campaign else ctx.today.year
    registered = [m for m in members if m.state is not None]
    lines = [ctx.t("lead.members_head", branch=branch.name, year=year, count=len(registered))]
    groups: dict[str | None, list[Member]] = {}
    for member in members:
        groups.setdefault(member.state, []).append(member)
    for state in [*(s.value for s in STATE_ORDER), None]:
        group = groups.get(state)
        if not group:
            continue
        label = state_label(ctx, state) if state else ctx.t("lead.not_registered")
        lines.append("")
        lines.append(ctx.t("lead.group", label=label, count=len(group)))
        lines += [_member_line(ctx, m) for m in group[:MAX_NAMES]]
        if len(group) > MAX_NAMES:
            lines.append(ctx.t("lead.and_more", count=len(group) - MAX_NAMES))
    if not members:
        lines.append(ctx.t("lead.no_members"))
    ctx.ask(
        "\n".join(lines),
        [
            Choice("review", ctx.t("staff.menu.branch_review_plain")),
            Choice("proxy", ctx.t("staff.menu.proxy")),
            Choice("menu", ctx.t("common.to_menu")),
        ],
    )


@router.handle(Leader.MEMBERS)
async def on_members(ctx: Context, inp: Input) -> None:
    if inp.choice == "review":
        await cmd_branch_review(ctx, "")
    elif inp.choice == "proxy":
        await cmd_proxy(ctx, "")
    elif inp.choice == "menu":
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


# ---- acting for a household without a smartphone ----------------------------------------------


@router.command("lamho", "proxy", english="proxy", roles=(Role.LEADER,), help_key=N_("help.cmd.proxy"))
async def cmd_proxy(ctx: Context, args: str) -> None:
    scope = await require(ctx, Role.LEADER)
    if scope is None:
        return
    if ctx.proxy:
        ctx.stop_acting()
    ctx.keep(ProxySearchDraft(text=args.strip()[:60] or None))
    ctx.goto(Leader.PROXY_PICK)


@router.prompt(Leader.PROXY_PICK)
async def ask_proxy_pick(ctx: Context) -> None:
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, Role.LEADER)
    if scope is None:
        ctx.say(ctx.t("staff.not_leader"))
        ctx.goto(Start.MENU)
        return
    search = ctx.draft(ProxySearchDraft).text
    people = await people_for_proxy(ctx.session, scope, search, PROXY_LIST)
    if people:
        key = N_("proxy.pick_search") if search else N_("proxy.pick")
        text = ctx.t(key, search=search or "")
    else:
        key = N_("proxy.pick_none_found") if search else N_("proxy.pick_empty")
        text = ctx.t(key, search=search or "")
    choices = [Choice(f"p{p.id}", ctx.t("proxy.person", name=p.full_name, year=p.birth_year or "?")) for p in people]
    choices += [Choice("new", ctx.t("proxy.new")), Choice("menu", ctx.t("common.to_menu"))]
    ctx.ask(text, choices)


@router.handle(Leader.PROXY_PICK)
async def on_proxy_pick(ctx: Context, inp: Input) -> None:
    choice = inp.choice or ""
    if choice.startswith("p") and choice[1:].isdigit():
        scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, Role.LEADER)
        someone = await ctx.session.get(Person, int(choice[1:]))
        if scope is None or someone is None or someone.deleted_at or not scope.covers(someone.branch_id):
            ctx.retry("proxy.not_in_scope")
            return
        ctx.forget(ProxySearchDraft)
        ctx.act_for(someone)
        ctx.goto(Leader.PROXY_HOME)
    elif choice == "new":
        ctx.forget(ProxySearchDraft)
        ctx.goto(Leader.PROXY_CONSENT)
    elif choice == "menu":
        ctx.forget(ProxySearchDraft)
        ctx.goto(Start.MENU)
    elif inp.text:
        ctx.keep(ProxySearchDraft(text=inp.text[:60]))
        ctx.again()
    else:
        ctx.retry("menu.please_choose")


@router.prompt(Leader.PROXY_CONSENT)
async def ask_proxy_consent(ctx: Context) -> None:
    """The leader reads the consent text to the person (saying that an automated assistant
    keeps the record) and confirms their agreement; it is recorded as given through the leader."""
    text, shown = await consent_notice(ctx)
    ctx.keep(replace(ctx.draft(ProxyDraft), shown=shown.to_json()))
    ctx.ask(
        ctx.t("proxy.consent_ask", notice=text),
        [Choice("yes", ctx.t("proxy.consent_yes")), Choice("no", ctx.t("proxy.consent_no"))],
    )


@router.handle(Leader.PROXY_CONSENT)
async def on_proxy_consent(ctx: Context, inp: Input) -> None:
    if inp.choice == "yes":
        shown = ShownText.from_json(ctx.draft(ProxyDraft).shown) or (await consent_notice(ctx))[1]
        ctx.act_for(None)
        # Recorded when registration creates the person (nobody exists to attach it to yet).
        confirmed = {**shown.to_json(), "at": ctx.now.isoformat()}
        ctx.keep(replace(ctx.draft(ProxyDraft), consent=confirmed, shown=None))
        ctx.forget(RegistrationDraft)  # a new person's registration starts from nothing
        ctx.goto(Reg.TITLE)
    elif inp.choice == "no":
        ctx.keep(replace(ctx.draft(ProxyDraft), shown=None))
        ctx.say(ctx.t("proxy.consent_needed"))
        ctx.goto(Start.MENU)
    else:
        ctx.retry("common.pick_yes_no")


@router.prompt(Leader.PROXY_HOME)
async def ask_proxy_home(ctx: Context) -> None:
    if not ctx.proxy or ctx.subject is None:
        ctx.goto(Start.MENU)
        return
    ctx.ask(
        ctx.t("proxy.home", name=ctx.subject.full_name),
        [
            Choice("declare", ctx.t("menu.declare")),
            Choice("register", ctx.t("menu.register")),
            Choice("status", ctx.t("menu.status")),
            Choice("done", ctx.t("proxy.finish")),
        ],
    )


@router.handle(Leader.PROXY_HOME)
async def on_proxy_home(ctx: Context, inp: Input) -> None:
    match inp.choice:
        case "declare":
            ctx.goto(Decl.CHOOSE)
        case "register":
            ctx.forget(RegistrationDraft)
            ctx.goto(Reg.TITLE)
        case "status":
            ctx.goto(Status.SHOW)
        case "done":
            ctx.goto(Start.MENU)
        case _:
            ctx.retry("menu.please_choose")
