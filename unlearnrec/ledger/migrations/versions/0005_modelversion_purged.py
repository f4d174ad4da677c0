"""``modelversion.purged`` and ``purged_at``: whether a model version's files left the store (its
DVC cache and local remotes), and when. A superseded model, one that failed verification or one
trained on data later erased is purged by retention; before this column only the
``retention.model_purged`` event said so. Rows recorded before it hold False; the next retention
pass records the ones whose files are already gone (``erasure.record_purged_models``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("modelversion") as batch:
        batch.add_column(
            sa.Column("purged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("purged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("modelversion") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("purged")
