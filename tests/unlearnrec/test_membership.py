"""The reference-model membership audit: hand cases of its parts, then the attack end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data import generate_synthetic
from unlearnrec.evaluation.membership import (
    MembershipConfig,
    MembershipProbe,
    ReferenceModels,
    compare_to_reference,
    in_mask,
    lira_offline,
    pooled_sigma,
    references_for,
    rmia_offline,
    roc_points,
    state_hash,
    tpr_at_fpr,
)
from unlearnrec.experiments.shared import make_splits, train_base


def test_tpr_at_fpr_on_a_hand_example():
    """100 non-members 0..99: at 1% FPR one may score above the threshold, so t = 98."""
    neg = np.arange(100, dtype=float)
    pos = np.array([99.5, 98.5, 97.5, 50.0, 0.5])
    assert tpr_at_fpr(pos, neg, 0.01) == pytest.approx(2 / 5)  # 99.5 and 98.5 > 98
    assert tpr_at_fpr(pos, neg, 0.0) == pytest.approx(1 / 5)  # > 99
    assert tpr_at_fpr(pos, neg, 0.03) == pytest.approx(3 / 5)  # > 96
    assert tpr_at_fpr(pos, neg, 0.5) == pytest.approx(4 / 5)  # > 49
    assert tpr_at_fpr(pos, neg, 1.0) == 1.0
    # ties at the threshold are negatives: a member equal to t is not counted
    assert tpr_at_fpr(np.array([98.0]), neg, 0.01) == 0.0
    roc = roc_points(pos, neg, 5)
    assert roc["fpr"][0] == pytest.approx(0.01) and roc["fpr"][-1] == pytest.approx(1.0)
    assert roc["tpr"] == sorted(roc["tpr"])  # monotone


def test_lira_and_rmia_scores_match_a_hand_computed_gaussian_case():
    """Λ = (φ − mean of the OUT references) / σ, σ pooled; RMIA's offline ratio by hand."""
    ref = np.array([[1.0, 3.0, 10.0, -4.0], [2.0, 4.0, 0.0, 6.0]])
    out = np.array([[True, True, False, False], [False, False, True, True]])
    target = np.array([4.0, 1.0])
    sigma = 2.0
    # pair 0: μ_out = (1 + 3) / 2 = 2 → (4 − 2) / 2 = 1; pair 1: μ_out = 3 → (1 − 3) / 2 = −1
    np.testing.assert_allclose(lira_offline(target, ref, out, sigma), [1.0, -1.0])
    # The one-sided Gaussian test: P(N(μ_out, σ²) < φ) = Φ(Λ); Φ(1) by hand.
    lam = lira_offline(target, ref, out, sigma)[0]
    assert 0.5 * (1 + math.erf(lam / math.sqrt(2))) == pytest.approx(0.841345, abs=1e-6)
    # pooled σ: per-pair variances (ddof 1) of [1, 3] and [2, 4] are 2 and 2 → σ = √2
    assert pooled_sigma(np.array([[1.0, 3.0], [2.0, 4.0]])) == pytest.approx(math.sqrt(2))
    # RMIA offline: σ(0) = 0.5 everywhere, a = 0.3 → Pr(x) = ½(1.3·0.5 + 0.7) = 0.675
    r = rmia_offline(np.zeros(1), np.zeros((1, 2)), np.ones((1, 2), bool), 0.3)
    assert r[0] == pytest.approx(0.5 / 0.675)


def test_membership_bits_put_every_pair_in_exactly_half_of_the_references():
    rng = np.random.default_rng(0)
    pairs = np.stack([rng.integers(500, size=4000), rng.integers(300, size=4000)], 1)
    mask = in_mask(pairs, 300, 4, seed=0)
    assert (mask.sum(1) == 2).all()
    assert 0.45 < mask[:, 0].mean() < 0.55 and 0.45 < mask[:, 2].mean() < 0.55
    # the two rounds are independent, and the bits depend on the seed and only on the pair
    assert 0.2 < (mask[:, 0] & mask[:, 2]).mean() < 0.3
    np.testing.assert_array_equal(in_mask(pairs[::-1], 300, 4, 0), mask[::-1])
    assert (in_mask(pairs, 300, 4, seed=1) != mask).any()
    odd = in_mask(pairs, 300, 3, seed=0)
    assert odd.shape == (4000, 3) and ((odd.sum(1) == 1) | (odd.sum(1) == 2)).all()


# -- end to end on a tiny graph ------------------------------------------------------------------
# No early stopping (evaluation only after the last epoch) and no weight decay: the models
# memorise their training pairs, so membership is there to find.
_MODEL = ModelConfig(name="mf", embedding_dim=32)
_TRAIN = TrainConfig(
    max_epochs=30, batch_size=512, lr=0.02, weight_decay=0.0, eval_every=10_000, seed=0
)


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    data = generate_synthetic(
        num_users=200, num_items=150, num_groups=5, mean_interactions=20, seed=0
    )
    splits = make_splits(data, 0.1, 0)
    cpu = torch.device("cpu")
    rng = np.random.default_rng(1)
    idx = rng.choice(len(splits.fit), 300, replace=False)
    members = splits.fit[idx]
    keep = np.ones(len(splits.fit), bool)
    keep[idx] = False
    trained, g_trained, _ = train_base(splits, splits.fit, _MODEL, _TRAIN, cpu)
    never, g_never, _ = train_base(splits, splits.fit[keep], _MODEL, _TRAIN, cpu)
    refs = ReferenceModels.train(
        splits.fit, splits.valid, splits.num_users, splits.num_items, _MODEL, _TRAIN, cpu
    )
    return splits, members, (trained, g_trained), (never, g_never), refs


