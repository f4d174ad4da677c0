"""Replaying the audit trail against the ledger's rows.

The hash chain proves the *events* were not changed; the rows (tickets, runs, versions,
certificates) are ordinary table rows that anyone with write access to the database can edit.
Every change to a row the platform makes writes an event in the same transaction, so the events
say what each row must hold: ``replay_rows`` rebuilds that and names every row that differs (a
ticket set to ``certified`` by hand, a subject swapped, a row inserted or deleted outside the
platform, a certificate row whose anchor event is not its announcement).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from unlearnrec.ledger.models import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
)

MAX_PROBLEMS = 50

# Rows announced by an event of this entity when the platform creates them.
_ANNOUNCED = ((UnlearningRun, "run"), (DatasetVersion, "dataset"), (ModelVersion, "model"))


def _same_time(a: datetime | None, b: Any) -> bool:
    if a is None or not isinstance(b, str):
        return False
    try:
        return a == datetime.fromisoformat(b)
    except ValueError:
        return False


def _ticket_problems(
    ticket: Ticket,
    events: list[AuditEvent],
    certificates: dict[int, Certificate],
    pseudonymise: Callable[[str], str] | None,
) -> list[str]:
    name = f"ticket {ticket.id}"
    received = [e for e in events if e.action == "ticket.received"]
    if not received:
        return [f"{name}: no ticket.received event (the row was written outside the platform)"]
    first = received[0].data
    problems: list[str] = []
    for column, key in (
        ("external_id", "external_id"),
        ("kind", "kind"),
        ("subject_pseudonym", "subject"),
        ("legal_basis", "legal_basis"),
    ):
        if key in first and getattr(ticket, column) != first[key]:
            problems.append(f"{name}: {column} differs from its ticket.received event")
    if "items" in first and len(ticket.items) != first["items"]:
        problems.append(f"{name}: items differ in number from its ticket.received event")
    status, deadline = TicketStatus.RECEIVED, first.get("deadline_at")
    for e in events:
        if e.action == "ticket.status":
            if e.data.get("from") != status:
                problems.append(
                    f"{name}: event {e.position} moves it from {e.data.get('from')}, "
                    f"but the trail had it {status}"
                )
            status = str(e.data.get("to"))
        elif e.action == "ticket.extended":
            deadline = e.data.get("deadline_at")
    if ticket.status != status:
        problems.append(
            f"{name}: status is {ticket.status} in the table, the audit trail says {status}"
        )
    if deadline is not None and not _same_time(ticket.deadline_at, deadline):
        problems.append(f"{name}: deadline differs from the audit trail's")
    if ticket.subject is not None:
        if ticket.status in (TicketStatus.CERTIFIED, TicketStatus.REJECTED):
            problems.append(f"{name}: closed, yet its raw subject is still stored")
        elif pseudonymise is not None and pseudonymise(ticket.subject) != ticket.subject_pseudonym:
            problems.append(f"{name}: subject does not match its pseudonym (the subject changed)")
    issued = {str(e.data.get("certificate_id")) for e in events if e.action == "certificate.issued"}
    if ticket.status == TicketStatus.CERTIFIED:
        cert = certificates.get(ticket.certificate_id or -1)
        if not issued:
            problems.append(f"{name}: certified, but no certificate.issued event names it")
        if cert is None or ticket.id not in cert.ticket_ids:
            problems.append(f"{name}: certified, but no certificate row of it backs that")
        elif cert.certificate_id not in issued:
            problems.append(
                f"{name}: its certificate {cert.certificate_id} was never issued to it "
                "according to the audit trail"
            )
    return problems


def replay_rows(session: Session, *, pseudonymise: Callable[[str], str] | None = None) -> list[str]:
    """Every ledger row that differs from what the audit trail says it must hold, in words
    (at most ``MAX_PROBLEMS``, then a count). ``pseudonymise``: also check each open ticket's
    raw subject against its pseudonym (needs the pseudonym secret)."""
    by_entity: dict[tuple[str, str], list[AuditEvent]] = {}
    by_position: dict[int, AuditEvent] = {}
    for ev in session.exec(select(AuditEvent).order_by(col(AuditEvent.position))):
        by_entity.setdefault((ev.entity, ev.entity_id), []).append(ev)
        by_position[ev.position] = ev
    problems: list[str] = []
    certificates = {int(c.id): c for c in session.exec(select(Certificate))}  # type: ignore[arg-type]
    tickets = list(session.exec(select(Ticket).order_by(col(Ticket.id))))
    for ticket in tickets:
        events = by_entity.get(("ticket", str(ticket.id)), [])
        problems += _ticket_problems(ticket, events, certificates, pseudonymise)
    known = {str(t.id) for t in tickets}
    for (entity, entity_id), events in by_entity.items():
        if (
            entity == "ticket"
            and entity_id not in known
            and any(e.action == "ticket.received" for e in events)
        ):
            problems.append(f"ticket {entity_id}: in the audit trail, but not in the table")
    for model, entity in _ANNOUNCED:
        for row_id in session.exec(select(model.id)):  # type: ignore[attr-defined]
            if (entity, str(row_id)) not in by_entity:
                problems.append(
                    f"{entity} {row_id}: no audit event announces it (written outside the platform)"
                )
    for cert in certificates.values():
        anchor = by_position.get(cert.audit_position)
        if (
            anchor is None
            or anchor.action != "certificate.issued"
            or anchor.data.get("certificate_id") != cert.certificate_id
        ):
            problems.append(
                f"certificate {cert.certificate_id}: its anchor, event {cert.audit_position}, "
                "is not its certificate.issued event (the trail was cut or rewritten there, or "
                "the row was written outside the platform)"
            )
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more"]
    return problems
