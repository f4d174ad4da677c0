"""The audit trail is permanent, so nothing in an event may grow with the input."""

from __future__ import annotations

from sqlmodel import select

from unlearnrec.ledger import AuditEvent, append_event, session_scope, verify_chain
from unlearnrec.ledger.audit import MAX_ITEMS, MAX_TEXT


def test_a_huge_reason_is_cut_and_the_chain_still_verifies(engine):
    """A 1.65 MB reason (150,000 unknown keys, say) is stored cut to ``MAX_TEXT`` characters,
    saying how much was dropped; lists are capped too; the hashes cover what is stored."""
    reason = "unknown fields " + "k" * 1_650_000
    with session_scope(engine) as session:
        append_event(
            session,
            actor="test",
            action="ticket.status",
            entity="ticket",
            entity_id="x" * 300,
            data={"reason": reason, "ids": list(range(MAX_ITEMS + 50)), "n": 3},
        )
    with session_scope(engine) as session:
        (ev,) = session.exec(select(AuditEvent))
        assert len(ev.data["reason"]) <= MAX_TEXT
        assert ev.data["reason"].startswith("unknown fields kkk")
        assert ev.data["reason"].endswith(f"(+{len(reason) - MAX_TEXT + 30} chars)")
        assert len(ev.data["ids"]) == MAX_ITEMS + 1 and ev.data["ids"][-1] == "… 50 more"
        assert ev.data["n"] == 3
        assert len(ev.entity_id) == 80
        assert verify_chain(session).ok
