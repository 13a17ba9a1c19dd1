"""Commune setup from YAML: the example commune, re-running, and bad files."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import event, func, select

from bot.storage.commune import (
    CommuneFileError,
    apply_commune,
    branches_of,
    campaign_for,
    communes,
    load_commune_file,
    parse_commune,
    province_of,
)
from bot.storage.models import Campaign, CampaignDeadline, OrgUnit
from tests.conftest import EXAMPLE_COMMUNE


async def test_example_commune_is_created_with_branches_campaigns_and_targets(app):
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        branches = list(
            await session.scalars(select(OrgUnit).where(OrgUnit.parent_id == commune.id).order_by(OrgUnit.position))
        )
        assert commune.kind == "commune" and commune.households_total == 2310
        assert [b.name for b in branches][:2] == ["Buôn Ken", "Thôn Hà Lương"]
        assert sum(b.households_total for b in branches) == commune.households_total
        # Two levels since 1 July 2025: the commune belongs to its province, with its official code.
        province = await session.get(OrgUnit, commune.parent_id)
        assert province.kind == "province" and province.parent_id is None
        assert commune.official_code == "99001"
        assert not list(await session.scalars(select(OrgUnit).where(OrgUnit.kind == "district")))
        campaign = await campaign_for(session, commune.id, date(2026, 11, 25))
        assert campaign.year == 2026 and campaign.targets == {"gd": 70, "cd": 40}
        assert campaign.reminder_offsets == [30, 7, 1]
        kinds = {
            d.kind: d.due_on
            for d in await session.scalars(select(CampaignDeadline).where(CampaignDeadline.campaign_id == campaign.id))
        }
        assert kinds["self_declaration"] == date(2026, 11, 30)
        assert (await campaign_for(session, commune.id, date(2027, 2, 1))).year == 2027
        assert (await campaign_for(session, commune.id, date(2030, 2, 1))).year == 2027


async def test_running_init_again_updates_in_place(app):
    text = (
        EXAMPLE_COMMUNE.read_text(encoding="utf-8")
        .replace("Thôn Hà Lương", "Thôn Hà Lương Mới")
        .replace("self_declaration: 2026-11-30", "self_declaration: 2026-12-01")
    )
    async with app.sessions.begin() as session:
        await apply_commune(session, parse_commune(text, "edited"), app.clock.now())
        await apply_commune(session, parse_commune(text, "edited"), app.clock.now())
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OrgUnit)) == 7
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 2
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "thon-ha-luong"))
        assert branch.name == "Thôn Hà Lương Mới"
        due = await session.scalar(
            select(CampaignDeadline.due_on)
            .where(CampaignDeadline.kind == "self_declaration")
            .order_by(CampaignDeadline.due_on)
        )
        assert due == date(2026, 12, 1)


async def test_lists_read_in_a_transaction_are_read_once_and_follow_a_commune_file_applied_in_it(app):
    """`communes` and `branches_of` are read once per transaction (a registration step and the
    question after it both list them), and applying a commune file in the same transaction is
    seen at once; `province_of` walks up through units it then holds."""
    statements: list[str] = []
    event.listen(app.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    text = EXAMPLE_COMMUNE.read_text(encoding="utf-8")
    # A second commune of the same province, with branches of its own.
    added = (
        text.replace("code: ea-tul", "code: ea-tul-2")
        .replace("Xã Ea Tul", "Xã Ea Tul Hai")
        .replace('"99001"', '"99002"')
        .replace("{code: ", "{code: hai-")
    )
    async with app.sessions.begin() as session:
        (ea_tul,) = await communes(session)
        branches = await branches_of(session, ea_tul.id)
        statements.clear()
        assert [c.id for c in await communes(session)] == [ea_tul.id]
        assert await branches_of(session, ea_tul.id) == branches
        assert statements == []
        province = await province_of(session, branches[0].id)
        assert province is not None and province.kind == "province"
        statements.clear()
        assert await province_of(session, branches[0].id) is province
        assert statements == []

        second = await apply_commune(session, parse_commune(added, "second"), app.clock.now())
        assert {c.name for c in await communes(session)} == {"Xã Ea Tul", "Xã Ea Tul Hai"}
        assert [b.code for b in await branches_of(session, second.id)] == [f"hai-{b.code}" for b in branches]
        assert await branches_of(session, ea_tul.id) == branches
    async with app.sessions.begin() as session:  # a new transaction reads again
        statements.clear()
        assert len(await communes(session)) == 2
        assert len(statements) == 1


async def test_the_communes_association_is_kept_for_the_consent_text(app):
    """The data controller named in the consent text comes from the commune file; taking it out of
    the file takes it out of the database too (the text then falls back to the commune's name)."""
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        assert (commune.association_name, commune.association_contact) == (
            "Hội Khuyến học xã Ea Tul",
            "Văn phòng UBND xã Ea Tul",
        )
    text = EXAMPLE_COMMUNE.read_text(encoding="utf-8")
    start = text.index("association:")
    without = text[:start] + text[text.index("branches:") :]
    async with app.sessions.begin() as session:
        await apply_commune(session, parse_commune(without, "edited"), app.clock.now())
    async with app.sessions() as session:
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        assert (commune.association_name, commune.association_contact) == (None, None)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("registration: 2026-03-31", "signup: 2026-03-31"), "unknown deadline kinds ['signup']"),
        (("targets: {gd: 70, cd: 40}", "targets: {gd: 170}"), "percentage"),
        (("code: buon-ken", "code: Buôn Ken"), "branches.0.code"),
        (("code: thon-tan-lap", "code: buon-ken"), "codes must be unique"),
        (("reminder_offsets: [30, 7, 1]", "reminder_offsets: [-1]"), "reminder offsets"),
        (("name: Hội Khuyến học xã Ea Tul", "nam: Hội Khuyến học xã Ea Tul"), "association.name"),
        (('official_code: "99001"', 'official_code: "9901"'), "commune.official_code"),
        (
            ("commune:\n", "district: {code: cu-mgar, name: Huyện Cư M'gar}\ncommune:\n"),
            "districts were abolished on 1 July 2025",
        ),
    ],
)
def test_bad_commune_files_are_explained(tmp_path, edit, message):
    path = tmp_path / "commune.yaml"
    path.write_text(EXAMPLE_COMMUNE.read_text(encoding="utf-8").replace(*edit, 1), encoding="utf-8")
    with pytest.raises(CommuneFileError) as caught:
        load_commune_file(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
