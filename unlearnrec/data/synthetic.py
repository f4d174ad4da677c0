"""A deterministic synthetic dataset with real collaborative structure.

Tests and CI cannot use the licensed benchmarks, yet a recommender trained on uniform noise learns
nothing, so unlearning metrics on it would be meaningless. The generator therefore plants the
structure that collaborative filtering exploits:

* every item has a home group (latent taste cluster), and within a group popularity is Zipf-like;
* every user has a sparse Dirichlet mixture over groups, so most of a user's items share a group;
* user activity is heavy-tailed (log-normal) with a floor of about five interactions;
* a user's items are drawn without replacement (Gumbel top-k on the user's item distribution).

Everything comes from one ``numpy.random.default_rng(seed)``, so the same seed gives identical
arrays (and byte-identical files through ``write_lightgcn``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from unlearnrec.data.dataset import InteractionData
from unlearnrec.data.readers import write_lightgcn
from unlearnrec.data.split import split_train_test

__all__ = ["generate_synthetic", "synthetic_item_groups", "write_synthetic"]

DIRICHLET_ALPHA = 0.1  # < 1: each user concentrates on one or two groups
ZIPF_EXPONENT = 1.0  # popularity of the r-th item of a group ~ 1 / r
UNIFORM_NOISE = 0.02  # share of each user's taste spread over all items (exploration)
MIN_INTERACTIONS = 5
ACTIVITY_SIGMA = 1.0  # log-normal shape of the activity above the floor
CHUNK_CELLS = 2_000_000  # user x item scores held in memory at once
ID_LOW, ID_HIGH = 1_000_000, 10_000_000  # 7-digit original ids


def _check_args(num_users: int, num_items: int, num_groups: int, mean: float) -> None:
    if num_users < 1 or num_items < 1:
        raise ValueError("num_users and num_items must be positive")
    if not 1 <= num_groups <= num_items:
        raise ValueError(f"num_groups must be in [1, num_items], got {num_groups}")
    if mean < 1:
        raise ValueError(f"mean_interactions must be >= 1, got {mean}")
    if num_users + num_items > ID_HIGH - ID_LOW:
        raise ValueError("too many users and items for distinct 7-digit ids")


def _draw_item_groups(rng: np.random.Generator, num_items: int, num_groups: int) -> np.ndarray:
    """Balanced home groups in random order, so every group has items."""
    return rng.permutation(np.arange(num_items) % num_groups)


def synthetic_item_groups(
    *, num_items: int = 2000, num_groups: int = 20, seed: int = 0
) -> np.ndarray:
    """The latent home group of each item that ``generate_synthetic`` uses with these arguments.

    The groups are the generator's first draw, so they can be recomputed for diagnostics and
    tests without exposing them through ``InteractionData``.
    """
    return _draw_item_groups(np.random.default_rng(seed), num_items, num_groups)


def _within_group_popularity(item_group: np.ndarray, num_groups: int) -> np.ndarray:
    """P(item | its group): Zipf over the item's rank inside its group (groups are shuffled)."""
    order = np.argsort(item_group, kind="stable")
    sizes = np.bincount(item_group, minlength=num_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.empty(len(item_group), dtype=np.int64)
    rank[order] = np.arange(len(item_group)) - starts[item_group[order]]
    weight = 1.0 / (rank + 1.0) ** ZIPF_EXPONENT
    group_total = np.bincount(item_group, weights=weight, minlength=num_groups)
    return weight / group_total[item_group]


def _activity(rng: np.random.Generator, num_users: int, num_items: int, mean: float) -> np.ndarray:
    """Heavy-tailed interaction counts: a floor plus log-normal extra, capped below num_items."""
    floor = max(1, min(MIN_INTERACTIONS, int(mean), num_items))
    extra_mean = mean - floor
    if extra_mean <= 0:
        return np.full(num_users, floor, dtype=np.int64)
    mu = np.log(extra_mean) - ACTIVITY_SIGMA**2 / 2
    extra = np.rint(rng.lognormal(mu, ACTIVITY_SIGMA, size=num_users)).astype(np.int64)
    cap = max(floor, num_items // 2)
    return np.minimum(floor + extra, cap)


def _sample_interactions(
    rng: np.random.Generator,
    mixtures: np.ndarray,
    item_group: np.ndarray,
    item_prob: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """Draw ``counts[u]`` distinct items per user, proportionally to the user's taste.

    Gumbel top-k: the ``k`` largest ``log p + Gumbel`` scores are an exact sample of ``k`` items
    without replacement; users are processed in chunks to bound memory.
    """
    num_users, num_items = len(mixtures), len(item_group)
    chunk = max(1, CHUNK_CELLS // num_items)
    parts = []
    for lo in range(0, num_users, chunk):
        hi = min(lo + chunk, num_users)
        prob = (1 - UNIFORM_NOISE) * mixtures[lo:hi, item_group] * item_prob + (
            UNIFORM_NOISE / num_items
        )
        scores = np.log(prob) + rng.gumbel(size=prob.shape)
        ranked = -np.sort(-scores, axis=1)
        threshold = ranked[np.arange(hi - lo), counts[lo:hi] - 1]
        rows, cols = np.nonzero(scores >= threshold[:, None])
        parts.append(np.stack([rows + lo, cols], axis=1))
    return np.concatenate(parts).astype(np.int64)


def generate_synthetic(
    *,
    num_users: int = 3000,
    num_items: int = 2000,
    num_groups: int = 20,
    mean_interactions: float = 30,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> InteractionData:
    """Generate the synthetic dataset (name ``"synthetic"``), split with ``split_train_test``.

    Original ids are distinct random 7-digit integers (as strings) over users and items together,
    so an internal id is never mistaken for an original one.
    """
    _check_args(num_users, num_items, num_groups, mean_interactions)
    rng = np.random.default_rng(seed)
    item_group = _draw_item_groups(rng, num_items, num_groups)  # first draw, see above
    ids = rng.choice(ID_HIGH - ID_LOW, size=num_users + num_items, replace=False) + ID_LOW
    mixtures = rng.dirichlet(np.full(num_groups, DIRICHLET_ALPHA), size=num_users)
    counts = _activity(rng, num_users, num_items, mean_interactions)
    item_prob = _within_group_popularity(item_group, num_groups)
    edges = _sample_interactions(rng, mixtures, item_group, item_prob, counts)
    train, test = split_train_test(edges, num_users, test_fraction, seed)
    return InteractionData(
        num_users=num_users,
        num_items=num_items,
        train=train,
        test=test,
        user_ids=np.array([str(x) for x in ids[:num_users]], dtype=object),
        item_ids=np.array([str(x) for x in ids[num_users:]], dtype=object),
        name="synthetic",
    )


def write_synthetic(folder: str | os.PathLike[str], **kw: Any) -> InteractionData:
    """Generate the synthetic dataset and write it as a LightGCN folder; returns the data."""
    data = generate_synthetic(**kw)
    write_lightgcn(data, folder)
    return data
