"""The ledger's tables (SQLModel): tickets, unlearning runs, dataset and model versions,
certificates, and an append-only, hash-chained audit trail.

Times are timezone-aware UTC everywhere (``utcnow()``); SQLModel stores and returns them as such
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class TicketStatus:
    """received → validated | rejected → scheduled → unlearned → verified → certified,
    or failed / escalated. ``TRANSITIONS`` lists every allowed move."""

    RECEIVED = "received"
    VALIDATED = "validated"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    UNLEARNED = "unlearned"
    VERIFIED = "verified"
    CERTIFIED = "certified"
    FAILED = "failed"
    ESCALATED = "escalated"

    ALL = (
        RECEIVED,
        VALIDATED,
        REJECTED,
        SCHEDULED,
        UNLEARNED,
        VERIFIED,
        CERTIFIED,
        FAILED,
        ESCALATED,
    )
    OPEN = (RECEIVED, VALIDATED, SCHEDULED, UNLEARNED, VERIFIED, FAILED, ESCALATED)
    CLOSED = (CERTIFIED, REJECTED)  # terminal: no move out, no change (``tickets.ensure_open``)
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        RECEIVED: frozenset({VALIDATED, REJECTED}),
        VALIDATED: frozenset({SCHEDULED, REJECTED, ESCALATED}),
        SCHEDULED: frozenset({UNLEARNED, FAILED, ESCALATED, VALIDATED}),
        UNLEARNED: frozenset({VERIFIED, FAILED, ESCALATED}),
        VERIFIED: frozenset({CERTIFIED, FAILED, ESCALATED}),
        FAILED: frozenset({SCHEDULED, ESCALATED}),
        ESCALATED: frozenset({SCHEDULED, REJECTED}),
        CERTIFIED: frozenset(),
        REJECTED: frozenset(),
    }


class Ticket(SQLModel, table=True):
    """One erasure request. ``external_id`` is the DSAR system's id: the same id twice is one
    ticket. ``subject`` (the original user id) is personal data: it is cleared once the ticket is
    certified or rejected; ``subject_pseudonym`` (a keyed hash) stays for the audit."""

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(index=True, unique=True, max_length=200)
    kind: str = Field(index=True, max_length=40)
    subject: str | None = Field(default=None, max_length=200)
    subject_pseudonym: str = Field(default="", index=True, max_length=80)
    items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    legal_basis: str = Field(max_length=40)
    received_at: datetime
    deadline_at: datetime = Field(index=True)
    extension_days: int = 0
    extension_reason: str | None = Field(default=None, sa_column=Column(Text))
    status: str = Field(default=TicketStatus.RECEIVED, index=True, max_length=20)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    source: str = Field(default="", max_length=300)
    policy_id: str = Field(default="", max_length=80)
    policy_version: int = 0
    run_id: int | None = Field(default=None, foreign_key="unlearningrun.id", index=True)
    certificate_id: int | None = Field(default=None, foreign_key="certificate.id")
    removed_interactions: int = 0  # pairs this ticket erased, counted at purge time
    removed_hash: str = Field(default="", max_length=80)  # their hash, users pseudonymised
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    """A version of the interaction dataset, tracked by DVC. ``dvc_md5`` is DVC's directory hash
    (what ``dvc`` fetches it by); ``content_hash`` is our hash of its pairs and id maps."""

    id: int | None = Field(default=None, primary_key=True)
    dvc_md5: str = Field(index=True, max_length=80)
    content_hash: str = Field(index=True, max_length=80)
    path: str = Field(max_length=500)
    parent_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    # use_alter: runs point at versions and versions back at runs; a named, deferred
    # constraint breaks the cycle so tables can be created and dropped in any order.
    run_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("unlearningrun.id", use_alter=True, name="fk_datasetversion_run"),
            nullable=True,
        ),
    )
    num_users: int = 0
    num_items: int = 0
    num_interactions: int = 0
    holds_erased_data: bool = False  # True once later versions erased some of its pairs
    purged: bool = False  # removed from the DVC cache and remote per retention policy
    purged_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    """A model file (base, unlearned, reference retrain), tracked by DVC, with its metrics."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20, index=True)  # base | unlearned | reference
    sha256: str = Field(index=True, max_length=80)
    dvc_md5: str = Field(default="", max_length=80)
    path: str = Field(max_length=500)
    dataset_version_id: int = Field(foreign_key="datasetversion.id")
    parent_id: int | None = Field(default=None, foreign_key="modelversion.id")
    # use_alter: runs point at versions and versions back at runs; a named, deferred
    # constraint breaks the cycle so tables can be created and dropped in any order.
    run_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("unlearningrun.id", use_alter=True, name="fk_modelversion_run"),
            nullable=True,
        ),
    )
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # True once its files are gone from the store's DVC cache and local remotes (retention:
    # superseded, failed verification, or trained on data later erased); the row stays as
    # the record of what served and when.
    purged: bool = False
    purged_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class UnlearningRun(SQLModel, table=True):
    """One batch of tickets unlearned jointly. ``batch_key`` (hash of the sorted ticket ids) makes
    re-running the same batch resume this row (``attempt`` counts the tries) instead of starting
    another; ``stage`` is the last stage completed, so a crashed run resumes after it."""

    id: int | None = Field(default=None, primary_key=True)
    batch_key: str = Field(index=True, unique=True, max_length=80)
    attempt: int = 1
    status: str = Field(
        default="running", index=True, max_length=20
    )  # running|succeeded|failed|escalated
    stage: str = Field(default="scheduled", max_length=30)  # last completed stage
    method: str = Field(default="unlearnrec", max_length=40)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    device: str = Field(default="", max_length=120)
    policy_id: str = Field(default="", max_length=80)
    policy_version: int = 0
    policy_sha256: str = Field(default="", max_length=80)
    ticket_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    removed_hash: str = Field(default="", max_length=80)
    removed_count: int = 0
    dataset_before_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    dataset_after_id: int | None = Field(default=None, foreign_key="datasetversion.id")
    model_before_id: int | None = Field(default=None, foreign_key="modelversion.id")
    model_after_id: int | None = Field(default=None, foreign_key="modelversion.id")
    reference_model_id: int | None = Field(default=None, foreign_key="modelversion.id")
    verification: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The purge's Great Expectations check (flows/validation.py): suite, success, failed check
    # names, GX statistics, the stored result's id and its data-docs page (relative to var/).
    # Empty until a purge was checked (never for a run with nothing to erase).
    purge_check: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Certificate(SQLModel, table=True):
    """A signed certificate file. ``status``: provisional (verified against a quick reference),
    final (against the scheduled full retrain) or superseded (replaced by a later one)."""

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: str = Field(index=True, unique=True, max_length=80)  # uuid-like, in the file
    run_id: int = Field(foreign_key="unlearningrun.id", index=True)
    ticket_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    path: str = Field(max_length=500)
    sha256: str = Field(max_length=80)  # of the file
    digest: str = Field(max_length=80)  # of the signed body
    key_id: str = Field(max_length=40)
    status: str = Field(default="provisional", max_length=20, index=True)
    supersedes_id: int | None = Field(default=None, foreign_key="certificate.id")
    audit_position: int = 0
    issued_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Append-only trail. ``hash`` = sha256 over this event's fields and ``prev_hash``, so a change
    to any earlier event breaks every later hash. ``position`` is unique and gap-free."""

    id: int | None = Field(default=None, primary_key=True)
    position: int = Field(index=True, unique=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=60, index=True)
    entity: str = Field(max_length=40)
    entity_id: str = Field(max_length=80, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=80)
    hash: str = Field(max_length=80, unique=True)


class Lease(SQLModel, table=True):
    """A named, expiring claim on a piece of work (the processing pass, one run's batch), held by
    one process at a time; see ``ledger/leases.py``. Times are POSIX seconds (plain numbers
    compare the same way on every backend)."""

    name: str = Field(primary_key=True, max_length=120)
    owner: str = Field(max_length=200)  # host:pid:token of the holder
    acquired_at: float = 0.0
    expires_at: float = Field(default=0.0, index=True)
