"""One-time invite codes: an officer hands one to a future branch leader (or officer), who types
it in chat to receive the role. Codes are short, unambiguous, expire, and work once."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.core import affected
from bot.storage.models import InviteCode, InviteFailure, OrgUnit, Person, RoleGrant
from bot.storage.people import SCOPE_KIND, Role, grant_role, live_grants

# No 0/O, 1/I/L: read aloud over the phone or copied from paper without mistakes.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
DIGITS = "23456789"
CODE_LENGTH = 8
DEFAULT_TTL = timedelta(days=7)
INVITABLE = (Role.LEADER, Role.OFFICER)
# "ABCD-2345" typed alone, or after "ma"/"mã"/"code" without the slash.
_CODE_ALONE = re.compile(r"^\s*([A-Za-z0-9]{4})[\s-]?([A-Za-z0-9]{4})\s*$")


class InviteError(Exception):
    """Why a code cannot be used; `reason` is unknown | expired | used | revoked."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NotAllowed(Exception):
    """The creator may not invite this role for this scope."""


def new_code() -> str:
    """8 characters with at least two digits and two letters, shown as ABCD-2345."""
    while True:
        raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        digits = sum(ch in DIGITS for ch in raw)
        if 2 <= digits <= CODE_LENGTH - 2:
            return f"{raw[:4]}-{raw[4:]}"


def normalise_code(text: str) -> str | None:
    """'abcd 2345', 'ABCD-2345', ' abcd2345 ' → 'ABCD2345'; None when it cannot be a code."""
    raw = re.sub(r"[\s\-_.]", "", text or "").upper()
    if len(raw) != CODE_LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    digits = sum(ch in DIGITS for ch in raw)
    if not 2 <= digits <= CODE_LENGTH - 2:
        return None
    return raw


def looks_like_code(text: str) -> str | None:
    """A message that is only a code (as people paste it); the normalised code or None."""
    match = _CODE_ALONE.match(text or "")
    return normalise_code(match.group(1) + match.group(2)) if match else None


def code_hash(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


async def may_invite(session: AsyncSession, creator_id: int | None, role: Role, scope: OrgUnit) -> bool:
    """Admins invite anyone; an officer invites leaders of their commune's branches and fellow
    officers of their commune. `creator_id` None is the installation's CLI."""
    if creator_id is None:
        return True
    grants = await live_grants(session, creator_id)
    if any(g.role == Role.ADMIN.value for g in grants):
        return True
    communes = {g.scope_unit_id for g in grants if g.role == Role.OFFICER.value}
    if role == Role.OFFICER:
        return scope.id in communes
    if role == Role.LEADER:
        return scope.parent_id in communes
    return False


@dataclass(frozen=True)
class CreatedInvite:
    code: str  # shown once; only its hash is stored
    invite: InviteCode


async def create_invite(
    session: AsyncSession,
    *,
    role: Role | str,
    scope: OrgUnit,
    created_by: Person | None,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> CreatedInvite:
    role = Role(role)
    if role not in INVITABLE:
        raise NotAllowed(f"invite codes are for {', '.join(r.value for r in INVITABLE)}")
    if scope.kind != SCOPE_KIND[role]:
        raise NotAllowed(f"a {role.value} needs a {SCOPE_KIND[role]} as scope, not a {scope.kind}")
    if not await may_invite(session, created_by.id if created_by else None, role, scope):
        raise NotAllowed("outside the creator's scope")
    for _ in range(5):
        code = new_code()
        digest = code_hash(normalise_code(code) or "")
        if await session.scalar(select(InviteCode.id).where(InviteCode.code_hash == digest)) is None:
            break
    invite = InviteCode(
        code_hash=digest,
        role=role.value,
        scope_unit_id=scope.id,
        created_by_person_id=created_by.id if created_by else None,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.flush()
    return CreatedInvite(code, invite)


async def find_invite(session: AsyncSession, text: str, now: datetime) -> InviteCode:
    """The usable invite for a typed code, or InviteError saying why not."""
    normalised = normalise_code(text)
    if normalised is None:
        raise InviteError("unknown")
    invite = await session.scalar(select(InviteCode).where(InviteCode.code_hash == code_hash(normalised)))
    if invite is None:
        raise InviteError("unknown")
    if invite.revoked_at is not None:
        raise InviteError("revoked")
    if invite.redeemed_at is not None:
        raise InviteError("used")
    if invite.expires_at <= now:
        raise InviteError("expired")
    return invite


async def redeem(session: AsyncSession, invite: InviteCode, person: Person, now: datetime) -> RoleGrant:
    """Use the code once: a conditional update, so two people typing it at once cannot both win."""
    claimed = await session.execute(
        update(InviteCode)
        .where(InviteCode.id == invite.id, InviteCode.redeemed_at.is_(None), InviteCode.revoked_at.is_(None))
        .values(redeemed_at=now, redeemed_by_person_id=person.id)
        .execution_options(synchronize_session=False)
    )
    if affected(claimed) != 1:
        raise InviteError("used")
    scope = await session.get(OrgUnit, invite.scope_unit_id) if invite.scope_unit_id else None
    granted_by = await session.get(Person, invite.created_by_person_id) if invite.created_by_person_id else None
    return await grant_role(session, person, invite.role, scope, granted_by=granted_by, now=now)


# ---- wrong codes ------------------------------------------------------------------------------


async def failures_since(session: AsyncSession, account_id: int, person_id: int | None, since: datetime) -> int:
    """Wrong codes typed since `since` from this chat account or by this person (any account)."""
    whose = InviteFailure.account_id == account_id
    if person_id is not None:
        whose = or_(whose, InviteFailure.person_id == person_id)
    return (
        await session.scalar(select(func.count()).select_from(InviteFailure).where(whose, InviteFailure.at >= since))
        or 0
    )


async def record_failure(session: AsyncSession, account_id: int, person_id: int | None, now: datetime) -> None:
    """Remember a wrong code (in the database: the limit holds across /start, declining consent
    and restarts); this account's entries older than two days go."""
    await session.execute(
        delete(InviteFailure).where(InviteFailure.account_id == account_id, InviteFailure.at < now - timedelta(days=2))
    )
    session.add(InviteFailure(account_id=account_id, person_id=person_id, at=now))
    await session.flush()
