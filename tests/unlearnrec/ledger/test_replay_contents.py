"""Replay compares the *contents* of run, dataset, model and certificate rows with what the
audit events recorded: a field edited directly in the database is named, though every row is
still announced and the hash chain is intact."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from unlearnrec.compliance.versions import record_dataset_version, record_model_version
from unlearnrec.ledger import (
    Certificate,
    DatasetVersion,
    ModelVersion,
    UnlearningRun,
    add_with_event,
    append_event,
    init_db,
    make_engine,
    session_scope,
    verify_chain,
)
from unlearnrec.ledger.replay import replay_rows


@pytest.fixture
def engine(tmp_path):
    """A run taken through purge, unlearn, verify (fallback to retrain) and certify, with the
    events the platform writes at each stage; its certificate superseded by a final one."""
    eng = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    init_db(eng)
    with session_scope(eng) as s:
        d0 = record_dataset_version(
            s, "t", DatasetVersion(dvc_md5="a.dir", content_hash="ca", path="p", num_interactions=9)
        )
        m0 = record_model_version(
            s, "t", ModelVersion(kind="base", sha256="s0", dvc_md5="m0.dir", path="p",
                                 dataset_version_id=d0.id),
        )  # fmt: skip
        run = UnlearningRun(
            batch_key="k", ticket_ids=[1, 2], method="unlearnrec", dataset_before_id=d0.id,
            model_before_id=m0.id,
        )  # fmt: skip
        add_with_event(
            s, run, actor="t", action="run.started", entity="run",
            data={"tickets": [1, 2], "method": "unlearnrec", "dataset_before_id": d0.id,
                  "model_before_id": m0.id},
        )  # fmt: skip
        d1 = record_dataset_version(
            s, "t", DatasetVersion(dvc_md5="b.dir", content_hash="cb", path="p", parent_id=d0.id,
                                   run_id=run.id, num_interactions=7),
        )  # fmt: skip
        d0.holds_erased_data = True
        run.dataset_after_id, run.removed_count, run.removed_hash = d1.id, 2, "rh"
        run.stage = "purged"
        append_event(
            s, actor="t", action="run.purged", entity="run", entity_id=run.id,
            data={"removed": 2, "removed_hash": "rh", "dataset_after": "b.dir",
                  "dataset_after_id": d1.id, "dataset_before_id": d0.id},
        )  # fmt: skip
        m1 = record_model_version(
            s, "t", ModelVersion(kind="unlearned", sha256="s1", dvc_md5="m1.dir", path="p",
                                 dataset_version_id=d1.id, parent_id=m0.id, run_id=run.id),
        )  # fmt: skip
        run.model_after_id, run.stage = m1.id, "unlearned"
        append_event(
            s, actor="t", action="run.unlearned", entity="run", entity_id=run.id,
            data={"model_after_id": m1.id, "sha256": "s1", "method": "unlearnrec"},
        )  # fmt: skip
        m2 = record_model_version(
            s, "t", ModelVersion(kind="retrain", sha256="s2", dvc_md5="m2.dir", path="p",
                                 dataset_version_id=d1.id, parent_id=m0.id, run_id=run.id),
        )  # fmt: skip
        run.method, run.model_after_id, run.stage = "retrain", m2.id, "verified"
        run.verification = {"mode": "final", "passed": True, "fallback": "retrain"}
        append_event(
            s, actor="t", action="run.verified", entity="run", entity_id=run.id,
            data={"mode": "final", "passed": True, "method": "retrain", "model_after_id": m2.id},
        )  # fmt: skip
        certs = []
        for status in ("provisional", "final"):
            ev = append_event(
                s, actor="t", action="certificate.issued", entity="ticket", entity_id=1,
                data={"certificate_id": f"c-{status}", "run_id": run.id, "status": status},
            )  # fmt: skip
            cert = Certificate(
                certificate_id=f"c-{status}", run_id=run.id, ticket_ids=[1], path="c", sha256="",
                digest="", key_id="k", status=status, audit_position=ev.position,
            )  # fmt: skip
            s.add(cert)
            certs.append(cert)
        certs[0].status = "superseded"
        run.stage, run.status = "certified", "succeeded"
        append_event(
            s, actor="t", action="run.certified", entity="run", entity_id=run.id,
            data={"certificates": 1, "status": "final"},
        )  # fmt: skip
        s.add(run)
        add_with_event(
            s, UnlearningRun(batch_key="k2", ticket_ids=[3]), actor="t", action="run.started",
            entity="run", data={"tickets": [3], "method": "unlearnrec"},
        )  # fmt: skip
    yield eng
    eng.dispose()


def problems(engine) -> list[str]:
    with session_scope(engine) as session:
        assert verify_chain(session).ok  # the chain alone sees nothing
        return replay_rows(session)


def edit(engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def test_rows_written_with_their_events_replay_clean(engine):
    assert problems(engine) == []


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE unlearningrun SET removed_hash = 'forged' WHERE id = 1", "run 1: removed_hash"),
        ("UPDATE unlearningrun SET removed_count = 0 WHERE id = 1", "run 1: removed_count"),
        ("UPDATE unlearningrun SET method = 'unlearnrec' WHERE id = 1", "run 1: method"),
        ("UPDATE unlearningrun SET status = 'failed' WHERE id = 1", "run 1: status"),
        ("UPDATE unlearningrun SET stage = 'unlearned' WHERE id = 1", "run 1: stage"),
        ("UPDATE unlearningrun SET ticket_ids = '[1]' WHERE id = 1", "run 1: ticket_ids"),
        ("UPDATE unlearningrun SET model_after_id = 2 WHERE id = 1", "run 1: model_after_id"),
        ("UPDATE unlearningrun SET dataset_before_id = 2 WHERE id = 1", "run 1: dataset_before_id"),
        (
            """UPDATE unlearningrun SET verification = '{"mode": "final", "passed": false}'
            WHERE id = 1""",
            "run 1: verification passed",
        ),
        ("UPDATE datasetversion SET dvc_md5 = 'c.dir' WHERE id = 2", "dataset 2: dvc_md5"),
        ("UPDATE datasetversion SET content_hash = 'x' WHERE id = 1", "dataset 1: content_hash"),
        ("UPDATE datasetversion SET num_interactions = 9 WHERE id = 2", "dataset 2: num_inter"),
        ("UPDATE datasetversion SET holds_erased_data = 0 WHERE id = 1", "dataset 1: holds_era"),
        ("UPDATE datasetversion SET purged = 1 WHERE id = 2", "dataset 2: purged"),
        ("UPDATE modelversion SET sha256 = 'evil' WHERE id = 3", "model 3: sha256"),
        ("UPDATE modelversion SET kind = 'base' WHERE id = 2", "model 2: kind"),
        ("UPDATE modelversion SET dataset_version_id = 1 WHERE id = 3", "model 3: dataset_ver"),
        ("UPDATE certificate SET status = 'final' WHERE id = 1", "certificate c-provisional: st"),
        ("UPDATE certificate SET run_id = 2 WHERE id = 2", "certificate c-final: run_id"),
        ("UPDATE certificate SET ticket_ids = '[2]' WHERE id = 2", "include ticket 1"),
    ],
)
def test_a_field_edited_in_the_database_is_named(engine, sql, named):
    edit(engine, sql)
    found = problems(engine)
    assert any(named in p for p in found), found


def test_a_dataset_after_swapped_for_another_version_is_named(engine):
    # Both rows keep their own announcements; the run points at the wrong one.
    edit(engine, "UPDATE unlearningrun SET dataset_after_id = 1 WHERE id = 1")
    found = problems(engine)
    assert any("run 1: dataset_after_id" in p for p in found)
    assert any("not the version its purge recorded" in p for p in found)
