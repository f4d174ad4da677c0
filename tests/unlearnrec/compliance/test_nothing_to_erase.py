"""A batch whose tickets name nothing the dataset still holds makes no dataset or model version:
its tickets are certified as erasing 0 interactions, production stays the model it was."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from unlearnrec.compliance import process
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.versions import production_model
from unlearnrec.ledger import (
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketIn,
    TicketStatus,
    UnlearningRun,
    record_ticket,
    session_scope,
    transition,
    utcnow,
)

from .conftest import make_home
from .test_workflow import _open_and_fill, process_once


def _certified_then_again(tiny_artifacts, home, monkeypatch):
    """A platform whose first batch (DSAR-1001 among others) is certified, and a validated
    ticket asking to erase DSAR-1001's user again: (platform, its id, versions, production)."""
    make_home(tiny_artifacts, home, monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    with session_scope(platform.engine) as session:
        subject = (
            session.exec(select(Ticket).where(Ticket.external_id == "DSAR-1001")).one().subject
        )
    process_once()  # DSAR-1001 erases the user
    with session_scope(platform.engine) as session:
        versions = (
            len(session.exec(select(DatasetVersion)).all()),
            len(session.exec(select(ModelVersion)).all()),
        )
        production = production_model(session).id
        # The same user again under a new id, past validation (whose duplicate rule would
        # catch this one): nothing of theirs is left to erase.
        again, _ = record_ticket(
            session,
            TicketIn(
                external_id="DSAR-1001-B",
                kind="erase_user",
                subject=subject,
                items=(),
                legal_basis="GDPR-17(1)(a)",
                received_at=utcnow() - timedelta(days=1),
            ),
            policy=platform.policy,
            pseudonymise=platform.pseudonymise,
            actor="test",
        )
        transition(session, again, TicketStatus.VALIDATED, actor="test")
        again_id = int(again.id)
    return platform, again_id, versions, production


def test_a_batch_that_erases_nothing_makes_no_model_version(tiny_artifacts, tmp_path, monkeypatch):
    platform, again_id, versions, production = _certified_then_again(
        tiny_artifacts, tmp_path / "home", monkeypatch
    )
    summary = process.run_batch(platform, [again_id], device="cpu")
    assert (summary.status, summary.stage) == ("succeeded", "certified")
    assert len(summary.certificates) == 1
    with session_scope(platform.engine) as session:
        assert (
            len(session.exec(select(DatasetVersion)).all()),
            len(session.exec(select(ModelVersion)).all()),
        ) == versions
        assert production_model(session).id == production
        run = session.get(UnlearningRun, summary.run_id)
        assert run.model_after_id == run.model_before_id and run.removed_count == 0
        assert "nothing to erase" in run.verification["reasons"][0]
        ticket = session.get(Ticket, again_id)
        assert ticket.status == TicketStatus.CERTIFIED and ticket.removed_interactions == 0


def test_no_certificate_names_a_model_that_is_not_production(tiny_artifacts, tmp_path, monkeypatch):
    """If another model became production meanwhile, the run fails at certification, saying
    which model serves, and issues no certificate."""
    platform, again_id, _, production = _certified_then_again(
        tiny_artifacts, tmp_path / "home", monkeypatch
    )
    made: list[int] = []
    real_purge = process.stage_purge

    def purge_then_another_model_serves(*args, **kwargs):
        real_purge(*args, **kwargs)
        with session_scope(platform.engine) as session:
            serving = session.get(ModelVersion, production)
            newer = ModelVersion(
                kind="unlearned",
                sha256=serving.sha256,
                dvc_md5=serving.dvc_md5,
                path=serving.path,
                dataset_version_id=serving.dataset_version_id,
            )
            session.add(newer)
            session.flush()
            made.append(int(newer.id))

    monkeypatch.setattr(process, "stage_purge", purge_then_another_model_serves)
    summary = process.run_batch(platform, [again_id], device="cpu")
    assert summary.status == "failed" and summary.certificates == []
    assert f"production is model version {made[0]}, not this run's" in (summary.error or "")
    with session_scope(platform.engine) as session:
        assert session.get(Ticket, again_id).status == TicketStatus.FAILED
