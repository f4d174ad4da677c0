"""Engines and sessions for the ledger: SQLite by default, any SQLAlchemy URL (PostgreSQL in
production) through ``UNLEARNREC_DB_URL``."""

from __future__ import annotations

import logging
import os
import stat
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

from unlearnrec.ledger import models  # noqa: F401  (registers the tables)

log = logging.getLogger("unlearnrec.ledger")


class LedgerUnavailable(RuntimeError):
    """The ledger database cannot be opened; the message says which and why (no secrets)."""


def _sqlite_pragmas(engine: Engine, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")  # the dashboard reads while flows write
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask, 0644 typically),
    and tighten an existing one: open tickets hold raw subject ids. SQLite gives its ``-wal``
    and ``-shm`` files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except PermissionError:  # another user's file: leave it, SQLite will say what it can do
        pass
    finally:
        os.close(fd)
    for extra in ("-wal", "-shm"):
        side = path.with_name(path.name + extra)
        try:
            if stat.S_IMODE(side.stat().st_mode) & 0o077:
                os.chmod(side, 0o600)
        except (FileNotFoundError, PermissionError):
            pass


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for ``url``. ``read_only``: SQLite opens the file with ``mode=ro`` (and fails
    if it does not exist); PostgreSQL sessions default to read-only transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if read_only:
            if not database or database == ":memory:" or not Path(database).exists():
                raise LedgerUnavailable(f"no ledger database at {database or url}")
            engine = create_engine(
                f"sqlite:///file:{database}?mode=ro&uri=true",
                connect_args={"check_same_thread": False},
            )
        else:
            if database and database != ":memory:":
                _private_sqlite_file(Path(database))
            engine = create_engine(url, connect_args={"check_same_thread": False})
        _sqlite_pragmas(engine, read_only)
        return engine
    connect_args: dict = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    if read_only and parsed.get_backend_name() == "postgresql":
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


class LedgerOutOfDate(LedgerUnavailable):
    """The ledger's schema is not the one this code uses (behind it, unversioned or newer); the
    message says what to run."""


UPGRADE_COMMAND = "unlearnrec db upgrade"
_LOCK_KEY = 0x756E6C7265630001  # PostgreSQL advisory lock serialising ledger creation/upgrade


@contextmanager
def _schema_connection(engine: Engine) -> Iterator[Connection]:
    """One transaction in which the schema is read, created or migrated, alone: PostgreSQL takes
    an advisory lock; SQLite starts with ``BEGIN IMMEDIATE`` (the write lock, so two processes
    opening a new ledger at once do not both create it) on a separate connection with foreign
    keys off while tables are rebuilt (batch migrations), and on transactional DDL."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        own = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})

        @event.listens_for(own, "connect")
        def _on_connect(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.close()

        @event.listens_for(own, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with own.begin() as conn:
                yield conn
        finally:
            own.dispose()
        return
    with engine.begin() as conn:
        if url.get_backend_name() == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        yield conn


def _unversioned_revision(conn: Connection) -> str | None:
    """Which revision a ledger made before migrations existed (by ``create_all``, no
    ``alembic_version``) matches: None when it holds none of the ledger's tables."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if "ticket" not in tables:
        return None
    if "removed_hash" not in {c["name"] for c in inspector.get_columns("ticket")}:
        names = {fk.get("name") for fk in inspector.get_foreign_keys("datasetversion")}
        # (SQLite's foreign keys are unnamed: its ledgers read as 0001, 0002 is a no-op there)
        return "0002" if "fk_datasetversion_run" in names else "0001"
    if "lease" not in tables:
        return "0003"
    model_columns = {c["name"] for c in inspector.get_columns("modelversion")}
    if "purged" not in model_columns:
        return "0004"
    run_columns = {c["name"] for c in inspector.get_columns("unlearningrun")}
    return "0006" if "purge_check" in run_columns else "0005"


def _create(conn: Connection) -> None:
    """A new ledger: every revision from the baseline, so that it has exactly the schema an
    upgraded one has. (Not ``create_all``: SQLAlchemy leaves out SQLite's named, deferred foreign
    keys once the same metadata has been created on PostgreSQL in the process.)"""
    from alembic import command

    from unlearnrec.ledger.migrations import alembic_config

    command.upgrade(alembic_config(conn), "head")


def _revision(conn: Connection) -> tuple[str | None, bool]:
    """The ledger's revision and whether it was recorded (False: inferred, unversioned)."""
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise LedgerOutOfDate(f"the ledger records several schema revisions: {', '.join(heads)}")
    if heads:
        return heads[0], True
    return _unversioned_revision(conn), False


def schema_status(engine: Engine) -> dict[str, Any]:
    """Where the ledger stands: ``current`` (None: no ledger tables), ``head`` (what this code
    uses), ``recorded`` (False: a ledger from before migrations, revision inferred from its
    tables) and ``pending`` (the revisions ``upgrade_db`` would apply, oldest first)."""
    from unlearnrec.ledger.migrations import script_directory

    script = script_directory()
    with engine.connect() as conn:
        current, recorded = _revision(conn)
    head = script.get_current_head()
    known = {s.revision for s in script.walk_revisions()}
    if current is not None and current not in known:
        pending: list[str] | None = None  # a ledger newer than this code
    else:
        pending = [
            s.revision for s in reversed(list(script.iterate_revisions("head", current or "base")))
        ]
    return {"current": current, "head": head, "recorded": recorded, "pending": pending}


