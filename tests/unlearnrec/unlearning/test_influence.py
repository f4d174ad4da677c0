"""The influence-function method: CG, curvature products, the reach, forgetting on a tiny set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.evaluation.forgetting import scores
from unlearnrec.experiments.shared import build_request
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import build_model
from unlearnrec.models.shadow import shadow_rows_for
from unlearnrec.unlearning import METHODS, InfluenceConfig, InfluenceUnlearning, ModelState
from unlearnrec.unlearning.influence import (
    bpr_margins,
    bpr_sum,
    conjugate_gradient,
    fixed_triples,
    newton_system,
    reach,
)
from unlearnrec.unlearning.requests import DeletionRequest

from ...conftest import TINY_TRAIN
from .conftest import recall_at_20


def test_cg_solves_a_small_spd_system_to_tolerance():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    out = conjugate_gradient(lambda v: a @ v, b, max_iter=200, tol=1e-10)
    assert out.converged and not out.negative_curvature
    assert out.residual <= 1e-10
    assert torch.allclose(out.x, torch.linalg.solve(a, b), atol=1e-8)
    # at most n iterations in exact arithmetic; a loose tolerance stops earlier
    loose = conjugate_gradient(lambda v: a @ v, b, max_iter=200, tol=1e-2)
    assert loose.converged and loose.iterations < out.iterations and loose.residual <= 1e-2
    capped = conjugate_gradient(lambda v: a @ v, b, max_iter=2, tol=1e-10)
    assert capped.iterations == 2 and not capped.converged


def test_cg_stops_at_negative_curvature():
    a = torch.diag(torch.tensor([1.0, -2.0, 3.0]))
    out = conjugate_gradient(lambda v: a @ v, torch.tensor([1.0, 1.0, 1.0]), 50, 1e-8)
    assert out.negative_curvature and not out.converged


def _tiny_problem(num_layers: int = 2):
    torch.manual_seed(0)
    edges = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [3, 1]])
    graph = Graph.from_edges(edges, 4, 3)
    model = build_model(4, 3, ModelConfig(embedding_dim=3, num_layers=num_layers))
    gen = torch.Generator().manual_seed(0)
    triples = fixed_triples(graph, 2, gen)
    rows = torch.tensor([0, 2, 4, 5])  # users 0 and 2, items 0 and 1
    return model, graph, triples, rows


@pytest.mark.parametrize("num_layers", [0, 2])
def test_hessian_vector_products_match_the_explicit_hessian(num_layers):
    model, graph, triples, rows = _tiny_problem(num_layers)
    e0 = model.embedding.detach()
    wd = 0.1

    def f(x):
        return bpr_sum(model, graph, e0.index_copy(0, rows, x.reshape(len(rows), -1)), *triples, wd)

    x0 = e0[rows].reshape(-1)
    explicit = torch.autograd.functional.hessian(f, x0)  # (R·d, R·d)
    grad, hvp = newton_system(model, graph, e0, rows, triples, wd, curvature="hessian")
    x = x0.clone().requires_grad_(True)
    (g_explicit,) = torch.autograd.grad(f(x), x)
    assert torch.allclose(grad.reshape(-1), g_explicit, atol=1e-5)
    eye = torch.eye(len(x0))
    columns = torch.stack([hvp(eye[k].reshape(len(rows), -1)).reshape(-1) for k in range(len(x0))])
    assert torch.allclose(columns.T, explicit, atol=1e-4)
    # a finite difference of the gradient agrees as well
    v = torch.randn(len(x0), generator=torch.Generator().manual_seed(1))
    h = 1e-2
    xp = (x0 + h * v).requires_grad_(True)
    xm = (x0 - h * v).requires_grad_(True)
    fd = (torch.autograd.grad(f(xp), xp)[0] - torch.autograd.grad(f(xm), xm)[0]) / (2 * h)
    assert torch.allclose(hvp(v.reshape(len(rows), -1)).reshape(-1), fd, atol=1e-3)


def test_gauss_newton_products_match_the_explicit_matrix_and_are_psd():
    model, graph, triples, rows = _tiny_problem(2)
    e0 = model.embedding.detach()
    wd = 0.1
    users, pos, neg = triples

    def z(x):
        return bpr_margins(model, graph, e0.index_copy(0, rows, x.reshape(len(rows), -1)), *triples)

    x0 = e0[rows].reshape(-1)
    jac = torch.autograd.functional.jacobian(z, x0)  # (T, R·d)
    s = torch.sigmoid(z(x0))
    nu = model.num_users
    counts = torch.bincount(torch.cat([users, pos + nu, neg + nu]), minlength=7)[rows].float()
    explicit = jac.T @ torch.diag(s * (1 - s)) @ jac + wd * torch.diag(
        counts.repeat_interleave(e0.shape[1])
    )
    _, gnvp = newton_system(model, graph, e0, rows, triples, wd, curvature="gauss_newton")
    eye = torch.eye(len(x0))
    columns = torch.stack([gnvp(eye[k].reshape(len(rows), -1)).reshape(-1) for k in range(len(x0))])
    assert torch.allclose(columns.T, explicit, atol=1e-5)
    assert float(torch.linalg.eigvalsh((explicit + explicit.T) / 2).min()) > -1e-6


def test_reach_is_the_l_hop_neighbourhood():
    # path u0 - i0 - u1 - i1 - u2 - i2 ; nodes: users 0..2, items 3..5
    graph = Graph.from_edges(np.array([[0, 0], [1, 0], [1, 1], [2, 1], [2, 2]]), 3, 3)
    seeds = torch.zeros(6, dtype=torch.bool)
    seeds[0] = True
    assert reach(graph, seeds, 0).tolist() == seeds.tolist()
    assert torch.nonzero(reach(graph, seeds, 1)).flatten().tolist() == [0, 3]
    assert torch.nonzero(reach(graph, seeds, 2)).flatten().tolist() == [0, 1, 3]
    assert torch.nonzero(reach(graph, seeds, 3)).flatten().tolist() == [0, 1, 3, 4]


def test_only_rows_within_the_reach_change():
    """Two components; hops=1: a request in the first moves only its endpoints and neighbours."""
    edges = np.array(
        [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3], [4, 4], [4, 5], [5, 5], [5, 4]]
    )
    graph = Graph.from_edges(edges, 6, 6)
    torch.manual_seed(0)
    model = build_model(6, 6, ModelConfig(embedding_dim=4, num_layers=2))
    state = ModelState(model, graph, np.zeros((0, 2), dtype=np.int64), TINY_TRAIN)
    request = DeletionRequest("edges", np.array([[1, 1]]))
    out = InfluenceUnlearning(InfluenceConfig(hops=1)).unlearn(state, request)
    moved = (out.model.embedding - model.embedding).abs().sum(1) > 0
    touched = torch.zeros(12, dtype=torch.bool)
    touched[[1, 6 + 1]] = True
    allowed = reach(graph, touched, 1)
    assert bool(moved.any())
    assert not bool((moved & ~allowed).any())
    assert not bool(moved[[4, 5, 6 + 4, 6 + 5]].any())  # the other component
    assert out.details["reach_nodes"] == int(allowed.sum())
    # the default reach is the backbone's layers (2 hops here), wider than 1 hop
    wide = InfluenceUnlearning().unlearn(state, request)
    assert wide.details["hops"] == 2 and wide.details["reach_nodes"] > int(allowed.sum())
    assert not bool(((wide.model.embedding - model.embedding).abs().sum(1) > 0)[[4, 5]].any())


def test_forgotten_scores_fall_and_utility_stays_near_retrain(random_case, tiny_splits):
    state, request, retrain = random_case
    method = METHODS["influence"]({})
    assert method.prepare(state) == 0.0
    out = method.unlearn(state, request)
    assert out.method == "influence"
    assert len(out.graph.edges) == len(state.graph.edges) - request.num_edges
    assert out.details["cg_converged"] and out.details["cg_iterations"] > 0
    before = scores(state.model, state.graph, request.edges).mean()
    after = scores(out.model, out.graph, request.edges).mean()
    # the Newton step itself lowers them, beyond what dropping the edges from A does
    dropped_only = scores(state.model, out.graph, request.edges).mean()
    assert after < dropped_only < before
    # stated bound: Recall@20 at least 0.95x retrain's on the tiny set
    assert recall_at_20(out, tiny_splits) >= 0.95 * recall_at_20(retrain, tiny_splits)


def test_the_step_is_deterministic_given_the_seed(random_case):
    state, request, _ = random_case
    graph = state.graph
    first = fixed_triples(graph, 2, torch.Generator().manual_seed(3))
    again = fixed_triples(graph, 2, torch.Generator().manual_seed(3))
    other = fixed_triples(graph, 2, torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not torch.equal(first[2], other[2])
    assert not bool(graph.contains(first[0], first[2]).any())  # never a positive
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # threaded kernels may sum floats in another order
    try:
        a = InfluenceUnlearning(InfluenceConfig(seed=3)).unlearn(state, request)
        b = InfluenceUnlearning(InfluenceConfig(seed=3)).unlearn(state, request)
        c = InfluenceUnlearning(InfluenceConfig(seed=4)).unlearn(state, request)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a.model.embedding, b.model.embedding)
    assert float((a.model.embedding - c.model.embedding).detach().abs().max()) > 1e-3  # other negs


def test_erased_users_get_fresh_rows(tiny_base, tiny_splits):
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    request = build_request("users:3", tiny_splits.fit, 0)
    out = InfluenceUnlearning().unlearn(state, request)
    users = list(request.users)
    assert out.details["reset_nodes"] >= 3
    assert not torch.allclose(out.model.embedding[users], model.embedding[users])
    # a fresh draw: about init_std per coordinate, unrelated to the old row
    assert float(out.model.embedding[users].detach().std()) == pytest.approx(
        model.init_std, rel=0.5
    )


def test_unknown_curvature_is_an_error(random_case):
    state, request, _ = random_case
    with pytest.raises(ValueError, match="curvature"):
        InfluenceUnlearning(InfluenceConfig(curvature="fisher")).unlearn(state, request)
    with pytest.raises(ValueError, match="unknown keys"):
        METHODS["influence"]({"dampng": 1.0})


def test_taken_down_items_fresh_or_moved_by_the_newton_step(tiny_base, tiny_splits):
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    request = build_request("items:2", tiny_splits.fit, 0)
    rows = [model.num_users + i for i in request.items]
    fresh = InfluenceUnlearning().unlearn(state, request)
    newton = InfluenceUnlearning(InfluenceConfig(isolated_items="newton")).unlearn(state, request)
    assert fresh.details["reset_nodes"] >= 2 and newton.details["reset_nodes"] == 0
    old = model.embedding.detach()[rows]
    moved = newton.model.embedding.detach()[rows]
    # kept as parameters: moved from the trained row by the step, not replaced by a draw
    assert float((moved - old).norm()) > 0
    assert not torch.allclose(moved, fresh.model.embedding.detach()[rows])
    assert (
        scores(newton.model, newton.graph, request.edges).mean()
        < scores(model, newton.graph, request.edges).mean()
    )
    with pytest.raises(ValueError, match="isolated_items"):
        InfluenceUnlearning(InfluenceConfig(isolated_items="zero")).unlearn(state, request)


def test_taken_down_items_get_the_models_shadow_rows(tiny_base, tiny_splits):
    """A reset item row is where retrain puts an item nobody interacts with (its shadow row),
    scored below held-out pairs, not a chance-level draw."""
    model, graph, _ = tiny_base
    state = ModelState(model, graph, tiny_splits.valid, TINY_TRAIN)
    request = build_request("items:2", tiny_splits.fit, 0)
    rows = [model.num_users + i for i in request.items]
    out = InfluenceUnlearning().unlearn(state, request)
    expected = shadow_rows_for(model, torch.tensor(sorted(request.items)))
    assert expected is not None
    assert torch.equal(out.model.embedding.detach()[sorted(rows)], expected)
    assert (
        scores(out.model, out.graph, request.edges).mean()
        < scores(out.model, out.graph, tiny_splits.test).mean()
    )
