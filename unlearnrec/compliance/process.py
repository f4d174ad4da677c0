"""Processing deletion tickets: validate, batch, then per batch purge -> unlearn -> verify ->
certify, each stage committed to the ledger before the next starts.

Crash safety: every stage writes its files atomically (the DVC store swaps whole folders,
certificates are written by rename) and records its result in the same transaction that advances
``UnlearningRun.stage``. A killed process leaves the run at its last completed stage; running
again resumes there, so each ticket is finished exactly once.

Concurrency: a whole processing pass holds the ``processing`` lease in the ledger (the flows take
it, see ``ledger/leases.py``) and each run holds a lease on its batch, so two passes (the hourly
deployment and a manual run) never work on the same run at once: the second waits or skips.
Ticket moves are compare-and-set (``ledger/tickets.py``), the last line of defence.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from unlearnrec.compliance import certify
from unlearnrec.compliance.batching import batch_key
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.runs import RunSummary, open_run, run_and_tickets
from unlearnrec.compliance.scratch import sweep
from unlearnrec.compliance.stages import (
    PurgeCheck,
    PurgeCheckFailed,
    stage_certify,
    stage_purge,
    stage_unlearn,
    stage_verify,
)
from unlearnrec.ledger import (
    TicketStatus,
    UnlearningRun,
    append_event,
    session_scope,
    transition,
)
from unlearnrec.ledger.leases import hold
from unlearnrec.records.verification import report_of

log = logging.getLogger("unlearnrec.process")

PROCESSING_LEASE = "processing"  # one processing pass (or reference retrain) at a time


def run_batch(
    platform: Platform,
    ticket_ids: list[int],
    *,
    device: str = "auto",
    purge_check: PurgeCheck | None = None,
) -> RunSummary:
    """Take one batch from wherever its run stopped to certified (or failed / escalated).

    The batch's lease is held throughout; if another process holds it (it is working on this
    very run), nothing is done and the summary says ``skipped``. Scratch folders of killed runs
    are swept first."""
    sweep(platform.settings.var)
    with hold(platform.engine, f"run:{batch_key(ticket_ids)}") as lease:
        if not lease.acquired:
            log.warning("batch %s is being processed by another run: skipped", ticket_ids)
            return RunSummary(run_id=0, status="skipped", stage="", tickets=list(ticket_ids))
        return _run_batch(platform, ticket_ids, device=device, purge_check=purge_check)


def _run_batch(
    platform: Platform,
    ticket_ids: list[int],
    *,
    device: str,
    purge_check: PurgeCheck | None,
) -> RunSummary:
    run_id = open_run(platform, ticket_ids, device=device)
    steps = {
        "scheduled": lambda: stage_purge(platform, run_id, purge_check),
        "purged": lambda: stage_unlearn(platform, run_id, device),
        "unlearned": lambda: stage_verify(platform, run_id, device),
        "verified": lambda: stage_certify(platform, run_id),
    }
    error = None
    while True:
        with session_scope(platform.engine) as session:
            run = session.get(UnlearningRun, run_id)
            assert run is not None
            stage, status = run.stage, run.status
        if status != "running" or stage == "certified":
            break
        try:
            steps[stage]()
        except Exception as exc:  # record, fail the tickets, let the caller decide
            error = f"{type(exc).__name__} at stage after {stage}: {exc}"
            log.error("run %s failed: %s", run_id, error)
            with session_scope(platform.engine) as session:
                run, tickets = run_and_tickets(session, run_id)
                # The last attempt escalates: the batch is no longer retried, so a person must
                # take its tickets on (a failed ticket nobody retries would be a lost duty).
                last = run.attempt >= platform.policy.on_failure.max_attempts
                run.status, run.error = ("escalated" if last else "failed"), error
                if isinstance(exc, PurgeCheckFailed):  # its stage rolled back: kept here
                    run.purge_check = exc.record
                session.add(run)
                target = TicketStatus.ESCALATED if last else TicketStatus.FAILED
                reason = (
                    f"failed {run.attempt} attempt(s), not retried: needs a person; {error}"
                    if last
                    else error
                )
                for t in tickets:
                    if target in TicketStatus.TRANSITIONS.get(t.status, ()):
                        transition(session, t, target, actor=platform.actor, reason=reason)
                append_event(
                    session,
                    actor=platform.actor,
                    action="run.escalated" if last else "run.failed",
                    entity="run",
                    entity_id=run_id,
                    data={
                        "stage": stage,
                        "attempt": run.attempt,
                        "error": error[:500],
                        **(
                            {"purge_check": certify.purge_check_summary(exc.record)}
                            if isinstance(exc, PurgeCheckFailed)
                            else {}
                        ),
                    },
                )
            break
    with session_scope(platform.engine) as session:
        run, tickets = run_and_tickets(session, run_id)
        from unlearnrec.ledger import Certificate

        certs_ = session.exec(select(Certificate).where(Certificate.run_id == run_id)).all()
        return RunSummary(
            run_id=run_id,
            status=run.status,
            stage=run.stage,
            tickets=list(run.ticket_ids),
            certificates=[c.path for c in certs_],
            verification=report_of(run),
            timings=dict(run.timings),
            error=run.error or error,
        )
