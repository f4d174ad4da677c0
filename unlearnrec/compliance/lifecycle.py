"""The platform's life cycle around the batches: bootstrap from the DVC pipeline's outputs, the
scheduled reference retrain (which upgrades provisional certificates), and retention."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlmodel import col, select

from unlearnrec.compliance import certify
from unlearnrec.compliance.erasure import (
    purge_processed_files,
    record_purged_models,
    sync_pipeline,
)
from unlearnrec.compliance.fallback import Decision, decide
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.scratch import scratch_dir
from unlearnrec.compliance.stages import promote_retrain, removed_pairs
from unlearnrec.compliance.versions import (
    add_dataset_version,
    add_model_version,
    checkout,
    current_dataset,
    production_model,
    read_dataset_version,
)
from unlearnrec.data import read_lightgcn
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import (
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    UnlearningRun,
    append_event,
    session_scope,
    utcnow,
)
from unlearnrec.records.verification import record

log = logging.getLogger("unlearnrec.lifecycle")


def bootstrap(
    platform: Platform,
    *,
    data_dir: Path,
    splits_path: Path,
    model_path: Path,
    encoder_path: Path,
    ladder_path: Path | None = None,
) -> tuple[int, int]:
    """Import the pipeline's dataset split and base model as version 0 (once; idempotent), with
    the encoder and, when the pipeline ran it, the retrain ladder's record (``ladder.json``: the
    configuration the platform's retrains then train with)."""
    with session_scope(platform.engine) as session:
        ds, model = current_dataset(session), production_model(session)
        if ds is not None and model is not None:
            return int(ds.id), int(model.id)  # type: ignore[arg-type]
        ids = read_lightgcn(data_dir)  # splits.npz keeps the pairs; the folder the id maps
        files = Splits.load(splits_path).with_ids(ids.user_ids, ids.item_ids)
        ds = ds or add_dataset_version(platform, session, files, parent_id=None, run_id=None)
        with scratch_dir(platform.settings.var, "bootstrap") as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            shutil.copy2(model_path, folder / "model.pt")
            shutil.copy2(encoder_path, folder / "encoder.pt")
            if ladder_path is not None and Path(ladder_path).is_file():
                from unlearnrec.compliance.modeling import LADDER_FILE

                shutil.copy2(ladder_path, folder / LADDER_FILE)
            model = add_model_version(
                platform,
                session,
                folder,
                kind="base",
                dataset_version_id=int(ds.id),  # type: ignore[arg-type]
                parent_id=None,
                run_id=None,
            )
        append_event(
            session,
            actor=platform.actor,
            action="platform.bootstrapped",
            entity="dataset",
            entity_id=ds.id,
            data={"dataset": ds.dvc_md5, "model": model.sha256},
        )
        return int(ds.id), int(model.id)  # type: ignore[arg-type]


@dataclass
class ReferenceSummary:
    model_version_id: int | None = None
    seconds: float = 0.0
    upgraded: list[str] = field(default_factory=list)  # new final certificate paths
    failed: list[int] = field(default_factory=list)  # runs whose final check failed
    overrides: dict = field(default_factory=dict)  # training fields the reference overrode
    source: str = ""  # where they came from: "params.yaml", "ladder" or "base"


