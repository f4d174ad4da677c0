"""Certificates of erasure: one per ticket, canonical JSON signed with Ed25519, recorded in the
ledger with their audit-chain position. Re-issuing for the same ticket and run is idempotent.

Write, commit, then publish: a certificate is signed into ``certificates/.pending/`` and moved to
``certificates/`` only once the transaction recording it commits (and deleted if it rolls
back). A run killed in between leaves at most a pending file, never a published signed
certificate the ledger does not back; ``settle_pending`` (run before each issue) publishes a
pending file whose row did commit and revokes the others, with a ``certificate.revoked`` event.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, select

from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    UnlearningRun,
    append_event,
    utcnow,
)
from unlearnrec.ledger.keys import require_registered
from unlearnrec.records import certificates as certs
from unlearnrec.records.verification import report_of

PENDING = ".pending"


def pending_dir(platform: Platform) -> Path:
    return platform.settings.certificates / PENDING


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another issue pending), or gone already
        folder.rmdir()


def _publish_on_commit(session: Session, pending: Path, final: Path) -> None:
    """Move ``pending`` to ``final`` once ``session`` commits; delete it if it rolls back."""
    session.info.setdefault("pending_certificates", set()).add(pending.name)

    def publish(_session: Session) -> None:
        if pending.exists():
            os.replace(pending, final)
        _remove_if_empty(pending.parent)

    def discard(_session: Session) -> None:
        pending.unlink(missing_ok=True)
        _remove_if_empty(pending.parent)

    event.listen(session, "after_commit", publish, once=True)
    event.listen(session, "after_rollback", discard, once=True)


def settle_pending(platform: Platform, session: Session) -> tuple[list[str], list[str]]:
    """Pending certificate files left by a run that died between signing and publishing:
    publish those whose ledger row committed (and matches the file), revoke the rest (deleted,
    with a ``certificate.revoked`` event naming the id and the file's hash). Files this session
    is about to publish are left alone. Returns (published, revoked) certificate ids."""
    folder = pending_dir(platform)
    if not folder.is_dir():
        return [], []
    mine = session.info.get("pending_certificates", set())
    published: list[str] = []
    revoked: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.name in mine:
            continue
        cid = path.stem
        row = session.exec(select(Certificate).where(Certificate.certificate_id == cid)).first()
        sha = certs.sha256_hex(path.read_bytes())
        if row is not None and row.sha256 == sha:
            os.replace(path, platform.settings.certificates / path.name)
            published.append(cid)
            continue
        path.unlink()
        append_event(
            session,
            actor=platform.actor,
            action="certificate.revoked",
            entity="certificate",
            entity_id=cid,
            data={
                "certificate_id": cid,
                "sha256": sha,
                "reason": "signed but never recorded in the ledger (the run stopped before "
                "its commit)",
            },
        )
        revoked.append(cid)
    _remove_if_empty(folder)
    return published, revoked


def certificate_id(run: UnlearningRun, ticket: Ticket, status: str) -> str:
    return f"cert-r{run.id}-t{ticket.id}-{status}"


def purge_check_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's purge check that the audit trail and certificates carry: the suite,
    its outcome, GX's counts and the stored result's id (no data, no file path)."""
    stats = record.get("statistics") or {}
    return {
        "suite": record.get("suite"),
        "success": bool(record.get("success")),
        "evaluated": int(stats.get("evaluated", 0)),
        "successful": int(stats.get("successful", 0)),
        "result_id": record.get("result_id") or None,
    }


def certificate_body(
    *,
    run: UnlearningRun,
    ticket: Ticket,
    status: str,
    removed_hash: str,
    removed_count: int,
    dataset_before: DatasetVersion | None,
    dataset_after: DatasetVersion | None,
    model_before: ModelVersion | None,
    model_after: ModelVersion,
    audit_position: int,
    audit_hash: str,
    issued_at: datetime,
    supersedes: str | None = None,
) -> dict[str, Any]:
    """The certificate body: what was erased (pseudonymised), from which versions, how the purge
    was checked, how it was verified and against which thresholds, under which policy, and where
    it sits in the audit.
    Pure: the rows and the time of issue in, the body out, so a certificate can be rebuilt from
    its inputs (``build_body`` looks the rows up; ``issue`` reads the clock)."""
    ds_before, ds_after, m_before = dataset_before, dataset_after, model_before
    return {
        "schema": certs.SCHEMA,
        "certificate_id": certificate_id(run, ticket, status),
        "status": status,  # provisional | final
        "supersedes": supersedes,
        "issued_at": issued_at.isoformat(timespec="seconds"),
        "tickets": [
            {
                "id": ticket.id,
                "external_id": ticket.external_id,
                "kind": ticket.kind,
                "legal_basis": ticket.legal_basis,
                "received_at": ticket.received_at.isoformat(timespec="seconds"),
                "deadline_at": ticket.deadline_at.isoformat(timespec="seconds"),
            }
        ],
        "subjects": [ticket.subject_pseudonym] if ticket.subject_pseudonym else [],
        "removed_interactions": {
            "count": removed_count,
            "hash": removed_hash,
            "hash_of": "sha256 of the sorted [user, item] original-id pairs",
            "batch_count": run.removed_count,
            "batch_hash": run.removed_hash,
        },
        "dataset": {
            "before": {
                "dvc_md5": ds_before.dvc_md5 if ds_before else None,
                "content_hash": ds_before.content_hash if ds_before else None,
            },
            "after": {
                "dvc_md5": ds_after.dvc_md5 if ds_after else None,
                "content_hash": ds_after.content_hash if ds_after else None,
            },
        },
        "model": {
            "before": {
                "sha256": m_before.sha256 if m_before else None,
                "dvc_md5": m_before.dvc_md5 if m_before else None,
            },
            "after": {
                "sha256": model_after.sha256,
                "dvc_md5": model_after.dvc_md5,
                "kind": model_after.kind,
            },
        },
        "method": {"name": run.method, "params": run.params, "device": run.device},
        # exact: shard manifests prove no sub-model saw the erased data (verification.exact);
        # retrain: a model trained without it; approximate: unlearned, checked by the figures
        "tier": certs.tier_of(run.method, report_of(run)),
        # the ledger's JSON as stored (the report's one serialisation), not written again
        "verification": dict(run.verification),
        "policy": {"id": run.policy_id, "version": run.policy_version, "sha256": run.policy_sha256},
        "audit": {"position": audit_position, "event_hash": audit_hash},
        "timings": {k: round(float(v), 3) for k, v in run.timings.items()},
        "run": {"id": run.id, "attempt": run.attempt},
        # the purge's GX check, when the run recorded one (not for a run with nothing to erase,
        # nor one recorded before the ledger kept it: their certificates rebuild as signed)
        **({"purge_check": purge_check_summary(run.purge_check)} if run.purge_check else {}),
    }


def build_body(
    platform: Platform | None,
    session: Session,
    *,
    run: UnlearningRun,
    ticket: Ticket,
    status: str,
    removed_hash: str,
    removed_count: int,
    model_after: ModelVersion,
    audit_position: int,
    audit_hash: str,
    supersedes: str | None = None,
    issued_at: datetime | None = None,
) -> dict[str, Any]:
    """:func:`certificate_body` with the run's versions read from the ledger; ``issued_at``
    defaults to now."""
    return certificate_body(
        run=run,
        ticket=ticket,
        status=status,
        removed_hash=removed_hash,
        removed_count=removed_count,
        dataset_before=session.get(DatasetVersion, run.dataset_before_id),
        dataset_after=session.get(DatasetVersion, run.dataset_after_id),
        model_before=session.get(ModelVersion, run.model_before_id),
        model_after=model_after,
        audit_position=audit_position,
        audit_hash=audit_hash,
        issued_at=issued_at if issued_at is not None else utcnow(),
        supersedes=supersedes,
    )


def issue(
    platform: Platform,
    session: Session,
    *,
    run: UnlearningRun,
    ticket: Ticket,
    status: str,
    model_after: ModelVersion,
    supersedes: Certificate | None = None,
    now: datetime | None = None,
) -> Certificate:
    """Sign, write and record the certificate of ``ticket`` for ``run`` (idempotent); ``now``:
    the time of issue (default: the clock)."""
    cid = certificate_id(run, ticket, status)
    existing = session.exec(select(Certificate).where(Certificate.certificate_id == cid)).first()
    if existing is not None:
        return existing
    settle_pending(platform, session)  # what an earlier, killed run left half-issued
    # The key must be one the ledger pinned (the first key is pinned on first use), so a
    # verifier can tell a certificate of ours from one signed with a swapped-in key.
    require_registered(session, platform.signing_key, actor=platform.actor)
    # The audit event that announces the certificate fixes its position in the chain.
    ev = append_event(
        session,
        actor=platform.actor,
        action="certificate.issued",
        entity="ticket",
        entity_id=ticket.id,
        data={"certificate_id": cid, "run_id": run.id, "status": status},
    )
    body = build_body(
        platform,
        session,
        run=run,
        ticket=ticket,
        status=status,
        removed_hash=ticket.removed_hash,
        removed_count=ticket.removed_interactions,
        model_after=model_after,
        audit_position=ev.position,
        audit_hash=ev.hash,
        supersedes=supersedes.certificate_id if supersedes else None,
        issued_at=now,
    )
    signed = certs.sign_certificate(body, platform.signing_key)
    path = platform.settings.certificates / f"{cid}.json"
    pending = pending_dir(platform) / path.name
    sha = certs.write_certificate(pending, signed)  # published when the ledger commits
    _publish_on_commit(session, pending, path)
    from unlearnrec.compliance.faults import crash_point

    crash_point("after_certificate_written")
    row = Certificate(
        certificate_id=cid,
        run_id=int(run.id),  # type: ignore[arg-type]
        ticket_ids=[int(ticket.id)],
        path=str(path),  # type: ignore[arg-type]
        sha256=sha,
        digest=certs.certificate_digest(signed),
        key_id=signed["signature"]["key_id"],
        status=status,
        supersedes_id=supersedes.id if supersedes else None,
        audit_position=ev.position,
    )
    session.add(row)
    if supersedes is not None:
        supersedes.status = "superseded"
        session.add(supersedes)
    session.flush()
    ticket.certificate_id = row.id
    session.add(ticket)
    return row
