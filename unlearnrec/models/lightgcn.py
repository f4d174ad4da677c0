"""LightGCN (He et al., SIGIR 2020) and MF-BPR, its zero-layer special case."""

from __future__ import annotations

import torch

from unlearnrec.graph.bipartite import Graph, propagate
from unlearnrec.models.base import GraphRecommender


def lightgcn_propagate(adj: torch.Tensor, e0: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Mean of layers 0..L of E^l = adj @ E^{l-1}; (N, d) -> (N, d)."""
    out, h = e0, e0
    for _ in range(num_layers):
        h = propagate(adj, h)
        out = out + h
    return out / (num_layers + 1)


class LightGCN(GraphRecommender):
    name = "lightgcn"

    def propagate(self, graph: Graph, e0: torch.Tensor | None = None) -> torch.Tensor:
        e0 = self.embedding if e0 is None else e0
        return lightgcn_propagate(graph.adj, e0, self.config.num_layers)


class MF(GraphRecommender):
    """Matrix factorisation trained with BPR: no propagation, the graph only feeds sampling."""

    name = "mf"

    def isolated_scale(self) -> float:
        return 1.0

    def propagate(self, graph: Graph, e0: torch.Tensor | None = None) -> torch.Tensor:
        return self.embedding if e0 is None else e0
