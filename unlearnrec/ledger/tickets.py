"""Ticket operations on the ledger: record (idempotent by external id), move through the status
machine (each move writes an audit event in the same transaction), extend deadlines, query."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from unlearnrec.ledger.audit import add_with_event, append_event
from unlearnrec.ledger.models import Ticket, TicketStatus, utcnow
from unlearnrec.policy import Policy


class TransitionError(ValueError):
    pass


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

    The deadline comes from the policy of the ticket's legal regime. A ticket that could not be
    parsed is still recorded (with its problems as the reason) and rejected at once.
    """
    existing = session.exec(
        select(Ticket).where(Ticket.external_id == incoming.external_id)
    ).first()
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
    if incoming.problems:
        transition(
            session, ticket, TicketStatus.REJECTED, actor=actor, reason="; ".join(incoming.problems)
        )
    return ticket, True


def transition(
    session: Session,
    ticket: Ticket,
    status: str,
    *,
    actor: str,
    reason: str | None = None,
    data: dict | None = None,
) -> Ticket:
    """Move ``ticket`` to ``status`` if the machine allows it, with an audit event."""
    allowed = TicketStatus.TRANSITIONS.get(ticket.status, frozenset())
    if status not in allowed:
        raise TransitionError(
            f"ticket {ticket.external_id}: cannot go from {ticket.status} to {status}"
        )
    before = ticket.status
    ticket.status = status
    ticket.updated_at = utcnow()
    if reason is not None:
        ticket.reason = reason
    if status in (TicketStatus.CERTIFIED, TicketStatus.REJECTED):
        ticket.subject = None  # storage limitation: the pseudonym is enough from here on
    session.add(ticket)
    append_event(
        session,
        actor=actor,
        action="ticket.status",
        entity="ticket",
        entity_id=ticket.id,
        data={"from": before, "to": status, "reason": reason, **(data or {})},
    )
    return ticket


def extend_deadline(
    session: Session, ticket: Ticket, days: int, reason: str, *, policy: Policy, actor: str
) -> Ticket:
    """Extend a ticket's deadline within what its regime allows; the reason is mandatory."""
    if not reason.strip():
        raise ValueError("a deadline extension needs a reason")
    rule = policy.deadline_for(ticket.legal_basis)
    total = ticket.extension_days + days
    if days <= 0 or total > rule.max_extension_days:
        raise ValueError(
            f"extension of {days} days refused: at most {rule.max_extension_days} days in total "
            f"under {ticket.legal_basis.split('-')[0]} (already {ticket.extension_days})"
        )
    ticket.extension_days = total
    ticket.extension_reason = reason
    ticket.deadline_at = rule.due(ticket.received_at, total)
    ticket.updated_at = utcnow()
    session.add(ticket)
    append_event(
        session,
        actor=actor,
        action="ticket.extended",
        entity="ticket",
        entity_id=ticket.id,
        data={"days": days, "reason": reason, "deadline_at": ticket.deadline_at.isoformat()},
    )
    return ticket


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
        "reason": ticket.reason,
        "run_id": ticket.run_id,
        "certificate_id": ticket.certificate_id,
    }
