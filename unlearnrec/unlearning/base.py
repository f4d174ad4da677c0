"""What unlearning methods share: the state they start from and the outcome they return."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from unlearnrec.config import TrainConfig
from unlearnrec.graph import Graph
from unlearnrec.models import GraphRecommender
from unlearnrec.unlearning.requests import DeletionRequest


@dataclass
class ModelState:
    """A model in production and the training graph it was fitted on."""

    model: GraphRecommender
    graph: Graph
    valid_edges: np.ndarray  # (V, 2) validation pairs used for early stopping
    train_config: TrainConfig
    # epochs the model's training ran to its best checkpoint (what a retrain takes); None when
    # unknown. UnlearnRec replays that many epochs of negative sampling for taken-down items.
    fit_epochs: int | None = None


@dataclass
class UnlearnOutcome:
    """The unlearned model, its (residual) training graph and the seconds the step took."""

    method: str
    model: GraphRecommender
    graph: Graph
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_state(self, before: ModelState) -> ModelState:
        """The outcome as the base of the next request (sequential unlearning)."""
        return ModelState(
            self.model, self.graph, before.valid_edges, before.train_config, before.fit_epochs
        )


class UnlearningMethod(Protocol):
    name: str

    def prepare(self, state: ModelState) -> float:
        """Offline work done once per base model (e.g. pre-training); returns its seconds."""
        ...

    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome: ...


class Stopwatch:
    """Wall-clock seconds that wait for queued GPU work, so CUDA timings are honest."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> Stopwatch:
        self._sync()
        self.start = time.perf_counter()
        return self

    def elapsed(self) -> float:
        self._sync()
        return time.perf_counter() - self.start

    def __exit__(self, *exc: object) -> None:
        pass
