"""review that scales: who removed a role; photos' perceptual hashes

`role_grants.revoked_by_person_id` records who removed a role (/thuhoi), next to the existing
`revoked_at`. `evidence.dhash` keeps a perceptual hash of each photo, so that reviewers see a
photo (or a near copy of it) used on two items or by two households.
`submission_events.override_reason` keeps why an officer decided before the branch had reviewed.

Revision ID: 0011_review
Revises: 0010_season
Create Date: 2026-12-03 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_review"
down_revision = "0010_season"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("role_grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked_by_person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_role_grants_revoked_by_person_id_people"), "people", ["revoked_by_person_id"], ["id"]
        )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dhash", sa.String(length=16), nullable=True))
    with op.batch_alter_table("submission_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("override_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submission_events", schema=None) as batch_op:
        batch_op.drop_column("override_reason")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("dhash")
    with op.batch_alter_table("role_grants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_role_grants_revoked_by_person_id_people"), type_="foreignkey")
        batch_op.drop_column("revoked_by_person_id")
