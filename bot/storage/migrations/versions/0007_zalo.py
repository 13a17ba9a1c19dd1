"""operator alerts (Zalo webhook signature failures, OA re-authorisation)

`operator_alerts` keeps one row per kind of trouble an operator must look at: how often it
happened, first and last time, and a short description without personal data. The officer's
digest and `hoctap outbox --problems` show the recent ones.

Revision ID: 0007_zalo
Revises: 0006_consent
Create Date: 2026-12-03 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0007_zalo"
down_revision = "0006_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_alerts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_operator_alerts")),
    )


def downgrade() -> None:
    op.drop_table("operator_alerts")
