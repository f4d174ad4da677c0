"""The seeded ledger's certificates come from the platform's issuer (``certify.issue``): they
verify with ``unlearnrec certificate verify`` against the ledger (the tampered one does not), the
ticket rows hold what the certificates say was removed, the signing key is pinned in the ledger,
and ``unlearnrec audit verify`` finds nothing wrong but the deliberately tampered file."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

from sqlmodel import select

from tests.dashboard.seed import (
    PROVISIONAL_CERTIFICATE,
    RUN1_PURGE_CHECK,
    TAMPERED_CERTIFICATE,
    VALID_CERTIFICATE,
    SeededLedger,
)
from unlearnrec import cli
from unlearnrec.compliance import certify
from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    ModelVersion,
    Ticket,
    UnlearningRun,
    make_engine,
    session_scope,
)
from unlearnrec.ledger.keys import recorded_keys
from unlearnrec.records import certificates as certs

ROOT = Path(__file__).resolve().parents[2]


def _point_at(monkeypatch, home: Path, db_url: str) -> None:
    monkeypatch.setenv("UNLEARNREC_HOME", str(home))
    monkeypatch.setenv("UNLEARNREC_DB_URL", db_url)
    monkeypatch.setenv("UNLEARNREC_POLICY_PATH", str(ROOT / "policies" / "gdpr-default.yaml"))
    for name in ("UNLEARNREC_VAR_DIR", "UNLEARNREC_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_seeded_certificates_verify_with_the_cli(seeded: SeededLedger, monkeypatch, capsys):
    _point_at(monkeypatch, seeded.home, seeded.db_url)
    for cid in (VALID_CERTIFICATE, PROVISIONAL_CERTIFICATE):
        code = cli.main(["certificate", "verify", str(seeded.certificates[cid]), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert (code, report["problems"], report["ledger_checked"]) == (0, [], True), cid
    code = cli.main(
        ["certificate", "verify", str(seeded.certificates[TAMPERED_CERTIFICATE]), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ledger_checked"]
    assert any("altered after signing" in p for p in report["problems"])


def test_the_signing_key_is_pinned_and_tickets_back_their_certificates(seeded: SeededLedger):
    """What only the real issuer does: the key registered in the ledger before its first
    signature, certificates published from ``.pending`` once the ledger committed, and each
    certificate's removed count and hash read from its ticket row."""
    engine = make_engine(seeded.db_url, read_only=True)
    with session_scope(engine) as session:
        keys = recorded_keys(session)
        registered = session.exec(
            select(AuditEvent).where(AuditEvent.action == "key.registered")
        ).all()
        rows = session.exec(select(Certificate)).all()
        tickets = {t.id: t for t in session.exec(select(Ticket)).all()}
    engine.dispose()
    kid = certs.key_id(certs.load_public_key(seeded.public_key))
    assert keys[kid] == certs.raw_public_key_hex(certs.load_public_key(seeded.public_key))
    assert [e.entity_id for e in registered] == [kid]
    assert registered[0].position < min(r.audit_position for r in rows)
    assert not (seeded.settings.certificates / certify.PENDING).exists()
    assert {r.certificate_id for r in rows} == set(seeded.certificates)
    for row in rows:
        doc = certs.read_certificate(Path(row.path))
        ticket = tickets[row.ticket_ids[0]]
        assert ticket.certificate_id == row.id and doc["signature"]["key_id"] == kid
        removed = doc["removed_interactions"]
        if row.certificate_id == TAMPERED_CERTIFICATE:  # the count is what was altered
            removed = {**removed, "count": removed["count"] - 1}
        assert (removed["count"], removed["hash"]) == (
            ticket.removed_interactions,
            ticket.removed_hash,
        )
        assert ticket.removed_hash and ticket.removed_interactions > 0


def test_a_seeded_certificate_body_is_the_issuers_body(seeded: SeededLedger):
    """Rebuilt with ``certify.build_body`` from the ledger rows it names and its time of issue,
    the body equals the signed one: the seed writes no certificate field of its own."""
    signed = certs.read_certificate(seeded.certificates[VALID_CERTIFICATE])
    body = {k: v for k, v in signed.items() if k != "signature"}
    issued_at = body["issued_at"]
    engine = make_engine(seeded.db_url, read_only=True)
    with session_scope(engine) as session:
        row = session.exec(
            select(Certificate).where(Certificate.certificate_id == VALID_CERTIFICATE)
        ).one()
        run = session.get(UnlearningRun, row.run_id)
        ticket = session.get(Ticket, row.ticket_ids[0])
        event = session.exec(
            select(AuditEvent).where(AuditEvent.position == row.audit_position)
        ).one()
        rebuilt = certify.build_body(
            None,  # build_body reads only the session and the rows
            session,
            run=run,
            ticket=ticket,
            status=row.status,
            removed_hash=ticket.removed_hash,
            removed_count=ticket.removed_interactions,
            model_after=session.get(ModelVersion, run.model_after_id),
            audit_position=event.position,
            audit_hash=event.hash,
            issued_at=datetime.fromisoformat(issued_at),
        )
    engine.dispose()
    assert rebuilt == body
    # Run 1 recorded its purge check: the certificate carries its summary, no path, no data.
    assert body["purge_check"] == {
        "suite": "purge",
        "success": True,
        "evaluated": 6,
        "successful": 6,
        "result_id": RUN1_PURGE_CHECK["result_id"],
    }
    # Run 2 recorded none: its certificate has no purge_check entry (rebuilds as signed).
    assert "purge_check" not in certs.read_certificate(seeded.certificates[PROVISIONAL_CERTIFICATE])


def test_audit_verify_finds_only_the_tampered_certificate(
    seeded: SeededLedger, tmp_path, monkeypatch, capsys
):
    """On a copy (``audit verify`` opens the platform, which creates its DVC store)."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    _point_at(monkeypatch, home, f"sqlite:///{home / 'var' / 'ledger.sqlite'}")
    code = cli.main(["audit", "verify", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["chain_intact"] and report["signed_head_file"]
    assert report["problems"] and all(TAMPERED_CERTIFICATE in p for p in report["problems"])
