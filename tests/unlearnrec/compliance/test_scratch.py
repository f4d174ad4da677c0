"""Scratch folders under var/: removed however a block ends, and swept after a kill -9."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from unlearnrec.compliance.scratch import PREFIX, leftovers, scratch_dir, sweep

KILLED = """
import os, signal, sys
from pathlib import Path
from unlearnrec.compliance.scratch import scratch_dir
with scratch_dir(Path(sys.argv[1]), "dataset") as tmp:
    (tmp / "train.txt").write_text("user-1 item-1\\n")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_scratch_folder_is_removed_on_success_and_on_error(tmp_path):
    with scratch_dir(tmp_path, "run") as tmp:
        assert tmp.is_dir() and tmp.name.startswith(f"{PREFIX}{os.getpid()}-run-")
        (tmp / "f").write_text("x")
    assert not tmp.exists()
    with pytest.raises(MemoryError), scratch_dir(tmp_path, "run") as tmp:
        raise MemoryError("simulated out of memory")
    assert not tmp.exists()


def test_a_killed_runs_folder_is_swept_a_live_one_is_kept(tmp_path):
    """kill -9 inside ``scratch_dir`` leaves the folder (with erased interactions in it); the
    sweep removes it, and only it: a live run's folder and other folders stay."""
    proc = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(PREFIX)]
    assert (left / "train.txt").exists()
    for keep in ("store", "certificates", "dvc-remote"):
        (tmp_path / keep).mkdir()
    with scratch_dir(tmp_path, "live") as live:
        assert leftovers(tmp_path) == [left]
        assert sweep(tmp_path) == [left]
        assert live.is_dir() and not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certificates", "dvc-remote", "store"]


def test_folders_left_by_earlier_versions_are_swept(tmp_path):
    """The old names (tempfile's ``tmp<8>``, ``unlearnrec-dataset-<8>``) name no process."""
    for name in ("tmpab_cd123", "unlearnrec-dataset-x1y2z3w4", "unlearnrec-model-k9j8h7g6"):
        (tmp_path / name / "v").mkdir(parents=True)
    (tmp_path / "tmp-notes").mkdir()  # not a scratch name: kept
    assert len(sweep(tmp_path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["tmp-notes"]
