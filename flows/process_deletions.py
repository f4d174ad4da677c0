"""Flow ``process_deletions``: validate received tickets (Great Expectations), batch them, and
take each batch through purge -> unlearn (CUDA when present) -> verify -> certify.

One pass at a time: the flow holds the ledger's ``processing`` lease for the whole pass (a second
pass waits ``wait_seconds`` for it, then skips cleanly), and its deployments allow one flow run
at a time (``concurrency_limit``). A batch that fails leaves its reason in the ledger and then
fails the flow run, so the orchestrator's state, automations and notifications see it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from pydantic import Field
from sqlmodel import select

from flows.common import TIMEOUTS, FlowParams
from flows.validation import (
    ESCALATING_CHECKS,
    REASONS,
    validate_purge,
    validate_ticket_batch,
)
from unlearnrec.compliance import batching, process, validation
from unlearnrec.compliance.erasure import tombstoned
from unlearnrec.compliance.lifecycle import apply_retention
from unlearnrec.compliance.runs import RunSummary
from unlearnrec.compliance.scratch import sweep
from unlearnrec.compliance.versions import current_dataset, read_dataset_version
from unlearnrec.ledger import Ticket, TicketStatus, flag_overdue, session_scope, utcnow
from unlearnrec.ledger.leases import hold


class ProcessParams(FlowParams):
    force: bool = Field(False, description="process validated tickets now, not after the window")
    wait_seconds: float = Field(
        0.0, ge=0, description="wait this long for a pass already running, then skip"
    )


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger; the module's when a task function runs outside a flow."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("flows.process_deletions")


class BatchFailed(RuntimeError):
    """One or more batches failed; the ledger holds each run's error."""


@task(cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS.validate_tickets)
def validate_tickets(params: ProcessParams) -> dict[str, int]:
    """Run the ticket-batch suite over every received ticket; reject failures with reasons.
    Open tickets past their deadline are escalated (flagged overdue), never rejected for it."""
    platform = params.platform(actor="flow:process_deletions")
    now = utcnow()
    logger = _logger()
    with session_scope(platform.engine) as session:
        for t in flag_overdue(session, now=now, actor="flow:process_deletions"):
            logger.warning(
                "ticket %s is OVERDUE (deadline %s, %s): escalated, processed first",
                t.external_id,
                t.deadline_at.isoformat(),
                t.status,
            )
    with session_scope(platform.engine) as session:
        tickets = list(
            session.exec(
                select(Ticket).where(Ticket.status == TicketStatus.RECEIVED).order_by(Ticket.id)
            )
        )
        if not tickets:
            return {"validated": 0, "rejected": 0}
        ds = current_dataset(session)
        files = read_dataset_version(platform, ds)  # type: ignore[arg-type]
        frame = pd.DataFrame(validation.validation_rows(session, tickets))
        # A user erased earlier is known by the tombstone in the id map: a ticket for them is
        # valid (certified as erasing nothing), not rejected as an unknown user.
        gone = tombstoned(files.user_ids)
        known = set(map(str, files.user_ids)) | {
            t.subject for t in tickets if t.subject and platform.pseudonymise(t.subject) in gone
        }
        result = validate_ticket_batch(
            frame,
            known_users=known,
            known_items=set(map(str, files.item_ids)),
            now=now,
            interactions=_interactions_of(files, {t.subject for t in tickets if t.subject}),
            root=platform.settings.var,
            run_name="tickets",
        )
        logger.info(
            "ticket batch of %d: %s; GX result %s, data docs %s",
            len(tickets),
            "passed" if result.success else f"failed {', '.join(result.failed)}",
            result.result_id,
            result.data_docs,
        )
        failures: dict[int, list[str]] = {}
        for row, names in result.row_failures.items():
            failures.setdefault(int(frame.loc[row, "ticket_id"]), []).extend(
                REASONS.get(n, n) for n in names if n not in ESCALATING_CHECKS
            )
        for ticket_id, original in validation.duplicates_of_open(session, tickets).items():
            failures.setdefault(ticket_id, []).append(f"duplicate of ticket {original}")
        ok, bad = validation.apply_validation(
            platform, session, tickets, failures, actor="flow:process_deletions"
        )
    return {"validated": ok, "rejected": bad}


def _interactions_of(files, subjects: set[str]) -> dict[str, set[str]]:
    """The items each of ``subjects`` interacted with (over every split)."""
    index = {str(u): i for i, u in enumerate(files.user_ids)}
    wanted = {index[s]: s for s in subjects if s in index}
    pairs = files.all_pairs()
    pairs = pairs[np.isin(pairs[:, 0], list(wanted))]
    out: dict[str, set[str]] = {s: set() for s in wanted.values()}
    for u, i in pairs:
        out[wanted[int(u)]].add(str(files.item_ids[i]))
    return out


