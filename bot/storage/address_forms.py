"""How people are addressed ("bạn", "bác" or "ông/bà"): their commune's `address:` setting.

Asked for every message and every reminder, so each process keeps the small table of units in
memory and reads it again at most once a minute, and at once after this process committed a
change to a unit (a commune file applied by another worker takes effect within that minute).
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import NEUTRAL, normalise_address
from bot.storage.calendar import changing_units, units_changed_generation
from bot.storage.models import OrgUnit, Person
from bot.storage.people import get_account

REFRESH_SECONDS = 60.0


class AddressForms:
    """The form of address for a branch's people; for someone without a branch yet, the form of
    the only commune installed (neutral when there are several)."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._refresh = refresh_seconds
        self._forms: dict[int | None, str] = {}
        self._read_at: float | None = None
        self._generation = -1

    def forget(self) -> None:
        """Read the settings again at the next question (after this process changed them)."""
        self._read_at = None

    async def of_branch(self, session: AsyncSession, branch_id: int | None) -> str:
        forms = self._forms
        if (
            self._read_at is None
            or self._generation != units_changed_generation()
            or time.monotonic() - self._read_at >= self._refresh
            or changing_units(session)
        ):
            generation = units_changed_generation()
            forms = await _read(session)
            if not changing_units(session):  # a change not yet committed is not kept
                self._forms, self._read_at, self._generation = forms, time.monotonic(), generation
        return forms.get(branch_id, forms.get(None, NEUTRAL))

    async def of_account(self, session: AsyncSession, channel: str, user_id: str) -> tuple[str | None, str]:
        """The language and the form of address of whoever writes from this account (outside a
        conversation step: an error message, the terminal)."""
        account = await get_account(session, channel, user_id)
        person = await session.get(Person, account.person_id) if account and account.person_id else None
        address = await self.of_branch(session, person.branch_id if person else None)
        return (account.locale if account else None), address


async def _read(session: AsyncSession) -> dict[int | None, str]:
    rows = (await session.execute(select(OrgUnit.id, OrgUnit.parent_id, OrgUnit.kind, OrgUnit.address_form))).all()
    communes: dict[int | None, str] = {
        unit_id: normalise_address(form) for unit_id, _parent, kind, form in rows if kind == "commune"
    }
    forms: dict[int | None, str] = dict(communes)
    for unit_id, parent_id, kind, _form in rows:
        if kind == "branch" and parent_id in communes:
            forms[unit_id] = communes[parent_id]
    if len(communes) == 1:
        forms[None] = next(iter(communes.values()))
    return forms
