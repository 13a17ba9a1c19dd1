"""A fake ZNS (Zalo Notification Service): approved template messages with the OA's access token.

Only what is documented or shown by Zalo's own code (sources in /work/shared/reference/zalo.md,
section 3):
- by phone: `POST business.openapi.zalo.me/message/template`, header `access_token`, body
  {phone: "84…", template_id, template_data, tracking_id[, mode: "development"]} (Zalo's
  demo-e2ee-zns TestE2eeMessageZNS.java; Chatwoot's zns_body);
- by user id: `POST openapi.zalo.me/v3.0/oa/message/template {user_id, …}`, only for templates
  that allow it (SPEC; served here and, for the bot, through the fake OA's host);
- the template's parameters must all be given; "development" mode reaches only the OA's admins
  and test numbers; no sending between 22:00 and 06:00 Vietnam time (-133); a person who turned
  ZNS off gets nothing (-141); errors come as HTTP 200 with a non-zero `error`;
- each message sent is charged (`price_phone`, `price_uid`, VND) and counted in `spent`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

VN = ZoneInfo("Asia/Ho_Chi_Minh")
_ids = count(1)


@dataclass
class ZNSSent:
    route: str  # "phone" or "uid"
    to: str
    template_id: str
    data: dict[str, str]
    mode: str
    price: int


@dataclass
class Template:
    params: tuple[str, ...]
    uid_allowed: bool = False


@dataclass
class FakeZNS:
    # Access tokens are the OA's: `tokens()` says which are valid (the fake OA's).
    tokens: Callable[[], set[str]] = lambda: set()
    templates: dict[str, Template] = field(default_factory=dict)
    opted_out: set[str] = field(default_factory=set)  # phones / user ids that turned ZNS off
    admins: set[str] = field(default_factory=set)  # who "development" mode reaches
    price_phone: int = 300
    price_uid: int = 200
    sent: list[ZNSSent] = field(default_factory=list)
    now: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/message/template", self.phone_template, methods=["POST"]),
                Route("/v3.0/oa/message/template", self.uid_template, methods=["POST"]),
            ]
        )

    @property
    def spent(self) -> int:
        return sum(s.price for s in self.sent)

    async def phone_template(self, request: Request) -> Response:
        return await self._send(request, "phone")

    async def uid_template(self, request: Request) -> Response:
        return await self._send(request, "uid")

    async def _send(self, request: Request, route: str) -> Response:
        if request.headers.get("access_token") not in self.tokens():
            return JSONResponse({"error": -124, "message": "Access token is invalid"})
        try:
            body = await request.json()
            template_id = str(body["template_id"])
            data = body["template_data"]
            to = str(body["phone"] if route == "phone" else body["user_id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": -201, "message": "body is invalid"})
        template = self.templates.get(template_id)
        if template is None:
            return JSONResponse({"error": -1123, "message": "template is not approved"})
        if route == "uid" and not template.uid_allowed:
            return JSONResponse({"error": -201, "message": "this template cannot be sent by user id"})
        if route == "phone" and not (to.startswith("84") and to.isdigit() and len(to) == 11):
            return JSONResponse({"error": -108, "message": "phone number is invalid"})
        if (
            not isinstance(data, dict)
            or set(data) != set(template.params)
            or not all(isinstance(v, str) and v for v in data.values())
        ):
            return JSONResponse({"error": -1124, "message": "template_data does not match the template"})
        hour = datetime.fromtimestamp(self.now(), VN).hour
        if hour >= 22 or hour < 6:
            return JSONResponse({"error": -133, "message": "ZNS cannot be sent between 22:00 and 06:00"})
        if to in self.opted_out:
            return JSONResponse({"error": -141, "message": "user has refused to receive ZNS"})
        mode = str(body.get("mode") or "production")
        if mode == "development" and to not in self.admins:
            return JSONResponse({"error": -1150, "message": "development mode only reaches the OA's admins"})
        price = 0 if mode == "development" else (self.price_phone if route == "phone" else self.price_uid)
        self.sent.append(ZNSSent(route, to, template_id, dict(data), mode, price))
        return JSONResponse(
            {
                "error": 0,
                "message": "Success",
                "data": {"msg_id": f"zns{next(_ids)}", "sent_time": str(int(self.now() * 1000))},
            }
        )
