"""The compliance ledger (SQLModel): tickets, runs, dataset and model versions, certificates and
a hash-chained audit trail. Importing it never imports torch (the dashboard relies on that)."""

from __future__ import annotations

from unlearnrec.ledger.audit import (
    Anchor,
    ChainCheck,
    add_with_event,
    append_event,
    certificate_anchors,
    parse_anchor,
    verify_chain,
    verify_with_certificates,
)
from unlearnrec.ledger.db import LedgerUnavailable, init_db, make_engine, safe_url, session_scope
from unlearnrec.ledger.models import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
    utcnow,
)
from unlearnrec.ledger.tickets import (
    StaleTicketError,
    TicketIn,
    TransitionError,
    correct,
    extend_deadline,
    flag_overdue,
    latest_of,
    list_tickets,
    record_ticket,
    ticket_row,
    transition,
)

__all__ = [
    "Anchor",
    "AuditEvent",
    "Certificate",
    "ChainCheck",
    "DatasetVersion",
    "LedgerUnavailable",
    "ModelVersion",
    "StaleTicketError",
    "Ticket",
    "TicketIn",
    "TicketStatus",
    "TransitionError",
    "UnlearningRun",
    "add_with_event",
    "append_event",
    "certificate_anchors",
    "correct",
    "extend_deadline",
    "flag_overdue",
    "init_db",
    "latest_of",
    "list_tickets",
    "make_engine",
    "parse_anchor",
    "record_ticket",
    "safe_url",
    "session_scope",
    "ticket_row",
    "transition",
    "utcnow",
    "verify_chain",
    "verify_with_certificates",
]
