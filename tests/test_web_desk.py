"""The review desk in the browser, over HTTP: sign-in links and sessions, CSRF, scope, decisions
through the same path as chat (the resident is notified through the outbox), headers."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.storage.models import Submission, SubmissionEvent, WebLink, WebSession
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
from tests.support.review import chat, flow, grant_staff, make_staff, outbox, rendered, submit_citizen  # noqa: F401

LINK = re.compile(r"http://[^/\s]+(/desk/in/[A-Za-z0-9_-]+)")


def client_for(app, base_url: str = "http://bot") -> httpx.AsyncClient:
    web = create_web_app(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=base_url)


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


async def signs_in_from_chat(client: httpx.AsyncClient, staff) -> None:
    """The staff member asks for a link in chat and opens it: signed in, sent on to the desk."""
    assert (await sign_in(client, await link_from_chat(staff))).status_code == 303


async def the_submission(app) -> Submission:
    async with app.sessions() as session:
        return await session.scalar(select(Submission))


CAN = ("can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
MAI = ("mai", Role.OFFICER, "ea-tul", "Phạm Thị Mai")


async def hoa_submitted(chat, flow, app, *staff: tuple) -> tuple:
    """Hoa has submitted her application (branch 2: Thôn Hà Lương) and the staff members exist
    (make_staff's arguments): Hoa, her submission and the staff, in order."""
    hoa = chat("hoa")
    await submit_citizen(hoa)
    people = [await make_staff(flow, *who) for who in staff]
    return hoa, await the_submission(app), *people


async def is_not_shown(client: httpx.AsyncClient, sub: Submission) -> None:
    refused = await client.get(f"/desk/a/{sub.id}")
    assert refused.status_code == 404 and "Nguyễn Thị Hoa" not in refused.text


async def decide(client: httpx.AsyncClient, sub: Submission, page: httpx.Response, decision: str, **fields: str):
    """Post the decision form of the application page `page` (its CSRF token, the version shown)."""
    data = {"decision": decision, "version": str(sub.version), "csrf": csrf_of(page.text), **fields}
    return await client.post(f"/desk/a/{sub.id}", data=data)


async def test_officer_signs_in_from_chat_and_approves_and_the_resident_is_notified(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)
    can = await make_staff(flow, *CAN)
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
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
        }.items():
            assert queue.headers[name] == value
        assert "frame-ancestors 'none'" in queue.headers["content-security-policy"]
        assert "script-src 'self'" in queue.headers["content-security-policy"]
        sub = await the_submission(app)
        page = await client.get(f"/desk/a/{sub.id}")
        assert page.status_code == 200 and "Điểm: 100/100 (cần 80)." in page.text
        thumb = re.search(r'<img src="(/desk/p/[^"]+)"', page.text).group(1)
        photo = await client.get(thumb)
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        # Without the CSRF token nothing is decided.
        refused = await client.post(f"/desk/a/{sub.id}", data={"decision": "approve", "version": str(sub.version)})
        assert refused.status_code == 403
        # The commune's rule, as in chat: before the branch has reviewed it (and before the
        # branch's deadline), the commune decides only with a reason, asked beside the decision.
        assert "Hồ sơ CD-2026-000001 chưa được chi hội xét." in page.text and 'name="override"' in page.text
        form = {"decision": "approve", "version": str(sub.version), "csrf": csrf_of(page.text), "note": ""}
        again = await client.post(f"/desk/a/{sub.id}", data=form)
        assert again.status_code == 400 and "ghi lý do xã quyết định ngay" in again.text
        again = await client.post(f"/desk/a/{sub.id}", data={**form, "override": "gấp"})
        assert again.status_code == 400 and "Lý do hơi ngắn" in again.text
        done = await client.post(f"/desk/a/{sub.id}", data={**form, "override": "Chi hội đã họp, biên bản gửi xã sau"})
        assert done.status_code == 303
        after = await client.get(done.headers["location"])
        assert "Đã công nhận hồ sơ CD-2026-000001" in after.text
    rows = await outbox(app)
    assert [r.kind for r in rows] == ["decision"]
    assert rendered(rows[0]).text.startswith("Chúc mừng") or "CD-2026-000001" in rendered(rows[0]).text
    async with app.sessions() as session:
        assert (await session.get(Submission, sub.id)).state == "approved"
        decided = await session.scalar(select(SubmissionEvent).where(SubmissionEvent.to_state == "approved"))
        assert decided.override_reason == "Chi hội đã họp, biên bản gửi xã sau"


