"""The membership evidence: the certificate detail shows it from a seeded ledger, and the same
picture is drawn as a PNG (from a verification record or a bench result)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from dashboard import evidence
from tests.dashboard.conftest import frame_with, page_text
from tests.dashboard.seed import PROVISIONAL_CERTIFICATE, RUN1_MEMBERSHIP, VALID_CERTIFICATE


def _charts(at) -> list:
    return at.get("vega_lite_chart")


def test_a_final_certificate_shows_its_membership_evidence(open_app, seeded):
    # the evidence is in the signed certificate itself, not only in the ledger's run row
    doc = json.loads(seeded.certificates[VALID_CERTIFICATE].read_text())
    assert (
        doc["verification"]["membership"]["references"]["sha256"]
        == (RUN1_MEMBERSHIP["references"]["sha256"])
    )
    at = open_app("certificates", certificate=VALID_CERTIFICATE)
    assert not at.exception
    assert "Membership evidence" in [h.value for h in at.subheader]
    figures = frame_with(at, "TPR @ 1% FPR").set_index("model")
    models = RUN1_MEMBERSHIP["models"]
    assert figures.loc["original (trained on them)", "AUC"] == round(models["original"]["auc"], 3)
    assert figures.loc["unlearned", "TPR @ 1% FPR"] == round(
        models["unlearned"]["tpr_at_1pct_fpr"], 4
    )
    assert figures.loc["retrained without them", "TPR @ 0.1% FPR"] == round(
        models["reference"]["tpr_at_0_1pct_fpr"], 4
    )
    text = page_text(at)
    assert "**PASS**" in text and "4 reference models" in text
    assert RUN1_MEMBERSHIP["references"]["sha256"][0][:16] in text
    charts = _charts(at)
    assert len(charts) == 2  # the score histograms and the ROC
    specs = [json.loads(c.proto.spec) for c in charts]
    roc = next(s for s in specs if "layer" in s)
    assert roc["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"
    assert roc["layer"][1]["encoding"]["y"]["scale"]["type"] == "log"


def test_a_certificate_without_the_audit_shows_no_evidence(open_app):
    at = open_app("certificates", certificate=PROVISIONAL_CERTIFICATE)
    assert not at.exception
    assert "Membership evidence" not in [h.value for h in at.subheader]
    assert not _charts(at)


def test_malformed_evidence_is_ignored_not_drawn():
    assert evidence.membership_evidence(None) is None
    assert evidence.membership_evidence({"membership": {"models": "x"}}) is None
    broken = {"histogram": {"edges": [0, 1], "members": [1, 2], "nonmembers": [1]}, "roc": {}}
    assert evidence.membership_evidence({"membership": {"models": {"original": broken}}}) is None
    kept = evidence.membership_evidence(
        {"membership": {"models": {**RUN1_MEMBERSHIP["models"], "other": broken}}}
    )
    assert kept is not None and set(kept["models"]) == {"original", "unlearned", "reference"}


def test_the_frames_hold_shares_and_floored_rates():
    found = evidence.membership_evidence({"membership": RUN1_MEMBERSHIP})
    hist = evidence.histogram_frame(found)
    shares = hist.groupby(["model", "population"])["share"].sum()
    assert shares.round(6).eq(1.0).all()  # each population's shares add to one
    roc = evidence.roc_frame(found)
    assert roc["tpr"].min() >= evidence.TPR_FLOOR and roc["fpr"].max() == pytest.approx(1.0)


def test_the_png_is_drawn_from_a_bench_result(tmp_path):
    models = RUN1_MEMBERSHIP["models"]
    bench = {
        "dataset": "tiny",
        "request": {"spec": "random:0.01"},
        "rmia_references": RUN1_MEMBERSHIP["references"],
        "rmia_original": models["original"],
        "methods": {
            "retrain": {"rmia": models["reference"]},
            "unlearnrec": {"rmia": models["unlearned"]},
        },
    }
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "evidence.png"
    assert evidence.main([str(tmp_path / "bench.json"), str(out)]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 1000 and img.height > 250
        # something is drawn in colour: the forgotten pairs' red curve
        assert (214, 39, 40) in {c for _, c in img.convert("RGB").getcolors(1 << 20)}
    assert evidence.from_bench(bench)["models"]["reference"] is models["reference"]
