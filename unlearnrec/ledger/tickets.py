"""Ticket operations on the ledger: record (idempotent by external id), move through the status
machine (each move writes an audit event in the same transaction), extend deadlines, query.

This module is the one place where a ticket's status changes. A move is checked twice: against
``TicketStatus.TRANSITIONS`` from the status the caller last saw, and in the database by a
compare-and-set ``UPDATE ticket SET status = :to WHERE id = :id AND status = :from`` inside the
caller's transaction. A concurrent run that already moved the ticket makes the update match no
row: the move raises :class:`StaleTicketError` and nothing is written, so a certified ticket can
never be sent back along the path by a run holding an old copy of it. The update also takes the
row's write lock (PostgreSQL: the row; SQLite: the database) until the transaction ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from unlearnrec.ledger.audit import add_with_event, append_event
from unlearnrec.ledger.models import Ticket, TicketStatus, utcnow
from unlearnrec.records.policy import Policy


class TransitionError(ValueError):
    """A move the status machine does not allow (or a change to a closed ticket)."""


class StaleTicketError(TransitionError):
    """The ticket is no longer in the status the caller saw: another run moved it first."""


@dataclass(frozen=True)
class TicketIn:
    """A ticket as submitted (from a file row or the CLI), before it is in the ledger."""

    external_id: str
    kind: str
    subject: str | None
    items: tuple[str, ...]
    legal_basis: str
    received_at: datetime  # aware UTC
    source: str = ""
    problems: tuple[str, ...] = ()  # parse problems: the ticket is recorded, then rejected

    def content_key(self) -> str:
        return f"{self.kind}|{self.subject or ''}|{';'.join(sorted(self.items))}"


def content_key(ticket: Ticket) -> str:
    return f"{ticket.kind}|{ticket.subject or ''}|{';'.join(sorted(ticket.items))}"


def record_ticket(
    session: Session,
    incoming: TicketIn,
    *,
    policy: Policy,
    pseudonymise: Callable[[str], str],
    actor: str,
) -> tuple[Ticket, bool]:
    """Add a ticket unless its external id is already known; returns (ticket, created).

    A known id whose (latest) ticket was rejected, sent with a changed body, is a correction
    (:func:`correct`): a new ticket is created. Otherwise a known id records a
    ``ticket.resubmitted`` event and nothing else.

    The deadline comes from the policy of the ticket's legal regime. A ticket that could not be
    parsed is still recorded (with its problems as the reason) and rejected at once.
    """
    existing = latest_of(session, incoming.external_id)
    if (
        existing is not None
        and existing.status == TicketStatus.REJECTED
        and changed_fields(existing, incoming, pseudonymise)
    ):
        # A rejected ticket sent again with a changed body: a correction (a new ticket that
        # carries the duty on; the rejected one stays closed and unchanged).
        return correct(
            session,
            existing,
            incoming,
            reason="resubmitted with a changed body",
            policy=policy,
            pseudonymise=pseudonymise,
            actor=actor,
        ), True
    if existing is not None:
        append_event(
            session,
            actor=actor,
            action="ticket.resubmitted",
            entity="ticket",
            entity_id=existing.id,
            data={"source": incoming.source},
        )
        return existing, False
    ticket, _ = _record_new(
        session, incoming, policy=policy, pseudonymise=pseudonymise, actor=actor
    )
    if incoming.problems:
        transition(
            session, ticket, TicketStatus.REJECTED, actor=actor, reason="; ".join(incoming.problems)
        )
    return ticket, True


def _record_new(
    session: Session,
    incoming: TicketIn,
    *,
    policy: Policy,
    pseudonymise: Callable[[str], str],
    actor: str,
) -> tuple[Ticket, bool]:
    try:
        deadline = policy.deadline_for(incoming.legal_basis).due(incoming.received_at)
    except ValueError:
        # Unknown regime: validation rejects the ticket (legal_basis_is_known); a deadline is
        # still needed for display until then.
        deadline = incoming.received_at + timedelta(days=30)
    ticket = Ticket(
        external_id=incoming.external_id,
        kind=incoming.kind,
        subject=incoming.subject,
        subject_pseudonym=pseudonymise(incoming.subject) if incoming.subject else "",
        items=list(incoming.items),
        legal_basis=incoming.legal_basis,
        received_at=incoming.received_at,
        deadline_at=deadline,
        source=incoming.source,
        policy_id=policy.id,
        policy_version=policy.version,
    )
    add_with_event(
        session,
        ticket,
        actor=actor,
        action="ticket.received",
        entity="ticket",
        data={
            "external_id": ticket.external_id,
            "kind": ticket.kind,
            "subject": ticket.subject_pseudonym,
            "items": len(ticket.items),
            "legal_basis": ticket.legal_basis,
            "source": incoming.source,
            "deadline_at": ticket.deadline_at.isoformat(),
        },
    )
    return ticket, True


CORRECTION = "/correction-"  # a correction's external id: <original>/correction-<n>


def latest_of(session: Session, external_id: str) -> Ticket | None:
    """The ticket for ``external_id``: its latest correction if it has any, else itself."""
    base = external_id.split(CORRECTION)[0]
    rows = session.exec(
        select(Ticket).where(
            (col(Ticket.external_id) == base)
            | col(Ticket.external_id).startswith(base + CORRECTION, autoescape=True)
        )
    ).all()
    return max(rows, key=lambda t: t.id or 0) if rows else None


def changed_fields(
    ticket: Ticket, incoming: TicketIn, pseudonymise: Callable[[str], str]
) -> list[str]:
    """The fields in which ``incoming`` differs from ``ticket`` (the subject compared through its
    pseudonym: a closed ticket no longer holds it)."""
    subject = pseudonymise(incoming.subject) if incoming.subject else ""
    changed = [
        name
        for name, old, new in (
            ("kind", ticket.kind, incoming.kind),
            ("subject", ticket.subject_pseudonym, subject),
            ("items", sorted(ticket.items), sorted(incoming.items)),
            ("legal_basis", ticket.legal_basis, incoming.legal_basis),
        )
        if old != new
    ]
    return changed


def correct(
    session: Session,
    rejected: Ticket,
    incoming: TicketIn,
    *,
    reason: str,
    policy: Policy,
    pseudonymise: Callable[[str], str],
    actor: str,
    allow_unchanged: bool = False,
) -> Ticket:
    """Record the correction of a rejected ticket: a new ticket ``<external id>/correction-<n>``
    with the corrected body, received (and due) when the original was, since a correction does
    not restart the clock; a ``ticket.corrected`` event names both tickets and the changed
    fields. The rejected ticket is closed and stays as it was. ``allow_unchanged``: an officer
    may reopen the duty of a ticket rejected in error with the same body (the reason says why)."""
    if rejected.status != TicketStatus.REJECTED:
        raise TransitionError(
            f"ticket {rejected.external_id} is {rejected.status}: only a rejected ticket can be "
            "corrected"
        )
    if not reason.strip():
        raise ValueError("a correction needs a reason")
    changed = changed_fields(rejected, incoming, pseudonymise)
    if not changed and not allow_unchanged:
        raise ValueError(f"the correction of {rejected.external_id} changes nothing")
    base = rejected.external_id.split(CORRECTION)[0]
    n = 1 + sum(
        1
        for _ in session.exec(
            select(Ticket.id).where(
                col(Ticket.external_id).startswith(base + CORRECTION, autoescape=True)
            )
        )
    )
    original = session.exec(select(Ticket).where(Ticket.external_id == base)).first() or rejected
    ticket, _ = _record_new(
        session,
        replace(
            incoming,
            external_id=f"{base}{CORRECTION}{n}",
            received_at=original.received_at,
        ),
        policy=policy,
        pseudonymise=pseudonymise,
        actor=actor,
    )
    append_event(
        session,
        actor=actor,
        action="ticket.corrected",
        entity="ticket",
        entity_id=ticket.id,
        data={
            "corrects": rejected.id,
            "corrects_external_id": rejected.external_id,
            "changed": changed,
            "reason": reason,
        },
    )
    if incoming.problems:
        transition(
            session, ticket, TicketStatus.REJECTED, actor=actor, reason="; ".join(incoming.problems)
        )
    return ticket


def transition(
    session: Session,
    ticket: Ticket,
    status: str,
    *,
    actor: str,
    reason: str | None = None,
    data: dict | None = None,
) -> Ticket:
    """Move ``ticket`` to ``status`` if the machine allows it, with an audit event.

    The move is a compare-and-set on the status ``ticket`` holds: if the stored ticket has moved
    on meanwhile (another run), :class:`StaleTicketError` is raised, ``ticket`` is refreshed to
    the stored row, and neither the status nor an event is written.
    """
    before = ticket.status
    allowed = TicketStatus.TRANSITIONS.get(before, frozenset())
    if status not in allowed:
        raise TransitionError(f"ticket {ticket.external_id}: cannot go from {before} to {status}")
    now = utcnow()
    values: dict = {"status": status, "updated_at": now}
    if reason is not None:
        values["reason"] = reason
    if status in TicketStatus.CLOSED:
        values["subject"] = None  # storage limitation: the pseudonym is enough from here on
    session.flush()  # the caller's pending changes first, so the update below sees them
    result = session.connection().execute(
        update(Ticket)
        .where(col(Ticket.id) == ticket.id, col(Ticket.status) == before)
        .values(**values)
    )
    if result.rowcount != 1:
        session.refresh(ticket)
        raise StaleTicketError(
            f"ticket {ticket.external_id}: expected {before} but it is {ticket.status} now "
            f"(moved by another run); not moving it to {status}"
        )
    # Mirror the stored values on the object without marking it dirty (already written).
    from sqlalchemy.orm.attributes import set_committed_value

    for key, value in values.items():
        set_committed_value(ticket, key, value)
    append_event(
        session,
        actor=actor,
        action="ticket.status",
        entity="ticket",
        entity_id=ticket.id,
        data={"from": before, "to": status, "reason": reason, **(data or {})},
    )
    return ticket


def ensure_open(ticket: Ticket, action: str) -> None:
    """Closed tickets (certified, rejected) are immutable: refuse ``action`` on one."""
    if ticket.status in TicketStatus.CLOSED:
        raise TransitionError(
            f"ticket {ticket.external_id} is {ticket.status}: a closed ticket cannot be {action}"
        )


def extend_deadline(
    session: Session, ticket: Ticket, days: int, reason: str, *, policy: Policy, actor: str
) -> Ticket:
    """Extend a ticket's deadline within what its regime allows; the reason is mandatory."""
    ensure_open(ticket, "extended")
    if not reason.strip():
        raise ValueError("a deadline extension needs a reason")
    rule = policy.deadline_for(ticket.legal_basis)
    total = ticket.extension_days + days
    if days <= 0 or total > rule.max_extension_days:
        raise ValueError(
            f"extension of {days} days refused: at most {rule.max_extension_days} days in total "
            f"under {ticket.legal_basis.split('-')[0]} (already {ticket.extension_days})"
        )
    deadline = rule.due(ticket.received_at, total)
    session.flush()
    # Compare-and-set: only an open ticket with the extension this caller saw is changed.
    result = session.connection().execute(
        update(Ticket)
        .where(
            col(Ticket.id) == ticket.id,
            col(Ticket.status).in_(TicketStatus.OPEN),
            col(Ticket.extension_days) == ticket.extension_days,
        )
        .values(
            extension_days=total,
            extension_reason=reason,
            deadline_at=deadline,
            updated_at=utcnow(),
        )
    )
    if result.rowcount != 1:
        session.refresh(ticket)
        ensure_open(ticket, "extended")
        raise StaleTicketError(f"ticket {ticket.external_id} was changed meanwhile; try again")
    session.refresh(ticket)
    append_event(
        session,
        actor=actor,
        action="ticket.extended",
        entity="ticket",
        entity_id=ticket.id,
        data={"days": days, "reason": reason, "deadline_at": ticket.deadline_at.isoformat()},
    )
    return ticket


