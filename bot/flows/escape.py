"""Words that work at every question, handled once for every flow: back ("quay lại"), cancel
("hủy", "thôi", asked before anything is discarded) and help ("tôi không hiểu", "?": the current
question explained with an example). None of them is ever stored as an answer.

"Back" follows the questions this conversation was asked (state and criteria item), within the
flow it is in: a registration question leads back to the previous registration question, an item
of the declaration to the previous item (or its photos).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from bot.flows.context import Context, Input
from bot.flows.drafts import DeclarationDraft, FlatDraft, RegistrationDraft
from bot.flows.router import Router
from bot.flows.start import show_help
from bot.flows.states import Escape, Start
from bot.i18n import N_
from bot.messages import Choice

router = Router()
MAX_TRAIL = 30
# Where cancel and back apply: the steps of a flow (a dotted state), not the menu or consent.
RESTING = ("new", "consent", "menu", "lang", "status", "cancel.confirm")
# Free-text questions explained with their own example (questions with options are explained
# from the options themselves).
FREE_TEXT_HELP = {
    "reg.name": N_("help.q.name"),
    "reg.head_name": N_("help.q.name"),
    "reg.member_name": N_("help.q.name"),
    "reg.birth_year": N_("help.q.year"),
    "reg.head_birth_year": N_("help.q.year"),
    "reg.member_birth_year": N_("help.q.member_year"),
    "rv.note": N_("help.q.note"),
    "invite.redeem": N_("help.q.code"),
}


@dataclass
class EscapeDraft(FlatDraft):
    """The questions asked so far in this flow ([state, item] each: where "back" leads) and the
    question that "cancel" was said at, until the cancel is confirmed or not."""

    STORED: ClassVar[dict[str, str]] = {"trail": "_trail", "cancel_from": "_cancel_from"}
    trail: list[list[Any]] = field(default_factory=list)
    cancel_from: str | None = None


def _position(ctx: Context) -> list:
    return [ctx.state, ctx.draft(DeclarationDraft).item]


def _flow(state: str) -> str:
    return state.split(".", 1)[0]


def remember(ctx: Context) -> None:
    """Called once a question has been asked: the trail back through this flow's questions."""
    draft = ctx.draft(EscapeDraft)
    if ctx.state in RESTING or "." not in ctx.state:
        if ctx.state == "menu" and draft.trail:
            ctx.keep(replace(draft, trail=[]))
        return
    trail = [p for p in draft.trail if _flow(p[0]) == _flow(ctx.state)]
    here = _position(ctx)
    if here in trail:
        trail = trail[: trail.index(here)]  # come back to an earlier question: forget what followed
    trail.append(here)
    ctx.keep(replace(draft, trail=trail[-MAX_TRAIL:]))


async def handle(ctx: Context, word: str) -> bool:
    """Act on an escape word; False when it does not apply here (the handler gets the text)."""
    if word == "help":
        await explain(ctx)
        return True
    if ctx.account.consent_at is None or ctx.state in RESTING or "." not in ctx.state:
        return False
    if word == "back":
        draft = ctx.draft(EscapeDraft)
        trail = [p for p in draft.trail if _flow(p[0]) == _flow(ctx.state)]
        here = _position(ctx)
        while trail and trail[-1] == here:
            trail.pop()
        if not trail:
            ctx.say(ctx.t("escape.first_question"))
            ctx.again()
            return True
        state, item = trail[-1]
        ctx.keep(replace(draft, trail=trail))
        if item is not None:
            ctx.keep(replace(ctx.draft(DeclarationDraft), item=item))
        ctx.goto(state)
        return True
    confirm_cancel(ctx)
    return True


def confirm_cancel(ctx: Context) -> None:
    """Ask before cancelling what the current question belongs to (it is asked again on "no")."""
    ctx.keep(replace(ctx.draft(EscapeDraft), cancel_from=ctx.state))
    ctx.goto(Escape.CANCEL_CONFIRM)


async def explain(ctx: Context) -> None:
    """The current question explained, with an example; then the question again."""
    choices = ctx.current_choices()
    key = FREE_TEXT_HELP.get(ctx.state)
    if choices:
        first = choices[0]
        text = ctx.t("escape.help_choices", example=first.label, count=len(choices))
    elif key is not None:
        text = ctx.t(key)
    else:
        await show_help(ctx)
        return
    if ctx.account.consent_at is not None and ctx.state not in RESTING and "." in ctx.state:
        text += "\n" + ctx.t("escape.help_words")
    ctx.say(text)
    ctx.again()


def ask_which(ctx: Context, candidates: list[Choice]) -> None:
    """Typed text fits several options: list them with their numbers and ask again."""
    numbers = {c.value: index for index, c in enumerate(ctx.current_choices(), start=1)}
    options = "; ".join(f"{numbers.get(c.value, '?')}. {c.label}" for c in candidates)
    ctx.say(ctx.t("escape.which", options=options))
    ctx.again()


def _draft_kind(state: str) -> str:
    return "registration" if _flow(state) == "reg" else "other"


@router.prompt(Escape.CANCEL_CONFIRM)
async def ask_cancel(ctx: Context) -> None:
    origin = ctx.draft(EscapeDraft).cancel_from or "menu"
    key = N_("escape.cancel_registration") if _draft_kind(origin) == "registration" else N_("escape.cancel_other")
    ctx.ask(ctx.t(key), [Choice("yes", ctx.t("escape.cancel_yes")), Choice("no", ctx.t("escape.cancel_no"))])


@router.handle(Escape.CANCEL_CONFIRM)
async def on_cancel(ctx: Context, inp: Input) -> None:
    origin = ctx.draft(EscapeDraft).cancel_from or "menu"
    if inp.choice == "yes":
        ctx.forget(EscapeDraft)
        if _draft_kind(origin) == "registration":
            ctx.forget(RegistrationDraft)  # the draft is what cancelling a registration discards
            ctx.say(ctx.t("reg.cancelled"))
        else:
            ctx.keep(replace(ctx.draft(DeclarationDraft), return_summary=False, pending_photo=None))
            ctx.say(ctx.t("escape.cancelled_other"))
        ctx.goto(Start.MENU)
    elif inp.choice == "no":
        ctx.keep(replace(ctx.draft(EscapeDraft), cancel_from=None))
        ctx.goto(origin)
    else:
        ctx.say(ctx.t("escape.cancel_pick"))
        ctx.again()
