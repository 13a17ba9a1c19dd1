"""The review desk: a small server-rendered site beside the chat commands, for the same people
(commune officers, branch leaders) with the same scopes.

Every page loads the person's session, then asks the review services exactly what the chat
asks: `scope_for` for the role, `Scope.covers` for the application, `may_review` and
`allowed_decisions` for what may be done, `decide` (which notifies through the outbox) to do it.
Nothing here decides who may see or do what on its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.app import App
from bot.domain.criteria import CriteriaError, Level
from bot.domain.labels import LEVEL_KEYS, STATE_KEYS
from bot.domain.lifecycle import IllegalTransition, State
from bot.domain.roles import Role
from bot.flows.guards import QUEUE_STATES
from bot.flows.staff import (
    ACTOR_KEYS,
    DECISION_LABEL_KEYS,
    DONE_KEYS,
    REVIEW_BLOCKED_KEYS,
    blocked_text,
    changed_by,
)
from bot.i18n import LOCALES, N_, Translator, get_translator, normalise_locale
from bot.review.chart import render_progress_chart
from bot.review.decisions import (
    COMMUNE_DECISIONS,
    OFFERED,
    OVERRIDE_MIN,
    AwaitingBranch,
    Conflict,
    Decision,
    OutOfScope,
    OwnApplication,
    ProcessingStopped,
    allowed_decisions,
    awaiting_branch,
    decide,
    last_event,
    note_required,
)
from bot.review.details import submission_detail
from bot.review.exports import FORMAT_KEYS, FORMATS, KIND_KEYS, KINDS, produce_export
from bot.review.queries import Filters, pending
from bot.review.scope import Scope, branches_in, communes_in_scope, scope_for
from bot.review.stats import commune_stats
from bot.storage.commune import campaign_for
from bot.storage.models import Evidence, OrgUnit, Person, Submission, WebSession
from bot.storage.subjects import subject_name
from bot.storage.thumbs import thumbnail
from bot.web.auth import (
    COOKIE,
    DESK_ROLES,
    SESSION_TTL,
    RateLimit,
    csrf_ok,
    current_session,
    desk_roles,
    photo_token,
    read_photo_token,
    redeem_link,
    sign_out,
)
from bot.web.review import EVIDENCE_FLAGS, criteria_set_for, item_views, row_facts

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
PREFIX = "/desk"
PAGE = 100
QUEUE_LIMIT = 5000
LANG_COOKIE = "desk_lang"
PRE_COOKIE = "desk_pre"
NOTE_MIN = 3  # as in chat: a required reason of a word or two at least
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
ROLE_KEYS = {
    Role.OFFICER: N_("web.role.officer"),
    Role.LEADER: N_("web.role.leader"),
    Role.PROVINCE: N_("web.role.province"),
}
# The roles that report on communes (statistics, exports): those /thongke and /xuat are for.
REPORT_ROLES = (Role.OFFICER, Role.PROVINCE)
FLAG_KEYS = {
    "reused": N_("web.flag.reused"),
    "missing": N_("web.flag.missing"),
    "not_applicable": N_("web.flag.not_applicable"),
}
# Keys used only in the templates (listed here so the catalogs' completeness check sees them).
TEMPLATE_KEYS = (
    N_("web.app.title"),
    N_("web.app.back"),
    N_("web.app.subject"),
    N_("web.app.members"),
    N_("web.app.override"),
    N_("web.app.override_hint"),
    N_("web.app.score"),
    N_("web.app.items"),
    N_("web.app.item_answer"),
    N_("web.app.item_note"),
    N_("web.app.item_photos"),
    N_("web.app.no_photos"),
    N_("web.app.history"),
    N_("web.app.decide"),
    N_("web.app.reason"),
    N_("web.app.reason_hint"),
    N_("web.app.photo_alt"),
    N_("web.app.unanswered"),
    N_("web.app.state"),
    N_("web.app.anonymised"),
    N_("web.app.flags"),
    N_("web.app.no_action"),
    N_("web.app.recognisable"),
    N_("web.app.not_recognisable"),
    N_("web.queue.title"),
    N_("web.queue.filters"),
    N_("web.queue.branch"),
    N_("web.queue.title_filter"),
    N_("web.queue.state"),
    N_("web.queue.any"),
    N_("web.queue.late"),
    N_("web.queue.flagged"),
    N_("web.queue.sort"),
    N_("web.queue.oldest"),
    N_("web.queue.newest"),
    N_("web.queue.apply"),
    N_("web.queue.empty"),
    N_("web.queue.counts"),
    N_("web.queue.col_ref"),
    N_("web.queue.col_name"),
    N_("web.queue.col_branch"),
    N_("web.queue.col_title"),
    N_("web.queue.col_state"),
    N_("web.queue.col_score"),
    N_("web.queue.col_age"),
    N_("web.queue.col_flags"),
    N_("web.queue.late_mark"),
    N_("web.queue.shortcuts"),
    N_("web.queue.next_page"),
    N_("web.queue.prev_page"),
    N_("web.queue.shown"),
    N_("web.nav.queue"),
    N_("web.nav.stats"),
    N_("web.nav.sign_out"),
    N_("web.nav.skip"),
    N_("web.nav.role"),
    N_("web.nav.language"),
    N_("web.signin.title"),
    N_("web.signin.lead"),
    N_("web.signin.button"),
    N_("web.stats.title"),
    N_("web.stats.unit"),
    N_("web.stats.targets"),
    N_("web.stats.chart_alt"),
    N_("web.stats.exports"),
    N_("web.stats.download"),
    N_("web.stats.commune"),
    N_("web.stats.kind"),
    N_("web.stats.format"),
    N_("web.signed_out.title"),
    N_("web.signed_out.text"),
)


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class DeskHeaders:
    """ASGI middleware: the desk's pages and files carry the security headers, whatever answers."""

    def __init__(self, asgi_app: Any) -> None:
        self.asgi_app = asgi_app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.asgi_app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.asgi_app(scope, receive, send_with_headers)


