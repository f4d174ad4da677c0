"""The projection (``edge_correction: projection``): each touched user's row moved by the smallest
change of its scores that brings its removed pairs to their z-score targets, items kept."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from unlearnrec.evaluation.forgetting import ForgettingConfig, ForgettingProbe, compare
from unlearnrec.experiments.shared import build_request
from unlearnrec.unlearning import UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.projection import project_users
from unlearnrec.unlearning.requests import DeletionRequest
from unlearnrec.unlearning.unlearnrec import zscore_targets

from .conftest import recall_at_20

FC = ForgettingConfig(min_negatives=500, attack_train_pairs=1000)


def _case(random_case, tiny_splits):
    state, request, _ = random_case
    graph_r = state.graph.without(request.edges)
    removed = torch.as_tensor(np.asarray(request.edges), dtype=torch.long)
    with torch.no_grad():
        final = state.model.propagate(state.graph)
    gen = torch.Generator().manual_seed(0)
    targets = zscore_targets(
        final, state.model.num_users, removed, graph_r.edges, tiny_splits.valid, gen
    )
    return state, graph_r, removed, targets


def _excess(model, graph, e0, removed, targets) -> float:
    """Mean of max(z − target, 0) over the removed pairs: how far above held-out level."""
    with torch.no_grad():
        final = model.propagate(graph, e0)
    nu = model.num_users
    users, items = final[:nu][removed[:, 0]], final[nu:]
    scores = users @ items.T
    z = ((users * items[removed[:, 1]]).sum(1) - scores.mean(1)) / scores.std(1)
    return float((z - targets).clamp_min(0).mean())


def test_the_projection_brings_removed_pairs_to_their_targets_and_keeps_items(
    random_case, tiny_splits
):
    state, graph_r, removed, targets = _case(random_case, tiny_splits)
    e0 = state.model.embedding.detach()
    before = _excess(state.model, graph_r, e0, removed, targets)
    moved, info = project_users(state.model, graph_r, e0, removed, targets, rounds=3)
    assert before > 0.1  # forgotten pairs sit above held-out level at first
    assert _excess(state.model, graph_r, moved, removed, targets) < 0.2 * before
    nu = state.model.num_users
    assert torch.equal(moved[nu:], e0[nu:])  # item rows are left as they were
    touched = torch.unique(removed[:, 0])
    untouched = torch.ones(nu, dtype=torch.bool)
    untouched[touched] = False
    assert torch.equal(moved[:nu][untouched], e0[:nu][untouched])
    assert 0 < info["projection_self_weight"] <= 1


def test_unlearnrec_with_the_projection_forgets_like_retrain_and_keeps_utility(
    random_case, tiny_splits
):
    state, request, reference = random_case
    config = replace(
        UnlearnRecConfig(), edge_correction="projection", pretrain_requests=4, pretrain_steps=1
    )
    method = UnlearnRec(config)
    method.prepare(state)  # the encoder is loaded as always; the projection skips its pass
    out = method.unlearn(state, request)
    known = np.concatenate([state.graph.edges_numpy(), tiny_splits.valid, tiny_splits.test])
    probe = ForgettingProbe.build(
        state.model, state.graph, request.edges, tiny_splits.test, known, FC
    )

    def measure(o):
        exclude = np.concatenate([o.graph.edges_numpy(), tiny_splits.valid])
        return probe.measure(o.model, o.graph, tiny_splits.test, exclude, FC)

    _, over, under, reasons = compare(measure(out), measure(reference), FC)
    assert not over and not under, reasons
    assert recall_at_20(out, tiny_splits) >= 0.97 * recall_at_20(reference, tiny_splits)
    assert "projection_pairs_above" in out.details


def test_a_mixed_batch_gives_its_node_part_the_encoders_pass_and_projects_its_edges(
    random_case, tiny_splits
):
    """Erased users and a taken-down item get the encoder's pass exactly as a request of them
    alone does; only the users of the batch's other removed pairs are then projected."""
    state, _, _ = random_case
    batch = build_request("mixed:1,20,1", tiny_splits.fit, 0)
    fit = np.asarray(tiny_splits.fit)
    node_rows = np.isin(batch.edges[:, 0], batch.users) | np.isin(batch.edges[:, 1], batch.items)
    nodes = DeletionRequest("users", batch.edges[node_rows], batch.users, batch.items)
    edge_users = np.unique(batch.edges[~node_rows, 0])
    assert len(edge_users) and len(nodes.edges) < len(batch.edges) < len(fit)
    config = replace(
        UnlearnRecConfig(),
        edge_correction="projection",
        pretrain_requests=4,
        pretrain_steps=1,
        finetune_stop="fixed",
        finetune_steps=0,  # the corrections alone, before any fine-tune step
    )
    method = UnlearnRec(config)
    method.prepare(state)
    mixed_rows = method.unlearn(state, batch).model.embedding.detach()
    node_out = UnlearnRec(replace(config, edge_correction="encoder"))
    node_out.encoder = method.encoder
    node_rows_only = node_out.unlearn(state, nodes)
    assert node_rows_only.details["reset_nodes"] == len(batch.users) + len(batch.items)
    base = state.model.embedding.detach()
    expected = node_rows_only.model.embedding.detach()
    assert not torch.allclose(expected, base)  # the pass corrected the rows around the nodes
    projected = torch.zeros(len(base), dtype=torch.bool)
    projected[torch.as_tensor(edge_users)] = True
    assert torch.allclose(mixed_rows[~projected], expected[~projected], atol=1e-6)
    assert not torch.allclose(mixed_rows[projected], expected[projected])
