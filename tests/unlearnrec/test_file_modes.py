"""Files holding personal data are private to the platform's user: the SQLite ledger (open
tickets carry raw subject ids) 0600 with its WAL files, the DVC store and its local remote 0700.
(The inbox's processed/ and refused/ folders: tests/unlearnrec/compliance/test_ingest.py.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from unlearnrec.compliance.store import DvcStore
from unlearnrec.ledger import AuditEvent, append_event, init_db, make_engine, session_scope

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common default umask, under which plain creation gives 0644 files, 0755 folders."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_the_sqlite_ledger_and_its_wal_files_are_0600(tmp_path, open_umask):
    db = tmp_path / "var" / "ledger.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    with session_scope(engine) as session:
        append_event(session, actor="t", action="a", entity="e", entity_id=1)
    assert mode(db) == 0o600
    for extra in ("-wal", "-shm"):
        side = db.with_name(db.name + extra)
        assert side.exists() and mode(side) == 0o600, extra
    engine.dispose()


def test_an_existing_world_readable_ledger_is_tightened(tmp_path, open_umask):
    db = tmp_path / "ledger.sqlite"
    init_db(make_engine(f"sqlite:///{db}"))
    os.chmod(db, 0o644)
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as session:
        assert session.get(AuditEvent, 1) is None
    assert mode(db) == 0o600


def test_the_store_and_its_local_remote_are_0700(tmp_path, open_umask):
    store = DvcStore(tmp_path / "var" / "store", tmp_path / "var" / "dvc-remote").ensure()
    assert mode(store.root) == 0o700
    assert mode(tmp_path / "var" / "dvc-remote") == 0o700
