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

import hashlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from unlearnrec import certificates as certs
from unlearnrec.compliance import certify
from unlearnrec.compliance.dataset import DatasetFiles
from unlearnrec.compliance.erasure import tombstone
from unlearnrec.compliance.fallback import Decision, decide
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.scratch import scratch_dir, sweep
from unlearnrec.compliance.versions import (
    add_dataset_version,
    add_model_version,
    checkout,
    current_dataset,
    production_model,
    read_dataset_version,
)
from unlearnrec.ledger import (
    DatasetVersion,
    ModelVersion,
    StaleTicketError,
    Ticket,
    TicketStatus,
    UnlearningRun,
    add_with_event,
    append_event,
    session_scope,
    transition,
    utcnow,
)
from unlearnrec.ledger.leases import hold
from unlearnrec.verification import FINAL, VerificationReport, record, report_of

log = logging.getLogger("unlearnrec.process")

PROCESSING_LEASE = "processing"  # one processing pass (or reference retrain) at a time

STAGES = ("scheduled", "purged", "unlearned", "verified", "certified")
# The ticket status each run stage brings its tickets to.
TICKET_AT_STAGE = {
    "scheduled": TicketStatus.SCHEDULED,
    "purged": TicketStatus.SCHEDULED,
    "unlearned": TicketStatus.UNLEARNED,
    "verified": TicketStatus.VERIFIED,
    "certified": TicketStatus.CERTIFIED,
}
_PATH = (
    TicketStatus.SCHEDULED,
    TicketStatus.UNLEARNED,
    TicketStatus.VERIFIED,
    TicketStatus.CERTIFIED,
)

