"""What the dashboard shows, as plain data: pure functions over a ledger ``Session`` (and, for
certificates, the files they point at) returning dicts and lists. No Streamlit here, so every
figure on a page can be tested without a browser.

Personal data: the ``subject`` column of a ticket is never loaded (it is deferred with
``raiseload``, so touching it raises); tickets are identified by external id and pseudonym.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, or_
from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
    verify_with_certificates,
)
from unlearnrec.ledger.db import schema_status
from unlearnrec.ledger.replay import replay_rows
from unlearnrec.records import certificates as certs
from unlearnrec.records.verification import Figures, report_of

# Verification figures, in display order: key in ``verification.Figures`` -> label.
METRICS: dict[str, str] = {
    "recall@20": "Recall@20",
    "ndcg@20": "NDCG@20",
    "mi_bf": "MI-BF",
    "mi_ng": "MI-NG",
    "mia_auc": "MIA AUC",
}
UTILITY = ("recall@20", "ndcg@20")
DASH = "—"


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC (a naive value from some drivers is UTC by the ledger's convention)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the ledger as a whole ----------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSummary:
    tables: bool  # False: the database exists but the ledger tables were never created
    # the ledger's schema revision and the one this code reads, when they differ (the dashboard
    # is read-only: it says what to run instead of reading columns that are not there)
    revision: str | None = None
    head: str | None = None
    tickets: int = 0
    runs: int = 0
    certificates: int = 0
    dataset_versions: int = 0
    model_versions: int = 0
    audit_events: int = 0

    @property
    def out_of_date(self) -> bool:
        return self.head is not None and self.revision != self.head

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.runs or self.dataset_versions or self.audit_events)


def summarise(engine: Engine) -> LedgerSummary:
    """Row counts; raises SQLAlchemy's ``OperationalError`` when the database is unreachable."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(Ticket.__tablename__):
            return LedgerSummary(tables=False)
    status = schema_status(engine)
    if status["current"] != status["head"]:
        return LedgerSummary(tables=True, revision=status["current"], head=status["head"])
    with Session(engine) as session:

        def count(model: Any) -> int:
            return int(session.exec(select(func.count()).select_from(model)).one())

        return LedgerSummary(
            tables=True,
            tickets=count(Ticket),
            runs=count(UnlearningRun),
            certificates=count(Certificate),
            dataset_versions=count(DatasetVersion),
            model_versions=count(ModelVersion),
            audit_events=count(AuditEvent),
        )


# -- tickets ------------------------------------------------------------------------------------


def tickets(session: Session) -> list[dict[str, Any]]:
    """Every ticket, pseudonymised (the ``subject`` column is not even read), oldest first."""
    query = select(Ticket).options(defer(Ticket.subject, raiseload=True)).order_by(Ticket.id)
    cert_names = dict(session.exec(select(Certificate.id, Certificate.certificate_id)).all())
    rows = []
    for t in session.exec(query):
        rows.append(
            {
                "id": t.id,
                "external_id": t.external_id,
                "kind": t.kind,
                "subject_pseudonym": t.subject_pseudonym or DASH,
                "items": len(t.items or []),
                "legal_basis": t.legal_basis,
                "status": t.status,
                "reason": t.reason,
                "received_at": _utc(t.received_at),
                "deadline_at": _utc(t.deadline_at),
                "extension_days": t.extension_days,
                "extension_reason": t.extension_reason,
                "source": t.source,
                "policy": f"{t.policy_id} v{t.policy_version}" if t.policy_id else DASH,
                "run_id": t.run_id,
                "certificate_id": t.certificate_id,
                "certificate": cert_names.get(t.certificate_id) if t.certificate_id else None,
                "removed_interactions": t.removed_interactions,
                "updated_at": _utc(t.updated_at),
            }
        )
    return rows


def status_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Tickets per status, every status present (zero when none), in the machine's order."""
    seen = Counter(r["status"] for r in rows)
    counts = {s: seen.pop(s, 0) for s in TicketStatus.ALL}
    counts.update(seen)  # a status this code does not know still shows
    return counts


def countdown(deadline: datetime, now: datetime) -> str:
    """``"12 d 5 h left"``, ``"3 h 20 min left"`` or ``"overdue by 2 d 1 h"``."""
    delta = deadline - now
    overdue = delta < timedelta(0)
    secs = int(abs(delta).total_seconds())
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    span = f"{days} d {hours} h" if days else f"{hours} h {minutes} min"
    return f"overdue by {span}" if overdue else f"{span} left"


def is_overdue(row: dict[str, Any], now: datetime) -> bool:
    return row["status"] in TicketStatus.OPEN and row["deadline_at"] < now


