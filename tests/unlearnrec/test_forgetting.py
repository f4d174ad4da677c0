"""Forgetting metrics: definitions on hand-set embeddings, negatives, flags, the full report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.evaluation.forgetting import (
    ForgettingConfig,
    ForgettingProbe,
    ModelForgetting,
    compare,
    forgetting_report,
    sample_negatives_for,
    scores,
)
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import MF
from unlearnrec.unlearning import ModelState, Retrain, UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.requests import random_edges

from ..conftest import TINY_TRAIN


def _mf(user_vecs, item_vecs) -> MF:
    model = MF(len(user_vecs), len(item_vecs), ModelConfig(name="mf", embedding_dim=2))
    with torch.no_grad():
        model.embedding.copy_(torch.tensor(np.vstack([user_vecs, item_vecs]), dtype=torch.float))
    return model


def test_mi_bf_and_mi_ng_follow_their_definitions():
    """MI-BF = mean σ before / after on E_Δ; MI-NG = mean σ of negatives / of E_Δ."""
    users = [[1.0, 0.0], [0.0, 1.0]]
    items_before = [[3.0, 0.0], [0.0, 3.0], [0.0, 0.0], [-1.0, -1.0]]
    items_after = [[0.5, 0.0], [0.0, 0.5], [0.0, 0.0], [-1.0, -1.0]]
    before, after = _mf(users, items_before), _mf(users, items_after)
    edges = np.array([[0, 0], [1, 1], [0, 2], [1, 3]])
    graph = Graph.from_edges(edges, 2, 4)
    forgotten = np.array([[0, 0], [1, 1]])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(scores(after, graph, forgotten), [sig(0.5), sig(0.5)], rtol=1e-6)
    probe = ForgettingProbe(
        forgotten=forgotten,
        negatives=np.array([[0, 3], [1, 2]]),
        heldout_train=np.array([[0, 2], [1, 3]]),
        heldout_eval=np.array([[0, 3], [1, 2]]),
        original_forgotten_score=float(scores(before, graph, forgotten).mean()),
    )
    m = probe.measure(after, graph, np.array([[0, 1]]), edges, ForgettingConfig())
    assert m.mi_bf == pytest.approx(sig(3.0) / sig(0.5), rel=1e-5)
    assert m.mi_ng == pytest.approx(((sig(-1.0) + sig(0.0)) / 2) / sig(0.5), rel=1e-5)


def test_negatives_are_never_known_pairs_and_follow_the_request_users():
    """Negatives avoid every known pair, one per forgotten edge, for the same users."""
    rng = np.random.default_rng(0)
    known = np.array([[u, i] for u in range(20) for i in range(30) if (u + i) % 3 == 0])
    forgotten = known[:25]
    neg = sample_negatives_for(forgotten, known, 30, 40, rng)
    assert len(neg) == 40
    assert not {tuple(p) for p in neg.tolist()} & {tuple(p) for p in known.tolist()}
    np.testing.assert_array_equal(neg[:25, 0], forgotten[:, 0])


def _mf_fig(mi_bf, mi_ng, auc, recall) -> ModelForgetting:
    return ModelForgetting(
        mi_bf, mi_ng, auc, auc, 0.5, 0.5, {"recall@20": recall, "ndcg@20": recall}
    )


def test_flags_name_over_and_under_unlearning():
    """Too low an AUC / too high an MI-NG is over-unlearning; the opposite is under."""
    cfg = ForgettingConfig()
    ref = _mf_fig(1.2, 0.7, 0.5, 0.3)
    _, over, under, _ = compare(_mf_fig(1.2, 0.72, 0.52, 0.3), ref, cfg)
    assert not over and not under
    _, over, under, reasons = compare(_mf_fig(2.0, 1.1, 0.3, 0.3), ref, cfg)
    assert over and not under and any("MIA AUC" in r for r in reasons)
    _, over, under, reasons = compare(_mf_fig(1.01, 0.5, 0.7, 0.3), ref, cfg)
    assert under and not over and any("MI-BF" in r for r in reasons)


def test_report_on_a_real_unlearning_run_is_a_storable_record(tiny_base, tiny_splits):
    """One call returns every figure with thresholds, ratios to retrain and a verdict."""
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    request = random_edges(tiny_splits.fit, 0.05, np.random.default_rng(5))
    method = UnlearnRec(UnlearnRecConfig(pretrain_requests=5, pretrain_steps=2))
    method.prepare(state)
    ours, ref = method.unlearn(state, request), Retrain().unlearn(state, request)
    report = forgetting_report(
        original=model,
        original_graph=graph,
        unlearned=ours.model,
        unlearned_graph=ours.graph,
        reference=ref.model,
        reference_graph=ref.graph,
        request=request.describe(),
        request_edges=request.edges,
        test_edges=tiny_splits.test,
        valid_edges=tiny_splits.valid,
        config=ForgettingConfig(min_negatives=300, attack_train_pairs=500),
    )
    d = report.to_dict()
    assert set(d) >= {
        "unlearned",
        "reference",
        "ratios",
        "over_unlearning",
        "under_unlearning",
        "passed",
        "reasons",
        "thresholds",
        "original_utility",
    }
    assert d["ratios"]["recall@20"] == pytest.approx(
        d["unlearned"]["utility"]["recall@20"] / d["reference"]["utility"]["recall@20"]
    )
    assert 0.0 <= d["reference"]["mia_auc"] <= 1.0
    # Retrain never trained on E_Δ, so an attacker cannot tell E_Δ from held-out members well.
    assert abs(d["reference"]["mia_auc"] - 0.5) < 0.15
    assert d["passed"] == (
        not d["over_unlearning"] and not d["under_unlearning"] and d["ratios"]["recall@20"] >= 0.97
    )