# A purge check: (before, after, removed) pairs -> list of failed check names (empty: passed).
PurgeCheck = Callable[[np.ndarray, np.ndarray, np.ndarray], list[str]]


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: ``UNLEARNREC_CRASH_POINT=<name>`` kills the process
    with SIGKILL here, between a side effect (files, DVC store) and the ledger commit."""
    if os.environ.get("UNLEARNREC_CRASH_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


# -- ticket -> pairs ----------------------------------------------------------------------------
def resolve_pairs(files: DatasetFiles, ticket: Ticket) -> np.ndarray:
    """The internal (user, item) pairs a ticket erases, over every split of ``files``."""
    pairs = files.all_pairs()
    users = {str(u): i for i, u in enumerate(files.user_ids)}
    items = {str(v): i for i, v in enumerate(files.item_ids)}
    if ticket.kind == "erase_user":
        u = users.get(ticket.subject or "")
        return pairs[pairs[:, 0] == u] if u is not None else pairs[:0]
    if ticket.kind == "erase_interactions":
        u = users.get(ticket.subject or "")
        wanted = [items[i] for i in ticket.items if i in items]
        if u is None or not wanted:
            return pairs[:0]
        return pairs[(pairs[:, 0] == u) & np.isin(pairs[:, 1], wanted)]
    if ticket.kind == "take_down_item":
        i = items.get(ticket.items[0]) if ticket.items else None
        return pairs[pairs[:, 1] == i] if i is not None else pairs[:0]
    raise ValueError(f"unknown ticket kind {ticket.kind!r}")


def original_pairs(files: DatasetFiles, pairs: np.ndarray) -> list[tuple[str, str]]:
    return [(str(files.user_ids[u]), str(files.item_ids[i])) for u, i in pairs]


def pseudonymised_hash(platform: Platform, files: DatasetFiles, pairs: np.ndarray) -> str:
    """Hash of the erased pairs with users pseudonymised (items are catalogue ids)."""
    return certs.hash_interactions(
        (platform.pseudonymise(u), i) for u, i in original_pairs(files, pairs)
    )


# -- validation ---------------------------------------------------------------------------------
def validation_rows(session: Session, tickets: list[Ticket]) -> list[dict[str, Any]]:
    """One row per received ticket for the ticket-batch suite (``flows/validation.py``)."""
    return [
        {
            "ticket_id": t.id,
            "external_id": t.external_id,
            "kind": t.kind,
            "subject": t.subject or "",
            "items": ";".join(t.items),
            "legal_basis": t.legal_basis,
            "received_at": t.received_at,
            "deadline_at": t.deadline_at,
        }
        for t in tickets
    ]


def duplicates_of_open(session: Session, tickets: list[Ticket]) -> dict[int, str]:
    """Tickets asking for exactly what another live ticket asks (same kind, subject, items)."""
    live = session.exec(
        select(Ticket).where(
            col(Ticket.status).notin_([TicketStatus.REJECTED, TicketStatus.RECEIVED])
        )
    ).all()
    seen = {(t.kind, t.subject, tuple(sorted(t.items))): (t.id, t.external_id) for t in live}
    out: dict[int, str] = {}
    for t in sorted(tickets, key=lambda x: x.id or 0):
        key = (t.kind, t.subject, tuple(sorted(t.items)))
        if key in seen and seen[key][0] != t.id and t.subject is not None:
            out[int(t.id)] = seen[key][1]  # type: ignore[arg-type]
        else:
            seen.setdefault(key, (t.id, t.external_id))
    return out


def apply_validation(
    platform: Platform,
    session: Session,
    tickets: list[Ticket],
    failures: dict[int, list[str]],
    actor: str,
) -> tuple[int, int]:
    """Move received tickets to validated, or to rejected with the failed checks as reason.
    A ticket another run has moved on meanwhile is left as that run put it."""
    ok = bad = 0
    for t in tickets:
        reasons = failures.get(int(t.id), [])  # type: ignore[arg-type]
        try:
            if reasons:
                transition(
                    session, t, TicketStatus.REJECTED, actor=actor, reason="; ".join(reasons)
                )
                bad += 1
            else:
                transition(session, t, TicketStatus.VALIDATED, actor=actor)
                ok += 1
        except StaleTicketError as exc:
            log.warning("validation skipped: %s", exc)
    return ok, bad


# -- batching -----------------------------------------------------------------------------------
def batch_key(ticket_ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(ticket_ids))).encode()).hexdigest()[:32]


def plan_batches(platform: Platform, *, now: datetime, force: bool = False) -> list[list[int]]:
    """Batches to process now: unfinished runs first (resumed as they were), then validated
    tickets in groups of at most ``max_tickets`` (soonest deadline first), once the oldest has
    waited the batching window, a full batch is ready or a ticket is overdue (``force``: don't
    wait)."""
    window = timedelta(minutes=platform.policy.batching.window_minutes)
    size = platform.policy.batching.max_tickets
    with session_scope(platform.engine) as session:
        batches = [
            list(r.ticket_ids)
            for r in session.exec(
                select(UnlearningRun)
                .where(UnlearningRun.status != "succeeded")
                .order_by(UnlearningRun.id)
            )
            if r.status == "running"
            or (r.status == "failed" and r.attempt < platform.policy.on_failure.max_attempts)
        ]
        taken = {t for b in batches for t in b}
        ready = [
            t
            for t in session.exec(
                select(Ticket)
                .where(Ticket.status == TicketStatus.VALIDATED)
                .order_by(Ticket.deadline_at, Ticket.id)
            )
            if t.id not in taken
        ]
    overdue = any(t.deadline_at <= now for t in ready)  # a missed deadline waits no longer
    if ready and (
        force or overdue or len(ready) >= size or min(t.updated_at for t in ready) <= now - window
    ):
        ids = [int(t.id) for t in ready]  # type: ignore[arg-type]
        batches += [ids[i : i + size] for i in range(0, len(ids), size)]
    return batches


# -- one run ------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    run_id: int
    status: str
    stage: str
    tickets: list[int] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None  # None: the run was not verified yet
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _advance(
    session: Session, tickets: list[Ticket], target: str, actor: str, reason: str | None = None
) -> None:
    """Bring each ticket to ``target`` along scheduled -> unlearned -> verified -> certified."""
    for t in tickets:
        if t.status == target:
            continue
        if t.status in (TicketStatus.FAILED, TicketStatus.ESCALATED, TicketStatus.VALIDATED):
            transition(session, t, TicketStatus.SCHEDULED, actor=actor)
        while t.status != target and t.status in _PATH:
            nxt = _PATH[_PATH.index(t.status) + 1]
            transition(session, t, nxt, actor=actor, reason=reason if nxt == target else None)
            if _PATH.index(nxt) >= _PATH.index(target):
                break


def open_run(platform: Platform, ticket_ids: list[int], *, device: str) -> int:
    """The run of this batch: resumed if it exists (a crash or a failure), else created."""
    key = batch_key(ticket_ids)
    policy = platform.policy
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun).where(UnlearningRun.batch_key == key)).first()
        tickets = [session.get(Ticket, i) for i in ticket_ids]
        if run is None:
            kinds = {t.kind for t in tickets if t}
            params = (
                policy.params_for(kinds.pop())
                if len(kinds) == 1
                else dict(policy.unlearning.params)
            )
            ds, model = current_dataset(session), production_model(session)
            if ds is None or model is None:
                raise RuntimeError("the ledger has no dataset or model yet: run bootstrap first")
            run = UnlearningRun(
                batch_key=key,
                method=policy.unlearning.method,
                params=params,
                device=device,
                policy_id=policy.id,
                policy_version=policy.version,
                policy_sha256=policy.sha256,
                ticket_ids=list(ticket_ids),
                dataset_before_id=ds.id,
                model_before_id=model.id,
            )
            add_with_event(
                session,
                run,
                actor=platform.actor,
                action="run.started",
                entity="run",
                data={
                    "tickets": list(ticket_ids),
                    "method": run.method,
                    "dataset_before_id": run.dataset_before_id,
                    "model_before_id": run.model_before_id,
                },
            )
        elif run.status == "failed":
            run.attempt += 1
            run.status, run.error = "running", None
            append_event(
                session,
                actor=platform.actor,
                action="run.retried",
                entity="run",
                entity_id=run.id,
                data={"attempt": run.attempt, "stage": run.stage},
            )
        else:
            append_event(
                session,
                actor=platform.actor,
                action="run.resumed",
                entity="run",
                entity_id=run.id,
                data={"stage": run.stage},
            )
        for t in tickets:
            if t is not None:
                t.run_id = run.id
                session.add(t)
        _advance(session, [t for t in tickets if t], TICKET_AT_STAGE[run.stage], platform.actor)
        session.add(run)
        return int(run.id)  # type: ignore[arg-type]


def _run_and_tickets(session: Session, run_id: int) -> tuple[UnlearningRun, list[Ticket]]:
    run = session.get(UnlearningRun, run_id)
    assert run is not None
    return run, [t for t in (session.get(Ticket, i) for i in run.ticket_ids) if t is not None]


def stage_purge(platform: Platform, run_id: int, purge_check: PurgeCheck | None) -> None:
    """Remove the tickets' interactions from the dataset: a new DVC-tracked version."""
    with session_scope(platform.engine) as session:
        run, tickets = _run_and_tickets(session, run_id)
        before_v = session.get(DatasetVersion, run.dataset_before_id)
        before = read_dataset_version(platform, before_v)  # type: ignore[arg-type]
        per_ticket = {t.id: resolve_pairs(before, t) for t in tickets}
        removed = (
            np.unique(np.concatenate(list(per_ticket.values())), axis=0)
            if per_ticket
            else (np.zeros((0, 2), np.int64))
        )
        if len(removed) == 0:
            _nothing_to_erase(platform, session, run, tickets, before_v)
            return
        # Users erased whole keep their row (model rows stay aligned), their raw id does not.
        index = {str(u): i for i, u in enumerate(before.user_ids)}
        gone = [index[t.subject] for t in tickets if t.kind == "erase_user" and t.subject in index]
        after = tombstone(before.without(removed), gone, platform.pseudonymise)
        if purge_check is not None:
            failed = purge_check(before.all_pairs(), after.all_pairs(), removed)
            if failed:
                raise RuntimeError(f"purge validation failed: {', '.join(failed)}")
        version = add_dataset_version(
            platform,
            session,
            after,
            parent_id=before_v.id,  # type: ignore[union-attr]
            run_id=run.id,
        )
        crash_point("after_dataset_stored")
        before_v.holds_erased_data = True  # type: ignore[union-attr]
        session.add(before_v)
        for t in tickets:
            # Recorded now, while the subject is known: certificates (also the final ones,
            # issued after the subject is cleared) read them from the ticket.
            t.removed_interactions = len(per_ticket[t.id])
            t.removed_hash = pseudonymised_hash(platform, before, per_ticket[t.id])
            session.add(t)
        run.dataset_after_id = version.id
        run.removed_count = len(removed)
        run.removed_hash = pseudonymised_hash(platform, before, removed)
        run.stage = "purged"
        session.add(run)
        append_event(
            session,
            actor=platform.actor,
            action="run.purged",
            entity="run",
            entity_id=run.id,
            data={
                "removed": run.removed_count,
                "removed_hash": run.removed_hash,
                "dataset_after": version.dvc_md5,
                "dataset_after_id": version.id,
                "dataset_before_id": before_v.id,  # type: ignore[union-attr]
            },
        )


