"""reminders: index households by the person who registered them

Reminder rounds and digests find everyone a household's submission concerns (its head and
whoever registered it); without this index that lookup scans every household.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 15:10:54.927734
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_households_registered_by_person_id"), ["registered_by_person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_households_registered_by_person_id"))