def retrain_reference(platform: Platform, *, device: str = "auto") -> ReferenceSummary:
    """Retrain from scratch on the current dataset (the reference verification compares against
    and the fallback when it fails), then upgrade every provisional certificate: the production
    model must forget each run's interactions as this reference does."""
    from unlearnrec.compliance.modeling import configured_retrain, retrain_model, verify

    summary = ReferenceSummary()
    thresholds = platform.policy.verification.thresholds
    with session_scope(platform.engine) as session:
        ds, prod = current_dataset(session), production_model(session)
        if ds is None or prod is None:
            return summary
        files = read_dataset_version(platform, ds)
        with (
            scratch_dir(platform.settings.var, "reference") as tmp,
            checkout(platform, "model", prod.dvc_md5) as f_prod,
        ):
            # the fastest equal-utility configuration (params.yaml's ``retrain:``, else the
            # ladder run for the lineage's base model): the reference and the fallback it may
            # promote train as bench's retrain does
            overrides, source = configured_retrain(platform.settings.home, f_prod)
            ref_folder, seconds = retrain_model(
                files, f_prod, Path(tmp) / "ref", device=device, overrides=overrides
            )
            summary.seconds = seconds
            summary.overrides, summary.source = overrides, source
            ref = add_model_version(
                platform,
                session,
                ref_folder,
                kind="reference",
                dataset_version_id=int(ds.id),  # type: ignore[arg-type]
                parent_id=prod.id,
                run_id=None,
                metrics={
                    "seconds": seconds,
                    "retrain_overrides": overrides,
                    "retrain_source": source,
                },
            )
            summary.model_version_id = ref.id
            provisional = session.exec(
                select(Certificate).where(Certificate.status == "provisional")
            ).all()
            runs = sorted({c.run_id for c in provisional})
            for run_id in runs:
                run = session.get(UnlearningRun, run_id)
                assert run is not None
                before, _, removed = removed_pairs(platform, run, session)
                m_before = session.get(ModelVersion, run.model_before_id)
                with checkout(platform, "model", m_before.dvc_md5) as f_before:  # type: ignore[union-attr]
                    # The production model now (it descends from the run's) vs the reference,
                    # both on the current graph, on what this run erased.
                    report = verify(
                        original_folder=f_before,
                        original=before,
                        unlearned_folder=f_prod,
                        after=files,
                        removed=removed,
                        thresholds=thresholds,
                        reference_folder=ref_folder,
                        device=device,
                    )
                report = replace(report, reference_model_sha256=ref.sha256)
                promoted = None
                decision = decide(report, platform.policy.on_failure.action)
                if decision != Decision.KEEP:
                    summary.failed.append(run_id)
                if decision == Decision.ESCALATE:
                    # the provisional certificates stay; the failure is on the audit trail
                    append_event(
                        session,
                        actor=platform.actor,
                        action="run.final_failed",
                        entity="run",
                        entity_id=run_id,
                        data={"reasons": report.reasons},
                    )
                    continue
                if decision == Decision.PROMOTE_RETRAIN:
                    promoted, report = promote_retrain(
                        platform,
                        session,
                        ref_folder,
                        files,
                        run,
                        report,
                        dataset_version_id=int(ds.id),  # type: ignore[arg-type]
                        parent_id=int(prod.id),  # type: ignore[arg-type]
                        device=device,
                    )
                record(run, report)
                run.reference_model_id = ref.id
                session.add(run)
                append_event(
                    session,
                    actor=platform.actor,
                    action="run.final_checked",
                    entity="run",
                    entity_id=run_id,
                    data={
                        "mode": report.mode,
                        "passed": report.passed,
                        "reference_model_id": ref.id,
                        "fallback": report.fallback,
                    },
                )
                model_after = promoted or prod
                for cert in [c for c in provisional if c.run_id == run_id]:
                    ticket = session.get(Ticket, cert.ticket_ids[0])
                    assert ticket is not None
                    new = certify.issue(
                        platform,
                        session,
                        run=run,
                        ticket=ticket,
                        status="final",
                        model_after=model_after,
                        supersedes=cert,
                    )
                    summary.upgraded.append(new.path)
    return summary


