"""Exact unlearning by partition: SISA, GraphEraser and RecEraser over one sharded model.

The training interactions are split into K disjoint shards (``partition.py``); one sub-model (the
base model's backbone and config) is trained on each shard alone with ``training.train_model``;
an aggregation combines them. A deletion retrains, from scratch, only the shards that held a
deleted interaction, then the aggregation (trained on the residual graph with the sub-models
fixed). No sub-model's training data contains a deleted interaction afterwards: the shard
manifest (shard id -> its edges) shows it, and each shard's data hash is the sha256 of its sorted
edge array.

Scores stay a dot product of one user table and one item table, so the bench and the forgetting
probe evaluate a sharded model like any backbone (``final_embeddings``):

- mean (SISA): (1/K) Σ_k u_k·v_k = [u_1/K, ..., u_K/K]·[v_1, ..., v_K] (K·d columns);
- static weights (GraphEraser): Σ_k w_k u_k·v_k, w = softmax(learned logits), the same trick;
- attention (RecEraser, ``../shared/design/receraser.md``): p_u = Σ_k α_{k,u}(W^k u_k + b^k),
  q_v = Σ_k β_{k,v}(W^k v_k + b^k), score p_u·q_v.

A node without edges in shard k was never trained by sub-model k: its row there is set to zero
(and left out of the attention's softmax) instead of being the sub-model's random initial row.

What "exact" does not cover: the partition itself is computed once, from the base model's
embeddings (InBP, BEKM) or its graph (BLPA), which saw the deleted interactions; a deletion
removes edges from their shards and never re-partitions (as in the RecEraser paper).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearnrec import config as cfg
from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data.dataset import as_edges, edge_keys, isin_sorted, normalise_edges
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.files import atomic_write_bytes, atomic_write_text, sha256_file
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender, build_model
from unlearnrec.training.loop import make_generator, sample_negatives, train_model
from unlearnrec.unlearning import partition as part
from unlearnrec.unlearning.base import ModelState, Stopwatch, UnlearnOutcome
from unlearnrec.unlearning.requests import DeletionRequest

FORMAT = "unlearnrec.sharded/1"
SHARDED_DIR = "sharded"  # the preparation's sub-folder beside a production model
PARTITIONS = ("random", "inbp", "bekm", "blpa")
AGGREGATIONS = ("mean", "weights", "attention")


@dataclass(frozen=True)
class ShardedConfig:
    shards: int = 10  # K
    partition: str = "random"  # random (SISA) | inbp (RecEraser) | bekm | blpa (GraphEraser)
    partition_iterations: int = 50  # rounds of InBP / BEKM / BLPA at most
    # shard capacity ⌈slack·n/K⌉ (n: interactions for InBP, users for BEKM/BLPA); BLPA needs
    # room above an even split to move anyone, hence its method's default of 1.2
    partition_slack: float = 1.0
    aggregation: str = "mean"  # mean (SISA) | weights (GraphEraser) | attention (RecEraser)
    attention_size: int = 32  # k of RecEraser's attention (W_1, W_2 ∈ R^{k×d})
    aggregation_epochs: int = 20  # passes over the interactions; best validation epoch kept
    aggregation_lr: float = 0.005
    aggregation_l2: float = 1e-5  # λ of λ‖Θ‖² on the aggregation's parameters
    aggregation_batch_size: int = 4096
    # training fields of the sub-models that differ from the base model's (e.g. fewer epochs)
    shard_train: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # partition seed; shard k trains with seed train.seed + k

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1, got {self.shards}")
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, got {self.partition!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")


def shard_hash(edges: np.ndarray) -> str:
    """sha256 of a shard's sorted (E, 2) int64 edge array: what a certificate names."""
    arr = np.ascontiguousarray(normalise_edges(edges), dtype="<i8")
    return hashlib.sha256(arr.tobytes()).hexdigest()


def _state_hash(module: nn.Module) -> str:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


