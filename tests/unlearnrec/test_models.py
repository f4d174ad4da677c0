"""Backbones: one interface, graph passed in, training lowers the loss and ranks held-out items."""

from __future__ import annotations

import pytest
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.experiments.shared import train_base
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_backbone_learns_on_a_tiny_graph(name, tiny_splits):
    """Every backbone trains with BPR (+ its SSL term) and beats a random ranking clearly."""
    cfg = TrainConfig(max_epochs=40, batch_size=1024, lr=0.01, eval_every=5, patience=3)
    # On a 200-item graph the contrastive terms need a small weight, or their uniformity
    # pressure flattens the ranking (seen at the default 0.1).
    config = ModelConfig(name=name, embedding_dim=32, num_layers=2, ssl_weight=0.02)
    model, graph, result = train_base(
        tiny_splits, tiny_splits.fit, config, cfg, torch.device("cpu")
    )
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]
    torch.manual_seed(0)
    untrained = build_model(graph.num_users, graph.num_items, model.config)
    users, items = untrained.final_embeddings(graph)
    chance = evaluate_ranking(users, items, tiny_splits.valid, tiny_splits.fit)["recall@20"]
    # Propagating random embeddings already ranks well on a graph; training must add to it.
    assert result.best_valid["recall@20"] > chance + 0.1
    assert model.name == name


def test_the_model_owns_embeddings_only_and_takes_the_graph_per_call(tiny_splits):
    """The same weights on a smaller graph give different final embeddings (no cached graph)."""
    torch.manual_seed(0)
    model = build_model(tiny_splits.num_users, tiny_splits.num_items, ModelConfig())
    g = Graph.from_edges(tiny_splits.fit, tiny_splits.num_users, tiny_splits.num_items)
    smaller = g.without(tiny_splits.fit[:50])
    full, part = model.propagate(g), model.propagate(smaller)
    assert full.shape == (tiny_splits.num_users + tiny_splits.num_items, 64)
    assert not torch.allclose(full, part)
    assert torch.allclose(model.propagate(g, model.embedding * 0), torch.zeros_like(full))


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model"):
        build_model(3, 3, ModelConfig(name="gcn-xl"))


def test_initial_scale_is_the_backbones_unless_configured():
    """SimGCL starts from N(0, 0.01^2) (its noise views drown larger rows); others N(0, 0.1^2)."""
    torch.manual_seed(0)
    for name, std in (("lightgcn", 0.1), ("sgl", 0.1), ("mf", 0.1), ("simgcl", 0.01)):
        model = build_model(300, 200, ModelConfig(name=name, embedding_dim=32))
        assert model.init_std == std
        assert model.embedding.std().item() == pytest.approx(std, rel=0.05)
    pinned = build_model(300, 200, ModelConfig(name="simgcl", embedding_dim=32, init_std=0.1))
    assert pinned.embedding.std().item() == pytest.approx(0.1, rel=0.05)
