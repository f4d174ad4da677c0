"""The verification record on plain values (no database, no model): the ledger's JSON reads
into a ``VerificationReport`` and writes back with the same keys and values, and one decision
says what a verification leads to for the processing run and the reference retrain alike."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from unlearnrec.compliance.fallback import Decision, decide
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import Thresholds
from unlearnrec.records.verification import Figures, VerificationReport, record, report_of

FIGURES = {
    "mi_bf": 2.05,
    "mi_ng": 1.12,
    "mia_auc": 0.487,
    "mia_auc_threshold": 0.5,
    "score_forgotten": -0.3,
    "score_negative": -0.2,
    "recall@20": 0.34,
    "ndcg@20": 0.29,
}
# the shapes verify() wrote before the record was typed, one per branch
FINAL = {
    "removed_training_edges": 24,
    "thresholds": Thresholds().model_dump(),
    "unlearned": FIGURES,
    "mode": "final",
    "reference": {**FIGURES, "mi_bf": 2.2},
    "ratios": {"recall@20": 0.99},
    "over_unlearning": False,
    "under_unlearning": False,
    "passed": True,
    "reasons": [],
    "reference_model_sha256": "ab" * 32,
}
PROVISIONAL = {
    "removed_training_edges": 12,
    "thresholds": Thresholds().model_dump(),
    "unlearned": FIGURES,
    "kept_edges_mia_auc": 0.41,
    "mode": "provisional",
    "passed": False,
    "reasons": ["MI-BF 0.900 is not above 1: no membership signal was lost"],
}
EXACT = {
    "removed_training_edges": 3,
    "thresholds": Thresholds().model_dump(),
    "unlearned": FIGURES,
    "mode": "final",
    "tier": "exact",
    "exact": {"passed": True, "shards": 4, "shards_retrained": [1]},
    "passed": True,
    "reasons": ["exact: no sub-model was trained on an erased pair (shard manifests)"],
}
FALLBACK = {
    **PROVISIONAL,
    "fallback": "retrain",
    "passed": True,
    "mode": "final",
    "failed_unlearning": PROVISIONAL["reasons"],
    "reasons": ["promoted a full retrain"],
}
NOTHING = {
    "mode": "final",
    "passed": True,
    "removed_training_edges": 0,
    "reasons": ["nothing to erase: the dataset holds no interaction the batch names"],
}


@dataclass
class Row:
    """Stands for ``ledger.UnlearningRun``: only its JSON column."""

    verification: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize("stored", [FINAL, PROVISIONAL, EXACT, FALLBACK, NOTHING])
def test_the_ledger_json_reads_and_writes_back_unchanged(stored):
    report = report_of(Row(json.loads(json.dumps(stored))))
    assert report is not None
    row = Row()
    record(row, report)
    assert row.verification == stored
    assert json.loads(json.dumps(row.verification)) == stored  # plain JSON, nothing typed left


def test_the_report_types_what_the_layers_read():
    report = report_of(Row(FINAL))
    assert report is not None and report.final and report.passed
    assert isinstance(report.thresholds, Thresholds) and report.thresholds.auc_margin == 0.05
    assert report.unlearned == Figures.from_dict(FIGURES)
    assert report.unlearned.mia_auc == 0.487 and report.unlearned.get("recall@20") == 0.34
    assert report.reference is not None and report.reference.mi_bf == 2.2
    assert report_of(Row()) is None  # a run not verified yet


def test_unknown_keys_and_partial_figures_survive():
    """Hand-written rows (the dashboard's seed) lack some figures; a later writer's keys stay."""
    stored = {**PROVISIONAL, "unlearned": {"mi_bf": 1.7, "recall@20": 0.33}, "note": {"x": 1}}
    report = report_of(Row(stored))
    assert report is not None and report.extra == {"note": {"x": 1}}
    assert report.unlearned is not None and report.unlearned.mi_ng is None
    row = Row()
    record(row, report)
    assert row.verification == stored


def test_figures_of_a_measurement():
    @dataclass
    class Measured:
        mi_bf: float = 1.5
        mi_ng: float = 1.1
        mia_auc: float = 0.5
        mia_auc_threshold: float = 0.49
        score_forgotten: float = -1.0
        score_negative: float = -1.2
        utility: dict = field(default_factory=lambda: {"recall@20": 0.3, "ndcg@20": 0.2})

    figures = Figures.of(Measured())
    assert list(figures.to_dict()) == [*list(FIGURES)]
    assert figures.to_dict()["recall@20"] == 0.3


def test_the_retrain_fallback_keeps_what_unlearning_missed():
    failed = report_of(Row(PROVISIONAL))
    assert failed is not None
    row = Row()
    record(row, failed.with_retrain_fallback())
    assert row.verification == FALLBACK
    assert certs.tier_of("unlearnrec", failed.with_retrain_fallback()) == "retrain"


@pytest.mark.parametrize(
    ("passed", "on_failure", "decision"),
    [
        (True, "retrain", Decision.KEEP),
        (True, "escalate", Decision.KEEP),
        (False, "retrain", Decision.PROMOTE_RETRAIN),
        (False, "escalate", Decision.ESCALATE),
    ],
)
def test_one_decision_for_the_run_and_the_reference_retrain(passed, on_failure, decision):
    report = VerificationReport(mode="final", passed=passed)
    assert decide(report, on_failure) == decision


def test_a_row_written_under_another_policy_schema_still_reads_and_writes_back():
    """A stored report outlives the policy schema it was written with: thresholds that today's
    strict schema refuses are kept as stored, not a reason the ledger cannot be read."""
    stored = {
        "mode": "final",
        "passed": True,
        "reasons": [],
        "thresholds": {"mi_bf_ratio": 0.9, "retired_setting": 3},
    }
    report = VerificationReport.from_dict(stored)
    assert report.passed and report.thresholds is None
    assert report.to_dict() == stored
