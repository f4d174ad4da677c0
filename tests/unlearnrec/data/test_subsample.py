"""A fixed user subsample keeps whole users, drops rare items and re-indexes with the id maps."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnrec.data import generate_synthetic, subsample_users


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(num_users=200, num_items=150, num_groups=4, mean_interactions=10)


def test_it_keeps_every_interaction_of_the_sampled_users(data):
    sub = subsample_users(data, 50, seed=0)
    assert sub.num_users == 50
    original = {(str(data.user_ids[u]), str(data.item_ids[i])) for u, i in data.train}
    kept = {(str(sub.user_ids[u]), str(sub.item_ids[i])) for u, i in sub.train}
    assert kept <= original
    for user in sub.user_ids:  # whole users: every training pair of a sampled user is there
        u = int(np.nonzero(data.user_ids == user)[0][0])
        assert (sub.user_ids[sub.train[:, 0]] == user).sum() == (data.train[:, 0] == u).sum()
    assert sub.train[:, 0].max() < sub.num_users and sub.train[:, 1].max() < sub.num_items
    assert np.isin(sub.test[:, 1], sub.train[:, 1]).all()  # no test item unseen in training
    assert subsample_users(data, 50, seed=0).content_hash() == sub.content_hash()
    assert subsample_users(data, 50, seed=1).content_hash() != sub.content_hash()


def test_it_drops_items_rarer_than_the_minimum_degree(data):
    sub = subsample_users(data, 80, seed=0, min_item_degree=3)
    assert np.bincount(sub.train[:, 1]).min() >= 3
    assert sub.num_users <= 80 and np.isin(np.arange(sub.num_users), sub.train[:, 0]).all()
    with pytest.raises(ValueError, match="positive"):
        subsample_users(data, 0)


def test_load_splits_takes_the_bench_sample_from_a_dataset_file(tmp_path):
    """The bench and its scripts read a sample through ``load_splits``: the same users, items
    and splits as sampling the read dataset by hand."""
    from unlearnrec.config import DataConfig
    from unlearnrec.data import read_dataset, write_synthetic
    from unlearnrec.experiments.shared import load_splits, make_splits

    write_synthetic(tmp_path, num_users=120, num_items=90, num_groups=3, mean_interactions=8)
    config = DataConfig()
    full, _ = load_splits(config, str(tmp_path))
    sample, splits = load_splits(config, str(tmp_path), subsample=40, min_item_degree=2)
    by_hand = subsample_users(
        read_dataset(
            tmp_path,
            min_rating=config.min_rating,
            seed=config.seed,
            test_fraction=config.test_fraction,
        ),
        40,
        0,
        2,
    )
    assert sample.content_hash() == by_hand.content_hash() != full.content_hash()
    assert sample.num_users == 40
    expected = make_splits(by_hand, config.valid_fraction, config.seed)
    assert np.array_equal(splits.fit, expected.fit) and np.array_equal(splits.valid, expected.valid)