def apply_retention(platform: Platform) -> list[str]:
    """Purge from the DVC cache and remote every dataset version that holds erased interactions
    and every model trained on one, once no provisional certificate or open run still needs them
    (unless the policy holds them: ``purge_erased_versions: false``). Records each purge."""
    if not platform.policy.retention.purge_erased_versions:
        return []
    purged: list[str] = []
    with session_scope(platform.engine) as session:
        pending_runs = {
            c.run_id
            for c in session.exec(select(Certificate).where(Certificate.status == "provisional"))
        }
        needed_ds, needed_models = set(), set()
        for run_id in pending_runs:
            run = session.get(UnlearningRun, run_id)
            if run is not None:
                needed_ds |= {run.dataset_before_id, run.dataset_after_id}
                needed_models |= {run.model_before_id, run.model_after_id}
        open_runs = session.exec(select(UnlearningRun).where(UnlearningRun.status != "succeeded"))
        for run in open_runs:
            needed_ds |= {run.dataset_before_id, run.dataset_after_id}
            needed_models |= {run.model_before_id, run.model_after_id}
        erased_ds = session.exec(
            select(DatasetVersion).where(
                DatasetVersion.holds_erased_data, col(DatasetVersion.purged).is_(False)
            )
        ).all()
        targets: list[tuple[str, str]] = []
        now = utcnow()
        prod = production_model(session)
        for ds in erased_ds:
            if ds.id in needed_ds:
                continue
            models = session.exec(
                select(ModelVersion).where(ModelVersion.dataset_version_id == ds.id)
            ).all()
            if any(m.id in needed_models or (prod and m.id == prod.id) for m in models):
                continue
            targets.append(("dataset", ds.dvc_md5))
            targets += [("model", m.dvc_md5) for m in models if m.dvc_md5]
            ds.purged, ds.purged_at = True, now
            session.add(ds)
            append_event(
                session,
                actor=platform.actor,
                action="retention.purged",
                entity="dataset",
                entity_id=ds.id,
                data={
                    "dvc_md5": ds.dvc_md5,
                    "models": [m.sha256 for m in models],
                    "policy": platform.policy.describe(),
                },
            )
        targets += _superseded_models(
            platform, session, needed_models, prod, {md5 for _, md5 in targets}
        )
        # Versions a crashed attempt stored but never recorded: nobody can refer to them.
        recorded = {("dataset", d.dvc_md5) for d in session.exec(select(DatasetVersion))} | {
            ("model", m.dvc_md5) for m in session.exec(select(ModelVersion))
        }
        for name in platform.store.pinned():
            kind, _, md5 = name.partition("-")
            if (kind, f"{md5}.dir") not in recorded:
                targets.append((kind, f"{md5}.dir"))
                append_event(
                    session,
                    actor=platform.actor,
                    action="retention.orphan",
                    entity=kind,
                    entity_id=md5,
                    data={},
                )
        if targets:
            purged = platform.store.purge(targets)
    # The model rows whose files that purge took (or an earlier one that crashed before this
    # point) say so; run once the session above committed, as it writes in its own session.
    record_purged_models(platform)
    # The copies outside the store: the pipeline's input and outputs, processed ticket files.
    synced = sync_pipeline(platform)
    deleted = purge_processed_files(platform)
    if synced.status != "unchanged" or deleted:
        log.info(
            "retention: pipeline %s (%d outputs removed, %d objects purged), %d processed "
            "ticket file(s) deleted",
            synced.status,
            len(synced.removed_outputs),
            len(synced.purged_objects),
            len(deleted),
        )
    return purged


def _superseded_models(
    platform: Platform,
    session,
    needed: set,
    prod: ModelVersion | None,
    already: set[str],
) -> list[tuple[str, str]]:
    """Model versions still stored that nothing needs: not production, not a model a pending
    final check or an open run needs, not the newest reference on the current dataset. Each
    descends from data later erased (a base model, an unlearned model that was superseded or
    failed verification, an older reference), so it leaves the store with a
    ``retention.model_purged`` event; its ledger row (hashes, metrics) stays as the record."""
    pinned = set(platform.store.pinned())
    models = list(session.exec(select(ModelVersion).order_by(col(ModelVersion.id))))
    current = current_dataset(session)
    refs = [m for m in models if m.kind == "reference"]
    newest_ref = refs[-1] if refs else None
    keep = {m.id for m in models if m.id in needed or (prod is not None and m.id == prod.id)}
    if newest_ref is not None and current is not None:
        if newest_ref.dataset_version_id == current.id:
            keep.add(newest_ref.id)
        else:  # its dataset held data erased since: the store's reference folder goes too
            for path in (platform.store.root / "models" / "reference.dvc",):
                path.unlink(missing_ok=True)
            shutil.rmtree(platform.store.root / "models" / "reference", ignore_errors=True)
    out = []
    for m in models:
        name = f"model-{m.dvc_md5.removesuffix('.dir')}"
        if m.id in keep or not m.dvc_md5 or name not in pinned or m.dvc_md5 in already:
            continue
        if any(k.dvc_md5 == m.dvc_md5 for k in models if k.id in keep):
            continue  # the same bytes serve under another row
        out.append(("model", m.dvc_md5))
        append_event(
            session,
            actor=platform.actor,
            action="retention.model_purged",
            entity="model",
            entity_id=m.id,
            data={"kind": m.kind, "sha256": m.sha256, "dvc_md5": m.dvc_md5},
        )
    return out


def certificate_rows(platform: Platform) -> list[dict]:
    with session_scope(platform.engine) as session:
        return [
            {
                "certificate_id": c.certificate_id,
                "status": c.status,
                "run_id": c.run_id,
                "tickets": c.ticket_ids,
                "path": c.path,
                "sha256": c.sha256,
                "issued_at": c.issued_at.isoformat(timespec="seconds"),
            }
            for c in session.exec(select(Certificate).order_by(Certificate.id))
        ]
