"""``unlearningrun.purge_check``: the purge's Great Expectations check as the run recorded it
(suite, success, failed check names, GX statistics, the stored validation result's id and its
data-docs page under the state folder). Runs recorded before it hold ``{}``: their purge check,
if one ran, was recorded nowhere but in a failed run's error.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unlearningrun") as batch:
        batch.add_column(
            sa.Column("purge_check", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("unlearningrun") as batch:
        batch.drop_column("purge_check")