def _nothing_to_erase(
    platform: Platform,
    session: Session,
    run: UnlearningRun,
    tickets: list[Ticket],
    dataset: DatasetVersion,
) -> None:
    """The dataset holds nothing the batch asks to erase (e.g. an earlier run erased it): no
    new dataset or model version; the run is verified by construction (the production model
    never needs to forget what the data does not hold) and goes on to certification."""
    nothing = certs.hash_interactions(())
    for t in tickets:
        t.removed_interactions, t.removed_hash = 0, nothing
        session.add(t)
    run.dataset_after_id = dataset.id
    run.model_after_id = run.model_before_id
    run.removed_count = 0
    run.removed_hash = nothing
    record(
        run,
        VerificationReport(
            mode=FINAL,
            passed=True,
            removed_training_edges=0,
            reasons=["nothing to erase: the dataset holds no interaction the batch names"],
        ),
    )
    _mark_verified(
        platform,
        session,
        run,
        tickets,
        "run.nothing_to_erase",
        {
            "tickets": list(run.ticket_ids),
            "removed": 0,
            "removed_hash": nothing,
            "dataset_after_id": dataset.id,
            "model_after_id": run.model_after_id,
        },
    )


def _mark_verified(
    platform: Platform,
    session: Session,
    run: UnlearningRun,
    tickets: list[Ticket],
    action: str,
    data: dict,
) -> None:
    """The run and its tickets reach ``verified``, with the audit event that says why."""
    run.stage = "verified"
    session.add(run)
    _advance(session, tickets, TicketStatus.VERIFIED, platform.actor)
    append_event(
        session, actor=platform.actor, action=action, entity="run", entity_id=run.id, data=data
    )


