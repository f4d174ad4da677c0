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

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

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


def init_db(engine: Engine) -> None:
    """Create missing tables (idempotent)."""
    SQLModel.metadata.create_all(engine)


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
