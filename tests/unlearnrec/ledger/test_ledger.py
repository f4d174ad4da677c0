"""The compliance ledger on SQLite (always) and PostgreSQL (when ``UNLEARNREC_TEST_PG_URL`` is
set): idempotent tickets, the status machine and its audit events, storage limitation, deadlines
and extensions, the hash-chained audit trail and its tamper detection, read-only engines."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from unlearnrec.ledger import (
    Anchor,
    AuditEvent,
    LedgerUnavailable,
    Ticket,
    TicketIn,
    TicketStatus,
    TransitionError,
    append_event,
    certificate_anchors,
    extend_deadline,
    init_db,
    list_tickets,
    make_engine,
    parse_anchor,
    record_ticket,
    safe_url,
    session_scope,
    ticket_row,
    transition,
    verify_chain,
)
from unlearnrec.ledger.audit import GENESIS, AuditTamperError

ACTOR = "test"


def engine_url(engine: Engine) -> str:
    """The engine's URL with its password, to open a second engine on the same database."""
    return engine.url.render_as_string(hide_password=False)


def ticket_in(
    external_id: str = "DSAR-1",
    *,
    kind: str = "erase_user",
    subject: str | None = "user-42",
    items: tuple[str, ...] = (),
    legal_basis: str = "GDPR-17(1)(a)",
    received_at: datetime | None = None,
    source: str = "inbox/a.json#1",
    problems: tuple[str, ...] = (),
) -> TicketIn:
    return TicketIn(
        external_id=external_id,
        kind=kind,
        subject=subject,
        items=items,
        legal_basis=legal_basis,
        received_at=received_at or datetime(2024, 5, 2, 9, 30, tzinfo=UTC),
        source=source,
        problems=problems,
    )


def record(engine: Engine, policy, pseudo, incoming: TicketIn) -> tuple[Ticket, bool]:
    with session_scope(engine) as session:
        return record_ticket(session, incoming, policy=policy, pseudonymise=pseudo, actor=ACTOR)


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(AuditEvent.position)))


def load_ticket(engine: Engine, ticket_id: int) -> Ticket:
    with Session(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


def move(engine: Engine, ticket_id: int, *statuses: str, reason: str | None = None) -> Ticket:
    """Walk a stored ticket through ``statuses``, one committed transaction per move."""
    for status in statuses:
        with session_scope(engine) as session:
            ticket = session.get(Ticket, ticket_id)
            transition(session, ticket, status, actor=ACTOR, reason=reason)
    return load_ticket(engine, ticket_id)


def append_many(engine: Engine, n: int, *, per_session: int = 25) -> None:
    done = 0
    while done < n:
        with session_scope(engine) as session:
            for _ in range(min(per_session, n - done)):
                done += 1
                append_event(
                    session,
                    actor=ACTOR,
                    action="test.event",
                    entity="test",
                    entity_id=done,
                    data={"seq": done, "note": f"payload-{done}"},
                )


# -- tickets ------------------------------------------------------------------------------------


def test_same_external_id_twice_is_one_ticket(engine, policy, pseudo):
    """A resubmitted external id returns the existing ticket (created=False), adds no second row
    and writes a ``ticket.resubmitted`` audit event naming the new source."""
    first, created = record(engine, policy, pseudo, ticket_in(source="inbox/a.json#1"))
    assert created
    again, created_again = record(
        engine, policy, pseudo, ticket_in(subject="someone-else", source="inbox/b.csv:2")
    )
    assert not created_again
    assert again.id == first.id
    assert again.subject == "user-42"  # the first submission's content is kept

    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Ticket)).one() == 1
    evs = events(engine)
    assert [e.action for e in evs] == ["ticket.received", "ticket.resubmitted"]
    assert evs[1].entity == "ticket" and evs[1].entity_id == str(first.id)
    assert evs[1].data == {"source": "inbox/b.csv:2"}


