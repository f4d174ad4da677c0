"""The platform's dataset versions: the model's splits plus the id maps, as a folder.

``train.txt`` holds the pairs the model trains on (its graph), ``valid.txt`` the early-stopping
pairs, ``test.txt`` the held-out pairs, ``user_list.txt`` / ``item_list.txt`` the original ids. A
purge removes pairs from all three splits, so no split is ever re-drawn and the unlearned model's
graph is exactly the previous graph minus what was erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnrec.data import InteractionData, read_lightgcn, write_lightgcn
from unlearnrec.data.dataset import edge_keys, isin_sorted
from unlearnrec.data.readers import read_adjacency, write_adjacency


@dataclass(frozen=True)
class DatasetFiles:
    num_users: int
    num_items: int
    fit: np.ndarray  # (E, 2) the model's training graph
    valid: np.ndarray
    test: np.ndarray
    user_ids: np.ndarray  # original ids (str) by internal id
    item_ids: np.ndarray

    @property
    def num_interactions(self) -> int:
        return len(self.fit) + len(self.valid) + len(self.test)

    def all_pairs(self) -> np.ndarray:
        return np.concatenate([self.fit, self.valid, self.test])

    def content_hash(self) -> str:
        data = InteractionData(
            self.num_users,
            self.num_items,
            np.concatenate([self.fit, self.valid]),
            self.test,
            self.user_ids,
            self.item_ids,
            "dataset",
        )
        import hashlib

        h = hashlib.sha256(data.content_hash().encode())
        h.update(np.ascontiguousarray(self.valid, dtype="<i8").tobytes())
        return h.hexdigest()

    def write(self, folder: Path) -> Path:
        data = InteractionData(
            self.num_users,
            self.num_items,
            self.fit,
            self.test,
            self.user_ids,
            self.item_ids,
            "dataset",
        )
        write_lightgcn(data, folder)
        write_adjacency(folder / "valid.txt", self.valid)
        return folder

    @classmethod
    def read(cls, folder: Path) -> DatasetFiles:
        data = read_lightgcn(folder)
        valid = (
            read_adjacency(folder / "valid.txt")
            if (folder / "valid.txt").exists()
            else (np.zeros((0, 2), np.int64))
        )
        return cls(
            data.num_users,
            data.num_items,
            data.train,
            valid,
            data.test,
            data.user_ids,
            data.item_ids,
        )

    def without(self, removed: np.ndarray) -> DatasetFiles:
        """This version with ``removed`` (E, 2) pairs taken out of every split."""
        keys = np.sort(edge_keys(removed, self.num_items))

        def keep(split: np.ndarray) -> np.ndarray:
            return split[~isin_sorted(edge_keys(split, self.num_items), keys)]

        return DatasetFiles(
            self.num_users,
            self.num_items,
            keep(self.fit),
            keep(self.valid),
            keep(self.test),
            self.user_ids,
            self.item_ids,
        )
