"""Which batches to process now: unfinished runs first, then validated tickets in groups."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlmodel import select

from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    Ticket,
    TicketStatus,
    UnlearningRun,
    session_scope,
)


def batch_key(ticket_ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(ticket_ids))).encode()).hexdigest()[:32]


def plan_batches(platform: Platform, *, now: datetime, force: bool = False) -> list[list[int]]:
    """Batches to process now: unfinished runs first (resumed as they were), then validated
    tickets in groups of at most ``max_tickets`` (soonest deadline first), once the oldest has
    waited the batching window, a full batch is ready or a ticket is overdue (``force``: don't
    wait)."""
    window = timedelta(minutes=platform.policy.batching.window_minutes)
    size = platform.policy.batching.max_tickets
    with session_scope(platform.engine) as session:
        batches = [
            list(r.ticket_ids)
            for r in session.exec(
                select(UnlearningRun)
                .where(UnlearningRun.status != "succeeded")
                .order_by(UnlearningRun.id)
            )
            if r.status == "running"
            or (r.status == "failed" and r.attempt < platform.policy.on_failure.max_attempts)
        ]
        taken = {t for b in batches for t in b}
        ready = [
            t
            for t in session.exec(
                select(Ticket)
                .where(Ticket.status == TicketStatus.VALIDATED)
                .order_by(Ticket.deadline_at, Ticket.id)
            )
            if t.id not in taken
        ]
    overdue = any(t.deadline_at <= now for t in ready)  # a missed deadline waits no longer
    if ready and (
        force or overdue or len(ready) >= size or min(t.updated_at for t in ready) <= now - window
    ):
        ids = [int(t.id) for t in ready]  # type: ignore[arg-type]
        batches += [ids[i : i + size] for i in range(0, len(ids), size)]
    return batches
