"""Consent rows: the proof of who agreed to which text, when, and when they withdrew.

Rows are only added, never changed — except that a row given before registration (the person
did not exist yet) gets its person once registration creates one (`attach_person`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Consent


class ConsentKind(StrEnum):
    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    GUARDIAN = "guardian"  # a parent or guardian agreed for a household member under 16


class ConsentMethod(StrEnum):
    CHAT = "chat"  # the person pressed the button themselves
    PROXY = "proxy"  # a branch leader confirmed it for someone without a phone
    DELETION = "deletion"  # withdrawn by deleting one's data (/xoadulieu)


# What the consent text names as purposes (kept as data in each row).
PURPOSES = ("registration", "self_assessment", "recognition", "statistics")
GUARDIAN_PURPOSES = ("household_member_under_16",)


def fingerprint(text: str) -> str:
    """sha256 of the exact words shown."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShownText:
    """Which text a person saw: its version id, the fingerprint of the exact words, the locale and
    the controller it named. Kept in the conversation between showing and answering."""

    version: str
    sha256: str
    locale: str
    controller: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ShownText | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["version"]), str(data["sha256"]), str(data["locale"]), str(data["controller"]))
        except KeyError:
            return None


async def record(
    session: AsyncSession,
    kind: ConsentKind,
    method: ConsentMethod,
    shown: ShownText | None,
    *,
    at: datetime,
    person_id: int | None = None,
    account_id: int | None = None,
    recorded_by_person_id: int | None = None,
    household_id: int | None = None,
    purposes: tuple[str, ...] = PURPOSES,
) -> Consent:
    row = Consent(
        kind=kind.value,
        method=method.value,
        person_id=person_id,
        account_id=account_id,
        recorded_by_person_id=recorded_by_person_id,
        household_id=household_id,
        text_version=shown.version if shown else None,
        text_sha256=shown.sha256 if shown else None,
        locale=shown.locale if shown else None,
        controller=shown.controller[:400] if shown else None,
        purposes=list(purposes),
        at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def attach_person(session: AsyncSession, account_id: int, person_id: int) -> None:
    """Registration created the person: the account's earlier consent rows are theirs."""
    await session.execute(
        update(Consent)
        .where(Consent.account_id == account_id, Consent.person_id.is_(None))
        .values(person_id=person_id)
        .execution_options(synchronize_session=False)
    )


def _whose(person_id: int | None, account_id: int | None):
    conditions = []
    if person_id is not None:
        conditions.append(Consent.person_id == person_id)
    if account_id is not None:
        conditions.append(Consent.account_id == account_id)
    return or_(*conditions) if conditions else Consent.id.is_(None)


async def latest(
    session: AsyncSession, kind: ConsentKind, *, person_id: int | None, account_id: int | None
) -> Consent | None:
    """The newest row of a kind for a person (any of their accounts) or an account."""
    return await session.scalar(
        select(Consent)
        .where(Consent.kind == kind.value, _whose(person_id, account_id))
        .order_by(Consent.id.desc())
        .limit(1)
    )


async def count(session: AsyncSession, kind: ConsentKind, *, person_id: int | None, account_id: int | None) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(Consent).where(Consent.kind == kind.value, _whose(person_id, account_id))
        )
        or 0
    )
