"""Retention purges superseded models: a model that failed verification (the fallback retrain
replaced it) and the base model trained on the erased data leave the store and its remote;
production and what a pending final check needs stay; each purge is an audit event."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlmodel import select

from unlearnrec.compliance.lifecycle import apply_retention
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.versions import add_dataset_version, add_model_version
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import AuditEvent, Certificate, UnlearningRun, session_scope

from .conftest import POLICY, SMALL_UNLEARN


def _files(pairs: list[tuple[int, int]]) -> Splits:
    edges = np.array(pairs, dtype=np.int64)
    users = np.array([f"u{i}" for i in range(3)], dtype=object)
    items = np.array([f"i{i}" for i in range(3)], dtype=object)
    return Splits(3, 3, edges, edges[:0], edges[:0], users, items)


def _model(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "model.pt").write_bytes(name.encode() * 100)  # distinct bytes, never loaded
    return folder


def _platform(tmp_path, monkeypatch) -> Platform:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.format(
            method="unlearnrec",
            params=json.dumps(SMALL_UNLEARN),
            on_failure="retrain",
            auc_margin=0.05,
        )
    )
    monkeypatch.setenv("UNLEARNREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNLEARNREC_POLICY_PATH", str(policy))
    return Platform.open()


def _fallback_run(platform: Platform, tmp: Path, *, certificate: str | None) -> dict[str, str]:
    """base on d0; a run purges d0 -> d1, its unlearned model fails verification and a retrain
    replaces it (production). Returns the models' store names by role."""
    with session_scope(platform.engine) as session:
        d0 = add_dataset_version(
            platform, session, _files([(0, 0), (1, 1), (2, 2)]), parent_id=None, run_id=None
        )
        base = add_model_version(
            platform, session, _model(tmp, "base"), kind="base", dataset_version_id=d0.id,
            parent_id=None, run_id=None,
        )  # fmt: skip
        run = UnlearningRun(
            batch_key="k", ticket_ids=[], dataset_before_id=d0.id, model_before_id=base.id
        )
        session.add(run)
        session.flush()
        d1 = add_dataset_version(
            platform, session, _files([(1, 1), (2, 2)]), parent_id=d0.id, run_id=run.id
        )
        d0.holds_erased_data = True
        failed = add_model_version(
            platform, session, _model(tmp, "failed"), kind="unlearned",
            dataset_version_id=d1.id, parent_id=base.id, run_id=run.id,
        )  # fmt: skip
        retrain = add_model_version(
            platform, session, _model(tmp, "retrain"), kind="retrain",
            dataset_version_id=d1.id, parent_id=base.id, run_id=run.id,
        )  # fmt: skip
        run.dataset_after_id, run.model_after_id = d1.id, retrain.id
        run.status, run.stage, run.method = "succeeded", "certified", "retrain"
        session.add(run)
        if certificate is not None:
            session.add(
                Certificate(
                    certificate_id="c", run_id=run.id, ticket_ids=[], path="c", sha256="",
                    digest="", key_id="k", status=certificate,
                )
            )  # fmt: skip
        return {
            role: f"model-{m.dvc_md5.removesuffix('.dir')}"
            for role, m in (("base", base), ("failed", failed), ("retrain", retrain))
        }


def test_a_failed_model_and_the_base_leave_the_store_after_the_final_check(tmp_path, monkeypatch):
    platform = _platform(tmp_path, monkeypatch)
    names = _fallback_run(platform, tmp_path, certificate="final")
    assert set(names.values()) <= set(platform.store.pinned())
    apply_retention(platform)
    pinned = set(platform.store.pinned())
    assert names["retrain"] in pinned  # production
    assert names["failed"] not in pinned and names["base"] not in pinned
    remote = platform.store.root.parent / "dvc-remote" / "files" / "md5"
    for role in ("failed", "base"):
        md5 = names[role].removeprefix("model-")
        assert not (remote / md5[:2] / f"{md5[2:]}.dir").exists(), role
    with session_scope(platform.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("retention")))
        actions = sorted((e.action, e.data.get("kind", "")) for e in events)
    # the base leaves with the dataset it was trained on, the failed model on its own
    assert actions == [("retention.model_purged", "unlearned"), ("retention.purged", "")]


def test_a_pending_final_check_keeps_the_models_it_needs(tmp_path, monkeypatch):
    platform = _platform(tmp_path, monkeypatch)
    names = _fallback_run(platform, tmp_path, certificate="provisional")
    apply_retention(platform)
    pinned = set(platform.store.pinned())
    # the run's model before (base) and after (retrain) are needed; the failed one is not
    assert {names["base"], names["retrain"]} <= pinned
    assert names["failed"] not in pinned