# -- aggregations ---------------------------------------------------------------------------------
# Each maps per-shard rows (K, n, d) and their presence (K, n) to one table per side; a score is
# the dot product of a user row and an item row. Every map is row-wise, so a batch's rows can be
# aggregated alone during training.


class MeanAggregation(nn.Module):
    """SISA: the average of the K sub-models' scores."""

    kind = "mean"

    def tables(
        self, users: torch.Tensor, items: torch.Tensor, pu: torch.Tensor, pi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = users.shape[0]
        return _concat(users / k), _concat(items)


class WeightAggregation(nn.Module):
    """GraphEraser: one learned, static weight per sub-model (softmax of K logits)."""

    kind = "weights"

    def __init__(self, k: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(k))

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, 0)

    def tables(
        self, users: torch.Tensor, items: torch.Tensor, pu: torch.Tensor, pi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _concat(users * self.weights()[:, None, None]), _concat(items)


class AttentionAggregation(nn.Module):
    """RecEraser: per-shard transfer W^k x + b^k, then user / item attention over the shards."""

    kind = "attention"

    def __init__(self, k: int, dim: int, attention_size: int):
        super().__init__()
        self.transfer_w = nn.Parameter(torch.eye(dim).repeat(k, 1, 1))  # (K, d, d), W^k = I
        self.transfer_b = nn.Parameter(torch.zeros(k, dim))  # (K, d)
        self.user_att = nn.Linear(dim, attention_size)  # W_1, b_1
        self.user_h = nn.Linear(attention_size, 1, bias=False)  # h_1
        self.item_att = nn.Linear(dim, attention_size)  # W_2, b_2
        self.item_h = nn.Linear(attention_size, 1, bias=False)  # h_2

    def _side(
        self, x: torch.Tensor, present: torch.Tensor, att: nn.Linear, h: nn.Linear
    ) -> torch.Tensor:
        tr = torch.einsum("knd,kde->kne", x, self.transfer_w) + self.transfer_b[:, None, :]
        logits = h(torch.relu(att(tr))).squeeze(-1)  # (K, n)
        # a node absent from every shard (an erased user) attends to all of them evenly
        present = present | ~present.any(0, keepdim=True)
        alpha = torch.softmax(logits.masked_fill(~present, -torch.inf), dim=0)
        return (alpha[..., None] * tr).sum(0)  # (n, d)

    def tables(
        self, users: torch.Tensor, items: torch.Tensor, pu: torch.Tensor, pi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            self._side(users, pu, self.user_att, self.user_h),
            self._side(items, pi, self.item_att, self.item_h),
        )


def _concat(x: torch.Tensor) -> torch.Tensor:
    """(K, n, d) -> (n, K·d): shard k's row in columns k·d .. (k+1)·d."""
    k, n, d = x.shape
    return x.permute(1, 0, 2).reshape(n, k * d)


def build_aggregation(config: ShardedConfig, dim: int) -> nn.Module:
    if config.aggregation == "mean":
        return MeanAggregation()
    if config.aggregation == "weights":
        return WeightAggregation(config.shards)
    return AttentionAggregation(config.shards, dim, config.attention_size)


# -- the sharded model ----------------------------------------------------------------------------


class ShardedRecommender(GraphRecommender):
    """K sub-models, each with its own shard of the interactions, and their aggregation.

    ``manifest[k]``: (E_k, 2) sorted int64 edges shard k was trained on; the shards are disjoint.
    Immutable in use: unlearning builds a new one that shares the untouched sub-models.
    """

    name = "sharded"

    def __init__(
        self,
        num_users: int,
        num_items: int,
        config: ModelConfig,
        submodels: list[GraphRecommender],
        manifest: list[np.ndarray],
        aggregation: nn.Module,
        sharded_config: ShardedConfig,
    ):
        nn.Module.__init__(self)  # no layer-0 table of its own: the sub-models hold them
        if len(submodels) != len(manifest):
            raise ValueError("one sub-model per shard")
        self.num_users, self.num_items, self.config = num_users, num_items, config
        self.submodels = nn.ModuleList(submodels)
        self.manifest = [normalise_edges(m) for m in manifest]
        self.aggregation = aggregation
        self.sharded_config = sharded_config
        self._cache: dict[str, Any] = {}

    # shard graphs and per-shard rows, built once per device (the model never changes in use)
    def shard_graphs(self, device: torch.device) -> list[Graph]:
        key = f"graphs:{device}"
        if key not in self._cache:
            self._cache[key] = [
                Graph.from_edges(m, self.num_users, self.num_items, device) for m in self.manifest
            ]
        return self._cache[key]

    @torch.no_grad()
    def shard_rows(self, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, N, d) final embeddings of every sub-model on its own shard (rows of nodes absent
        from the shard zeroed) and the (K, N) presence mask."""
        device = device or next(self.submodels.parameters()).device
        key = f"rows:{device}"
        if key not in self._cache:
            rows, present = [], []
            for model, graph in zip(self.submodels, self.shard_graphs(device), strict=True):
                mask = graph.degrees() > 0
                rows.append(model.propagate(graph) * mask[:, None])
                present.append(mask)
            self._cache[key] = (torch.stack(rows), torch.stack(present))
        return self._cache[key]

    def tables_from_rows(
        self, rows: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        nu = self.num_users
        return self.aggregation.tables(rows[:, :nu], rows[:, nu:], present[:, :nu], present[:, nu:])

    def propagate(self, graph: Graph, e0: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(
            "a sharded model has no single layer-0 table; use final_embeddings"
        )

    @torch.no_grad()
    def final_embeddings(self, graph: Graph | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The aggregated user and item tables. ``graph`` is accepted for the backbone interface;
        each sub-model propagates over its own shard (the manifest), whose union the caller's
        residual graph must be."""
        device = graph.device if graph is not None else None
        if graph is not None and len(graph.edges) != self.num_edges:
            raise ValueError(
                f"the graph has {len(graph.edges)} edges, the shards {self.num_edges}: "
                "not the graph this sharded model was trained on"
            )
        rows, present = self.shard_rows(device)
        return self.tables_from_rows(rows, present)

    @property
    def num_edges(self) -> int:
        return sum(len(m) for m in self.manifest)

    def shard_of(self, edges: np.ndarray) -> np.ndarray:
        """(E,) shard id of each pair, -1 for pairs in no shard."""
        keys = edge_keys(as_edges(edges), self.num_items)
        out = np.full(len(keys), -1, dtype=np.int64)
        for k, m in enumerate(self.manifest):
            out[isin_sorted(keys, edge_keys(m, self.num_items))] = k
        return out

    def shard_hashes(self) -> list[str]:
        return [shard_hash(m) for m in self.manifest]

    def aggregation_hash(self) -> str:
        return _state_hash(self.aggregation)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "config": cfg.to_dict(self.config),
            "sharded": asdict(self.sharded_config),
            "shard_sizes": [len(m) for m in self.manifest],
        }