def _purge_check(
    before: np.ndarray, after: np.ndarray, removed: np.ndarray, *, root: Path, run_name: str
) -> dict[str, Any]:
    """The purge suite through its checkpoint (result and data docs kept under ``root``); the
    record the run keeps (``unlearnrec.compliance.stages.PurgeCheck``)."""
    frame = lambda a: pd.DataFrame(a, columns=["user", "item"])  # noqa: E731
    result = validate_purge(
        frame(before), frame(after), frame(removed), root=root, run_name=run_name
    )
    logger = _logger()
    log = logger.info if result.success else logger.error
    outcome = "failed " + ", ".join(result.failed) if result.failed else "passed"
    log("purge check %s: %s (data docs: %s)", run_name, outcome, result.data_docs)
    return result.record()


# Retries only where the work is idempotent: planning reads the ledger; retention unpins and
# collects DVC objects (I/O that a rerun finishes). A batch is not retried blindly: the ledger
# records its failure and the next pass resumes it at its last completed stage.
@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, timeout_seconds=TIMEOUTS.plan)
def plan(params: ProcessParams) -> list[list[int]]:
    platform = params.platform(actor="flow:process_deletions")
    return batching.plan_batches(platform, now=utcnow(), force=params.force)


@task(cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS.batch)
def run_batch(params: ProcessParams, ticket_ids: list[int]) -> RunSummary:
    platform = params.platform(actor="flow:process_deletions")
    return process.run_batch(platform, ticket_ids, device=params.device, purge_check=_purge_check)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30, timeout_seconds=TIMEOUTS.retention)
def retention(params: ProcessParams) -> list[str]:
    return apply_retention(params.platform(actor="flow:process_deletions"))


@flow(name="process_deletions", timeout_seconds=TIMEOUTS.process_flow)
def process_deletions(params: ProcessParams | None = None) -> list[RunSummary]:
    params = params or ProcessParams()
    logger = get_run_logger()
    platform = params.platform(actor="flow:process_deletions")
    with hold(platform.engine, process.PROCESSING_LEASE, wait=params.wait_seconds) as lease:
        if not lease.acquired:
            logger.warning(
                "another processing pass holds the lease (waited %.0f s): skipped", lease.waited
            )
            return []
        swept = sweep(platform.settings.var)
        if swept:
            logger.warning("removed %d scratch folder(s) left by killed runs", len(swept))
        runs = _process(params, logger)
    # Failed (retried next pass) or escalated (a person must act): either way the flow run
    # fails, so the orchestrator's notifications reach someone.
    failed = [r for r in runs if r.status in ("failed", "escalated")]
    if failed:
        raise BatchFailed(
            "; ".join(f"run {r.run_id} {r.status} at stage {r.stage}: {r.error}" for r in failed)
        )
    return runs


def _process(params: ProcessParams, logger) -> list[RunSummary]:
    counts = validate_tickets(params)
    logger.info("validation: %d validated, %d rejected", counts["validated"], counts["rejected"])
    runs = [run_batch(params, batch) for batch in plan(params)]
    for r in runs:
        logger.info(
            "run %d: %s at stage %s, %d tickets, %d certificates",
            r.run_id,
            r.status,
            r.stage,
            len(r.tickets),
            len(r.certificates),
        )
    purged = retention(params)
    summary_artifacts(counts, runs, purged)
    return runs


def summary_rows(runs: list[RunSummary]) -> list[dict]:
    """One row per run for the summary table (numbers stay numbers; absent ones are None)."""

    def figure(r: RunSummary, name: str) -> float | None:
        figures = r.verification.unlearned if r.verification else None
        value = figures.get(name) if figures else None
        return round(float(value), 4) if value is not None else None

    return [
        {
            "run": r.run_id,
            "status": r.status,
            "stage": r.stage,
            "tickets": len(r.tickets),
            "certificates": len(r.certificates),
            "mode": r.verification.mode if r.verification else "",
            "MI-BF": figure(r, "mi_bf"),
            "MIA AUC": figure(r, "mia_auc"),
            "unlearn s": round(float(r.timings.get("unlearn_seconds", 0.0)), 2),
            "error": (r.error or "")[:300],
        }
        for r in runs
    ]


def summary_artifacts(counts: dict[str, int], runs: list[RunSummary], purged) -> None:
    """The pass as Prefect table artifacts: one row per run, and the pass's counts."""
    create_table_artifact(
        key="process-deletions-runs",
        table=summary_rows(runs),
        description="deletion batches: one row per unlearning run",
    )
    create_table_artifact(
        key="process-deletions-summary",
        table=[
            {
                "validated": counts["validated"],
                "rejected": counts["rejected"],
                "runs": len(runs),
                "purged versions": len(purged),
            }
        ],
        description="the processing pass: tickets validated and rejected, runs, retention",
    )