def test_recorded_ticket_fields_and_received_event(engine, policy, pseudo):
    """A new ticket starts ``received`` with the policy's id/version, the pseudonym of its subject
    and aware UTC times; its ``ticket.received`` event holds no clear subject."""
    ticket, _ = record(engine, policy, pseudo, ticket_in(subject="alice@example.org"))
    stored = load_ticket(engine, ticket.id)
    assert stored.status == TicketStatus.RECEIVED
    assert stored.policy_id == "gdpr-default" and stored.policy_version == 2
    assert stored.subject == "alice@example.org"
    assert stored.subject_pseudonym == pseudo("alice@example.org")
    assert stored.received_at == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    assert stored.received_at.utcoffset() == timedelta(0)
    (ev,) = events(engine)
    assert ev.action == "ticket.received"
    assert ev.data["subject"] == pseudo("alice@example.org")
    assert "alice" not in json.dumps(ev.data)


def test_ticket_with_problems_is_recorded_then_rejected(engine, policy, pseudo):
    """A ticket carrying parse problems is stored (nothing is dropped) and rejected at once with
    the problems as its reason; its subject is not kept."""
    ticket, created = record(
        engine,
        policy,
        pseudo,
        ticket_in("invalid-abc-1", kind="bogus", problems=("f.json#1: kind 'bogus' is not one",)),
    )
    assert created
    stored = load_ticket(engine, ticket.id)
    assert stored.status == TicketStatus.REJECTED
    assert stored.reason == "f.json#1: kind 'bogus' is not one"
    assert stored.subject is None
    assert stored.subject_pseudonym == pseudo("user-42")
    assert [(e.action, e.data.get("to")) for e in events(engine)] == [
        ("ticket.received", None),
        ("ticket.status", "rejected"),
    ]


def test_every_status_change_writes_an_audit_event(engine, policy, pseudo):
    """Each allowed move writes one ``ticket.status`` event with from/to/reason, in order."""
    ticket, _ = record(engine, policy, pseudo, ticket_in())
    path = [
        TicketStatus.VALIDATED,
        TicketStatus.SCHEDULED,
        TicketStatus.UNLEARNED,
        TicketStatus.FAILED,
        TicketStatus.SCHEDULED,
        TicketStatus.UNLEARNED,
        TicketStatus.VERIFIED,
        TicketStatus.CERTIFIED,
    ]
    final = move(engine, ticket.id, *path, reason="step")
    assert final.status == TicketStatus.CERTIFIED
    evs = events(engine)
    assert len(evs) == 1 + len(path)
    moves = [(e.data["from"], e.data["to"]) for e in evs[1:]]
    assert moves == list(zip([TicketStatus.RECEIVED, *path[:-1]], path, strict=True))
    assert all(e.action == "ticket.status" and e.entity_id == str(ticket.id) for e in evs[1:])
    assert all(e.data["reason"] == "step" for e in evs[1:])
    with Session(engine) as session:
        assert verify_chain(session).ok


def test_received_to_certified_is_refused(engine, policy, pseudo):
    """A forbidden move raises TransitionError, leaves the status alone and writes no event."""
    ticket, _ = record(engine, policy, pseudo, ticket_in())
    with pytest.raises(TransitionError, match="cannot go from received to certified"):
        move(engine, ticket.id, TicketStatus.CERTIFIED)
    assert load_ticket(engine, ticket.id).status == TicketStatus.RECEIVED
    assert len(events(engine)) == 1


@pytest.mark.parametrize("terminal", [TicketStatus.CERTIFIED, TicketStatus.REJECTED])
def test_terminal_statuses_allow_no_move(terminal):
    """Certified and rejected tickets are final: every move out of them raises."""
    for target in TicketStatus.ALL:
        ticket = Ticket(external_id="x", kind="erase_user", legal_basis="GDPR", status=terminal)
        with pytest.raises(TransitionError):
            transition(None, ticket, target, actor=ACTOR)  # type: ignore[arg-type]
        assert ticket.status == terminal


