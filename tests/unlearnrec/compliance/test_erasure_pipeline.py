"""One data world on a project laid out as the repository is: the pipeline reads the dataset
``params.yaml``'s ``data.path`` names (here ``data/own``, not the bundled one), DVC pushes to the
repository's own remote (``.dvc/config``: ``~/.cache/unlearnrec/dvc-remote``, outside the clone;
a home of the test's own here). After a certified erasure and its final check:

- no version of the input in the cache or in the remote holds the erased people, an
  older version pushed before the one ``data.dvc`` recorded last included;
- ``dvc repro`` (its ``prepare`` stage, the one that reads the data; the later stages read only
  its ``splits.npz``) computes the splits from the erased-free input: the erased pairs do not
  come back;
- the model versions retention took out of the store say so on their rows (``purged``), as the
  audit trail does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from sqlalchemy import text as sql
from sqlmodel import select

from unlearnrec.compliance.erasure import (
    PURGE_RECORDED,
    check_erased,
    erased_by_certified,
    erased_pairs_in,
    local_remotes,
    record_purged_models,
)
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.lifecycle import apply_retention, bootstrap, retrain_reference
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.samples import write_sample_inbox
from unlearnrec.compliance.store import run_dvc
from unlearnrec.compliance.versions import (
    current_dataset,
    production_model,
    read_dataset_version,
)
from unlearnrec.ledger import AuditEvent, ModelVersion, Ticket, session_scope, utcnow
from unlearnrec.ledger.replay import replay_rows

from .conftest import make_home
from .test_workflow import process_once

ROOT = Path(__file__).resolve().parents[3]
DATA = "data/own"


def _dvc(home: Path, *args: str) -> None:
    """``store.run_dvc`` (raises on failure) with the venv's scripts on PATH, so that a stage's
    ``unlearnrec`` command is found by ``dvc repro``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with mock.patch.dict(os.environ, {"PATH": path}):
        run_dvc(home, *args)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _objects(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / "files" / "md5").glob("*/*")}


def _tracked_md5(home: Path) -> str:
    return str(yaml.safe_load((home / "data.dvc").read_text())["outs"][0]["md5"])


