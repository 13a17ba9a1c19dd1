"""Consent that can be proven: the text people agree to, who it names as controller, the rows
that record it, and withdrawing it (/rutlai).

The text lives in the catalogs (`consent.notice`); CONSENT_VERSION names it. Each consent row
keeps that version and the sha256 of the exact words shown (controller filled in, in the locale
shown). Change CONSENT_VERSION whenever `consent.notice` or `reg.guardian_ask` changes in either
language (tests/test_consent.py pins their fingerprints, so a forgotten bump fails there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from bot.flows.context import Context, Input
from bot.flows.drafts import FlatDraft, Record
from bot.flows.router import Router
from bot.flows.states import Consent, MyData, Start
from bot.i18n import N_
from bot.messages import Choice
from bot.storage.commune import communes
from bot.storage.consents import (
    ConsentKind,
    ConsentMethod,
    ShownText,
    fingerprint,
    latest,
    record,
)
from bot.storage.deliveries import restart_conversations
from bot.storage.models import OrgUnit
from bot.storage.people import accounts_of

CONSENT_VERSION = "2026-12"

router = Router()


@dataclass
class PendingCommand(Record):
    """A staff command typed before consent (/duyet and its words): carried out once they agree."""

    command: str = ""
    args: str = ""


@dataclass
class ConsentDraft(FlatDraft):
    """The consent question and what waits for its answer: the text as shown (what "agree" agrees
    to), whether it comes back short (the text is just above), a staff command typed before
    consent, and an invite code typed before consent or before the name it needs."""

    STORED: ClassVar[dict[str, str]] = {
        "shown": "consent_shown",
        "brief": "consent_brief",
        "pending": "after_consent",
        "invite": "invite",
    }
    shown: dict[str, Any] | None = None  # a ShownText's fields
    brief: bool = False
    pending: PendingCommand | None = None
    invite: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        draft = super().from_json(raw)
        if draft.pending is not None:
            draft.pending = PendingCommand.from_json(draft.pending)
        return draft


async def _commune_of(ctx: Context, branch_id: int | None) -> OrgUnit | None:
    """The commune whose association controls this person's data, when it is known: the branch
    being registered in, else the person's own branch (for a branch leader registering someone,
    the leader's); failing that, the only commune installed."""
    if branch_id is None and ctx.person is not None:
        branch_id = ctx.person.branch_id
    if branch_id is not None:
        branch = await ctx.session.get(OrgUnit, branch_id)
        if branch is not None and branch.parent_id is not None:
            commune = await ctx.session.get(OrgUnit, branch.parent_id)
            if commune is not None and commune.kind == "commune":
                return commune
    installed = await communes(ctx.session)
    return installed[0] if len(installed) == 1 else None


async def controller_for(ctx: Context, branch_id: int | None = None) -> str:
    """Who the consent text names as controlling the data.

    The commune's association (from its commune file; "Hội Khuyến học <commune>" if the file
    names none) when the commune is known or only one is installed; otherwise the installation's
    operator (PRIVACY_CONTROLLER); otherwise "the association of the commune you register in"."""
    commune = await _commune_of(ctx, branch_id)
    if commune is None:
        return ctx.app.settings.privacy_controller or ctx.t("privacy.controller_any")
    name = commune.association_name or ctx.t("privacy.controller_default", commune=commune.name)
    if commune.association_contact:
        return ctx.t("privacy.controller_contact", name=name, contact=commune.association_contact)
    return name


async def consent_notice(ctx: Context) -> tuple[str, ShownText]:
    """The consent text in the reader's language, and what identifies it in a consent row."""
    controller = await controller_for(ctx)
    text = ctx.t("consent.notice", controller=controller)
    return text, ShownText(CONSENT_VERSION, fingerprint(text), ctx.locale, controller)


def shown_text(ctx: Context, text: str, controller: str) -> ShownText:
    """Identify another text shown for consent (a guardian's confirmation)."""
    return ShownText(CONSENT_VERSION, fingerprint(text), ctx.locale, controller)


