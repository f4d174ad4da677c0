"""The four stages of a run (purge -> unlearn -> verify -> certify), each committed to the ledger
with the run's new stage before the next starts; every file a stage writes is written atomically."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlmodel import Session

from unlearnrec.compliance import certify
from unlearnrec.compliance.erasure import tombstone
from unlearnrec.compliance.fallback import Decision, decide
from unlearnrec.compliance.faults import crash_point
from unlearnrec.compliance.pairs import pseudonymised_hash, resolve_pairs
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.runs import advance, mark_verified, run_and_tickets
from unlearnrec.compliance.scratch import scratch_dir
from unlearnrec.compliance.versions import (
    add_dataset_version,
    add_model_version,
    checkout,
    production_model,
    read_dataset_version,
)
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import (
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
    append_event,
    session_scope,
    transition,
    utcnow,
)
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import PARTITION_METHODS
from unlearnrec.records.verification import FINAL, VerificationReport, record, report_of

log = logging.getLogger("unlearnrec.process")


class PurgeCheck(Protocol):
    """A purge check: (before, after, removed) pairs (N, 2) -> the record the run keeps:
    ``suite``, ``success``, ``failed`` (check names), ``statistics`` (``evaluated``,
    ``successful``, ``unsuccessful``), ``result_id`` and ``data_docs`` (where the check's result
    and its page are kept under ``root``, the state folder; ``run_name`` names the run there)."""

    def __call__(
        self,
        before: np.ndarray,
        after: np.ndarray,
        removed: np.ndarray,
        *,
        root: Path,
        run_name: str,
    ) -> dict[str, Any]: ...


class PurgeCheckFailed(RuntimeError):
    """The purge check failed; ``record`` is what the run keeps of it (the stage's transaction
    rolls back, so the failure handler records it on the run)."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(f"purge validation failed: {', '.join(record.get('failed') or [])}")
        self.record = record


def stage_purge(platform: Platform, run_id: int, purge_check: PurgeCheck | None) -> None:
    """Remove the tickets' interactions from the dataset: a new DVC-tracked version."""
    with session_scope(platform.engine) as session:
        run, tickets = run_and_tickets(session, run_id)
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
        checked: dict[str, Any] = {}
        if purge_check is not None:
            checked = purge_check(
                before.all_pairs(),
                after.all_pairs(),
                removed,
                root=platform.settings.var,
                run_name=f"run-{run.id}-attempt-{run.attempt}",
            )
            if not checked.get("success"):
                raise PurgeCheckFailed(checked)
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
        run.purge_check = checked
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
                **({"purge_check": certify.purge_check_summary(checked)} if checked else {}),
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
    mark_verified(
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


def removed_pairs(
    platform: Platform, run: UnlearningRun, session: Session
) -> tuple[Splits, Splits, np.ndarray]:
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
        run, tickets = run_and_tickets(session, run_id)
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
        from unlearnrec.training.loop import device_name, resolve_device

        run.device = device_name(resolve_device(device))
        run.model_after_id = version.id
        run.timings = {
            **run.timings,
            "unlearn_seconds": result.seconds,
            "encoder_refresh_seconds": result.refresh_seconds,
        }
        run.stage = "unlearned"
        session.add(run)
        advance(session, tickets, TicketStatus.UNLEARNED, platform.actor)
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
    the policy's fallback chain (``run_chain``), then its action: promote a full retrain
    (``retrain``) or escalate."""
    from unlearnrec.compliance.modeling import configured_retrain, retrain_model, verify

    thresholds = platform.policy.verification.thresholds
    home = platform.settings.home
    with session_scope(platform.engine) as session:
        run, tickets = run_and_tickets(session, run_id)
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
            if not report.passed and platform.policy.on_failure.chain:
                report = run_chain(
                    platform,
                    session,
                    run,
                    report,
                    kinds={t.kind for t in tickets},
                    f_before=f_before,
                    before=before,
                    after=after,
                    removed=removed,
                    reference_folder=ref_folder,
                    scratch=Path(tmp),
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
        mark_verified(
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


def run_chain(
    platform: Platform,
    session: Session,
    run: UnlearningRun,
    failed: VerificationReport,
    *,
    kinds: set[str],
    f_before: Path,
    before: Splits,
    after: Splits,
    removed: np.ndarray,
    reference_folder: Path | None,
    scratch: Path,
    device: str,
) -> VerificationReport:
    """The policy's fallback chain after ``failed``: each method in turn unlearns the batch from
    the model before it and is verified as the policy's method was; the first that passes
    becomes the run's model (a new version) and its report, which names the fallback and keeps
    why the policy's method failed. A partition method is its shard retrain and runs only where
    the production model is sharded; the others need one backbone. Returns ``failed`` with the
    chain's record when none passes (the policy's ``action`` then applies)."""
    from unlearnrec.compliance.modeling import (
        attach_preparation,
        is_sharded,
        unlearn_batch,
        verify,
    )

    sharded = is_sharded(f_before)
    policy_method, policy_params = run.method, dict(run.params)
    attempts: list[dict[str, Any]] = []
    for name in platform.policy.on_failure.chain:
        if (name in PARTITION_METHODS) != sharded:
            why = "sharded" if sharded else "not sharded"
            attempts.append({"method": name, "skipped": f"the production model is {why}"})
            continue
        result = unlearn_batch(
            f_before,
            before,
            removed,
            policy_params if name == policy_method else {},
            scratch / f"chain-{name}",
            method=name,
            kinds=kinds,
            after=after,
            device=device,
            data_hash=after.content_hash(),
        )
        tried = verify(
            original_folder=f_before,
            original=before,
            unlearned_folder=result.folder,
            after=after,
            removed=removed,
            thresholds=platform.policy.verification.thresholds,
            reference_folder=reference_folder,
            device=device,
        )
        attempts.append(
            {
                "method": name,
                "passed": tried.passed,
                "reasons": list(tried.reasons),
                "unlearn_seconds": round(result.seconds, 3),
            }
        )
        if tried.passed:
            if name != policy_method and (policy_method in PARTITION_METHODS) == sharded:
                # the next batch runs the policy's method again: it finds its preparation (the
                # encoder for UnlearnRec) next to the model, as after a promoted retrain
                attach_preparation(
                    result.folder, after, policy_params, method=policy_method, device=device
                )
            version = add_model_version(
                platform,
                session,
                result.folder,
                kind="unlearned",
                dataset_version_id=int(run.dataset_after_id),  # type: ignore[arg-type]
                parent_id=int(run.model_before_id),  # type: ignore[arg-type]
                run_id=run.id,
                metrics={
                    "unlearn_seconds": result.seconds,
                    "training_edges_removed": result.graph_edges_removed,
                },
            )
            run.method, run.model_after_id = name, version.id
            run.timings = {**run.timings, "fallback_unlearn_seconds": result.seconds}
            return replace(failed, chain=attempts).with_fallback(name, tried)
    return replace(failed, chain=attempts)


def promote_retrain(
    platform: Platform,
    session: Session,
    folder: Path,
    files: Splits,
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
        run, tickets = run_and_tickets(session, run_id)
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
        advance(session, tickets, TicketStatus.CERTIFIED, platform.actor)
        append_event(
            session,
            actor=platform.actor,
            action="run.certified",
            entity="run",
            entity_id=run.id,
            data={"certificates": len(paths), "status": status},
        )
        return paths
