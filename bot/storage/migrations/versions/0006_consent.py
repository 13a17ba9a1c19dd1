"""consent that can be proven; wrong invite codes remembered; the commune's association

`consents` keeps one row per consent given, guardian confirmation or withdrawal (which text
version, its sha256, the controller named, when). `invite_failures` keeps wrong invite codes for
a day, so the daily limit holds across /start and restarts. A commune names its learning
association (the data controller) in `org_units.association_name`/`association_contact`.

Revision ID: 0006_consent
Revises: 0005
Create Date: 2026-12-03 09:49:35
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0006_consent"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("recorded_by_person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("household_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("text_version", sa.String(length=16), nullable=True),
        sa.Column("text_sha256", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=5), nullable=True),
        sa.Column("controller", sa.String(length=400), nullable=True),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["channel_accounts.id"],
            name=op.f("fk_consents_account_id_channel_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_consents_household_id_households"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_consents_person_id_people")),
        sa.ForeignKeyConstraint(
            ["recorded_by_person_id"], ["people.id"], name=op.f("fk_consents_recorded_by_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consents_person_id"), ["person_id"], unique=False)

    op.create_table(
        "invite_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["channel_accounts.id"],
            name=op.f("fk_invite_failures_account_id_channel_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_invite_failures_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_failures")),
    )
    with op.batch_alter_table("invite_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_failures_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_failures_person_id"), ["person_id"], unique=False)

    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("association_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("association_contact", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("org_units", schema=None) as batch_op:
        batch_op.drop_column("association_contact")
        batch_op.drop_column("association_name")

    with op.batch_alter_table("invite_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_failures_person_id"))
        batch_op.drop_index(batch_op.f("ix_invite_failures_account_id"))

    op.drop_table("invite_failures")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_person_id"))
        batch_op.drop_index(batch_op.f("ix_consents_account_id"))

    op.drop_table("consents")
