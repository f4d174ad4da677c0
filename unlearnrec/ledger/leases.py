"""Leases: named, expiring claims held in the ledger, so that runs of the same work cannot
overlap, whichever machine or process starts them.

A lease is taken by compare-and-set statements only (an insert that the primary key lets at most
one writer win, or an update guarded by the current holder and expiry), so two takers can never
both succeed. The holder renews it from a background thread while it works; a holder that dies
stops renewing and the lease lapses after ``ttl``. A holder on this host whose process is gone is
recognised at once (its ``owner`` names host and pid), so a rerun after ``kill -9`` does not wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from unlearnrec.ledger.models import Lease

log = logging.getLogger("unlearnrec.leases")

DEFAULT_TTL = 600.0  # seconds a lease lives without renewal


def new_owner() -> str:
    """``host:pid:token``: unique per taker, and says which process holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_is_gone(owner: str) -> bool:
    """True when ``owner`` is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def try_acquire(
    engine: Engine, name: str, owner: str, *, ttl: float = DEFAULT_TTL, now: float | None = None
) -> bool:
    """Take (or renew) lease ``name`` for ``owner``; False if someone else holds it."""
    now = time.time() if now is None else now
    values = {"owner": owner, "acquired_at": now, "expires_at": now + ttl}
    with Session(engine) as session:
        conn = session.connection()
        # Ours already, or lapsed: take it over.
        taken = conn.execute(
            update(Lease)
            .where(
                col(Lease.name) == name,
                (col(Lease.owner) == owner) | (col(Lease.expires_at) < now),
            )
            .values(**values)
        ).rowcount
        if taken != 1:
            holder = conn.execute(
                Lease.__table__.select().where(Lease.__table__.c.name == name)
            ).first()
            if holder is None:
                try:
                    conn.execute(insert(Lease).values(name=name, **values))
                    taken = 1
                except IntegrityError:  # another taker inserted first
                    session.rollback()
                    return False
            elif holder_is_gone(holder.owner):
                log.warning("lease %s: holder %s is gone; taking it over", name, holder.owner)
                taken = conn.execute(
                    update(Lease)
                    .where(col(Lease.name) == name, col(Lease.owner) == holder.owner)
                    .values(**values)
                ).rowcount
        session.commit()
        return taken == 1


def release(engine: Engine, name: str, owner: str) -> None:
    """Give lease ``name`` up, if ``owner`` still holds it."""
    with Session(engine) as session:
        session.connection().execute(
            update(Lease)
            .where(col(Lease.name) == name, col(Lease.owner) == owner)
            .values(expires_at=0.0)
        )
        session.commit()


def holder(engine: Engine, name: str) -> Lease | None:
    """The current, unexpired holder of ``name``, if any."""
    with Session(engine) as session:
        row = session.get(Lease, name)
        return row if row is not None and row.expires_at >= time.time() else None


@dataclass
class Held:
    """A lease held by this process (``acquired`` False: someone else has it)."""

    name: str
    owner: str
    acquired: bool
    waited: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)


@contextmanager
def hold(
    engine: Engine,
    name: str,
    *,
    wait: float = 0.0,
    ttl: float = DEFAULT_TTL,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Held]:
    """Hold lease ``name`` for the ``with`` block, renewing it every ``ttl / 3`` seconds.

    Waits up to ``wait`` seconds for it; if it is still held by another, yields a ``Held`` with
    ``acquired=False`` and the caller skips its work.
    """
    owner = new_owner()
    start = time.monotonic()
    acquired = _acquire_patiently(engine, name, owner, ttl)
    while not acquired and time.monotonic() - start < wait:
        sleep(min(poll, max(wait - (time.monotonic() - start), 0.0)))
        acquired = _acquire_patiently(engine, name, owner, ttl)
    held = Held(name, owner, acquired, time.monotonic() - start)
    if not acquired:
        yield held
        return
    renewer = threading.Thread(
        target=_renew, args=(engine, held, ttl), name=f"lease-{name}", daemon=True
    )
    renewer.start()
    try:
        yield held
    finally:
        held._stop.set()
        renewer.join(timeout=5)
        _retry(lambda: release(engine, name, owner))


def _acquire_patiently(engine: Engine, name: str, owner: str, ttl: float) -> bool:
    return bool(_retry(lambda: try_acquire(engine, name, owner, ttl=ttl)))


def _retry(action: Callable[[], object], tries: int = 5) -> object:
    """SQLite answers 'database is locked' when a long writer outlasts its busy timeout."""
    for attempt in range(tries):
        try:
            return action()
        except OperationalError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def _renew(engine: Engine, held: Held, ttl: float) -> None:
    while not held._stop.wait(ttl / 3):
        try:
            if not try_acquire(engine, held.name, held.owner, ttl=ttl):
                log.error("lease %s was taken over by another run", held.name)
                return
        except OperationalError as exc:  # busy database: try again next tick
            log.warning("lease %s: renewal failed (%s); retrying", held.name, exc)
