"""Ranking metrics as tiny tensor functions (tested against naive loops).

``hits``: (B, K) boolean, hits[b, r] = the item at rank r for user b is relevant.
``num_relevant``: (B,) number of relevant (held-out) items of each user, all > 0.
Definitions follow LightGCN's evaluation: Recall@K = hits / |relevant|;
NDCG@K = DCG / IDCG with IDCG over min(|relevant|, K) ideal positions.
"""

from __future__ import annotations

import torch


def recall_at_k(hits: torch.Tensor, num_relevant: torch.Tensor) -> torch.Tensor:
    """(B,) Recall@K with K = hits.shape[1]."""
    return hits.float().sum(dim=1) / num_relevant.float()


def ndcg_at_k(hits: torch.Tensor, num_relevant: torch.Tensor) -> torch.Tensor:
    """(B,) NDCG@K with binary relevance."""
    k = hits.shape[1]
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=hits.device, dtype=torch.float))
    dcg = (hits.float() * discounts).sum(dim=1)
    ideal_len = num_relevant.clamp(max=k)
    ideal = torch.cumsum(discounts, dim=0)[ideal_len - 1]
    return dcg / ideal


def roc_auc(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    Computed from average ranks (Mann-Whitney U), O(n log n).
    """
    pos = positive_scores.detach().double().flatten().cpu()
    neg = negative_scores.detach().double().flatten().cpu()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs at least one positive and one negative score")
    scores = torch.cat([pos, neg])
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # Average ranks over ties.
    _, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks[order] = avg[inverse]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))
