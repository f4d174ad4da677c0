"""Checkpoints round-trip and describe themselves."""

from __future__ import annotations

import torch

from unlearnrec.config import ModelConfig
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import build_model
from unlearnrec.training.checkpoint import load_checkpoint, save_checkpoint


def test_checkpoint_round_trip_restores_weights_and_metadata(tmp_path, tiny_splits):
    """A saved model reloads bit-identical, with config, data hash, code version and metrics."""
    torch.manual_seed(0)
    model = build_model(
        tiny_splits.num_users,
        tiny_splits.num_items,
        ModelConfig(name="sgl", embedding_dim=16, num_layers=2),
    )
    path = tmp_path / "m.pt"
    digest = save_checkpoint(
        path,
        model,
        train_config={"lr": 0.01},
        data_hash=tiny_splits.data_hash,
        metrics={"recall@20": 0.5},
    )
    assert len(digest) == 64
    ckpt = load_checkpoint(path)
    assert ckpt.model.name == "sgl" and ckpt.model.config == model.config
    assert torch.equal(ckpt.model.embedding, model.embedding)
    assert ckpt.meta["data_hash"] == tiny_splits.data_hash
    assert ckpt.meta["metrics"] == {"recall@20": 0.5}
    assert ckpt.meta["train_config"] == {"lr": 0.01}
    assert ckpt.meta["code_version"].startswith("0.1.0")
    g = Graph.from_edges(tiny_splits.fit, tiny_splits.num_users, tiny_splits.num_items)
    assert torch.equal(ckpt.model.propagate(g), model.propagate(g))
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
