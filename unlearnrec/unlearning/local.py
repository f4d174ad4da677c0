"""UnlearnRec's unlearning step on the request's neighbourhood only (``finetune_scope="local"``):
a cost that grows with the request, not with the graph.

The default step (``unlearnrec.unlearn_request``) propagates over the whole residual graph on
every fine-tune step. This one never does:

- **Cached per base model** (``base_cache``, built once, e.g. in ``UnlearnRec.prepare``): the
  base final embeddings F and the z-score quantile maps of members and held-out pairs.
- **Local subgraph** S: the touched nodes T (endpoints of removed edges) and up to
  ``local_fanout`` residual neighbours of each, drawn from the base CSR rows (O(|T|·fanout)),
  with every edge between T and S and among T. A_SS and A'_SS are that subgraph's entries of
  the base and residual normalised adjacency (true degrees, not the subgraph's).
- **Final embeddings during the fine-tune**: F'(v) = F(v) + [P'_S E0'_S − P_S E0_S](v) on S,
  F(v) elsewhere, with P_S = Σ_l w_l A_SS^l (and P'_S with A'_SS): the removed edges, the
  renormalisation of their endpoints and the change of the trainable rows, propagated along
  paths inside S. Paths that leave S are left out: the fine-tune's losses are an estimate, the
  model it produces is exact LightGCN on the residual graph (its final embeddings, if a server
  refreshes them, are exactly ``propagation.propagate_change`` of the changed rows).
- **Trainable**: the rows of S (the touched rows receive MLP(ΔE0) as in the default), and a
  copy of the MLP; reset rows stay fixed. L_M is BPR over S's residual edges with uniform
  negatives, L_u and L_p as in the default, on gathered rows; z-scores use ``unlearn_items``
  sampled item columns, and the calibrated stop is the default's.
- The encoder pass runs on the request's own IDM (|T| rows), exactly the default's ΔE0 on T.

What still touches every edge: building the residual ``Graph`` for the outcome (by editing the
base CSR, ``propagation.residual_graph``; timed apart in ``details["residual_graph_seconds"]``),
and the new (N, d) layer-0 table (a copy).
"""

from __future__ import annotations

import copy
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from unlearnrec.config import TrainConfig
from unlearnrec.evaluation.metrics import roc_auc
from unlearnrec.graph.bipartite import Graph, edge_tensor, normalized_adjacency, propagate
from unlearnrec.graph.propagation import (
    ResidualAdjacency,
    readout_weights,
    residual_graph,
    transpose_positions,
)
from unlearnrec.models import GraphRecommender
from unlearnrec.models.shadow import shadow_rows_for
from unlearnrec.training.loop import make_generator, sample_rows
from unlearnrec.unlearning.base import Stopwatch, UnlearnOutcome
from unlearnrec.unlearning.encoder import InfluenceEncoder
from unlearnrec.unlearning.isolated import negative_push
from unlearnrec.unlearning.requests import DeletionRequest

if TYPE_CHECKING:
    from unlearnrec.unlearning.unlearnrec import UnlearnRecConfig


@dataclass
class BaseCache:
    """What the local step reads from the base model, computed once per (model, graph)."""

    graph: Graph
    version: int  # the embedding's autograd version when cached (an in-place change voids it)
    final: torch.Tensor  # (N, d) base final embeddings
    q_members: torch.Tensor | None  # (levels,) z quantiles of members, None without held-out
    q_heldout: torch.Tensor | None
    seconds: float


_CACHES: weakref.WeakKeyDictionary[GraphRecommender, BaseCache] = weakref.WeakKeyDictionary()


