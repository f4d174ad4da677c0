"""The ticket status machine is enforced in the database, on SQLite and PostgreSQL: a run holding
an old copy of a ticket cannot move it (compare-and-set on the status), closed tickets stay
closed and unchanged, and of several concurrent movers exactly one wins."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from unlearnrec.ledger import (
    AuditEvent,
    StaleTicketError,
    Ticket,
    TicketIn,
    TicketStatus,
    TransitionError,
    extend_deadline,
    make_engine,
    record_ticket,
    session_scope,
    transition,
    verify_chain,
)

ACTOR = "test"
PATH = (
    TicketStatus.VALIDATED,
    TicketStatus.SCHEDULED,
    TicketStatus.UNLEARNED,
    TicketStatus.VERIFIED,
    TicketStatus.CERTIFIED,
)


def _record(engine: Engine, policy, pseudo, external_id: str = "DSAR-1") -> int:
    incoming = TicketIn(
        external_id=external_id,
        kind="erase_user",
        subject="user-42",
        items=(),
        legal_basis="GDPR-17(1)(a)",
        received_at=datetime(2024, 5, 2, 9, 30, tzinfo=UTC),
    )
    with session_scope(engine) as session:
        ticket, _ = record_ticket(
            session, incoming, policy=policy, pseudonymise=pseudo, actor=ACTOR
        )
        return int(ticket.id)


def _move(engine: Engine, ticket_id: int, *statuses: str) -> None:
    for status in statuses:
        with session_scope(engine) as session:
            transition(session, session.get(Ticket, ticket_id), status, actor=ACTOR)


def _stored(engine: Engine, ticket_id: int) -> Ticket:
    with Session(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


def _status_events(engine: Engine, ticket_id: int) -> list[tuple[str, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "ticket.status", AuditEvent.entity_id == str(ticket_id))
            .order_by(AuditEvent.position)
        )
        return [(e.data["from"], e.data["to"]) for e in rows]


def test_a_stale_copy_cannot_reopen_a_certified_ticket(engine, policy, pseudo):
    """A run that loaded the ticket while it was scheduled, and moves it after another run
    certified it, is refused: the ticket stays certified, no event is written, and the stale
    object is refreshed to what the ledger holds."""
    tid = _record(engine, policy, pseudo)
    _move(engine, tid, TicketStatus.VALIDATED, TicketStatus.SCHEDULED)
    with session_scope(engine) as stale_session:
        stale = stale_session.get(Ticket, tid)
        assert stale.status == TicketStatus.SCHEDULED
        # Meanwhile another run takes the ticket to certified.
        _move(engine, tid, TicketStatus.UNLEARNED, TicketStatus.VERIFIED, TicketStatus.CERTIFIED)
        with pytest.raises(StaleTicketError, match="expected scheduled but it is certified"):
            transition(stale_session, stale, TicketStatus.UNLEARNED, actor=ACTOR)
        assert stale.status == TicketStatus.CERTIFIED
    stored = _stored(engine, tid)
    assert stored.status == TicketStatus.CERTIFIED and stored.subject is None
    assert _status_events(engine, tid) == list(zip(("received", *PATH[:-1]), PATH, strict=True))
    with Session(engine) as session:
        assert verify_chain(session).ok


def test_a_stale_copy_cannot_reject_a_ticket_validated_meanwhile(engine, policy, pseudo):
    """Two validations of the same received ticket: the second, holding the old status, cannot
    reject what the first already validated (the "duplicate of itself" rejection)."""
    tid = _record(engine, policy, pseudo)
    with session_scope(engine) as second:
        stale = second.get(Ticket, tid)
        _move(engine, tid, TicketStatus.VALIDATED)
        with pytest.raises(StaleTicketError):
            transition(second, stale, TicketStatus.REJECTED, actor=ACTOR, reason="duplicate")
    stored = _stored(engine, tid)
    assert stored.status == TicketStatus.VALIDATED and stored.reason is None
    assert stored.subject == "user-42"


@pytest.mark.parametrize("closed", [TicketStatus.CERTIFIED, TicketStatus.REJECTED])
def test_closed_tickets_stay_closed(engine, policy, pseudo, closed):
    """No move leaves a certified or rejected ticket, whatever copy of it the caller holds."""
    tid = _record(engine, policy, pseudo)
    _move(engine, tid, *(PATH if closed == TicketStatus.CERTIFIED else (TicketStatus.REJECTED,)))
    for target in TicketStatus.ALL:
        with pytest.raises(TransitionError):
            _move(engine, tid, target)
    assert _stored(engine, tid).status == closed


def test_a_certified_ticket_cannot_be_extended(engine, policy, pseudo):
    """Extending a closed ticket's deadline is refused, also through a copy loaded while it was
    still open; the deadline and the trail are unchanged."""
    tid = _record(engine, policy, pseudo)
    _move(engine, tid, TicketStatus.VALIDATED)
    due = _stored(engine, tid).deadline_at
    with session_scope(engine) as session:
        stale = session.get(Ticket, tid)
        _move(engine, tid, *PATH[1:])
        with pytest.raises(TransitionError, match="closed ticket cannot be extended"):
            extend_deadline(session, stale, 10, "late", policy=policy, actor=ACTOR)
    with session_scope(engine) as session, pytest.raises(TransitionError, match="certified"):
        extend_deadline(session, session.get(Ticket, tid), 10, "late", policy=policy, actor=ACTOR)
    stored = _stored(engine, tid)
    assert stored.deadline_at == due and stored.extension_days == 0
    with Session(engine) as session:
        assert not session.exec(
            select(AuditEvent).where(AuditEvent.action == "ticket.extended")
        ).all()


def test_of_concurrent_movers_exactly_one_wins(engine, policy, pseudo):
    """Six threads, each with its own engine and a copy of the same received ticket, race to
    move it: one validates it, the others get StaleTicketError; one status event in the trail."""
    tid = _record(engine, policy, pseudo)
    url = engine.url.render_as_string(hide_password=False)
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def mover(i: int) -> None:
        own = make_engine(url)
        try:
            with session_scope(own) as session:
                ticket = session.get(Ticket, tid)
                barrier.wait(timeout=30)
                target = TicketStatus.VALIDATED if i % 2 else TicketStatus.REJECTED
                try:
                    transition(session, ticket, target, actor=f"t{i}", reason=f"by {i}")
                    outcome = f"won:{target}"
                except StaleTicketError:
                    outcome = "stale"
            with lock:
                outcomes.append(outcome)
        finally:
            own.dispose()

    threads = [threading.Thread(target=mover, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(o.split(":")[0] for o in outcomes) == ["stale"] * (n - 1) + ["won"]
    winner = next(o for o in outcomes if o.startswith("won")).split(":")[1]
    assert _stored(engine, tid).status == winner
    assert len(_status_events(engine, tid)) == 1
    with Session(engine) as session:
        assert verify_chain(session).ok


def test_an_overdue_ticket_is_escalated_once_and_stays_open(engine, policy, pseudo):
    """Past its deadline an open ticket gets one ``ticket.overdue`` event (again only if an
    extended deadline passes too); it keeps its status; closed tickets are never flagged."""
    from datetime import timedelta

    from unlearnrec.ledger import flag_overdue, ticket_row

    open_id = _record(engine, policy, pseudo, "DSAR-open")
    done_id = _record(engine, policy, pseudo, "DSAR-done")
    _move(engine, open_id, TicketStatus.VALIDATED)
    _move(engine, done_id, *PATH)
    due = _stored(engine, open_id).deadline_at
    with session_scope(engine) as session:
        assert flag_overdue(session, now=due - timedelta(hours=1), actor=ACTOR) == []
    for _ in range(2):
        with session_scope(engine) as session:
            flagged = flag_overdue(session, now=due + timedelta(days=3), actor=ACTOR)
            assert [t.id for t in flagged] == ([open_id] if _ == 0 else [])
    row = ticket_row(_stored(engine, open_id), now=due + timedelta(days=3))
    assert row["overdue"] and row["status"] == TicketStatus.VALIDATED and row["days_left"] < 0
    assert not ticket_row(_stored(engine, done_id), now=due + timedelta(days=3))["overdue"]
    with session_scope(engine) as session:
        extend_deadline(
            session, session.get(Ticket, open_id), 10, "complex", policy=policy, actor=ACTOR
        )
    with session_scope(engine) as session:
        flagged = flag_overdue(session, now=due + timedelta(days=11), actor=ACTOR)
        assert [t.id for t in flagged] == [open_id]
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "ticket.overdue"))
        assert [e.data["status"] for e in events] == ["validated", "validated"]
