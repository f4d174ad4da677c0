"""UnlearnRec on tiny graphs: forgetting like retrain, utility kept, sequential requests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.data.dataset import remove_edges
from unlearnrec.evaluation import evaluate_ranking
from unlearnrec.experiment import build_request, train_base
from unlearnrec.forgetting import ForgettingConfig, ForgettingProbe, scores
from unlearnrec.unlearning import ModelState, Retrain, UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.requests import DeletionRequest, user_level

from ...conftest import TINY_TRAIN

TINY_MODEL = ModelConfig(embedding_dim=32, num_layers=2)
TINY_UNLEARN = UnlearnRecConfig(
    pretrain_requests=12, pretrain_steps=3, pretrain_batch_size=2048, finetune_batch_size=2048
)
FC = ForgettingConfig(min_negatives=500, attack_train_pairs=1000)


def _measure(probe, outcome, splits):
    exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
    return probe.measure(outcome.model, outcome.graph, splits.test, exclude, FC)


def _probe(model, graph, request, splits):
    known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
    return ForgettingProbe.build(model, graph, request.edges, splits.test, known, FC)


@pytest.fixture(scope="module")
def prepared(tiny_base, tiny_splits):
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    method = UnlearnRec(TINY_UNLEARN)
    seconds = method.prepare(state)
    return state, method, seconds


def test_noise_edges_are_forgotten_down_to_negatives_as_retrain_does(tiny_base, tiny_splits):
    """Injected least-related edges: after unlearning they score like never-seen negatives."""
    clean, clean_graph, _ = tiny_base
    known = np.concatenate([tiny_splits.fit, tiny_splits.valid, tiny_splits.test])
    request = build_request("noise:0.3", tiny_splits.fit, 0, (clean, clean_graph), known)
    assert request.num_edges > 50
    augmented = np.concatenate([tiny_splits.fit, request.edges])
    base, graph, _ = train_base(tiny_splits, augmented, TINY_MODEL, TINY_TRAIN, torch.device("cpu"))
    state = ModelState(base, graph, tiny_splits.valid, TINY_TRAIN)
    probe = _probe(base, graph, request, tiny_splits)
    method = UnlearnRec(TINY_UNLEARN)
    method.prepare(state)
    ours = _measure(probe, method.unlearn(state, request), tiny_splits)
    ref = _measure(probe, Retrain().unlearn(state, request), tiny_splits)
    before = probe.measure(
        base, graph, tiny_splits.test, np.concatenate([graph.edges_numpy(), tiny_splits.valid]), FC
    )
    assert before.mi_ng < 0.9  # the base model memorised the noise
    assert ref.mi_ng >= 1.0  # retrain scores them like (or below) negatives
    assert ours.mi_ng >= 0.95
    assert ours.mi_bf > 1.2
    assert ours.utility["recall@20"] >= 0.9 * ref.utility["recall@20"]


def test_random_request_forgetting_lands_near_retrain(prepared, tiny_splits):
    """On random edges the forgetting metrics are close to retrain's and utility is kept."""
    state, method, _ = prepared
    request = build_request("random:0.05", tiny_splits.fit, 1)
    probe = _probe(state.model, state.graph, request, tiny_splits)
    out = method.unlearn(state, request)
    ours, ref = (
        _measure(probe, out, tiny_splits),
        _measure(probe, Retrain().unlearn(state, request), tiny_splits),
    )
    assert ours.mi_bf > 1.0
    assert abs(ours.mia_auc - ref.mia_auc) < 0.1
    assert 0.75 < ours.mi_ng / ref.mi_ng < 1.25
    assert ours.utility["recall@20"] >= 0.93 * ref.utility["recall@20"]
    # The input model is untouched and the outcome runs on the residual graph.
    assert len(out.graph.edges) == len(state.graph.edges) - request.num_edges
    assert not torch.equal(out.model.embedding, state.model.embedding)


def test_user_level_request_resets_the_erased_users(prepared, tiny_splits):
    """Erased users lose every edge and their personal embedding row, as in a retrained model."""
    state, method, _ = prepared
    request = user_level(tiny_splits.fit, 5, np.random.default_rng(0))
    out = method.unlearn(state, request)
    users = list(request.users)
    assert out.details["reset_nodes"] >= 5
    assert not np.isin(out.graph.edges_numpy()[:, 0], users).any()
    before, after = state.model.embedding[users], out.model.embedding[users]
    # No correlation left with the old rows: fresh draws from the initial distribution.
    cos = torch.nn.functional.cosine_similarity(before, after, dim=1)
    assert cos.abs().max() < 0.6
    assert after.std().item() == pytest.approx(state.model.init_std, rel=0.3)


def test_sequential_requests_keep_earlier_forgetting_and_utility(prepared, tiny_splits):
    """Three requests in a row, each on the last result: the graph shrinks by exactly the removed
    edges, earlier edges stay forgotten, and utility stays near a retrain on all removals."""
    state, _, _ = prepared
    method = UnlearnRec(TINY_UNLEARN)
    method.prepare(state)
    requests, current_edges = [], state.graph.edges_numpy()
    for seed in range(3):
        request = build_request("random:0.03", current_edges, 10 + seed)
        requests.append(request)
        current_edges = remove_edges(current_edges, request.edges, tiny_splits.num_items)
    outcomes = method.unlearn_sequence(state, requests)
    final = outcomes[-1]
    gone = np.concatenate([r.edges for r in requests])
    assert len(final.graph.edges) == len(state.graph.edges) - len(gone)
    assert all("refresh_seconds" in o.details for o in outcomes[:-1])
    assert scores(final.model, final.graph, gone).mean() < (
        scores(state.model, state.graph, gone).mean() - 0.01
    )
    reference = Retrain().unlearn(state, DeletionRequest("edges", gone))

    def recall(model, graph):
        u, i = model.final_embeddings(graph)
        exclude = np.concatenate([graph.edges_numpy(), tiny_splits.valid])
        return evaluate_ranking(u, i, tiny_splits.test, exclude)["recall@20"]

    assert recall(final.model, final.graph) >= 0.88 * recall(reference.model, reference.graph)


def test_unlearn_without_pretraining_is_a_clear_error(tiny_base, tiny_splits):
    model, graph, _ = tiny_base
    with pytest.raises(RuntimeError, match="pre-trained encoder"):
        UnlearnRec().unlearn(
            ModelState(model, graph, tiny_splits.valid, TINY_TRAIN),
            build_request("random:0.01", tiny_splits.fit, 0),
        )
