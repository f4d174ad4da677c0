"""Partitions of the training interactions into K shards, for the exact (sharded) methods.

- ``random_partition``: SISA's random disjoint shards of equal size (up to one edge).
- ``inbp``: RecEraser's interaction-based balanced partition (``../shared/design/receraser.md``):
  K anchors of (user, item) embedding pairs, distance = ‖p_a − p_u‖ × ‖q_a − q_v‖, balanced
  assignment under a shard capacity, anchors moved to their shard's means, repeated.
- ``bekm`` and ``blpa``: GraphEraser's balanced embedding k-means and balanced label propagation,
  applied to the users (a user's interactions follow the user into its shard), under a capacity
  in users, as GraphEraser bounds its node communities.

Every function returns an (n,) int64 array of shard labels in ``0..K-1``; all are vectorised
(numpy/torch over whole arrays, loops only over rounds) and deterministic given their seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def capacity(n: int, k: int, slack: float = 1.0) -> int:
    """Shard capacity: ⌈slack · n / k⌉ (slack ≥ 1, so K shards always hold all n)."""
    if k < 1 or n < 0:
        raise ValueError(f"need k >= 1 and n >= 0, got k={k}, n={n}")
    if slack < 1.0:
        raise ValueError(f"slack must be >= 1 (K shards must hold every row), got {slack}")
    return max(1, math.ceil(slack * n / k))


def random_partition(n: int, k: int, seed: int = 0) -> np.ndarray:
    """SISA: a random permutation dealt round-robin into ``k`` shards (sizes differ by ≤ 1)."""
    rng = np.random.default_rng(seed)
    labels = np.empty(n, dtype=np.int64)
    labels[rng.permutation(n)] = np.arange(n) % k
    return labels


def balanced_assign(cost: np.ndarray, cap: int) -> np.ndarray:
    """Assign each of n rows to one of K columns, cheapest first, at most ``cap`` per column.

    The design's sorted greedy walk (all (row, anchor) pairs by ascending cost; a row goes to the
    first anchor that still has room) done in rounds instead of one pair at a time: every
    unassigned row proposes to its cheapest anchor that is still open; each anchor keeps its
    cheapest proposers up to its remaining room and closes when full. A rejected row was beaten
    by cheaper rows for a full anchor, as in the walk; the rounds differ from the walk only in
    ties of timing (an anchor's room is handed out per round). At most K rounds: every round
    closes an anchor or assigns every proposer.

    ``cost``: (n, K) float; needs ``cap * K >= n``. Returns (n,) int64 labels.
    """
    n, k = cost.shape
    if cap * k < n:
        raise ValueError(f"capacity {cap} x {k} shards cannot hold {n} rows")
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(k, cap, dtype=np.int64)
    cost = np.asarray(cost, dtype=np.float64)
    while True:
        todo = np.flatnonzero(labels < 0)
        if len(todo) == 0:
            return labels
        sub = cost[todo].copy()
        sub[:, room <= 0] = np.inf
        choice = sub.argmin(axis=1)  # (m,)
        mine = sub[np.arange(len(todo)), choice]
        # per anchor, proposers by ascending cost: sort by (anchor, cost), rank inside anchor
        order = np.lexsort((mine, choice))
        sorted_choice = choice[order]
        starts = np.searchsorted(sorted_choice, np.arange(k))
        rank = np.arange(len(order)) - starts[sorted_choice]
        accept = rank < room[sorted_choice]
        labels[todo[order[accept]]] = sorted_choice[accept]
        room -= np.bincount(sorted_choice[accept], minlength=k)


def _pair_distance(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(n, K) Euclidean distances between rows of ``a`` (n, d) and anchors ``b`` (K, d)."""
    return torch.cdist(a.double(), b.double()).numpy()


def inbp(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    edges: np.ndarray,
    k: int,
    *,
    iterations: int = 50,
    slack: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """RecEraser's InBP over (E, 2) ``edges``; returns (labels (E,), rounds run).

    ``user_emb`` (U, d), ``item_emb`` (I, d): pre-trained embeddings (CPU). Anchors start at K
    random interactions; each round assigns every interaction under capacity ⌈slack·E/K⌉ by
    ‖p_a − p_u‖·‖q_a − q_v‖ and moves anchor a to the mean (p, q) of its shard; stops when the
    assignment no longer changes or after ``iterations`` rounds.
    """
    edges = np.asarray(edges, dtype=np.int64)
    n = len(edges)
    cap = capacity(n, k, slack)
    users, items = edges[:, 0], edges[:, 1]
    p = user_emb.detach().cpu().double()
    q = item_emb.detach().cpu().double()
    rng = np.random.default_rng(seed)
    start = rng.choice(n, size=k, replace=False)
    anchor_p, anchor_q = p[users[start]], q[items[start]]  # (K, d) each
    labels = np.full(n, -1, dtype=np.int64)
    rounds = 0
    while rounds < iterations:
        rounds += 1
        # distances per distinct user / item, then gathered per interaction: (E, K)
        du = _pair_distance(p, anchor_p)[users]
        dv = _pair_distance(q, anchor_q)[items]
        new = balanced_assign(du * dv, cap)
        changed = not np.array_equal(new, labels)
        labels = new
        lab = torch.as_tensor(labels)
        counts = torch.bincount(lab, minlength=k).double().clamp_min(1)[:, None]
        anchor_p = torch.zeros_like(anchor_p).index_add_(0, lab, p[users]) / counts
        anchor_q = torch.zeros_like(anchor_q).index_add_(0, lab, q[items]) / counts
        if not changed:
            break
    return labels, rounds


def bekm(
    emb: torch.Tensor,
    k: int,
    *,
    iterations: int = 30,
    slack: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """GraphEraser's balanced embedding k-means over the rows of ``emb`` (n, d).

    Centroids start at K random rows; each round assigns rows to centroids by Euclidean distance
    under capacity ⌈slack·n/K⌉ and moves each centroid to its shard's mean. Returns (labels,
    rounds run).
    """
    x = emb.detach().cpu().double()
    n = x.shape[0]
    cap = capacity(n, k, slack)
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(n, size=k, replace=False)]
    labels = np.full(n, -1, dtype=np.int64)
    rounds = 0
    while rounds < iterations:
        rounds += 1
        new = balanced_assign(_pair_distance(x, centroids), cap)
        changed = not np.array_equal(new, labels)
        labels = new
        lab = torch.as_tensor(labels)
        counts = torch.bincount(lab, minlength=k).double().clamp_min(1)[:, None]
        centroids = torch.zeros_like(centroids).index_add_(0, lab, x) / counts
        if not changed:
            break
    return labels, rounds


def blpa(
    edges: np.ndarray,
    num_users: int,
    num_items: int,
    k: int,
    *,
    iterations: int = 30,
    slack: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """GraphEraser's balanced label propagation over the users of a bipartite graph.

    Users start in random balanced shards. Each round, a user's affinity to shard j is the number
    of (user, item, other user) paths to users of shard j (A Aᵀ onehot, self paths removed); users
    whose best shard is not their own ask to move, with that affinity as the move's score; each
    shard takes its highest-scoring movers up to its remaining room (capacity ⌈slack·U/K⌉, the
    users leaving it not counted as room until the next round). Stops when nobody moves or after
    ``iterations`` rounds. Returns (user labels (U,), rounds run).
    """
    edges = np.asarray(edges, dtype=np.int64)
    cap = capacity(num_users, k, slack)
    users, items = edges[:, 0], edges[:, 1]
    degree = np.bincount(users, minlength=num_users)
    labels = random_partition(num_users, k, seed)
    rounds = 0
    while rounds < iterations:
        rounds += 1
        # (I, K) users of each shard per item, then (U, K) paths user -> item -> shard
        per_item = np.zeros((num_items, k))
        np.add.at(per_item, (items, labels[users]), 1.0)
        affinity = np.zeros((num_users, k))
        np.add.at(affinity, users, per_item[items])
        affinity[np.arange(num_users), labels] -= degree  # a user's paths back to itself
        best = affinity.argmax(axis=1)
        gain = affinity[np.arange(num_users), best]
        movers = np.flatnonzero((best != labels) & (gain > affinity[np.arange(num_users), labels]))
        if len(movers) == 0:
            break
        room = cap - np.bincount(labels, minlength=k)
        dest, score = best[movers], gain[movers]
        order = np.lexsort((-score, dest))
        sorted_dest = dest[order]
        starts = np.searchsorted(sorted_dest, np.arange(k))
        rank = np.arange(len(order)) - starts[sorted_dest]
        accept = rank < room[sorted_dest]
        if not accept.any():
            break
        labels = labels.copy()
        labels[movers[order[accept]]] = sorted_dest[accept]
    return labels, rounds
