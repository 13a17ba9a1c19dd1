"""processed messages: until when the worker that handled a message may still be sending its replies

A duplicate delivery that reaches another worker meanwhile must not send the stored replies a
second time; once the lease has run out (the worker died), a redelivery sends them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending_until", bot.storage.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.drop_column("sending_until")
