"""Helpers of the ticket-batch validation (``flows/validation.py`` runs the Great Expectations
suite): the rows it checks, duplicates of live tickets, and the moves to validated or rejected."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, col, select

from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    StaleTicketError,
    Ticket,
    TicketStatus,
    transition,
)

log = logging.getLogger("unlearnrec.process")


def validation_rows(session: Session, tickets: list[Ticket]) -> list[dict[str, Any]]:
    """One row per received ticket for the ticket-batch suite (``flows/validation.py``)."""
    return [
        {
            "ticket_id": t.id,
            "external_id": t.external_id,
            "kind": t.kind,
            "subject": t.subject or "",
            "items": ";".join(t.items),
            "legal_basis": t.legal_basis,
            "received_at": t.received_at,
            "deadline_at": t.deadline_at,
        }
        for t in tickets
    ]


def duplicates_of_open(session: Session, tickets: list[Ticket]) -> dict[int, str]:
    """Tickets asking for exactly what another live ticket asks (same kind, subject, items)."""
    live = session.exec(
        select(Ticket).where(
            col(Ticket.status).notin_([TicketStatus.REJECTED, TicketStatus.RECEIVED])
        )
    ).all()
    seen = {(t.kind, t.subject, tuple(sorted(t.items))): (t.id, t.external_id) for t in live}
    out: dict[int, str] = {}
    for t in sorted(tickets, key=lambda x: x.id or 0):
        key = (t.kind, t.subject, tuple(sorted(t.items)))
        if key in seen and seen[key][0] != t.id and t.subject is not None:
            out[int(t.id)] = seen[key][1]  # type: ignore[arg-type]
        else:
            seen.setdefault(key, (t.id, t.external_id))
    return out


def apply_validation(
    platform: Platform,
    session: Session,
    tickets: list[Ticket],
    failures: dict[int, list[str]],
    actor: str,
) -> tuple[int, int]:
    """Move received tickets to validated, or to rejected with the failed checks as reason.
    A ticket another run has moved on meanwhile is left as that run put it."""
    ok = bad = 0
    for t in tickets:
        reasons = failures.get(int(t.id), [])  # type: ignore[arg-type]
        try:
            if reasons:
                transition(
                    session, t, TicketStatus.REJECTED, actor=actor, reason="; ".join(reasons)
                )
                bad += 1
            else:
                transition(session, t, TicketStatus.VALIDATED, actor=actor)
                ok += 1
        except StaleTicketError as exc:
            log.warning("validation skipped: %s", exc)
    return ok, bad
