"""SISA, GraphEraser and RecEraser on a tiny graph: exact shards, only affected shards retrained,
forgotten pairs' scores fall, utility near retrain's, a sharded model saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.data.dataset import edge_keys, normalise_edges
from unlearnrec.evaluation.forgetting import scores
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.unlearning import METHODS, ModelState, Retrain
from unlearnrec.unlearning.requests import DeletionRequest, user_level
from unlearnrec.unlearning.sharded import (
    ShardedMethod,
    ShardedRecommender,
    load_sharded,
    save_sharded,
    shard_hash,
)

from ...conftest import TINY_TRAIN

NAMES = ("sisa", "grapheraser", "receraser")
PARAMS = {
    "shards": 4,
    "partition_iterations": 20,
    "aggregation_epochs": 20,
    "aggregation_batch_size": 1024,
    "shard_train": {"max_epochs": 30, "patience": 2},
}
# Utility bound: K = 4 shards of a 4.4k-interaction graph, each sub-model seeing a quarter of it
# and trained for at most 30 epochs; the aggregated model keeps at least this share of retrain's
# Recall@20 (RecEraser's attention needs its 20 aggregation epochs: after 5 it had 0.72)
MIN_RECALL_RATIO = 0.75


def _keys(edges: np.ndarray, num_items: int) -> set[int]:
    return set(edge_keys(normalise_edges(edges), num_items).tolist())


def _recall(model, graph, splits) -> float:
    users, items = model.final_embeddings(graph)
    exclude = np.concatenate([graph.edges_numpy(), splits.valid])
    return evaluate_ranking(users, items, splits.test, exclude)["recall@20"]


@pytest.fixture(scope="module")
def state(tiny_base, tiny_splits):
    model, graph, result = tiny_base
    return ModelState(model, graph, tiny_splits.valid, TINY_TRAIN, result.best_epoch)


@pytest.fixture(scope="module")
def request_(tiny_splits):
    """Every interaction of four users plus nothing else: a user-level erasure."""
    return user_level(tiny_splits.fit, 4, np.random.default_rng(0))


@pytest.fixture(scope="module")
def runs(state, request_):
    """name -> (method after prepare, a copy of its prepared model, outcome on ``request_``)."""
    out = {}
    for name in NAMES:
        method = METHODS[name](PARAMS)
        method.prepare(state)
        before = method.sharded
        out[name] = (method, before, method.unlearn(state, request_))
    return out


@pytest.fixture(scope="module")
def retrained(state, request_):
    return Retrain().unlearn(state, request_)


def test_methods_are_registered_with_their_partition_and_aggregation():
    kinds = {name: METHODS[name]({}).config for name in NAMES}
    assert (kinds["sisa"].partition, kinds["sisa"].aggregation) == ("random", "mean")
    assert (kinds["grapheraser"].partition, kinds["grapheraser"].aggregation) == (
        "bekm",
        "weights",
    )
    assert (kinds["receraser"].partition, kinds["receraser"].aggregation) == ("inbp", "attention")
    assert kinds["receraser"].partition_iterations == 50 and kinds["receraser"].attention_size == 32
    assert kinds["sisa"].shards == 10
    assert METHODS["grapheraser"]({"partition": "blpa"}).config.partition == "blpa"
    with pytest.raises(ValueError):
        METHODS["sisa"]({"no_such_key": 1})


@pytest.mark.parametrize("name", NAMES)
def test_prepared_shards_hold_every_training_edge_exactly_once(name, runs, state):
    _, before, _ = runs[name]
    ni = state.graph.num_items
    all_keys = np.concatenate([edge_keys(m, ni) for m in before.manifest])
    assert len(all_keys) == len(np.unique(all_keys)) == len(state.graph.edges)
    assert set(all_keys.tolist()) == _keys(state.graph.edges_numpy(), ni)
    assert before.shard_hashes() == [shard_hash(m) for m in before.manifest]
    if name != "grapheraser":  # interaction partitions: capacity ⌈E/K⌉
        assert max(len(m) for m in before.manifest) <= -(-len(state.graph.edges) // 4)


@pytest.mark.parametrize("name", NAMES)
def test_after_unlearning_no_shard_holds_a_removed_edge(name, runs, request_, state):
    """The exactness claim, from the manifests: removed edges are in no shard's training data,
    every remaining edge is in exactly one, and each sub-model's graph is its manifest."""
    _, _, outcome = runs[name]
    model = outcome.model
    ni = state.graph.num_items
    removed = _keys(request_.edges, ni)
    seen: list[int] = []
    for m in model.manifest:
        keys = edge_keys(m, ni).tolist()
        assert not removed & set(keys)
        seen += keys
    assert len(seen) == len(set(seen))
    assert set(seen) == _keys(outcome.graph.edges_numpy(), ni)
    assert set(seen) == _keys(state.graph.edges_numpy(), ni) - removed
    for m, graph in zip(model.manifest, model.shard_graphs(torch.device("cpu")), strict=True):
        assert np.array_equal(graph.edges_numpy(), m)
    assert outcome.details["shard_hashes"] == [shard_hash(m) for m in model.manifest]
    assert outcome.details["exact"] is True


@pytest.mark.parametrize("name", NAMES)
def test_only_the_shards_holding_removed_edges_are_retrained(name, runs, request_):
    method, before, outcome = runs[name]
    owners = sorted(set(before.shard_of(request_.edges).tolist()))
    assert outcome.details["shards_retrained"] == owners
    for k in range(4):
        same = outcome.model.submodels[k] is before.submodels[k]
        assert same == (k not in owners)
        if k not in owners:
            assert np.array_equal(outcome.model.manifest[k], before.manifest[k])
    assert method.sharded is before  # the prepared model is left for the next request
    if name == "grapheraser":  # users are whole in one shard: 4 users, at most 4 shards
        assert len(owners) <= 4
    for key in ("partition_seconds", "shard_train_seconds", "aggregation_seconds"):
        assert outcome.details[key] >= 0


