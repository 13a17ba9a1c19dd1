"""the resident's season: after-deadline policy, address form, campaign opening day, late mark

`org_units.after_deadline` ("late" | "closed") says what a commune does after a deadline;
`org_units.address_form` how residents are addressed; `campaigns.opens_on` the first day of a
campaign's registration window; `submissions.late` marks what was registered or submitted late.

Revision ID: 0010_season
Revises: 0009_web
Create Date: 2026-12-03 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_season"
down_revision = "0009_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_deadline", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("address_form", sa.String(length=16), nullable=True))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opens_on", sa.Date(), nullable=True))
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("late")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("opens_on")
    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.drop_column("address_form")
        batch_op.drop_column("after_deadline")
