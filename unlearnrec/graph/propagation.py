"""Incremental propagation: the change of a backbone's final embeddings when a few layer-0 rows
change and/or a few edges are removed, computed on the L-hop frontier of the change only.

LightGCN-style propagation is linear in the layer-0 table: with per-layer embeddings
``H_l = A^l E0`` of the base model (A the base graph's normalised adjacency) and the residual
adjacency A' (the base graph less the removed edges, *renormalised*: every endpoint of a removed
edge has a smaller degree, so every entry in its row and column changes), the per-layer change
``D_l = H'_l − H_l`` of ``H'_l = A'^l E0'`` obeys

    D_0 = E0' − E0                       (non-zero on the changed rows only)
    D_l = A' D_{l−1} + (A' − A) H_{l−1}  (l = 1..L)

``A' D_{l−1}`` reaches one hop beyond the support of ``D_{l−1}``; ``(A' − A)`` is non-zero only on
entries with an endpoint whose degree changed. So every ``D_l`` lives on the l-hop frontier of the
changed rows and of the removed edges' endpoints, and the cost is the number of base edges incident
to that frontier, not the size of the graph. Final embeddings are ``Σ_l w_l H_l``
(``readout_weights``): the final change is ``Σ_l w_l D_l``.

A' is never built: its entries on the rows read are recomputed from the base CSR (the residual
degree of a node is its base degree less its removed edges), so nothing here touches all edges.
Exact to float tolerance against full propagation on ``Graph.without(removed)``
(tests/unlearnrec/test_propagation.py).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from unlearnrec.graph.bipartite import Graph, edge_tensor
from unlearnrec.models.base import GraphRecommender


@dataclass(frozen=True)
class RowDelta:
    """A change of an (N, d) table confined to a few rows: ``rows`` (k,) sorted unique node ids
    and ``values`` (k, d), the amounts added to those rows."""

    rows: torch.Tensor
    values: torch.Tensor

    @classmethod
    def empty(cls, dim: int, device, dtype=torch.float32) -> RowDelta:
        return cls(
            torch.zeros(0, dtype=torch.long, device=device),
            torch.zeros(0, dim, dtype=dtype, device=device),
        )

    @classmethod
    def combine(cls, parts: list[tuple[torch.Tensor, torch.Tensor]], dim: int, device) -> RowDelta:
        """Sum of (rows, values) contributions, rows possibly repeated."""
        parts = [(r, v) for r, v in parts if len(r)]
        if not parts:
            return cls.empty(dim, device)
        rows = torch.cat([r for r, _ in parts])
        values = torch.cat([v for _, v in parts])
        uniq, inverse = torch.unique(rows, return_inverse=True)
        out = values.new_zeros(len(uniq), values.shape[1]).index_add_(0, inverse, values)
        return cls(uniq, out)

    def scaled(self, w: float) -> RowDelta:
        return RowDelta(self.rows, self.values * w)

    def apply(self, base: torch.Tensor) -> torch.Tensor:
        """``base`` (N, d) plus this change, as a new tensor."""
        return base.clone().index_add_(0, self.rows, self.values.to(base.dtype))

    def gather(self, base: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """Rows ``nodes`` of ``base + self`` without materialising the (N, d) sum."""
        out = base[nodes]
        if len(self.rows) == 0:
            return out
        pos = torch.searchsorted(self.rows, nodes).clamp_(max=len(self.rows) - 1)
        hit = self.rows[pos] == nodes
        return out + torch.where(hit[:, None], self.values[pos], out.new_zeros(()))


def readout_weights(model: GraphRecommender) -> list[float]:
    """w_l with final = Σ_l w_l A^l E0 for the backbone's inference readout."""
    if model.name == "mf":
        return [1.0]
    layers = model.config.num_layers
    if model.name == "simgcl":  # mean of layers 1..L (the noise is a training-time view only)
        return [0.0] + [1.0 / max(layers, 1)] * layers
    if model.name in ("lightgcn", "sgl"):
        return [1.0 / (layers + 1)] * (layers + 1)
    raise ValueError(f"no linear readout known for backbone {model.name!r}")


