"""The policy's membership audit in final verification and in the final certificate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unlearnrec.compliance.modeling import retrain_model, verify
from unlearnrec.data.splits import Splits
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import MembershipAudit, PolicyError, Thresholds, load_policy
from unlearnrec.records.verification import VerificationReport

from .conftest import POLICY, SMALL_UNLEARN, make_home

AUDIT = {"references": 2, "tpr_margin": 0.01, "auc_margin": 0.03}


def test_the_audit_is_off_by_default_with_the_documented_margins(tmp_path):
    default = Thresholds().membership
    assert (default.references, default.tpr_margin, default.auc_margin) == (0, 0.01, 0.03)
    with pytest.raises(ValueError, match="at least 2"):
        MembershipAudit(references=1)
    path = tmp_path / "p.yaml"
    text = POLICY.format(method="unlearnrec", params="{}", on_failure="retrain", auc_margin=0.05)
    path.write_text(text.replace("{auc_margin: 0.05}", "{membership: {references: 4}}"))
    thresholds = load_policy(path).verification.thresholds
    assert thresholds.membership.references == 4
    # what stage_verify and the reference upgrade hand to verify()
    assert thresholds.model_dump()["membership"] == {
        "references": 4,
        "tpr_margin": 0.01,
        "auc_margin": 0.03,
    }
    path.write_text(text.replace("{auc_margin: 0.05}", "{membership: {refs: 4}}"))
    with pytest.raises(PolicyError, match=r"membership\.refs"):
        load_policy(path)


@pytest.fixture(scope="module")
def erasure(tiny_artifacts, tmp_path_factory):
    """The tiny platform's data before and after erasing 150 training pairs, and a retrain."""
    splits = Splits.load(tiny_artifacts / "artifacts" / "prepared" / "splits.npz")
    ids = lambda n: np.array([str(i) for i in range(n)], dtype=object)  # noqa: E731
    before = splits.with_ids(ids(splits.num_users), ids(splits.num_items))
    removed = splits.fit[np.random.default_rng(0).choice(len(splits.fit), 150, replace=False)]
    after = before.without(removed)
    base = tiny_artifacts / "artifacts" / "base"
    ref, _ = retrain_model(after, base, tmp_path_factory.mktemp("ref"), device="cpu")
    return before, after, removed, base, ref


def _verify(erasure, unlearned: Path) -> VerificationReport:
    before, after, removed, base, ref = erasure
    # unvalidated: a ratio of 0 (below the policy's bound) switches the MI-BF check off here
    thresholds = Thresholds.model_construct(
        auc_margin=0.3,
        mi_bf_ratio=0.0,
        mi_ng_tolerance=10.0,
        min_utility_ratio=0.5,
        membership=MembershipAudit(**AUDIT),
    )
    return verify(
        original_folder=base,
        original=before,
        unlearned_folder=unlearned,
        after=after,
        removed=removed,
        thresholds=thresholds,
        reference_folder=ref,
        device="cpu",
    )


def test_final_verification_runs_the_audit_and_keeps_the_references(erasure, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNREC_HOME", str(tmp_path))
    report = _verify(erasure, erasure[4])  # the retrain itself: the audit must pass
    m = report.membership
    assert m["passed"] and m["reasons"] == [] and report.passed
    assert m["k"] == 2 and len(m["references"]["sha256"]) == 2
    assert set(m["models"]) == {"original", "unlearned", "reference"}
    assert m["models"]["unlearned"]["auc"] == m["models"]["reference"]["auc"]
    assert m["models"]["original"]["members"] == 150
    # the references are kept per base model and reused, from disk once memory is cleared
    saved = list((tmp_path / "var" / "references").glob("*/references.json"))
    assert (
        len(saved) == 1
        and json.loads(saved[0].read_text())["sha256"] == (m["references"]["sha256"])
    )
    from unlearnrec.evaluation import membership

    membership._CACHE.clear()
    again = _verify(erasure, erasure[4]).membership
    assert (
        again["references_reused"] and again["references"]["sha256"] == (m["references"]["sha256"])
    )
    assert again["models"]["unlearned"] == m["models"]["unlearned"]


def test_a_model_that_forgot_nothing_fails_the_audit(erasure, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNREC_HOME", str(tmp_path))
    report = _verify(erasure, erasure[3])  # the original model, not unlearned at all
    m = report.membership
    assert not m["passed"] and not report.passed
    assert m["models"]["unlearned"]["auc"] > m["models"]["reference"]["auc"] + 0.03
    assert any("membership audit" in r for r in report.reasons)


@pytest.mark.slow  # the whole chain under a final policy (about a minute on 2 idle cores)
def test_a_final_certificate_carries_the_audit(tiny_artifacts, tmp_path, monkeypatch):
    """A final policy with the audit: the certificate records the figures, K and the hashes."""
    from tests.unlearnrec.compliance.test_workflow import _certificates, _open_and_fill
    from unlearnrec.compliance.ingest import ingest_inbox
    from unlearnrec.ledger import utcnow

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, params=SMALL_UNLEARN)
    policy = home / "policies" / "test.yaml"
    text = policy.read_text().replace("mode: provisional", "mode: final")
    policy.write_text(
        text.replace(
            "{auc_margin: 0.3}",
            "{auc_margin: 0.3, membership: {references: 2, tpr_margin: 1.0, auc_margin: 1.0}}",
        )
    )
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    from tests.unlearnrec.compliance.test_workflow import process_once

    process_once()
    finals = _certificates(platform, "final")
    assert finals
    public = certs.load_public_key(platform.settings.public_key)
    for row in finals:
        cert = certs.read_certificate(Path(row.path), strict=True)
        assert certs.verify_certificate(cert, public).ok
        m = cert["verification"]["membership"]
        assert m["k"] == 2 and len(m["references"]["sha256"]) == 2
        assert {"auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"} <= set(m["models"]["unlearned"])
        assert m["thresholds"] == {"tpr_margin": 1.0, "auc_margin": 1.0} and m["passed"]
