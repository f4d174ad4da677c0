"""A rejected ticket can be corrected, never reopened: resubmitting its external id with a changed
body (or ``tickets correct``) records a new ticket that carries the duty on, received and due
when the original was, with a ``ticket.corrected`` event; the rejected ticket stays as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from unlearnrec.ledger import (
    AuditEvent,
    Ticket,
    TicketIn,
    TicketStatus,
    TransitionError,
    correct,
    record_ticket,
    session_scope,
    transition,
    verify_chain,
)

ACTOR = "test"
RECEIVED = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


def _in(kind: str = "erase_user", subject: str | None = "user-42", **kw) -> TicketIn:
    fields = {
        "external_id": "DSAR-9",
        "kind": kind,
        "subject": subject,
        "items": (),
        "legal_basis": "GDPR-17(1)(a)",
        "received_at": RECEIVED,
    }
    fields.update(kw)
    return TicketIn(**fields)  # type: ignore[arg-type]


def _submit(engine, policy, pseudo, incoming: TicketIn) -> tuple[int, str, bool]:
    with session_scope(engine) as session:
        ticket, created = record_ticket(
            session, incoming, policy=policy, pseudonymise=pseudo, actor=ACTOR
        )
        return int(ticket.id), ticket.external_id, created


def _reject(engine, ticket_id: int, reason: str) -> None:
    with session_scope(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        transition(session, ticket, TicketStatus.REJECTED, actor=ACTOR, reason=reason)


def _tickets(engine) -> dict[str, Ticket]:
    with Session(engine) as session:
        return {t.external_id: t for t in session.exec(select(Ticket))}


def _actions(engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_typo_rejected_ticket_resubmitted_fixed_is_corrected(engine, policy, pseudo):
    """``"kind": "erase_usr"`` is rejected; the fixed file with the same external id creates
    DSAR-9/correction-1 (received, due as the original), not "1 already known"."""
    first, _, _ = _submit(engine, policy, pseudo, _in(kind="erase_usr"))
    _reject(engine, first, "the request kind is not one of ...")
    same = _submit(engine, policy, pseudo, _in(kind="erase_usr"))
    assert same == (first, "DSAR-9", False)  # the same body again: only resubmitted

    fixed_id, fixed_external, created = _submit(engine, policy, pseudo, _in())
    assert created and fixed_external == "DSAR-9/correction-1" and fixed_id != first
    tickets = _tickets(engine)
    original, fixed = tickets["DSAR-9"], tickets["DSAR-9/correction-1"]
    assert original.status == TicketStatus.REJECTED and original.kind == "erase_usr"
    assert original.reason == "the request kind is not one of ..."
    assert fixed.status == TicketStatus.RECEIVED and fixed.kind == "erase_user"
    assert fixed.subject == "user-42" and fixed.subject_pseudonym == pseudo("user-42")
    assert fixed.received_at == original.received_at
    assert fixed.deadline_at == original.deadline_at  # a correction does not restart the clock
    (event,) = _actions(engine, "ticket.corrected")
    assert event.entity_id == str(fixed_id)
    assert event.data["corrects"] == first and event.data["changed"] == ["kind"]
    assert "user-42" not in str(event.data)
    with Session(engine) as session:
        assert verify_chain(session).ok

    # The corrected ticket is now the live one: the fixed body again is only a resubmission.
    assert _submit(engine, policy, pseudo, _in())[1:] == ("DSAR-9/correction-1", False)


def test_a_rejected_correction_can_be_corrected_again(engine, policy, pseudo):
    first, _, _ = _submit(engine, policy, pseudo, _in(subject="ghost"))
    _reject(engine, first, "the subject is not a known user of the dataset")
    second, _, _ = _submit(engine, policy, pseudo, _in(subject="ghost-2"))
    _reject(engine, second, "the subject is not a known user of the dataset")
    _, external, created = _submit(engine, policy, pseudo, _in(subject="user-42"))
    assert created and external == "DSAR-9/correction-2"
    assert [e.data["changed"] for e in _actions(engine, "ticket.corrected")] == [
        ["subject"],
        ["subject"],
    ]


@pytest.mark.parametrize("status", [TicketStatus.VALIDATED, TicketStatus.CERTIFIED])
def test_only_a_rejected_ticket_can_be_corrected(engine, policy, pseudo, status):
    """An open ticket is not corrected (the changed body is only a resubmission), and a
    certified one can be neither corrected nor reopened."""
    tid, _, _ = _submit(engine, policy, pseudo, _in())
    path = [TicketStatus.VALIDATED]
    if status == TicketStatus.CERTIFIED:
        path += [
            TicketStatus.SCHEDULED,
            TicketStatus.UNLEARNED,
            TicketStatus.VERIFIED,
            TicketStatus.CERTIFIED,
        ]
    for s in path:
        with session_scope(engine) as session:
            transition(session, session.get(Ticket, tid), s, actor=ACTOR)
    assert _submit(engine, policy, pseudo, _in(subject="other"))[1:] == ("DSAR-9", False)
    with session_scope(engine) as session, pytest.raises(TransitionError, match="only a rejected"):
        correct(
            session,
            session.get(Ticket, tid),
            _in(subject="other"),
            reason="typo",
            policy=policy,
            pseudonymise=pseudo,
            actor=ACTOR,
        )
    assert set(_tickets(engine)) == {"DSAR-9"}
    assert not _actions(engine, "ticket.corrected")
