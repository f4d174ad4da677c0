"""The inbox under attack (``unlearnrec/compliance/ingest.py``): a file that cannot be processed
is quarantined with a reason and an audit event and never stops the files after it; links are
refused, never followed; reads are bounded; the audit trail holds no text copied from the input.

A light platform (a SQLite ledger and the default policy, no DVC store, no model): intake needs
nothing else, so these tests run in a second or two."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import AuditEvent, Ticket, init_db, make_engine, session_scope
from unlearnrec.records.certificates import canonical_json
from unlearnrec.records.intake import file_label, parse_ticket_file, read_regular_file
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def ticket(external_id: str, subject: str = "user-1") -> dict:
    return {
        "external_id": external_id,
        "kind": "erase_user",
        "subject": subject,
        "legal_basis": "GDPR-17(1)(a)",
        "received_at": "2026-11-19T10:00:00Z",
    }


@pytest.fixture
def platform(tmp_path) -> Platform:
    settings = get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")
    engine = make_engine(settings.database_url)
    init_db(engine)
    settings.inbox.mkdir(parents=True)
    return Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]


def tickets(platform: Platform) -> dict[str, Ticket]:
    with session_scope(platform.engine) as session:
        return {t.external_id: t for t in session.exec(select(Ticket))}


def events(platform: Platform) -> list[AuditEvent]:
    with session_scope(platform.engine) as session:
        return list(session.exec(select(AuditEvent).order_by(AuditEvent.position)))


def refused_events(platform: Platform) -> dict[str, str]:
    return {e.entity_id: e.data["reason"] for e in events(platform) if e.action == "intake.refused"}


# -- poison files -------------------------------------------------------------------------------


def test_poison_files_are_quarantined_and_the_valid_file_after_them_is_ingested(platform):
    """A lone surrogate, a 250-character name and a link to a procfs file, sorted before a
    valid file: the run completes, the valid file is ingested, each poison file is quarantined
    in ``refused/`` with a reason file and an audit event, and a rerun has nothing left to do."""
    inbox = platform.settings.inbox
    # Parses as JSON, but "\ud800" can never be stored or hashed as UTF-8.
    (inbox / "a-surrogate.json").write_bytes(
        b'[{"external_id": "S-1", "kind": "erase_user", "subject": "\\ud800"}]'
    )
    long_name = "b" + "x" * 244 + ".json"  # 250 characters: legal, but no room for a prefix
    (inbox / long_name).write_text(json.dumps([ticket("LONG-1")]))
    (inbox / "c-proc.json").symlink_to("/proc/self/mem")  # reading it fails with EIO
    (inbox / "d-valid.json").write_text(json.dumps([ticket("VALID-1", "user-2")]))

    summary = ingest_inbox(platform, now=NOW)

    known = tickets(platform)
    assert set(known) == {"LONG-1", "VALID-1"}
    assert known["VALID-1"].status == "received"
    assert summary.files == 4 and summary.created == 2
    reasons = refused_events(platform)
    assert set(reasons) == {"a-surrogate.json", "c-proc.json"}
    assert "not valid Unicode" in reasons["a-surrogate.json"]
    assert reasons["c-proc.json"] == "c-proc.json: a symbolic link (links are not followed)"
    assert all(reason.startswith(name) for name, reason in reasons.items())  # names the file
    assert sorted(p.name for p in inbox.iterdir()) == ["processed", "refused"]
    refused = sorted(p.name for p in (inbox / "refused").iterdir())
    assert refused == [
        "20261120T120000-a-surrogate.json",
        "20261120T120000-a-surrogate.json.reason.txt",
        "20261120T120000-c-proc.json",
        "20261120T120000-c-proc.json.reason.txt",
    ]
    assert (inbox / "refused" / "20261120T120000-c-proc.json").is_symlink()  # moved, not read
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert processed == sorted(
        [f"20261120T120000-{file_label(long_name)}", "20261120T120000-d-valid.json"]
    )
    assert all(len(name) < 100 for name in processed)

    again = ingest_inbox(platform, now=NOW)
    assert again.files == 0 and len(tickets(platform)) == 2


def test_a_file_whose_tickets_cannot_be_recorded_is_quarantined(platform, monkeypatch):
    """Whatever fails while recording a file's tickets (here: the database refusing a value)
    quarantines that file, with an event naming it, and the next file is still ingested."""
    inbox = platform.settings.inbox
    (inbox / "a.json").write_text(json.dumps([ticket("A-1")]))
    (inbox / "b.json").write_text(json.dumps([ticket("B-1", "user-2")]))
    import unlearnrec.compliance.ingest as ingest_module

    real = ingest_module.record_ticket

    def fragile(session, incoming, **kw):
        if incoming.external_id == "A-1":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(session, incoming, **kw)

    monkeypatch.setattr(ingest_module, "record_ticket", fragile)
    summary = ingest_inbox(platform, now=NOW)
    assert set(tickets(platform)) == {"B-1"}
    assert refused_events(platform) == {
        "a.json": "a.json: its tickets could not be recorded (UnicodeEncodeError)"
    }
    assert summary.refused_files == [("a.json", refused_events(platform)["a.json"])]
    assert (inbox / "refused" / "20261120T120000-a.json").is_file()


def test_tickets_submit_refuses_a_surrogate_file_with_a_clear_error(platform, tmp_path, capsys):
    """``tickets submit`` on the surrogate file: exit 1, the reason printed, an audit event;
    no traceback."""
    path = tmp_path / "poison.json"
    path.write_bytes(b'{"external_id": "P-1", "kind": "erase_user", "subject": "\\ud800"}')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        code = cli_main(["tickets", "submit", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "REFUSED: poison.json: not valid Unicode text" in out
    assert refused_events(platform).keys() == {"poison.json"}
    assert tickets(platform) == {}
    assert path.exists()  # submit leaves the file where it is


# -- links and special files --------------------------------------------------------------------


def test_links_to_outside_files_and_special_files_are_refused_not_followed(platform, tmp_path):
    """A link to a ticket file outside the inbox is refused (its tickets are not recorded and
    its hash is not in the trail); so are a link to a device and a FIFO, without blocking."""
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps([ticket("OUTSIDE-1")]))
    inbox = platform.settings.inbox
    (inbox / "link.json").symlink_to(outside)
    (inbox / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(inbox / "fifo.json")
    (inbox / "valid.json").write_text(json.dumps([ticket("VALID-1")]))

    summary = ingest_inbox(platform, now=NOW)

    assert set(tickets(platform)) == {"VALID-1"}
    assert refused_events(platform) == {
        "fifo.json": "fifo.json: not a regular file",
        "link.json": "link.json: a symbolic link (links are not followed)",
        "zero.json": "zero.json: a symbolic link (links are not followed)",
    }
    assert len(summary.refused_files) == 3
    assert all(e.data["sha256"] == "" for e in events(platform) if e.action == "intake.refused")
    assert outside.exists()  # the target is left alone


def test_a_file_whose_size_says_zero_is_read_no_further_than_the_limit():
    """procfs files report size 0: the read stops at the limit instead of reading them whole."""
    raw, reason = read_regular_file(Path("/proc/self/maps"), max_bytes=10)
    assert raw is None
    assert reason == "maps: more than 10 bytes, over the 10-byte limit"
    result = parse_ticket_file(Path("/proc/self/maps"), now=NOW, max_bytes=10)
    assert result.refused == reason


def test_a_link_given_to_tickets_submit_is_refused(platform, tmp_path, capsys):
    """The CLI does not follow a link either."""
    target = tmp_path / "t.json"
    target.write_text(json.dumps([ticket("T-1")]))
    link = tmp_path / "l.json"
    link.symlink_to(target)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        code = cli_main(["tickets", "submit", str(link)])
    assert code == 1
    assert "REFUSED: l.json: a symbolic link" in capsys.readouterr().out
    assert tickets(platform) == {}


# -- no personal data in the audit trail --------------------------------------------------------

EMAIL = "jane.doe@example.com"
SUBJECT = "user-4242"


def test_hostile_input_leaves_no_personal_data_in_any_audit_event(platform, caplog):
    """Shifted CSV columns (a subject id in ``kind``, an e-mail in ``received_at`` and in
    ``legal_basis``), an e-mail and a newline in file names, 150,000 unknown keys: every event
    holds field names, codes, hashes and pseudonyms only, and stays small."""
    inbox = platform.settings.inbox
    (inbox / "shifted.csv").write_text(
        "external_id,kind,subject,items,legal_basis,received_at\n"
        f"DSAR-1,{SUBJECT},erase_user,,GDPR-17(1)(a),{EMAIL}\n"
        f"DSAR-2,erase_user,{SUBJECT},,{EMAIL},2026-11-19\n"
    )
    (inbox / f"dsar-{EMAIL}.json").write_text(json.dumps([ticket("DSAR-3", SUBJECT)]))
    (inbox / "forged\nINFO ingested everything.json").write_text(
        json.dumps([ticket("DSAR-4", SUBJECT)])
    )
    (inbox / f"refused-{EMAIL}.txt").write_text("not tickets")
    many = {**ticket("DSAR-5"), **{f"{SUBJECT}-{n}": 1 for n in range(150_000)}}
    (inbox / "many-keys.json").write_text(json.dumps([many]))

    with caplog.at_level(logging.INFO, logger="unlearnrec.ingest"):
        summary = ingest_inbox(platform, now=NOW)

    known = tickets(platform)
    assert set(known) == {"DSAR-1", "DSAR-2", "DSAR-3", "DSAR-4", "DSAR-5"}
    assert summary.rejected_at_intake == 3  # DSAR-1, DSAR-2 and DSAR-5
    assert known["DSAR-3"].status == "received"  # a hostile name does not spoil its tickets
    trail = events(platform)
    assert trail
    for ev in trail:
        blob = canonical_json(
            {"entity_id": ev.entity_id, "action": ev.action, "data": ev.data}
        ).decode()
        assert EMAIL not in blob, blob
        assert SUBJECT not in blob, blob
        assert "\\n" not in blob and "INFO ingested" not in blob, blob
        assert len(blob) < 2000, (ev.action, len(blob))
    sources = {ev.data.get("source") for ev in trail if ev.action == "ticket.received"}
    assert f"{file_label(f'dsar-{EMAIL}.json')}#1" in sources
    assert all(len(r.getMessage().splitlines()) == 1 for r in caplog.records)
    assert not any(EMAIL in r.getMessage() for r in caplog.records)


def test_file_labels_keep_plain_names_and_hash_the_rest():
    """Plain short names stay readable; e-mails, newlines, long or undecodable names do not."""
    assert file_label("dsar-export-2026-11.json") == "dsar-export-2026-11.json"
    hashed = file_label(f"dsar-{EMAIL}.json")
    assert hashed.startswith("file-") and hashed.endswith(".json") and len(hashed) == 22
    assert file_label("a\nb.csv").endswith(".csv") and "\n" not in file_label("a\nb.csv")
    assert len(file_label("x" * 250 + ".json")) == 22
    assert file_label("bad-\udcff.json").startswith("file-")  # undecodable bytes in a name
    assert file_label("notes.txt") == "notes.txt" and file_label("a b.txt").startswith("file-")


# -- modes --------------------------------------------------------------------------------------


def test_processed_and_refused_files_are_private(platform):
    """``processed/`` and ``refused/`` are 0700, the files moved there and reasons 0600."""
    inbox = platform.settings.inbox
    (inbox / "ok.json").write_text(json.dumps([ticket("OK-1")]))
    (inbox / "bad.txt").write_text("no")
    os.chmod(inbox / "ok.json", 0o644)
    ingest_inbox(platform, now=NOW)
    for folder in ("processed", "refused"):
        assert stat.S_IMODE((inbox / folder).stat().st_mode) == 0o700
        for f in (inbox / folder).iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
