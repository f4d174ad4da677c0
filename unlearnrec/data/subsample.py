"""A fixed user subsample of a dataset, for benchmarks of large graphs on a small machine.

The sample keeps ``num_users`` users drawn with a seed and every interaction they have; items that
fewer than ``min_item_degree`` of them trained on are dropped (with their test pairs), then users
left without a training pair, and ids are re-indexed contiguously, with the original id maps
carried over. The same arguments give the same arrays.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from unlearnrec.data.dataset import InteractionData, normalise_edges

__all__ = ["subsample_users"]


def subsample_users(
    data: InteractionData, num_users: int, seed: int = 0, min_item_degree: int = 1
) -> InteractionData:
    """``data`` restricted to ``num_users`` users drawn uniformly among those with training pairs
    (all of them if there are fewer), and to items with ``min_item_degree`` training pairs among
    those users."""
    if num_users < 1 or min_item_degree < 1:
        raise ValueError("num_users and min_item_degree must be positive")
    active = np.unique(data.train[:, 0])
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(active, size=min(num_users, len(active)), replace=False))
    train = data.train[np.isin(data.train[:, 0], users)]
    degree = np.bincount(train[:, 1], minlength=data.num_items)
    items = np.nonzero(degree >= min_item_degree)[0]
    train = train[np.isin(train[:, 1], items)]
    users = np.unique(train[:, 0])
    test = data.test[np.isin(data.test[:, 0], users) & np.isin(data.test[:, 1], items)]
    user_map = np.full(data.num_users, -1, np.int64)
    user_map[users] = np.arange(len(users))
    item_map = np.full(data.num_items, -1, np.int64)
    item_map[items] = np.arange(len(items))

    def remap(edges: np.ndarray) -> np.ndarray:
        return normalise_edges(np.stack([user_map[edges[:, 0]], item_map[edges[:, 1]]], axis=1))

    return replace(
        data,
        num_users=len(users),
        num_items=len(items),
        train=remap(train),
        test=remap(test),
        user_ids=data.user_ids[users],
        item_ids=data.item_ids[items],
        name=f"{data.name}-users{num_users}-seed{seed}"
        + (f"-item{min_item_degree}" if min_item_degree > 1 else ""),
    )
