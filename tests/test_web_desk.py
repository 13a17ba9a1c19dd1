"""The review desk in the browser, over HTTP: sign-in links and sessions, CSRF, scope, decisions
through the same path as chat (the resident is notified through the outbox), headers."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.storage.models import Submission, WebLink, WebSession
from bot.storage.people import Role
from bot.web.app import create_web_app
from bot.web.auth import (
    LINK_TTL,
    SESSION_TTL,
    RateLimit,
    current_session,
    issue_link,
    photo_token,
    read_photo_token,
    redeem_link,
    sign_out_everywhere,
)
from tests.support.review import chat, flow, make_staff, outbox, rendered, submit_citizen  # noqa: F401

LINK = re.compile(r"http://[^/\s]+(/desk/in/[A-Za-z0-9_-]+)")


def client_for(app) -> httpx.AsyncClient:
    web = create_web_app(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot")


async def link_from_chat(staff) -> str:
    turn = await staff.says("/web")
    found = LINK.search(turn.text)
    assert found, turn.text
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, path: str) -> httpx.Response:
    page = await client.get(path)
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    pre = re.search(r'name="pre" value="([^"]+)"', page.text).group(1)
    return await client.post("/desk/in", data={"token": token, "pre": pre})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_officer_signs_in_from_chat_and_approves_and_the_resident_is_notified(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    path = await link_from_chat(can)
    async with client_for(app) as client:
        # A chat app's link preview fetches the link: that must not use it up.
        assert (await client.get(path)).status_code == 200
        signed = await sign_in(client, path)
        assert signed.status_code == 303 and signed.headers["location"] == "/desk"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain http in tests; https sets it (see below)
        queue = await client.get("/desk")
        assert queue.status_code == 200 and "CD-2026-000001" in queue.text and "Nguyễn Thị Hoa" in queue.text
        for name, value in {
            "x-frame-options": "DENY", "x-content-type-options": "nosniff", "cache-control": "no-store",
        }.items():
            assert queue.headers[name] == value
        assert "frame-ancestors 'none'" in queue.headers["content-security-policy"]
        assert "script-src 'self'" in queue.headers["content-security-policy"]
        async with app.sessions() as session:
            sub = await session.scalar(select(Submission))
        page = await client.get(f"/desk/a/{sub.id}")
        assert page.status_code == 200 and "Điểm: 100/100 (cần 80)." in page.text
        thumb = re.search(r'<img src="(/desk/p/[^"]+)"', page.text).group(1)
        photo = await client.get(thumb)
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        # Without the CSRF token nothing is decided.
        refused = await client.post(f"/desk/a/{sub.id}", data={"decision": "approve", "version": str(sub.version)})
        assert refused.status_code == 403
        done = await client.post(
            f"/desk/a/{sub.id}",
            data={"decision": "approve", "version": str(sub.version), "csrf": csrf_of(page.text), "note": ""},
        )
        assert done.status_code == 303
        after = await client.get(done.headers["location"])
        assert "Đã công nhận hồ sơ CD-2026-000001" in after.text
    rows = await outbox(app)
    assert [r.kind for r in rows] == ["decision"]
    assert rendered(rows[0]).text.startswith("Chúc mừng") or "CD-2026-000001" in rendered(rows[0]).text
    async with app.sessions() as session:
        assert (await session.get(Submission, sub.id)).state == "approved"


async def test_a_link_works_once_and_sign_out_everywhere_ends_sessions(chat, flow, app):
    can = await make_staff(flow, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    path = await link_from_chat(can)
    async with client_for(app) as first, client_for(app) as second:
        assert (await sign_in(first, path)).status_code == 303
        again = await sign_in(second, path)
        assert again.status_code == 403 and "/web" in again.text
        assert (await first.get("/desk")).status_code == 200
        turn = await can.says("/web thoat")
        assert "1" in turn.text
        assert (await first.get("/desk")).status_code == 401


async def test_out_of_scope_application_is_refused(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)  # branch 2: Thôn Hà Lương
    lan = await make_staff(flow, "lan", Role.LEADER, "buon-ken", "Lê Thị Lan")
    async with app.sessions() as session:
        sub = await session.scalar(select(Submission))
    async with client_for(app) as client:
        assert (await sign_in(client, await link_from_chat(lan))).status_code == 303
        assert "CD-2026-000001" not in (await client.get("/desk")).text
        refused = await client.get(f"/desk/a/{sub.id}")
        assert refused.status_code == 404 and "Nguyễn Thị Hoa" not in refused.text


async def test_residents_get_no_link(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)
    turn = await hoa.says("/web")
    assert "/desk/in/" not in turn.text and "chi hội trưởng và cán bộ xã" in turn.text