def test_forbidden_moves_match_the_transition_table():
    """Every (from, to) pair missing from ``TRANSITIONS`` raises before touching the database."""
    forbidden = [
        (a, b)
        for a in TicketStatus.ALL
        for b in TicketStatus.ALL
        if b not in TicketStatus.TRANSITIONS[a]
    ]
    assert (TicketStatus.RECEIVED, TicketStatus.CERTIFIED) in forbidden
    assert (TicketStatus.RECEIVED, TicketStatus.SCHEDULED) in forbidden
    assert (TicketStatus.UNLEARNED, TicketStatus.CERTIFIED) in forbidden
    for a, b in forbidden:
        ticket = Ticket(external_id="x", kind="erase_user", legal_basis="GDPR", status=a)
        with pytest.raises(TransitionError):
            transition(None, ticket, b, actor=ACTOR)  # type: ignore[arg-type]
    assert set(TicketStatus.TRANSITIONS) == set(TicketStatus.ALL)


@pytest.mark.parametrize(
    "path",
    [
        (
            TicketStatus.VALIDATED,
            TicketStatus.SCHEDULED,
            TicketStatus.UNLEARNED,
            TicketStatus.VERIFIED,
            TicketStatus.CERTIFIED,
        ),
        (TicketStatus.REJECTED,),
        (TicketStatus.VALIDATED, TicketStatus.ESCALATED, TicketStatus.REJECTED),
    ],
    ids=["certified", "rejected", "escalated-rejected"],
)
def test_subject_is_cleared_when_certified_or_rejected(engine, policy, pseudo, path):
    """Storage limitation: the clear subject is kept while the ticket is open and cleared (in the
    database) once it is certified or rejected; the pseudonym stays for the audit."""
    ticket, _ = record(engine, policy, pseudo, ticket_in(subject="bob-7"))
    for status in path[:-1]:
        assert move(engine, ticket.id, status).subject == "bob-7"
    stored = move(engine, ticket.id, path[-1])
    assert stored.status == path[-1]
    assert stored.subject is None
    assert stored.subject_pseudonym == pseudo("bob-7")
    assert all("bob-7" not in json.dumps(e.data) for e in events(engine))
    row = ticket_row(stored)
    assert row["subject"] == pseudo("bob-7")


def test_list_tickets_filters_by_status(engine, policy, pseudo):
    """``list_tickets`` filters by one status or several, in id order, with a limit."""
    a, _ = record(engine, policy, pseudo, ticket_in("A"))
    b, _ = record(engine, policy, pseudo, ticket_in("B"))
    c, _ = record(engine, policy, pseudo, ticket_in("C"))
    move(engine, b.id, TicketStatus.VALIDATED)
    move(engine, c.id, TicketStatus.REJECTED)
    with Session(engine) as session:
        assert [t.external_id for t in list_tickets(session)] == ["A", "B", "C"]
        assert [t.external_id for t in list_tickets(session, status="received")] == ["A"]
        open_ = list_tickets(session, status=TicketStatus.OPEN)
        assert [t.external_id for t in open_] == ["A", "B"]
        assert [t.external_id for t in list_tickets(session, limit=2)] == ["A", "B"]
    assert a.id < b.id < c.id


# -- deadlines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("basis", "received", "due"),
    [
        ("GDPR-17(1)(a)", datetime(2023, 1, 31, 14, 5), datetime(2023, 2, 28, 14, 5)),
        ("GDPR-17(1)(a)", datetime(2024, 1, 31, 14, 5), datetime(2024, 2, 29, 14, 5)),
        ("GDPR-17(1)(d)", datetime(2024, 3, 15, 8, 0), datetime(2024, 4, 15, 8, 0)),
        ("GDPR-17(1)(a)", datetime(2024, 12, 31, 23, 59), datetime(2025, 1, 31, 23, 59)),
        ("CCPA-1798.105", datetime(2024, 1, 1, 12, 0), datetime(2024, 2, 15, 12, 0)),
        ("CCPA-1798.105", datetime(2023, 12, 20, 0, 0), datetime(2024, 2, 3, 0, 0)),
    ],
)
def test_deadline_follows_the_regime(engine, policy, pseudo, basis, received, due):
    """GDPR: one calendar month, clamped to the month's end (31 Jan -> 28/29 Feb); CCPA: 45
    days. The stored deadline is aware UTC."""
    ticket, _ = record(
        engine,
        policy,
        pseudo,
        ticket_in(legal_basis=basis, received_at=received.replace(tzinfo=UTC)),
    )
    stored = load_ticket(engine, ticket.id)
    assert stored.deadline_at == due.replace(tzinfo=UTC)
    assert stored.deadline_at.utcoffset() == timedelta(0)
    assert ticket_row(stored)["deadline_at"] == due.replace(tzinfo=UTC).isoformat()


