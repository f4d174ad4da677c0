"""Partitions for the sharded methods: every row in one shard, capacities respected, structure
found where it is plain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.unlearning import partition as part


def _purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows whose shard's majority true group is their own."""
    hits = 0
    for k in np.unique(labels):
        hits += np.bincount(truth[labels == k]).max()
    return hits / len(labels)


def _clustered(k: int = 4, per: int = 30, seed: int = 0):
    """Users and items in k tight, far-apart embedding clusters; each user interacts with items
    of its own cluster only. Returns (user emb, item emb, edges, edge cluster, user cluster)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, 8)) * 10
    group = np.repeat(np.arange(k), per)
    users = torch.as_tensor(centers[group] + rng.normal(size=(k * per, 8)) * 0.1)
    items = torch.as_tensor(centers[group] + rng.normal(size=(k * per, 8)) * 0.1)
    edges = []
    for u in range(k * per):
        same = np.flatnonzero(group == group[u])
        for i in rng.choice(same, size=5, replace=False):
            edges.append((u, i))
    edges = np.array(edges, dtype=np.int64)
    return users, items, edges, group[edges[:, 0]], group


def test_random_partition_deals_every_row_once_in_even_shards():
    labels = part.random_partition(1003, 10, seed=3)
    sizes = np.bincount(labels, minlength=10)
    assert len(labels) == 1003 and labels.min() == 0 and labels.max() == 9
    assert sizes.sum() == 1003 and sizes.max() - sizes.min() <= 1
    assert not np.array_equal(labels, part.random_partition(1003, 10, seed=4))
    assert np.array_equal(labels, part.random_partition(1003, 10, seed=3))


def test_capacity_is_the_ceiling_of_an_even_split():
    assert part.capacity(100, 10) == 10
    assert part.capacity(101, 10) == 11
    assert part.capacity(100, 10, slack=1.2) == 12
    with pytest.raises(ValueError):
        part.capacity(100, 10, slack=0.9)


def test_balanced_assign_respects_capacity_and_sends_rows_elsewhere_only_when_full():
    rng = np.random.default_rng(0)
    cost = rng.random((500, 7))
    cost[:, 2] *= 0.1  # everybody's favourite: must overflow to the others
    cap = part.capacity(500, 7)
    labels = part.balanced_assign(cost, cap)
    sizes = np.bincount(labels, minlength=7)
    assert (labels >= 0).all() and sizes.max() <= cap and sizes.sum() == 500
    assert sizes[2] == cap
    # a row sits at a costlier anchor than its cheapest only because cheaper ones filled up
    for r in range(500):
        cheaper = np.flatnonzero(cost[r] < cost[r, labels[r]])
        assert (sizes[cheaper] == cap).all()
    # the anchor everybody wanted kept its cheapest proposers
    kept = cost[labels == 2, 2]
    others = cost[(labels != 2), 2]
    assert kept.max() <= np.sort(others)[0] + 1e-12 or np.median(kept) < np.median(others)


def test_balanced_assign_without_a_binding_capacity_is_the_argmin():
    cost = np.random.default_rng(1).random((200, 5))
    assert np.array_equal(part.balanced_assign(cost, 200), cost.argmin(1))
    with pytest.raises(ValueError):
        part.balanced_assign(cost, 10)  # 5 x 10 < 200


def test_inbp_fills_shards_to_capacity_and_keeps_clusters_together():
    users, items, edges, truth, _ = _clustered()
    labels, rounds = part.inbp(users, items, edges, 4, iterations=50, seed=0)
    cap = part.capacity(len(edges), 4)
    sizes = np.bincount(labels, minlength=4)
    assert len(labels) == len(edges) and sizes.max() <= cap and sizes.sum() == len(edges)
    assert 1 <= rounds <= 50
    assert _purity(labels, truth) > 0.95
    # random shards mix the clusters
    assert _purity(part.random_partition(len(edges), 4, 0), truth) < 0.5


def test_bekm_balances_users_and_finds_their_clusters():
    users, _, _, _, group = _clustered()
    labels, _ = part.bekm(users, 4, seed=0)
    sizes = np.bincount(labels, minlength=4)
    assert sizes.max() <= part.capacity(len(group), 4) and sizes.sum() == len(group)
    assert _purity(labels, group) > 0.95


def test_blpa_respects_its_user_capacity_and_gathers_communities():
    _, _, edges, _, group = _clustered(k=4, per=30)
    num_users = len(group)
    labels, rounds = part.blpa(edges, num_users, num_users, 4, slack=1.2, seed=0)
    cap = part.capacity(num_users, 4, 1.2)
    assert np.bincount(labels, minlength=4).max() <= cap
    assert rounds >= 2  # it moved users, then settled or ran out of rounds
    start = part.random_partition(num_users, 4, 0)
    assert _purity(labels, group) > _purity(start, group) + 0.3
