"""Leases in the ledger (SQLite and PostgreSQL): one holder at a time, lapsed or abandoned
leases taken over, a waiting taker served once the holder lets go."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from sqlmodel import Session

from unlearnrec.ledger import make_engine
from unlearnrec.ledger.leases import hold, holder, new_owner, release, try_acquire
from unlearnrec.ledger.models import Lease


def test_of_racing_takers_exactly_one_gets_the_lease(engine):
    """Eight threads, each with its own engine, try to take a fresh lease at once: one does."""
    url = engine.url.render_as_string(hide_password=False)
    n = 8
    barrier = threading.Barrier(n)
    won: list[str] = []

    def taker() -> None:
        own = make_engine(url)
        owner = new_owner()
        try:
            barrier.wait(timeout=30)
            if try_acquire(own, "processing", owner):
                won.append(owner)
        finally:
            own.dispose()

    threads = [threading.Thread(target=taker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1
    assert holder(engine, "processing").owner == won[0]


def test_a_lease_is_renewable_by_its_holder_and_lapses_for_others(engine):
    a, b = new_owner(), new_owner()
    assert try_acquire(engine, "run:x", a, ttl=60, now=1000.0)
    assert not try_acquire(engine, "run:x", b, ttl=60, now=1030.0)  # held
    assert try_acquire(engine, "run:x", a, ttl=60, now=1050.0)  # renewed: now until 1110
    assert not try_acquire(engine, "run:x", b, ttl=60, now=1100.0)
    assert try_acquire(engine, "run:x", b, ttl=60, now=1111.0)  # lapsed: taken over
    with Session(engine) as session:
        assert session.get(Lease, "run:x").owner == b
    release(engine, "run:x", a)  # a no longer holds it: no effect
    assert not try_acquire(engine, "run:x", a, ttl=60, now=1120.0)
    release(engine, "run:x", b)
    assert try_acquire(engine, "run:x", a, ttl=60, now=1121.0)


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(engine):
    """A holder killed mid-run (its pid gone) does not block the rerun until the lease lapses."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = new_owner().split(":")
    dead[1] = proc.stdout.strip()
    assert try_acquire(engine, "processing", ":".join(dead), ttl=3600)
    assert try_acquire(engine, "processing", new_owner(), ttl=3600)
    # A live holder (this very process, another token) is respected.
    assert not try_acquire(engine, "processing", new_owner(), ttl=3600)


def test_hold_waits_for_the_holder_or_skips(engine):
    """``hold`` yields acquired=False when the lease stays taken, and waits for a release."""
    with hold(engine, "processing") as first:
        assert first.acquired
        with hold(engine, "processing", wait=0.3, poll=0.1) as second:
            assert not second.acquired and second.waited >= 0.3
    assert holder(engine, "processing") is None  # released on exit

    got: list[bool] = []
    with hold(engine, "processing") as first:

        def later() -> None:
            with hold(engine, "processing", wait=10, poll=0.05) as waiting:
                got.append(waiting.acquired)

        t = threading.Thread(target=later)
        t.start()
        time.sleep(0.3)
        assert not got  # still waiting
    t.join(timeout=10)
    assert got == [True]


def test_a_held_lease_is_renewed_in_the_background(engine):
    with hold(engine, "processing", ttl=0.6) as held:
        time.sleep(1.0)  # past the first expiry: the renewer kept it
        current = holder(engine, "processing")
        assert current is not None and current.owner == held.owner