def upgrade_db(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the ledger's schema to ``revision`` (default: this code's head) in one transaction
    and record it; a ledger from before migrations is first stamped with the revision its
    tables match; a new, empty one is created at head. Returns (before, after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from unlearnrec.ledger.migrations import alembic_config, script_directory

    script = script_directory()
    with _schema_connection(engine) as conn:
        current, recorded = _revision(conn)
        if current is None and revision == "head":
            _create(conn)
            return None, script.get_current_head()
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise LedgerOutOfDate(
                f"the ledger is at schema revision {current}, newer than this version of "
                f"unlearnrec knows (head {script.get_current_head()}): upgrade unlearnrec"
            )
        if current is not None and not recorded:
            MigrationContext.configure(conn).stamp(script, current)
        command.upgrade(alembic_config(conn), revision)
        after, _ = _revision(conn)
    return current, after


def new_revision(message: str, *, write_to: Path | None = None) -> Path:
    """Write the next revision script (numbered after head) from the difference between the
    models and a scratch SQLite ledger at head, into ``versions/`` or ``write_to``; returns its
    path. A draft: read it and edit it before committing it."""
    import tempfile

    from alembic import command

    from unlearnrec.ledger.migrations import HERE, alembic_config, head_revision

    rev_id = f"{int(head_revision()) + 1:04d}"
    folder = write_to or HERE / "versions"
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.sqlite'}")
        try:
            with _schema_connection(engine) as conn:
                command.upgrade(alembic_config(conn), "head")
                script = command.revision(
                    alembic_config(conn, write_to=write_to),
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                    version_path=str(folder),
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def check_db(engine: Engine) -> None:
    """Raise ``LedgerOutOfDate`` unless the ledger's schema is this code's head."""
    status = schema_status(engine)
    if status["current"] == status["head"]:
        return
    where = engine.url.render_as_string(hide_password=True)
    if status["pending"] is None:
        raise LedgerOutOfDate(
            f"the ledger {where} is at schema revision {status['current']}, newer than this "
            f"version of unlearnrec knows (head {status['head']}): upgrade unlearnrec"
        )
    state = (
        "has no ledger tables"
        if status["current"] is None
        else f"is at schema revision {status['current']}"
        + ("" if status["recorded"] else " (made before migrations, inferred from its tables)")
    )
    raise LedgerOutOfDate(
        f"the ledger {where} {state}; this version of unlearnrec needs {status['head']} "
        f"({len(status['pending'] or [])} migration(s) to apply). Back it up, then run: "
        f"{UPGRADE_COMMAND}"
    )


def init_db(engine: Engine) -> None:
    """Open the ledger's schema: a new, empty database is created at the head revision (the
    migrations run, the revision recorded); a ledger at head is used as it is, and one from
    before migrations whose tables match head is stamped; any other ledger raises
    ``LedgerOutOfDate`` naming ``unlearnrec db upgrade`` (a ledger is evidence: it is upgraded
    on purpose, after a backup, not on start)."""
    from alembic.runtime.migration import MigrationContext

    from unlearnrec.ledger.migrations import script_directory

    script = script_directory()
    head = script.get_current_head()
    with engine.connect() as conn:  # the common case, read-only: a ledger at head
        current, recorded = _revision(conn)
    if recorded and current == head:
        return
    if current is None or (current == head and not recorded):
        with _schema_connection(engine) as conn:
            current, recorded = _revision(conn)  # again, under the lock
            if current is None:
                _create(conn)
                return
            if current == head and not recorded:
                MigrationContext.configure(conn).stamp(script, "head")
                return
    if current == head:
        return
    check_db(engine)


# engine -> what to run after a commit that appended audit events (``on_audit_commit``). Both
# held weakly: registering never keeps an engine or its platform alive.
_AFTER_AUDIT_COMMIT: weakref.WeakKeyDictionary[Engine, weakref.WeakMethod] = (
    weakref.WeakKeyDictionary()
)


def on_audit_commit(engine: Engine, callback: Callable[[], None]) -> None:
    """Run ``callback`` (a bound method) after every ``session_scope`` commit on ``engine`` that
    appended audit events (the platform writes its signed head file there). A failing callback
    is logged, never raised: the commit has happened."""
    _AFTER_AUDIT_COMMIT[engine] = weakref.WeakMethod(callback)  # type: ignore[arg-type]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        ref = _AFTER_AUDIT_COMMIT.get(engine)
        callback = ref() if ref is not None else None
        if session.info.pop("audit_appended", False) and callback is not None:
            try:
                callback()
            except Exception:  # the ledger is committed; the anchor is best effort
                log.exception("could not anchor the audit head after a commit")
