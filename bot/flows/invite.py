"""Invite codes in chat: an officer creates one (/moi), the future leader or officer types it
(/ma ABCD-2345, or just "ma ABCD-2345" or the code alone) and receives the role."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import ClassVar

from bot.flows.common import read_name
from bot.flows.consent import ConsentDraft
from bot.flows.context import Context, Input
from bot.flows.drafts import Draft, FlatDraft
from bot.flows.guards import require
from bot.flows.router import Router
from bot.flows.states import Invite, Start
from bot.i18n import N_
from bot.messages import Choice, Outgoing
from bot.review.invites import (
    DEFAULT_TTL,
    InviteError,
    NotAllowed,
    create_invite,
    failures_since,
    find_invite,
    looks_like_code,
    normalise_code,
    record_failure,
    redeem,
)
from bot.review.roles import GrantRow, NotRevocable, revocable_grants, revoke_grant
from bot.review.scope import branches_in, communes_in_scope, scope_for
from bot.storage.consents import attach_person
from bot.storage.models import OrgUnit, Person
from bot.storage.people import Role
from bot.text import fold

router = Router()
MAX_FAILURES_PER_DAY = 5
ROLE_KEYS = {Role.LEADER: N_("role.leader"), Role.OFFICER: N_("role.officer"), Role.ADMIN: N_("role.admin")}
INVITE_ERROR_KEYS = {
    "unknown": N_("invite.error.unknown"),
    "expired": N_("invite.error.expired"),
    "used": N_("invite.error.used"),
    "revoked": N_("invite.error.revoked"),
}
CODE_WORDS = {"ma", "code"}


@dataclass
class InviteDraft(Draft):
    """The invite being created: the role it gives (its unit is asked next)."""

    KEY: ClassVar[str] = "inv"
    role: str | None = None

    @property
    def chosen(self) -> Role:
        return Role(self.role or Role.LEADER.value)


@dataclass
class RevokeDraft(FlatDraft):
    """The role grant picked for removal, until confirmed."""

    STORED: ClassVar[dict[str, str]] = {"grant": "revoke"}
    grant: int | None = None


@router.bare
def _typed_code(text: str) -> tuple[str, str] | None:
    """'ma ABCD-2345', 'Mã: abcd 2345' or the code alone, as people type it without the slash.
    Strict on purpose: a name such as "Ma Văn Tài" is not a code and stays a name."""
    code = looks_like_code(text)
    if code is not None:
        return "ma", code
    head, _, rest = text.strip().partition(" ")
    if fold(head) in CODE_WORDS and rest:
        code = normalise_code(rest.lstrip(":").strip())
        if code is not None:
            return "ma", code
    return None


# ---- creating codes ---------------------------------------------------------------------------


@router.command("moi", "invite", english="invite", roles=(Role.OFFICER,), help_key=N_("help.cmd.invite"))
async def cmd_invite(ctx: Context, args: str) -> None:
    scope = await require(ctx, Role.OFFICER)
    if scope is None:
        return
    words = fold(args).split()
    if words and words[0] in ("leader", "chihoi", "chi", "truong", "chihoitruong"):
        ctx.keep(InviteDraft(role=Role.LEADER.value))
        ctx.goto(Invite.UNIT)
    elif words and words[0] in ("officer", "canbo", "xa", "can"):
        ctx.keep(InviteDraft(role=Role.OFFICER.value))
        ctx.goto(Invite.UNIT)
    else:
        ctx.keep(InviteDraft())
        ctx.goto(Invite.ROLE)


@router.prompt(Invite.ROLE)
async def ask_invite_role(ctx: Context) -> None:
    ctx.ask(
        ctx.t("inv.ask_role"),
        [
            Choice(Role.LEADER.value, ctx.t("role.leader")),
            Choice(Role.OFFICER.value, ctx.t("role.officer")),
            Choice("menu", ctx.t("common.to_menu")),
        ],
    )


@router.handle(Invite.ROLE)
async def on_invite_role(ctx: Context, inp: Input) -> None:
    if inp.choice in (Role.LEADER.value, Role.OFFICER.value):
        ctx.keep(InviteDraft(role=inp.choice))
        ctx.goto(Invite.UNIT)
    elif inp.choice == "menu":
        ctx.forget(InviteDraft)
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


async def _units(ctx: Context, role: Role) -> list[OrgUnit]:
    """Where this officer may invite someone: branches (for leaders) or their communes."""
    if ctx.person is None:
        return []
    communes = await communes_in_scope(ctx.session, ctx.person.id)
    if role == Role.OFFICER:
        return communes
    scope = await scope_for(ctx.session, ctx.person.id, Role.OFFICER)
    return await branches_in(ctx.session, scope) if scope else []


@router.prompt(Invite.UNIT)
async def ask_invite_unit(ctx: Context) -> None:
    role = ctx.draft(InviteDraft).chosen
    units = await _units(ctx, role)
    if not units:
        ctx.say(ctx.t("staff.not_officer"))
        ctx.goto(Start.MENU)
        return
    if len(units) == 1:
        await _create(ctx, role, units[0])
        return
    key = N_("inv.ask_branch") if role == Role.LEADER else N_("inv.ask_commune")
    ctx.ask(ctx.t(key), [*(Choice(f"u{u.id}", u.name) for u in units), Choice("back", ctx.t("common.back"))])


@router.handle(Invite.UNIT)
async def on_invite_unit(ctx: Context, inp: Input) -> None:
    role = ctx.draft(InviteDraft).chosen
    choice = inp.choice or ""
    if choice == "back":
        ctx.goto(Invite.ROLE)
        return
    units = {f"u{u.id}": u for u in await _units(ctx, role)}
    if choice not in units:
        ctx.retry("menu.please_choose")
        return
    await _create(ctx, role, units[choice])


async def _create(ctx: Context, role: Role, unit: OrgUnit) -> None:
    try:
        created = await create_invite(ctx.session, role=role, scope=unit, created_by=ctx.person, now=ctx.now)
    except NotAllowed:
        ctx.say(ctx.t("staff.not_officer"))
        ctx.goto(Start.MENU)
        return
    expires = created.invite.expires_at.astimezone(ctx.app.settings.tz)
    role_key = ROLE_KEYS[role]
    # The code itself never reaches the database: if this reply has to be resent after a crash,
    # the resend says that a new code is needed instead.
    ctx.replies.append(
        Outgoing(
            text=ctx.t(
                "inv.created",
                code=created.code,
                role=ctx.t(role_key),
                unit=unit.name,
                date=ctx.t.date(expires.date()),
                days=DEFAULT_TTL.days,
            ),
            stored_text=ctx.t("inv.created_not_kept"),
        )
    )
    ctx.forget(InviteDraft)
    ctx.goto(Start.MENU)


# ---- redeeming a code -------------------------------------------------------------------------


@router.command("ma", "code", english="code", needs_consent=False, help_key=N_("help.cmd.code"))
async def cmd_code(ctx: Context, args: str) -> None:
    if not args.strip():
        ctx.retry("invite.how")
        return
    person_id = ctx.person.id if ctx.person is not None else None
    day_start = datetime.combine(ctx.today, time(0), tzinfo=ctx.app.settings.tz)
    if await failures_since(ctx.session, ctx.account.id, person_id, day_start) >= MAX_FAILURES_PER_DAY:
        ctx.retry("invite.too_many")
        return
    try:
        await find_invite(ctx.session, args, ctx.now)
    except InviteError as error:
        await record_failure(ctx.session, ctx.account.id, person_id, ctx.now)
        key = INVITE_ERROR_KEYS[error.reason]
        ctx.retry(key)
        return
    ctx.keep(replace(ctx.draft(ConsentDraft), invite=normalise_code(args)))
    if ctx.account.consent_at is None:
        # Storing a name needs consent first; the code waits in the conversation meanwhile.
        ctx.say(ctx.t("invite.consent_first"))
        ctx.goto(Start.CONSENT)
        return
    ctx.goto(Invite.REDEEM)


@router.prompt(Invite.REDEEM)
async def ask_redeem(ctx: Context) -> None:
    """Use the waiting code: ask the person's name first if the bot does not know them yet."""
    if not ctx.draft(ConsentDraft).invite:
        ctx.goto(Start.MENU)
        return
    if ctx.person is None:
        ctx.ask(ctx.t("invite.ask_name"))
        return
    await _redeem(ctx, ctx.person)


