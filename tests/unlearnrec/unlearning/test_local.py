"""UnlearnRec's local unlearning step (``finetune_scope="local"``): same encoder pass, work
confined to the request's neighbourhood, forgetting and utility as the whole-graph step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.evaluation.forgetting import ForgettingConfig, ForgettingProbe
from unlearnrec.experiments.shared import build_request
from unlearnrec.unlearning import ModelState, UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.idm import influence_dependency
from unlearnrec.unlearning.local import local_delta, unlearn_local
from unlearnrec.unlearning.requests import user_level

from ...conftest import TINY_TRAIN

TINY_MODEL = ModelConfig(embedding_dim=32, num_layers=2)
TINY_UNLEARN = UnlearnRecConfig(
    pretrain_requests=12, pretrain_steps=3, pretrain_batch_size=2048, finetune_batch_size=2048
)
FC = ForgettingConfig(min_negatives=500, attack_train_pairs=1000)


@pytest.fixture(scope="module")
def prepared(tiny_base, tiny_splits):
    model, graph, result = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN, result.best_epoch)
    method = UnlearnRec(TINY_UNLEARN)
    method.prepare(state)
    return state, method


def _local(state, method, request, config=TINY_UNLEARN):
    return unlearn_local(
        state.model,
        state.graph,
        request,
        method.encoder,
        config,
        state.train_config,
        state.valid_edges,
        state.fit_epochs,
    )


@pytest.mark.parametrize("norm", ["request", "graph"])
def test_local_encoder_pass_equals_the_full_one_on_touched_rows(prepared, tiny_splits, norm):
    state, method = prepared
    graph = state.graph
    request = build_request("random:0.05", tiny_splits.fit, 3)
    degrees = graph.degrees() if norm == "graph" else None
    idm = influence_dependency(request.edges, graph.num_users, graph.num_items, "cpu", degrees)
    with torch.no_grad():
        final = state.model.propagate(graph)
        full = method.encoder.delta(idm.matrix, final)
        touched = torch.nonzero(idm.touched).flatten()
        removed = torch.as_tensor(request.edges)
        local = local_delta(
            method.encoder,
            removed,
            touched,
            final[touched],
            graph.num_users,
            degrees[touched] if degrees is not None else None,
        )
    assert torch.allclose(local, full[touched], atol=1e-5)


def test_local_step_changes_only_the_neighbourhood_and_returns_the_residual_graph(
    prepared, tiny_splits
):
    state, method = prepared
    request = build_request("random:0.02", tiny_splits.fit, 4)
    out = _local(state, method, request)
    graph_r = state.graph.without(request.edges)
    assert torch.equal(out.graph.edges, graph_r.edges)
    assert torch.equal(out.graph.adj.col_indices(), graph_r.adj.col_indices())
    moved = torch.nonzero((out.model.embedding - state.model.embedding).abs().sum(1) > 0).flatten()
    touched = np.unique(
        np.concatenate([request.edges[:, 0], request.edges[:, 1] + state.graph.num_users])
    )
    # every touched row moves, and nothing beyond the sampled subgraph does
    assert np.isin(touched, moved.numpy()).all()
    assert len(moved) <= out.details["subgraph_nodes"]
    assert out.details["subgraph_nodes"] <= len(touched) * (1 + 32)
    assert out.details["finetune_steps_run"] >= 1
    assert not torch.equal(out.model.embedding, state.model.embedding)


def _measure(probe, outcome, splits):
    exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
    return probe.measure(outcome.model, outcome.graph, splits.test, exclude, FC)


@pytest.mark.parametrize("spec", ["random:0.05", "users:5"])
def test_local_step_forgets_like_the_whole_graph_step(prepared, tiny_splits, spec):
    """Against the whole-graph step on the same request (the same algorithm, the encoder's pass
    then the fine-tune; the local scope has no projection): attack AUC, MI-BF and Recall@20
    close."""
    state, method = prepared
    whole_step = UnlearnRec(replace(method.config, edge_correction="encoder"), method.encoder)
    request = build_request(spec, tiny_splits.fit, 1)
    known = np.concatenate([state.graph.edges_numpy(), tiny_splits.valid, tiny_splits.test])
    probe = ForgettingProbe.build(
        state.model, state.graph, request.edges, tiny_splits.test, known, FC
    )
    whole = _measure(probe, whole_step.unlearn(state, request), tiny_splits)
    local = _measure(probe, _local(state, method, request), tiny_splits)
    before = probe.measure(
        state.model,
        state.graph,
        tiny_splits.test,
        np.concatenate([state.graph.edges_numpy(), tiny_splits.valid]),
        FC,
    )
    assert local.mi_bf > 1.0
    assert abs(local.mia_auc - whole.mia_auc) < 0.05
    assert local.mia_auc < before.mia_auc - 0.02  # it did forget
    assert abs(local.mi_bf / whole.mi_bf - 1) < 0.1
    assert local.utility["recall@20"] >= 0.97 * whole.utility["recall@20"]


def test_erased_users_are_reset_in_the_local_step(prepared, tiny_splits):
    state, method = prepared
    request = user_level(tiny_splits.fit, 4, np.random.default_rng(2))
    out = _local(state, method, request)
    users = list(request.users)
    assert out.details["reset_nodes"] >= 4
    cos = torch.nn.functional.cosine_similarity(
        state.model.embedding[users], out.model.embedding[users], dim=1
    )
    assert cos.abs().max() < 0.6
    assert not np.isin(out.graph.edges_numpy()[:, 0], users).any()


def test_the_config_field_selects_the_local_step(prepared, tiny_splits):
    state, method = prepared
    request = build_request("random:0.02", tiny_splits.fit, 5)
    local = UnlearnRec(replace(TINY_UNLEARN, finetune_scope="local"), encoder=method.encoder)
    assert local.unlearn(state, request).details["finetune_scope"] == "local"
    assert "finetune_scope" not in method.unlearn(state, request).details  # default: graph
    wrong = UnlearnRec(replace(TINY_UNLEARN, finetune_scope="nearby"), encoder=method.encoder)
    with pytest.raises(ValueError, match="finetune_scope"):
        wrong.unlearn(state, request)