def _extend(engine, ticket_id, days, reason, policy) -> Ticket:
    with session_scope(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        return extend_deadline(session, ticket, days, reason, policy=policy, actor=ACTOR)


def test_gdpr_extension_needs_a_reason_and_is_capped(engine, policy, pseudo):
    """Extensions add days to the regime deadline with a recorded reason and an audit event; a
    blank reason, a non-positive number of days or a total over ``max_extension_days`` (61 for
    GDPR) is refused and changes nothing."""
    received = datetime(2024, 1, 31, 10, 0, tzinfo=UTC)
    ticket, _ = record(engine, policy, pseudo, ticket_in(received_at=received))
    base_due = datetime(2024, 2, 29, 10, 0, tzinfo=UTC)
    assert policy.deadline_for("GDPR-17(1)(a)").max_extension_days == 61

    with pytest.raises(ValueError, match="needs a reason"):
        _extend(engine, ticket.id, 10, "   ", policy)
    for days in (0, -5, 62):
        with pytest.raises(ValueError, match="at most 61 days"):
            _extend(engine, ticket.id, days, "complex request", policy)
    unchanged = load_ticket(engine, ticket.id)
    assert unchanged.deadline_at == base_due and unchanged.extension_days == 0

    _extend(engine, ticket.id, 30, "many systems hold copies", policy)
    stored = load_ticket(engine, ticket.id)
    assert stored.deadline_at == base_due + timedelta(days=30)
    assert stored.extension_days == 30
    assert stored.extension_reason == "many systems hold copies"

    _extend(engine, ticket.id, 31, "backups", policy)  # 61 in total: the cap
    stored = load_ticket(engine, ticket.id)
    assert stored.extension_days == 61
    assert stored.deadline_at == base_due + timedelta(days=61)
    with pytest.raises(ValueError, match=r"at most 61 days in total under GDPR \(already 61\)"):
        _extend(engine, ticket.id, 1, "one more", policy)
    assert load_ticket(engine, ticket.id).extension_days == 61

    extended = [e for e in events(engine) if e.action == "ticket.extended"]
    assert [e.data["days"] for e in extended] == [30, 31]
    assert extended[-1].data["reason"] == "backups"
    assert extended[-1].data["deadline_at"] == (base_due + timedelta(days=61)).isoformat()


def test_ccpa_extension_is_capped_at_45_days(engine, policy, pseudo):
    """Under CCPA at most 45 extra days: 46 is refused, 45 is granted (90 days in all)."""
    received = datetime(2024, 1, 1, tzinfo=UTC)
    ticket, _ = record(
        engine, policy, pseudo, ticket_in(legal_basis="CCPA-1798.105", received_at=received)
    )
    with pytest.raises(ValueError, match="at most 45 days in total under CCPA"):
        _extend(engine, ticket.id, 46, "reason", policy)
    _extend(engine, ticket.id, 45, "reason", policy)
    assert load_ticket(engine, ticket.id).deadline_at == received + timedelta(days=90)


# -- the audit chain ----------------------------------------------------------------------------


def test_audit_chain_verifies_after_many_events(engine):
    """Hundreds of events over many transactions form one gap-free chain that verifies."""
    append_many(engine, 240, per_session=40)
    evs = events(engine)
    assert [e.position for e in evs] == list(range(1, 241))
    assert evs[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(evs))
    assert len({e.hash for e in evs}) == 240
    with Session(engine) as session:
        check = verify_chain(session)
    assert check.ok and check.events == 240 and check.problems == ()


def _raw_text(engine: Engine, column: str, position: int) -> str:
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT CAST({column} AS TEXT) FROM auditevent WHERE position = :p"),
            {"p": position},
        ).scalar_one()


