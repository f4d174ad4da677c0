"""The append-only audit trail: every status change, version and certificate writes an event
whose hash covers its content and the previous event's hash (a hash chain)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, select

from unlearnrec.certificates import canonical_json
from unlearnrec.ledger.models import AuditEvent, utcnow

GENESIS = "0" * 64


class AuditTamperError(RuntimeError):
    pass


def event_hash(ev: AuditEvent) -> str:
    body = {
        "position": ev.position,
        "at": ev.at.isoformat(timespec="microseconds"),
        "actor": ev.actor,
        "action": ev.action,
        "entity": ev.entity,
        "entity_id": ev.entity_id,
        "data": ev.data,
        "prev_hash": ev.prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def last_event(session: Session) -> AuditEvent | None:
    return session.exec(select(AuditEvent).order_by(AuditEvent.position.desc()).limit(1)).first()


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add the next event of the chain to ``session`` (flushed, committed with the caller's
    transaction, so a status change and its event land together or not at all). ``data`` must
    hold no personal data: ids, pseudonyms, hashes, counts."""
    prev = last_event(session)
    ev = AuditEvent(
        position=(prev.position + 1) if prev else 1,
        at=utcnow(),
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        data=data or {},
        prev_hash=prev.hash if prev else GENESIS,
        hash="",
    )
    ev.hash = event_hash(ev)
    session.add(ev)
    session.flush()
    return ev


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events: int
    problems: tuple[str, ...]


def verify_chain(session: Session) -> ChainCheck:
    """Recompute every hash; report the first positions where content or links disagree."""
    problems: list[str] = []
    prev_hash, expected_pos, n = GENESIS, 1, 0
    for ev in session.exec(select(AuditEvent).order_by(AuditEvent.position)):
        n += 1
        if ev.position != expected_pos:
            problems.append(f"event {ev.position}: expected position {expected_pos} (a gap)")
        if ev.prev_hash != prev_hash:
            problems.append(f"event {ev.position}: link to the previous event is broken")
        if event_hash(ev) != ev.hash:
            problems.append(f"event {ev.position}: content does not match its hash (altered)")
        prev_hash, expected_pos = ev.hash, ev.position + 1
        if len(problems) >= 20:
            break
    return ChainCheck(ok=not problems, events=n, problems=tuple(problems))


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_changes(state):  # pragma: no cover - guard
    """Bulk ``update(AuditEvent)`` / ``delete(AuditEvent)`` bypass the mapper events below."""
    if (state.is_update or state.is_delete) and any(
        m.class_ is AuditEvent for m in state.all_mappers
    ):
        raise AuditTamperError("audit events are append-only: bulk changes are refused")


@event.listens_for(AuditEvent, "before_update")
def _no_update(mapper, connection, target):  # pragma: no cover - guard
    raise AuditTamperError("audit events are append-only: updates are refused")


@event.listens_for(AuditEvent, "before_delete")
def _no_delete(mapper, connection, target):  # pragma: no cover - guard
    raise AuditTamperError("audit events are append-only: deletes are refused")
