"""The ``process_deletions`` flow under a real (temporary) Prefect server: two passes started
together never work on the same run, and a batch that fails fails the flow run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlmodel import select

from flows.process_deletions import ProcessParams, process_deletions
from tests.postgres import temporary_database
from tests.unlearnrec.compliance.conftest import make_home, tiny_artifacts  # noqa: F401
from tests.unlearnrec.compliance.test_workflow import VALID, _open_and_fill
from unlearnrec.compliance import batching, process
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    Ticket,
    TicketStatus,
    UnlearningRun,
    session_scope,
    utcnow,
    verify_chain,
)


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _ingested(tiny_artifacts, home: Path, monkeypatch):  # noqa: F811
    make_home(tiny_artifacts, home, monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    return platform


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, monkeypatch):
    """The ledger on SQLite (under the home) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with temporary_database("unlearnrec_flow") as url:
        monkeypatch.setenv("UNLEARNREC_DB_URL", url)
        yield url


def test_two_passes_started_together_certify_each_ticket_once(
    harness,
    ledger_url,
    tiny_artifacts,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """The hourly run and a manual run at once: one pass works while the other waits for the
    lease and then finds nothing left. Every valid ticket is certified exactly once by one run,
    no ticket leaves a closed status, none is rejected as a duplicate of itself."""
    platform = _ingested(tiny_artifacts, tmp_path / "home", monkeypatch)
    assert (ledger_url is None) == (platform.engine.url.get_backend_name() == "sqlite")
    results: dict[int, object] = {}

    def one_pass(i: int) -> None:
        params = ProcessParams(force=True, device="cpu", wait_seconds=300)
        results[i] = process_deletions(params, return_state=True)

    threads = [threading.Thread(target=one_pass, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(results[i].is_completed() for i in range(2)), results

    with session_scope(platform.engine) as session:
        tickets = {t.external_id: t for t in session.exec(select(Ticket))}
        runs = list(session.exec(select(UnlearningRun)))
        certificates = list(session.exec(select(Certificate)))
        moves = [
            (e.entity_id, e.data["from"], e.data["to"])
            for e in session.exec(
                select(AuditEvent)
                .where(AuditEvent.action == "ticket.status")
                .order_by(AuditEvent.position)
            )
        ]
        assert verify_chain(session).ok
    assert {k for k, t in tickets.items() if t.status == TicketStatus.CERTIFIED} == VALID
    assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].stage == "certified"
    certified_ids = sorted(int(tickets[k].id) for k in VALID)
    assert sorted(c.ticket_ids[0] for c in certificates) == certified_ids
    assert not [m for m in moves if m[1] in TicketStatus.CLOSED]  # nothing left a closed state
    for ticket_id in certified_ids:  # each walked the path once
        assert [m[2] for m in moves if m[0] == str(ticket_id)].count("certified") == 1
    for external_id, t in tickets.items():
        assert f"duplicate of ticket {external_id}" not in (t.reason or "")


def test_a_failed_batch_fails_the_flow_run(harness, tiny_artifacts, tmp_path, monkeypatch):  # noqa: F811
    """Out of memory while unlearning: the ledger records the error on the run and its tickets,
    and the flow run ends Failed (not Completed) with the reason."""
    platform = _ingested(tiny_artifacts, tmp_path / "home", monkeypatch)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated out of memory in stage_unlearn")

    monkeypatch.setattr(process, "stage_unlearn", out_of_memory)
    state = process_deletions(ProcessParams(force=True, device="cpu"), return_state=True)
    assert state.is_failed(), state
    assert "simulated out of memory" in (state.message or "")
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        assert run.status == "failed" and "simulated out of memory" in (run.error or "")
        statuses = {t.external_id: t.status for t in session.exec(select(Ticket))}
    assert {k for k, s in statuses.items() if s == TicketStatus.FAILED} == VALID

    # The next pass retries it (the policy allows 2 attempts); failing again, the run and its
    # tickets are escalated to a person instead of silently dropped, and the flow run fails.
    state = process_deletions(ProcessParams(force=True, device="cpu"), return_state=True)
    assert state.is_failed() and "escalated" in (state.message or "")
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        assert (run.status, run.attempt) == ("escalated", 2)
        tickets = {t.external_id: t for t in session.exec(select(Ticket))}
    for external_id in VALID:
        assert tickets[external_id].status == TicketStatus.ESCALATED
        assert "needs a person" in (tickets[external_id].reason or "")
    assert batching.plan_batches(platform, now=utcnow(), force=True) == []  # not retried again