def _one_char_changed(value: str, index: int) -> str:
    """``value`` with the character at ``index`` replaced by another of the same kind."""
    ch = value[index]
    if ch.isdigit() or ch in "abcdef":
        new = "0123456789abcdef"[("0123456789abcdef".index(ch.lower()) + 1) % 16]
    else:
        new = "b" if ch != "b" else "c"
    return value[:index] + new + value[index + 1 :]


def _tamper(engine: Engine, column: str, position: int) -> tuple[str, str]:
    """Change one character of one event's column with raw SQL (no ORM, no guard)."""
    before = _raw_text(engine, column, position)
    if column == "data":
        index = before.index("payload-") + 3  # inside a string value: stays valid JSON
    elif column == "action":
        index = before.index(".") + 1
    else:
        index = len(before) // 2
    after = _one_char_changed(before, index)
    assert len(after) == len(before)
    assert sum(x != y for x, y in zip(before, after, strict=True)) == 1
    value = "CAST(:v AS JSON)" if column == "data" and engine.dialect.name != "sqlite" else ":v"
    with engine.begin() as conn:
        n = conn.execute(
            text(f"UPDATE auditevent SET {column} = {value} WHERE position = :p"),
            {"v": after, "p": position},
        ).rowcount
    assert n == 1
    return before, after


@pytest.mark.parametrize("column", ["data", "action", "prev_hash", "actor", "entity_id"])
def test_one_character_change_is_detected(engine, column):
    """Changing a single character of one stored event (bypassing the ORM) makes
    ``verify_chain`` fail, naming that event's position and only that one."""
    append_many(engine, 6)
    with Session(engine) as session:
        assert verify_chain(session).ok
    before, after = _tamper(engine, column, 3)
    assert _raw_text(engine, column, 3) == after != before

    with Session(engine) as session:
        check = verify_chain(session)
    assert not check.ok
    assert check.events == 6
    assert check.problems
    assert all(p.startswith("event 3: ") for p in check.problems), check.problems
    assert "event 3: content does not match its hash (altered)" in check.problems
    if column == "prev_hash":
        assert "event 3: link to the previous event is broken" in check.problems


def test_changed_hash_breaks_the_next_link(engine):
    """Rewriting an event's stored hash is caught at that event and at the next one's link."""
    append_many(engine, 5)
    _tamper(engine, "hash", 2)
    with Session(engine) as session:
        check = verify_chain(session)
    assert not check.ok
    assert "event 2: content does not match its hash (altered)" in check.problems
    assert "event 3: link to the previous event is broken" in check.problems


def test_deleted_event_is_detected_as_a_gap(engine):
    """Deleting an event with raw SQL leaves a gap in the positions and a broken link."""
    append_many(engine, 6)
    with engine.begin() as conn:
        assert conn.execute(text("DELETE FROM auditevent WHERE position = 3")).rowcount == 1
    with Session(engine) as session:
        check = verify_chain(session)
    assert not check.ok and check.events == 5
    assert "event 4: expected position 3 (a gap)" in check.problems
    assert "event 4: link to the previous event is broken" in check.problems


def test_deleted_first_event_is_detected(engine):
    """Removing the genesis event is caught too (the chain must start at position 1)."""
    append_many(engine, 3)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auditevent WHERE position = 1"))
    with Session(engine) as session:
        check = verify_chain(session)
    assert "event 2: expected position 1 (a gap)" in check.problems
    assert "event 2: link to the previous event is broken" in check.problems


def test_cut_off_tail_is_caught_by_an_anchor_kept_elsewhere(engine, tmp_path):
    """Deleting the last events leaves a chain that links up; only an anchor held outside
    the database (a certificate's event, an exported head) shows what is missing."""
    append_many(engine, 6)
    with Session(engine) as session:
        head = verify_chain(session).head
    assert head is not None and head[0] == 6
    cert_event = events(engine)[4]  # what a certificate issued at event 5 would name
    cert = {"audit": {"position": 5, "event_hash": cert_event.hash}}
    (tmp_path / "CERT-1.json").write_text(json.dumps(cert))
    (tmp_path / "broken.json").write_text("{not json")
    anchors, unreadable = certificate_anchors(tmp_path)
    assert [(a.position, a.source) for a in anchors] == [(5, "certificate CERT-1.json")]
    assert len(unreadable) == 1 and unreadable[0].startswith("certificate broken.json")
    exported = parse_anchor(f"{head[0]}:{head[1]}")
    with Session(engine) as session:
        assert verify_chain(session, [*anchors, exported]).ok
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auditevent WHERE position >= 5"))
    with Session(engine) as session:
        assert verify_chain(session).ok  # the chain alone cannot tell
        check = verify_chain(session, [*anchors, exported])
    assert not check.ok and check.head is not None and check.head[0] == 4
    assert check.problems == (
        "certificate CERT-1.json anchors event 5, which the trail does not hold "
        "(it ends at 4: events were cut off)",
        "--head anchors event 6, which the trail does not hold (it ends at 4: events were cut off)",
    )


