"""The policy's fallback chain: when the batch fails verification, the chain's methods run in
order from the model before it (a partition method only where production is sharded), the first
that passes is kept and certified, and only then the policy's action (a full retrain)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.versions import checkout
from unlearnrec.ledger import ModelVersion, UnlearningRun, session_scope, utcnow
from unlearnrec.records.policy import OnFailure
from unlearnrec.records.verification import report_of

from .conftest import make_home
from .test_workflow import VALID, _open_and_fill, _tickets, process_once

CHAIN = "retrain, chain: [receraser, influence]"  # the test policy's on_failure, inline


def _forced(monkeypatch, passes_after: int | None):
    """verify as it is, but the first ``passes_after`` calls fail (None: every call fails)."""
    import unlearnrec.compliance.modeling as modeling

    real, calls = modeling.verify, []

    def verify(**kwargs):
        report = real(**kwargs)
        calls.append(kwargs["unlearned_folder"])
        if passes_after is None or len(calls) <= passes_after:
            return replace(report, passed=False, reasons=[f"forced to fail ({len(calls)})"])
        return replace(report, passed=True, reasons=[])

    monkeypatch.setattr(modeling, "verify", verify)
    return calls


def _run(platform):
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        production = session.get(ModelVersion, run.model_after_id)
        session.expunge_all()
    return run, production


def test_the_first_chain_method_that_passes_is_kept_and_certified(
    tiny_artifacts, tmp_path, monkeypatch
):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, on_failure=CHAIN)
    platform = _open_and_fill(home)
    calls = _forced(monkeypatch, passes_after=1)  # UnlearnRec fails, the next passes
    ingest_inbox(platform, now=utcnow())
    process_once()
    run, production = _run(platform)
    report = report_of(run)
    assert run.status == "succeeded" and run.method == "influence"
    assert production.kind == "unlearned" and production.id == run.model_after_id
    assert report.passed and report.fallback == "influence"
    assert report.failed_unlearning == ["forced to fail (1)"]
    assert report.chain == [
        {"method": "receraser", "skipped": "the production model is not sharded"},
        {
            "method": "influence",
            "passed": True,
            "reasons": [],
            "unlearn_seconds": report.chain[1]["unlearn_seconds"],
        },
    ]
    assert len(calls) == 2  # UnlearnRec's model, then influence's: receraser never ran
    with checkout(platform, "model", production.dvc_md5) as folder:
        assert (folder / "encoder.pt").is_file()  # the policy's method is ready for the next batch
    assert {k for k, t in _tickets(platform).items() if t.status == "certified"} == VALID


def test_when_the_chain_fails_too_the_policys_action_follows(tiny_artifacts, tmp_path, monkeypatch):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, on_failure=CHAIN)
    platform = _open_and_fill(home)
    _forced(monkeypatch, passes_after=None)
    ingest_inbox(platform, now=utcnow())
    process_once()
    run, production = _run(platform)
    report = report_of(run)
    assert run.method == "retrain" and production.kind == "retrain"
    assert report.fallback == "retrain" and report.passed
    assert [a["method"] for a in report.chain] == ["receraser", "influence"]
    assert report.chain[1]["passed"] is False
    assert {k for k, t in _tickets(platform).items() if t.status == "certified"} == VALID


def test_a_chain_names_known_methods_only():
    assert OnFailure.model_validate({"chain": ["sisa", "influence"]}).chain == [
        "sisa",
        "influence",
    ]
    with pytest.raises(ValueError):
        OnFailure.model_validate({"chain": ["retrain"]})  # the action, not a chain method
    with pytest.raises(ValueError):
        OnFailure.model_validate({"chain": ["nope"]})
