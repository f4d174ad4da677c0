"""Per-user seeded hold-out splits."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnrec.data import split_train_test, split_validation


def _edges(counts: list[int]) -> np.ndarray:
    """User u gets items 0..counts[u]-1."""
    return np.array([(u, i) for u, n in enumerate(counts) for i in range(n)], dtype=np.int64)


def _per_user(edges: np.ndarray, num_users: int) -> list[int]:
    return np.bincount(edges[:, 0], minlength=num_users).tolist()


def _keys(edges: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, edges.tolist()))


def test_split_holds_out_round_fraction_per_user_within_bounds() -> None:
    """Each user holds out round(f*n), at least 1 and at most n-1; singletons stay in train."""
    counts = [1, 2, 3, 5, 10, 11, 0, 100]
    train, test = split_train_test(_edges(counts), len(counts), 0.2, seed=0)
    assert _per_user(test, len(counts)) == [0, 1, 1, 1, 2, 2, 0, 20]
    assert _per_user(train, len(counts)) == [1, 1, 2, 4, 8, 9, 0, 80]


def test_split_keeps_every_pair_once_sorted_and_disjoint() -> None:
    """Train and test partition the input pairs, each sorted by (user, item), int64 (E, 2)."""
    rng = np.random.default_rng(5)
    edges = np.stack([rng.integers(0, 50, 2000), rng.integers(0, 300, 2000)], axis=1)
    train, test = split_train_test(edges, 50, 0.25, seed=1)
    unique = _keys(edges)
    assert _keys(train) | _keys(test) == unique
    assert not _keys(train) & _keys(test)
    assert len(train) + len(test) == len(unique)  # duplicates in the input collapse
    for part in (train, test):
        assert part.dtype == np.int64 and part.ndim == 2 and part.shape[1] == 2
        assert part.tolist() == sorted(part.tolist())
    users, counts = np.unique(edges[:, 0], return_counts=True)
    assert set(users[counts >= 2].tolist()) <= set(train[:, 0].tolist())


def test_split_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    """Same seed -> same split (whatever the input order); another seed -> another split."""
    edges = _edges([20] * 30)
    train_a, test_a = split_train_test(edges, 30, 0.2, seed=7)
    train_b, test_b = split_train_test(edges[::-1].copy(), 30, 0.2, seed=7)
    assert np.array_equal(train_a, train_b) and np.array_equal(test_a, test_b)
    _, test_c = split_train_test(edges, 30, 0.2, seed=8)
    assert not np.array_equal(test_a, test_c)


def test_split_with_zero_fraction_keeps_everything_in_train() -> None:
    """fraction 0 holds nothing out."""
    edges = _edges([3, 4])
    train, test = split_train_test(edges, 2, 0.0, seed=0)
    assert np.array_equal(train, edges) and test.shape == (0, 2)


def test_split_handles_empty_input() -> None:
    """No pairs gives two empty (0, 2) arrays."""
    train, test = split_train_test(np.zeros((0, 2), dtype=np.int64), 3, 0.2, seed=0)
    assert train.shape == (0, 2) and test.shape == (0, 2)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_fractions_outside_zero_one(fraction: float) -> None:
    """A fraction outside [0, 1) is a caller error."""
    with pytest.raises(ValueError, match="fraction"):
        split_train_test(_edges([3]), 1, fraction, seed=0)


def test_split_rejects_users_beyond_num_users() -> None:
    """A user id >= num_users means the caller passed the wrong size."""
    with pytest.raises(ValueError, match="num_users"):
        split_train_test(_edges([2, 2, 2]), 2, 0.2, seed=0)


def test_split_validation_applies_the_same_rule_to_train() -> None:
    """split_validation holds out per user from train, leaving >= 1 pair per user in fit."""
    counts = [1, 2, 10, 40]
    fit, valid = split_validation(_edges(counts), 0.1, seed=0)
    assert _per_user(valid, 4) == [0, 1, 1, 4]
    assert _per_user(fit, 4) == [1, 1, 9, 36]
    again = split_validation(_edges(counts), 0.1, seed=0)
    assert np.array_equal(again[0], fit) and np.array_equal(again[1], valid)
