"""DVC runs as a subprocess with a timeout: a command that hangs fails with a clear error (the
command and the limit) instead of stalling the run."""

from __future__ import annotations

import pytest

from unlearnrec.compliance.store import DvcStore, StoreError, dvc_timeout


def test_the_timeout_comes_from_the_environment(monkeypatch):
    assert dvc_timeout() == 600
    monkeypatch.setenv("UNLEARNREC_DVC_TIMEOUT_SECONDS", "42")
    assert dvc_timeout() == 42
    monkeypatch.setenv("UNLEARNREC_DVC_TIMEOUT_SECONDS", "soon")
    assert dvc_timeout() == 600


def test_a_dvc_command_past_its_timeout_fails_naming_command_and_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNREC_DVC_TIMEOUT_SECONDS", "0.01")
    with pytest.raises(StoreError, match=r"dvc init --no-scm -q did not finish within 0.01 s"):
        DvcStore(tmp_path / "store", tmp_path / "remote").ensure()
