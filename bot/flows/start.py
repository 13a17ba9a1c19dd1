"""First contact, consent, main menu, help, language and privacy."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from bot.domain.lifecycle import EDITABLE, State
from bot.domain.roles import Role
from bot.flows.common import editable_submissions, my_submissions
from bot.flows.consent import ConsentDraft, PendingCommand, consent_notice, controller_for, give
from bot.flows.context import Context, Input
from bot.flows.drafts import DeclarationDraft, FlatDraft
from bot.flows.guards import has_role, staff_menu_choices
from bot.flows.router import Router
from bot.flows.states import Decl, Invite, Reg, Start, Status
from bot.i18n import N_
from bot.messages import Choice
from bot.storage.consents import ShownText
from bot.storage.submissions import last_request_note

router = Router()


@dataclass
class LanguageDraft(FlatDraft):
    """Where choosing the language returns to (the state it was asked from)."""

    STORED: ClassVar[dict[str, str]] = {"back": "_return"}
    back: str | None = None


@router.prompt(Start.NEW, before_consent=True)
async def prompt_new(ctx: Context) -> None:
    """Resting state before consent (or after declining): nothing to ask until they write."""


@router.handle(Start.NEW, before_consent=True)
async def on_new(ctx: Context, inp: Input) -> None:
    ctx.welcome()
    ctx.goto(Start.CONSENT)


@router.prompt(Start.CONSENT, before_consent=True)
async def ask_consent(ctx: Context) -> None:
    """The whole consent text, with an explicit choice (nothing is pre-selected). After "details"
    or an unclear answer the question comes back short: the text is just above."""
    draft = ctx.draft(ConsentDraft)
    if draft.brief and ShownText.from_json(draft.shown) is not None:
        ctx.keep(replace(draft, brief=False))
        question = ctx.t("consent.ask_brief")
    else:
        text, shown = await consent_notice(ctx)
        ctx.keep(replace(draft, shown=shown.to_json()))
        question = ctx.t("consent.ask", notice=text)
    ctx.ask(
        question,
        [
            Choice("agree", ctx.t("consent.agree")),
            Choice("decline", ctx.t("consent.decline")),
            Choice("details", ctx.t("consent.details")),
        ],
    )


@router.handle(Start.CONSENT, before_consent=True)
async def on_consent(ctx: Context, inp: Input) -> None:
    if inp.choice == "agree":
        # What they agreed to is the text last shown to them (kept with the question).
        draft = ctx.draft(ConsentDraft)
        shown = ShownText.from_json(draft.shown) or (await consent_notice(ctx))[1]
        # Only an invite code stays: Invite.REDEEM uses it.
        ctx.keep(ConsentDraft(invite=draft.invite))
        await give(ctx, shown)
        ctx.say(ctx.t("consent.thanks"))
        if draft.pending is not None and not draft.invite and await _run_pending(ctx, draft.pending):
            return
        if draft.invite:
            ctx.goto(Invite.REDEEM)  # they came with an invite code: use it now
        elif await my_submissions(ctx) or await has_role(ctx, (Role.LEADER, Role.OFFICER, Role.PROVINCE)):
            ctx.goto(Start.MENU)
        else:
            ctx.goto(Reg.TITLE)
    elif inp.choice == "decline":
        # Nothing personal is taken: no person row, no answers, an empty conversation.
        ctx.conv.data = {}
        if ctx.person is not None:
            # Agreed once, withdrew, and does not agree again: what is stored stays unused.
            ctx.say(ctx.t("consent.declined_registered"))
        else:
            ctx.say(ctx.t("consent.declined"))
        ctx.goto(Start.NEW)
    elif inp.choice == "details":
        ctx.say(ctx.t("privacy.text", controller=await controller_for(ctx)))
        ctx.keep(replace(ctx.draft(ConsentDraft), brief=True))
        ctx.again()
    else:
        ctx.say(ctx.t("consent.please_choose"))
        ctx.keep(replace(ctx.draft(ConsentDraft), brief=True))
        ctx.again()


async def _run_pending(ctx: Context, pending: PendingCommand) -> bool:
    """The command a staff member typed before agreeing, now carried out; False if none fits."""
    spec = next((c for c in ctx.commands if pending.command in c.names), None)
    if spec is None or not spec.roles or not await has_role(ctx, spec.roles):
        return False
    await spec.handler(ctx, pending.args)
    return True


@router.command("start", "batdau", needs_consent=False, help_key=N_("help.cmd.start"))
async def cmd_start(ctx: Context, args: str) -> None:
    if ctx.account.consent_at is None:
        ctx.welcome()
        ctx.goto(Start.CONSENT)
        return
    ctx.say(ctx.t("start.welcome_back"))
    ctx.goto(Start.MENU)


@router.prompt(Start.MENU)
async def ask_menu(ctx: Context) -> None:
    if ctx.proxy:
        # Back to the leader's own menu: acting for someone ends here.
        ctx.say(ctx.t("proxy.done", name=ctx.stop_acting()))
    submissions = await my_submissions(ctx)
    editable = [s for s in submissions if State(s.state) in EDITABLE]  # as editable_submissions, not read twice
    needs_info = [s for s in editable if s.state == State.NEEDS_INFO.value]
    lines = []
    for submission in needs_info:
        event = await last_request_note(ctx.session, submission.id)
        lines.append(ctx.t("menu.needs_info", reference=submission.reference, note=event.note if event else ""))
    lines.append(ctx.t("menu.ask"))
    choices = []
    if needs_info:
        choices.append(Choice("answer_request", ctx.t("menu.answer_request")))
    if len(editable) > len(needs_info):
        choices.append(Choice("declare", ctx.t("menu.declare")))
    choices.append(Choice("register", ctx.t("menu.register")))
    if submissions:
        choices.append(Choice("status", ctx.t("menu.status")))
    choices += await staff_menu_choices(ctx)
    choices.append(Choice("help", ctx.t("menu.help")))
    choices.append(Choice("lang", ctx.t("menu.lang")))
    ctx.ask("\n\n".join(lines), choices)


@router.handle(Start.MENU)
async def on_menu(ctx: Context, inp: Input) -> None:
    match inp.choice:
        case "register":
            ctx.keep(ctx.draft(DeclarationDraft).left())
            ctx.goto(Reg.TITLE)
        case "declare":
            ctx.goto(Decl.CHOOSE)
        case "answer_request":
            needs_info = [s for s in await editable_submissions(ctx) if s.state == State.NEEDS_INFO.value]
            ctx.keep(replace(ctx.draft(DeclarationDraft), sub=needs_info[0].id))
            ctx.goto(Decl.SUMMARY)
        case "status":
            ctx.goto(Status.SHOW)
        case "help":
            await show_help(ctx)
        case "lang":
            ctx.keep(LanguageDraft(back=Start.MENU))
            ctx.goto(Start.LANG)
        case _:
            ctx.retry("menu.please_choose")


async def show_help(ctx: Context) -> None:
    lines = [ctx.t("help.intro")]
    for spec in ctx.commands:
        if spec.help_key and (not spec.roles or await has_role(ctx, spec.roles)):
            lines.append(f"/{spec.name_for(ctx.locale)} — {ctx.t(spec.help_key)}")
    lines.append(ctx.t("help.outro"))
    ctx.say("\n".join(lines))
    ctx.again()


@router.command("huongdan", "help", "trogiup", english="help", needs_consent=False, help_key=N_("help.cmd.help"))
async def cmd_help(ctx: Context, args: str) -> None:
    await show_help(ctx)


@router.command("menu", help_key=N_("help.cmd.menu"))
async def cmd_menu(ctx: Context, args: str) -> None:
    ctx.goto(Start.MENU)


@router.command("huy", "cancel", english="cancel", help_key=N_("help.cmd.cancel"))
async def cmd_cancel(ctx: Context, args: str) -> None:
    ctx.say(ctx.t("common.cancelled"))
    ctx.goto(Start.MENU)


@router.command("baomat", "privacy", english="privacy", needs_consent=False, help_key=N_("help.cmd.privacy"))
async def cmd_privacy(ctx: Context, args: str) -> None:
    text, _shown = await consent_notice(ctx)
    ctx.say(text + "\n\n" + ctx.t("privacy.text", controller=await controller_for(ctx)))
    ctx.again()


@router.command("ngonngu", "lang", "language", english="lang", needs_consent=False, help_key=N_("help.cmd.lang"))
async def cmd_lang(ctx: Context, args: str) -> None:
    if ctx.state != Start.LANG:
        ctx.keep(LanguageDraft(back=ctx.state))
    ctx.goto(Start.LANG)


@router.prompt(Start.LANG, before_consent=True)
async def ask_lang(ctx: Context) -> None:
    ctx.ask(
        ctx.t("lang.ask"),
        [Choice("vi", ctx.t("lang.name_vi")), Choice("en", ctx.t("lang.name_en"))],
    )


@router.handle(Start.LANG, before_consent=True)
async def on_lang(ctx: Context, inp: Input) -> None:
    if inp.choice not in ("vi", "en"):
        ctx.retry("lang.please_choose")
        return
    ctx.account.locale = inp.choice
    if ctx.person is not None:
        ctx.person.locale = inp.choice
    ctx.say(ctx.t("lang.changed"))
    back = ctx.draft(LanguageDraft).back
    ctx.forget(LanguageDraft)
    if not back or back == Start.LANG:
        back = Start.MENU if ctx.account.consent_at else Start.NEW
    if back == Start.NEW:
        ctx.welcome()
        back = Start.CONSENT
    ctx.goto(back)
