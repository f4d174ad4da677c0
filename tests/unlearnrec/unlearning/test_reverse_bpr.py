"""Reverse BPR (MMRecUn) on a tiny set: forgotten pairs pushed down, utility near retrain."""

from __future__ import annotations

import numpy as np
import torch

from unlearnrec.evaluation.forgetting import scores
from unlearnrec.experiments.shared import build_request
from unlearnrec.unlearning import METHODS, ModelState, ReverseBPR, ReverseBPRConfig

from ...conftest import TINY_TRAIN
from .conftest import recall_at_20


def _below_negatives(model, graph, edges, seed=0):
    """Share of forgotten pairs scored below a random item of the same user."""
    rng = np.random.default_rng(seed)
    neg = edges.copy()
    neg[:, 1] = rng.integers(0, model.num_items, len(edges))
    return float((scores(model, graph, edges) < scores(model, graph, neg)).mean())


def test_forgotten_scores_fall_and_utility_stays_near_retrain(random_case, tiny_splits):
    state, request, retrain = random_case
    method = METHODS["reverse_bpr"]({})
    assert method.prepare(state) == 0.0
    base_rows = state.model.embedding.detach().clone()
    out = method.unlearn(state, request)
    assert out.method == "reverse_bpr" and out.details["steps"] == ReverseBPRConfig().steps
    assert len(out.graph.edges) == len(state.graph.edges) - request.num_edges
    before = scores(state.model, state.graph, request.edges).mean()
    dropped_only = scores(state.model, out.graph, request.edges).mean()
    after = scores(out.model, out.graph, request.edges).mean()
    assert after < dropped_only < before
    assert _below_negatives(out.model, out.graph, request.edges) > _below_negatives(
        state.model, out.graph, request.edges
    )
    # stated bound: Recall@20 at least 0.95x retrain's on the tiny set
    assert recall_at_20(out, tiny_splits) >= 0.95 * recall_at_20(retrain, tiny_splits)
    assert torch.equal(state.model.embedding, base_rows)  # the base model is left as it was


def test_more_weight_on_the_reverse_term_pushes_further(random_case):
    state, request, _ = random_case
    weak = ReverseBPR(ReverseBPRConfig(forget_weight=0.2)).unlearn(state, request)
    strong = ReverseBPR(ReverseBPRConfig(forget_weight=5.0)).unlearn(state, request)
    s_weak = scores(weak.model, weak.graph, request.edges).mean()
    s_strong = scores(strong.model, strong.graph, request.edges).mean()
    assert s_strong < s_weak


def test_deterministic_given_the_seed(random_case):
    state, request, _ = random_case
    cfg = ReverseBPRConfig(steps=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # threaded kernels may sum floats in another order
    try:
        a = ReverseBPR(cfg).unlearn(state, request)
        b = ReverseBPR(cfg).unlearn(state, request)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a.model.embedding, b.model.embedding)


def test_reset_isolated_gives_erased_users_fresh_rows(tiny_base, tiny_splits):
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    request = build_request("users:3", tiny_splits.fit, 0)
    users = list(request.users)
    kept = ReverseBPR(ReverseBPRConfig(steps=2)).unlearn(state, request)
    reset = ReverseBPR(ReverseBPRConfig(steps=2, reset_isolated=True)).unlearn(state, request)
    assert kept.details["reset_nodes"] == 0 and reset.details["reset_nodes"] >= 3
    old = model.embedding[users]
    moved_kept = float((kept.model.embedding[users] - old).detach().norm())
    moved_reset = float((reset.model.embedding[users] - old).detach().norm())
    assert moved_kept < 0.5 * moved_reset and moved_reset > 0.5 * float(old.detach().norm())