# -- training -------------------------------------------------------------------------------------


def train_shard(
    shard: int,
    edges: np.ndarray,
    num_users: int,
    num_items: int,
    model_config: ModelConfig,
    valid_edges: np.ndarray,
    train_config: TrainConfig,
    device: torch.device,
) -> tuple[GraphRecommender, dict[str, Any]]:
    """A fresh sub-model trained on one shard alone (seed ``train.seed + shard``)."""
    seed = train_config.seed + shard
    config = cfg.replace(train_config, {"seed": seed})
    torch.manual_seed(seed)
    model = build_model(num_users, num_items, model_config).to(device)
    graph = Graph.from_edges(edges, num_users, num_items, device)
    if len(edges) == 0:  # every interaction of the shard erased: nothing to learn from
        model.eval()
        return model, {"shard": shard, "edges": 0, "seconds": 0.0, "best_epoch": 0}
    result = train_model(model, graph, valid_edges, config)
    return model, {
        "shard": shard,
        "edges": len(edges),
        "seconds": result.seconds,
        "seconds_to_best": result.seconds_to_best,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


def train_shards(
    shards: list[int],
    manifests: list[np.ndarray],
    num_users: int,
    num_items: int,
    model_config: ModelConfig,
    valid_edges: np.ndarray,
    train_config: TrainConfig,
    device: torch.device,
) -> tuple[list[GraphRecommender], list[dict[str, Any]]]:
    """Fresh sub-models for ``shards`` (ids), shard ``shards[j]`` trained on ``manifests[j]``
    alone, one after the other.

    (Training them in one loop over the block-diagonal union of the shard graphs gives the same
    sub-models but was no faster on ML-100K's CPU: the cost is the dense (N, d) work of every
    sub-model's steps, not the per-step overhead.)
    """
    out = [
        train_shard(s, m, num_users, num_items, model_config, valid_edges, train_config, device)
        for s, m in zip(shards, manifests, strict=True)
    ]
    return [m for m, _ in out], [d for _, d in out]


def train_aggregation(
    model: ShardedRecommender,
    graph: Graph,
    valid_edges: np.ndarray,
    config: ShardedConfig,
    train_config: TrainConfig,
) -> dict[str, Any]:
    """Fit the aggregation's parameters with BPR + λ‖Θ‖² on ``graph`` (the union of the shards),
    sub-models fixed; the epoch with the best validation Recall is kept. A mean has nothing to
    fit."""
    params = list(model.aggregation.parameters())
    if not params:
        return {"epochs": 0}
    device = graph.device
    rows, present = model.shard_rows(device)  # fixed: no gradient reaches the sub-models
    nu = model.num_users
    gen = make_generator(config.seed, device)
    opt = torch.optim.Adam(params, lr=config.aggregation_lr)
    key = f"recall@{train_config.topk[0]}"
    train_edges = graph.edges_numpy()

    def validate() -> float:
        with torch.no_grad():
            u, i = model.tables_from_rows(rows, present)
            return evaluate_ranking(
                u, i, valid_edges, train_edges, train_config.topk, train_config.eval_batch_size
            )[key]

    best, best_epoch = validate(), 0
    best_state = copy.deepcopy(model.aggregation.state_dict())
    for epoch in range(1, config.aggregation_epochs + 1):
        perm = torch.randperm(len(graph.edges), generator=gen, device=device)
        for lo in range(0, len(perm), config.aggregation_batch_size):
            idx = perm[lo : lo + config.aggregation_batch_size]
            users, pos = graph.edges[idx, 0], graph.edges[idx, 1]
            neg = sample_negatives(graph, users, gen)
            items = torch.cat([pos, neg]) + nu
            u, i = model.aggregation.tables(
                rows[:, users], rows[:, items], present[:, users], present[:, items]
            )
            ip, ineg = i[: len(pos)], i[len(pos) :]
            bpr = F.softplus((u * ineg).sum(1) - (u * ip).sum(1)).mean()
            reg = sum(p.pow(2).sum() for p in params)
            loss = bpr + config.aggregation_l2 * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = validate()
        if score > best + train_config.min_delta:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.aggregation.state_dict())
    model.aggregation.load_state_dict(best_state)
    model.aggregation.eval()
    return {"epochs": config.aggregation_epochs, "best_epoch": best_epoch, "valid": best}


