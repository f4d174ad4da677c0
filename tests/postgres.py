"""A throw-away PostgreSQL database on the server ``UNLEARNREC_TEST_PG_URL`` names (``.ci/run``
starts one, see ``.ci/postgres.sh``); tests that need it skip when the variable is unset."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "UNLEARNREC_TEST_PG_URL"


@contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """The URL of a fresh database named ``{prefix}_<random>``, dropped on exit."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
