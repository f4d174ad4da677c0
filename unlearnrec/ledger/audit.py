"""The append-only audit trail: every status change, version and certificate writes an event
whose hash covers its content and the previous event's hash (a hash chain)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, select

from unlearnrec.ledger.models import AuditEvent, utcnow
from unlearnrec.records.certificates import canonical_json, read_certificate

GENESIS = "0" * 64
# The trail is permanent: no value in it may grow with the input. Callers put codes, ids,
# hashes and pseudonyms in ``data``; a longer string (a reason built from many problems) is cut.
MAX_TEXT = 500
MAX_ITEMS = 1000


def bounded(value: Any) -> Any:
    """``value`` with every string cut to ``MAX_TEXT`` characters and every list or mapping to
    ``MAX_ITEMS`` entries (the cut says how much it dropped), recursively."""
    if isinstance(value, str):
        return (
            value
            if len(value) <= MAX_TEXT
            else f"{value[: MAX_TEXT - 30]}… (+{len(value) - MAX_TEXT + 30} chars)"
        )
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:MAX_TEXT]: bounded(v) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["…"] = f"{len(items) - MAX_ITEMS} more entries"
        return out
    if isinstance(value, list | tuple):
        out_list = [bounded(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out_list.append(f"… {len(value) - MAX_ITEMS} more")
        return out_list
    return value


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
    hold no personal data: ids, pseudonyms, hashes, counts; it is ``bounded``."""
    prev = last_event(session)
    ev = AuditEvent(
        position=(prev.position + 1) if prev else 1,
        at=utcnow(),
        actor=actor[:80],
        action=action[:60],
        entity=entity[:40],
        entity_id=str(entity_id)[:80],
        data=bounded(data or {}),
        prev_hash=prev.hash if prev else GENESIS,
        hash="",
    )
    ev.hash = event_hash(ev)
    session.add(ev)
    session.flush()
    session.info["audit_appended"] = True  # session_scope anchors the new head after commit
    return ev


def add_with_event(
    session: Session, row: Any, *, actor: str, action: str, entity: str, data: dict[str, Any]
) -> Any:
    """Add a new ledger ``row`` and the audit event announcing it, which names the row's id
    (hence the flush first); both land with the caller's transaction or not at all."""
    session.add(row)
    session.flush()
    append_event(session, actor=actor, action=action, entity=entity, entity_id=row.id, data=data)
    return row


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events: int
    problems: tuple[str, ...]
    head: tuple[int, str] | None = None  # (position, hash) of the last event
    anchors: int = 0  # anchors checked (certificates and exported heads)


@dataclass(frozen=True)
class Anchor:
    """A (position, hash) of the chain recorded outside the database: a signed certificate
    names the event that announced it; an operator can export the head (``audit head``).
    The chain alone cannot show that its *last* events were cut off; an anchor can."""

    position: int
    hash: str
    source: str


def parse_anchor(text: str, source: str = "--head") -> Anchor:
    """``POSITION:HASH`` as printed by ``unlearnrec audit head``."""
    pos, sep, digest = text.strip().partition(":")
    if not sep or not pos.isdigit() or len(digest) != 64:
        raise ValueError(
            f"{source}: expected POSITION:SHA256 (as `audit head` prints), got {text!r}"
        )
    return Anchor(int(pos), digest.lower(), source)


def certificate_anchors(folder: Path) -> tuple[list[Anchor], list[str]]:
    """The anchor of every certificate file in ``folder``; unreadable files as problems."""
    anchors: list[Anchor] = []
    problems: list[str] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            audit = read_certificate(path)["audit"]
            anchors.append(
                Anchor(int(audit["position"]), str(audit["event_hash"]), f"certificate {path.name}")
            )
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"certificate {path.name}: no readable audit anchor ({exc})")
    return anchors, problems


def verify_chain(session: Session, anchors: Iterable[Anchor] = ()) -> ChainCheck:
    """Recompute every hash; report the first positions where content or links disagree, and
    every anchor whose event the chain no longer holds (cut off) or holds with another hash."""
    wanted: dict[int, list[Anchor]] = {}
    for anchor in anchors:
        wanted.setdefault(anchor.position, []).append(anchor)
    problems: list[str] = []
    seen: dict[int, str] = {}
    prev_hash, expected_pos, n = GENESIS, 1, 0
    head: tuple[int, str] | None = None
    for ev in session.exec(select(AuditEvent).order_by(AuditEvent.position)):
        n += 1
        if len(problems) < 20:
            if ev.position != expected_pos:
                problems.append(f"event {ev.position}: expected position {expected_pos} (a gap)")
            if ev.prev_hash != prev_hash:
                problems.append(f"event {ev.position}: link to the previous event is broken")
            if event_hash(ev) != ev.hash:
                problems.append(f"event {ev.position}: content does not match its hash (altered)")
        if ev.position in wanted:
            seen[ev.position] = ev.hash
        prev_hash, expected_pos = ev.hash, ev.position + 1
        head = (ev.position, ev.hash)
    for position in sorted(wanted):
        for anchor in wanted[position]:
            if position not in seen:
                problems.append(
                    f"{anchor.source} anchors event {position}, which the trail does not hold "
                    f"(it ends at {head[0] if head else 0}: events were cut off)"
                )
            elif seen[position] != anchor.hash:
                problems.append(
                    f"{anchor.source} anchors event {position} with another hash "
                    "(the trail was rewritten from there)"
                )
    return ChainCheck(
        ok=not problems,
        events=n,
        problems=tuple(problems),
        head=head,
        anchors=sum(map(len, wanted.values())),
    )


def verify_with_certificates(
    session: Session, certificates_dir: Path, heads: Iterable[Anchor] = ()
) -> ChainCheck:
    """``verify_chain`` anchored by every certificate file in ``certificates_dir`` and by
    ``heads``; an unreadable certificate file is a problem too."""
    anchors, unreadable = certificate_anchors(certificates_dir)
    check = verify_chain(session, [*anchors, *heads])
    problems = (*check.problems, *unreadable)
    return replace(check, ok=not problems, problems=problems)


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
