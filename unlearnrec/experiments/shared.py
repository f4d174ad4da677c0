"""Building blocks shared by the pipeline stages and the benchmark: splits, base model, requests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnrec.config import DataConfig, ModelConfig, TrainConfig
from unlearnrec.data import InteractionData, read_dataset, split_validation
from unlearnrec.data.dataset import as_edges
from unlearnrec.files import atomic_write_bytes
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender, build_model
from unlearnrec.training.loop import EpochCallback, TrainResult, train_model
from unlearnrec.unlearning.requests import (
    DeletionRequest,
    item_level,
    least_related_edges,
    mixed,
    parse_mixed,
    parse_spec,
    random_edges,
    user_level,
)


@dataclass(frozen=True)
class Splits:
    """Training split into fit (the model's graph) and valid (early stopping), plus test.

    All arrays are (E, 2) int64 (user, item) pairs.
    """

    name: str
    num_users: int
    num_items: int
    fit: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    data_hash: str

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "fit_edges": len(self.fit),
            "valid_edges": len(self.valid),
            "test_edges": len(self.test),
            "data_hash": self.data_hash,
        }

    def save(self, path: str | Path) -> None:
        buf = io.BytesIO()
        np.savez(
            buf,
            fit=self.fit,
            valid=self.valid,
            test=self.test,
            meta=np.array([self.name, str(self.num_users), str(self.num_items), self.data_hash]),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        with np.load(Path(path), allow_pickle=False) as z:
            name, nu, ni, h = (str(x) for x in z["meta"])
            return cls(name, int(nu), int(ni), z["fit"], z["valid"], z["test"], h)


def make_splits(data: InteractionData, valid_fraction: float, seed: int) -> Splits:
    fit, valid = split_validation(data.train, valid_fraction, seed)
    return Splits(
        data.name, data.num_users, data.num_items, fit, valid, data.test, data.content_hash()
    )


def load_splits(config: DataConfig, path: str | None = None) -> tuple[InteractionData, Splits]:
    data = read_dataset(
        path or config.path,
        min_rating=config.min_rating,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    return data, make_splits(data, config.valid_fraction, config.seed)


def train_base(
    splits: Splits,
    fit_edges: np.ndarray,
    model_config: ModelConfig,
    train_config: TrainConfig,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
) -> tuple[GraphRecommender, Graph, TrainResult]:
    """A backbone trained on ``fit_edges`` with early stopping on ``splits.valid``."""
    graph = Graph.from_edges(fit_edges, splits.num_users, splits.num_items, device)
    torch.manual_seed(train_config.seed)
    model = build_model(splits.num_users, splits.num_items, model_config).to(device)
    result = train_model(model, graph, splits.valid, train_config, on_epoch=on_epoch)
    return model, graph, result


def build_request(
    spec: str,
    fit: np.ndarray,
    seed: int,
    clean_model: tuple[GraphRecommender, Graph] | None = None,
    known: np.ndarray | None = None,
) -> DeletionRequest:
    """A request from a spec string. ``noise`` needs a model trained on the clean graph, whose
    least-related pairs become the injected edges (the caller trains on fit + request.edges)."""
    kind, number = parse_spec(spec)
    rng = np.random.default_rng(seed)
    if kind == "random":
        return random_edges(fit, number, rng)
    if kind == "users":
        return user_level(fit, int(number), rng)
    if kind == "items":
        return item_level(fit, int(number), rng)
    if kind == "mixed":
        return mixed(fit, *parse_mixed(spec), rng)
    if clean_model is None:
        raise ValueError("noise requests need a model trained on the clean graph")
    model, graph = clean_model
    users, items = model.final_embeddings(graph)
    known = fit if known is None else known
    return DeletionRequest("noise", as_edges(least_related_edges(users, items, known, number, rng)))
