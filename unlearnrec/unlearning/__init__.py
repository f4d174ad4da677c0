"""Unlearning methods behind one protocol (``UnlearningMethod``), found by name in ``METHODS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unlearnrec.unlearning.base import ModelState, UnlearningMethod, UnlearnOutcome
from unlearnrec.unlearning.influence import InfluenceConfig, InfluenceUnlearning
from unlearnrec.unlearning.requests import DeletionRequest
from unlearnrec.unlearning.retrain import Retrain
from unlearnrec.unlearning.reverse_bpr import ReverseBPR, ReverseBPRConfig
from unlearnrec.unlearning.sharded import ShardedConfig, ShardedMethod, ShardedRecommender
from unlearnrec.unlearning.unlearnrec import UnlearnRec, UnlearnRecConfig

# name -> factory taking the method's params section (a dict from params.yaml)
METHODS: dict[str, Callable[[dict[str, Any]], UnlearningMethod]] = {
    "retrain": lambda params: Retrain(overrides=dict(params)),
    "unlearnrec": UnlearnRec.from_params,
    "influence": InfluenceUnlearning.from_params,
    "reverse_bpr": ReverseBPR.from_params,
    # exact (partition) methods: SISA, GraphEraser, RecEraser (unlearning/sharded.py)
    "sisa": lambda params: ShardedMethod.from_params("sisa", params),
    "grapheraser": lambda params: ShardedMethod.from_params("grapheraser", params),
    "receraser": lambda params: ShardedMethod.from_params("receraser", params),
}

__all__ = [
    "METHODS",
    "DeletionRequest",
    "InfluenceConfig",
    "InfluenceUnlearning",
    "ModelState",
    "Retrain",
    "ReverseBPR",
    "ReverseBPRConfig",
    "ShardedConfig",
    "ShardedMethod",
    "ShardedRecommender",
    "UnlearnOutcome",
    "UnlearnRec",
    "UnlearnRecConfig",
    "UnlearningMethod",
]