async def test_a_link_works_once_and_sign_out_everywhere_ends_sessions(chat, flow, app):
    can = await make_staff(flow, *CAN)
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
    _hoa, sub, lan = await hoa_submitted(chat, flow, app, ("lan", Role.LEADER, "buon-ken", "Lê Thị Lan"))
    async with client_for(app) as client:
        await signs_in_from_chat(client, lan)
        assert "CD-2026-000001" not in (await client.get("/desk")).text
        await is_not_shown(client, sub)


async def test_residents_get_no_link(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)
    turn = await hoa.says("/web")
    assert "/desk/in/" not in turn.text and "chi hội trưởng và cán bộ xã" in turn.text


# ---- link and session rules ---------------------------------------------------------------------


async def _officer(app, name="Trần Văn Cán") -> int:
    return await grant_staff(app, name, Role.OFFICER, "ea-tul")


async def test_link_is_single_use_expires_after_ten_minutes_and_stores_only_a_hash(suite_app):
    app = suite_app
    person_id = await _officer(app)
    async with app.sessions.begin() as session:
        token = await issue_link(session, person_id, app.clock.now())
        late = await issue_link(session, person_id, app.clock.now())
    async with app.sessions() as session:
        stored = list(await session.scalars(select(WebLink)))
    assert all(token not in (row.token_hash, str(row.id)) for row in stored)
    assert stored[0].expires_at - stored[0].created_at == LINK_TTL == timedelta(minutes=10)
    async with app.sessions.begin() as session:
        opened = await redeem_link(session, token, app.clock.now())
    assert opened is not None and opened.session.person_id == person_id
    assert opened.session.expires_at - opened.session.created_at == SESSION_TTL == timedelta(hours=8)
    async with app.sessions.begin() as session:
        assert await redeem_link(session, token, app.clock.now()) is None  # used
    app.clock.advance(LINK_TTL + timedelta(seconds=1))
    async with app.sessions.begin() as session:
        assert await redeem_link(session, late, app.clock.now()) is None  # expired
        assert await redeem_link(session, "made-up-token", app.clock.now()) is None


async def test_session_lasts_eight_hours_and_sign_out_everywhere_revokes_it(suite_app):
    app = suite_app
    person_id = await _officer(app)
    other_id = await _officer(app, "Lê Văn Khác")
    async with app.sessions.begin() as session:
        mine = await redeem_link(session, await issue_link(session, person_id, app.clock.now()), app.clock.now())
        theirs = await redeem_link(session, await issue_link(session, other_id, app.clock.now()), app.clock.now())
        unused = await issue_link(session, person_id, app.clock.now())
    # Each link opened a session for the person it was issued to, and nobody else.
    assert (mine.session.person_id, theirs.session.person_id) == (person_id, other_id)
    app.clock.advance(timedelta(hours=7, minutes=59))
    async with app.sessions() as session:
        assert (await current_session(session, mine.cookie, app.clock.now())).id == mine.session.id
        assert await current_session(session, "x" * 43, app.clock.now()) is None
    async with app.sessions.begin() as session:
        assert await sign_out_everywhere(session, person_id, app.clock.now()) == 1
    async with app.sessions.begin() as session:
        assert await current_session(session, mine.cookie, app.clock.now()) is None
        assert await current_session(session, theirs.cookie, app.clock.now()) is not None
        assert await redeem_link(session, unused, app.clock.now()) is None  # voided with the sessions
    app.clock.advance(timedelta(minutes=2))
    async with app.sessions() as session:
        assert await current_session(session, theirs.cookie, app.clock.now()) is None  # past eight hours
    # A day later, ended links and sessions are forgotten when the next link is made.
    app.clock.advance(timedelta(days=1))
    async with app.sessions.begin() as session:
        await issue_link(session, other_id, app.clock.now())
    async with app.sessions() as session:
        assert len(list(await session.scalars(select(WebSession)))) == 0
        assert len(list(await session.scalars(select(WebLink)))) == 1


async def test_a_link_for_someone_who_lost_their_role_opens_nothing(suite_app):
    from bot.storage.models import RoleGrant

    app = suite_app
    person_id = await _officer(app)
    async with app.sessions.begin() as session:
        token = await issue_link(session, person_id, app.clock.now())
        for grant in await session.scalars(select(RoleGrant).where(RoleGrant.person_id == person_id)):
            grant.revoked_at = app.clock.now()
    async with app.sessions.begin() as session:
        assert await redeem_link(session, token, app.clock.now()) is None


def test_rate_limit_counts_attempts_per_address_in_a_window():
    now = [0.0]
    limit = RateLimit(limit=3, window=60, clock=lambda: now[0])
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")
    now[0] = 61
    assert limit.allow("a")


