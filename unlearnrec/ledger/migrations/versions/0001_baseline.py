"""Baseline: the first ledger schema the project shipped (commit 8eac72f, 2026-11-23).

The DDL is what that version's ``SQLModel.metadata.create_all`` ran, captured per backend, so a
ledger it created and this revision describe the same tables, types, indexes and foreign keys.
(On PostgreSQL the foreign keys within the run/dataset/model cycle were added afterwards with
``ALTER TABLE``, under PostgreSQL's default names ``<table>_<column>_fkey``.)

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE = (
    """CREATE TABLE datasetversion (
    id INTEGER NOT NULL,
    dvc_md5 VARCHAR(80) NOT NULL,
    content_hash VARCHAR(80) NOT NULL,
    path VARCHAR(500) NOT NULL,
    parent_id INTEGER,
    run_id INTEGER,
    num_users INTEGER NOT NULL,
    num_items INTEGER NOT NULL,
    num_interactions INTEGER NOT NULL,
    holds_erased_data BOOLEAN NOT NULL,
    purged BOOLEAN NOT NULL,
    purged_at DATETIME,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(parent_id) REFERENCES datasetversion (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id)
)""",
    """CREATE INDEX ix_datasetversion_content_hash ON datasetversion (content_hash)""",
    """CREATE INDEX ix_datasetversion_dvc_md5 ON datasetversion (dvc_md5)""",
    """CREATE TABLE modelversion (
    id INTEGER NOT NULL,
    kind VARCHAR(20) NOT NULL,
    sha256 VARCHAR(80) NOT NULL,
    dvc_md5 VARCHAR(80) NOT NULL,
    path VARCHAR(500) NOT NULL,
    dataset_version_id INTEGER NOT NULL,
    parent_id INTEGER,
    run_id INTEGER,
    metrics JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(dataset_version_id) REFERENCES datasetversion (id),
    FOREIGN KEY(parent_id) REFERENCES modelversion (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id)
)""",
    """CREATE INDEX ix_modelversion_sha256 ON modelversion (sha256)""",
    """CREATE INDEX ix_modelversion_kind ON modelversion (kind)""",
    """CREATE TABLE unlearningrun (
    id INTEGER NOT NULL,
    batch_key VARCHAR(80) NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    stage VARCHAR(30) NOT NULL,
    method VARCHAR(40) NOT NULL,
    params JSON NOT NULL,
    device VARCHAR(120) NOT NULL,
    policy_id VARCHAR(80) NOT NULL,
    policy_version INTEGER NOT NULL,
    policy_sha256 VARCHAR(80) NOT NULL,
    ticket_ids JSON NOT NULL,
    removed_hash VARCHAR(80) NOT NULL,
    removed_count INTEGER NOT NULL,
    dataset_before_id INTEGER,
    dataset_after_id INTEGER,
    model_before_id INTEGER,
    model_after_id INTEGER,
    reference_model_id INTEGER,
    verification JSON NOT NULL,
    timings JSON NOT NULL,
    error TEXT,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(dataset_before_id) REFERENCES datasetversion (id),
    FOREIGN KEY(dataset_after_id) REFERENCES datasetversion (id),
    FOREIGN KEY(model_before_id) REFERENCES modelversion (id),
    FOREIGN KEY(model_after_id) REFERENCES modelversion (id),
    FOREIGN KEY(reference_model_id) REFERENCES modelversion (id)
)""",
    """CREATE INDEX ix_unlearningrun_status ON unlearningrun (status)""",
    """CREATE UNIQUE INDEX ix_unlearningrun_batch_key ON unlearningrun (batch_key)""",
    """CREATE TABLE auditevent (
    id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    at DATETIME NOT NULL,
    actor VARCHAR(80) NOT NULL,
    action VARCHAR(60) NOT NULL,
    entity VARCHAR(40) NOT NULL,
    entity_id VARCHAR(80) NOT NULL,
    data JSON NOT NULL,
    prev_hash VARCHAR(80) NOT NULL,
    hash VARCHAR(80) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (hash)
)""",
    """CREATE INDEX ix_auditevent_action ON auditevent (action)""",
    """CREATE UNIQUE INDEX ix_auditevent_position ON auditevent (position)""",
    """CREATE INDEX ix_auditevent_entity_id ON auditevent (entity_id)""",
    """CREATE TABLE certificate (
    id INTEGER NOT NULL,
    certificate_id VARCHAR(80) NOT NULL,
    run_id INTEGER NOT NULL,
    ticket_ids JSON NOT NULL,
    path VARCHAR(500) NOT NULL,
    sha256 VARCHAR(80) NOT NULL,
    digest VARCHAR(80) NOT NULL,
    key_id VARCHAR(40) NOT NULL,
    status VARCHAR(20) NOT NULL,
    supersedes_id INTEGER,
    audit_position INTEGER NOT NULL,
    issued_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id),
    FOREIGN KEY(supersedes_id) REFERENCES certificate (id)
)""",
    """CREATE INDEX ix_certificate_run_id ON certificate (run_id)""",
    """CREATE INDEX ix_certificate_status ON certificate (status)""",
    """CREATE UNIQUE INDEX ix_certificate_certificate_id ON certificate (certificate_id)""",
    """CREATE TABLE ticket (
    id INTEGER NOT NULL,
    external_id VARCHAR(200) NOT NULL,
    kind VARCHAR(40) NOT NULL,
    subject VARCHAR(200),
    subject_pseudonym VARCHAR(80) NOT NULL,
    items JSON NOT NULL,
    legal_basis VARCHAR(40) NOT NULL,
    received_at DATETIME NOT NULL,
    deadline_at DATETIME NOT NULL,
    extension_days INTEGER NOT NULL,
    extension_reason TEXT,
    status VARCHAR(20) NOT NULL,
    reason TEXT,
    source VARCHAR(300) NOT NULL,
    policy_id VARCHAR(80) NOT NULL,
    policy_version INTEGER NOT NULL,
    run_id INTEGER,
    certificate_id INTEGER,
    removed_interactions INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id),
    FOREIGN KEY(certificate_id) REFERENCES certificate (id)
)""",
    """CREATE INDEX ix_ticket_kind ON ticket (kind)""",
    """CREATE INDEX ix_ticket_deadline_at ON ticket (deadline_at)""",
    """CREATE INDEX ix_ticket_run_id ON ticket (run_id)""",
    """CREATE UNIQUE INDEX ix_ticket_external_id ON ticket (external_id)""",
    """CREATE INDEX ix_ticket_subject_pseudonym ON ticket (subject_pseudonym)""",
    """CREATE INDEX ix_ticket_status ON ticket (status)""",
)

POSTGRESQL = (
    """CREATE TABLE datasetversion (
    id SERIAL NOT NULL,
    dvc_md5 VARCHAR(80) NOT NULL,
    content_hash VARCHAR(80) NOT NULL,
    path VARCHAR(500) NOT NULL,
    parent_id INTEGER,
    run_id INTEGER,
    num_users INTEGER NOT NULL,
    num_items INTEGER NOT NULL,
    num_interactions INTEGER NOT NULL,
    holds_erased_data BOOLEAN NOT NULL,
    purged BOOLEAN NOT NULL,
    purged_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_datasetversion_dvc_md5 ON datasetversion (dvc_md5)""",
    """CREATE INDEX ix_datasetversion_content_hash ON datasetversion (content_hash)""",
    """CREATE TABLE modelversion (
    id SERIAL NOT NULL,
    kind VARCHAR(20) NOT NULL,
    sha256 VARCHAR(80) NOT NULL,
    dvc_md5 VARCHAR(80) NOT NULL,
    path VARCHAR(500) NOT NULL,
    dataset_version_id INTEGER NOT NULL,
    parent_id INTEGER,
    run_id INTEGER,
    metrics JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_modelversion_kind ON modelversion (kind)""",
    """CREATE INDEX ix_modelversion_sha256 ON modelversion (sha256)""",
    """CREATE TABLE unlearningrun (
    id SERIAL NOT NULL,
    batch_key VARCHAR(80) NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    stage VARCHAR(30) NOT NULL,
    method VARCHAR(40) NOT NULL,
    params JSON NOT NULL,
    device VARCHAR(120) NOT NULL,
    policy_id VARCHAR(80) NOT NULL,
    policy_version INTEGER NOT NULL,
    policy_sha256 VARCHAR(80) NOT NULL,
    ticket_ids JSON NOT NULL,
    removed_hash VARCHAR(80) NOT NULL,
    removed_count INTEGER NOT NULL,
    dataset_before_id INTEGER,
    dataset_after_id INTEGER,
    model_before_id INTEGER,
    model_after_id INTEGER,
    reference_model_id INTEGER,
    verification JSON NOT NULL,
    timings JSON NOT NULL,
    error TEXT,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id)
)""",
    """CREATE UNIQUE INDEX ix_unlearningrun_batch_key ON unlearningrun (batch_key)""",
    """CREATE INDEX ix_unlearningrun_status ON unlearningrun (status)""",
    """CREATE TABLE auditevent (
    id SERIAL NOT NULL,
    position INTEGER NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    actor VARCHAR(80) NOT NULL,
    action VARCHAR(60) NOT NULL,
    entity VARCHAR(40) NOT NULL,
    entity_id VARCHAR(80) NOT NULL,
    data JSON NOT NULL,
    prev_hash VARCHAR(80) NOT NULL,
    hash VARCHAR(80) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (hash)
)""",
    """CREATE UNIQUE INDEX ix_auditevent_position ON auditevent (position)""",
    """CREATE INDEX ix_auditevent_action ON auditevent (action)""",
    """CREATE INDEX ix_auditevent_entity_id ON auditevent (entity_id)""",
    """CREATE TABLE certificate (
    id SERIAL NOT NULL,
    certificate_id VARCHAR(80) NOT NULL,
    run_id INTEGER NOT NULL,
    ticket_ids JSON NOT NULL,
    path VARCHAR(500) NOT NULL,
    sha256 VARCHAR(80) NOT NULL,
    digest VARCHAR(80) NOT NULL,
    key_id VARCHAR(40) NOT NULL,
    status VARCHAR(20) NOT NULL,
    supersedes_id INTEGER,
    audit_position INTEGER NOT NULL,
    issued_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id),
    FOREIGN KEY(supersedes_id) REFERENCES certificate (id)
)""",
    """CREATE UNIQUE INDEX ix_certificate_certificate_id ON certificate (certificate_id)""",
    """CREATE INDEX ix_certificate_run_id ON certificate (run_id)""",
    """CREATE INDEX ix_certificate_status ON certificate (status)""",
    """CREATE TABLE ticket (
    id SERIAL NOT NULL,
    external_id VARCHAR(200) NOT NULL,
    kind VARCHAR(40) NOT NULL,
    subject VARCHAR(200),
    subject_pseudonym VARCHAR(80) NOT NULL,
    items JSON NOT NULL,
    legal_basis VARCHAR(40) NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    deadline_at TIMESTAMP WITH TIME ZONE NOT NULL,
    extension_days INTEGER NOT NULL,
    extension_reason TEXT,
    status VARCHAR(20) NOT NULL,
    reason TEXT,
    source VARCHAR(300) NOT NULL,
    policy_id VARCHAR(80) NOT NULL,
    policy_version INTEGER NOT NULL,
    run_id INTEGER,
    certificate_id INTEGER,
    removed_interactions INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES unlearningrun (id),
    FOREIGN KEY(certificate_id) REFERENCES certificate (id)
)""",
    """CREATE INDEX ix_ticket_kind ON ticket (kind)""",
    """CREATE INDEX ix_ticket_deadline_at ON ticket (deadline_at)""",
    """CREATE INDEX ix_ticket_status ON ticket (status)""",
    """CREATE INDEX ix_ticket_run_id ON ticket (run_id)""",
    """CREATE UNIQUE INDEX ix_ticket_external_id ON ticket (external_id)""",
    """CREATE INDEX ix_ticket_subject_pseudonym ON ticket (subject_pseudonym)""",
    """ALTER TABLE unlearningrun
    ADD FOREIGN KEY(reference_model_id) REFERENCES modelversion (id)""",
    """ALTER TABLE unlearningrun
    ADD FOREIGN KEY(model_after_id) REFERENCES modelversion (id)""",
    """ALTER TABLE unlearningrun
    ADD FOREIGN KEY(model_before_id) REFERENCES modelversion (id)""",
    """ALTER TABLE datasetversion
    ADD FOREIGN KEY(run_id) REFERENCES unlearningrun (id)""",
    """ALTER TABLE modelversion
    ADD FOREIGN KEY(dataset_version_id) REFERENCES datasetversion (id)""",
    """ALTER TABLE unlearningrun
    ADD FOREIGN KEY(dataset_after_id) REFERENCES datasetversion (id)""",
    """ALTER TABLE unlearningrun
    ADD FOREIGN KEY(dataset_before_id) REFERENCES datasetversion (id)""",
    """ALTER TABLE datasetversion
    ADD FOREIGN KEY(parent_id) REFERENCES datasetversion (id)""",
    """ALTER TABLE modelversion
    ADD FOREIGN KEY(parent_id) REFERENCES modelversion (id)""",
    """ALTER TABLE modelversion
    ADD FOREIGN KEY(run_id) REFERENCES unlearningrun (id)""",
)

STATEMENTS = {"sqlite": SQLITE, "postgresql": POSTGRESQL}


def statements(dialect: str) -> tuple[str, ...]:
    """The baseline DDL for ``dialect`` (sqlite or postgresql)."""
    try:
        return STATEMENTS[dialect]
    except KeyError:
        raise RuntimeError(f"the ledger supports SQLite and PostgreSQL, not {dialect}") from None


def upgrade() -> None:
    for statement in statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the baseline is not undone: a ledger is evidence, drop it by hand")
