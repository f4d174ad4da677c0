"""Unlearning methods behind one protocol (``UnlearningMethod``), found by name in ``METHODS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unlearnrec.unlearning.base import ModelState, UnlearningMethod, UnlearnOutcome
from unlearnrec.unlearning.requests import DeletionRequest
from unlearnrec.unlearning.retrain import Retrain
from unlearnrec.unlearning.unlearnrec import UnlearnRec, UnlearnRecConfig

# name -> factory taking the method's params section (a dict from params.yaml)
METHODS: dict[str, Callable[[dict[str, Any]], UnlearningMethod]] = {
    "retrain": lambda params: Retrain(overrides=dict(params)),
    "unlearnrec": UnlearnRec.from_params,
}

__all__ = [
    "METHODS",
    "DeletionRequest",
    "ModelState",
    "Retrain",
    "UnlearnOutcome",
    "UnlearnRec",
    "UnlearnRecConfig",
    "UnlearningMethod",
]
