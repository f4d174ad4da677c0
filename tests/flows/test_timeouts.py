"""Stage timeouts (settings-driven) and the flows' summaries as Prefect table artifacts: a batch
that hangs past its timeout fails the flow run, visibly; a pass publishes one row per run."""

from __future__ import annotations

import json
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.testing.utilities import prefect_test_harness
from pydantic import ValidationError

import flows.ingest as ingest_flow
import flows.process_deletions as process_flow
import flows.retrain_reference as reference_flow
from flows.common import TIMEOUTS, StageTimeouts
from tests.unlearnrec.compliance.conftest import make_home, tiny_artifacts  # noqa: F401
from tests.unlearnrec.compliance.test_workflow import _open_and_fill
from unlearnrec.compliance import process
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.lifecycle import ReferenceSummary
from unlearnrec.compliance.runs import RunSummary
from unlearnrec.ledger import utcnow
from unlearnrec.records.verification import Figures, VerificationReport


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_timeouts_come_from_the_environment_with_defaults(monkeypatch):
    assert StageTimeouts().batch == 4 * 3600
    monkeypatch.setenv("UNLEARNREC_TIMEOUT_BATCH", "7")
    monkeypatch.setenv("UNLEARNREC_TIMEOUT_PROCESS_FLOW", "90")
    assert (StageTimeouts().batch, StageTimeouts().process_flow) == (7, 90)
    monkeypatch.setenv("UNLEARNREC_TIMEOUT_BATCH", "0")
    with pytest.raises(ValidationError):
        StageTimeouts()


def test_every_flow_and_task_has_its_timeout():
    expected = {
        process_flow.validate_tickets: TIMEOUTS.validate_tickets,
        process_flow.plan: TIMEOUTS.plan,
        process_flow.run_batch: TIMEOUTS.batch,
        process_flow.retention: TIMEOUTS.retention,
        process_flow.process_deletions: TIMEOUTS.process_flow,
        reference_flow.retrain: TIMEOUTS.reference,
        reference_flow.retention: TIMEOUTS.retention,
        reference_flow.retrain_reference: TIMEOUTS.reference_flow,
        ingest_flow.ingest_files: TIMEOUTS.ingest,
        ingest_flow.ingest: TIMEOUTS.ingest_flow,
    }
    for unit, seconds in expected.items():
        assert unit.timeout_seconds == seconds, unit.name


def _artifact(key: str):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, key
    return found[0]


def test_a_hanging_batch_fails_the_flow_run_and_a_pass_publishes_table_artifacts(
    harness,
    tiny_artifacts,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(tmp_path / "home")
    ingest_inbox(platform, now=utcnow())

    def hangs(*args, **kwargs):
        time.sleep(30)
        raise AssertionError("not interrupted by the timeout")

    monkeypatch.setattr(process, "run_batch", hangs)
    monkeypatch.setattr(
        process_flow, "run_batch", process_flow.run_batch.with_options(timeout_seconds=2)
    )
    state = process_flow.process_deletions(
        process_flow.ProcessParams(force=True, device="cpu"), return_state=True
    )
    assert state.is_failed(), state
    # interrupted at its 2 s limit (the stub would fail with its own message after 30 s)
    assert "timed out after 2.0 second" in (state.message or ""), state.message

    def done(platform, ticket_ids, **kwargs):
        return RunSummary(
            run_id=41,
            status="succeeded",
            stage="certified",
            tickets=list(ticket_ids),
            certificates=["a.json"],
            verification=VerificationReport(
                mode="provisional", passed=True, unlearned=Figures(mi_bf=1.5, mia_auc=0.51)
            ),
            timings={"unlearn_seconds": 0.25},
        )

    monkeypatch.setattr(process, "run_batch", done)
    state = process_flow.process_deletions(
        process_flow.ProcessParams(force=True, device="cpu"), return_state=True
    )
    assert state.is_completed(), state
    runs = _artifact("process-deletions-runs")
    assert runs.type == "table"
    rows = json.loads(runs.data) if isinstance(runs.data, str) else runs.data
    assert rows == [
        {
            "run": 41,
            "status": "succeeded",
            "stage": "certified",
            "tickets": rows[0]["tickets"],
            "certificates": 1,
            "mode": "provisional",
            "MI-BF": 1.5,
            "MIA AUC": 0.51,
            "unlearn s": 0.25,
            "error": "",
        }
    ]
    assert rows[0]["tickets"] > 0
    summary = _artifact("process-deletions-summary")
    assert summary.type == "table"


def test_the_reference_summary_names_the_retrain_configuration(
    harness,
    tiny_artifacts,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    fast = {"lr": 0.02, "batch_size": 2048}
    monkeypatch.setattr(
        reference_flow,
        "retrain_and_upgrade",
        lambda platform, device: ReferenceSummary(seconds=1.25, overrides=fast),
    )
    monkeypatch.setattr(reference_flow, "apply_retention", lambda platform: [])
    state = reference_flow.retrain_reference(
        reference_flow.ReferenceParams(device="cpu"), return_state=True
    )
    assert state.is_completed(), state
    summary = _artifact("retrain-reference-summary")
    rows = json.loads(summary.data) if isinstance(summary.data, str) else summary.data
    assert rows[0]["retrain configuration"] == "batch_size=2048, lr=0.02"
    assert reference_flow.retrain_configuration({}) == "base model's training config"
