"""Reverse BPR (MMRecUn, Sinha et al.): fine-tune the model on the residual graph with BPR turned
around on the forget set and the ordinary BPR on the retained set.

Per step, with scores over A_r (the model's own propagation):

    L = w_f · mean softplus(ŝ(u,i) − ŝ(u,j))  over forgotten (u, i), j a sampled negative
      + w_r · L_M(batch of A_r)               (the backbone's training loss: BPR + L2 [+ SSL])

The first term is −log σ(ŝ(u,j) − ŝ(u,i)): each forgotten item is pushed *below* an item the
user never had (drawn among items with no edge to u in the original graph, so a forgotten item is
never its own negative). The second keeps the retained interactions ranked. Adam on every
layer-0 row for ``steps`` steps; negatives and batches are drawn from a generator seeded by
``seed`` (deterministic). There is no stopping rule: the push keeps going for ``steps`` steps,
which is why the method tends to over-unlearn (forgotten pairs end below held-out ones, where
retrain leaves them near them); docs/benchmarks.md measures it.

``reset_isolated`` (off by default, the method's definition) would give nodes left without
edges a new row (``base.reset_rows``: a fresh draw for a user, a shadow row for an item), as
UnlearnRec and the influence method do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from unlearnrec.config import from_dict
from unlearnrec.training.loop import make_generator, model_loss, sample_negatives, sample_rows
from unlearnrec.unlearning.base import (
    ModelState,
    NoPreparation,
    Stopwatch,
    UnlearnOutcome,
    endpoint_mask,
    method_weight_decay,
    request_edges,
    reset_rows,
)
from unlearnrec.unlearning.requests import DeletionRequest


@dataclass(frozen=True)
class ReverseBPRConfig:
    steps: int = 20
    lr: float = 1e-3
    forget_weight: float = 1.0  # w_f
    retain_weight: float = 1.0  # w_r
    batch_size: int = 4096  # retained edges per step
    forget_batch_size: int = 4096  # forgotten edges per step (all of them when fewer)
    weight_decay: float | None = None  # None: the training config's
    reset_isolated: bool = False
    seed: int = 0


@dataclass
class ReverseBPR(NoPreparation):
    """The method behind the ``UnlearningMethod`` protocol; no offline preparation."""

    config: ReverseBPRConfig = field(default_factory=ReverseBPRConfig)
    name: str = "reverse_bpr"

    @classmethod
    def from_params(cls, values: dict[str, Any] | None) -> ReverseBPR:
        return cls(config=from_dict(ReverseBPRConfig, values))

    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome:
        cfg = self.config
        model, graph = state.model, state.graph
        device = graph.device
        nu = graph.num_users
        wd = method_weight_decay(state, cfg.weight_decay)
        gen = make_generator(cfg.seed, device)
        with Stopwatch(device) as clock:
            graph_r = graph.without(request.edges)
            forget = request_edges(request, device)
            unlearned = copy.deepcopy(model)
            unlearned.train()
            isolated = torch.zeros(graph.num_nodes, dtype=torch.bool, device=device)
            if cfg.reset_isolated and len(forget):
                isolated = endpoint_mask(graph, forget) & (graph_r.degrees() == 0)
                n_iso = int(isolated.sum())
                if n_iso:
                    with torch.no_grad():
                        unlearned.embedding[isolated] = reset_rows(model, isolated, gen)
            opt = torch.optim.Adam(unlearned.parameters(), lr=cfg.lr)
            views = unlearned.make_views(graph_r, gen)
            history: list[dict[str, float]] = []
            for _ in range(cfg.steps):
                e0 = unlearned.embedding
                final = unlearned.propagate(graph_r, e0)
                total = e0.new_zeros(())
                parts: dict[str, float] = {}
                if cfg.retain_weight and len(graph_r.edges):
                    idx = sample_rows(len(graph_r.edges), cfg.batch_size, gen, device)
                    users, pos = graph_r.edges[idx, 0], graph_r.edges[idx, 1]
                    neg = sample_negatives(graph_r, users, gen)
                    retain, _ = model_loss(
                        unlearned,
                        graph_r,
                        e0,
                        users,
                        pos,
                        neg,
                        weight_decay=wd,
                        views=views,
                        generator=gen,
                        final=final,
                    )
                    total = total + cfg.retain_weight * retain
                    parts["retain"] = float(retain.detach())
                if cfg.forget_weight and len(forget):
                    pick = forget[sample_rows(len(forget), cfg.forget_batch_size, gen, device)]
                    fu, fi = pick[:, 0], pick[:, 1]
                    fj = sample_negatives(graph, fu, gen)  # never a forgotten item of u
                    u = final[fu]
                    s_i = (u * final[fi + nu]).sum(1)
                    s_j = (u * final[fj + nu]).sum(1)
                    reverse = F.softplus(s_i - s_j).mean()
                    total = total + cfg.forget_weight * reverse
                    parts["reverse"] = float(reverse.detach())
                    parts["forgotten_below_negative"] = float((s_i < s_j).float().mean())
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                history.append(parts)
            unlearned.eval()
            seconds = clock.elapsed()
        return UnlearnOutcome(
            method=self.name,
            model=unlearned,
            graph=graph_r,
            seconds=seconds,
            details={
                "steps": cfg.steps,
                "reset_nodes": int(isolated.sum()),
                "first_losses": history[0] if history else {},
                "last_losses": history[-1] if history else {},
            },
        )
