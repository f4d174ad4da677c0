"""Seeded per-user hold-out splits (train/test, and fit/validation for early stopping).

Every user is split on their own so that no user vanishes from the training graph: a user with
``n >= 2`` interactions holds out ``round(fraction * n)`` of them (at least one when
``fraction > 0``, at most ``n - 1``); a user with a single interaction keeps it in the first part.
The work is vectorised (one shuffle and one stable sort over all edges), so Gowalla splits in
well under a second.
"""

from __future__ import annotations

import numpy as np

from unlearnrec.data.dataset import as_edges, normalise_edges

__all__ = ["split_train_test", "split_validation"]


def _holdout_counts(counts: np.ndarray, fraction: float) -> np.ndarray:
    """How many interactions each user holds out, given their interaction counts.

    ``np.rint`` rounds half to even, like Python's ``round``.
    """
    k = np.rint(fraction * counts).astype(np.int64)
    if fraction > 0:
        k = np.maximum(k, 1)
    k = np.minimum(k, counts - 1)
    return np.maximum(k, 0)


def _split(
    edges: np.ndarray, num_users: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shared body of both public splits; see the module docstring for the rule."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    edges = normalise_edges(edges)
    if len(edges) and edges[-1, 0] >= num_users:
        raise ValueError(f"user id {int(edges[-1, 0])} out of range for num_users={num_users}")
    users = edges[:, 0]
    counts = np.bincount(users, minlength=num_users)
    rng = np.random.default_rng(seed)
    # A random order inside each user: shuffle, then a stable (radix) sort by user.
    perm = rng.permutation(len(edges))
    order = perm[np.argsort(users[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(edges)) - starts[users[order]]
    held = np.zeros(len(edges), dtype=bool)
    held[order] = rank < _holdout_counts(counts, fraction)[users[order]]
    # ``edges`` is sorted, so boolean masks keep (user, item) order in both parts.
    return edges[~held], edges[held]


def split_train_test(
    edges: np.ndarray, num_users: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split interactions into (train, test), each sorted by (user, item), int64 (E, 2).

    Duplicate pairs are dropped first, so the result depends only on the set of pairs and the
    seed, not on the input order.
    """
    return _split(edges, num_users, test_fraction, seed)


def split_validation(
    train: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training pairs into (fit, valid) with the same per-user rule, for early stopping."""
    train = as_edges(train)
    num_users = int(train[:, 0].max()) + 1 if len(train) else 0
    return _split(train, num_users, fraction, seed)