def partition_edges(state: ModelState, config: ShardedConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """(E,) shard label of each edge of ``state.graph`` (in its sorted order), and what ran."""
    edges = state.graph.edges_numpy()
    k = config.shards
    info: dict[str, Any] = {"partition": config.partition}
    if config.partition == "random":
        return part.random_partition(len(edges), k, config.seed), info
    if config.partition == "blpa":
        labels, rounds = part.blpa(
            edges,
            state.graph.num_users,
            state.graph.num_items,
            k,
            iterations=config.partition_iterations,
            slack=config.partition_slack,
            seed=config.seed,
        )
        info.update(
            rounds=rounds, user_capacity=part.capacity(len(labels), k, config.partition_slack)
        )
        return labels[edges[:, 0]], info
    # embedding-based partitions: the base model's final embeddings
    users, items = (t.cpu() for t in state.model.final_embeddings(state.graph))
    if config.partition == "bekm":
        labels, rounds = part.bekm(
            users,
            k,
            iterations=config.partition_iterations,
            slack=config.partition_slack,
            seed=config.seed,
        )
        info.update(
            rounds=rounds, user_capacity=part.capacity(len(labels), k, config.partition_slack)
        )
        return labels[edges[:, 0]], info
    labels, rounds = part.inbp(
        users,
        items,
        edges,
        k,
        iterations=config.partition_iterations,
        slack=config.partition_slack,
        seed=config.seed,
    )
    info.update(rounds=rounds, capacity=part.capacity(len(edges), k, config.partition_slack))
    return labels, info


# -- the methods ----------------------------------------------------------------------------------

# sub-models train with the base model's config but stop after 2 validations without gain
# instead of the base's 6 (a shard reaches its best within the base's epochs; the 30 epochs of
# patience would cost K times over); the bench runs these defaults (docs/benchmarks.md)
SHARD_TRAIN = {"patience": 2}
DEFAULTS: dict[str, dict[str, Any]] = {
    "sisa": {"partition": "random", "aggregation": "mean"},
    "grapheraser": {"partition": "bekm", "aggregation": "weights", "partition_iterations": 30},
    "receraser": {"partition": "inbp", "aggregation": "attention", "partition_iterations": 50},
}


@dataclass
class ShardedMethod:
    """One partition method behind the ``UnlearningMethod`` protocol.

    ``prepare`` partitions the base model's graph and trains the sharded model (seconds
    returned); ``unlearn`` retrains the shards holding the request's edges, then the
    aggregation, and returns a new sharded model. Where the state's model is already sharded
    (a sharded production model, or the outcome of an earlier request), it is the one unlearned.
    """

    name: str
    config: ShardedConfig
    sharded: ShardedRecommender | None = None
    prepare_details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, name: str, values: dict[str, Any] | None = None) -> ShardedMethod:
        merged = {**DEFAULTS[name], **dict(values or {})}
        merged["shard_train"] = {**SHARD_TRAIN, **dict(merged.get("shard_train") or {})}
        return cls(name=name, config=cfg.from_dict(ShardedConfig, merged))

    def shard_train_config(self, state: ModelState) -> TrainConfig:
        return cfg.replace(state.train_config, self.config.shard_train)

    # -- preparation ----------------------------------------------------------------------------
    def prepare(self, state: ModelState) -> float:
        if isinstance(state.model, ShardedRecommender):
            self.sharded = state.model
            return 0.0
        device = state.graph.device
        started = time.perf_counter()
        with Stopwatch(device) as clock:
            labels, info = partition_edges(state, self.config)
            partition_seconds = clock.elapsed()
        edges = state.graph.edges_numpy()
        manifest = [edges[labels == k] for k in range(self.config.shards)]
        train_config = self.shard_train_config(state)
        with Stopwatch(device) as clock:
            submodels, shard_details = train_shards(
                list(range(self.config.shards)),
                manifest,
                state.graph.num_users,
                state.graph.num_items,
                state.model.config,
                state.valid_edges,
                train_config,
                device,
            )
            shard_seconds = clock.elapsed()
        torch.manual_seed(self.config.seed)
        sharded = ShardedRecommender(
            state.graph.num_users,
            state.graph.num_items,
            state.model.config,
            submodels,
            manifest,
            build_aggregation(self.config, state.model.config.embedding_dim),
            self.config,
        ).to(device)
        with Stopwatch(device) as clock:
            agg = train_aggregation(
                sharded, state.graph, state.valid_edges, self.config, train_config
            )
            aggregation_seconds = clock.elapsed()
        self.sharded = sharded
        self.prepare_details = {
            "partition_seconds": partition_seconds,
            "shard_train_seconds": shard_seconds,
            "aggregation_seconds": aggregation_seconds,
            "seconds": time.perf_counter() - started,
            "partition": info,
            "shard_sizes": [len(m) for m in manifest],
            "shards": shard_details,
            "aggregation": agg,
        }
        return self.prepare_details["seconds"]

    def _base(self, state: ModelState) -> ShardedRecommender:
        if isinstance(state.model, ShardedRecommender):
            return state.model
        if self.sharded is None:
            raise RuntimeError(f"{self.name}: call prepare(state) before unlearn")
        if self.sharded.num_edges != len(state.graph.edges):
            raise ValueError(f"{self.name}: prepared on another graph than the state's")
        return self.sharded

    # -- unlearning -----------------------------------------------------------------------------
    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome:
        base = self._base(state)
        device = state.graph.device
        removed = as_edges(request.edges)
        train_config = self.shard_train_config(state)
        with Stopwatch(device) as total:
            owner = base.shard_of(removed)
            if (owner < 0).any():
                raise ValueError(
                    f"{int((owner < 0).sum())} requested pairs are in no shard (not training edges)"
                )
            affected = sorted(int(k) for k in np.unique(owner))
            keys = np.sort(edge_keys(removed, base.num_items))
            manifest = [
                m[~isin_sorted(edge_keys(m, base.num_items), keys)] if k in affected else m
                for k, m in enumerate(base.manifest)
            ]
            submodels = list(base.submodels)
            with Stopwatch(device) as clock:
                retrained, shard_details = train_shards(
                    affected,
                    [manifest[k] for k in affected],
                    base.num_users,
                    base.num_items,
                    base.config,
                    state.valid_edges,
                    train_config,
                    device,
                )
                for k, sub in zip(affected, retrained, strict=True):
                    submodels[k] = sub
                shard_seconds = clock.elapsed()
            graph_r = state.graph.without(removed)
            torch.manual_seed(base.sharded_config.seed)  # the aggregation starts afresh
            model = ShardedRecommender(
                base.num_users,
                base.num_items,
                base.config,
                submodels,
                manifest,
                build_aggregation(base.sharded_config, base.config.embedding_dim),
                base.sharded_config,
            ).to(device)
            with Stopwatch(device) as clock:
                agg = train_aggregation(
                    model, graph_r, state.valid_edges, base.sharded_config, train_config
                )
                aggregation_seconds = clock.elapsed()
            seconds = total.elapsed()
        return UnlearnOutcome(
            method=self.name,
            model=model,
            graph=graph_r,
            seconds=seconds,
            details={
                "exact": True,
                "partition_seconds": 0.0,  # no re-partition: edges leave their shards
                "shard_train_seconds": shard_seconds,
                "aggregation_seconds": aggregation_seconds,
                "shards_retrained": affected,
                "shard_hashes": model.shard_hashes(),
                "aggregation_hash": model.aggregation_hash(),
                "shard_sizes": [len(m) for m in manifest],
                "shards": shard_details,
                "aggregation": agg,
                "prepare": self.prepare_details,
                "shard_train_config": cfg.to_dict(train_config),
            },
        )

    # -- persistence ----------------------------------------------------------------------------
    def persist(self, directory: str | Path) -> dict[str, Any]:
        """Save the prepared sharded model (``save_sharded``); returns its ``sharded.json``."""
        if self.sharded is None:
            raise RuntimeError(f"{self.name}: nothing prepared to persist")
        return save_sharded(directory, self.sharded)

    def restore(self, directory: str | Path, device: torch.device | str = "cpu") -> None:
        """Load a sharded model saved by ``persist`` as this method's preparation."""
        self.sharded = load_sharded(directory, device)

    # the platform's keep-the-preparation hooks (``base.KeepsPreparation``)
    def save_preparation(self, folder: Path) -> list[Path]:
        meta = self.persist(Path(folder) / SHARDED_DIR)
        return [Path(folder) / SHARDED_DIR / name for name in [*meta["files"], "sharded.json"]]

    def load_preparation(self, folder: Path, state: ModelState) -> bool:
        directory = Path(folder) / SHARDED_DIR
        if not (directory / "sharded.json").exists():
            return False
        self.restore(directory, state.graph.device)
        self._base(state)  # refuses a sharded model of another graph
        return True

    def refreshes_after_unlearn(self) -> bool:
        # ``unlearn`` leaves the prepared model as it was (one base, many requests in a bench);
        # the refresh is ``prepare`` on the outcome's state, which adopts the outcome's sharded
        # model without training anything
        return True


