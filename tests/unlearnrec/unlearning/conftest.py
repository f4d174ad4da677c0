"""Fixtures of the unlearning methods' tests: a random request on the tiny set and retrain's
answer to it, the reference the methods are held to."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.experiments.shared import build_request
from unlearnrec.unlearning import ModelState, Retrain, UnlearnOutcome
from unlearnrec.unlearning.requests import DeletionRequest

from ...conftest import TINY_TRAIN


@pytest.fixture(scope="module")
def random_case(tiny_base, tiny_splits) -> tuple[ModelState, DeletionRequest, UnlearnOutcome]:
    """(state, request, retrain's outcome): 5% of the tiny set's training edges, seed 0."""
    model, graph, result = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN, result.best_epoch)
    request = build_request("random:0.05", tiny_splits.fit, 0)
    return state, request, Retrain().unlearn(state, request)


def recall_at_20(outcome: UnlearnOutcome, splits) -> float:
    """Test Recall@20 of an outcome's model, its training graph and the validation pairs masked."""
    users, items = outcome.model.final_embeddings(outcome.graph)
    exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
    return evaluate_ranking(users, items, splits.test, exclude, (20,))["recall@20"]
