"""Alembic's environment for the ledger: run on the connection ``unlearnrec.ledger.migrate``
hands over (``config.attributes["connection"]``), against the SQLModel tables. SQLite alters
tables in batch mode (copy and move), as it cannot alter most things in place."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from unlearnrec.ledger import models  # noqa: F401  (registers the tables)

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through unlearnrec.ledger.migrate
    raise RuntimeError("run the ledger's migrations through `unlearnrec db upgrade`")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