def _zscores(fu: torch.Tensor, fi: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """(P,) z of each pair's score (rows ``fu``·``fi``) among the user's scores of ``fc``."""
    row = fu @ fc.T
    s = (fu * fi).sum(1)
    return (s - row.mean(1)) / row.std(1).clamp_min(1e-6)


@torch.no_grad()
def base_cache(
    model: GraphRecommender,
    graph: Graph,
    heldout: np.ndarray | torch.Tensor | None,
    config: UnlearnRecConfig,
    sample: int = 8192,
    levels: int = 101,
) -> BaseCache:
    """The cache for ``model`` on ``graph`` (recomputed when either changed)."""
    cached = _CACHES.get(model)
    if cached is not None and cached.graph is graph and cached.version == model.embedding._version:
        return cached
    start = time.perf_counter()
    device = graph.device
    gen = make_generator(config.seed + 1, device)
    final = model.propagate(graph).detach()
    transpose_positions(graph)  # for building residual graphs (propagation.residual_graph)
    q_members = q_heldout = None
    if heldout is not None and len(heldout) and len(graph.edges):
        heldout = edge_tensor(heldout, device)
        nu = graph.num_users
        cols = sample_rows(graph.num_items, config.unlearn_items, gen, device) + nu
        fc = final[cols]

        def z_of(pairs: torch.Tensor) -> torch.Tensor:
            pairs = pairs[sample_rows(len(pairs), sample, gen, device)]
            return _zscores(final[pairs[:, 0]], final[pairs[:, 1] + nu], fc)

        q = torch.linspace(0.0, 1.0, levels, device=device)
        q_members = (
            torch.quantile(z_of(graph.edges), q) + torch.arange(levels, device=device) * 1e-6
        )
        q_heldout = torch.quantile(z_of(heldout), q)
    cache = BaseCache(
        graph, model.embedding._version, final, q_members, q_heldout, time.perf_counter() - start
    )
    _CACHES[model] = cache
    return cache


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    idx = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    w = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


def local_delta(
    encoder: InfluenceEncoder,
    removed: torch.Tensor,
    touched: torch.Tensor,
    final_touched: torch.Tensor,
    num_users: int,
    degrees: torch.Tensor | None,
) -> torch.Tensor:
    """ΔE0 on the touched nodes (|T|, d): ``encoder.delta`` over the request's IDM, on its |T|
    rows only (the IDM has no entry outside T×T, so the rows are the same)."""
    users = touched[touched < num_users]
    items = touched[touched >= num_users] - num_users
    lu = torch.searchsorted(users, removed[:, 0].contiguous())
    li = torch.searchsorted(items, removed[:, 1].contiguous())
    idm = normalized_adjacency(torch.stack([lu, li], 1), len(users), len(items), degrees=degrees)
    h = encoder.h0[touched]
    h_sum = h if encoder.readout == "sum" else torch.zeros_like(h)
    for _ in range(encoder.num_layers):
        h = propagate(idm, h)
        h_sum = h_sum + h
    h_bar = h if encoder.readout == "last" else h_sum
    w = final_touched * encoder.w_eta[touched]
    for _ in range(encoder.num_layers):
        w = propagate(idm, w)
    return h_bar - encoder.kappa * w


@dataclass
class _Subgraph:
    nodes: torch.Tensor  # (S,) sorted node ids; T ⊆ nodes
    adj: torch.Tensor  # (S, S) A_SS, base values
    adj_r: torch.Tensor  # (S, S) A'_SS, residual values
    pos_users: torch.Tensor  # local BPR positives: (user, item) node ids of residual S edges
    pos_items: torch.Tensor


def _local_subgraph(
    res: ResidualAdjacency, touched: torch.Tensor, fanout: int, gen: torch.Generator
) -> _Subgraph:
    device = touched.device
    nu, ni = res.nu, res.ni
    # up to ``fanout`` base neighbours of each touched node, drawn at random offsets of its row
    starts = res.crow[touched]
    counts = res.crow[touched + 1] - starts
    take = counts.clamp(max=fanout)
    owner = torch.repeat_interleave(touched, take)
    own_start = torch.repeat_interleave(starts, take)
    own_count = torch.repeat_interleave(counts, take)
    draw = torch.rand(len(owner), generator=gen, device=device)
    full = torch.repeat_interleave(counts <= fanout, take)
    rank = torch.arange(len(owner), device=device) - torch.repeat_interleave(
        torch.cumsum(take, 0) - take, take
    )
    offset = torch.where(full, rank, (draw * own_count).long().clamp(max=own_count - 1))
    nbr = res.col[own_start + offset]
    # plus every base edge among T (removed or not): the touched users' rows, kept where the
    # item is touched too
    t_users = touched[touched < nu]
    pu, pi, _, _ = res.rows(t_users)
    if len(pi):
        at = torch.searchsorted(touched, pi).clamp_(max=len(touched) - 1)
        inside = touched[at] == pi
        pu, pi = pu[inside], pi[inside]
    src = torch.cat([owner, pu])
    dst = torch.cat([nbr, pi])
    user = torch.where(src < nu, src, dst)
    item = torch.where(src < nu, dst, src)
    pair = torch.unique(user * (nu + ni) + item)
    user, item = pair // (nu + ni), pair % (nu + ni)
    nodes = torch.unique(torch.cat([touched, user, item]))
    du, dv = res.degree(user).float(), res.degree(item).float()
    a = du.pow(-0.5) * dv.pow(-0.5)
    ru, rv = res.residual_degree(user).float(), res.residual_degree(item).float()
    kept = ~res.is_removed(user, item)
    a_r = torch.where(kept, ru.clamp_min(1).pow(-0.5) * rv.clamp_min(1).pow(-0.5), a.new_zeros(()))
    lu, li = torch.searchsorted(nodes, user), torch.searchsorted(nodes, item)
    n = len(nodes)

    def sym(values: torch.Tensor) -> torch.Tensor:
        idx = torch.stack([torch.cat([lu, li]), torch.cat([li, lu])])
        coo = torch.sparse_coo_tensor(idx, torch.cat([values, values]), (n, n)).coalesce()
        return coo.to_sparse_csr()

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        adj, adj_r = sym(a), sym(a_r)
    return _Subgraph(nodes, adj, adj_r, user[kept], item[kept])


def _readout(adj: torch.Tensor, e0: torch.Tensor, weights: list[float]) -> torch.Tensor:
    out, h = e0 * weights[0], e0
    for w in weights[1:]:
        h = propagate(adj, h)
        out = out + w * h
    return out


def unlearn_local(
    model: GraphRecommender,
    graph: Graph,
    request: DeletionRequest,
    encoder: InfluenceEncoder,
    config: UnlearnRecConfig,
    train_config: TrainConfig,
    heldout: np.ndarray | torch.Tensor | None = None,
    fit_epochs: int | None = None,
) -> UnlearnOutcome:
    """``unlearn_request`` with ``finetune_scope="local"`` (module docstring)."""
    device = graph.device
    nu, ni = graph.num_users, graph.num_items
    if config.finetune_unlearn_loss not in ("score", "zscore"):
        raise ValueError("finetune_unlearn_loss must be 'score' or 'zscore'")
    cache = base_cache(model, graph, heldout, config)
    gen = make_generator(config.seed, device)
    weights = readout_weights(model)
    with Stopwatch(device) as clock:
        removed = torch.unique(edge_tensor(request.edges, device), dim=0)
        res = ResidualAdjacency(graph, removed)
        touched = res.changed  # sorted endpoints (node ids)
        e0_base = model.embedding.detach()
        degrees = res.degree(touched) if config.idm_norm == "graph" else None
        with torch.no_grad():
            delta_t = local_delta(encoder, removed, touched, cache.final[touched], nu, degrees)
        isolated_t = res.residual_degree(touched) == 0
        if not config.reset_isolated:
            isolated_t = torch.zeros_like(isolated_t)
        if config.scope == "all":
            raise ValueError("finetune_scope='local' supports scope 'touched' or 'users'")
        mask_t = torch.ones(len(touched), 1, device=device)
        if config.scope == "users":
            mask_t[touched >= nu] = 0.0
        mask_t[isolated_t] = 0.0
        e0_t = e0_base[touched].clone()
        isolated_items = "none"
        n_iso = int(isolated_t.sum())
        if n_iso:
            e0_t[isolated_t] = (
                torch.randn(n_iso, e0_t.shape[1], generator=gen, device=device) * model.init_std
            )
            isolated_items = _push_items(
                e0_t,
                touched,
                isolated_t,
                model,
                graph,
                res,
                cache,
                config,
                train_config,
                fit_epochs,
                gen,
            )
        sub = _local_subgraph(res, touched, getattr(config, "local_fanout", 32), gen)
        t_in_s = torch.searchsorted(sub.nodes, touched)
        e0_s = e0_base[sub.nodes].clone()
        e0_s[t_in_s] = e0_t
        with torch.no_grad():
            base_s = _readout(sub.adj, e0_base[sub.nodes], weights)
        final_s0 = cache.final[sub.nodes]
        encode_seconds = clock.elapsed()

        # L_u's pairs: removed edges whose endpoints both keep their rows
        iso_nodes = touched[isolated_t]

        def is_iso(x: torch.Tensor) -> torch.Tensor:
            if len(iso_nodes) == 0:
                return torch.zeros_like(x, dtype=torch.bool)
            p = torch.searchsorted(iso_nodes, x.contiguous()).clamp_(max=len(iso_nodes) - 1)
            return iso_nodes[p] == x

        keep = ~(is_iso(removed[:, 0]) | is_iso(removed[:, 1] + nu))
        pairs = removed[keep]
        pu_s = torch.searchsorted(sub.nodes, pairs[:, 0].contiguous())
        pi_s = torch.searchsorted(sub.nodes, (pairs[:, 1] + nu).contiguous())
        targets = None
        zscore = config.finetune_unlearn_loss == "zscore"
        if zscore and len(pairs):
            if cache.q_members is None:
                raise ValueError("finetune_unlearn_loss='zscore' needs the model's held-out pairs")
            cols = sample_rows(ni, config.unlearn_items, gen, device) + nu
            with torch.no_grad():
                z0 = _zscores(
                    cache.final[pairs[:, 0]], cache.final[pairs[:, 1] + nu], cache.final[cols]
                )
                q = torch.linspace(0.0, 1.0, len(cache.q_members), device=device)
                targets = _interp(_interp(z0, cache.q_members, q), q, cache.q_heldout)
        # L_p rows: touched users that keep edges
        keep_users = touched[(touched < nu) & ~isolated_t]
        # trainable: the rows of S (reset rows held), and a copy of the MLP
        frozen = torch.zeros(len(sub.nodes), dtype=torch.bool, device=device)
        frozen[t_in_s[isolated_t]] = True
        x = torch.nn.Parameter(e0_s.clone())
        mlp = copy.deepcopy(encoder.mlp).requires_grad_(True)
        lambda_u = (
            config.finetune_lambda_u if config.finetune_lambda_u is not None else config.lambda_u
        )
        opt = torch.optim.Adam([x, *mlp.parameters()], lr=config.finetune_lr)
        mask_s = torch.zeros(len(sub.nodes), 1, device=device)
        mask_s[t_in_s] = mask_t
        delta_s = torch.zeros(len(sub.nodes), delta_t.shape[1], device=device)
        delta_s[t_in_s] = delta_t

        def gather(final_s: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
            """Final embeddings of any nodes: S's from ``final_s``, the rest from the cache."""
            p = torch.searchsorted(sub.nodes, nodes).clamp_(max=len(sub.nodes) - 1)
            hit = sub.nodes[p] == nodes
            return torch.where(hit[:, None], final_s[p], cache.final[nodes])

        calibrated = config.finetune_stop == "calibrated" and zscore
        max_steps = config.finetune_steps
        if calibrated and targets is None:
            max_steps = min(max_steps, config.finetune_min_steps)
        parts: dict[str, float] = {}
        gaps: list[float] = []
        steps = 0
        for _ in range(max_steps):
            e0_tilde = x + mask_s * mlp(delta_s)
            final_s = final_s0 + _readout(sub.adj_r, e0_tilde, weights) - base_s
            # L_M: BPR over S's residual edges, uniform negatives, L2 on the batch's rows
            pick = sample_rows(len(sub.pos_users), config.finetune_batch_size, gen, device)
            users, pos = sub.pos_users[pick], sub.pos_items[pick]
            neg = torch.randint(ni, users.shape, generator=gen, device=device) + nu
            fu, fp, fn = gather(final_s, users), gather(final_s, pos), gather(final_s, neg)
            bpr = F.softplus((fu * fn).sum(1) - (fu * fp).sum(1)).mean() if len(users) else 0.0
            e_rows = torch.cat([users, pos, neg])
            pe = torch.searchsorted(sub.nodes, e_rows).clamp_(max=len(sub.nodes) - 1)
            hit = sub.nodes[pe] == e_rows
            e_vals = torch.where(hit[:, None], e0_tilde[pe], e0_base[e_rows])
            reg = 0.5 * e_vals.pow(2).sum() / max(len(users), 1)
            loss = bpr + train_config.weight_decay * reg
            parts = {
                "bpr": float(bpr.detach()) if torch.is_tensor(bpr) else bpr,
                "reg": float(reg.detach()),
            }
            if lambda_u and len(pairs):
                b = sample_rows(len(pairs), config.finetune_batch_size, gen, device)
                fu_r, fi_r = final_s[pu_s[b]], final_s[pi_s[b]]
                if targets is None:
                    l_u = F.softplus((fu_r * fi_r).sum(1)).mean()
                else:
                    cols = sample_rows(ni, config.unlearn_items, gen, device) + nu
                    z = _zscores(fu_r, fi_r, gather(final_s, cols))
                    parts["z_gap"] = roc_auc(z, targets[b]) - 0.5
                    l_u = F.relu(z - targets[b]).pow(2).mean()
                loss = loss + lambda_u * l_u
                parts["unlearn"] = float(l_u.detach())
            if config.lambda_p and len(keep_users):
                us = keep_users[sample_rows(len(keep_users), config.preserve_batch, gen, device)]
                items = sample_rows(ni, config.preserve_items, gen, device)
                q_keys = us[:, None] * ni + items[None, :]
                rk = torch.sort(removed[:, 0] * ni + removed[:, 1]).values
                at = torch.searchsorted(rk, q_keys).clamp_(max=len(rk) - 1)
                drop = rk[at] == q_keys
                new = gather(final_s, us) @ gather(final_s, items + nu).T / config.tau_p
                with torch.no_grad():
                    old = cache.final[us] @ cache.final[items + nu].T / config.tau_p
                new = torch.log_softmax(new.masked_fill(drop, -torch.inf), dim=1)
                old = torch.log_softmax(old.masked_fill(drop, -torch.inf), dim=1)
                l_p = (new - old).masked_fill(drop, 0.0).pow(2).sum(1).mean()
                loss = loss + config.lambda_p * l_p
                parts["preserve"] = float(l_p.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if bool(frozen.any()):
                with torch.no_grad():
                    x[frozen] = e0_s[frozen]
            steps += 1
            if "z_gap" in parts:
                gaps.append(round(parts["z_gap"], 4))
            if calibrated and steps >= config.finetune_min_steps and parts.get("z_gap", 1.0) <= 0.0:
                break
        with torch.no_grad():
            rows = (x + mask_s * mlp(delta_s)).detach()
            table = e0_base.clone()
            table[sub.nodes] = rows
        new_param = torch.nn.Parameter(table)
        unlearned = copy.deepcopy(model, memo={id(model.embedding): new_param})
        unlearned.embedding = new_param
        unlearned.eval()
        model_seconds = clock.elapsed()
        graph_r = residual_graph(graph, removed)
        seconds = clock.elapsed()
    return UnlearnOutcome(
        method="unlearnrec",
        model=unlearned,
        graph=graph_r,
        seconds=seconds,
        details={
            "finetune_scope": "local",
            "encode_seconds": encode_seconds,
            "finetune_seconds": model_seconds - encode_seconds,
            "model_seconds": model_seconds,
            "residual_graph_seconds": seconds - model_seconds,
            "base_cache_seconds": cache.seconds,
            "subgraph_nodes": len(sub.nodes),
            "subgraph_edges": len(sub.pos_users),
            "reset_nodes": n_iso,
            "finetune_steps_run": steps,
            "z_gaps": gaps,
            "isolated_items": isolated_items,
            "touched_nodes": len(touched),
            "last_losses": parts,
        },
    )


def _push_items(
    e0_t: torch.Tensor,
    touched: torch.Tensor,
    isolated_t: torch.Tensor,
    model: GraphRecommender,
    graph: Graph,
    res: ResidualAdjacency,
    cache: BaseCache,
    config: UnlearnRecConfig,
    train_config: TrainConfig,
    fit_epochs: int | None,
    gen: torch.Generator,
) -> str:
    """``unlearnrec._push_isolated_items`` on the touched rows, sampling residual edges from the
    base graph's (removed ones rejected)."""
    nu = model.num_users
    items = isolated_t & (touched >= nu)
    if config.isolated_items not in ("fresh", "negative"):
        raise ValueError(
            f"isolated_items must be 'fresh' or 'negative', not {config.isolated_items!r}"
        )
    residual_edges = len(graph.edges) - len(res.removed_keys)
    if config.isolated_items == "fresh" or not bool(items.any()) or residual_edges <= 0:
        return "fresh"
    shadow = shadow_rows_for(model, touched[items] - nu)
    if shadow is not None:  # as in unlearnrec._push_isolated_items
        e0_t[items] = shadow.to(e0_t.dtype)
        return "shadow rows"
    if not fit_epochs:
        return "fresh (training length unknown)"
    pick = sample_rows(len(graph.edges), config.isolated_edges, gen, e0_t.device)
    edges = graph.edges[pick]
    edges = edges[~res.is_removed(edges[:, 0], edges[:, 1] + nu)]
    users, pos = edges[:, 0], edges[:, 1] + nu
    positive_scores = (cache.final[users] * cache.final[pos]).sum(1)
    batches = -(-residual_edges // train_config.batch_size)
    e0_t[items] = negative_push(
        e0_t[items],
        cache.final[users],
        positive_scores,
        scale=model.isolated_scale(),
        num_items=model.num_items,
        batch_size=train_config.batch_size,
        lr=train_config.lr,
        weight_decay=train_config.weight_decay,
        steps=fit_epochs * batches,
        growth=config.isolated_growth,
    )
    return f"negative push over {fit_epochs} epochs"


__all__ = ["BaseCache", "base_cache", "local_delta", "unlearn_local"]
