"""Building blocks shared by the pipeline stages and the benchmark: splits, base model, requests."""

from __future__ import annotations

import numpy as np
import torch

from unlearnrec.config import DataConfig, ModelConfig, TrainConfig
from unlearnrec.data import InteractionData, read_dataset, split_validation, subsample_users
from unlearnrec.data.dataset import as_edges
from unlearnrec.data.splits import Splits
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


def make_splits(data: InteractionData, valid_fraction: float, seed: int) -> Splits:
    fit, valid = split_validation(data.train, valid_fraction, seed)
    return Splits(
        data.num_users,
        data.num_items,
        fit,
        valid,
        data.test,
        data.user_ids,
        data.item_ids,
        name=data.name,
        data_hash=data.content_hash(),
    )


def load_splits(
    config: DataConfig,
    path: str | None = None,
    subsample: int | None = None,
    min_item_degree: int = 1,
) -> tuple[InteractionData, Splits]:
    """The dataset at ``path`` (default ``config.path``) and its splits, as ``config`` says;
    with ``subsample``, first restricted to a fixed sample (seed 0) of that many users and the
    items with ``min_item_degree`` training pairs among them (``data.subsample_users``)."""
    data = read_dataset(
        path or config.path,
        min_rating=config.min_rating,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    if subsample:
        data = subsample_users(data, subsample, 0, min_item_degree)
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
