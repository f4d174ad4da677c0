"""The ``lease`` table: named, expiring claims on work, one holder at a time (commit ed3e6e3).

A ledger made before migrations existed may hold the table already while older elsewhere: the
code of that time created missing tables on start (``create_all``), so a ledger opened by the
leases' code before its upgrade got the table then. It is created only where it is missing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("lease"):
        return
    op.create_table(
        "lease",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_lease_expires_at", "lease", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lease_expires_at", table_name="lease")
    op.drop_table("lease")
