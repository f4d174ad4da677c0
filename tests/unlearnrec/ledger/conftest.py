"""Ledger fixtures: an ``engine`` on SQLite always, and on PostgreSQL when
``UNLEARNREC_TEST_PG_URL`` names a server (``.ci/run`` starts one, see ``.ci/postgres.sh``).

PostgreSQL: one fresh database per test module (created and dropped through the given URL), its
tables emptied for every test. SQLite: a file under ``tmp_path`` (not ``:memory:``), so WAL and
the file-based read-only mode are exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from tests.postgres import PG_ENV, temporary_database
from unlearnrec.ledger import init_db, make_engine
from unlearnrec.records.certificates import pseudonymise
from unlearnrec.records.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parents[3]
SECRET = b"ledger-test-pseudonym-secret-32b"


@pytest.fixture(scope="module")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    with temporary_database("unlearnrec_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[Engine]:
    """A writable ledger engine with empty, freshly created tables."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    else:
        if not os.environ.get(PG_ENV):
            pytest.skip(f"{PG_ENV} is not set")
        eng = make_engine(request.getfixturevalue("pg_database_url"))
    init_db(eng)
    if request.param == "postgresql":
        # Empty the module's tables. (``metadata.drop_all`` cannot: the foreign keys between
        # unlearningrun, datasetversion and modelversion form an unnamed cycle.)
        tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.tables.values())
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(ROOT / "policies" / "gdpr-default.yaml")


@pytest.fixture(scope="session")
def pseudo():
    return lambda subject: pseudonymise(subject, SECRET)
