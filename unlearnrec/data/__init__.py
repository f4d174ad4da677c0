"""Interaction data: the dataset as read (``InteractionData``), file readers/writers, the
splits (``split.py`` draws them, ``splits.py`` holds them: ``Splits``) and a synthetic
generator."""

from __future__ import annotations

from unlearnrec.data.dataset import (
    DataFormatError,
    InteractionData,
    as_edges,
    contains_edges,
    edge_keys,
    normalise_edges,
    remove_edges,
)
from unlearnrec.data.readers import read_dataset, read_lightgcn, read_movielens, write_lightgcn
from unlearnrec.data.subsample import subsample_users
from unlearnrec.data.split import split_train_test, split_validation
from unlearnrec.data.synthetic import generate_synthetic, synthetic_item_groups, write_synthetic

__all__ = [
    "DataFormatError",
    "InteractionData",
    "as_edges",
    "contains_edges",
    "edge_keys",
    "generate_synthetic",
    "normalise_edges",
    "read_dataset",
    "read_lightgcn",
    "read_movielens",
    "remove_edges",
    "split_train_test",
    "split_validation",
    "subsample_users",
    "synthetic_item_groups",
    "write_lightgcn",
    "write_synthetic",
]