def removed_pairs(
    platform: Platform, run: UnlearningRun, session: Session
) -> tuple[DatasetFiles, DatasetFiles, np.ndarray]:
    """A run's dataset before and after its purge, and the pairs the purge removed (E, 2): kept
    nowhere else, so nothing but the two versions holds the erased pairs."""
    before = read_dataset_version(platform, session.get(DatasetVersion, run.dataset_before_id))  # type: ignore[arg-type]
    after = read_dataset_version(platform, session.get(DatasetVersion, run.dataset_after_id))  # type: ignore[arg-type]
    from unlearnrec.data.dataset import remove_edges

    removed = remove_edges(before.all_pairs(), after.all_pairs(), before.num_items)
    return before, after, removed


def stage_unlearn(platform: Platform, run_id: int, device: str) -> None:
    """Unlearn the erased training edges from the production model; a new model version."""
    from unlearnrec.compliance.modeling import configured_retrain, unlearn_batch

    with session_scope(platform.engine) as session:
        run, tickets = _run_and_tickets(session, run_id)
        before, after, removed = removed_pairs(platform, run, session)
        model_before = session.get(ModelVersion, run.model_before_id)
        assert model_before is not None
        with (
            scratch_dir(platform.settings.var, "run") as tmp,
            checkout(platform, "model", model_before.dvc_md5) as folder,
        ):
            result = unlearn_batch(
                folder,
                before,
                removed,
                run.params,
                Path(tmp) / "model",
                method=run.method,
                kinds={t.kind for t in tickets},
                after=after,
                device=device,
                data_hash=after.content_hash(),
                # a retrain policy trains as the platform home's params.yaml, else the
                # lineage's ladder, says
                retrain_overrides=(
                    configured_retrain(platform.settings.home, folder)[0]
                    if run.method == "retrain"
                    else None
                ),
            )
            crash_point("during_unlearn")  # killed with a dataset copy in a scratch folder
            version = add_model_version(
                platform,
                session,
                result.folder,
                kind="retrain" if result.method == "retrain" else "unlearned",
                dataset_version_id=int(run.dataset_after_id),  # type: ignore[arg-type]
                parent_id=model_before.id,
                run_id=run.id,
                metrics={
                    "unlearn_seconds": result.seconds,
                    "training_edges_removed": result.graph_edges_removed,
                },
            )
        crash_point("after_model_stored")
        from unlearnrec.training import device_name, resolve_device

        run.device = device_name(resolve_device(device))
        run.model_after_id = version.id
        run.timings = {
            **run.timings,
            "unlearn_seconds": result.seconds,
            "encoder_refresh_seconds": result.refresh_seconds,
        }
        run.stage = "unlearned"
        session.add(run)
        _advance(session, tickets, TicketStatus.UNLEARNED, platform.actor)
        append_event(
            session,
            actor=platform.actor,
            action="run.unlearned",
            entity="run",
            entity_id=run.id,
            data={"model_after_id": version.id, "sha256": version.sha256, "method": result.method},
        )


