"""The batch lease: two callers of ``run_batch`` on the same batch at once (outside any flow,
so without the processing lease) never both work on it."""

from __future__ import annotations

import threading

from sqlmodel import select

from unlearnrec.compliance import process
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.runs import RunSummary
from unlearnrec.ledger import Certificate, ModelVersion, Ticket, TicketStatus, session_scope, utcnow

from .conftest import make_home
from .test_workflow import VALID, _open_and_fill


def test_two_callers_of_one_batch_one_works_the_other_skips(tiny_artifacts, tmp_path, monkeypatch):
    from flows.process_deletions import ProcessParams, plan, validate_tickets

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    params = ProcessParams(force=True, device="cpu")
    validate_tickets.fn(params)
    (batch,) = plan.fn(params)
    barrier = threading.Barrier(2)
    summaries: list[RunSummary] = []

    def caller() -> None:
        barrier.wait(timeout=30)
        summaries.append(process.run_batch(platform, batch, device="cpu"))

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert sorted(s.status for s in summaries) == ["skipped", "succeeded"]
    with session_scope(platform.engine) as session:
        tickets = {t.external_id: t for t in session.exec(select(Ticket))}
        certificates = list(session.exec(select(Certificate)))
        models = [m.kind for m in session.exec(select(ModelVersion))]
    assert {k for k, t in tickets.items() if t.status == TicketStatus.CERTIFIED} == VALID
    assert sorted(c.ticket_ids[0] for c in certificates) == sorted(tickets[k].id for k in VALID)
    assert models == ["base", "unlearned"]
