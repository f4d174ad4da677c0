"""Training a backbone: BPR with sampled negatives plus the backbone's self-supervised term,
seeded, with early stopping on a validation split.

Pure with respect to I/O: progress goes to an optional callback; the CLI renders it.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearnrec.config import TrainConfig
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models.base import GraphRecommender
from unlearnrec.models.shadow import ShadowTrainer

EpochCallback = Callable[[dict[str, Any]], None]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) -> CUDA when present, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """What ran it, for records: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()}"


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def sample_rows(
    n: int, size: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Indices of a batch of ``size`` among ``n`` rows, drawn with replacement; all ``n`` rows, in
    order, when there are no more than ``size`` (no draw from ``generator`` then)."""
    if n <= size:
        return torch.arange(n, device=device)
    return torch.randint(n, (size,), generator=generator, device=device)


NEGATIVE_TRIES = 8  # rounds of re-drawing a negative that is one of the user's positives


def sample_negatives(
    graph: Graph, users: torch.Tensor, generator: torch.Generator, max_tries: int = NEGATIVE_TRIES
) -> torch.Tensor:
    """One uniformly drawn item per user that is not among the user's edges in ``graph``.

    Rejection sampling, vectorised; after ``max_tries`` rounds the few remaining collisions are
    kept (on real data they are vanishingly rare).
    """
    neg = torch.randint(graph.num_items, users.shape, generator=generator, device=users.device)
    for _ in range(max_tries):
        bad = graph.contains(users, neg)
        n_bad = int(bad.sum())
        if n_bad == 0:
            break
        neg[bad] = torch.randint(graph.num_items, (n_bad,), generator=generator, device=neg.device)
    return neg


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """mean softplus(s_neg - s_pos) = -mean log sigma(s_pos - s_neg); all inputs (B, d)."""
    return F.softplus((u * neg).sum(1) - (u * pos).sum(1)).mean()


def model_loss(
    model: GraphRecommender,
    graph: Graph,
    e0: torch.Tensor,
    users: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    weight_decay: float,
    views: Any,
    generator: torch.Generator,
    final: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The backbone's training loss L_M on one batch of (user, positive, negative) triples.

    ``e0``: (N, d) layer-0 embeddings (the model's own, or UnlearnRec's corrected table).
    ``final``: (N, d) final embeddings when the caller has already propagated ``e0``.
    """
    emb = model.propagate(graph, e0) if final is None else final
    nu = model.num_users
    bpr = bpr_loss(emb[users], emb[pos + nu], emb[neg + nu])
    reg = (
        0.5
        * (e0[users].pow(2).sum() + e0[pos + nu].pow(2).sum() + e0[neg + nu].pow(2).sum())
        / len(users)
    )
    total = bpr + weight_decay * reg
    parts = {"bpr": float(bpr.detach()), "reg": float(reg.detach())}
    if model.config.ssl_weight and model.name in ("sgl", "simgcl"):
        ssl = model.ssl_loss(graph, e0, users, pos, views, generator)
        total = total + model.config.ssl_weight * ssl
        parts["ssl"] = float(ssl.detach())
    return total, parts


def train_step(
    model: GraphRecommender,
    graph: Graph,
    opt: torch.optim.Optimizer,
    users: torch.Tensor,
    pos: torch.Tensor,
    *,
    weight_decay: float,
    views: Any,
    generator: torch.Generator,
    shadow: ShadowTrainer | None = None,
) -> torch.Tensor:
    """One optimiser step on a batch of ``graph``'s edges (``users``, ``pos``: (B,)), with one
    sampled negative each; returns the batch's loss, detached. ``shadow``: the model's shadow
    items, stepped on the same batch (``models/shadow.py``)."""
    neg = sample_negatives(graph, users, generator)
    final = model.propagate(graph, model.embedding) if shadow is not None else None
    loss, _ = model_loss(
        model,
        graph,
        model.embedding,
        users,
        pos,
        neg,
        weight_decay=weight_decay,
        views=views,
        generator=generator,
        final=final,
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if shadow is not None and final is not None:
        with torch.no_grad():
            user_final = final[users].detach()  # (B, d), before this step, as the batch saw it
            positive = (user_final * final[pos + model.num_users].detach()).sum(1)  # (B,)
        shadow.step(users, user_final, positive)
    return loss.detach()


def shadow_trainer(
    model: GraphRecommender, graph: Graph, config: TrainConfig
) -> ShadowTrainer | None:
    """The trainer of ``model``'s shadow items, or None when it has none or a node without edges
    reads out zero in it (SimGCL: a taken-down item scores 0 whatever its row)."""
    if model.shadow_items.shape[0] == 0 or model.isolated_scale() == 0.0:
        return None
    return ShadowTrainer(
        model,
        graph.degrees()[: graph.num_users],
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed,
        tries=NEGATIVE_TRIES + 1,  # the first draw and one per re-draw round
    )


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    seconds_to_best: float = 0.0
    epochs_run: int = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_model(
    model: GraphRecommender,
    graph: Graph,
    valid_edges: np.ndarray,
    config: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``graph`` (already on the model's device).

    Early stopping: every ``eval_every`` epochs, Recall@K (first K of ``config.topk``) on
    ``valid_edges`` with the graph's edges masked; the best weights are restored at the end.
    """
    device = graph.device
    gen = make_generator(config.seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    shadow = shadow_trainer(model, graph, config)
    key = f"recall@{config.topk[0]}"
    result = TrainResult()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_score, stale = -1.0, 0
    train_edges = graph.edges_numpy()
    _sync(device)
    start = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        views = model.make_views(graph, gen)
        perm = torch.randperm(len(graph.edges), generator=gen, device=device)
        total, batches = 0.0, 0
        for lo in range(0, len(perm), config.batch_size):
            idx = perm[lo : lo + config.batch_size]
            users, pos = graph.edges[idx, 0], graph.edges[idx, 1]
            loss = train_step(
                model,
                graph,
                opt,
                users,
                pos,
                weight_decay=config.weight_decay,
                views=views,
                generator=gen,
                shadow=shadow,
            )
            total += float(loss)
            batches += 1
        record: dict[str, Any] = {"epoch": epoch, "loss": total / max(batches, 1)}
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            model.eval()
            users_e, items_e = model.final_embeddings(graph)
            metrics = evaluate_ranking(
                users_e, items_e, valid_edges, train_edges, config.topk, config.eval_batch_size
            )
            record.update({f"valid_{k}": v for k, v in metrics.items()})
            if metrics[key] > best_score + config.min_delta:
                best_score, stale = metrics[key], 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                result.best_epoch, result.best_valid = epoch, metrics
                _sync(device)
                result.seconds_to_best = time.perf_counter() - start
            else:
                stale += 1
        _sync(device)
        record["seconds"] = time.perf_counter() - start
        result.history.append(record)
        result.epochs_run = epoch
        if on_epoch is not None:
            on_epoch(record)
        if stale >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    _sync(device)
    result.seconds = time.perf_counter() - start
    return result
