"""``unlearnrec tickets correct``: the officer corrects a rejected ticket from the command line;
the inbox path (the fixed file with the same external id) does the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import AuditEvent, Ticket, init_db, make_engine, session_scope
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def platform(tmp_path, monkeypatch) -> Platform:
    settings = get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")
    engine = make_engine(settings.database_url)
    init_db(engine)
    settings.inbox.mkdir(parents=True)
    p = Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]
    monkeypatch.setattr(cli_compliance, "_platform", lambda args, actor: p)
    return p


def _drop(platform: Platform, name: str, tickets: list[dict]) -> None:
    (platform.settings.inbox / name).write_text(json.dumps({"tickets": tickets}))


def _tickets(platform: Platform) -> dict[str, Ticket]:
    with session_scope(platform.engine) as session:
        return {t.external_id: t for t in session.exec(select(Ticket))}


TYPO = {
    "external_id": "DSAR-77",
    "kind": "erase_usr",
    "subject": "user-5",
    "legal_basis": "GDPR-17(1)(a)",
    "received_at": "2026-11-18T10:00:00+00:00",
}


def test_the_fixed_file_with_the_same_id_corrects_the_rejected_ticket(platform):
    _drop(platform, "a.json", [TYPO])
    ingest_inbox(platform, now=NOW)
    assert _tickets(platform)["DSAR-77"].status == "rejected"  # rejected at intake: the kind
    _drop(platform, "b.json", [{**TYPO, "kind": "erase_user"}])
    summary = ingest_inbox(platform, now=NOW)
    assert (summary.created, summary.resubmitted) == (1, 0)
    fixed = _tickets(platform)["DSAR-77/correction-1"]
    assert fixed.status == "received" and fixed.kind == "erase_user"


def test_tickets_correct_records_a_correction_with_the_reason(platform, capsys):
    _drop(platform, "a.json", [TYPO])
    ingest_inbox(platform, now=NOW)
    with pytest.raises(SystemExit, match="give --subject"):
        cli_main(["tickets", "correct", "DSAR-77", "--kind", "erase_user", "--reason", "typo"])
    code = cli_main(
        [
            "tickets",
            "correct",
            "DSAR-77",
            "--kind",
            "erase_user",
            "--subject",
            "user-5",
            "--reason",
            "kind misspelt in the DSAR export",
        ]
    )
    assert code == 0
    assert "corrected by DSAR-77/correction-1: received" in capsys.readouterr().out
    tickets = _tickets(platform)
    assert tickets["DSAR-77"].status == "rejected" and tickets["DSAR-77"].kind != "erase_user"
    assert tickets["DSAR-77/correction-1"].kind == "erase_user"
    with session_scope(platform.engine) as session:
        (event,) = session.exec(select(AuditEvent).where(AuditEvent.action == "ticket.corrected"))
        assert event.actor == "cli"
        assert event.data["reason"] == "kind misspelt in the DSAR export"
        assert event.data["changed"] == ["kind"]
    # The correction is open now: correcting it again is refused.
    with pytest.raises(SystemExit, match="only a rejected ticket can be corrected"):
        cli_main(["tickets", "correct", "DSAR-77", "--subject", "user-6", "--reason", "again"])


def test_tickets_list_flags_an_overdue_ticket(platform, capsys):
    """Received 75 days ago under GDPR: past its deadline, still open, flagged OVERDUE."""
    _drop(
        platform,
        "a.json",
        [{**TYPO, "kind": "erase_user", "received_at": "2026-09-06T10:00:00+00:00"}],
    )
    ingest_inbox(platform, now=NOW)
    capsys.readouterr()
    assert cli_main(["tickets", "list"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "DSAR-77" in line]
    assert "received" in row and "OVERDUE" in row
    assert cli_main(["tickets", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["overdue"] is True