def flag_overdue(session: Session, *, now: datetime, actor: str) -> list[Ticket]:
    """Escalate every open ticket whose deadline has passed: a ``ticket.overdue`` audit event,
    once per ticket (and again if its deadline is extended and passes again). A missed deadline
    never ends the duty to erase: the ticket stays on its path (processed first, without waiting
    for the batching window), and the dashboard and ``tickets list`` flag it. Returns the tickets
    escalated now."""
    from unlearnrec.ledger.models import AuditEvent

    open_tickets = session.exec(select(Ticket).where(col(Ticket.status).in_(TicketStatus.OPEN)))
    overdue = [t for t in open_tickets if t.deadline_at <= now]
    if not overdue:
        return []
    flagged = {
        (e.entity_id, e.data.get("deadline_at"))
        for e in session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "ticket.overdue",
                col(AuditEvent.entity_id).in_([str(t.id) for t in overdue]),
            )
        )
    }
    out = []
    for t in overdue:
        if (str(t.id), t.deadline_at.isoformat()) in flagged:
            continue
        append_event(
            session,
            actor=actor,
            action="ticket.overdue",
            entity="ticket",
            entity_id=t.id,
            data={
                "deadline_at": t.deadline_at.isoformat(),
                "status": t.status,
                "days_late": round((now - t.deadline_at).total_seconds() / 86400, 1),
            },
        )
        out.append(t)
    return out


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    return ticket.status in TicketStatus.OPEN and ticket.deadline_at <= now


def list_tickets(
    session: Session, *, status: str | Sequence[str] | None = None, limit: int | None = None
) -> list[Ticket]:
    query = select(Ticket).order_by(Ticket.id)
    if isinstance(status, str):
        query = query.where(Ticket.status == status)
    elif status is not None:
        query = query.where(col(Ticket.status).in_(list(status)))
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def ticket_row(ticket: Ticket, now: datetime | None = None) -> dict:
    """A ticket as a JSON-ready dict without personal data (the subject is pseudonymised)."""
    now = now or utcnow()
    return {
        "id": ticket.id,
        "external_id": ticket.external_id,
        "kind": ticket.kind,
        "subject": ticket.subject_pseudonym,
        "items": len(ticket.items),
        "legal_basis": ticket.legal_basis,
        "status": ticket.status,
        "received_at": ticket.received_at.isoformat(),
        "deadline_at": ticket.deadline_at.isoformat(),
        "days_left": round((ticket.deadline_at - now).total_seconds() / 86400, 1),
        "overdue": is_overdue(ticket, now),
        "reason": ticket.reason,
        "run_id": ticket.run_id,
        "certificate_id": ticket.certificate_id,
    }
