"""The one split type: the model's graph (``fit``), its early-stopping pairs (``valid``) and the
held-out pairs (``test``), with the id maps when they are known.

The offline pipeline keeps it as ``splits.npz`` (``save``/``load``: pairs, sizes, name and the
source data's hash, no id map); the platform keeps each dataset version as a LightGCN folder
(``write``/``read``: ``train.txt`` the model's graph, ``valid.txt``, ``test.txt``,
``user_list.txt`` / ``item_list.txt`` the original ids). A purge (``without``) removes pairs from
all three splits, so no split is ever re-drawn and the unlearned model's graph is exactly the
previous graph minus what was erased. (``split.py`` draws the splits; this module holds them.)
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from unlearnrec.data.dataset import InteractionData, edge_keys, isin_sorted
from unlearnrec.data.readers import read_adjacency, read_lightgcn, write_adjacency, write_lightgcn
from unlearnrec.files import atomic_write_bytes


@dataclass(frozen=True)
class Splits:
    """All arrays of pairs are (E, 2) int64 (user, item). ``user_ids`` / ``item_ids``: the
    original ids (str) by internal id, None where only the pairs were kept (``load``)."""

    num_users: int
    num_items: int
    fit: np.ndarray  # the model's training graph
    valid: np.ndarray  # early stopping (and the held-out pairs of UnlearnRec's targets)
    test: np.ndarray
    user_ids: np.ndarray | None = field(default=None, repr=False)
    item_ids: np.ndarray | None = field(default=None, repr=False)
    name: str = "dataset"
    data_hash: str = ""  # the source data's content hash, when the splits were drawn from it

    @property
    def num_interactions(self) -> int:
        return len(self.fit) + len(self.valid) + len(self.test)

    def all_pairs(self) -> np.ndarray:
        return np.concatenate([self.fit, self.valid, self.test])

    def with_ids(self, user_ids: np.ndarray, item_ids: np.ndarray) -> Splits:
        return replace(self, user_ids=user_ids, item_ids=item_ids)

    def _interactions(self, train: np.ndarray) -> InteractionData:
        if self.user_ids is None or self.item_ids is None:
            raise ValueError(f"splits {self.name!r} hold no id maps (loaded from splits.npz?)")
        return InteractionData(
            self.num_users, self.num_items, train, self.test, self.user_ids, self.item_ids, "dataset"
        )

    def content_hash(self) -> str:
        """sha256 of sizes, every split and the id maps (a dataset version's identity)."""
        h = hashlib.sha256(
            self._interactions(np.concatenate([self.fit, self.valid])).content_hash().encode()
        )
        h.update(np.ascontiguousarray(self.valid, dtype="<i8").tobytes())
        return h.hexdigest()

    def without(self, removed: np.ndarray) -> Splits:
        """These splits with ``removed`` (E, 2) pairs taken out of every split."""
        keys = np.sort(edge_keys(removed, self.num_items))

        def keep(split: np.ndarray) -> np.ndarray:
            return split[~isin_sorted(edge_keys(split, self.num_items), keys)]

        return replace(self, fit=keep(self.fit), valid=keep(self.valid), test=keep(self.test))

    # -- the platform's dataset version: a LightGCN folder with id maps ---------------------
    def write(self, folder: Path) -> Path:
        write_lightgcn(self._interactions(self.fit), folder)
        write_adjacency(folder / "valid.txt", self.valid)
        return folder

    @classmethod
    def read(cls, folder: Path) -> Splits:
        data = read_lightgcn(folder)
        valid = (
            read_adjacency(folder / "valid.txt")
            if (folder / "valid.txt").exists()
            else np.zeros((0, 2), np.int64)
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

    # -- the pipeline's artifact: splits.npz ------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "fit_edges": len(self.fit),
            "valid_edges": len(self.valid),
            "test_edges": len(self.test),
            "data_hash": self.data_hash,
        }

    def save(self, path: str | Path) -> None:
        buf = io.BytesIO()
        np.savez(
            buf,
            fit=self.fit,
            valid=self.valid,
            test=self.test,
            meta=np.array([self.name, str(self.num_users), str(self.num_items), self.data_hash]),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        with np.load(Path(path), allow_pickle=False) as z:
            name, nu, ni, h = (str(x) for x in z["meta"])
            return cls(
                int(nu), int(ni), z["fit"], z["valid"], z["test"], name=name, data_hash=h
            )
