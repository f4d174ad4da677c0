"""Incremental propagation equals full propagation on the residual graph (random small graphs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.graph.bipartite import Graph
from unlearnrec.graph.propagation import (
    RowDelta,
    base_layers,
    combine_layers,
    frontier,
    propagate_change,
    readout_weights,
    residual_graph,
)
from unlearnrec.models import build_model

ATOL = 1e-5


def _random_graph(seed: int, users: int = 40, items: int = 30, p: float = 0.12) -> Graph:
    rng = np.random.default_rng(seed)
    mask = rng.random((users, items)) < p
    mask[np.arange(users), rng.integers(items, size=users)] = True  # no empty user
    u, i = np.nonzero(mask)
    return Graph.from_edges(np.stack([u, i], 1), users, items)


def _model(graph: Graph, name: str = "lightgcn", layers: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(graph.num_users, graph.num_items, ModelConfig(name=name, num_layers=layers))


def _check(graph, model, removed, rows=None, values=None, layers_out=True):
    """Incremental result vs ``model.propagate`` on ``graph.without(removed)`` with the rows set."""
    e0 = model.embedding.detach()
    layers = base_layers(graph, e0, model.config.num_layers if model.name != "mf" else 0)
    weights = readout_weights(model)
    base_final = combine_layers(layers, weights)
    with torch.no_grad():
        assert torch.allclose(base_final, model.propagate(graph), atol=ATOL)
    change = None
    e0_new = e0.clone()
    if rows is not None:
        rows = torch.as_tensor(np.unique(rows), dtype=torch.long)
        delta = values[: len(rows)] - e0[rows]
        e0_new[rows] = values[: len(rows)]
        change = RowDelta(rows, delta)
    result = propagate_change(graph, layers, weights, removed=removed, row_change=change)
    graph_r = graph.without(removed)
    with torch.no_grad():
        full = model.propagate(graph_r, e0_new)
    incremental = result.final.apply(base_final)
    assert torch.allclose(incremental, full, atol=ATOL), (incremental - full).abs().max()
    if layers_out:
        full_layers = base_layers(graph_r, e0_new, len(layers) - 1)
        for h, h_new, d in zip(layers, full_layers, result.layers, strict=True):
            assert torch.allclose(d.apply(h), h_new, atol=ATOL)
    return result, full, base_final


def _random_removed(graph: Graph, rng: np.random.Generator, k: int) -> np.ndarray:
    edges = graph.edges_numpy()
    return edges[rng.choice(len(edges), size=k, replace=False)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_changes_only(seed):
    graph = _random_graph(seed)
    model = _model(graph, seed=seed)
    rng = np.random.default_rng(seed)
    rows = rng.choice(graph.num_nodes, size=5, replace=False)
    _check(graph, model, np.zeros((0, 2), dtype=np.int64), rows, torch.randn(5, 64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edge_removals_only(seed):
    graph = _random_graph(seed)
    model = _model(graph, seed=seed)
    rng = np.random.default_rng(seed + 10)
    _check(graph, model, _random_removed(graph, rng, 7))


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_and_edges_together(seed):
    graph = _random_graph(seed)
    model = _model(graph, seed=seed)
    rng = np.random.default_rng(seed + 20)
    removed = _random_removed(graph, rng, 6)
    # change the removed edges' endpoints (as unlearning does) and two unrelated rows
    rows = np.concatenate(
        [removed[:, 0], removed[:, 1] + graph.num_users, [0, graph.num_nodes - 1]]
    )
    _check(graph, model, removed, rows, torch.randn(len(np.unique(rows)), 64))


def test_whole_users_removed_become_isolated():
    graph = _random_graph(3)
    model = _model(graph, seed=3)
    edges = graph.edges_numpy()
    removed = edges[np.isin(edges[:, 0], [1, 5, 7])]
    rows = np.array([1, 5, 7])  # reset rows of the erased users, as UnlearnRec does
    values = torch.randn(3, 64) * 0.1
    _, full, _ = _check(graph, model, removed, rows, values)
    # an isolated user reads out only its own layer-0 row: w_0 * e0
    assert torch.allclose(full[5], values[1] * readout_weights(model)[0], atol=ATOL)
    graph_r = graph.without(removed)
    assert int(graph_r.degrees()[5]) == 0


def test_whole_item_removed():
    graph = _random_graph(4)
    model = _model(graph, seed=4)
    edges = graph.edges_numpy()
    removed = edges[edges[:, 1] == edges[0, 1]]
    _check(graph, model, removed, np.array([graph.num_users + edges[0, 1]]), torch.randn(1, 64))


@pytest.mark.parametrize("name", ["simgcl", "sgl", "mf"])
def test_other_readouts(name):
    graph = _random_graph(5)
    model = _model(graph, name=name, layers=2, seed=5)
    rng = np.random.default_rng(5)
    removed = _random_removed(graph, rng, 5)
    rows = np.concatenate([removed[:, 0], [3]])
    _check(graph, model, removed, rows, torch.randn(len(np.unique(rows)), 64), layers_out=False)


def _chain(n_users: int) -> Graph:
    """A path u0 - i0 - u1 - i1 - ...: hop distance is the position along the path."""
    edges = [(k, k) for k in range(n_users)] + [(k + 1, k) for k in range(n_users - 1)]
    return Graph.from_edges(np.array(edges), n_users, n_users)


def test_change_reaches_exactly_the_l_hop_frontier():
    """On a path, a row change moves the final embeddings of nodes up to L hops away and no
    further; the incremental result has exactly those rows (a missing hop fails this)."""
    graph = _chain(8)
    model = _model(graph, layers=3)
    e0 = model.embedding.detach()
    layers = base_layers(graph, e0, 3)
    weights = readout_weights(model)
    node = 0  # user 0, an end of the path; the path order is u0, i0, u1, i1, u2, ...
    change = RowDelta(torch.tensor([node]), torch.ones(1, 64))
    result = propagate_change(graph, layers, weights, row_change=change)
    # nodes within 3 hops: u0, i0 (1), u1 (2), i1 (3)
    expected = torch.tensor([0, 1, graph.num_users + 0, graph.num_users + 1])
    assert torch.equal(result.final.rows, torch.sort(expected).values)
    reach = frontier(graph, torch.tensor([node]), 3)
    assert torch.equal(reach[-1], result.final.rows)
    assert result.edges_read < 2 * len(graph.edges)


def test_removed_edge_renormalises_neighbours_of_its_endpoints():
    """Removing one edge changes its endpoints' degrees, hence every entry of their rows: nodes
    one hop beyond the endpoints move at layer 1 already (checked against full propagation)."""
    graph = _chain(6)
    model = _model(graph, layers=1)
    removed = np.array([[2, 2]])  # u2 - i2 in the middle of the path
    result, full, base = _check(graph, model, removed)
    moved = torch.nonzero((full - base).abs().sum(1) > 1e-7).flatten()
    assert torch.equal(result.final.rows[result.final.values.abs().sum(1) > 1e-7], moved)
    assert len(moved) > 2  # more than the two endpoints


def test_gather_matches_apply():
    graph = _random_graph(6)
    model = _model(graph, seed=6)
    layers = base_layers(graph, model.embedding.detach(), 3)
    weights = readout_weights(model)
    base = combine_layers(layers, weights)
    result = propagate_change(graph, layers, weights, removed=graph.edges_numpy()[:4])
    nodes = torch.arange(graph.num_nodes)
    assert torch.allclose(result.final.gather(base, nodes), result.final.apply(base))


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_graph_equals_without(seed):
    """The CSR-edited residual graph is ``Graph.without``'s: same edges, keys and adjacency."""
    graph = _random_graph(seed)
    rng = np.random.default_rng(seed)
    edges = graph.edges_numpy()
    removed = np.concatenate([_random_removed(graph, rng, 5), edges[edges[:, 0] == 2]])
    removed = np.concatenate([removed, [[0, 0], [0, 0]]])  # a pair maybe absent, a repeat
    fast, slow = residual_graph(graph, removed), graph.without(removed)
    assert torch.equal(fast.edges, slow.edges)
    assert torch.equal(fast.keys, slow.keys)
    assert torch.equal(fast.adj.crow_indices(), slow.adj.crow_indices())
    assert torch.equal(fast.adj.col_indices(), slow.adj.col_indices())
    assert torch.allclose(fast.adj.values(), slow.adj.values(), atol=1e-7)
    assert int(fast.degrees()[2]) == 0
