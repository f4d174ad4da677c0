"""Forgetting removed edges by the smallest change of each touched user's ranking.

For a removed pair (u, i) the fine-tune's target is a score: the per-user z-score its pair should
come down to (``unlearnrec.zscore_targets``: where held-out pairs sit), i.e. ``mean_u + z·std_u``
over the user's scores of all items. This moves each touched user's final embedding u by the
change Δ that meets every such target of the user and changes the user's scores of all items the
least: min Δᵀ Σ Δ with Σ = IᵀI / n (the item embeddings' second moment, so Δᵀ Σ Δ is the mean
squared change of the user's scores) subject to I_R (u + Δ) ≤ t, solved in closed form,
Δ = Σ⁻¹ I_Rᵀ (I_R Σ⁻¹ I_Rᵀ)⁻¹ (t − I_R u) for the pairs above their targets. Items stay where
they are: a popular item that lost a few of its pairs is not pushed away from every user.

The change is made on the layer-0 rows (what the model stores): the propagation's weight of a
row on its own final embedding is measured once (one extra propagation; ``1/(L+1)`` for
LightGCN), and a few fixed-point rounds absorb what propagation spreads to neighbours.
"""

from __future__ import annotations

import torch

from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender

# z-score units: the projection aims this far below each pair's target, so that a pair it moves
# sits below the target, not on it (the calibrated stop asks that at most half sit above), and a
# pair counts as above its target when it is more than this above it
MARGIN = 0.02


@torch.no_grad()
def _score_stats(users: torch.Tensor, items: torch.Tensor, chunk: int = 1024):
    """(P,), (P,) mean and std of each user row's scores over all ``items`` (chunks of rows)."""
    means, stds = [], []
    for part in users.split(chunk):
        scores = part @ items.T  # (p, n_items)
        means.append(scores.mean(1))
        stds.append(scores.std(1))
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def project_users(
    model: GraphRecommender,
    graph: Graph,
    e0: torch.Tensor,
    removed: torch.Tensor,
    targets: torch.Tensor,
    rounds: int = 2,
    ridge: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``e0`` (N, d) with the rows of the users of ``removed`` (E, 2) moved so that each removed
    pair's score under ``graph`` (the residual graph) sits at or below its target z-score
    ``targets`` (E,). Returns the new table and what it did (the self weight, the pairs still
    above their targets after ``rounds`` corrections)."""
    nu = model.num_users
    e0 = e0.clone()
    users_all, items_all = removed[:, 0], removed[:, 1]
    unique, inverse = torch.unique(users_all, return_inverse=True)
    # the propagation's weight of a user's layer-0 row on its own final embedding
    probe = torch.zeros_like(e0)
    noise = torch.Generator().manual_seed(0)  # on the CPU, so every device draws the same
    probe[unique] = torch.randn(len(unique), e0.shape[1], generator=noise).to(e0)
    final = model.propagate(graph, e0)  # (N, d), also the first round's
    moved = model.propagate(graph, e0 + probe) - final
    self_weight = float((moved[unique] * probe[unique]).sum() / probe[unique].pow(2).sum())
    self_weight = max(self_weight, 1e-3)
    # each touched user's removed pairs, as index groups (fixed across rounds)
    order = torch.argsort(inverse)
    groups = order.split(torch.bincount(inverse, minlength=len(unique)).tolist())
    above = 0
    for step in range(rounds + 1):
        if step:
            final = model.propagate(graph, e0)
        user_rows, item_rows = final[:nu], final[nu:]
        sigma = item_rows.T @ item_rows / len(item_rows)  # (d, d)
        sigma += ridge * torch.eye(sigma.shape[0], device=sigma.device) * sigma.diagonal().mean()
        sigma_inv = torch.linalg.inv(sigma)
        mean, std = _score_stats(user_rows[unique], item_rows)  # once per touched user
        mean, std = mean[inverse], std[inverse]
        scores = (user_rows[users_all] * item_rows[items_all]).sum(1)
        need = scores - (mean + (targets - MARGIN) * std)  # (E,) > 0: above its aim
        above = int((need > 2 * MARGIN * std).sum())  # more than MARGIN above the target
        if above == 0 or step == rounds:  # the last pass only counts what is left above
            break
        need = need.clamp_min(0)
        delta = torch.zeros(len(unique), e0.shape[1], device=e0.device, dtype=e0.dtype)
        for k, idx in enumerate(groups):
            if not bool((need[idx] > 0).any()):
                continue
            rows = item_rows[items_all[idx]]  # (r, d)
            gram = rows @ sigma_inv @ rows.T  # (r, r)
            gram += 1e-9 * torch.eye(len(idx), device=gram.device) * gram.diagonal().mean()
            delta[k] = sigma_inv @ rows.T @ torch.linalg.solve(gram, -need[idx])
        e0[unique] += delta / self_weight
    return e0, {"projection_self_weight": self_weight, "projection_pairs_above": float(above)}