async def give(ctx: Context, shown: ShownText) -> None:
    """The person agreed to `shown`: record it and let processing start (again)."""
    ctx.account.consent_at = ctx.now
    if ctx.person is not None and ctx.person.consent_at is None:
        ctx.person.consent_at = ctx.now
    await record(
        ctx.session,
        ConsentKind.GIVEN,
        ConsentMethod.CHAT,
        shown,
        at=ctx.now,
        person_id=ctx.person.id if ctx.person is not None else None,
        account_id=ctx.account.id,
    )


async def record_withdrawal(ctx: Context, method: ConsentMethod, at: datetime) -> None:
    """Add the withdrawal row, naming the version and controller of the consent it ends."""
    person_id = ctx.person.id if ctx.person is not None else None
    given = await latest(ctx.session, ConsentKind.GIVEN, person_id=person_id, account_id=ctx.account.id)
    row = await record(
        ctx.session,
        ConsentKind.WITHDRAWN,
        method,
        None,
        at=at,
        person_id=person_id,
        account_id=ctx.account.id,
    )
    row.locale = ctx.locale
    if given is not None:
        row.text_version, row.controller = given.text_version, given.controller


async def withdraw(ctx: Context) -> None:
    """Stop processing: consent off on every account of the person, each conversation back to the
    start (nothing more is taken until they agree again), and the withdrawal recorded."""
    await record_withdrawal(ctx, ConsentMethod.CHAT, ctx.now)
    accounts = [ctx.account]
    if ctx.person is not None:
        ctx.person.consent_at = None
        accounts += [a for a in await accounts_of(ctx.session, ctx.person.id) if a.id != ctx.account.id]
    for account in accounts:
        account.consent_at = None
    await restart_conversations(ctx.session, [a.id for a in accounts if a.id != ctx.account.id], Start.NEW)
    ctx.conv.data = {}


# ---- /rutlai --------------------------------------------------------------------------------


def own_data_command(ctx: Context, refusal: str | None, state: str) -> None:
    """Start a flow about the writer's own data (/rutlai, /xoadulieu): say why it cannot start
    (`refusal`, a catalog key) and ask the current question again, or go to `state`, leaving
    proxy mode first (a leader acting for someone withdraws or deletes only their own)."""
    if refusal is not None:
        ctx.retry(refusal)
        return
    if ctx.proxy:
        ctx.stop_acting()
    ctx.goto(state)


@router.command("rutlai", "withdraw", english="withdraw", needs_consent=False, help_key=N_("help.cmd.withdraw"))
async def cmd_withdraw(ctx: Context, args: str) -> None:
    own_data_command(ctx, N_("withdraw.not_given") if ctx.account.consent_at is None else None, Consent.WITHDRAW)


@router.prompt(Consent.WITHDRAW, before_consent=True)
async def ask_withdraw(ctx: Context) -> None:
    choices = [Choice("withdraw", ctx.t("withdraw.confirm"))]
    if ctx.person is not None:
        choices.append(Choice("delete", ctx.t("withdraw.and_delete")))
    choices.append(Choice("keep", ctx.t("withdraw.keep")))
    ctx.ask(ctx.t("withdraw.ask"), choices)


@router.handle(Consent.WITHDRAW, before_consent=True)
async def on_withdraw(ctx: Context, inp: Input) -> None:
    if ctx.account.consent_at is None:  # withdrawn meanwhile (another channel)
        ctx.say(ctx.t("withdraw.not_given"))
        ctx.goto(Start.NEW)
    elif inp.choice == "withdraw":
        await withdraw(ctx)
        ctx.say(ctx.t("withdraw.done", when=ctx.t.datetime(ctx.now)))
        ctx.goto(Start.NEW)
    elif inp.choice == "delete" and ctx.person is not None:
        ctx.goto(MyData.CONFIRM)  # deleting records the withdrawal too
    elif inp.choice == "keep":
        ctx.say(ctx.t("withdraw.kept"))
        ctx.goto(Start.MENU)
    else:
        ctx.retry("withdraw.please_choose")
