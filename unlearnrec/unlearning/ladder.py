"""The fastest equal-utility retrain: a small ladder of training configurations, run once per
dataset (base model: the DVC pipeline's ``ladder`` stage, ``unlearnrec init``), picking the
fastest that reaches the base model's validation Recall@K within ``tolerance``.

Speed-ups must be against the fastest retrain that gets the same utility, not against the base
model's own (often conservative) configuration. Rungs: a full batch (every training edge in one
step), larger batches with a scaled learning rate, fewer validations, and the base
configuration. Each rung trains a fresh model on the graph from the same seed with early stopping;
its time is the seconds to its best validation checkpoint (``Retrain``'s measure). A rung is
abandoned once it has run longer than the fastest qualifying rung so far without qualifying
itself (it cannot win).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnrec import config as cfg
from unlearnrec.config import TrainConfig
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender, build_model
from unlearnrec.training.loop import train_model

FULL_BATCH = 0  # batch_size 0 in a rung: every training edge in one step

# Likely fastest first: a later rung is abandoned as soon as it has run longer than the fastest
# qualifying one, so the slow ones (the base configuration last) cost little once a fast one
# qualifies. The order changes what the ladder costs, never what it picks.
DEFAULT_LADDER: tuple[dict[str, Any], ...] = (
    {"batch_size": FULL_BATCH, "lr": 0.05},
    {"batch_size": 65536, "lr": 0.02},
    {"batch_size": 16384, "lr": 0.01, "eval_every": 10, "patience": 3},
    {"batch_size": 16384, "lr": 0.01},
    {},  # the base model's own configuration
)


@dataclass
class Rung:
    overrides: dict[str, Any]  # as written in the ladder
    train: dict[str, Any]  # every training field it ran with
    seconds_to_best: float
    seconds: float
    best_epoch: int
    valid: float  # best validation Recall@K
    meets: bool
    abandoned: bool


@dataclass
class LadderResult:
    key: str
    base_valid: float
    target: float
    rungs: list[Rung] = field(default_factory=list)
    chosen: int | None = None  # index of the fastest rung that meets the target

    @property
    def overrides(self) -> dict[str, Any]:
        """Training fields for ``Retrain(overrides=...)`` (empty: the base configuration)."""
        if self.chosen is None:
            return {}
        return dict(self.rungs[self.chosen].train)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "base_valid": self.base_valid,
            "target": self.target,
            "chosen": self.chosen,
            "config": self.overrides,
            "rungs": [vars(r) for r in self.rungs],
        }


class _Abandon(Exception):
    pass


def base_validation(model: GraphRecommender, graph: Graph, valid: np.ndarray, train: TrainConfig):
    """The base model's validation metrics (Recall@K over ``valid``, training edges masked)."""
    users, items = model.final_embeddings(graph)
    return evaluate_ranking(
        users, items, valid, graph.edges_numpy(), train.topk, train.eval_batch_size
    )


def resolve(overrides: dict[str, Any], train: TrainConfig, num_edges: int) -> TrainConfig:
    values = dict(overrides)
    if values.get("batch_size") == FULL_BATCH:
        values["batch_size"] = max(num_edges, 1)
    return cfg.replace(train, values)


def run_ladder(
    model: GraphRecommender,
    graph: Graph,
    valid: np.ndarray,
    train: TrainConfig,
    *,
    rungs: tuple[dict[str, Any], ...] = DEFAULT_LADDER,
    tolerance: float = 0.01,
    base_valid: float | None = None,
    log=lambda _: None,
) -> LadderResult:
    """Train a fresh copy of ``model``'s backbone on ``graph`` with each rung's configuration
    and pick the fastest that reaches (1 − ``tolerance``) × the base model's validation
    Recall@K (``base_valid``, computed from ``model`` when not given)."""
    key = f"recall@{train.topk[0]}"
    key_valid = f"valid_{key}"
    if base_valid is None:
        base_valid = base_validation(model, graph, valid, train)[key]
    result = LadderResult(key, float(base_valid), float((1 - tolerance) * base_valid))
    best_seconds = float("inf")
    for overrides in rungs:
        config = resolve(overrides, train, len(graph.edges))
        torch.manual_seed(config.seed)
        fresh = build_model(model.num_users, model.num_items, model.config).to(graph.device)
        start = time.perf_counter()
        state = {"valid": 0.0, "t_best": 0.0}

        def on_epoch(record: dict[str, Any], state=state, start=start, limit=best_seconds) -> None:
            now = time.perf_counter() - start
            if key_valid in record and record[key_valid] > state["valid"]:
                state["valid"], state["t_best"] = record[key_valid], now
            if now > limit and state["valid"] < result.target:
                raise _Abandon

        try:
            out = train_model(fresh, graph, valid, config, on_epoch=on_epoch)
            rung = Rung(
                dict(overrides),
                cfg.to_dict(config),
                out.seconds_to_best,
                out.seconds,
                out.best_epoch,
                float(out.best_valid.get(key, 0.0)),
                float(out.best_valid.get(key, 0.0)) >= result.target,
                False,
            )
        except _Abandon:
            rung = Rung(
                dict(overrides),
                cfg.to_dict(config),
                state["t_best"],
                time.perf_counter() - start,
                0,
                float(state["valid"]),
                False,
                True,
            )
        result.rungs.append(rung)
        log(
            f"ladder {overrides or 'base'}: valid {rung.valid:.4f} (target "
            f"{result.target:.4f}) in {rung.seconds_to_best:.1f}s"
            + (" abandoned" if rung.abandoned else "")
        )
        if rung.meets and rung.seconds_to_best < best_seconds:
            best_seconds = rung.seconds_to_best
            result.chosen = len(result.rungs) - 1
    return result


def recorded_choice(path: Path | None) -> dict[str, Any] | None:
    """The training fields a ladder record (``unlearnrec ladder --json``, the ``ladder`` stage's
    ``ladder.json``) chose (its ``retrain``), or None without a record. A file that is not a
    ladder record is a ``ValueError`` naming it."""
    if path is None or not Path(path).is_file():
        return None
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a ladder record ({exc})") from exc
    chosen = record.get("retrain") if isinstance(record, dict) else None
    if not isinstance(chosen, dict):
        raise ValueError(f"{path}: not a ladder record (no retrain mapping)")
    return dict(chosen)


def retrain_choice(explicit: dict[str, Any], record: Path | None) -> tuple[dict[str, Any], str]:
    """What a reference retrain overrides, and why: ``explicit`` (params' ``retrain:``) when it
    sets any field (``"params.yaml"``), else the ladder record's choice (``"ladder"``), else
    nothing (``"base"``: the base model's own configuration)."""
    if explicit:
        return dict(explicit), "params.yaml"
    chosen = recorded_choice(record)
    return (chosen, "ladder") if chosen is not None else ({}, "base")