@router.handle(Invite.REDEEM)
async def on_redeem_name(ctx: Context, inp: Input) -> None:
    name = read_name(ctx, inp)
    if name is None:
        return
    person = Person(full_name=name, locale=ctx.locale, consent_at=ctx.account.consent_at, created_at=ctx.now)
    ctx.session.add(person)
    await ctx.session.flush()
    ctx.account.person_id = person.id
    ctx.person = person
    await attach_person(ctx.session, ctx.account.id, person.id)
    await _redeem(ctx, person)


async def _redeem(ctx: Context, person: Person) -> None:
    waiting = ctx.draft(ConsentDraft)
    ctx.keep(replace(waiting, invite=None))
    try:
        invite = await find_invite(ctx.session, waiting.invite or "", ctx.now)
        grant = await redeem(ctx.session, invite, person, ctx.now)
    except InviteError as error:
        key = INVITE_ERROR_KEYS[error.reason]
        ctx.say(ctx.t(key))
        ctx.goto(Start.MENU)
        return
    unit = await ctx.session.get(OrgUnit, grant.scope_unit_id) if grant.scope_unit_id else None
    role_key = ROLE_KEYS[Role(grant.role)]
    if grant.role == Role.LEADER.value and unit is not None and person.branch_id is None:
        person.branch_id = unit.id
    ctx.say(ctx.t("invite.done", role=ctx.t(role_key), unit=unit.name if unit else "-"))
    ctx.goto(Start.MENU)


