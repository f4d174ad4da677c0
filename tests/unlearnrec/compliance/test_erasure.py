"""Erased data never comes back: after a certified erasure (and its final check), no copy the
platform keeps holds an erased pair or an erased user's raw id: the store and its remote, the
DVC pipeline's input, its outputs, the project's DVC cache and remote, processed ticket files,
superseded models. The check over every copy finds what is left, and a re-import is flagged."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text as sql
from sqlmodel import select

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.compliance.erasure import (
    TOMBSTONE,
    Erased,
    check_erased,
    erased_pairs_in,
    purge_processed_files,
    sync_pipeline,
    tombstone,
)
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.lifecycle import apply_retention, retrain_reference
from unlearnrec.compliance.versions import (
    add_model_version,
    checkout,
    current_dataset,
    production_model,
    read_dataset_version,
)
from unlearnrec.data.splits import Splits
from unlearnrec.ledger import (
    AuditEvent,
    DatasetVersion,
    ModelVersion,
    Ticket,
    UnlearningRun,
    session_scope,
    utcnow,
)
from unlearnrec.ledger.replay import replay_rows

from .conftest import make_home
from .test_workflow import _open_and_fill, process_once


def _dvc(home: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=home, check=True, capture_output=True, timeout=120
    )


def _dvc_project(home: Path) -> Path:
    """The home as the repository's DVC project: data/ tracked, pushed to a local remote."""
    _dvc(home, "init", "--no-scm", "-q")
    _dvc(home, "config", "core.analytics", "false")
    _dvc(home, "remote", "add", "-d", "local", "../project-remote")  # relative to .dvc/
    _dvc(home, "add", "-q", "data")
    _dvc(home, "push", "-q")
    return home.parent / "project-remote"  # dvc keeps the url relative to .dvc/


def _check_erased_cli(home: Path) -> int:
    """``unlearnrec audit check-erased --home HOME`` as the CLI parses and runs it."""
    parser = argparse.ArgumentParser()
    cli_compliance.add_commands(parser.add_subparsers())
    args = parser.parse_args(["audit", "check-erased", "--home", str(home)])
    return args.func(args)


def _objects(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / "files" / "md5").glob("*/*")}


def test_pairs_of_erased_users_items_and_interactions_are_found_by_pseudonym():
    ps = lambda s: f"ps_{s}"  # noqa: E731
    users = np.array(["u0", "u1", "u2"], dtype=object)
    items = np.array(["i0", "i1", "i2"], dtype=object)
    pairs = np.array([[0, 0], [1, 1], [2, 2], [2, 0]])
    assert erased_pairs_in(users, items, pairs, Erased(), ps) == (0, 0)
    assert erased_pairs_in(users, items, pairs, Erased(users={"ps_u1"}), ps) == (1, 1)
    assert erased_pairs_in(users, items, pairs, Erased(items={"i0"}), ps) == (2, 0)
    assert erased_pairs_in(users, items, pairs, Erased(pairs={("ps_u2", "i0")}), ps) == (1, 0)
    files = Splits(3, 3, pairs[:2], pairs[2:3], pairs[3:], users, items)
    gone = tombstone(files, [1], ps)
    assert list(gone.user_ids) == ["u0", f"{TOMBSTONE}ps_u1", "u2"]
    assert list(files.user_ids) == ["u0", "u1", "u2"]  # a copy, the original untouched
    # a tombstone is the pseudonym: a pair left under it is still found, the raw id is gone
    assert erased_pairs_in(gone.user_ids, items, pairs, Erased(users={"ps_u1"}), ps) == (1, 0)


@pytest.fixture()
def erased_home(tiny_artifacts, tmp_path, monkeypatch):
    """A platform whose sample batch is certified, on a home that is a DVC project."""
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    remote = _dvc_project(home)
    platform = _open_and_fill(home)
    with session_scope(platform.engine) as session:
        original = read_dataset_version(platform, current_dataset(session))
    ingest_inbox(platform, now=utcnow())
    process_once()
    return platform, home, remote, original