def test_one_edge_retrains_one_shard(runs, state):
    method, before, _ = runs["sisa"]
    edge = before.manifest[2][:1]
    outcome = method.unlearn(state, DeletionRequest("edges", edge))
    assert outcome.details["shards_retrained"] == [2]
    assert [len(m) for m in outcome.model.manifest] == [
        len(m) - (k == 2) for k, m in enumerate(before.manifest)
    ]


@pytest.mark.parametrize("name", NAMES)
def test_forgotten_edges_score_lower_after_unlearning(name, runs, request_, state):
    _, before, outcome = runs[name]
    s_before = scores(before, state.graph, request_.edges).mean()
    s_after = scores(outcome.model, outcome.graph, request_.edges).mean()
    assert s_after < s_before


@pytest.mark.parametrize("name", NAMES)
def test_utility_within_the_stated_bound_of_retrain(name, runs, retrained, tiny_splits):
    _, _, outcome = runs[name]
    ours = _recall(outcome.model, outcome.graph, tiny_splits)
    ref = _recall(retrained.model, retrained.graph, tiny_splits)
    assert ours >= MIN_RECALL_RATIO * ref, (name, ours, ref)


def test_sisa_tables_are_the_average_of_the_shards_scores(runs, state):
    """The concatenated tables' dot product is exactly (1/K) Σ_k u_k·v_k."""
    _, before, _ = runs["sisa"]
    users, items = before.final_embeddings(state.graph)
    nu = before.num_users
    direct = torch.zeros(nu, before.num_items)
    for model, graph in zip(
        before.submodels, before.shard_graphs(torch.device("cpu")), strict=True
    ):
        with torch.no_grad():
            emb = model.propagate(graph) * (graph.degrees() > 0)[:, None]
        direct += emb[:nu] @ emb[nu:].T / 4
    assert torch.allclose(users @ items.T, direct, atol=1e-5)


def test_grapheraser_puts_each_user_in_one_shard(runs):
    _, before, _ = runs["grapheraser"]
    owners = [set(m[:, 0].tolist()) for m in before.manifest]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not owners[a] & owners[b]


def test_receraser_attention_weights_sum_to_one_over_present_shards(runs):
    _, before, _ = runs["receraser"]
    rows, present = before.shard_rows()
    for k, m in enumerate(before.manifest):  # a node is present where its shard has its edges
        users = np.zeros(before.num_users, dtype=bool)
        users[m[:, 0]] = True
        assert np.array_equal(present[k, : before.num_users].numpy(), users)
        assert (rows[k, : before.num_users][~torch.as_tensor(users)] == 0).all()
    agg = before.aggregation
    assert agg.transfer_w.shape == (4, 32, 32) and agg.user_att.out_features == 32
    # a row's aggregate is a convex mix of its transferred rows: check on one user with fake rows
    x = torch.randn(4, 1, 32)
    tr = torch.einsum("knd,kde->kne", x, agg.transfer_w) + agg.transfer_b[:, None, :]
    only = torch.tensor([[False], [True], [False], [False]])
    with torch.no_grad():
        out = agg._side(x, only, agg.user_att, agg.user_h)
    assert torch.allclose(out, tr[1], atol=1e-5)  # all attention on the one present shard


def test_sequential_requests_unlearn_from_the_sharded_outcome(runs, state, request_):
    method, _, outcome = runs["receraser"]
    nxt = outcome.as_state(state)
    assert method.prepare(nxt) == 0.0  # a sharded model is its own preparation
    edge = outcome.model.manifest[0][:2]
    second = method.unlearn(nxt, DeletionRequest("edges", edge))
    assert second.details["shards_retrained"] == [0]
    assert len(second.graph.edges) == len(outcome.graph.edges) - 2
    with pytest.raises(ValueError, match="no shard"):
        method.unlearn(nxt, DeletionRequest("edges", request_.edges[:1]))


def test_save_and_load_round_trip(runs, state, tmp_path):
    _, _, outcome = runs["receraser"]
    model = outcome.model
    meta = save_sharded(tmp_path / "m", model)
    loaded = load_sharded(tmp_path / "m")
    assert isinstance(loaded, ShardedRecommender)
    assert loaded.shard_hashes() == model.shard_hashes() == meta["shard_hashes"]
    assert loaded.aggregation_hash() == model.aggregation_hash()
    for a, b in zip(
        loaded.final_embeddings(outcome.graph), model.final_embeddings(outcome.graph), strict=True
    ):
        assert torch.equal(a, b)
    # a torn or altered file is refused
    path = tmp_path / "m" / "shard-001.pt"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="sha256"):
        load_sharded(tmp_path / "m")


def test_method_keeps_its_preparation_for_the_platform(runs, state, request_, tmp_path):
    method, _, outcome = runs["sisa"]
    written = method.save_preparation(tmp_path)
    assert all(p.exists() for p in written) and len(written) == 4 + 3
    fresh = ShardedMethod.from_params("sisa", PARAMS)
    assert fresh.load_preparation(tmp_path / "nothing", state) is False
    assert fresh.load_preparation(tmp_path, state) is True
    again = fresh.unlearn(state, request_)
    assert again.details["shards_retrained"] == outcome.details["shards_retrained"]
    assert again.details["shard_hashes"] == outcome.details["shard_hashes"]
    # a preparation of another graph is refused
    small = ModelState(state.model, outcome.graph, state.valid_edges, state.train_config)
    with pytest.raises(ValueError, match="another graph"):
        fresh.load_preparation(tmp_path, small)