# ---- removing a role (/thuhoi) ----------------------------------------------------------------


@router.command("thuhoi", "revoke", english="revoke", roles=(Role.OFFICER,), help_key=N_("help.cmd.revoke"))
async def cmd_revoke(ctx: Context, args: str) -> None:
    if await require(ctx, Role.OFFICER) is None:
        return
    ctx.goto(Invite.REVOKE_PICK)


def _grant_label(ctx: Context, row: GrantRow) -> str:
    role = ctx.t(ROLE_KEYS[row.role])
    return ctx.t("rev.grant", name=row.person_name, role=role, scope=row.scope_name or "")


@router.prompt(Invite.REVOKE_PICK)
async def ask_revoke_pick(ctx: Context) -> None:
    rows = await revocable_grants(ctx.session, ctx.person.id) if ctx.person else []
    if not rows:
        ctx.say(ctx.t("rev.none"))
        ctx.goto(Start.MENU)
        return
    choices = [Choice(f"g{row.grant_id}", _grant_label(ctx, row)) for row in rows]
    ctx.ask(ctx.t("rev.ask"), [*choices, Choice("menu", ctx.t("common.to_menu"))])


@router.handle(Invite.REVOKE_PICK)
async def on_revoke_pick(ctx: Context, inp: Input) -> None:
    if inp.choice and inp.choice.startswith("g") and inp.choice[1:].isdigit():
        ctx.keep(RevokeDraft(grant=int(inp.choice[1:])))
        ctx.goto(Invite.REVOKE_CONFIRM)
    elif inp.choice == "menu":
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")


@router.prompt(Invite.REVOKE_CONFIRM)
async def ask_revoke_confirm(ctx: Context) -> None:
    grant_id = ctx.draft(RevokeDraft).grant
    rows = {row.grant_id: row for row in await revocable_grants(ctx.session, ctx.person.id)} if ctx.person else {}
    row = rows.get(grant_id) if grant_id is not None else None
    if row is None:
        ctx.forget(RevokeDraft)
        ctx.say(ctx.t("rev.gone"))
        ctx.goto(Start.MENU)
        return
    ctx.ask(
        ctx.t("rev.confirm", grant=_grant_label(ctx, row)),
        [Choice("yes", ctx.t("rev.yes")), Choice("no", ctx.t("rev.no"))],
    )


@router.handle(Invite.REVOKE_CONFIRM)
async def on_revoke_confirm(ctx: Context, inp: Input) -> None:
    grant_id = ctx.draft(RevokeDraft).grant
    if inp.choice == "yes":
        ctx.forget(RevokeDraft)
        try:
            if grant_id is None:  # the choice outlived its conversation data
                raise NotRevocable(grant_id)
            grant = await revoke_grant(ctx.session, int(grant_id), ctx.person.id if ctx.person else -1, ctx.now)
        except NotRevocable:
            ctx.say(ctx.t("rev.gone"))
        else:
            person = await ctx.session.get(Person, grant.person_id)
            ctx.say(ctx.t("rev.done", name=person.full_name if person else "", role=ctx.t(ROLE_KEYS[Role(grant.role)])))
        ctx.goto(Start.MENU)
    elif inp.choice == "no":
        ctx.forget(RevokeDraft)
        ctx.say(ctx.t("rev.cancelled"))
        ctx.goto(Start.MENU)
    else:
        ctx.say(ctx.t("menu.please_choose"))
        ctx.again()
