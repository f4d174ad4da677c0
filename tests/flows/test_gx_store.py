"""The GX project under the state folder: both suites run through their checkpoints, each run's
result is kept as a file with its data-docs page and the site's index, the stored suites name
their reference data instead of holding it, and no subject reaches any of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from flows import gx_store
from flows import validation as v

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SUBJECT, STRANGER = "alice-4711", "mallory-0815"


@pytest.fixture(scope="module", autouse=True)
def _gx_warm():
    v.warm_up()


def _tickets() -> pd.DataFrame:
    def row(external_id: str, subject: str) -> dict:
        return {
            "external_id": external_id,
            "kind": "erase_user",
            "subject": subject,
            "items": "",
            "legal_basis": "GDPR-17(1)(a)",
            "received_at": pd.Timestamp(NOW - timedelta(days=1)),
            "deadline_at": pd.Timestamp(NOW + timedelta(days=29)),
        }

    return pd.DataFrame([row("T-1", SUBJECT), row("T-2", STRANGER)], index=[10, 11])


def _pairs(*edges: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame(np.array(edges, dtype=np.int64).reshape(-1, 2), columns=["user", "item"])


def _kept(var, result: v.ValidationResult) -> dict:
    return json.loads(
        (var / "gx" / "uncommitted" / "validations" / f"{result.result_id}.json").read_text()
    )


def test_a_checkpoint_run_keeps_its_result_and_data_docs(tmp_path):
    var = tmp_path / "var"
    result = v.validate_ticket_batch(
        _tickets(),
        known_users={SUBJECT, "someone-else"},
        known_items={"i1"},
        now=NOW,
        root=var,
        run_name="tickets",
    )
    assert (result.failed, result.row_failures) == (
        ("subject_is_known_user",),
        {11: ("subject_is_known_user",)},
    )
    assert result.result_id.startswith("ticket_batch/tickets/")
    kept = _kept(var, result)
    assert kept["success"] is False and kept["statistics"]["unsuccessful_expectations"] == 1
    names = {r["expectation_config"]["meta"]["name"] for r in kept["results"]}
    assert names == set(v.TICKET_CHECKS)
    page = var / result.data_docs
    assert page.is_file() and page.suffix == ".html" and "subject_is_known_user" in page.read_text()
    assert (var / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()
    suite = json.loads((var / "gx" / "expectations" / "ticket_batch.json").read_text())
    assert "someone-else" not in json.dumps(suite)  # reference data by name, not by value
    for path in (var / "gx").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".yml"):
            text = path.read_text(errors="ignore")
            assert SUBJECT not in text and STRANGER not in text, path


def test_a_failing_purge_is_reported_with_its_names_and_kept(tmp_path):
    var = tmp_path / "var"
    before = _pairs((0, 0), (0, 1), (1, 1), (2, 2))
    removed = _pairs((0, 1))
    after = _pairs((0, 0), (0, 1), (2, 2))  # the removed pair stayed; (1, 1) went instead
    result = v.validate_purge(before, after, removed, root=var, run_name="run-9-attempt-1")
    assert result.failed == ("removed_pairs_gone", "nothing_else_changed")
    assert result.record()["failed"] == ["removed_pairs_gone", "nothing_else_changed"]
    assert result.statistics == {"evaluated": 6, "successful": 4, "unsuccessful": 2}
    kept = _kept(var, result)
    assert kept["success"] is False
    assert kept["meta"]["run_id"]["run_name"] == "run-9-attempt-1"
    assert (var / result.data_docs).is_file()
    # Counts only: no pair key is written out for a purge.
    unexpected = [r["result"] for r in kept["results"] if "unexpected_count" in r["result"]]
    assert [r["unexpected_count"] for r in unexpected] == [0, 1, 1, 0, 0]
    assert all(not r.get("partial_unexpected_list") for r in unexpected)


def test_stores_of_several_state_folders_and_a_reopened_one_keep_working(tmp_path, monkeypatch):
    """Two state folders in one process, then one opened again as a new process would (the
    project files exist): every run validates and the earlier results stay in the index."""
    before, removed, after = _pairs((0, 0), (1, 1)), _pairs((1, 1)), _pairs((0, 0))
    first, second = tmp_path / "a", tmp_path / "b"
    a1 = v.validate_purge(before, after, removed, root=first, run_name="run-1-attempt-1")
    b1 = v.validate_purge(before, after, removed, root=second, run_name="run-1-attempt-1")
    assert a1.success and b1.success
    monkeypatch.setattr(gx_store, "_STORES", {})  # a new process: the store is built again
    a2 = v.validate_purge(before, before, removed, root=first, run_name="run-2-attempt-1")
    assert a2.failed == ("removed_pairs_gone", "counts_reconcile")  # nothing purged
    index = (first / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    assert "run-1-attempt-1" in index and "run-2-attempt-1" in index
    assert {p.name for p in (first / "gx" / "uncommitted" / "validations" / "purge").iterdir()} == {
        "run-1-attempt-1",
        "run-2-attempt-1",
    }
