"""DVC keeps the pipeline's history as its users expect (the repository's dvc.yaml, .dvc/config
and .gitignore, on a tiny dataset in a scratch git repository):

- metrics and plots are committed to git, wall-clock seconds are not (``timings.json``);
- the same inputs give the same bytes: a second clone that pulls only the data and re-runs the
  pipeline leaves ``git status`` clean (``dvc.lock`` and the metrics unchanged), and
  ``dvc metrics diff`` compares it with HEAD;
- the default remote lies outside the clone, so a second clone can ``dvc pull`` every output;
- the metrics files hold figures, not hashes or names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unlearnrec.data import generate_synthetic, write_lightgcn

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("prepare", "train", "pretrain")  # the ladder and evaluate read the same outputs
METRICS = (
    "artifacts/prepared/stats.json",
    "artifacts/base/metrics.json",
    "artifacts/encoder/metrics.json",
)


def _run(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr[-2000:]}"
    return done.stdout


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _git(cwd: Path, *args: str) -> str:
    return _run(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder for the module, with a home of its own (the remote lies under ~)."""
    tmp = tmp_path_factory.mktemp("dvc-history")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp / "user"))
        yield tmp


@pytest.fixture(scope="module")
def project(scratch) -> Path:
    """A committed project: the repository's pipeline (its first three stages, the code
    dependencies a scratch repository does not hold left out), tiny settings, run once and
    pushed to the configured default remote (under the module's home)."""
    home = scratch / "first"
    home.mkdir()
    data = generate_synthetic(num_users=60, num_items=40, num_groups=3, mean_interactions=8, seed=1)
    write_lightgcn(data, home / "data" / "own")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = {}
    for name in STAGES:
        stage = spec["stages"][name]
        stage["deps"] = [d for d in stage["deps"] if not str(d).startswith("unlearnrec/")]
        stages[name] = stage
    (home / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = "data/own"
    params["train"].update(max_epochs=4, eval_every=2, batch_size=256)
    params["unlearnrec"].update(pretrain_requests=2, pretrain_steps=1)
    (home / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copyfile(ROOT / ".gitignore", home / ".gitignore")
    _git(home, "init", "-q")
    _dvc(home, "init", "-q")
    shutil.copyfile(ROOT / ".dvc" / "config", home / ".dvc" / "config")
    _dvc(home, "add", "-q", "data")
    _dvc(home, "repro", "-q")
    _dvc(home, "push", "-q")
    _git(home, "add", "-A")
    _git(home, "commit", "-q", "-m", "pipeline run")
    return home


def test_metrics_are_committed_and_timings_are_not(project):
    tracked = set(_git(project, "ls-files").split())
    assert set(METRICS) <= tracked
    assert {"artifacts/base/curve.csv", "artifacts/encoder/curve.csv", "dvc.lock"} <= tracked
    assert not any(path.endswith("timings.json") or path.endswith(".pt") for path in tracked)
    assert (project / "artifacts/base/timings.json").is_file()  # written, ignored
    assert _git(project, "status", "--porcelain") == ""
    for path in METRICS:  # figures only: no digest, no dataset name
        flat = json.dumps(json.loads((project / path).read_text()))
        assert "sha256" not in flat and "hash" not in flat and '"name"' not in flat, path
    seconds = json.loads((project / "artifacts/base/timings.json").read_text())
    assert seconds["seconds"] > 0


def test_a_second_clone_reproduces_the_same_bytes(project, scratch):
    clone = scratch / "second"
    _git(scratch, "clone", "-q", str(project), str(clone))
    _dvc(clone, "pull", "-q", "data.dvc")  # the data only: every stage runs again
    _dvc(clone, "repro", "-q")
    assert _git(clone, "status", "--porcelain") == ""  # dvc.lock and metrics unchanged
    diff = json.loads(_dvc(clone, "metrics", "diff", "HEAD", "--json") or "{}")
    assert diff == {} or all(not changes for changes in diff.values())


def test_a_second_clone_pulls_every_output_from_the_default_remote(project, scratch):
    remote = scratch / "user" / ".cache" / "unlearnrec" / "dvc-remote"
    assert remote.is_dir() and not remote.is_relative_to(project)
    clone = scratch / "third"
    _git(scratch, "clone", "-q", str(project), str(clone))
    _dvc(clone, "pull", "-q")
    assert (clone / "artifacts/base/model.pt").read_bytes() == (
        project / "artifacts/base/model.pt"
    ).read_bytes()
    assert "up to date" in _dvc(clone, "status").lower()


def test_plots_render_offline_against_a_revision(project):
    out = json.loads(
        _run(project, str(Path(sys.executable).parent / "unlearnrec"), "plots", "HEAD", "--json")
    )
    svgs = [Path(project, p) for p in out["plots"]]
    assert {p.name for p in svgs} == {
        "artifacts_base_curve.csv.svg",
        "artifacts_encoder_curve.csv.svg",
    }
    assert all(p.read_text().lstrip().startswith("<svg") for p in svgs)
    page = (project / out["index"]).read_text()
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_an_experiment_keeps_its_metrics(project):
    _dvc(project, "exp", "run", "-q", "-S", "train.max_epochs=2", "--name", "short")
    shown = json.loads(_dvc(project, "exp", "show", "--json"))
    text = json.dumps(shown)
    assert "short" in text and "epochs_run" in text
    assert _git(project, "status", "--porcelain") != ""  # the experiment's results are applied
    _git(project, "checkout", "--", ".")  # back to the committed run for the other tests
    _dvc(project, "checkout", "-q")