def test_an_anchor_with_another_hash_reports_a_rewrite(engine):
    append_many(engine, 3)
    with Session(engine) as session:
        check = verify_chain(session, [Anchor(2, "f" * 64, "certificate X.json")])
    assert check.problems == (
        "certificate X.json anchors event 2 with another hash (the trail was rewritten from there)",
    )


@pytest.mark.parametrize("bad", ["", "12", "x:" + "a" * 64, "3:abc", "3;" + "a" * 64])
def test_a_malformed_head_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="POSITION:SHA256"):
        parse_anchor(bad)


def test_orm_update_of_an_audit_event_is_refused(engine):
    """Changing a loaded AuditEvent and flushing raises AuditTamperError; nothing is stored."""
    append_many(engine, 3)
    with Session(engine) as session:
        ev = session.exec(select(AuditEvent).where(AuditEvent.position == 2)).one()
        ev.action = "test.rewritten"
        session.add(ev)
        with pytest.raises(AuditTamperError, match="append-only"):
            session.commit()
        session.rollback()
    assert events(engine)[1].action == "test.event"
    with Session(engine) as session:
        assert verify_chain(session).ok


def test_orm_delete_of_an_audit_event_is_refused(engine):
    """Deleting an AuditEvent through the session raises AuditTamperError; it stays."""
    append_many(engine, 3)
    with Session(engine) as session:
        ev = session.exec(select(AuditEvent).where(AuditEvent.position == 2)).one()
        session.delete(ev)
        with pytest.raises(AuditTamperError, match="append-only"):
            session.flush()
        session.rollback()
    assert [e.position for e in events(engine)] == [1, 2, 3]


def test_orm_bulk_update_is_refused_or_detected(engine):
    """An ORM-enabled bulk UPDATE does not go through the unit of work (so not through the
    mapper guard): it must be refused or, at the very least, show up in ``verify_chain``."""
    append_many(engine, 4)
    with Session(engine) as session:
        try:
            session.exec(update(AuditEvent).where(AuditEvent.position == 2).values(actor="x"))
            session.commit()
        except AuditTamperError:
            session.rollback()
            refused = True
        else:
            refused = False
    with Session(engine) as session:
        check = verify_chain(session)
    if refused:
        assert check.ok
    else:
        assert check.problems == ("event 2: content does not match its hash (altered)",)


def test_two_sessions_appending_in_turn_get_consecutive_positions(engine):
    """Two sessions open side by side, appending and committing in turn, continue one chain."""
    with Session(engine) as s1, Session(engine) as s2:
        kinds = []
        for session in (s1, s2, s1, s2):
            ev = append_event(
                session, actor=ACTOR, action="test.turn", entity="test", entity_id=len(kinds)
            )
            session.commit()
            kinds.append((ev.position, ev.prev_hash, ev.hash))
    assert [k[0] for k in kinds] == [1, 2, 3, 4]
    assert kinds[0][1] == GENESIS
    assert all(b[1] == a[2] for a, b in itertools.pairwise(kinds))
    with Session(engine) as session:
        check = verify_chain(session)
    assert check.ok and check.events == 4


