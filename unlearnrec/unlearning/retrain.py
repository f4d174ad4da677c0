"""Retrain from scratch on the residual graph: the gold reference other methods are judged by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from unlearnrec import config as cfg
from unlearnrec.models import build_model
from unlearnrec.training.loop import EpochCallback, train_model
from unlearnrec.unlearning.base import ModelState, Stopwatch, UnlearnOutcome
from unlearnrec.unlearning.requests import DeletionRequest


@dataclass
class Retrain:
    """A fresh model with the base model's config, trained on A_r with the base training config.

    ``overrides`` replaces training fields (e.g. a larger batch that reaches the base model's
    utility sooner: the comparison must be with the fastest retrain, not the slowest).
    ``seconds`` is the time until the best validation checkpoint: a retrain that knew when to stop
    would take no longer, so it is the conservative figure for speed-ups.
    """

    overrides: dict[str, Any] = field(default_factory=dict)
    on_epoch: EpochCallback | None = None
    name: str = "retrain"

    def prepare(self, state: ModelState) -> float:
        return 0.0

    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome:
        train_config = cfg.replace(state.train_config, self.overrides)
        device = state.graph.device
        with Stopwatch(device) as clock:
            graph_r = state.graph.without(request.edges)
            torch.manual_seed(train_config.seed)
            model = build_model(state.model.num_users, state.model.num_items, state.model.config)
            model.to(device)
            result = train_model(
                model, graph_r, state.valid_edges, train_config, on_epoch=self.on_epoch
            )
            setup = clock.elapsed() - result.seconds
        return UnlearnOutcome(
            method=self.name,
            model=model,
            graph=graph_r,
            seconds=setup + result.seconds_to_best,
            details={
                "total_seconds": setup + result.seconds,
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "valid": result.best_valid,
                "train_config": cfg.to_dict(train_config),
            },
        )
