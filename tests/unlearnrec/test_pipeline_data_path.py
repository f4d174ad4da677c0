"""The DVC pipeline reads the dataset ``params.yaml``'s ``data.path`` names: dvc.yaml's prepare
stage depends on ``${data.path}`` (DVC's templating, resolved by DVC's own loader), and
``unlearnrec prepare`` reads the same key, so pointing ``data.path`` at a team's own data (what
``unlearnrec init --data FILE`` does) makes ``dvc repro`` train on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from unlearnrec.cli import main
from unlearnrec.data import generate_synthetic, write_lightgcn

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp: Path, data_path: str) -> Path:
    """A DVC project with the repository's dvc.yaml and params.yaml, ``data.path`` changed."""
    shutil.copyfile(ROOT / "dvc.yaml", tmp / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = data_path
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"],
        cwd=tmp,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tmp


def _prepare_deps(project: Path, monkeypatch) -> list[str]:
    from dvc.repo import Repo

    monkeypatch.chdir(project)  # DVC reads params.yaml for templating relative to the cwd
    with Repo(str(project)) as repo:
        (stage,) = repo.stage.collect("prepare")
        return [str(dep.def_path) for dep in stage.deps]


def test_the_prepare_stage_depends_on_the_configured_data_path(tmp_path, monkeypatch):
    deps = _prepare_deps(_project(tmp_path, "data/acme-export"), monkeypatch)
    assert "data/acme-export" in deps
    assert not any("synthetic" in d for d in deps)


def test_the_repository_pipeline_resolves_to_its_params(tmp_path, monkeypatch):
    """The shipped dvc.yaml with the shipped params.yaml: the bundled data, as dvc.lock has it."""
    configured = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["path"]
    assert configured in _prepare_deps(_project(tmp_path, configured), monkeypatch)
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    assert configured in [d["path"] for d in lock["stages"]["prepare"]["deps"]]


def test_unlearnrec_prepare_reads_data_path_from_params(tmp_path, monkeypatch, capsys):
    data = generate_synthetic(num_users=40, num_items=30, num_groups=2, mean_interactions=8, seed=3)
    write_lightgcn(data, tmp_path / "data" / "own")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = "data/own"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--out", "artifacts/prepared"]) == 0
    stats = json.loads((tmp_path / "artifacts" / "prepared" / "stats.json").read_text())
    assert stats["num_users"] == data.num_users and stats["num_items"] == data.num_items
    with np.load(tmp_path / "artifacts" / "prepared" / "splits.npz") as z:
        pairs = np.concatenate([z["fit"], z["valid"], z["test"]])
    assert len(pairs) == len(data.train) + len(data.test)


def test_the_demo_reads_the_configured_dataset(tmp_path):
    from flows.demo import BUNDLED_DATA, data_dir, ensure_data

    assert data_dir(tmp_path) == tmp_path / BUNDLED_DATA  # no params.yaml: the bundled data
    (tmp_path / "params.yaml").write_text("data:\n  path: data/acme\n")
    assert data_dir(tmp_path) == tmp_path / "data" / "acme"
    # A configured dataset that is missing is named, not replaced by generated data.
    with pytest.raises(SystemExit, match="data/acme"):
        ensure_data(tmp_path)
    assert not (tmp_path / "data").exists()
