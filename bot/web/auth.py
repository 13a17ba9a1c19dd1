"""Signing in to the review desk without passwords, and staying signed in safely.

- `/web` in chat issues a link for the person who typed it: a random token, of which only the
  sha256 is stored, valid ten minutes, opening one session once.
- A session is a random cookie (again only its sha256 is stored) with its own CSRF secret; it
  lasts eight hours at most, ends when the person signs out here, or everywhere from chat, and
  stops working as soon as the person no longer holds a reviewing role.
- Redeeming links is rate-limited per client address, so nobody can try tokens in bulk.
- Photos are reached through short-lived links signed for one photo and one session.

Who may see and do what is never decided here: every page asks the review services (`scope_for`,
`Scope.covers`, `decide`) exactly as the chat commands do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.roles import Role
from bot.review.scope import communes_in_scope, provinces_in_scope, scope_for
from bot.storage.core import affected
from bot.storage.models import Person, WebLink, WebSession

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=8)
PHOTO_TTL = timedelta(minutes=30)
KEEP_ENDED = timedelta(days=1)
COOKIE = "desk"
# The roles that may use the desk, in the order a page opens with; a province role joins when
# the project grants one.
DESK_ROLES: tuple[Role, ...] = tuple(
    Role(name) for name in ("officer", "leader", "province") if name in Role._value2member_map_
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def desk_roles(session: AsyncSession, person_id: int | None) -> list[Role]:
    """The desk roles this person holds now (with a scope), through the same check as chat."""
    held: list[Role] = []
    for role in DESK_ROLES:
        if role == Role.PROVINCE:
            # A province reader covers communes, not branches: the check /thongke makes.
            if (
                person_id is not None
                and await communes_in_scope(session, person_id)
                and await provinces_in_scope(session, person_id)
            ):
                held.append(role)
        elif await scope_for(session, person_id, role) is not None:
            held.append(role)
    return held


async def prune(session: AsyncSession, now: datetime) -> None:
    """Forget links and sessions a day after they stopped working."""
    cutoff = now - KEEP_ENDED
    await session.execute(delete(WebLink).where(WebLink.expires_at < cutoff))
    await session.execute(
        delete(WebSession).where(
            (WebSession.expires_at < cutoff) | (WebSession.revoked_at.is_not(None) & (WebSession.revoked_at < cutoff))
        )
    )


async def issue_link(session: AsyncSession, person_id: int, now: datetime) -> str:
    """A new sign-in token for this person (the caller puts it in a URL sent only to them)."""
    await prune(session, now)
    token = secrets.token_urlsafe(32)
    session.add(WebLink(token_hash=_digest(token), person_id=person_id, created_at=now, expires_at=now + LINK_TTL))
    await session.flush()
    return token


@dataclass
class Opened:
    session: WebSession
    cookie: str


async def redeem_link(session: AsyncSession, token: str, now: datetime) -> Opened | None:
    """Open a session from a link token: only once, only within its time, only for someone who
    still holds a desk role. None otherwise (the caller says the link no longer works)."""
    if not token or len(token) > 128:
        return None
    link = await session.scalar(select(WebLink).where(WebLink.token_hash == _digest(token)))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    # Used up whatever follows; the conditional update stops two browsers racing for one link.
    claimed = await session.execute(
        update(WebLink).where(WebLink.id == link.id, WebLink.used_at.is_(None)).values(used_at=now)
    )
    if affected(claimed) != 1:
        return None
    person = await session.get(Person, link.person_id)
    if person is None or person.deleted_at is not None or not await desk_roles(session, person.id):
        return None
    cookie = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=_digest(cookie),
        csrf=secrets.token_urlsafe(32),
        person_id=person.id,
        created_at=now,
        expires_at=now + SESSION_TTL,
    )
    session.add(web_session)
    await session.flush()
    return Opened(web_session, cookie)


async def current_session(session: AsyncSession, cookie: str | None, now: datetime) -> WebSession | None:
    """The live session a cookie names: not expired, not revoked, its person not deleted."""
    if not cookie or len(cookie) > 128:
        return None
    found = await session.scalar(select(WebSession).where(WebSession.token_hash == _digest(cookie)))
    if found is None or found.revoked_at is not None or found.expires_at <= now:
        return None
    person = await session.get(Person, found.person_id)
    if person is None or person.deleted_at is not None:
        return None
    return found


async def sign_out(session: AsyncSession, web_session: WebSession, now: datetime) -> None:
    web_session.revoked_at = now
    await session.flush()


async def sign_out_everywhere(session: AsyncSession, person_id: int, now: datetime) -> int:
    """End every desk session of this person and void their unused links; the number ended."""
    ended = await session.execute(
        update(WebSession)
        .where(WebSession.person_id == person_id, WebSession.revoked_at.is_(None), WebSession.expires_at > now)
        .values(revoked_at=now)
    )
    await session.execute(
        update(WebLink).where(WebLink.person_id == person_id, WebLink.used_at.is_(None)).values(used_at=now)
    )
    return affected(ended)


def csrf_ok(expected: str, submitted: object) -> bool:
    """Whether a form carries the session's CSRF secret."""
    return bool(expected) and bool(submitted) and hmac.compare_digest(expected.encode(), str(submitted).encode())


class RateLimit:
    """At most `limit` attempts per `window` seconds for each key (a client address)."""

    def __init__(self, limit: int = 10, window: float = 60.0, clock=time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle addresses
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                del self._hits[stale]
        return True


# ---- photo links ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _photo_mac(secret: str, payload: str) -> str:
    key = hmac.new(secret.encode(), b"desk-photo", hashlib.sha256).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18])


def photo_token(secret: str, evidence_id: int, variant: str, session_id: int, now: datetime) -> str:
    """A link part for one photo (`thumb` or `full`), good for this session and half an hour."""
    payload = f"{evidence_id}.{variant}.{session_id}.{int((now + PHOTO_TTL).timestamp())}"
    return f"{payload}.{_photo_mac(secret, payload)}"


def read_photo_token(secret: str, token: str, session_id: int, now: datetime) -> tuple[int, str] | None:
    """(evidence id, variant) when the token is genuine, unexpired and for this session."""
    try:
        evidence_id, variant, token_session, expires, mac = token.split(".")
        payload = f"{evidence_id}.{variant}.{token_session}.{expires}"
        if not hmac.compare_digest(mac, _photo_mac(secret, payload)):
            return None
        if int(token_session) != session_id or now.timestamp() > int(expires) or variant not in ("thumb", "full"):
            return None
        return int(evidence_id), variant
    except ValueError:
        return None