def save_sharded(directory: str | Path, model: ShardedRecommender) -> dict[str, Any]:
    """Write the sharded model to ``directory``: one checkpoint per sub-model (its shard's data
    hash inside), the manifest, the aggregation, and ``sharded.json`` last, naming every file's
    sha256 so that a save torn by a crash is refused on load. Every file is written atomically."""
    from unlearnrec.training.checkpoint import save_checkpoint, save_torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = model.shard_hashes()
    files: dict[str, str] = {}
    for k, sub in enumerate(model.submodels):
        name = f"shard-{k:03d}.pt"
        files[name] = save_checkpoint(
            directory / name, sub, data_hash=hashes[k], extra={"shard": k}
        )
    buf = io.BytesIO()
    np.savez(buf, **{f"shard_{k:03d}": m for k, m in enumerate(model.manifest)})
    atomic_write_bytes(directory / "manifest.npz", buf.getvalue())
    files["manifest.npz"] = hashlib.sha256(buf.getvalue()).hexdigest()
    files["aggregation.pt"] = save_torch(
        directory / "aggregation.pt",
        {k: v.detach().cpu() for k, v in model.aggregation.state_dict().items()},
    )
    meta = {
        "format": FORMAT,
        "model": model.describe(),
        "shard_hashes": hashes,
        "aggregation_hash": model.aggregation_hash(),
        "files": files,
    }
    atomic_write_text(directory / "sharded.json", json.dumps(meta, indent=2, sort_keys=True))
    return meta