def test_status_change_and_its_event_land_together(engine, policy, pseudo):
    """A transaction that fails after a move leaves neither the new status nor its event."""
    ticket, _ = record(engine, policy, pseudo, ticket_in())
    with pytest.raises(RuntimeError, match="boom"), session_scope(engine) as session:
        t = session.get(Ticket, ticket.id)
        transition(session, t, TicketStatus.VALIDATED, actor=ACTOR)
        raise RuntimeError("boom")
    assert load_ticket(engine, ticket.id).status == TicketStatus.RECEIVED
    assert [e.action for e in events(engine)] == ["ticket.received"]


def test_init_db_is_idempotent(engine, policy, pseudo):
    """Running ``init_db`` on an existing ledger keeps its rows."""
    record(engine, policy, pseudo, ticket_in())
    init_db(engine)
    with Session(engine) as session:
        assert len(list_tickets(session)) == 1
        assert verify_chain(session).ok


# -- engines ------------------------------------------------------------------------------------


def test_read_only_engine_on_missing_sqlite_file_is_unavailable(tmp_path):
    """``read_only=True`` never creates a SQLite file: a missing one raises LedgerUnavailable
    naming it; ``:memory:`` cannot be read-only either."""
    missing = tmp_path / "nowhere" / "ledger.sqlite"
    with pytest.raises(LedgerUnavailable, match=r"nowhere/ledger\.sqlite"):
        make_engine(f"sqlite:///{missing}", read_only=True)
    assert not missing.parent.exists()
    with pytest.raises(LedgerUnavailable):
        make_engine("sqlite:///:memory:", read_only=True)


def test_read_only_engine_reads_but_cannot_write(engine, policy, pseudo):
    """A read-only engine (SQLite ``mode=ro``, PostgreSQL read-only transactions) sees the
    ledger but every INSERT fails, whether raw or through ``record_ticket``."""
    record(engine, policy, pseudo, ticket_in())
    url = engine_url(engine)
    engine.dispose()  # SQLite: the writer's last connection closes (WAL checkpointed)
    ro = make_engine(url, read_only=True)
    try:
        with Session(ro) as session:
            assert [t.external_id for t in list_tickets(session)] == ["DSAR-1"]
            assert verify_chain(session).ok
        with pytest.raises(DBAPIError), ro.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO ticket (external_id, kind, subject_pseudonym, items,"
                    " legal_basis, received_at, deadline_at, extension_days, status, source,"
                    " policy_id, policy_version, removed_interactions, created_at, updated_at)"
                    " VALUES ('RO-1', 'erase_user', '', '[]', 'GDPR', :t, :t, 0, 'received',"
                    " '', '', 0, 0, :t, :t)"
                ),
                {"t": datetime(2024, 1, 1, tzinfo=UTC)},
            )
        with pytest.raises(DBAPIError), session_scope(ro) as session:
            record_ticket(
                session, ticket_in("RO-2"), policy=policy, pseudonymise=pseudo, actor=ACTOR
            )
    finally:
        ro.dispose()
    with Session(engine) as session:
        assert [t.external_id for t in list_tickets(session)] == ["DSAR-1"]
        assert len(list(session.exec(select(AuditEvent)))) == 1


def test_sqlite_ledger_uses_wal(tmp_path):
    """The writable SQLite engine switches the file to WAL (the dashboard reads while flows
    write) and creates missing parent folders."""
    path = tmp_path / "var" / "deep" / "ledger.sqlite"
    eng = make_engine(f"sqlite:///{path}")
    try:
        init_db(eng)
        with eng.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        eng.dispose()
    assert path.exists()


@pytest.mark.parametrize(
    ("url", "hidden", "kept"),
    [
        ("postgresql+psycopg://app:s3cr3t-pw@db.internal:5432/ledger", "s3cr3t-pw", "db.internal"),
        ("postgresql://u:p%40ss@h/d", "p%40ss", "u:***@h/d"),
        ("postgresql://u:p%40ss@h/d", "p@ss", "u:***@h/d"),
        ("sqlite:////var/lib/ledger.sqlite", None, "sqlite:////var/lib/ledger.sqlite"),
    ],
)
def test_safe_url_hides_passwords(url, hidden, kept):
    """``safe_url`` masks the password and keeps the rest of the URL readable."""
    shown = safe_url(url)
    assert kept in shown
    if hidden is not None:
        assert hidden not in shown
        assert "***" in shown
