"""The deterministic synthetic dataset and its planted collaborative structure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from unlearnrec.data import (
    InteractionData,
    generate_synthetic,
    read_lightgcn,
    synthetic_item_groups,
    write_synthetic,
)

SMALL = {"num_users": 400, "num_items": 300, "num_groups": 10, "mean_interactions": 20}


@pytest.fixture(scope="module")
def default_data() -> InteractionData:
    return generate_synthetic()


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _all_pairs(data: InteractionData) -> np.ndarray:
    return np.concatenate([data.train, data.test])


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    """Same seed -> identical sha256 of every written file; another seed -> different files."""
    write_synthetic(tmp_path / "a", seed=3, **SMALL)
    write_synthetic(tmp_path / "b", seed=3, **SMALL)
    write_synthetic(tmp_path / "c", seed=4, **SMALL)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert set(a) == {"train.txt", "test.txt", "user_list.txt", "item_list.txt"}
    assert a == b
    assert a["train.txt"] != c["train.txt"] and a["user_list.txt"] != c["user_list.txt"]


def test_written_files_read_back_to_the_same_dataset(tmp_path: Path) -> None:
    """write_synthetic returns the data it wrote, and read_lightgcn gives it back."""
    data = write_synthetic(tmp_path / "s", seed=1, **SMALL)
    assert read_lightgcn(tmp_path / "s").content_hash() == data.content_hash()


def test_shape_name_and_split(default_data: InteractionData) -> None:
    """Defaults give 3000 x 2000, about 30 interactions per user, a ~20% per-user test split."""
    data = default_data
    assert (data.num_users, data.num_items, data.name) == (3000, 2000, "synthetic")
    total = len(data.train) + len(data.test)
    assert 25 * 3000 < total < 35 * 3000
    assert 0.18 < len(data.test) / total < 0.22
    assert np.bincount(data.train[:, 0], minlength=3000).min() >= 1


def test_original_ids_are_distinct_seven_digit_strings(default_data: InteractionData) -> None:
    """User and item ids are distinct 7-digit strings, never equal to an internal id."""
    ids = list(default_data.user_ids) + list(default_data.item_ids)
    assert all(isinstance(x, str) and len(x) == 7 and x.isdigit() and x[0] != "0" for x in ids)
    assert len(set(ids)) == len(ids)


def test_activity_is_heavy_tailed_with_a_floor(default_data: InteractionData) -> None:
    """Every user has >= 5 interactions; the most active have many times the median."""
    counts = np.bincount(_all_pairs(default_data)[:, 0], minlength=3000)
    assert counts.min() >= 5
    assert counts.max() > 5 * np.median(counts)


def test_popularity_is_skewed(default_data: InteractionData) -> None:
    """The top 10% of items hold far more than 10% of the interactions."""
    pop = np.sort(np.bincount(_all_pairs(default_data)[:, 1], minlength=2000))[::-1]
    assert pop[:200].sum() / pop.sum() > 0.3


def test_users_concentrate_on_a_dominant_group(default_data: InteractionData) -> None:
    """A user's dominant latent group holds a share far above what uniform sampling gives."""
    pairs = _all_pairs(default_data)
    groups = synthetic_item_groups(num_items=2000, num_groups=20, seed=0)
    counts = np.zeros((3000, 20))
    np.add.at(counts, (pairs[:, 0], groups[pairs[:, 1]]), 1)
    share = (counts.max(axis=1) / counts.sum(axis=1)).mean()
    # Same activity, items drawn uniformly: the dominant group is only noise.
    rng = np.random.default_rng(123)
    uniform = np.zeros_like(counts)
    np.add.at(uniform, (pairs[:, 0], groups[rng.integers(0, 2000, len(pairs))]), 1)
    baseline = (uniform.max(axis=1) / uniform.sum(axis=1)).mean()
    assert share > 0.4
    assert share > 2 * baseline


def test_rejects_impossible_arguments() -> None:
    """More groups than items cannot give every group an item."""
    with pytest.raises(ValueError, match="num_groups"):
        generate_synthetic(num_items=5, num_groups=6)
