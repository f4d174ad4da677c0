"""Name the foreign keys from dataset and model versions to their run (commit 079d93e).

Runs point at versions and versions back at runs; named constraints (``fk_datasetversion_run``,
``fk_modelversion_run``) let the tables be created and dropped in any order. PostgreSQL renames
the constraints it named ``<table>_run_id_fkey``; SQLite's foreign keys carry no name a query or
a later migration uses, so nothing changes there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RENAMES = (
    ("datasetversion", "datasetversion_run_id_fkey", "fk_datasetversion_run"),
    ("modelversion", "modelversion_run_id_fkey", "fk_modelversion_run"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, old, new in RENAMES:
        op.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{old}" TO "{new}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, old, new in RENAMES:
        op.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{new}" TO "{old}"')
