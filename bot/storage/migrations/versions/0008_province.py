"""two-level local government: no district level; official unit codes

Since 1 July 2025 Vietnam has provinces and communes only. `org_units` gets `official_code`
(a commune's 5-digit code from QĐ 19/2025/QĐ-TTg). Every district row is dropped: its communes
(and any role grant or invite scoped to it) move to its province, or to the top when it had none.
Downgrading removes the column; the districts are not brought back.

Revision ID: 0008_province
Revises: 0007_zalo
Create Date: 2026-12-03 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_province"
down_revision = "0007_zalo"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("official_code", sa.String(length=8), nullable=True))

    bind = op.get_bind()
    units = sa.table("org_units", sa.column("id"), sa.column("kind"), sa.column("parent_id"))
    districts = bind.execute(sa.select(units.c.id, units.c.parent_id).where(units.c.kind == "district")).all()
    for district_id, province_id in districts:
        bind.execute(units.update().where(units.c.parent_id == district_id).values(parent_id=province_id))
        for name in ("role_grants", "invite_codes"):
            scoped = sa.table(name, sa.column("scope_unit_id"))
            bind.execute(scoped.update().where(scoped.c.scope_unit_id == district_id).values(scope_unit_id=province_id))
        bind.execute(units.delete().where(units.c.id == district_id))


def downgrade() -> None:
    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.drop_column("official_code")