def ticket_flag(row: dict[str, Any], now: datetime) -> str:
    """``"OVERDUE"``, ``"ESCALATED"``, both, or empty: what a row must shout about."""
    on = (("OVERDUE", is_overdue(row, now)), ("ESCALATED", row["status"] == TicketStatus.ESCALATED))
    return " ".join(name for name, flagged in on if flagged)


def deadlines(rows: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Open tickets by deadline, soonest (or most overdue) first, with a countdown and flags."""
    out = []
    for r in rows:
        if r["status"] not in TicketStatus.OPEN:
            continue
        overdue = r["deadline_at"] < now
        escalated = r["status"] == TicketStatus.ESCALATED
        out.append(
            {
                "external_id": r["external_id"],
                "status": r["status"],
                "kind": r["kind"],
                "legal_basis": r["legal_basis"],
                "deadline_at": r["deadline_at"],
                "time_left": countdown(r["deadline_at"], now),
                "flag": ticket_flag(r, now),
                "overdue": overdue,
                "escalated": escalated,
            }
        )
    out.sort(key=lambda d: d["deadline_at"])
    return out


def _in_range(value: datetime, bounds: Sequence[date] | None) -> bool:
    if not bounds:
        return True
    day = value.date()
    if bounds[0] is not None and day < bounds[0]:
        return False
    # A range being picked has only its start: everything from that day on matches.
    return len(bounds) < 2 or bounds[1] is None or day <= bounds[1]


def filter_tickets(
    rows: Iterable[dict[str, Any]],
    *,
    statuses: Sequence[str] = (),
    kinds: Sequence[str] = (),
    legal_bases: Sequence[str] = (),
    received: Sequence[date] | None = None,
    deadline: Sequence[date] | None = None,
    search: str = "",
) -> list[dict[str, Any]]:
    """Tickets matching every given filter (an empty filter matches all). ``received`` and
    ``deadline`` are inclusive (from, to) UTC dates, or (from,) for an open end; ``search`` is a
    case-insensitive substring of the external id."""
    needle = search.strip().lower()
    return [
        r
        for r in rows
        if (not statuses or r["status"] in statuses)
        and (not kinds or r["kind"] in kinds)
        and (not legal_bases or r["legal_basis"] in legal_bases)
        and _in_range(r["received_at"], received)
        and _in_range(r["deadline_at"], deadline)
        and (not needle or needle in r["external_id"].lower())
    ]


def timeline(session: Session, ticket_id: int, run_id: int | None) -> list[dict[str, Any]]:
    """The audit events of a ticket and of its run, in chain order."""
    where = (AuditEvent.entity == "ticket") & (AuditEvent.entity_id == str(ticket_id))
    if run_id is not None:
        where = or_(where, (AuditEvent.entity == "run") & (AuditEvent.entity_id == str(run_id)))
    events = session.exec(select(AuditEvent).where(where).order_by(AuditEvent.position))
    return [
        {
            "position": ev.position,
            "at": _utc(ev.at),
            "actor": ev.actor,
            "action": ev.action,
            "entity": f"{ev.entity} {ev.entity_id}",
            "details": _describe_event(ev.action, ev.data or {}),
            "hash": ev.hash[:16],
        }
        for ev in events
    ]


def _describe_event(action: str, data: dict[str, Any]) -> str:
    if action == "ticket.status":
        text = f"{data.get('from')} → {data.get('to')}"
        return f"{text}: {data['reason']}" if data.get("reason") else text
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


# -- runs, versions and metrics -----------------------------------------------------------------


def runs(session: Session) -> list[dict[str, Any]]:
    """Every unlearning run, newest first, with its verification, timings and speed-up."""
    ref_seconds = {
        m.id: m.metrics.get("seconds")
        for m in session.exec(select(ModelVersion).where(ModelVersion.kind == "reference"))
    }
    names = dict(session.exec(select(Ticket.id, Ticket.external_id)).all())
    out = []
    for run in session.exec(select(UnlearningRun).order_by(UnlearningRun.id.desc())):  # type: ignore[union-attr]
        v = report_of(run)
        timing = run_timing(run.timings or {}, run.reference_model_id, ref_seconds)
        out.append(
            {
                "id": run.id,
                "status": run.status,
                "stage": run.stage,
                "method": run.method,
                "device": run.device or DASH,
                "tickets": [names.get(t, f"#{t}") for t in run.ticket_ids],
                "removed_count": run.removed_count,
                "policy": f"{run.policy_id} v{run.policy_version}" if run.policy_id else DASH,
                "mode": v.mode if v else DASH,
                # exact (shard retrain, proved from the manifests) | retrain | approximate
                "tier": certs.tier_of(run.method, v) if v else DASH,
                "passed": v.passed if v else None,
                "fallback": (v.fallback if v else None) or DASH,
                "reasons": list(v.reasons) if v else [],
                "verification": v,  # a VerificationReport, None before the run was verified
                "record": dict(run.verification or {}),  # the ledger's JSON, to show as stored
                "timings": dict(run.timings or {}),
                # the purge's GX check as recorded ({}: none), see purge_check_outcome
                "purge_check": dict(run.purge_check or {}),
                **timing,
                "dataset_before_id": run.dataset_before_id,
                "dataset_after_id": run.dataset_after_id,
                "model_before_id": run.model_before_id,
                "model_after_id": run.model_after_id,
                "reference_model_id": run.reference_model_id,
                "started_at": _utc(run.started_at),
                "finished_at": _utc(run.finished_at),
                "error": run.error,
            }
        )
    return out


# The GX project under the state folder (flows/gx_store.py): its data-docs site.
GX_FOLDER = "gx"
DATA_DOCS_INDEX = "gx/uncommitted/data_docs/local_site/index.html"


def purge_check_outcome(check: dict[str, Any] | None) -> str:
    """One line for a purge check, as a run records it (``statistics``) or a certificate carries
    it (``evaluated`` / ``successful``): passed or FAILED (with the failed checks' names when
    known) and how many expectations were met; a dash when none was recorded."""
    if not check:
        return DASH
    stats = check.get("statistics") or check
    met = f"{stats.get('successful', 0)} of {stats.get('evaluated', 0)} expectations met"
    if check.get("success"):
        return f"passed, {met}"
    failed = ", ".join(check.get("failed") or [])
    return f"FAILED{': ' + failed if failed else ''} ({met})"


def purge_check_brief(check: dict[str, Any] | None) -> str:
    """``"passed 6/6"`` or ``"FAILED 5/6"`` (expectations met / evaluated) for a table cell; the
    failed checks' names are in :func:`purge_check_outcome`."""
    if not check:
        return DASH
    stats = check.get("statistics") or check
    met = f"{stats.get('successful', 0)}/{stats.get('evaluated', 0)}"
    return f"passed {met}" if check.get("success") else f"FAILED {met}"


def data_docs_page(check: dict[str, Any] | None, var: Path) -> Path | None:
    """The data-docs page a run's purge check names, under the state folder's GX project; None
    when it names none, or a path outside that project (the dashboard opens nothing else)."""
    relative = (check or {}).get("data_docs")
    if not relative:
        return None
    page = var / relative
    try:
        page.resolve().relative_to((var / GX_FOLDER).resolve())
    except ValueError:
        return None
    return page


def run_timing(
    timings: dict[str, Any], reference_model_id: int | None, ref_seconds: dict[Any, Any]
) -> dict[str, Any]:
    """Unlearning time, the retrain time it is compared with (and where that came from), and
    the speed-up; ``None`` where the ledger does not say."""
    unlearn = _number(timings.get("unlearn_seconds"))
    candidates = (
        (_number(ref_seconds.get(reference_model_id)), f"reference model #{reference_model_id}"),
        (_number(timings.get("reference_seconds")), "reference retrain in the run"),
        (_number(timings.get("fallback_retrain_seconds")), "fallback retrain in the run"),
    )
    retrain, source = next(((s, w) for s, w in candidates if s is not None), (None, None))
    speedup = retrain / unlearn if retrain is not None and unlearn else None
    return {
        "unlearn_seconds": unlearn,
        "retrain_seconds": retrain,
        "retrain_source": source,
        "speedup": speedup,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def metric_rows(run_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long format for charts: one row per (run, model, metric) the verification recorded."""
    out = []
    for r in run_rows:
        for model in ("unlearned", "reference"):
            figures = _figures(r, model)
            if figures is None:
                continue
            for key, label in METRICS.items():
                value = _number(figures.get(key))
                if value is not None:
                    out.append(
                        {
                            "run": f"run {r['id']}",
                            "run_id": r["id"],
                            "model": model,
                            "metric": label,
                            "kind": "utility" if key in UTILITY else "forgetting",
                            "value": value,
                        }
                    )
    return out


def _figures(run_row: dict[str, Any], model: str) -> Figures | None:
    """``model``'s figures (``unlearned`` or ``reference``) in a :func:`runs` row, if any."""
    report = run_row["verification"]
    return getattr(report, model) if report is not None else None


def metric_table(run_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, figure): the unlearned model's value beside the retrained reference's
    (None where the run has no reference yet), with the run's verification mode, verdict and
    fallback. Long rather than wide, so the table stays a few columns across."""
    out = []
    for r in run_rows:
        unlearned = _figures(r, "unlearned") or Figures()
        reference = _figures(r, "reference") or Figures()
        for key, label in METRICS.items():
            out.append(
                {
                    "run": r["id"],
                    "metric": label,
                    "unlearned": _number(unlearned.get(key)),
                    "reference": _number(reference.get(key)),
                    "mode": r["mode"],
                    "passed": r["passed"],
                    "fallback": r["fallback"],
                }
            )
    return out


def dataset_versions(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "dvc_md5": d.dvc_md5,
            "content_hash": d.content_hash,
            "parent_id": d.parent_id,
            "run_id": d.run_id,
            "users": d.num_users,
            "items": d.num_items,
            "interactions": d.num_interactions,
            "holds_erased_data": d.holds_erased_data,
            "purged": d.purged,
            "created_at": _utc(d.created_at),
        }
        for d in session.exec(select(DatasetVersion).order_by(DatasetVersion.id))
    ]


def model_versions(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "kind": m.kind,
            "sha256": m.sha256,
            "dvc_md5": m.dvc_md5 or DASH,
            "dataset_version_id": m.dataset_version_id,
            "parent_id": m.parent_id,
            "run_id": m.run_id,
            "metrics": json.dumps(m.metrics or {}, sort_keys=True, default=str),
            "created_at": _utc(m.created_at),
        }
        for m in session.exec(select(ModelVersion).order_by(ModelVersion.id))
    ]


def lineage_dot(datasets: Sequence[dict[str, Any]], models: Sequence[dict[str, Any]]) -> str:
    """Graphviz DOT of the version lineage: datasets (boxes) and models (ellipses), parent edges
    solid, "trained on" edges dashed."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    for d in datasets:
        style = ', style="filled", fillcolor="#eeeeee"' if d["purged"] else ""
        label = f"dataset {d['id']}\\n{d['dvc_md5'][:8]}\\n{d['interactions']} interactions"
        if d["purged"]:
            label += "\\n(purged)"
        lines.append(f'  d{d["id"]} [shape=box, label="{label}"{style}];')
        if d["parent_id"] is not None:
            run = f' [label="run {d["run_id"]}"]' if d["run_id"] is not None else ""
            lines.append(f"  d{d['parent_id']} -> d{d['id']}{run};")
    for m in models:
        label = f"{m['kind']} {m['id']}\\n{m['sha256'][:8]}"
        lines.append(f'  m{m["id"]} [shape=ellipse, label="{label}"];')
        if m["parent_id"] is not None:
            lines.append(f"  m{m['parent_id']} -> m{m['id']};")
        lines.append(f"  d{m['dataset_version_id']} -> m{m['id']} [style=dashed];")
    lines.append("}")
    return "\n".join(lines)


# -- certificates -------------------------------------------------------------------------------


def certificates(session: Session) -> list[dict[str, Any]]:
    """Every certificate row, newest first, with its tickets' external ids."""
    names = dict(session.exec(select(Ticket.id, Ticket.external_id)).all())
    return [
        {
            "id": c.id,
            "certificate_id": c.certificate_id,
            "status": c.status,
            "run_id": c.run_id,
            "tickets": [names.get(t, f"#{t}") for t in c.ticket_ids],
            "path": c.path,
            "sha256": c.sha256,
            "digest": c.digest,
            "key_id": c.key_id,
            "audit_position": c.audit_position,
            "issued_at": _utc(c.issued_at),
        }
        for c in session.exec(select(Certificate).order_by(Certificate.id.desc()))  # type: ignore[union-attr]
    ]


def revocations(session: Session) -> list[dict[str, Any]]:
    """Certificates revoked by the platform (``certificate.revoked`` events), newest first."""
    query = select(AuditEvent).where(AuditEvent.action == "certificate.revoked")
    return [
        {
            "certificate": str(ev.data.get("certificate_id", ev.entity_id)),
            "revoked": _utc(ev.at),
            "file sha256": str(ev.data.get("sha256", ""))[:16],
            "reason": str(ev.data.get("reason", "")),
            "audit position": ev.position,
        }
        for ev in session.exec(query.order_by(AuditEvent.position.desc()))  # type: ignore[attr-defined]
    ]


def certificate_path(row: dict[str, Any], home: Path) -> Path:
    """The file a certificate row names (a relative path is relative to the project root)."""
    path = Path(row["path"])
    return path if path.is_absolute() else Path(home) / path


@dataclass(frozen=True)
class CertificateCheck:
    """The live check of one certificate file against its ledger row and the public key."""

    ok: bool
    problems: tuple[str, ...]
    checks: tuple[tuple[str, bool | None], ...]  # (what was checked, passed; None = not run)
    path: Path
    file_sha256: str | None
    key_id: str | None
    document: dict[str, Any] | None  # the parsed certificate (None if unreadable)

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"


def check_certificate(row: dict[str, Any], public_key_path: Path, home: Path) -> CertificateCheck:
    """Check a certificate now: the file exists, its sha256 is the ledger's, it is in canonical
    form, its Ed25519 signature holds under the platform key and its digest, key id and
    certificate id are those the ledger recorded. Never raises for a bad file."""
    path = certificate_path(row, home)
    problems: list[str] = []
    checks: list[tuple[str, bool | None]] = []

    def record(name: str, passed: bool | None, problem: str | None = None) -> None:
        checks.append((name, passed))
        if passed is False and problem:
            problems.append(problem)

    try:
        raw = path.read_bytes()
    except OSError as exc:
        record("file readable", False, f"the certificate file cannot be read: {exc.strerror}")
        return CertificateCheck(False, tuple(problems), tuple(checks), path, None, None, None)
    record("file readable", True)
    sha = hashlib.sha256(raw).hexdigest()
    record(
        "file sha256 = ledger's",
        sha == row["sha256"],
        f"the file's sha256 {sha[:16]}… differs from the ledger's {row['sha256'][:16]}…: "
        "the file was changed or replaced after it was issued",
    )
    document: dict[str, Any] | None = None
    try:
        document = certs.parse_certificate(raw, path, strict=True)
        record("canonical JSON", True)
    except ValueError as exc:
        record("canonical JSON", False, str(exc))
        try:  # still check the signature of a readable file: say what changed
            document = certs.parse_certificate(raw, path)
        except ValueError:
            document = None
    try:
        public_key = certs.load_public_key(public_key_path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        record("signature (Ed25519)", False, f"public key {public_key_path}: {reason}")
        public_key = None
    key_id = None
    if document is not None and public_key is not None:
        result = certs.verify_certificate(document, public_key)
        key_id = result.key_id
        record("signature (Ed25519)", result.ok, "; ".join(result.problems))
        record(
            "digest = ledger's",
            result.digest == row["digest"],
            f"the signed content's digest {str(result.digest)[:16]}… is not the ledger's "
            f"{row['digest'][:16]}…",
        )
        record(
            "key id = ledger's",
            result.key_id == row["key_id"],
            f"signed by key {result.key_id}, the ledger recorded {row['key_id']}",
        )
        record(
            "certificate id = ledger's",
            document.get("certificate_id") == row["certificate_id"],
            f"the file says certificate {document.get('certificate_id')!r}, "
            f"the ledger row is {row['certificate_id']!r}",
        )
    elif document is None:
        record("signature (Ed25519)", None)
    ok = not problems and all(passed for _, passed in checks)
    return CertificateCheck(ok, tuple(problems), tuple(checks), path, sha, key_id, document)


def certificate_notes(
    document: dict[str, Any], tickets_by_id: dict[int, dict[str, Any]]
) -> list[str]:
    """What a validly signed certificate says that disagrees with the ledger (for a person to
    look at; it does not change the PASS/FAIL of the signature and hash checks): today, the
    number of interactions it says were removed against the count the purge recorded."""
    notes = []
    removed = document.get("removed_interactions")
    stated = removed.get("count") if isinstance(removed, dict) else None
    for entry in document.get("tickets") or []:
        ticket = tickets_by_id.get(entry.get("id")) if isinstance(entry, dict) else None
        if ticket is None or stated is None or len(document.get("tickets") or []) != 1:
            continue
        if stated != ticket["removed_interactions"]:
            notes.append(
                f"the certificate says {stated} interactions were removed for "
                f"{ticket['external_id']}, the ledger recorded {ticket['removed_interactions']} "
                "when the data was purged"
            )
    return notes


# -- audit trail --------------------------------------------------------------------------------


def audit_check(session: Session, certificates_dir: Path) -> dict[str, Any]:
    """The hash chain recomputed, with every certificate file's anchor, and the trail replayed
    against the ledger's rows (a row edited in the database is named): a JSON-able summary."""
    check = verify_with_certificates(session, certificates_dir)
    problems = [*check.problems, *replay_rows(session)]
    return {
        "ok": not problems,
        "events": check.events,
        "anchors": check.anchors,
        "problems": problems,
    }
