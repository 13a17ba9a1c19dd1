"""/sodienthoai: a phone number for ZNS reminders — optional, with its own consent line, skippable.

When the Zalo OA can no longer write to someone (they have not written for a while), a reminder
can still reach them as a Zalo-approved template (ZNS) sent to their phone number, if they gave
one for this purpose. Only offered where ZNS is set up and ZALO_ZNS_ASK_PHONE is on. The number
is kept as a "zns" channel account of the person (removed with their data, or here on request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.flows.common import menu_choice
from bot.flows.context import Context, Input
from bot.flows.drafts import FlatDraft
from bot.flows.router import Router
from bot.flows.states import Start, ZnsPhone
from bot.messages import Choice
from bot.storage.consents import ConsentKind, ConsentMethod, ShownText, fingerprint, record
from bot.storage.models import ChannelAccount
from bot.storage.people import forget_phone, get_or_create_account, phone_account
from bot.zalo.zns import normalise_phone, phone_id

router = Router()
ZNS_CHANNEL = "zns"
PURPOSE = ("zns_reminders",)
TEXT_VERSION = "zns-phone-1"


@dataclass
class PhoneDraft(FlatDraft):
    """The fingerprint of the consent line shown: what giving a number agrees to."""

    STORED: ClassVar[dict[str, str]] = {"fingerprint": "phone_text"}
    fingerprint: str | None = None


def offered(ctx: Context) -> bool:
    settings = ctx.app.settings
    return bool(settings.zalo_zns_ask_phone and settings.zalo_zns_templates and settings.zalo_oa_app_id)


async def offer_after_registration(ctx: Context) -> None:
    """Once registered, say (once) that a phone number lets the association reach them by ZNS,
    where the commune asks for numbers and they have given none."""
    if offered(ctx) and not ctx.proxy and ctx.person is not None and await _phone_account(ctx) is None:
        ctx.say(ctx.t("phone.offer"))


def _person_id(ctx: Context) -> int:
    """The registered person (the command lets nobody else in)."""
    assert ctx.person is not None
    return ctx.person.id


async def _phone_account(ctx: Context) -> ChannelAccount | None:
    if ctx.person is None:
        return None
    return await phone_account(ctx.session, _person_id(ctx), ZNS_CHANNEL)


# Not in the help or the command menus: it is offered only where ZNS is set up.
@router.command("sodienthoai", "phone", english="phone")
async def cmd_phone(ctx: Context, args: str) -> None:
    if not offered(ctx) or ctx.person is None:
        ctx.say(ctx.t("phone.not_used"))
        ctx.goto(Start.MENU)
        return
    ctx.goto(ZnsPhone.CONSENT)


@router.prompt(ZnsPhone.CONSENT)
async def ask_consent(ctx: Context) -> None:
    current = await _phone_account(ctx)
    text = ctx.t("phone.consent")
    ctx.keep(PhoneDraft(fingerprint=fingerprint(text)))
    choices = [Choice("yes", ctx.t("phone.agree")), Choice("skip", ctx.t("phone.skip"))]
    if current is not None:
        current_line = ctx.t("phone.current", last=current.external_id[-3:])
        text = f"{current_line}\n\n{text}"
        choices.append(Choice("remove", ctx.t("phone.remove")))
    ctx.ask(text, choices)


@router.handle(ZnsPhone.CONSENT)
async def on_consent(ctx: Context, inp: Input) -> None:
    if inp.choice == "yes":
        ctx.goto(ZnsPhone.NUMBER)
    elif inp.choice == "remove":
        await forget_phone(ctx.session, _person_id(ctx), ZNS_CHANNEL)
        ctx.forget(PhoneDraft)
        ctx.say(ctx.t("phone.removed"))
        ctx.goto(Start.MENU)
    elif inp.choice == "skip":
        ctx.forget(PhoneDraft)
        ctx.say(ctx.t("phone.skipped"))
        ctx.goto(Start.MENU)
    else:
        ctx.say(ctx.t("menu.please_choose"))
        ctx.again()


@router.prompt(ZnsPhone.NUMBER)
async def ask_number(ctx: Context) -> None:
    ctx.ask(ctx.t("phone.ask"), [Choice("skip", ctx.t("phone.skip")), menu_choice(ctx)])


@router.handle(ZnsPhone.NUMBER)
async def on_number(ctx: Context, inp: Input) -> None:

    if inp.choice in ("skip", "menu"):
        ctx.forget(PhoneDraft)
        ctx.say(ctx.t("phone.skipped"))
        ctx.goto(Start.MENU)
        return
    phone = normalise_phone(inp.text or "")
    if phone is None:
        ctx.say(ctx.t("phone.invalid"))
        ctx.again()
        return
    now = ctx.now
    await forget_phone(ctx.session, _person_id(ctx), ZNS_CHANNEL)
    account = await get_or_create_account(ctx.session, ZNS_CHANNEL, phone_id(phone), None, now)
    if account.person_id not in (None, _person_id(ctx)):
        ctx.say(ctx.t("phone.taken"))
        ctx.again()
        return
    account.person_id, account.consent_at, account.locale = _person_id(ctx), now, ctx.account.locale
    shown = ShownText(TEXT_VERSION, ctx.draft(PhoneDraft).fingerprint or "", ctx.locale, "")
    await record(
        ctx.session,
        ConsentKind.GIVEN,
        ConsentMethod.CHAT,
        shown,
        at=now,
        person_id=_person_id(ctx),
        account_id=account.id,
        purposes=PURPOSE,
    )
    ctx.forget(PhoneDraft)
    ctx.say(ctx.t("phone.saved", last=phone[-3:]))
    ctx.goto(Start.MENU)
