"""The Influence Dependency Matrix (IDM) of a deletion request.

Â_Δ = D_Δ^{-1/2} Ā_Δ D_Δ^{-1/2}, where Ā_Δ = [[0, A_Δ], [A_Δᵀ, 0]] is the bipartite adjacency of the
removed edges only and D_Δ their degrees (degree-0 nodes get an empty row). Requests sharing a
user or an item are coupled through it, so a batch of requests is handled jointly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unlearnrec.graph.bipartite import edge_tensor, normalized_adjacency


@dataclass(frozen=True)
class InfluenceDependency:
    """``matrix``: (N, N) sparse CSR Â_Δ. ``touched``: (N,) bool, nodes with a removed edge."""

    matrix: torch.Tensor
    touched: torch.Tensor
    edges: torch.Tensor  # (E_Δ, 2) long, the removed (user, item) pairs


def influence_dependency(
    removed: np.ndarray | torch.Tensor,
    num_users: int,
    num_items: int,
    device,
    graph_degrees: torch.Tensor | None = None,
) -> InfluenceDependency:
    """The IDM of ``removed`` (E_Δ, 2). Normalised by the request's own degrees D_Δ (the method's
    definition) or, with ``graph_degrees`` (N,), by the training graph's degrees D: then Â_Δ is
    exactly the part of the backbone's normalised adjacency that the request takes away, and a
    node's correction scales with the share of its edges removed."""
    edges = edge_tensor(removed, device)
    matrix = normalized_adjacency(edges, num_users, num_items, degrees=graph_degrees)
    touched = torch.zeros(num_users + num_items, dtype=torch.bool, device=device)
    touched[edges[:, 0]] = True
    touched[edges[:, 1] + num_users] = True
    return InfluenceDependency(matrix=matrix, touched=touched, edges=edges)


def drop_edges(
    idm: InfluenceDependency,
    keep_prob: float,
    generator: torch.Generator,
    num_users: int,
    num_items: int,
    graph_degrees: torch.Tensor | None = None,
) -> InfluenceDependency:
    """An edge-dropped copy of the IDM (each removed edge kept with ``keep_prob``), for L_c."""
    mask = torch.rand(len(idm.edges), generator=generator, device=idm.edges.device) < keep_prob
    return influence_dependency(
        idm.edges[mask], num_users, num_items, idm.edges.device, graph_degrees
    )
