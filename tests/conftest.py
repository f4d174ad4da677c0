"""Shared fixtures: a tiny synthetic dataset and a base model trained on it once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data import generate_synthetic
from unlearnrec.data.splits import Splits
from unlearnrec.experiments.shared import make_splits, train_base

TINY_TRAIN = TrainConfig(max_epochs=80, batch_size=1024, lr=0.01, eval_every=5, patience=4, seed=0)


@pytest.fixture(scope="session")
def tiny_splits() -> Splits:
    data = generate_synthetic(
        num_users=300, num_items=200, num_groups=5, mean_interactions=20, seed=0
    )
    return make_splits(data, 0.1, 0)


@pytest.fixture(scope="session")
def tiny_base(tiny_splits):
    """(model, graph, train result) of a LightGCN trained on the tiny set."""
    torch.set_num_threads(2)
    return train_base(
        tiny_splits,
        tiny_splits.fit,
        ModelConfig(embedding_dim=32, num_layers=2),
        TINY_TRAIN,
        torch.device("cpu"),
    )


def naive_rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
