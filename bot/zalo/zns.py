"""ZNS (Zalo Notification Service): a Zalo-approved template message, for the annual reminders
of people the OA can no longer write to (more than 48 hours, or 7 days, since they last wrote).

Two routes, both with the OA's access token:
- by phone number, which the person gave with their consent for this purpose:
  `POST business.openapi.zalo.me/message/template {phone, template_id, template_data, tracking_id}`;
- by Zalo user id, to an OA follower, for templates that allow it (ZALO_ZNS_BY_UID):
  `POST openapi.zalo.me/v3.0/oa/message/template {user_id, …}`.

A ZNS route is a channel account of its own (channel "zns", external id "phone:84…" or
"uid:<OA user id>"), so the outbox sends, paces and retries it like any chat. Templates (id and
which of our values fills each template parameter) are set per commune in ZALO_ZNS_TEMPLATES.
Zalo refuses ZNS at night (22:00-06:00, error -133): such a message waits for the morning. A
person who turned ZNS off in Zalo (-141) is not written to by ZNS again.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from bot.app import App
from bot.channels.base import RateLimited, SendError, TransientSendError, Unreachable
from bot.messages import Outgoing
from bot.storage.models import ChannelAccount, OrgUnit, Person
from bot.zalo.errors import (
    TokenRefreshError,
    ZaloAPIError,
    ZaloAuthError,
    ZaloBillingError,
    ZaloNetworkError,
    ZaloPermissionError,
    ZaloRateLimited,
)
from bot.zalo.oa import ZaloOAClient

log = logging.getLogger(__name__)

ZNS_CHANNEL = "zns"
PHONE_PATH = "/message/template"
UID_PATH = "/v3.0/oa/message/template"
NIGHT_START, NIGHT_END = time(22, 0), time(6, 0)
OPT_OUT = -141  # the person turned off ZNS messages from businesses
AT_NIGHT = -133  # sent between 22:00 and 06:00
VALUES = ("name", "reference", "due_date", "days_left", "year")
PHONE = re.compile(r"^(?:\+?84|0)(\d{9})$")


def normalise_phone(text: str) -> str | None:
    """A Vietnamese mobile number as Zalo wants it (84xxxxxxxxx), or None."""
    digits = re.sub(r"[\s.\-()]", "", text or "")
    match = PHONE.fullmatch(digits)
    if match is None or match.group(1)[0] not in "35789":
        return None
    return "84" + match.group(1)


def phone_id(phone: str) -> str:
    return f"phone:{phone}"


def uid_id(user_id: str) -> str:
    return f"uid:{user_id}"


def until_morning(now: datetime, tz) -> float | None:
    """Seconds until 06:00 when `now` is in ZNS's night (22:00-06:00), else None."""
    local = now.astimezone(tz)
    if NIGHT_END <= local.time() < NIGHT_START:
        return None
    morning = local.replace(hour=NIGHT_END.hour, minute=0, second=0, microsecond=0)
    if local.time() >= NIGHT_START:
        morning += timedelta(days=1)
    return max(60.0, (morning - local).total_seconds())


def values_of(notice: Any) -> dict[str, Any]:
    """Our values a template may use, from a reminder notice's parameters."""
    params = getattr(notice, "params", None) or {}
    values: dict[str, Any] = {"name": params.get("name") or "", "year": params.get("year") or ""}
    raw_deadline = params.get("deadline")
    deadline: dict[str, Any] = raw_deadline if isinstance(raw_deadline, dict) else {}
    date_value = ((deadline.get("params") or {}).get("date") or {}).get("date")
    if date_value:
        year, month, day = date_value.split("-")
        values["due_date"] = f"{day}/{month}/{year}"
        values["year"] = values["year"] or int(year)
    values["days_left"] = int(deadline.get("count") or 0)
    raw_lines = params.get("lines")
    lines: list[Any] = (raw_lines.get("lines") or []) if isinstance(raw_lines, dict) else []
    references = [line.get("params", {}).get("reference") for line in lines if isinstance(line, dict)]
    values["reference"] = next((r for r in references if r), "")
    return values


