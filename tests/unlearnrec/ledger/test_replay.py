"""Replaying the audit trail against the rows (``unlearnrec/ledger/replay.py``): rows edited,
inserted or deleted directly in the database are named, although the hash chain is intact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    Certificate,
    Ticket,
    TicketIn,
    UnlearningRun,
    add_with_event,
    append_event,
    init_db,
    make_engine,
    record_ticket,
    session_scope,
    transition,
    verify_chain,
)
from unlearnrec.ledger.replay import replay_rows
from unlearnrec.records.certificates import pseudonymise
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
SECRET = b"replay-test-pseudonym-secret-32b"


def pseudo(subject: str) -> str:
    return pseudonymise(subject, SECRET)


def incoming(external_id: str, subject: str) -> TicketIn:
    return TicketIn(
        external_id=external_id,
        kind="erase_user",
        subject=subject,
        items=(),
        legal_basis="GDPR-17(1)(a)",
        received_at=datetime(2026, 11, 19, tzinfo=UTC),
    )


@pytest.fixture
def engine(tmp_path):
    """Ticket 1 certified (with its run and certificate), 2 rejected, 3 verified, 4 received."""
    eng = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    init_db(eng)
    policy = load_policy(ROOT / "policies" / "gdpr-default.yaml")
    with session_scope(eng) as session:
        t = {
            n: record_ticket(
                session, incoming(f"DSAR-{n}", f"user-{n}"), policy=policy, pseudonymise=pseudo,
                actor="test",
            )[0]
            for n in (1, 2, 3, 4)
        }  # fmt: skip
        transition(session, t[2], "rejected", actor="test", reason="not a known user")
        for n in (1, 3):
            for status in ("validated", "scheduled", "unlearned", "verified"):
                transition(session, t[n], status, actor="test")
        run = add_with_event(
            session, UnlearningRun(batch_key="b1", ticket_ids=[1]), actor="test",
            action="run.started", entity="run", data={"tickets": [1]},
        )  # fmt: skip
        ev = append_event(
            session, actor="test", action="certificate.issued", entity="ticket", entity_id=1,
            data={"certificate_id": "cert-r1-t1-provisional", "run_id": run.id},
        )  # fmt: skip
        cert = Certificate(
            certificate_id="cert-r1-t1-provisional", run_id=run.id, ticket_ids=[1], path="c.json",
            sha256="", digest="", key_id="k", audit_position=ev.position,
        )  # fmt: skip
        session.add(cert)
        session.flush()
        t[1].certificate_id = cert.id
        transition(session, t[1], "certified", actor="test")
    yield eng
    eng.dispose()


def edit(engine, sql: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def problems(engine) -> list[str]:
    with session_scope(engine) as session:
        assert verify_chain(session).ok  # the chain alone sees nothing
        return replay_rows(session, pseudonymise=pseudo)


def test_a_ledger_written_by_the_platform_replays_clean(engine):
    assert problems(engine) == []


def test_a_rejected_ticket_set_to_certified_is_named(engine):
    edit(engine, "UPDATE ticket SET status = 'certified' WHERE id = 2")
    found = problems(engine)
    assert "ticket 2: status is certified in the table, the audit trail says rejected" in found
    assert "ticket 2: certified, but no certificate.issued event names it" in found


def test_a_verified_ticket_set_to_certified_without_a_run_is_named(engine):
    edit(engine, "UPDATE ticket SET status = 'certified', subject = NULL WHERE id = 3")
    found = problems(engine)
    assert "ticket 3: status is certified in the table, the audit trail says verified" in found
    assert "ticket 3: certified, but no certificate row of it backs that" in found


def test_a_changed_subject_is_named(engine):
    edit(engine, "UPDATE ticket SET subject = 'user-999' WHERE id = 4")
    assert problems(engine) == [
        "ticket 4: subject does not match its pseudonym (the subject changed)"
    ]
    edit(engine, "UPDATE ticket SET subject_pseudonym = :p WHERE id = 4", p=pseudo("user-999"))
    assert "ticket 4: subject_pseudonym differs from its ticket.received event" in problems(engine)


def test_rows_inserted_or_deleted_outside_the_platform_are_named(engine):
    edit(engine, "DELETE FROM ticket WHERE id = 4")
    edit(engine, "INSERT INTO unlearningrun (batch_key, attempt, status, stage, method, params, "
                 "device, policy_id, policy_version, policy_sha256, ticket_ids, removed_hash, "
                 "removed_count, verification, timings, started_at) VALUES ('b9', 1, 'running', "
                 "'scheduled', 'x', '{}', '', '', 0, '', '[]', '', 0, '{}', '{}', "
                 "'2026-11-20 00:00:00')")  # fmt: skip
    found = problems(engine)
    assert "ticket 4: in the audit trail, but not in the table" in found
    assert any(p.startswith("run 2: no audit event announces it") for p in found)


def test_a_certificate_row_whose_anchor_is_not_its_announcement_is_named(engine):
    edit(engine, "UPDATE certificate SET audit_position = 3")
    (found,) = problems(engine)
    assert found.startswith("certificate cert-r1-t1-provisional: its anchor, event 3, is not")


def test_audit_verify_names_an_edited_row(engine, tmp_path, capsys):
    settings = get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")
    platform = Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]
    edit(engine, "UPDATE ticket SET status = 'certified' WHERE id = 2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        code = cli_main(["audit", "verify"])
    out = capsys.readouterr().out
    assert code == 1
    assert "BROKEN: the chain is intact, but:" in out
    assert "ticket 2: status is certified in the table, the audit trail says rejected" in out
    with session_scope(engine) as session:
        assert session.get(Ticket, 2).status == "certified"  # verify changes nothing


def test_a_cut_tail_whose_certificate_files_are_gone_is_caught_by_the_certificate_table(engine):
    """Events cut from the end (the chain still links up) with the certificate files that
    anchored them deleted: the certificate table still lists the anchor, and the ticket row
    still says what the cut events said."""
    with session_scope(engine) as session:
        position = session.get(Certificate, 1).audit_position
    edit(engine, "DELETE FROM auditevent WHERE position >= :p", p=position)
    found = problems(engine)
    assert any(
        p.startswith(f"certificate cert-r1-t1-provisional: its anchor, event {position}, is not")
        for p in found
    )
    assert "ticket 1: status is certified in the table, the audit trail says verified" in found
