"""What unlearning methods share: the state they start from and the outcome they return."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from unlearnrec.config import TrainConfig
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender
from unlearnrec.models.shadow import shadow_rows_for
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


@runtime_checkable
class KeepsPreparation(Protocol):
    """A method whose ``prepare`` work outlives the process (UnlearnRec's pre-trained encoder, a
    sharded model's sub-models and manifests). The platform keeps it in the production model's
    folder, beside ``model.pt``, and restores it before the next request instead of preparing
    again; methods without it (Retrain) prepare from scratch each time."""

    name: str

    def save_preparation(self, folder: Path) -> list[Path]:
        """Write the preparation into ``folder`` (atomically, file by file); returns the paths
        written, so the caller can hash and purge them."""
        ...

    def load_preparation(self, folder: Path, state: ModelState) -> bool:
        """Read the preparation that ``save_preparation`` left in ``folder`` and make the method
        ready to unlearn from ``state``; False when the folder holds none (then: ``prepare``)."""
        ...

    def refreshes_after_unlearn(self) -> bool:
        """Whether the preparation is redone on the new model after a request (offline work,
        timed apart). False for methods whose ``unlearn`` updates it itself."""
        ...


class NoPreparation:
    """Base of the methods without offline work: their ``prepare`` costs nothing."""

    def prepare(self, state: ModelState) -> float:
        return 0.0


def method_weight_decay(state: ModelState, override: float | None) -> float:
    """The L2 weight of a method's loss: its own setting, else the training config's."""
    return state.train_config.weight_decay if override is None else override


def request_edges(request: DeletionRequest, device: torch.device) -> torch.Tensor:
    """(R, 2) long: the request's (user, item) pairs on ``device``."""
    edges = torch.as_tensor(np.asarray(request.edges), dtype=torch.long, device=device)
    return edges.reshape(-1, 2)


def endpoint_mask(graph: Graph, edges: torch.Tensor) -> torch.Tensor:
    """(N,) bool over ``graph``'s nodes: the users and items of ``edges`` (R, 2)."""
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool, device=edges.device)
    mask[edges[:, 0]] = True
    mask[edges[:, 1] + graph.num_users] = True
    return mask


def fresh_rows(
    model: GraphRecommender, count: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(count, d) layer-0 rows drawn as the model's initialisation draws them: what retrain gives
    a node that a request leaves without edges."""
    dim = model.embedding.shape[1]
    return torch.randn(count, dim, generator=generator, device=device) * model.init_std


def reset_rows(
    model: GraphRecommender, isolated: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """(n, d) layer-0 rows for the n nodes of the (N,) bool mask ``isolated`` (left without edges
    by a request), in node order: where retrain leaves them. A user gets a fresh draw; an item
    gets one of the model's shadow rows (``models/shadow.py``: trained as an item nobody
    interacted with, as retrain trains it), or a fresh draw when the model has none."""
    nodes = torch.nonzero(isolated).flatten()
    rows = fresh_rows(model, len(nodes), generator, isolated.device)
    items = nodes >= model.num_users
    shadow = shadow_rows_for(model, nodes[items] - model.num_users) if bool(items.any()) else None
    if shadow is not None:
        rows[items] = shadow.to(rows.dtype)
    return rows


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