class ZNSSender:
    """The "zns" channel: sends queued reminders as template messages (ChannelSender)."""

    channel = ZNS_CHANNEL

    def __init__(self, app: App, phone_client: ZaloOAClient, uid_client: ZaloOAClient) -> None:
        self.app = app
        self.phone_client = phone_client
        self.uid_client = uid_client

    async def send(self, account: ChannelAccount, replies: list[Outgoing]) -> None:
        raise SendError(
            "ZNS carries only approved templates: nothing but queued reminders goes this way", category="permission"
        )

    async def template_for(self, account: ChannelAccount) -> dict[str, Any]:
        templates = self.app.settings.zalo_zns_templates
        commune_code = None
        if account.person_id is not None:
            async with self.app.sessions() as session:
                person = await session.get(Person, account.person_id)
                unit = await session.get(OrgUnit, person.branch_id) if person and person.branch_id else None
                while unit is not None and unit.kind != "commune":
                    unit = await session.get(OrgUnit, unit.parent_id) if unit.parent_id else None
                commune_code = unit.code if unit is not None else None
        template = templates.get(commune_code or "") or templates.get("*")
        if template is None:
            raise SendError(f"no ZNS template for commune {commune_code}", category="permission")
        return template

    async def send_queued(self, account: ChannelAccount, outgoing: Outgoing, notice: Any = None) -> None:
        settings = self.app.settings
        wait = until_morning(self.app.clock.now(), settings.tz)
        if wait is not None:
            raise RateLimited(wait, "ZNS is not sent between 22:00 and 06:00")
        template = await self.template_for(account)
        values = values_of(notice)
        data = {param: str(values.get(ours, "")) for param, ours in (template.get("params") or {}).items()}
        body: dict[str, Any] = {
            "template_id": str(template["template_id"]),
            "template_data": data,
            "tracking_id": uuid.uuid4().hex[:16],
        }
        if settings.zalo_zns_mode == "development":
            body["mode"] = "development"
        route, _, target = account.external_id.partition(":")
        if route == "phone":
            client, path = self.phone_client, PHONE_PATH
            body["phone"] = target
        elif route == "uid":
            client, path = self.uid_client, UID_PATH
            body["user_id"] = target
        else:
            raise SendError(f"not a ZNS address: {route}")
        try:
            await client.call("POST", path, what="ZNS template", json=body)
        except ZaloAPIError as exc:
            if exc.code == OPT_OUT:
                raise Unreachable("zns_opt_out", str(exc)) from exc
            if exc.code == AT_NIGHT:
                raise RateLimited(3600.0, str(exc)) from exc  # our clock and Zalo's disagree: later
            if isinstance(exc, ZaloRateLimited):
                raise RateLimited(exc.retry_after, str(exc), category="quota") from exc
            if isinstance(exc, ZaloBillingError):
                raise SendError(str(exc), category="billing") from exc
            if isinstance(exc, ZaloPermissionError):
                raise SendError(str(exc), category="permission") from exc
            if isinstance(exc, ZaloAuthError):
                raise TransientSendError(str(exc)) from exc
            raise SendError(str(exc)) from exc
        except TokenRefreshError as exc:
            raise TransientSendError(str(exc), category="reauth" if exc.permanent else None) from exc
        except ZaloNetworkError as exc:
            raise TransientSendError(str(exc)) from exc
        log.info("ZNS reminder sent by %s (template %s)", route, template["template_id"])


async def zns_accounts(session, person_id: int) -> list[ChannelAccount]:
    return list(
        await session.scalars(
            select(ChannelAccount).where(ChannelAccount.person_id == person_id, ChannelAccount.channel == ZNS_CHANNEL)
        )
    )