def test_after_the_final_check_no_copy_holds_erased_data(erased_home, capsys, tmp_path):
    platform, home, remote, original = erased_home
    with session_scope(platform.engine) as session:
        erased_user = {
            t.subject_pseudonym: t
            for t in session.exec(select(Ticket).where(Ticket.kind == "erase_user"))
            if t.status == "certified"
        }
        current = read_dataset_version(platform, current_dataset(session))
    assert erased_user
    # The purge tombstoned the erased users: their rows stay (model rows stay aligned), their
    # raw ids do not; the tombstone is their pseudonym.
    assert len(current.user_ids) == len(original.user_ids)
    assert {
        str(u)[len(TOMBSTONE) :] for u in current.user_ids if str(u).startswith(TOMBSTONE)
    } == set(erased_user)
    stale_model = (home / "artifacts" / "base" / "model.pt").read_bytes()
    old_data_objects = _objects(remote)
    old_cache_objects = _objects(home / ".dvc" / "cache")

    # Before retention: the pipeline's input, its outputs, the processed ticket files and the
    # project's cache and remote still hold the erased people; the store's old version is held
    # for the pending final check.
    before = check_erased(platform)
    assert not before.ok
    found = "\n".join(before.lines())
    assert "FOUND: pipeline input data/synthetic" in found
    assert "FOUND: pipeline output artifacts/prepared/splits.npz" in found
    assert "FOUND: processed ticket file" in found
    assert "FOUND: project project-remote object" in found
    assert "held: store cache dataset" in found

    assert _check_erased_cli(home) == 1
    assert "FOUND: pipeline input" in capsys.readouterr().out

    retrain_reference(platform, device="cpu")  # the final check: provisional -> final
    apply_retention(platform)
    assert _check_erased_cli(home) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    after = check_erased(platform)
    assert after.ok, after.lines()
    assert after.scanned >= 4
    assert not after.findings

    # The pipeline's input is the platform's current dataset (dvc repro trains on it), the
    # outputs computed from the old input are gone, and so are the old objects.
    data = home / "data" / "synthetic"
    user_list = (data / "user_list.txt").read_text()
    assert TOMBSTONE in user_list
    for t in erased_user.values():
        assert t.subject is None
    raw_erased = {
        str(u)
        for u in original.user_ids
        if platform.pseudonymise(str(u)) in erased_user  # the erased users' raw ids
    }
    assert raw_erased and not any(f"\n{u} " in user_list for u in raw_erased)
    assert not (home / "artifacts" / "prepared" / "splits.npz").exists()
    assert not (home / "artifacts" / "base" / "model.pt").exists()
    assert old_data_objects - _objects(remote)  # the old input's objects left the remote
    assert old_cache_objects - _objects(home / ".dvc" / "cache")
    assert not list((platform.settings.inbox / "processed").iterdir())
    # The store keeps production, the current dataset and the reference on it, nothing else.
    with session_scope(platform.engine) as session:
        prod = production_model(session)
        models = list(session.exec(select(ModelVersion)))
        ds = current_dataset(session)
        run_hash = session.exec(select(UnlearningRun)).one().removed_hash
        actions = {e.action for e in session.exec(select(AuditEvent))}
    kept = {f"model-{m.dvc_md5.removesuffix('.dir')}" for m in models if m.id == prod.id}
    kept |= {f"model-{m.dvc_md5.removesuffix('.dir')}" for m in models if m.kind == "reference"}
    kept.add(f"dataset-{ds.dvc_md5.removesuffix('.dir')}")
    assert set(platform.store.pinned()) == kept
    assert {"pipeline.synced", "intake.file_deleted", "run.unlearned"} <= actions
    assert sync_pipeline(platform).status == "unchanged"  # done once
    # The events the platform wrote replay clean against the rows; a row edited directly is
    # named (replay compares contents, not only that rows were announced).
    with session_scope(platform.engine) as session:
        assert replay_rows(session, pseudonymise=platform.pseudonymise) == []
    with platform.engine.begin() as conn:
        conn.execute(sql("UPDATE unlearningrun SET removed_hash = 'forged'"))
    with session_scope(platform.engine) as session:
        assert any("removed_hash" in p for p in replay_rows(session))
    with platform.engine.begin() as conn:
        conn.execute(sql("UPDATE unlearningrun SET removed_hash = :h"), {"h": run_hash})

    # A reference trained before a later erasure (on a version that held erased pairs) is
    # superseded: retention takes it, and the current one, out of the store with its folder.
    with session_scope(platform.engine) as session:
        ds0 = session.exec(select(DatasetVersion).order_by(DatasetVersion.id)).first()
        with checkout(platform, "model", prod.dvc_md5) as folder:
            shutil.copytree(folder, tmp_path / "stale")
        model = tmp_path / "stale" / "model.pt"
        model.write_bytes(model.read_bytes() + b"trained before the erasure")
        add_model_version(
            platform, session, tmp_path / "stale", kind="reference",
            dataset_version_id=ds0.id, parent_id=None, run_id=None,
        )  # fmt: skip
    apply_retention(platform)
    with session_scope(platform.engine) as session:
        purged = session.exec(
            select(AuditEvent).where(AuditEvent.action == "retention.model_purged")
        ).all()
    assert [e.data["kind"] for e in purged] == ["reference", "reference"]
    assert set(platform.store.pinned()) == kept - {
        f"model-{m.dvc_md5.removesuffix('.dir')}" for m in models if m.kind == "reference"
    }
    assert not (platform.store.root / "models" / "reference").exists()
    assert check_erased(platform).ok

    # A model trained on the data before the erasure, put back into the pipeline's outputs, is
    # found by its bytes.
    (home / "artifacts" / "base" / "model.pt").write_bytes(stale_model)
    report = check_erased(platform)
    assert [f.where for f in report.findings] == ["pipeline output artifacts/base/model.pt"]
    (home / "artifacts" / "base" / "model.pt").unlink()

    # An import that brings an erased user back is flagged by the check and by the next sync,
    # never silently taken as the platform's data.
    shutil.rmtree(data)
    original.write(data)
    shutil.copyfile(data / "user_list.txt", tmp_path / "reimport.txt")
    report = check_erased(platform)
    assert not report.ok
    assert any(f.where == "pipeline input data/synthetic" for f in report.findings)
    result = sync_pipeline(platform)
    assert result.status == "flagged" and result.reappeared > 0
    assert sync_pipeline(platform).status == "flagged"  # recorded once, still not synced
    assert (data / "user_list.txt").read_text() == (tmp_path / "reimport.txt").read_text()
    with session_scope(platform.engine) as session:
        flagged = session.exec(
            select(AuditEvent).where(AuditEvent.action == "erasure.reappeared")
        ).all()
    assert len(flagged) == 1 and flagged[0].data["user_ids"] == len(raw_erased)
    assert not any(u in str(flagged[0].data) for u in raw_erased)


def test_processed_files_of_open_tickets_are_kept(tiny_artifacts, tmp_path, monkeypatch):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    processed = sorted(p.name for p in (platform.settings.inbox / "processed").iterdir())
    assert len(processed) == 2
    assert purge_processed_files(platform) == []  # every file still has an open ticket
    with session_scope(platform.engine) as session:
        for t in session.exec(select(Ticket).where(Ticket.source.startswith("licence"))):
            t.status = "rejected"  # closed (as validation would, without the events)
            session.add(t)
    (deleted,) = purge_processed_files(platform)
    assert "licence-takedowns.csv" in deleted
    assert sorted(p.name for p in (platform.settings.inbox / "processed").iterdir()) == [
        n for n in processed if n != deleted
    ]