def _pipeline(home: Path) -> None:
    """The repository's params.yaml (``data.path`` changed) and its ``prepare`` stage, with
    the code dependencies a scratch project does not hold left out."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = DATA
    (home / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["prepare"]
    stage["deps"] = [d for d in stage["deps"] if str(d).startswith("${")]
    assert stage["deps"] == ["${data.path}"]
    (home / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stage}}))


@pytest.fixture()
def erased_project(tiny_artifacts, tmp_path, monkeypatch):
    # the clone's remote lies under the user's home (~/.cache/unlearnrec/dvc-remote): a home of
    # the test's own, so nothing outside tmp_path is written or purged
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    (home / "data" / "synthetic").rename(home / DATA)
    _pipeline(home)
    _dvc(home, "init", "--no-scm", "-q")
    shutil.copyfile(ROOT / ".dvc" / "config", home / ".dvc" / "config")  # the clone's remote
    _dvc(home, "config", "core.no_scm", "true")  # a scratch project is no git repository
    storage = tmp_path / "user" / ".cache" / "unlearnrec" / "dvc-remote"
    assert local_remotes(home / ".dvc") == [storage]
    # Version A of the input, pushed; then version B (the same people, other bytes), pushed
    # and recorded by data.dvc: the remote keeps both.
    _dvc(home, "add", "-q", "data")
    _dvc(home, "push", "-q")
    version_a = {_tracked_md5(home), _md5(home / DATA / "train.txt")}
    train = home / DATA / "train.txt"
    train.write_text(train.read_text() + "\n")
    _dvc(home, "add", "-q", "data")
    _dvc(home, "push", "-q")
    assert version_a <= _objects(storage) and _tracked_md5(home) not in version_a

    platform = Platform.open()
    assert platform.settings.data == home / DATA
    art = home / "artifacts"
    bootstrap(
        platform,
        data_dir=home / DATA,
        splits_path=art / "prepared" / "splits.npz",
        model_path=art / "base" / "model.pt",
        encoder_path=art / "encoder" / "encoder.pt",
    )
    with session_scope(platform.engine) as session:
        files = read_dataset_version(platform, current_dataset(session))
    write_sample_inbox(platform.settings.inbox, files, now=utcnow())
    ingest_inbox(platform, now=utcnow())
    process_once()
    retrain_reference(platform, device="cpu")  # the final check
    apply_retention(platform)
    with session_scope(platform.engine) as session:
        assert any(t.status == "certified" for t in session.exec(select(Ticket)))
    return platform, home, storage, version_a


def test_no_version_in_the_project_remote_keeps_erased_data(erased_project):
    platform, home, storage, version_a = erased_project
    report = check_erased(platform)
    assert report.ok, report.lines()
    # Version A (never the one data.dvc recorded at the sync) left the remote and the cache.
    assert not version_a & _objects(storage)
    assert not version_a & _objects(home / ".dvc" / "cache")
    # The version data.dvc records now is the platform's current one, in the cache.
    assert _tracked_md5(home) in _objects(home / ".dvc" / "cache")


def test_model_rows_record_which_versions_left_the_store(erased_project):
    platform, *_ = erased_project
    pinned = set(platform.store.pinned())
    with session_scope(platform.engine) as session:
        models = list(session.exec(select(ModelVersion)))
        recorded = {
            int(e.entity_id)
            for e in session.exec(select(AuditEvent).where(AuditEvent.action == PURGE_RECORDED))
        }
        prod = production_model(session)
    purged = [m for m in models if m.purged]
    assert any(m.kind == "base" for m in purged)  # trained on the data before the erasure
    assert prod is not None and not prod.purged
    for m in models:
        name = f"model-{m.dvc_md5.removesuffix('.dir')}"
        assert m.purged == (name not in pinned), m
        assert (m.purged_at is not None) == m.purged
    assert recorded == {m.id for m in purged}
    assert record_purged_models(platform) == []  # recorded once
    with session_scope(platform.engine) as session:
        assert replay_rows(session) == []
    with platform.engine.begin() as conn:  # a row edited directly is named by the replay
        conn.execute(sql("UPDATE modelversion SET purged = 0 WHERE id = :i"), {"i": purged[0].id})
    with session_scope(platform.engine) as session:
        assert any(f"model {purged[0].id}: purged" in p for p in replay_rows(session))


def test_dvc_repro_after_an_erasure_does_not_bring_the_erased_pairs_back(
    erased_project, tiny_artifacts
):
    platform, home, _, _ = erased_project
    splits = home / "artifacts" / "prepared" / "splits.npz"
    assert not splits.exists()  # computed from the old input: removed by the purge
    with session_scope(platform.engine) as session:
        erased = erased_by_certified(session)
        files = read_dataset_version(platform, current_dataset(session))

    def erased_pairs(path: Path) -> int:
        with np.load(path) as z:
            pairs = np.concatenate([z["fit"], z["valid"], z["test"]])
        ps = platform.pseudonymise
        return erased_pairs_in(files.user_ids, files.item_ids, pairs, erased, ps)[0]

    # The splits the pipeline computed before the erasure held the erased pairs.
    assert erased_pairs(tiny_artifacts / "artifacts" / "prepared" / "splits.npz") > 0
    _dvc(home, "repro", "prepare")
    assert splits.is_file()
    assert erased_pairs(splits) == 0
    with np.load(splits) as z:
        repro_pairs = sum(len(z[k]) for k in ("fit", "valid", "test"))
    assert repro_pairs == len(files.all_pairs())  # the platform's current dataset, all of it
    assert check_erased(platform).ok
