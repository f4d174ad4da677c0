"""The ledger's schema migrations (Alembic), configured in code: no ``alembic.ini`` is needed.

``unlearnrec db upgrade`` brings a ledger to the schema this version of the code uses;
``unlearnrec db current`` says where it stands. A new ledger is created at the head revision and
stamped (``unlearnrec.ledger.db.init_db``); a ledger behind it is refused with the command to
run, never half-used.

Revisions (``versions/``), oldest first:

- ``0001``: the first schema the project shipped (commit 8eac72f), as raw DDL per backend.
- ``0002``: the run foreign keys of dataset and model versions named (``fk_*_run``; PostgreSQL).
- ``0003``: ``ticket.removed_hash``, the hash of the pairs each ticket erased.
- ``0004``: the ``lease`` table (named, expiring claims on work).

A change to ``unlearnrec/ledger/models.py`` needs a revision here: ``unlearnrec db revision -m
"what changed"`` writes ``versions/NNNN_what_changed.py`` from the difference between the models
and a scratch ledger at head (then read and edit it: SQLite cannot show everything, and data may
need moving); ``tests/unlearnrec/ledger/test_migrations.py`` fails while the two differ.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def alembic_config(connection=None, *, write_to: Path | None = None):
    """Alembic's configuration for the ledger, built in code (no ``alembic.ini``); with
    ``connection``, the migrations run on it (``env.py`` reads it from the attributes);
    ``write_to``: a further folder of revisions (where ``new_revision`` writes)."""
    import os

    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")  # paths with spaces stay whole
    locations = [str(HERE / "versions"), *([str(write_to)] if write_to else [])]
    config.set_main_option("version_locations", os.pathsep.join(locations))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory():
    """The revision scripts (``versions/``)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this version of the code expects a ledger at."""
    head = script_directory().get_current_head()
    assert head is not None
    return head