def stage_verify(platform: Platform, run_id: int, device: str) -> None:
    """Measure forgetting. Provisional policies certify on the MI figures now (the scheduled
    reference retrain upgrades them); final policies retrain the reference first. On failure,
    the policy's fallback: promote a full retrain (``retrain``) or escalate."""
    from unlearnrec.compliance.modeling import configured_retrain, retrain_model, verify

    thresholds = platform.policy.verification.thresholds
    home = platform.settings.home
    with session_scope(platform.engine) as session:
        run, tickets = _run_and_tickets(session, run_id)
        before, after, removed = removed_pairs(platform, run, session)
        m_before = session.get(ModelVersion, run.model_before_id)
        m_after = session.get(ModelVersion, run.model_after_id)
        assert m_before is not None and m_after is not None
        final = platform.policy.verification.mode == "final"
        with (
            scratch_dir(platform.settings.var, "run") as tmp,
            checkout(platform, "model", m_before.dvc_md5) as f_before,
        ):
            ref_folder = None
            # the platform home's params.yaml, not the working directory's: a flow given
            # ``home`` trains as that project's ``retrain:`` (else the lineage's ladder) says
            overrides = configured_retrain(home, f_before)[0]
            if final:
                ref_folder, secs = retrain_model(
                    after, f_before, Path(tmp) / "ref", device=device, overrides=overrides
                )
                run.timings = {**run.timings, "reference_seconds": secs}
            with checkout(platform, "model", m_after.dvc_md5) as f_after:
                # A model the retrain method made is a retrained reference itself: it is
                # measured against itself (final), not by the provisional heuristics.
                own = f_after if m_after.kind == "retrain" and ref_folder is None else None
                report = verify(
                    original_folder=f_before,
                    original=before,
                    unlearned_folder=f_after,
                    after=after,
                    removed=removed,
                    thresholds=thresholds,
                    reference_folder=ref_folder or own,
                    device=device,
                )
            decision = decide(report, platform.policy.on_failure.action)
            if decision == Decision.PROMOTE_RETRAIN:
                # Fallback: a full retrain without the data forgets by construction.
                if ref_folder is None:
                    ref_folder, secs = retrain_model(
                        after, f_before, Path(tmp) / "ref", device=device, overrides=overrides
                    )
                    run.timings = {**run.timings, "fallback_retrain_seconds": secs}
                promoted, report = promote_retrain(
                    platform,
                    session,
                    ref_folder,
                    after,
                    run,
                    report,
                    dataset_version_id=int(run.dataset_after_id),  # type: ignore[arg-type]
                    parent_id=int(m_before.id),  # type: ignore[arg-type]
                    device=device,
                )
                run.method, run.model_after_id = "retrain", promoted.id
            elif decision == Decision.ESCALATE:
                record(run, report)
                run.status = "escalated"  # a person decides; not retried automatically
                run.error = "verification failed: " + "; ".join(report.reasons)
                session.add(run)
                for t in tickets:
                    transition(
                        session, t, TicketStatus.ESCALATED, actor=platform.actor, reason=run.error
                    )
                append_event(
                    session,
                    actor=platform.actor,
                    action="run.escalated",
                    entity="run",
                    entity_id=run.id,
                    data={"reasons": report.reasons},
                )
                return
        record(run, report)
        _mark_verified(
            platform,
            session,
            run,
            tickets,
            "run.verified",
            {
                "mode": report.mode,
                "passed": report.passed,
                "method": run.method,
                "model_after_id": run.model_after_id,
            },
        )