def test_photo_tokens_are_bound_to_one_session_and_expire(clock):
    token = photo_token("secret-secret", 7, "thumb", 3, clock.now())
    assert read_photo_token("secret-secret", token, 3, clock.now()) == (7, "thumb")
    assert read_photo_token("secret-secret", token, 4, clock.now()) is None
    assert read_photo_token("other-secret!", token, 3, clock.now()) is None
    assert read_photo_token("secret-secret", token.replace(".thumb.", ".full."), 3, clock.now()) is None
    assert read_photo_token("secret-secret", token, 3, clock.now() + timedelta(hours=1)) is None


async def test_sign_in_redemption_is_rate_limited(suite_app):
    async with client_for(suite_app) as client:
        page = await client.get("/desk/in/nothing")
        pre = re.search(r'name="pre" value="([^"]+)"', page.text).group(1)
        codes = [
            (await client.post("/desk/in", data={"token": f"guess{i}", "pre": pre})).status_code for i in range(12)
        ]
    assert codes[:10] == [403] * 10 and codes[10:] == [429, 429]


async def test_cookie_is_secure_behind_https_and_pages_need_a_session(suite_db, tmp_path, clock):
    from tests.conftest import make_app

    app = await make_app(suite_db, tmp_path, clock, public_base_url="https://desk.example.vn")
    try:
        person_id = await _officer(app)
        async with app.sessions.begin() as session:
            token = await issue_link(session, person_id, app.clock.now())
        async with client_for(app, "https://bot") as client:
            for path in ("/desk", "/desk/stats", "/desk/a/1"):
                assert (await client.get(path)).status_code == 401
            signed = await sign_in(client, f"/desk/in/{token}")
            assert signed.status_code == 303
            assert "Secure" in signed.headers["set-cookie"] and "HttpOnly" in signed.headers["set-cookie"]
    finally:
        await app.close()


def test_every_template_key_is_in_the_catalogs():
    from bot.web import desk

    keys = set()
    for template in Path(desk.HERE / "templates").glob("*.html"):
        keys |= set(re.findall(r"""t\(["']([a-z_.]+)["']""", template.read_text(encoding="utf-8")))
    assert keys and keys <= set(desk.TEMPLATE_KEYS) | {"rv.anonymous"}


async def test_a_decision_taken_meanwhile_in_chat_is_reported_not_overwritten(chat, flow, app):
    _hoa, sub, can, mai = await hoa_submitted(chat, flow, app, CAN, MAI)
    async with client_for(app) as client:
        await signs_in_from_chat(client, can)
        page = await client.get(f"/desk/a/{sub.id}")
        # Meanwhile the other officer refuses it in chat.
        turn = await mai.says("/tuchoi CD-2026-000001 Ảnh không rõ, chưa đủ minh chứng")
        assert "CD-2026-000001" in turn.text
        await mai.says("Chi hội đã thống nhất, xã duyệt luôn")  # before the branch review: a reason
        late = await decide(client, sub, page, "approve")
    assert late.status_code == 409
    error = re.search(r'<p class="error" role="alert" id="error">([^<]+)</p>', late.text).group(1)
    assert error.startswith(
        "Hồ sơ CD-2026-000001 vừa thay đổi: nay là &#34;Chưa được công nhận&#34; (do Phạm Thị Mai, lúc "
    ), error
    assert 'value="approve"' not in late.text  # nothing left to decide
    async with app.sessions() as session:
        assert (await session.get(Submission, sub.id)).state == "rejected"
    assert len(await outbox(app)) == 1  # only the refusal was announced


async def test_refusing_needs_a_reason_and_leaders_see_their_own_decisions(chat, flow, app):
    _hoa, sub, lan = await hoa_submitted(chat, flow, app, ("lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan"))
    async with client_for(app) as client:
        await signs_in_from_chat(client, lan)
        page = await client.get(f"/desk/a/{sub.id}")
        assert 'value="recommend"' in page.text and 'value="approve"' not in page.text
        # A leader cannot approve, whatever the form says.
        forged = await decide(client, sub, page, "approve")
        assert forged.status_code == 403
        bare = await decide(client, sub, page, "not_recommend")
        assert bare.status_code == 400 and "lý do" in bare.text
        done = await decide(client, sub, page, "not_recommend", note="Chưa tham gia sinh hoạt chi hội")
        assert done.status_code == 303
    async with app.sessions() as session:
        assert (await session.get(Submission, sub.id)).state == "not_recommended"
    assert "Chưa tham gia sinh hoạt chi hội" in rendered((await outbox(app))[0]).text


