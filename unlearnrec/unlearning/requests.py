"""Deletion requests: which training edges must be forgotten, and the protocols that make them.

Protocols (see docs/method.md): ``random:FRACTION`` of training edges, ``users:COUNT`` (all
interactions of COUNT users), ``items:COUNT`` (all interactions with COUNT items), and
``noise:FRACTION`` (the UnlearnRec authors' protocol: inject least-related edges, train on the
augmented graph, then forget exactly those edges), and ``mixed:USERS,EDGES,ITEMS`` (one batch of
the platform's ticket kinds together: USERS erased users, EDGES random interactions of other
users, ITEMS taken-down items).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unlearnrec.data.dataset import as_edges, contains_edges, edge_keys, normalise_edges

KINDS = ("random", "users", "items", "noise", "mixed", "edges")


@dataclass(frozen=True)
class DeletionRequest:
    """``edges``: (E, 2) int64 (user, item) pairs to forget, all in the model's training graph."""

    kind: str
    edges: np.ndarray
    users: tuple[int, ...] = ()  # whole users erased (user-level requests)
    items: tuple[int, ...] = ()  # whole items taken down (item-level requests)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "edges": self.num_edges,
            "users": len(self.users),
            "items": len(self.items),
        }


SPEC_HELP = "random:FRACTION, users:COUNT, items:COUNT, noise:FRACTION or mixed:USERS,EDGES,ITEMS"


def parse_mixed(spec: str) -> tuple[int, int, int]:
    """``"mixed:2,20,1"`` -> (2, 20, 1): erased users, random edges, taken-down items."""
    kind, _, value = spec.partition(":")
    parts = value.split(",")
    if kind != "mixed" or len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"bad request spec {spec!r}: use mixed:USERS,EDGES,ITEMS (three counts)")
    counts = tuple(int(p) for p in parts)
    if sum(counts) == 0:
        raise ValueError(f"bad request spec {spec!r}: a mixed request needs something to erase")
    return counts  # type: ignore[return-value]


def parse_spec(spec: str) -> tuple[str, float]:
    """``"random:0.01"`` -> ("random", 0.01), with the kind and the number checked
    (``mixed`` specs: the total count; ``parse_mixed`` gives the parts)."""
    kind, _, value = spec.partition(":")
    if kind == "mixed":
        return kind, float(sum(parse_mixed(spec)))
    if kind not in ("random", "users", "items", "noise") or not value:
        raise ValueError(f"bad request spec {spec!r}: use {SPEC_HELP}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"bad request spec {spec!r}: {value!r} is not a number") from None
    if kind in ("random", "noise") and not 0 < number < 1:
        raise ValueError(f"bad request spec {spec!r}: FRACTION must be in (0, 1)")
    if kind in ("users", "items") and (number < 1 or number != int(number)):
        raise ValueError(f"bad request spec {spec!r}: COUNT must be a positive integer")
    return kind, number


def random_edges(train: np.ndarray, fraction: float, rng: np.random.Generator) -> DeletionRequest:
    n = max(1, round(fraction * len(train)))
    idx = np.sort(rng.choice(len(train), size=n, replace=False))
    return DeletionRequest("random", as_edges(train[idx]))


def user_level(train: np.ndarray, count: int, rng: np.random.Generator) -> DeletionRequest:
    """All training interactions of ``count`` users drawn among those who have some."""
    users = np.unique(train[:, 0])
    chosen = np.sort(rng.choice(users, size=min(count, len(users)), replace=False))
    return DeletionRequest(
        "users", as_edges(train[np.isin(train[:, 0], chosen)]), users=tuple(map(int, chosen))
    )


def item_level(train: np.ndarray, count: int, rng: np.random.Generator) -> DeletionRequest:
    """All training interactions with ``count`` items drawn among those that have some."""
    items = np.unique(train[:, 1])
    chosen = np.sort(rng.choice(items, size=min(count, len(items)), replace=False))
    return DeletionRequest(
        "items", as_edges(train[np.isin(train[:, 1], chosen)]), items=tuple(map(int, chosen))
    )


def mixed(
    train: np.ndarray, users: int, edges: int, items: int, rng: np.random.Generator
) -> DeletionRequest:
    """A batch of the platform's ticket kinds: every interaction of ``users`` users, ``edges``
    random interactions of other users, and every interaction with ``items`` items."""
    train = as_edges(train)
    chosen_users = np.sort(rng.choice(np.unique(train[:, 0]), size=users, replace=False))
    chosen_items = np.sort(rng.choice(np.unique(train[:, 1]), size=items, replace=False))
    whole = np.isin(train[:, 0], chosen_users) | np.isin(train[:, 1], chosen_items)
    rest = np.nonzero(~whole)[0]
    picked = rng.choice(rest, size=min(edges, len(rest)), replace=False)
    whole[picked] = True
    return DeletionRequest(
        "mixed",
        as_edges(train[whole]),
        users=tuple(map(int, chosen_users)),
        items=tuple(map(int, chosen_items)),
    )


def explicit_edges(train: np.ndarray, pairs: np.ndarray, num_items: int) -> DeletionRequest:
    """A request naming pairs directly; every pair must be a training edge."""
    pairs = normalise_edges(pairs)
    missing = ~contains_edges(train, pairs, num_items)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} requested pairs are not training edges")
    return DeletionRequest("edges", pairs)


@torch.no_grad()
def least_related_edges(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    known: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    batch_size: int = 4096,
) -> np.ndarray:
    """Noise edges: for ``fraction`` of users the item scored lowest for them, and for
    ``fraction`` of items the user scored lowest for it, skipping ``known`` pairs.

    ``user_emb`` (U, d) and ``item_emb`` (I, d) come from a model trained on the clean graph.
    Returns (E, 2) int64 pairs, without duplicates.
    """
    _num_users, num_items = user_emb.shape[0], item_emb.shape[0]
    known_keys = torch.as_tensor(np.sort(edge_keys(known, num_items)), device=user_emb.device)
    out = []
    for rows, cols, transpose in ((user_emb, item_emb, False), (item_emb, user_emb, True)):
        n = rows.shape[0]
        chosen = np.sort(rng.choice(n, size=max(1, round(fraction * n)), replace=False))
        for lo in range(0, len(chosen), batch_size):
            sel = torch.as_tensor(chosen[lo : lo + batch_size], device=rows.device)
            scores = rows[sel] @ cols.T  # (B, n_cols)
            grid_r = sel[:, None].expand_as(scores)
            grid_c = torch.arange(cols.shape[0], device=rows.device)[None, :].expand_as(scores)
            u, i = (grid_c, grid_r) if transpose else (grid_r, grid_c)
            keys = u * num_items + i
            pos = torch.searchsorted(known_keys, keys).clamp_(max=max(len(known_keys) - 1, 0))
            if len(known_keys):
                scores = scores.masked_fill(known_keys[pos] == keys, torch.inf)
            worst = scores.argmin(dim=1)
            pair = (worst, sel) if transpose else (sel, worst)
            out.append(torch.stack(pair, dim=1).cpu().numpy())
    edges = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    return normalise_edges(edges)
