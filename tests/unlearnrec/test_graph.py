"""The normalised adjacency and propagation against dense computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.graph.bipartite import Graph, edge_tensor, normalized_adjacency, propagate
from unlearnrec.models.lightgcn import lightgcn_propagate

EDGES = np.array([[0, 0], [0, 2], [1, 1], [2, 0], [2, 1], [2, 2]])
NU, NI = 4, 3  # user 3 has no edge


def dense_norm_adj(edges: np.ndarray, nu: int, ni: int) -> torch.Tensor:
    a = torch.zeros(nu + ni, nu + ni, dtype=torch.float64)
    for u, i in edges:
        a[u, nu + i] = a[nu + i, u] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


def test_normalized_adjacency_matches_dense_formula():
    """D^-1/2 A D^-1/2 equals the dense computation; isolated nodes get empty rows."""
    adj = normalized_adjacency(torch.as_tensor(EDGES), NU, NI).to_dense().double()
    expected = dense_norm_adj(EDGES, NU, NI)
    assert torch.allclose(adj, expected, atol=1e-6)
    assert adj[3].abs().sum() == 0


def test_propagation_and_its_gradient_match_dense():
    """Sparse propagation and the symmetric backward pass agree with dense autograd."""
    g = Graph.from_edges(EDGES, NU, NI)
    dense = dense_norm_adj(EDGES, NU, NI).float()
    x = torch.randn(NU + NI, 5, requires_grad=True)
    x_dense = x.detach().clone().requires_grad_(True)
    out = lightgcn_propagate(g.adj, x, 3)
    h, acc = x_dense, x_dense
    for _ in range(3):
        h = dense @ h
        acc = acc + h
    expected = acc / 4
    assert torch.allclose(out, expected, atol=1e-5)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    assert torch.allclose(x.grad, x_dense.grad, atol=1e-5)
    assert torch.allclose(propagate(g.adj, x.detach()), dense @ x.detach(), atol=1e-6)


def test_residual_graph_and_membership():
    """without() removes exactly the listed pairs; contains() answers membership."""
    g = Graph.from_edges(EDGES, NU, NI)
    r = g.without(np.array([[2, 1], [0, 0]]))
    assert sorted(map(tuple, r.edges_numpy().tolist())) == [(0, 2), (1, 1), (2, 0), (2, 2)]
    got = g.contains(torch.tensor([0, 0, 3, 2]), torch.tensor([0, 1, 0, 2]))
    assert got.tolist() == [True, False, False, True]
    assert g.degrees().tolist() == [2, 1, 3, 0, 2, 2, 2]


def test_edge_tensor_takes_numpy_lists_and_tensors_alike():
    pairs = np.array([[0, 1], [2, 3]])
    from_numpy = edge_tensor(pairs, "cpu")
    assert from_numpy.dtype == torch.long and from_numpy.tolist() == [[0, 1], [2, 3]]
    assert edge_tensor([[0, 1], [2, 3]], "cpu").tolist() == [[0, 1], [2, 3]]
    assert edge_tensor(torch.tensor([0, 1, 2, 3], dtype=torch.int32), "cpu").tolist() == [
        [0, 1],
        [2, 3],
    ]
    assert edge_tensor(np.zeros((0, 2)), "cpu").shape == (0, 2)
    with pytest.raises(ValueError, match=r"\(E, 2\)"):
        edge_tensor(np.zeros((2, 3)), "cpu")
