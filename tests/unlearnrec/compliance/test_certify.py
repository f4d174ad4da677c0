"""Certificate issuance cannot leave a signed orphan (``unlearnrec/compliance/certify.py``): the
file is published only when the ledger commits; what a killed run left pending is published
if its row committed, revoked (deleted, with an event) if not. A light platform: no model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from unlearnrec.compliance import certify
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketIn,
    UnlearningRun,
    init_db,
    make_engine,
    record_ticket,
    session_scope,
    transition,
)
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def platform(tmp_path) -> Platform:
    settings = get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")
    engine = make_engine(settings.database_url)
    init_db(engine)
    platform = Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]
    with session_scope(engine) as session:
        for n in (1, 2):
            ticket, _ = record_ticket(
                session,
                TicketIn(f"DSAR-{n}", "erase_user", f"user-{n}", (), "GDPR-17(1)(a)",
                         datetime(2026, 11, 19, tzinfo=UTC)),
                policy=platform.policy, pseudonymise=platform.pseudonymise, actor="test",
            )  # fmt: skip
            for status in ("validated", "scheduled", "unlearned", "verified"):
                transition(session, ticket, status, actor="test")
        ds = DatasetVersion(dvc_md5="d", content_hash="c", path="p")
        session.add(ds)
        session.flush()
        model = ModelVersion(kind="unlearned", sha256="m", path="m", dataset_version_id=ds.id)
        session.add(model)
        session.flush()
        run = UnlearningRun(
            batch_key="b", ticket_ids=[1, 2], dataset_before_id=ds.id, dataset_after_id=ds.id,
            model_before_id=model.id, model_after_id=model.id,
        )  # fmt: skip
        session.add(run)
    return platform


def issue(platform: Platform, session, ticket_id: int) -> Certificate:
    run = session.get(UnlearningRun, 1)
    model = session.get(ModelVersion, 1)
    ticket = session.get(Ticket, ticket_id)
    return certify.issue(
        platform, session, run=run, ticket=ticket, status="provisional", model_after=model
    )


def published(platform: Platform) -> list[str]:
    return sorted(p.name for p in platform.settings.certificates.glob("*.json"))


def pending(platform: Platform) -> list[str]:
    return sorted(p.name for p in certify.pending_dir(platform).glob("*.json"))


def test_a_certificate_is_published_only_when_the_ledger_commits(platform):
    with session_scope(platform.engine) as session:
        row = issue(platform, session, 1)
        assert published(platform) == []  # signed, but not yet backed by the ledger
        assert pending(platform) == ["cert-r1-t1-provisional.json"]
    assert published(platform) == ["cert-r1-t1-provisional.json"] and pending(platform) == []
    assert not list(platform.settings.certificates.glob(".*"))  # the pending folder is gone
    path = Path(row.path)
    assert certs.sha256_hex(path.read_bytes()) == row.sha256
    result = certs.verify_certificate(
        certs.read_certificate(path), certs.load_public_key(platform.settings.public_key)
    )
    assert result.ok, result.problems


def test_a_rolled_back_issue_leaves_no_certificate(platform):
    with pytest.raises(RuntimeError), session_scope(platform.engine) as session:
        issue(platform, session, 1)
        raise RuntimeError("the run fails after signing")
    assert published(platform) == [] and pending(platform) == []
    with session_scope(platform.engine) as session:
        assert session.exec(select(Certificate)).first() is None


def test_what_a_killed_run_left_pending_is_revoked_or_published(platform):
    """A pending file without a row (killed before the commit) is revoked with an event; one
    whose row committed (killed between the commit and the move) is published."""
    # Killed after the commit: the row is there, the file still pending.
    with session_scope(platform.engine) as session:
        row = issue(platform, session, 1)
    certify.pending_dir(platform).mkdir()
    Path(row.path).rename(certify.pending_dir(platform) / Path(row.path).name)
    # Killed before the commit: a signed file, no row.
    key = platform.signing_key
    orphan = certs.sign_certificate({"certificate_id": "cert-r1-t2-provisional"}, key)
    orphan_sha = certs.write_certificate(
        certify.pending_dir(platform) / "cert-r1-t2-provisional.json", orphan
    )

    with session_scope(platform.engine) as session:
        assert certify.settle_pending(platform, session) == (
            ["cert-r1-t1-provisional"],
            ["cert-r1-t2-provisional"],
        )
    assert published(platform) == ["cert-r1-t1-provisional.json"] and pending(platform) == []
    with session_scope(platform.engine) as session:
        (ev,) = session.exec(select(AuditEvent).where(AuditEvent.action == "certificate.revoked"))
    assert ev.entity_id == "cert-r1-t2-provisional" and ev.data["sha256"] == orphan_sha


def test_the_rerun_issue_settles_what_was_left_and_publishes_its_own(platform):
    """The next issue settles leftovers first, and never touches its own pending files (or
    those of another issue in the same transaction)."""
    leftover = certs.sign_certificate({"certificate_id": "cert-r9-t9-final"}, platform.signing_key)
    certs.write_certificate(certify.pending_dir(platform) / "cert-r9-t9-final.json", leftover)
    with session_scope(platform.engine) as session:
        issue(platform, session, 1)
        issue(platform, session, 2)  # settles again: ticket 1's pending file is this session's
        assert pending(platform) == ["cert-r1-t1-provisional.json", "cert-r1-t2-provisional.json"]
    assert published(platform) == ["cert-r1-t1-provisional.json", "cert-r1-t2-provisional.json"]
    assert pending(platform) == []


def test_certificate_verify_says_a_copy_of_a_revoked_certificate_was_revoked(
    platform, tmp_path, capsys
):
    """A copy taken of a pending certificate before its run died: ``certificate verify``
    reports it revoked, naming the event; the re-issued certificate of that id verifies."""
    from unlearnrec.cli import compliance as cli_compliance
    from unlearnrec.cli import main as cli_main

    with pytest.raises(RuntimeError), session_scope(platform.engine) as session:
        issue(platform, session, 1)
        copy = tmp_path / "copy.json"
        copy.write_bytes(
            (certify.pending_dir(platform) / "cert-r1-t1-provisional.json").read_bytes()
        )
        # the run dies here; its pending file stays (a rollback would delete it: put it back)
        raise RuntimeError("killed")
    certify.pending_dir(platform).mkdir(exist_ok=True)
    (certify.pending_dir(platform) / "cert-r1-t1-provisional.json").write_bytes(copy.read_bytes())
    with session_scope(platform.engine) as session:
        issue(platform, session, 1)  # the rerun: revokes the leftover, issues anew
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        home = ["--home", str(platform.settings.home)]
        assert cli_main(["certificate", "verify", str(copy), *home]) == 1
        out = capsys.readouterr().out
        assert "cert-r1-t1-provisional was revoked by the platform (audit event" in out
        fresh = platform.settings.certificates / "cert-r1-t1-provisional.json"
        assert cli_main(["certificate", "verify", str(fresh), *home]) == 0, capsys.readouterr()