@torch.no_grad()
def base_layers(graph: Graph, e0: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
    """[H_0, .., H_L] with H_l = A^l e0 over ``graph``: what incremental propagation starts from
    (computed once per base model)."""
    out = [e0.detach()]
    for _ in range(num_layers):
        out.append(graph.adj @ out[-1])
    return out


def combine_layers(layers: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    out = layers[0] * weights[0]
    for h, w in zip(layers[1:], weights[1:], strict=True):
        out = out + h * w
    return out


class ResidualAdjacency:
    """Rows of A' (the base graph less ``removed``, renormalised) read from the base CSR on demand.

    Nothing here is O(E): a row read costs the node's base degree; residual degrees are the base
    degrees (CSR row lengths) less the removed edges at each endpoint.
    """

    def __init__(self, graph: Graph, removed: np.ndarray | torch.Tensor):
        self.graph = graph
        device = graph.device
        adj = graph.adj
        self.crow = adj.crow_indices()
        self.col = adj.col_indices()
        self.val = adj.values()
        removed = edge_tensor(removed, device)
        self.nu, self.ni = graph.num_users, graph.num_items
        keys = torch.unique(removed[:, 0] * self.ni + removed[:, 1])
        self.removed_keys = keys  # sorted
        users, items = keys // self.ni, keys % self.ni
        ends = torch.cat([users, items + self.nu])
        # endpoints of removed edges (their degree changes) and how many edges each loses
        self.changed, self.lost = torch.unique(ends, return_counts=True)

    def degree(self, nodes: torch.Tensor) -> torch.Tensor:
        """Base degree (CSR row length) of ``nodes``."""
        return self.crow[nodes + 1] - self.crow[nodes]

    def residual_degree(self, nodes: torch.Tensor) -> torch.Tensor:
        deg = self.degree(nodes)
        if len(self.changed) == 0:
            return deg
        pos = torch.searchsorted(self.changed, nodes).clamp_(max=len(self.changed) - 1)
        hit = self.changed[pos] == nodes
        return deg - torch.where(hit, self.lost[pos], torch.zeros_like(deg))

    def is_removed(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        if len(self.removed_keys) == 0:
            return torch.zeros_like(src, dtype=torch.bool)
        user_first = src < self.nu
        users = torch.where(user_first, src, dst)
        items = torch.where(user_first, dst, src) - self.nu
        q = users * self.ni + items
        pos = torch.searchsorted(self.removed_keys, q).clamp_(max=len(self.removed_keys) - 1)
        return self.removed_keys[pos] == q

    def rows(self, nodes: torch.Tensor, with_offsets: bool = False) -> tuple[torch.Tensor, ...]:
        """Base entries of rows ``nodes``: (src, dst, a = A[src, dst], a' = A'[src, dst]), and
        with ``with_offsets`` their positions in the CSR arrays."""
        starts = self.crow[nodes]
        counts = self.crow[nodes + 1] - starts
        total = int(counts.sum())
        device = nodes.device
        if total == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            out = (empty, empty, self.val.new_zeros(0), self.val.new_zeros(0))
            return (*out, empty) if with_offsets else out
        src = torch.repeat_interleave(nodes, counts)
        begin = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(total, device=device) - torch.repeat_interleave(
            begin - starts, counts
        )
        dst = self.col[offsets]
        a = self.val[offsets]
        kept = ~self.is_removed(src, dst)
        d_src = self.residual_degree(src).to(a.dtype)
        d_dst = self.residual_degree(dst).to(a.dtype)
        inv_src = torch.where(d_src > 0, d_src.clamp_min(1).pow(-0.5), a.new_zeros(()))
        inv_dst = torch.where(d_dst > 0, d_dst.clamp_min(1).pow(-0.5), a.new_zeros(()))
        a_new = torch.where(kept, inv_src * inv_dst, a.new_zeros(()))
        if with_offsets:
            return src, dst, a, a_new, offsets
        return src, dst, a, a_new

    def frontier_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        """Residual neighbours of ``nodes`` (sorted unique)."""
        _, dst, _, a_new = self.rows(nodes)
        return torch.unique(dst[a_new != 0])


@dataclass(frozen=True)
class IncrementalResult:
    """Per-layer changes D_0..D_L and the final change Σ_l w_l D_l; ``edges_read``: base CSR
    entries read (the work done, O(frontier), not O(E))."""

    layers: list[RowDelta]
    final: RowDelta
    edges_read: int


@torch.no_grad()
def propagate_change(
    graph: Graph,
    layers: list[torch.Tensor],
    weights: list[float],
    removed: np.ndarray | torch.Tensor | None = None,
    row_change: RowDelta | None = None,
    residual: ResidualAdjacency | None = None,
) -> IncrementalResult:
    """The change of per-layer and final embeddings when edges ``removed`` (R, 2) leave ``graph``
    and layer 0 changes by ``row_change``; ``layers`` are the base's [H_0..H_L]
    (``base_layers``), ``weights`` the readout (``readout_weights``).

    ``base final + result.final`` equals ``propagate(graph.without(removed), e0 + row_change)``.
    """
    device, dim = graph.device, layers[0].shape[1]
    num_layers = len(layers) - 1
    if len(weights) != num_layers + 1:
        raise ValueError(f"{len(weights)} readout weights for {num_layers + 1} layers")
    if residual is None:
        if removed is None:
            removed = torch.zeros(0, 2, dtype=torch.long, device=device)
        residual = ResidualAdjacency(graph, removed)
    d = row_change if row_change is not None else RowDelta.empty(dim, device, layers[0].dtype)
    per_layer = [d]
    read = 0
    # (A' − A) is the same matrix at every layer: its entries, once. From row c of every changed
    # node c: (c, j) and, where j did not change (else row j yields it), the transpose (j, c).
    c_src, c_dst, c_a, c_new = residual.rows(residual.changed)
    read += len(c_src)
    diff = c_new - c_a
    nz = diff != 0
    c_src, c_dst, diff = c_src[nz], c_dst[nz], diff[nz]
    pos = torch.searchsorted(residual.changed, c_dst).clamp_(max=max(len(residual.changed) - 1, 0))
    transpose = residual.changed[pos] != c_dst if len(residual.changed) else c_dst.new_ones(0)
    diff_rows = torch.cat([c_src, c_dst[transpose]])
    diff_cols = torch.cat([c_dst, c_src[transpose]])
    diff_vals = torch.cat([diff, diff[transpose]])
    for layer in range(1, num_layers + 1):
        parts = []
        if len(d.rows):
            # A' D: row s of D spreads to every residual neighbour j of s (A' is symmetric)
            src, dst, _, a_new = residual.rows(d.rows)
            read += len(src)
            keep = a_new != 0
            src, dst, a_new = src[keep], dst[keep], a_new[keep]
            slot = torch.searchsorted(d.rows, src)
            parts.append((dst, a_new[:, None] * d.values[slot]))
        if len(diff_rows):
            h = layers[layer - 1]
            parts.append((diff_rows, diff_vals[:, None] * h[diff_cols]))
        d = RowDelta.combine(parts, dim, device)
        per_layer.append(d)
    final = RowDelta.combine(
        [(x.rows, x.values * w) for x, w in zip(per_layer, weights, strict=True) if w], dim, device
    )
    return IncrementalResult(per_layer, final, read)


def frontier(
    graph: Graph, seeds: torch.Tensor, hops: int, removed: np.ndarray | torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Nodes within 0..hops residual hops of ``seeds`` (sorted unique), one tensor per hop:
    where an incremental change can reach (diagnostics and the scaling bench)."""
    device = graph.device
    if removed is None:
        removed = torch.zeros(0, 2, dtype=torch.long, device=device)
    res = ResidualAdjacency(graph, removed)
    out = [torch.unique(seeds)]
    for _ in range(hops):
        out.append(torch.unique(torch.cat([out[-1], res.frontier_nodes(out[-1])])))
    return out


# id(adj) -> (weak reference to adj, positions); an entry dies with its adjacency
_TRANSPOSE: dict[int, tuple[weakref.ref, torch.Tensor]] = {}


def transpose_positions(graph: Graph) -> torch.Tensor:
    """(nnz,) for every CSR entry (r, c) of ``graph.adj``, the position of its transpose (c, r);
    built once per graph (O(E log E)) and cached while the graph lives."""
    adj = graph.adj
    ref, cached = _TRANSPOSE.get(id(adj), (None, None))
    if ref is None or ref() is not adj or cached is None:
        crow, col = adj.crow_indices(), adj.col_indices()
        n = graph.num_nodes
        rows = torch.repeat_interleave(torch.arange(n, device=col.device), crow[1:] - crow[:-1])
        cached = torch.searchsorted(rows * n + col, col * n + rows)
        key = id(adj)
        _TRANSPOSE[key] = (weakref.ref(adj, lambda _: _TRANSPOSE.pop(key, None)), cached)
    return cached


def residual_graph(graph: Graph, removed: np.ndarray | torch.Tensor) -> Graph:
    """``graph.without(removed)``, built by editing the base CSR instead of re-sorting every edge:
    the same edges, keys and adjacency. The removed entries are cut out (a memcpy of the rest),
    and only the entries whose degree normalisation changed (the rows and columns of the removed
    edges' endpoints) get new values, so the work beyond the copy is O(request's degrees) once
    ``transpose_positions`` is cached for the base graph."""
    device = graph.device
    removed = edge_tensor(removed, device)
    nu, ni = graph.num_users, graph.num_items
    n = graph.num_nodes
    if len(removed) == 0 or len(graph.keys) == 0:
        return graph
    rk = torch.unique(removed[:, 0] * ni + removed[:, 1])
    pos = torch.searchsorted(graph.keys, rk).clamp_(max=len(graph.keys) - 1)
    hit = graph.keys[pos] == rk
    pos, rk = pos[hit], rk[hit]
    if len(pos) == 0:
        return graph

    def cut(t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        # on the CPU: the kept runs between the cut positions, copied (boolean indexing, torch's
        # or numpy's, is several times slower on one thread)
        if t.device.type == "cpu":
            a, w = t.numpy(), np.unique(where.numpy())
            if len(w) > 10_000:
                return torch.from_numpy(np.delete(a, w, axis=0))
            bounds = zip(np.concatenate([[0], w + 1]), np.concatenate([w, [len(a)]]), strict=True)
            return torch.from_numpy(np.concatenate([a[lo:hi] for lo, hi in bounds]))
        keep = torch.ones(len(t), dtype=torch.bool, device=t.device)
        keep[where] = False
        return t[keep]

    edges, keys = cut(graph.edges, pos), cut(graph.keys, pos)
    res = ResidualAdjacency(graph, torch.stack([rk // ni, rk % ni], 1))
    src, dst, _, a_new, offsets = res.rows(res.changed, with_offsets=True)
    gone = res.is_removed(src, dst)
    # the CSR entries of removed edges (both directions: both endpoints are in res.changed)
    lost = torch.zeros(n + 1, dtype=torch.long, device=device)
    lost.index_add_(0, src[gone] + 1, torch.ones_like(src[gone]))
    crow = res.crow - torch.cumsum(lost, 0)
    dead = torch.sort(offsets[gone]).values
    col, values = cut(res.col, dead), cut(res.val, dead)
    # new values: every kept entry of a changed row, and its transpose in the other endpoint's row
    old = offsets[~gone]
    if len(old):
        a_new = a_new[~gone]
        old_t = transpose_positions(graph)[old]
        values[old - torch.searchsorted(dead, old)] = a_new
        values[old_t - torch.searchsorted(dead, old_t)] = a_new
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        adj = torch.sparse_csr_tensor(crow, col, values, (n, n))
    return Graph(nu, ni, edges, adj, keys)
