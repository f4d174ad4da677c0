"""Replaying the audit trail against the ledger's rows.

The hash chain proves the *events* were not changed; the rows (tickets, runs, versions,
certificates) are ordinary table rows that anyone with write access to the database can edit.
Every change to a row the platform makes writes an event in the same transaction, so the events
say what each row must hold: ``replay_rows`` rebuilds that and names every row that differs (a
ticket set to ``certified`` by hand, a subject swapped, a row inserted or deleted outside the
platform, a certificate row whose anchor event is not its announcement). Run rows are compared
field by field with their events (tickets, method, versions before and after, removed count and
hash, stage, status, attempt, verification mode and verdict), dataset and model version rows
with the events announcing them (DVC and content hashes, parents, counts, runs; purged and
holds-erased flags with the retention and purge events), certificate rows with their issue
(run, status, ticket). Fields that events of an older version did not carry are not compared.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from unlearnrec.ledger.models import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketStatus,
    UnlearningRun,
)

MAX_PROBLEMS = 50

# Rows announced by an event of this entity when the platform creates them.
_ANNOUNCED = ((UnlearningRun, "run"), (DatasetVersion, "dataset"), (ModelVersion, "model"))


def _same_time(a: datetime | None, b: Any) -> bool:
    if a is None or not isinstance(b, str):
        return False
    try:
        return a == datetime.fromisoformat(b)
    except ValueError:
        return False


def _ticket_problems(
    ticket: Ticket,
    events: list[AuditEvent],
    certificates: dict[int, Certificate],
    pseudonymise: Callable[[str], str] | None,
) -> list[str]:
    name = f"ticket {ticket.id}"
    received = [e for e in events if e.action == "ticket.received"]
    if not received:
        return [f"{name}: no ticket.received event (the row was written outside the platform)"]
    first = received[0].data
    problems: list[str] = []
    for column, key in (
        ("external_id", "external_id"),
        ("kind", "kind"),
        ("subject_pseudonym", "subject"),
        ("legal_basis", "legal_basis"),
    ):
        if key in first and getattr(ticket, column) != first[key]:
            problems.append(f"{name}: {column} differs from its ticket.received event")
    if "items" in first and len(ticket.items) != first["items"]:
        problems.append(f"{name}: items differ in number from its ticket.received event")
    status, deadline = TicketStatus.RECEIVED, first.get("deadline_at")
    for e in events:
        if e.action == "ticket.status":
            if e.data.get("from") != status:
                problems.append(
                    f"{name}: event {e.position} moves it from {e.data.get('from')}, "
                    f"but the trail had it {status}"
                )
            status = str(e.data.get("to"))
        elif e.action == "ticket.extended":
            deadline = e.data.get("deadline_at")
    if ticket.status != status:
        problems.append(
            f"{name}: status is {ticket.status} in the table, the audit trail says {status}"
        )
    if deadline is not None and not _same_time(ticket.deadline_at, deadline):
        problems.append(f"{name}: deadline differs from the audit trail's")
    if ticket.subject is not None:
        if ticket.status in (TicketStatus.CERTIFIED, TicketStatus.REJECTED):
            problems.append(f"{name}: closed, yet its raw subject is still stored")
        elif pseudonymise is not None and pseudonymise(ticket.subject) != ticket.subject_pseudonym:
            problems.append(f"{name}: subject does not match its pseudonym (the subject changed)")
    issued = {str(e.data.get("certificate_id")) for e in events if e.action == "certificate.issued"}
    if ticket.status == TicketStatus.CERTIFIED:
        cert = certificates.get(ticket.certificate_id or -1)
        if not issued:
            problems.append(f"{name}: certified, but no certificate.issued event names it")
        if cert is None or ticket.id not in cert.ticket_ids:
            problems.append(f"{name}: certified, but no certificate row of it backs that")
        elif cert.certificate_id not in issued:
            problems.append(
                f"{name}: its certificate {cert.certificate_id} was never issued to it "
                "according to the audit trail"
            )
    return problems


def _differs(name: str, column: str, row_value: Any, expected: Any, source: str) -> list[str]:
    if row_value == expected:
        return []
    return [f"{name}: {column} is {row_value!r} in the table, {source} says {expected!r}"]


# What each run event says the run row holds from then on: row column -> event data key.
_RUN_FIELDS = {
    "run.started": {
        "ticket_ids": "tickets",
        "method": "method",
        "dataset_before_id": "dataset_before_id",
        "model_before_id": "model_before_id",
    },
    "run.purged": {
        "removed_count": "removed",
        "removed_hash": "removed_hash",
        "dataset_after_id": "dataset_after_id",
    },
    "run.nothing_to_erase": {
        "removed_count": "removed",
        "removed_hash": "removed_hash",
        "dataset_after_id": "dataset_after_id",
        "model_after_id": "model_after_id",
    },
    "run.unlearned": {"model_after_id": "model_after_id", "method": "method"},
    "run.verified": {"method": "method", "model_after_id": "model_after_id"},
    "run.retried": {"attempt": "attempt"},
    "run.final_checked": {"reference_model_id": "reference_model_id"},
}
# The stage and status a run event leaves its run at (None: unchanged).
_RUN_STATE = {
    "run.started": ("scheduled", "running"),
    "run.retried": (None, "running"),
    "run.purged": ("purged", None),
    "run.unlearned": ("unlearned", None),
    "run.verified": ("verified", None),
    "run.nothing_to_erase": ("verified", None),
    "run.escalated": (None, "escalated"),
    "run.failed": (None, "failed"),
    "run.certified": ("certified", "succeeded"),
}


def _run_problems(
    run: UnlearningRun, events: list[AuditEvent], datasets: dict[int, DatasetVersion]
) -> list[str]:
    """The run row against its events: tickets, method, versions before and after, what was
    removed (count and hash), stage, status, attempt, verification mode and verdict. A field an
    event of an older version did not carry is not compared."""
    name = f"run {run.id}"
    expected: dict[str, Any] = {}
    stage = status = None
    verdict: dict[str, Any] = {}
    after_md5 = None
    for e in events:
        for column, key in _RUN_FIELDS.get(e.action, {}).items():
            if key in e.data:
                expected[column] = e.data[key]
        if e.action == "run.started":
            expected.setdefault("attempt", 1)
        new_stage, new_status = _RUN_STATE.get(e.action, (None, None))
        stage, status = new_stage or stage, new_status or status
        if e.action in ("run.verified", "run.final_checked") and "passed" in e.data:
            verdict = {"mode": e.data.get("mode"), "passed": e.data.get("passed")}
        elif e.action == "run.nothing_to_erase":
            verdict = {"mode": "final", "passed": True}
        if e.action == "run.purged" and "dataset_after" in e.data:
            after_md5 = e.data["dataset_after"]
    if stage is None:
        return []  # no run.started: reported as unannounced elsewhere
    # A run.started naming the versions before was written by a platform that records every
    # stage (run.purged, run.unlearned, run.certified): only then are stage and status implied.
    staged = any(e.action == "run.started" and "dataset_before_id" in e.data for e in events)
    problems: list[str] = []
    for column, value in expected.items():
        problems += _differs(name, column, getattr(run, column), value, "the audit trail")
    if staged:
        problems += _differs(name, "stage", run.stage, stage, "the audit trail")
        problems += _differs(name, "status", run.status, status, "the audit trail")
    for key, value in verdict.items():
        problems += _differs(
            name, f"verification {key}", run.verification.get(key), value, "the audit trail"
        )
    if after_md5 is not None:
        after = datasets.get(run.dataset_after_id or -1)
        if after is None or after.dvc_md5 != after_md5:
            problems.append(f"{name}: its dataset after is not the version its purge recorded")
    return problems


_DATASET_FIELDS = {
    "dvc_md5": "dvc_md5",
    "parent_id": "parent_id",
    "num_interactions": "interactions",
    "content_hash": "content_hash",
    "run_id": "run_id",
}
_MODEL_FIELDS = {
    "kind": "kind",
    "sha256": "sha256",
    "dvc_md5": "dvc_md5",
    "dataset_version_id": "dataset_version_id",
    "parent_id": "parent_id",
    "run_id": "run_id",
}


def _version_problems(
    session: Session, by_entity: dict[tuple[str, str], list[AuditEvent]]
) -> list[str]:
    """Dataset and model version rows against the events announcing them (hashes, parents,
    counts, runs), purged and holds-erased flags against the retention and purge events."""
    problems: list[str] = []
    purges = [
        e for (entity, _), evs in by_entity.items() if entity == "run" for e in evs
        if e.action == "run.purged"
    ]  # fmt: skip
    erased_from = {e.data.get("dataset_before_id") for e in purges}
    complete = bool(purges) and all("dataset_before_id" in e.data for e in purges)
    for ds in session.exec(select(DatasetVersion).order_by(col(DatasetVersion.id))):
        name, events = f"dataset {ds.id}", by_entity.get(("dataset", str(ds.id)), [])
        announced = [e for e in events if e.action == "dataset.version"]
        if not announced:
            continue  # reported as unannounced
        for column, key in _DATASET_FIELDS.items():
            # run_id: a version made by a run names it from the start (bootstrap: None)
            if announced[0].data.get(key) is not None:
                problems += _differs(
                    name, column, getattr(ds, column), announced[0].data[key], "its announcement"
                )
        purged = any(e.action == "retention.purged" for e in events)
        problems += _differs(name, "purged", bool(ds.purged), purged, "the retention events")
        if complete:
            problems += _differs(
                name, "holds_erased_data", bool(ds.holds_erased_data), ds.id in erased_from,
                "the purge events",
            )  # fmt: skip
    for m in session.exec(select(ModelVersion).order_by(col(ModelVersion.id))):
        name, events = f"model {m.id}", by_entity.get(("model", str(m.id)), [])
        announced = [e for e in events if e.action == "model.version"]
        if not announced:
            continue
        for column, key in _MODEL_FIELDS.items():
            if announced[0].data.get(key) is not None:
                problems += _differs(
                    name, column, getattr(m, column), announced[0].data[key], "its announcement"
                )
        purged = any(e.action == "model.purged" for e in events)
        problems += _differs(name, "purged", bool(m.purged), purged, "the retention events")
    return problems


def _certificate_problems(
    cert: Certificate, issued: AuditEvent, later: list[AuditEvent]
) -> list[str]:
    """A certificate row against its ``certificate.issued`` event: run, status (superseded
    once a later certificate was issued for its ticket), the ticket it was issued to."""
    name = f"certificate {cert.certificate_id}"
    problems = _differs(name, "run_id", cert.run_id, issued.data.get("run_id"), "its issue")
    status = "superseded" if later else issued.data.get("status")
    if status is not None:
        problems += _differs(name, "status", cert.status, status, "the audit trail")
    if issued.entity == "ticket" and int(issued.entity_id) not in cert.ticket_ids:
        problems.append(f"{name}: its tickets do not include ticket {issued.entity_id}")
    return problems


def replay_rows(session: Session, *, pseudonymise: Callable[[str], str] | None = None) -> list[str]:
    """Every ledger row that differs from what the audit trail says it must hold, in words
    (at most ``MAX_PROBLEMS``, then a count). ``pseudonymise``: also check each open ticket's
    raw subject against its pseudonym (needs the pseudonym secret)."""
    by_entity: dict[tuple[str, str], list[AuditEvent]] = {}
    by_position: dict[int, AuditEvent] = {}
    for ev in session.exec(select(AuditEvent).order_by(col(AuditEvent.position))):
        by_entity.setdefault((ev.entity, ev.entity_id), []).append(ev)
        by_position[ev.position] = ev
    problems: list[str] = []
    certificates = {int(c.id): c for c in session.exec(select(Certificate))}  # type: ignore[arg-type]
    tickets = list(session.exec(select(Ticket).order_by(col(Ticket.id))))
    for ticket in tickets:
        events = by_entity.get(("ticket", str(ticket.id)), [])
        problems += _ticket_problems(ticket, events, certificates, pseudonymise)
    known = {str(t.id) for t in tickets}
    for (entity, entity_id), events in by_entity.items():
        if (
            entity == "ticket"
            and entity_id not in known
            and any(e.action == "ticket.received" for e in events)
        ):
            problems.append(f"ticket {entity_id}: in the audit trail, but not in the table")
    for model, entity in _ANNOUNCED:
        for row_id in session.exec(select(model.id)):  # type: ignore[attr-defined]
            if (entity, str(row_id)) not in by_entity:
                problems.append(
                    f"{entity} {row_id}: no audit event announces it (written outside the platform)"
                )
    datasets = {int(d.id): d for d in session.exec(select(DatasetVersion))}  # type: ignore[arg-type]
    for run in session.exec(select(UnlearningRun).order_by(col(UnlearningRun.id))):
        problems += _run_problems(run, by_entity.get(("run", str(run.id)), []), datasets)
    problems += _version_problems(session, by_entity)
    for cert in certificates.values():
        anchor = by_position.get(cert.audit_position)
        if (
            anchor is None
            or anchor.action != "certificate.issued"
            or anchor.data.get("certificate_id") != cert.certificate_id
        ):
            problems.append(
                f"certificate {cert.certificate_id}: its anchor, event {cert.audit_position}, "
                "is not its certificate.issued event (the trail was cut or rewritten there, or "
                "the row was written outside the platform)"
            )
            continue
        later = [
            e
            for e in by_entity.get((anchor.entity, anchor.entity_id), [])
            if e.action == "certificate.issued" and e.position > anchor.position
        ]
        problems += _certificate_problems(cert, anchor, later)
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more"]
    return problems