async def test_statistics_chart_and_exports_for_officers_only(chat, flow, app):
    hoa = chat("hoa")
    await submit_citizen(hoa)
    can = await make_staff(flow, *CAN)
    lan = await make_staff(flow, "lan", Role.LEADER, "thon-ha-luong", "Lê Thị Lan")
    async with client_for(app) as officer, client_for(app) as leader:
        await signs_in_from_chat(officer, can)
        page = await officer.get("/desk/stats")
        assert page.status_code == 200 and "Thôn Hà Lương" in page.text and "0/1" in page.text
        chart = await officer.get(
            re.search(r'<img class="chart" src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        )
        assert chart.status_code == 200 and chart.content[:8] == b"\x89PNG\r\n\x1a\n"
        export = await officer.post(
            "/desk/export",
            data={
                "csrf": csrf_of(page.text),
                "kind": "submissions",
                "format": "csv",
                "c": re.search(r'name="c" value="(\d+)"', page.text).group(1),
            },
        )
        assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
        assert "CD-2026-000001" in export.content.decode("utf-8-sig")
        assert (await leader.get("/desk/stats")).status_code == 401
        await signs_in_from_chat(leader, lan)
        assert (await leader.get("/desk/stats")).status_code == 403


def test_the_shipped_nginx_site_proxies_the_desk():
    text = (Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "hoctap.conf").read_text(encoding="utf-8")
    assert re.search(r"location /desk \{\s+limit_except GET POST \{ deny all; \}\s+proxy_pass http://hoctap_web;", text)


async def test_thumbnails_go_with_the_photos_when_someone_deletes_their_data(chat, flow, app):
    hoa, sub, can = await hoa_submitted(chat, flow, app, CAN)
    thumbs = Path(app.settings.evidence_dir).parent / "thumbs"
    async with client_for(app) as client:
        await signs_in_from_chat(client, can)
        page = await client.get(f"/desk/a/{sub.id}")
        thumb, full = re.findall(r'href="(/desk/p/[^"]+)"><img src="(/desk/p/[^"]+)"', page.text)[0][::-1]
        assert (await client.get(thumb)).status_code == 200
        assert len(list(thumbs.glob("*/*.jpg"))) == 1
        await hoa.says("/xoadulieu")
        turn = await hoa.taps("Xóa dữ liệu của tôi")
        assert turn.text.startswith("Đã xóa dữ liệu của bạn")
        assert list(thumbs.glob("*/*.jpg")) == []
        # The page's photo links led to a row that no longer exists.
        assert (await client.get(thumb)).status_code == 404 and (await client.get(full)).status_code == 404


async def test_pages_follow_the_chosen_language(chat, flow, app):
    can = await make_staff(flow, *CAN)
    async with client_for(app) as client:
        await signs_in_from_chat(client, can)
        assert "Hồ sơ chờ xét" in (await client.get("/desk")).text
        switched = await client.get("/desk/lang/en", follow_redirects=True)
        assert '<html lang="en">' in switched.text and "Applications waiting" in switched.text


def test_sign_in_and_photo_tokens_never_reach_the_logs():
    from bot.logs import REDACT

    line = REDACT(
        '127.0.0.1 - "GET /desk/in/Zk3_abc-DEF123 HTTP/1.1" 200; "GET /desk/p/12.thumb.3.1800000000.mac_x HTTP/1.1"'
    )
    assert "Zk3_abc" not in line and "12.thumb" not in line
    assert "/desk/in/[redacted]" in line and "/desk/p/[redacted]" in line


async def test_photo_links_work_only_in_the_session_that_was_shown_them(chat, flow, app):
    _hoa, sub, can, mai = await hoa_submitted(chat, flow, app, CAN, MAI)
    async with client_for(app) as first, client_for(app) as second, client_for(app) as stranger:
        await signs_in_from_chat(first, can)
        await signs_in_from_chat(second, mai)
        thumb = re.search(r'<img src="(/desk/p/[^"]+)"', (await first.get(f"/desk/a/{sub.id}")).text).group(1)
        assert (await first.get(thumb)).status_code == 200
        assert (await second.get(thumb)).status_code == 403
        assert (await stranger.get(thumb)).status_code == 401
        assert (await first.get(thumb[:-3] + "AAA")).status_code == 403


async def test_the_province_role_reads_statistics_but_opens_no_application(chat, flow, app):
    _hoa, sub, tinh = await hoa_submitted(chat, flow, app, ("tinh", Role.PROVINCE, "dak-lak", "Võ Văn Tỉnh"))
    async with client_for(app) as client:
        await signs_in_from_chat(client, tinh)
        queue = await client.get("/desk")
        assert queue.status_code == 303 and queue.headers["location"] == "/desk/stats"
        stats = await client.get("/desk/stats")
        assert stats.status_code == 200 and "Thôn Hà Lương" in stats.text
        await is_not_shown(client, sub)