def load_sharded(directory: str | Path, device: torch.device | str = "cpu") -> ShardedRecommender:
    """The sharded model saved by ``save_sharded``; checks every file's sha256 and every
    shard's data hash against the manifest."""
    from unlearnrec.training.checkpoint import load_checkpoint

    directory = Path(directory)
    meta = json.loads((directory / "sharded.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory}: not a sharded model (format {meta.get('format')!r})")
    for name, digest in meta["files"].items():
        if sha256_file(directory / name) != digest:
            raise ValueError(f"{directory / name}: sha256 differs from sharded.json (torn save?)")
    desc = meta["model"]
    sharded_config = cfg.from_dict(ShardedConfig, desc["sharded"])
    with np.load(directory / "manifest.npz", allow_pickle=False) as z:
        manifest = [z[f"shard_{k:03d}"] for k in range(sharded_config.shards)]
    submodels = []
    for k in range(sharded_config.shards):
        ckpt = load_checkpoint(directory / f"shard-{k:03d}.pt", device)
        if ckpt.meta["data_hash"] != shard_hash(manifest[k]):
            raise ValueError(f"shard {k}: checkpoint data hash differs from the manifest's")
        submodels.append(ckpt.model)
    config = cfg.from_dict(ModelConfig, desc["config"])
    aggregation = build_aggregation(sharded_config, config.embedding_dim)
    aggregation.load_state_dict(
        torch.load(directory / "aggregation.pt", map_location="cpu", weights_only=True)
    )
    model = ShardedRecommender(
        desc["num_users"],
        desc["num_items"],
        config,
        submodels,
        manifest,
        aggregation,
        sharded_config,
    )
    return model.to(device).eval()