def promote_retrain(
    platform: Platform,
    session: Session,
    folder: Path,
    files: DatasetFiles,
    run: UnlearningRun,
    report: VerificationReport,
    *,
    dataset_version_id: int,
    parent_id: int,
    device: str,
) -> tuple[ModelVersion, VerificationReport]:
    """The fallback when unlearning fails verification: the retrained model (which never saw the
    erased data) becomes the production model, prepared for the policy's method (UnlearnRec: an
    encoder of its own). Returns it and the report saying what unlearning missed."""
    from unlearnrec.compliance.modeling import attach_preparation

    attach_preparation(
        folder, files, run.params, method=platform.policy.unlearning.method, device=device
    )
    promoted = add_model_version(
        platform,
        session,
        folder,
        kind="retrain",
        dataset_version_id=dataset_version_id,
        parent_id=parent_id,
        run_id=run.id,
    )
    return promoted, report.with_retrain_fallback()


def stage_certify(platform: Platform, run_id: int) -> list[str]:
    """One signed certificate per ticket; the tickets become certified. Only if production is
    the model the certificates name: otherwise the run fails, saying which model serves."""
    with session_scope(platform.engine) as session:
        run, tickets = _run_and_tickets(session, run_id)
        model_after = session.get(ModelVersion, run.model_after_id)
        assert model_after is not None
        serving = production_model(session)
        if serving is None or serving.id != model_after.id:
            raise RuntimeError(
                f"production is model version {serving.id if serving else None}, not this run's "
                f"model version {model_after.id}: no certificate may name a model that does not "
                "serve"
            )
        report = report_of(run)
        status = "final" if report is not None and report.final else "provisional"
        paths = []
        for t in tickets:
            cert = certify.issue(
                platform, session, run=run, ticket=t, status=status, model_after=model_after
            )
            paths.append(cert.path)
        run.stage, run.status, run.finished_at = "certified", "succeeded", utcnow()
        session.add(run)
        _advance(session, tickets, TicketStatus.CERTIFIED, platform.actor)
        append_event(
            session,
            actor=platform.actor,
            action="run.certified",
            entity="run",
            entity_id=run.id,
            data={"certificates": len(paths), "status": status},
        )
        return paths


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
                run, tickets = _run_and_tickets(session, run_id)
                # The last attempt escalates: the batch is no longer retried, so a person must
                # take its tickets on (a failed ticket nobody retries would be a lost duty).
                last = run.attempt >= platform.policy.on_failure.max_attempts
                run.status, run.error = ("escalated" if last else "failed"), error
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
                    data={"stage": stage, "attempt": run.attempt, "error": error[:500]},
                )
            break
    with session_scope(platform.engine) as session:
        run, tickets = _run_and_tickets(session, run_id)
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
