"""The user-item bipartite graph and its symmetric-normalised adjacency.

Node ids: users are ``0..num_users-1``, item ``i`` is node ``num_users + i``; N = num_users +
num_items. Models never build a graph: they receive a ``Graph`` on every call, so unlearning is
"the same model on a smaller graph".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from unlearnrec.data.dataset import as_edges, edge_keys, normalise_edges


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``: the backward pass is ``adj @ grad`` again.

    Saves the transpose that autograd would otherwise build for a CSR matrix on every step.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, ctx.adj @ grad


def propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One propagation step: (N, N) symmetric sparse ``adj`` times (N, d) dense ``x``."""
    return _SymmetricSpmm.apply(adj, x)


def normalized_adjacency(
    edges: torch.Tensor, num_users: int, num_items: int, *, degrees: torch.Tensor | None = None
) -> torch.Tensor:
    """D^{-1/2} A D^{-1/2} of the bipartite graph as an (N, N) sparse CSR tensor.

    ``edges``: (E, 2) long tensor of (user, item). ``degrees``: (N,) the D to normalise by
    (default: the degrees in ``edges`` itself). Nodes of degree 0 get an empty row.
    """
    n = num_users + num_items
    device = edges.device
    if len(edges) == 0:
        crow = torch.zeros(n + 1, dtype=torch.long, device=device)
        empty = torch.zeros(0, dtype=torch.long, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, empty, empty.float(), (n, n))
    rows = torch.cat([edges[:, 0], edges[:, 1] + num_users])
    cols = torch.cat([edges[:, 1] + num_users, edges[:, 0]])
    if degrees is None:
        deg = torch.zeros(n, device=device).index_add_(
            0, rows, torch.ones_like(rows, dtype=torch.float)
        )
    else:
        deg = degrees.float()
    inv_sqrt = deg.pow(-0.5)
    inv_sqrt[deg == 0] = 0.0
    values = inv_sqrt[rows] * inv_sqrt[cols]
    with warnings.catch_warnings():
        # torch flags every sparse CSR construction as "beta"; the ops used here are stable.
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce()
        return coo.to_sparse_csr()


def edge_tensor(pairs: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """(E, 2) user-item pairs as a long tensor on ``device``, from numpy or from a tensor on any
    device (a CUDA tensor has no numpy view, so it is moved, not converted)."""
    if isinstance(pairs, torch.Tensor):
        return pairs.to(device=device, dtype=torch.long).reshape(-1, 2)
    return torch.as_tensor(as_edges(pairs), dtype=torch.long, device=device)


@dataclass(frozen=True)
class Graph:
    """Training edges of a model and their normalised adjacency, on one device.

    ``edges``: (E, 2) long tensor, sorted by (user, item). ``keys``: the sorted pair keys
    ``user * num_items + item``, for membership tests (negative sampling, masking).
    """

    num_users: int
    num_items: int
    edges: torch.Tensor
    adj: torch.Tensor
    keys: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @property
    def device(self) -> torch.device:
        return self.edges.device

    @classmethod
    def from_edges(
        cls,
        edges: np.ndarray | torch.Tensor,
        num_users: int,
        num_items: int,
        device: torch.device | str = "cpu",
    ) -> Graph:
        if isinstance(edges, torch.Tensor):
            edges = edges.detach().cpu().numpy()
        arr = normalise_edges(edges)
        if len(arr) and (arr[:, 0].max() >= num_users or arr[:, 1].max() >= num_items):
            raise ValueError("edge ids out of range for this graph")
        t = torch.as_tensor(arr, dtype=torch.long, device=device)
        keys = torch.as_tensor(edge_keys(arr, num_items), dtype=torch.long, device=device)
        return cls(num_users, num_items, t, normalized_adjacency(t, num_users, num_items), keys)

    def edges_numpy(self) -> np.ndarray:
        return self.edges.cpu().numpy()

    def without(self, removed: np.ndarray | torch.Tensor) -> Graph:
        """The residual graph A_r = A - A_Delta."""
        if isinstance(removed, torch.Tensor):
            removed = removed.cpu().numpy()
        removed = as_edges(removed)
        if len(removed) == 0:
            return self
        keep = ~torch.isin(
            self.keys, torch.as_tensor(edge_keys(removed, self.num_items), device=self.device)
        )
        return Graph.from_edges(
            self.edges[keep], self.num_users, self.num_items, device=self.device
        )

    def with_edges(self, added: np.ndarray) -> Graph:
        """The graph with extra edges (e.g. injected noise)."""
        both = np.concatenate([self.edges_numpy(), as_edges(added)])
        return Graph.from_edges(both, self.num_users, self.num_items, device=self.device)

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean mask: which (user, item) pairs are edges of this graph."""
        q = users * self.num_items + items
        pos = torch.searchsorted(self.keys, q).clamp_(max=max(len(self.keys) - 1, 0))
        if len(self.keys) == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        return self.keys[pos] == q

    def degrees(self) -> torch.Tensor:
        """(N,) node degrees."""
        n = self.num_nodes
        idx = torch.cat([self.edges[:, 0], self.edges[:, 1] + self.num_users])
        return torch.zeros(n, dtype=torch.long, device=self.device).index_add_(
            0, idx, torch.ones_like(idx)
        )

    def drop_edges(self, keep_prob: float, generator: torch.Generator) -> torch.Tensor:
        """Normalised adjacency of a random subgraph keeping each edge with ``keep_prob``."""
        mask = torch.rand(len(self.edges), generator=generator, device=self.device) < keep_prob
        return normalized_adjacency(self.edges[mask], self.num_users, self.num_items)