def test_references_are_trained_on_their_halves_and_hashed(setting):
    splits, _, _, _, refs = setting
    assert refs.k == 4 and len(set(refs.hashes)) == 4
    assert all(len(h) == 64 for h in refs.hashes)
    assert refs.hashes[0] == state_hash(refs.models[0])  # reproducible from the model
    assert sum(refs.fit_edges) == 2 * len(splits.fit)  # each pair in exactly two
    assert all(0.4 < n / len(splits.fit) < 0.6 for n in refs.fit_edges)
    assert refs.seconds > 0 and refs.describe()["sha256"] == refs.hashes


def test_the_attack_finds_membership_where_it_exists(setting):
    splits, members, (model, graph), _, refs = setting
    audit = MembershipProbe.build(refs, members, splits.test).audit(model, graph)
    assert audit.tpr_at_1pct_fpr > 0.1  # far above the 1% of chance
    assert audit.auc > 0.8
    assert audit.members == 300 and audit.nonmembers == len(splits.test)
    assert sum(audit.histogram["members"]) == 300
    assert sum(audit.rank_histogram["nonmembers"]) == len(splits.test)


def test_the_attack_finds_nothing_where_there_is_no_membership(setting):
    splits, members, (model, graph), (never, g_never), refs = setting
    # a model retrained without the pairs
    retrained = MembershipProbe.build(refs, members, splits.test).audit(never, g_never)
    assert retrained.tpr_at_1pct_fpr < 0.04
    assert abs(retrained.auc - 0.5) < 0.08
    # the trained model on two halves of pairs it never saw
    half = len(splits.test) // 2
    unseen = MembershipProbe.build(refs, splits.test[:half], splits.test[half:])
    audit = unseen.audit(model, graph)
    assert audit.tpr_at_1pct_fpr < 0.04
    assert abs(audit.auc - 0.5) < 0.06


def test_references_are_cached_per_base_model_and_the_comparison_uses_both_margins(setting):
    refs = setting[4]
    calls = []

    def build():
        calls.append(1)
        return refs

    got, reused = references_for("base-hash-for-test", build, references=4, seed=0)
    assert got is refs and not reused
    got, reused = references_for("base-hash-for-test", build, references=4, seed=0)
    assert got is refs and reused and len(calls) == 1
    ref = {"auc": 0.5, "tpr_at_1pct_fpr": 0.01}
    assert compare_to_reference({"auc": 0.52, "tpr_at_1pct_fpr": 0.015}, ref) == (True, [])
    ok, reasons = compare_to_reference({"auc": 0.54, "tpr_at_1pct_fpr": 0.03}, ref)
    assert not ok and len(reasons) == 2


def test_the_probe_rejects_unknown_attacks_and_a_single_reference(setting):
    splits, members, _, _, refs = setting
    with pytest.raises(ValueError, match="unknown attack"):
        MembershipProbe.build(refs, members, splits.test, MembershipConfig(attack="x"))
    with pytest.raises(ValueError, match="at least 2 reference"):
        ReferenceModels.train(
            splits.fit,
            splits.valid,
            splits.num_users,
            splits.num_items,
            _MODEL,
            _TRAIN,
            torch.device("cpu"),
            references=1,
        )


def test_bench_reports_the_audit_per_method_and_the_references_apart(tmp_path, capsys):
    """`bench --rmia 2`: per method {auc, tpr_at_1pct_fpr, tpr_at_0_1pct_fpr}, the references'
    seconds and hashes at the top level, and the original model's audit for the evidence."""
    import json

    from unlearnrec.cli import main
    from unlearnrec.data.readers import write_lightgcn

    data = generate_synthetic(num_users=150, num_items=100, num_groups=4, mean_interactions=12)
    write_lightgcn(data, tmp_path / "tiny")
    (tmp_path / "params.yaml").write_text("train:\n  max_epochs: 10\n  batch_size: 1024\n")
    out = tmp_path / "bench.json"
    args = ["bench", "--data", str(tmp_path / "tiny"), "--request", "random:0.05"]
    args += ["--json", str(out), "--device", "cpu", "--params", str(tmp_path / "params.yaml")]
    args += ["--set", "unlearnrec.pretrain_requests=2", "--set", "model.embedding_dim=8"]
    assert main([*args, "--rmia", "2"]) == 0
    result = json.loads(out.read_text())
    assert result["rmia_reference_seconds"] > 0
    assert result["rmia_references"]["k"] == 2 and len(result["rmia_references"]["sha256"]) == 2
    for name in ("retrain", "unlearnrec"):
        rmia = result["methods"][name]["rmia"]
        assert {"auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"} <= set(rmia)
        assert 0 <= rmia["tpr_at_0_1pct_fpr"] <= rmia["tpr_at_1pct_fpr"] <= 1
        assert len(rmia["roc"]["fpr"]) == len(rmia["roc"]["tpr"]) > 10
    assert result["methods"]["retrain"]["rmia_gap"]["auc"] == 0.0
    assert "rmia_original" in result and "membership audit" in capsys.readouterr().out
