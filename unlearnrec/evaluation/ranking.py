"""Full-ranking evaluation: score every item for every user, mask known items, take top-K."""

from __future__ import annotations

import numpy as np
import torch

from unlearnrec.data.dataset import as_edges
from unlearnrec.evaluation.metrics import ndcg_at_k, recall_at_k


def _csr(edges: np.ndarray, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pointer (num_users+1,) and item column array of user-sorted ``edges``."""
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    e = edges[order]
    counts = np.bincount(e[:, 0], minlength=num_users)
    return np.concatenate([[0], np.cumsum(counts)]), e[:, 1]


def _batch_mask(
    indptr: np.ndarray, cols: np.ndarray, users: np.ndarray, num_items: int, device
) -> torch.Tensor:
    """(B, num_items) boolean matrix of the listed users' items."""
    starts, ends = indptr[users], indptr[users + 1]
    lengths = ends - starts
    rows = np.repeat(np.arange(len(users)), lengths)
    # Position of each selected entry inside ``cols``: its row's start plus its offset in the row.
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = cols[np.repeat(starts, lengths) + offsets]
    mask = torch.zeros(len(users), num_items, dtype=torch.bool, device=device)
    if len(rows):
        mask[torch.as_tensor(rows, device=device), torch.as_tensor(idx, device=device)] = True
    return mask


@torch.no_grad()
def evaluate_ranking(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    eval_edges: np.ndarray,
    exclude_edges: np.ndarray,
    ks: tuple[int, ...] = (20,),
    batch_size: int = 2048,
) -> dict[str, float]:
    """Mean Recall@K and NDCG@K over users with at least one ``eval_edges`` item.

    ``user_emb`` (U, d), ``item_emb`` (I, d): final embeddings, on the evaluation device.
    ``exclude_edges``: known interactions (the training graph) that are masked out of the ranking.
    """
    num_users, num_items = user_emb.shape[0], item_emb.shape[0]
    eval_edges, exclude_edges = as_edges(eval_edges), as_edges(exclude_edges)
    ev_ptr, ev_cols = _csr(eval_edges, num_users)
    ex_ptr, ex_cols = _csr(exclude_edges, num_users)
    users = np.flatnonzero(np.diff(ev_ptr) > 0)
    kmax = min(max(ks), num_items)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    device = user_emb.device
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = user_emb[torch.as_tensor(batch, device=device)] @ item_emb.T  # (B, I)
        scores.masked_fill_(_batch_mask(ex_ptr, ex_cols, batch, num_items, device), -torch.inf)
        top = scores.topk(kmax, dim=1).indices  # (B, kmax)
        truth = _batch_mask(ev_ptr, ev_cols, batch, num_items, device)
        hits = truth.gather(1, top)
        n_rel = torch.as_tensor(np.diff(ev_ptr)[batch], device=device)
        for k in ks:
            sums[f"recall@{k}"] += recall_at_k(hits[:, :k], n_rel).sum().item()
            sums[f"ndcg@{k}"] += ndcg_at_k(hits[:, :k], n_rel).sum().item()
    n = max(len(users), 1)
    return {key: value / n for key, value in sums.items()}
