"""Who may use the staff commands: the guards every staff flow starts with, and the entries the
main menu adds for leaders and officers."""

from __future__ import annotations

from bot.domain.lifecycle import State
from bot.domain.roles import Role
from bot.flows.context import Context
from bot.i18n import N_
from bot.messages import Choice, command_action
from bot.review.queries import Filters, pending
from bot.review.scope import Scope, provinces_in_scope, scope_for
from bot.storage.people import live_grants

REFUSAL_KEYS = {
    Role.LEADER: N_("staff.not_leader"),
    Role.OFFICER: N_("staff.not_officer"),
}
# What waits for each role's review, in the order its list shows.
QUEUE_STATES = {
    Role.LEADER: (State.SUBMITTED,),
    Role.OFFICER: (State.RECOMMENDED, State.NOT_RECOMMENDED, State.SUBMITTED),
}
BRANCH_REVIEW = command_action("binhxet")
MEMBERS = command_action("thanhvien")
PROXY = command_action("lamho")
REVIEW = command_action("duyet")
STATS = command_action("thongke")
EXPORT = command_action("xuat")
PROVINCE_REPORT = command_action("baocaotinh")


async def require(ctx: Context, role: Role) -> Scope | None:
    """The person's scope in `role`, or None after telling them the command is not for them."""
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, role)
    if scope is None:
        ctx.retry(REFUSAL_KEYS[role])
    return scope


async def has_role(ctx: Context, roles: tuple[Role, ...]) -> bool:
    """Whether the person holds one of `roles` (an admin holds them all)."""
    if ctx.person is None:
        return False
    wanted = {*roles, Role.ADMIN}
    return any(g.role in wanted for g in await live_grants(ctx.session, ctx.person.id))


async def staff_menu_choices(ctx: Context) -> list[Choice]:
    """Entries the main menu adds for leaders and officers: each opens its command."""
    if ctx.person is None:
        return []
    choices = []
    leader = await scope_for(ctx.session, ctx.person.id, Role.LEADER)
    officer = await scope_for(ctx.session, ctx.person.id, Role.OFFICER)
    if leader is not None:
        waiting = (await pending(ctx.session, leader, QUEUE_STATES[Role.LEADER], Filters(), limit=0)).total
        choices.append(Choice(BRANCH_REVIEW, ctx.t("staff.menu.branch_review", count=waiting)))
        choices.append(Choice(MEMBERS, ctx.t("staff.menu.members")))
        choices.append(Choice(PROXY, ctx.t("staff.menu.proxy")))
    if officer is not None:
        waiting = (await pending(ctx.session, officer, QUEUE_STATES[Role.OFFICER], Filters(), limit=0)).total
        choices.append(Choice(REVIEW, ctx.t("staff.menu.review", count=waiting)))
        choices.append(Choice(STATS, ctx.t("staff.menu.stats")))
        choices.append(Choice(EXPORT, ctx.t("staff.menu.export")))
    elif await provinces_in_scope(ctx.session, ctx.person.id):  # the province role: reading only
        choices.append(Choice(PROVINCE_REPORT, ctx.t("staff.menu.province")))
        choices.append(Choice(STATS, ctx.t("staff.menu.stats")))
        choices.append(Choice(EXPORT, ctx.t("staff.menu.export")))
    return choices
