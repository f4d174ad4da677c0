"""The retrain ladder picks the fastest configuration that meets its utility bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data import generate_synthetic
from unlearnrec.experiments.shared import make_splits, train_base
from unlearnrec.unlearning import Retrain
from unlearnrec.unlearning.base import ModelState
from unlearnrec.unlearning.ladder import FULL_BATCH, base_validation, run_ladder
from unlearnrec.unlearning.requests import DeletionRequest

SMALL_TRAIN = TrainConfig(max_epochs=40, batch_size=256, lr=0.01, eval_every=2, patience=3)


@pytest.fixture(scope="module")
def small():
    data = generate_synthetic(num_users=120, num_items=80, num_groups=4, mean_interactions=12)
    splits = make_splits(data, 0.1, 0)
    model, graph, _ = train_base(
        splits, splits.fit, ModelConfig(embedding_dim=16, num_layers=1), SMALL_TRAIN, "cpu"
    )
    return model, graph, splits


def test_ladder_picks_a_configuration_that_meets_its_bound(small):
    model, graph, splits = small
    rungs = (
        {},
        {"batch_size": 1024, "lr": 0.03},
        {"batch_size": FULL_BATCH, "lr": 0.05},
        {"max_epochs": 1, "eval_every": 1, "lr": 1e-5},  # cannot reach the base model
    )
    result = run_ladder(model, graph, splits.valid, SMALL_TRAIN, rungs=rungs)
    assert result.target == pytest.approx(0.99 * result.base_valid)
    assert not result.rungs[3].meets
    assert result.rungs[2].train["batch_size"] == len(graph.edges)
    assert result.chosen is not None
    chosen = result.rungs[result.chosen]
    assert chosen.meets and chosen.valid >= result.target
    # the fastest of the rungs that meet the bound
    assert chosen.seconds_to_best == min(r.seconds_to_best for r in result.rungs if r.meets)
    # given to Retrain, the chosen configuration runs with exactly those fields and meets the
    # bound again (same seed, same graph)
    state = ModelState(model, graph, splits.valid, SMALL_TRAIN)
    torch.manual_seed(0)
    out = Retrain(overrides=result.overrides).unlearn(
        state, DeletionRequest("edges", np.zeros((0, 2)))
    )
    assert out.details["train_config"] == chosen.train
    assert base_validation(out.model, graph, splits.valid, SMALL_TRAIN)[result.key] >= result.target


def test_a_ladder_with_no_rung_meeting_the_bound_keeps_the_base_configuration(small):
    model, graph, splits = small
    result = run_ladder(
        model, graph, splits.valid, SMALL_TRAIN, rungs=({"max_epochs": 1, "lr": 1e-5},)
    )
    assert result.chosen is None and result.overrides == {}