@dataclass
class Viewer:
    web: WebSession
    person: Person
    roles: list[Role]
    t: Translator
    # Plain copies: they outlive a rolled-back transaction (which expires the rows above).
    person_id: int = 0
    session_id: int = 0
    csrf: str = ""

    @property
    def locale(self) -> str:
        return self.t.locale


class Desk:
    def __init__(self, app: App, limiter: RateLimit | None = None) -> None:
        self.app = app
        self.limiter = limiter or RateLimit()
        env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates = Jinja2Templates(env=env)

    # ---- plumbing ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.queue, methods=["GET"]),
            Route(PREFIX + "/in/{token:str}", self.signin_page, methods=["GET"]),
            Route(PREFIX + "/in", self.signin, methods=["POST"]),
            Route(PREFIX + "/out", self.signout, methods=["POST"]),
            Route(PREFIX + "/lang/{code:str}", self.language, methods=["GET"]),
            Route(PREFIX + "/a/{sub_id:int}", self.application, methods=["GET"]),
            Route(PREFIX + "/a/{sub_id:int}", self.decide, methods=["POST"]),
            Route(PREFIX + "/p/{token:str}", self.photo, methods=["GET"]),
            Route(PREFIX + "/stats", self.stats, methods=["GET"]),
            Route(PREFIX + "/stats/chart", self.chart, methods=["GET"]),
            Route(PREFIX + "/export", self.export, methods=["POST"]),
            Mount(PREFIX + "/static", app=StaticFiles(directory=HERE / "static"), name="desk-static"),
        ]

    @property
    def secure(self) -> bool:
        return (self.app.settings.public_base_url or "").startswith("https://")

    def now(self) -> datetime:
        return self.app.clock.now()

    def _translator(self, request: Request, person: Person | None) -> Translator:
        chosen = request.cookies.get(LANG_COOKIE)
        if chosen in LOCALES:
            return get_translator(chosen)
        if person is not None:
            return get_translator(person.locale)
        return get_translator(normalise_locale(request.headers.get("accept-language", "")[:5]))

    def render(self, request: Request, name: str, t: Translator, status: int = 200, **context: Any) -> Response:
        context.update(t=t, lang=t.locale, prefix=PREFIX)
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        return security_headers(response)

    def message(
        self, request: Request, t: Translator, status: int, key: str, viewer: Viewer | None = None, **params: Any
    ) -> Response:
        return self.render(request, "message.html", t, status=status, text=t(key, **params), viewer=viewer)

    async def viewer(self, request: Request, db: AsyncSession) -> Viewer | None:
        web = await current_session(db, request.cookies.get(COOKIE), self.now())
        if web is None:
            return None
        person = await db.get(Person, web.person_id)
        roles = await desk_roles(db, web.person_id)
        if person is None or not roles:
            return None
        return Viewer(web, person, roles, self._translator(request, person), person.id, web.id, web.csrf)

    async def sender(self, request: Request, db: AsyncSession, form: FormData) -> Viewer | Response:
        """Who sent a form: the signed-in viewer, when it carries their session's CSRF token;
        otherwise the answer to give instead (signed out, or 403)."""
        viewer = await self.viewer(request, db)
        if viewer is None:
            return self.signed_out(request)
        if not csrf_ok(viewer.csrf, form.get("csrf")):
            return self.message(request, viewer.t, 403, N_("web.error.csrf"), viewer)
        return viewer

    def signed_out(self, request: Request) -> Response:
        t = self._translator(request, None)
        response = self.render(request, "message.html", t, status=401, text=t("web.signed_out.text"), viewer=None)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @staticmethod
    def pick_role(viewer: Viewer, asked: str | None) -> Role:
        for role in viewer.roles:
            if role.value == asked:
                return role
        return viewer.roles[0]

    # ---- signing in and out -----------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        """A page with one button: link previews in chat apps fetch links, and must not use them up."""
        t = self._translator(request, None)
        pre = secrets.token_urlsafe(16)
        response = self.render(
            request,
            "signin.html",
            t,
            token=request.path_params["token"],
            pre=pre,
            viewer=None,
        )
        response.headers["referrer-policy"] = "no-referrer"
        response.set_cookie(
            PRE_COOKIE,
            pre,
            max_age=600,
            path=PREFIX,
            httponly=True,
            secure=self.secure,
            samesite="strict",
        )
        return response

    async def signin(self, request: Request) -> Response:
        t = self._translator(request, None)
        client = request.client.host if request.client else "-"
        if not self.limiter.allow(client):
            return self.message(request, t, 429, N_("web.error.too_many"))
        form = await request.form()
        pre = request.cookies.get(PRE_COOKIE)
        if not pre or not secrets.compare_digest(pre, str(form.get("pre", ""))):
            return self.message(request, t, 403, N_("web.error.csrf"))
        async with self.app.sessions.begin() as db:
            opened = await redeem_link(db, str(form.get("token", "")), self.now())
        if opened is None:
            log.info("desk sign-in refused")
            return self.message(request, t, 403, N_("web.error.link"))
        log.info("desk session opened")
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(
            COOKIE,
            opened.cookie,
            max_age=int(SESSION_TTL.total_seconds()),
            path=PREFIX,
            httponly=True,
            secure=self.secure,
            samesite="strict",
        )
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        return response

    async def signout(self, request: Request) -> Response:
        form = await request.form()
        async with self.app.sessions.begin() as db:
            viewer = await self.sender(request, db, form)
            if isinstance(viewer, Response):
                return viewer
            await sign_out(db, viewer.web, self.now())
        return self.signed_out(request)

    async def language(self, request: Request) -> Response:
        code = request.path_params["code"]
        response = RedirectResponse(PREFIX, status_code=303)
        if code in LOCALES:
            response.set_cookie(
                LANG_COOKIE, code, max_age=365 * 86400, path=PREFIX, secure=self.secure, samesite="strict"
            )
        return response

    # ---- the queue -------------------------------------------------------------------------

    def _title_name(self, title: str, t: Translator) -> str:
        try:
            return self.app.catalog.for_title(title, self.now().year).title_name.get(t.locale)
        except CriteriaError:
            return title

    async def queue(self, request: Request) -> Response:
        async with self.app.sessions() as db:
            viewer = await self.viewer(request, db)
            if viewer is None:
                return self.signed_out(request)
            t = viewer.t
            params = request.query_params
            role = self.pick_role(viewer, params.get("as"))
            if role not in QUEUE_STATES:  # the province role reads reports only
                return RedirectResponse(PREFIX + "/stats", status_code=303)
            scope = await scope_for(db, viewer.person_id, role)
            if scope is None:
                return self.signed_out(request)
            states = QUEUE_STATES.get(role, ())
            branches = await branches_in(db, scope)
            filters = Filters()
            branch = params.get("branch", "")
            if branch.isdigit() and any(b.id == int(branch) for b in branches):
                filters.branch_id = int(branch)
            if params.get("title") in self.app.catalog.titles():
                filters.title = params["title"]
            if params.get("state") in {s.value for s in states}:
                filters.state = params["state"]
            late_only, flagged_only = params.get("late") == "1", params.get("flagged") == "1"
            newest = params.get("sort") == "new"
            everything = await pending(db, scope, states, Filters(filters.branch_id, filters.title), limit=0)
            page = await pending(db, scope, states, filters, limit=QUEUE_LIMIT)
            facts = await row_facts(db, self.app.catalog, [row.id for row in page.rows])
            kept = [
                row
                for row in page.rows
                if (not late_only or facts[row.id].late)
                and (not flagged_only or facts[row.id].flags & set(EVIDENCE_FLAGS))
            ]
            if newest:
                kept.reverse()
            try:
                number = max(1, int(params.get("page", "1")))
            except ValueError:
                number = 1
            # Only the page shown is turned into labels.
            title_names = {code: self._title_name(code, t) for code in self.app.catalog.titles()}
            now = self.now()
            shown = []
            for row in kept[(number - 1) * PAGE : number * PAGE]:
                fact = facts[row.id]
                shown.append(
                    {
                        "id": row.id,
                        "reference": row.reference,
                        "name": row.name or t("rv.anonymous"),
                        "branch": row.branch_name,
                        "title": title_names.get(row.title, row.title),
                        "state": t(STATE_KEYS[State(row.state)]),
                        "score": row.score,
                        "age": (now - fact.submitted_at).days if fact.submitted_at else None,
                        "late": fact.late,
                        "flags": [t(FLAG_KEYS[f]) for f in sorted(fact.flags)],
                    }
                )
            rows = kept
            query = {k: v for k, v in params.items() if k != "page"}
            done = None
            if params.get("done", "").isdigit() and params.get("d") in {d.value for d in Decision}:
                decided = await db.get(Submission, int(params["done"]))
                if decided is not None and scope.covers(decided.branch_id):
                    name = await subject_name(db, decided) or t("rv.anonymous")
                    done = t(DONE_KEYS[Decision(params["d"])], reference=decided.reference, name=name)
            return self.render(
                request,
                "queue.html",
                t,
                viewer=viewer,
                role=role,
                roles=self._roles(viewer, t),
                branches=branches,
                titles=list(title_names.items()),
                states=[(s.value, t(STATE_KEYS[s])) for s in states],
                filters=filters,
                late_only=late_only,
                flagged_only=flagged_only,
                newest=newest,
                rows=shown,
                total=len(rows),
                counts=[(t(STATE_KEYS[s]), everything.counts.get(s.value, 0)) for s in states],
                all_total=everything.total,
                page=number,
                prev_url=f"{PREFIX}?{urlencode({**query, 'page': number - 1})}" if number > 1 else None,
                next_url=f"{PREFIX}?{urlencode({**query, 'page': number + 1})}" if number * PAGE < len(rows) else None,
                done=done,
            )

    @staticmethod
    def _roles(viewer: Viewer, t: Translator) -> list[tuple[str, str]]:
        return [(r.value, t(ROLE_KEYS.get(r, "web.role.officer"))) for r in viewer.roles]

    # ---- one application -----------------------------------------------------------------

    async def _reviewer(
        self, db: AsyncSession, viewer: Viewer, submission: Submission | None, asked: str | None
    ) -> tuple[Role, Scope] | None:
        return await self._covering(db, viewer.person_id, viewer.roles, submission, asked)

    @staticmethod
    async def _covering(
        db: AsyncSession,
        person_id: int,
        roles: list[Role],
        submission: Submission | None,
        asked: str | None,
    ) -> tuple[Role, Scope] | None:
        """The role in which this person may open the application (the one asked for first,
        then officer before leader, as /xem does); None when no scope of theirs covers it."""
        if submission is None:
            return None
        # Applications are opened in a reviewing role only (the province role reads reports).
        for role in sorted((r for r in roles if r in OFFERED), key=lambda r: r.value != asked):
            scope = await scope_for(db, person_id, role)
            if scope is not None and scope.covers(submission.branch_id):
                return role, scope
        return None

    async def application(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        async with self.app.sessions() as db:
            viewer = await self.viewer(request, db)
            if viewer is None:
                return self.signed_out(request)
            t = viewer.t
            submission = await db.get(Submission, request.path_params["sub_id"], populate_existing=True)
            found = await self._reviewer(db, viewer, submission, request.query_params.get("as"))
            if found is None:
                # The same answer for "not there" and "not yours": ids outside one's scope say nothing.
                return self.message(request, t, 404, N_("web.error.not_found"), viewer)
            role, _scope = found
            assert submission is not None  # covered by a scope, so it exists
            context = await self._application_context(db, viewer, submission, role)
            return self.render(request, "application.html", t, status=status, error=error, **context)

    async def _application_context(
        self, db: AsyncSession, viewer: Viewer, submission: Submission, role: Role
    ) -> dict[str, Any]:
        t = viewer.t
        tz = self.app.settings.tz
        criteria = await criteria_set_for(db, self.app.catalog, submission.criteria_set_id)
        detail = await submission_detail(db, submission, criteria, history=None)
        subject: dict[str, Any] = {"name": None, "year": None, "members": []}
        if submission.anonymised_at is None and detail.subject is not None:
            subject.update(name=detail.subject.name, year=detail.subject.birth_year)
            subject["members"] = [
                {"name": m.full_name, "year": m.birth_year or "", "relation": m.relation} for m in detail.members
            ]
        removed_at = detail.retention_at
        items = await item_views(db, submission, detail, criteria, t.locale)
        now = self.now()
        secret = self.app.settings.signing_secret
        for item in items:
            item.level_label = t(LEVEL_KEYS[Level(item.level)]) if item.level else t("web.app.unanswered")  # type: ignore[attr-defined]
            item.flag_labels = [t(FLAG_KEYS[f]) for f in item.flags]  # type: ignore[attr-defined]
            item.photo_links = [  # type: ignore[attr-defined]
                (
                    f"{PREFIX}/p/{photo_token(secret, p.id, 'thumb', viewer.session_id, now)}",
                    f"{PREFIX}/p/{photo_token(secret, p.id, 'full', viewer.session_id, now)}",
                )
                for p in item.photos
            ]
        history = [
            {
                "when": t.datetime(event.at.astimezone(tz)),
                "state": t(STATE_KEYS[State(event.to_state)]),
                "actor": t(ACTOR_KEYS.get(event.actor_kind, ACTOR_KEYS["system"])),
                "note": event.note or "",
            }
            for event in detail.history
        ]
        decisions = allowed_decisions(role, submission.state) if submission.anonymised_at is None else []
        blocked = await blocked_text(db, t, submission, viewer.person_id) if decisions else None
        if blocked is not None:
            decisions = []
        # The commune's rule: before the branch has given its view (or its deadline has passed),
        # the commune decides only with a reason, asked here beside the decision.
        waiting = await awaiting_branch(db, submission, role, COMMUNE_DECISIONS[0], self.now()) if decisions else False
        override = None
        if waiting is not False:
            due = t.date(waiting) if waiting else t("rv.override.no_deadline")
            override = t("rv.override.waiting", reference=submission.reference, due=due)
        return {
            "viewer": viewer,
            "role": role,
            "roles": self._roles(viewer, t),
            "sub": submission,
            "branch": detail.branch_name,
            "title": criteria.title_name.get(t.locale),
            "subject": subject,
            "state": t(STATE_KEYS[State(submission.state)]),
            "submitted": t.datetime(submission.submitted_at.astimezone(tz)) if submission.submitted_at else "-",
            "score": detail.score,
            "items": items,
            "history": history,
            "blocked": blocked,
            "override": override,
            "decisions": [
                (d.value, t(DECISION_LABEL_KEYS[d]), note_required(role, submission.state, d)) for d in decisions
            ],
            "photos_removed": (
                t("rv.view.photos_removed", date=t.date(removed_at.astimezone(tz).date())) if removed_at else None
            ),
        }

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        sub_id = request.path_params["sub_id"]
        async with self.app.sessions() as db:
            viewer = await self.sender(request, db, form)
            if isinstance(viewer, Response):
                return viewer
            t = viewer.t
            submission = await db.get(Submission, sub_id, populate_existing=True)
            found = await self._reviewer(db, viewer, submission, str(form.get("as", "")))
            if found is None:
                return self.message(request, t, 404, N_("web.error.not_found"), viewer)
            role, scope = found
            assert submission is not None  # covered by a scope, so it exists
            try:
                decision = Decision(str(form.get("decision", "")))
                version = int(str(form.get("version", "")))
            except ValueError:
                return self.message(request, t, 400, N_("web.error.bad_form"), viewer)
            note = str(form.get("note", "")).strip()[:2000] or None
            override = str(form.get("override", "")).strip()[:2000] or None
            if decision not in OFFERED.get(role, ()):
                return self.message(request, t, 403, N_("web.error.not_offered"), viewer)
            if (
                decision in allowed_decisions(role, submission.state)
                and note_required(role, submission.state, decision)
                and len(note or "") < NOTE_MIN
            ):
                return await self._again(request, db, viewer, sub_id, role, t("web.error.reason"), 400)
            reference = submission.reference
            try:
                await decide(
                    db,
                    submission_id=submission.id,
                    decision=decision,
                    role=role,
                    scope=scope,
                    actor_person_id=viewer.person_id,
                    note=note,
                    now=self.now(),
                    expected_version=version,
                    override=override if override and len(override) >= OVERRIDE_MIN else None,
                    branch_first=True,
                )
                await db.commit()
            except AwaitingBranch:
                key = N_("rv.override.too_short") if override else N_("web.error.override")
                return await self._again(request, db, viewer, sub_id, role, t(key), 400)
            except OutOfScope:
                return self.message(request, t, 404, N_("web.error.not_found"), viewer)
            except (OwnApplication, ProcessingStopped) as refusal:
                return await self._again(
                    request,
                    db,
                    viewer,
                    sub_id,
                    role,
                    t(REVIEW_BLOCKED_KEYS[type(refusal)], reference=reference),
                    409,
                )
            except Conflict as conflict:
                return await self._again(
                    request, db, viewer, sub_id, role, await self._conflict_text(db, t, conflict), 409
                )
            except StaleDataError:
                # Decided by someone else between our check and our commit.
                await db.rollback()
                fresh = await db.get(Submission, sub_id, populate_existing=True)
                if fresh is None:
                    return self.message(request, t, 404, N_("web.error.not_found"), viewer)
                raced = Conflict(fresh, await last_event(db, sub_id))
                return await self._again(
                    request, db, viewer, sub_id, role, await self._conflict_text(db, t, raced), 409
                )
            except IllegalTransition:
                return await self._again(request, db, viewer, sub_id, role, t("web.error.reason"), 400)
            log.info("desk decision recorded")
            query = urlencode({"as": role.value, "done": sub_id, "d": decision.value})
            return RedirectResponse(f"{PREFIX}?{query}", status_code=303)

    async def _again(
        self, request: Request, db: AsyncSession, viewer: Viewer, sub_id: int, role: Role, error: str, status: int
    ) -> Response:
        """The application page again, as it is now, with what went wrong on top."""
        await db.rollback()
        fresh = await db.get(Submission, sub_id, populate_existing=True)
        if fresh is None:
            return self.message(request, viewer.t, 404, N_("web.error.not_found"), viewer)
        context = await self._application_context(db, viewer, fresh, role)
        return self.render(request, "application.html", viewer.t, status=status, error=error, **context)

    async def _conflict_text(self, db: AsyncSession, t: Translator, conflict: Conflict) -> str:
        submission, last = conflict.submission, conflict.last
        when = t.datetime(last.at.astimezone(self.app.settings.tz)) if last is not None else "-"
        return t(
            "web.conflict",
            reference=submission.reference,
            state=t(STATE_KEYS[State(submission.state)]),
            who=await changed_by(db, t, last),
            when=when,
        )

    # ---- photos ----------------------------------------------------------------------------

    async def photo(self, request: Request) -> Response:
        async with self.app.sessions() as db:
            web = await current_session(db, request.cookies.get(COOKIE), self.now())
            if web is None:
                return Response(status_code=401)
            read = read_photo_token(self.app.settings.signing_secret, request.path_params["token"], web.id, self.now())
            if read is None:
                return Response(status_code=403)
            evidence_id, variant = read
            evidence = await db.get(Evidence, evidence_id)
            submission = await db.get(Submission, evidence.submission_id) if evidence else None
            # Scope checked again: a grant withdrawn since the page was shown stops the photos too.
            if evidence is None or await self._covering(db, web.person_id, list(DESK_ROLES), submission, None) is None:
                return Response(status_code=404)
        try:
            source = self.app.evidence.open_path(evidence.path)
        except ValueError:
            return Response(status_code=404)
        if not source.is_file():
            return Response(status_code=404)
        headers = {"cache-control": "private, max-age=1800"}
        if variant == "thumb":
            path = await thumbnail(self.app.settings.evidence_dir, source, evidence.sha256)
            return FileResponse(path, media_type="image/jpeg", headers=headers)
        return FileResponse(
            source,
            media_type=evidence.mime,
            headers=headers,
            filename="photo",
            content_disposition_type="inline",
        )

    # ---- statistics and exports -------------------------------------------------------------

    async def _commune(
        self, db: AsyncSession, viewer: Viewer, asked: str | None
    ) -> tuple[list[OrgUnit], OrgUnit | None, int]:
        """The communes this officer or province reader may report on (the checks /thongke and
        /xuat make), the one chosen and its campaign year."""
        if not any(role in REPORT_ROLES for role in viewer.roles):
            return [], None, 0
        communes = await communes_in_scope(db, viewer.person_id)
        chosen = next((c for c in communes if str(c.id) == asked), communes[0] if communes else None)
        if chosen is None:
            return communes, None, 0
        campaign = await campaign_for(db, chosen.id, self.now().astimezone(self.app.settings.tz).date())
        return communes, chosen, campaign.year if campaign else self.now().year

    async def stats(self, request: Request) -> Response:
        async with self.app.sessions() as db:
            viewer = await self.viewer(request, db)
            if viewer is None:
                return self.signed_out(request)
            t = viewer.t
            communes, commune, year = await self._commune(db, viewer, request.query_params.get("c"))
            if commune is None:
                return self.message(request, t, 403, "staff.not_officer", viewer)
            stats = await commune_stats(db, self.app.catalog, commune, year)
            names = {title: self._title_name(title, t) for title in stats.titles}
            units = []
            for unit in [*stats.branches, stats.total]:
                cells = []
                for title in stats.titles:
                    count = unit.titles[title]
                    rate = unit.rate(title, stats.subjects[title])
                    cells.append((count.recognised, count.registered, "-" if rate is None else f"{rate:.1f}"))
                units.append((unit.name, cells))
            targets = [(names[k], f"{v:g}") for k, v in stats.targets.items() if k in names]
            return self.render(
                request,
                "stats.html",
                t,
                viewer=viewer,
                roles=self._roles(viewer, t),
                role=None,
                communes=communes,
                commune=commune,
                year=year,
                titles=[names[x] for x in stats.titles],
                units=units,
                targets=targets,
                kinds=[(k, t(KIND_KEYS[k])) for k in KINDS],
                formats=[(f, t(FORMAT_KEYS[f])) for f in FORMATS],
            )

    async def chart(self, request: Request) -> Response:
        async with self.app.sessions() as db:
            viewer = await self.viewer(request, db)
            if viewer is None:
                return Response(status_code=401)
            _communes, commune, year = await self._commune(db, viewer, request.query_params.get("c"))
            if commune is None:
                return Response(status_code=403)
            stats = await commune_stats(db, self.app.catalog, commune, year)
            names = {title: self._title_name(title, viewer.t) for title in stats.titles}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "chart.png"
            await asyncio.to_thread(render_progress_chart, stats, names, viewer.t, path)
            data = path.read_bytes()
        return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=300"})

    async def export(self, request: Request) -> Response:
        form = await request.form()
        async with self.app.sessions() as db:
            viewer = await self.sender(request, db, form)
            if isinstance(viewer, Response):
                return viewer
            t = viewer.t
            _communes, commune, year = await self._commune(db, viewer, str(form.get("c", "")))
            kind, fmt = str(form.get("kind", "")), str(form.get("format", ""))
            if commune is None:
                return self.message(request, t, 403, "staff.not_officer", viewer)
            if kind not in KINDS or fmt not in FORMATS:
                return self.message(request, t, 400, N_("web.error.bad_form"), viewer)
            made = await produce_export(
                db,
                self.app.settings,
                self.app.catalog,
                kind=kind,
                fmt=fmt,
                commune=commune,
                year=year,
                locale=t.locale,
                now=self.now(),
            )
        log.info("desk export written")
        return FileResponse(made.path, filename=made.filename, content_disposition_type="attachment")
