"""An influence-function method (IFRU / GIF style): one Newton step on the layer-0 embeddings of
the nodes a request reaches, the inverse curvature applied by conjugate gradient on
curvature-vector products (double backward through the backbone's propagation).

Objective. The backbone's BPR training loss (BPR + the L2 of the batch rows, as in
``training.model_loss``; a self-supervised term, if any, is left out) written as a *sum* over
fixed training triples (u, i, j): each training edge (u, i) gets ``negatives`` items j drawn once,
seeded, among items u has no edge with (deterministic given ``seed``)::

    L_G(θ) = Σ_{(u,i,j) ∈ T_G} softplus(ŝ_G(u,j) − ŝ_G(u,i)) + wd/2 (‖e_u‖² + ‖e_i‖² + ‖e_j‖²)

where ŝ_G scores over the graph G (LightGCN propagates over it). Removing the edges D turns the
training graph A into A_r = A − D. At the trained θ*, ∇L_A(θ*) ≈ 0; the Newton step towards the
minimum of the retained objective is

    Δθ = −H_r⁻¹ g,   g = ∇L_{A_r}(θ*) − ∇L_A(θ*),   H_r = ∇²L_{A_r}(θ*) + λI.

Subtracting ∇L_A(θ*) (zero at an exact optimum) keeps the step to what the request changes and
not what early stopping left unconverged. Without the graph change (MF), g = −Σ_{e∈D} ∇ℓ_e and
Δθ = H_r⁻¹ Σ_{e∈D} ∇ℓ_e, the classic influence of removing D. **The 1/n scaling**: the training
loss is a mean over n triples and the retained one over n_r; the Newton step of the mean objective
is the same, since 1/n_r multiplies both g and H_r and cancels: Δθ = −(H_r/n_r)⁻¹(g/n_r). The
only place the scale shows is the damping: λ here is added to the *summed* Hessian, i.e. λ/n_r on
the mean one, so it does not scale with the number of edges (a row's summed curvature grows with
its node's degree instead). (Mixing the scales — the
1/n of the full loss in g with an H of the mean over n_r, or a sum against a mean — would rescale
the step by n or n/n_r.)

Restriction. θ is the layer-0 rows of the nodes within ``hops`` (default: the backbone's layers)
of the removed edges' endpoints in A: the nodes whose final embeddings, and so whose scores, the
request changes. Every other row is fixed, so H_r is the principal sub-matrix of the full Hessian
on those rows. Only triples with a node within ``hops`` of those rows are evaluated (the others
have zero gradient in θ).
On a dense graph such as ML-100K three hops reach nearly every node; on a sparse one far fewer.

Curvature (``curvature``). BPR's Hessian is not positive definite in general (scores are
bilinear in the rows): with the exact Hessian CG stops at the first direction of non-positive
curvature (truncated CG) and reports it, and on ML-100K that happens within a few iterations at
useful dampings (docs/benchmarks.md). The default replaces H_r by its generalised Gauss-Newton
part Jᵀdiag(σ'(z))J + wd·diag(row counts) (z the triples' score margins), positive semi-definite,
so CG on it + λI converges.

Nodes left with no edge (erased users, taken-down items) get a freshly drawn layer-0 row, as
retrain gives them (``reset_isolated``); they are not parameters of the step (the retained loss
has no curvature in an erased user's row, so a Newton step there would be −g/λ).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from unlearnrec.config import from_dict
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender
from unlearnrec.training.loop import make_generator, sample_negatives
from unlearnrec.unlearning.base import (
    ModelState,
    NoPreparation,
    Stopwatch,
    UnlearnOutcome,
    endpoint_mask,
    method_weight_decay,
    request_edges,
    reset_rows,
)
from unlearnrec.unlearning.requests import DeletionRequest


@dataclass(frozen=True)
class InfluenceConfig:
    hops: int | None = None  # reach of the request; None: the backbone's propagation layers
    negatives: int = 1  # fixed negatives drawn per training edge
    # "gauss_newton" (PSD) or the exact "hessian" (indefinite: CG stops at negative curvature)
    curvature: str = "gauss_newton"
    damping: float = 0.1  # λ added to the summed loss's curvature (see the module docstring)
    cg_max_iter: int = 100  # conjugate-gradient iterations at most
    cg_tol: float = 1e-3  # stop when ‖r‖ ≤ tol·‖g‖
    scale: float = 1.0  # multiplier of the Newton step (1: the step as derived)
    weight_decay: float | None = None  # None: the training config's
    reset_isolated: bool = True  # nodes left without edges get a fresh row, as retrain has them
    # taken-down items (left without edges): "fresh" row (with reset_isolated; the model's shadow
    # row when it has them, where retrain puts such an item: models/shadow.py), or "newton": kept
    # as parameters of the step, where the retained loss still sees them as sampled negatives
    isolated_items: str = "fresh"
    seed: int = 0


@dataclass
class CGResult:
    x: torch.Tensor
    iterations: int
    residual: float  # ‖b − A x‖ / ‖b‖ at the end
    converged: bool
    negative_curvature: bool  # stopped at a direction with pᵀAp ≤ 0


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    max_iter: int,
    tol: float,
) -> CGResult:
    """Solve A x = b for a symmetric A given as ``matvec``; x₀ = 0. Truncated: stops at ``tol``
    (relative residual), after ``max_iter`` products, or at the first p with pᵀAp ≤ 0 (then x is
    the last iterate, or p scaled along b when that happens at the first step)."""
    x = torch.zeros_like(b)
    b_norm = float(b.norm())
    if b_norm == 0.0:
        return CGResult(x, 0, 0.0, True, False)
    r = b.clone()
    p = r.clone()
    rs = float((r * r).sum())
    it = 0
    for it in range(1, max_iter + 1):
        ap = matvec(p)
        curvature = float((p * ap).sum())
        if curvature <= 0.0:
            if it == 1:
                x = b / b_norm  # no curvature information: a unit step along b
            return CGResult(x, it, float(r.norm()) / b_norm, False, True)
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float((r * r).sum())
        if rs_new**0.5 <= tol * b_norm:
            return CGResult(x, it, rs_new**0.5 / b_norm, True, False)
        p = r + (rs_new / rs) * p
        rs = rs_new
    return CGResult(x, it, rs**0.5 / b_norm, False, False)


def reach(graph: Graph, seeds: torch.Tensor, hops: int) -> torch.Tensor:
    """(N,) bool: nodes within ``hops`` edges of the ``seeds`` (N,) bool mask in ``graph``."""
    mask = seeds.clone()
    frontier = seeds.float().unsqueeze(1)
    for _ in range(hops):
        frontier = ((graph.adj @ frontier) > 0).float()
        new = frontier.squeeze(1).bool() & ~mask
        if not bool(new.any()):
            break
        mask |= new
        frontier = new.float().unsqueeze(1)
    return mask


def fixed_triples(
    graph: Graph, negatives: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every edge of ``graph`` with ``negatives`` items its user has no edge with, drawn with
    ``generator`` (so a seed fixes them): (users, positives, negatives), each (E·m,)."""
    users = graph.edges[:, 0].repeat(negatives)
    pos = graph.edges[:, 1].repeat(negatives)
    return users, pos, sample_negatives(graph, users, generator)


def bpr_margins(
    model: GraphRecommender,
    graph: Graph,
    e0: torch.Tensor,
    users: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
) -> torch.Tensor:
    """(T,) z = ŝ(u,j) − ŝ(u,i) of each triple over ``graph`` with layer-0 rows ``e0`` (N, d)."""
    final = model.propagate(graph, e0)
    nu = model.num_users
    u = final[users]
    return (u * final[neg + nu]).sum(1) - (u * final[pos + nu]).sum(1)


def bpr_sum(
    model: GraphRecommender,
    graph: Graph,
    e0: torch.Tensor,
    users: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    weight_decay: float,
) -> torch.Tensor:
    """The summed BPR loss of the triples over ``graph`` with layer-0 rows ``e0`` (N, d)."""
    nu = model.num_users
    bpr = F.softplus(bpr_margins(model, graph, e0, users, pos, neg)).sum()
    reg = e0[users].pow(2).sum() + e0[pos + nu].pow(2).sum() + e0[neg + nu].pow(2).sum()
    return bpr + 0.5 * weight_decay * reg


def newton_system(
    model: GraphRecommender,
    graph: Graph,
    e0: torch.Tensor,
    rows: torch.Tensor,
    triples: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    weight_decay: float,
    curvature: str = "gauss_newton",
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """The summed BPR loss of ``triples`` over ``graph`` as a function of the layer-0 rows
    ``rows`` (the other rows of ``e0`` fixed): its gradient (R, d) at ``e0[rows]`` and the
    curvature product v -> C v, (R, d) -> (R, d), without damping.

    ``curvature="hessian"``: C = ∇²L, by double backward through the propagation.
    ``"gauss_newton"``: C = Jᵀ diag(σ'(z)) J + wd·diag(row counts), the generalised Gauss-Newton
    matrix of L = Σ softplus(z) + L2 (J = ∂z/∂θ): the Hessian without the terms of z's own
    curvature, positive semi-definite by construction (BPR's Hessian is not: the scores are
    bilinear in the rows). Jv comes from the double-vjp trick (J v = ∂/∂w ⟨Jᵀw, v⟩).
    """
    if curvature not in ("hessian", "gauss_newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss_newton', not {curvature!r}")
    users, pos, neg = triples
    nu = model.num_users
    x = e0[rows].detach().clone().requires_grad_(True)
    full = e0.detach().index_copy(0, rows, x)
    if curvature == "hessian":
        (grad,) = torch.autograd.grad(
            bpr_sum(model, graph, full, users, pos, neg, weight_decay), x, create_graph=True
        )

        def hessian(v: torch.Tensor) -> torch.Tensor:
            (hv,) = torch.autograd.grad(grad, x, grad_outputs=v, retain_graph=True)
            return hv

        return grad.detach(), hessian
    z = bpr_margins(model, graph, full, users, pos, neg)
    reg = full[users].pow(2).sum() + full[pos + nu].pow(2).sum() + full[neg + nu].pow(2).sum()
    loss = F.softplus(z).sum() + 0.5 * weight_decay * reg
    (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
    sig = torch.sigmoid(z.detach())
    weight = sig * (1.0 - sig)  # softplus''(z)
    nodes = torch.cat([users, pos + nu, neg + nu])
    counts = torch.bincount(nodes, minlength=e0.shape[0]).to(e0.dtype)[rows].unsqueeze(1)
    w = torch.zeros_like(z, requires_grad=True)
    (jt_w,) = torch.autograd.grad(z, x, grad_outputs=w, create_graph=True)  # linear in w

    def gauss_newton(v: torch.Tensor) -> torch.Tensor:
        (jv,) = torch.autograd.grad(jt_w, w, grad_outputs=v, retain_graph=True)
        (gv,) = torch.autograd.grad(z, x, grad_outputs=weight * jv, retain_graph=True)
        return gv + weight_decay * counts * v

    return grad, gauss_newton


def _touching(
    users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, region: torch.Tensor, nu: int
) -> torch.Tensor:
    """Bool mask of the triples with a node in ``region`` (N,) bool."""
    return region[users] | region[pos + nu] | region[neg + nu]


@dataclass
class InfluenceUnlearning(NoPreparation):
    """The method behind the ``UnlearningMethod`` protocol; no offline preparation."""

    config: InfluenceConfig = field(default_factory=InfluenceConfig)
    name: str = "influence"

    @classmethod
    def from_params(cls, values: dict[str, Any] | None) -> InfluenceUnlearning:
        return cls(config=from_dict(InfluenceConfig, values))

    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome:
        cfg = self.config
        model, graph = state.model, state.graph
        device = graph.device
        nu = graph.num_users
        wd = method_weight_decay(state, cfg.weight_decay)
        hops = model.config.num_layers if cfg.hops is None else cfg.hops
        if model.name == "mf" and cfg.hops is None:
            hops = 0  # no propagation: a removed edge's loss depends on its endpoints only
        gen = make_generator(cfg.seed, device)
        with Stopwatch(device) as clock:
            graph_r = graph.without(request.edges)
            removed = request_edges(request, device)
            touched = endpoint_mask(graph, removed)
            isolated = torch.zeros_like(touched)
            e0 = model.embedding.detach()
            e0_r = e0.clone()
            if cfg.reset_isolated:
                isolated = touched & (graph_r.degrees() == 0)
                if cfg.isolated_items == "newton":
                    isolated[nu:] = False
                elif cfg.isolated_items != "fresh":
                    raise ValueError(
                        f"isolated_items must be 'fresh' or 'newton', not {cfg.isolated_items!r}"
                    )
                n_iso = int(isolated.sum())
                if n_iso:
                    e0_r[isolated] = reset_rows(model, isolated, gen)
            region = reach(graph, touched, hops) & ~isolated
            rows = torch.nonzero(region).flatten()
            outcome_e0 = e0_r.clone()
            info: dict[str, Any] = {
                "hops": hops,
                "reach_nodes": int(region.sum()),
                "reset_nodes": int(isolated.sum()),
                "parameters": len(rows) * int(e0.shape[1]),
            }
            if len(rows):
                # fixed triples of A; those of A_r are the same triples minus the removed edges
                users, pos, neg = fixed_triples(graph, cfg.negatives, gen)
                removed_keys = removed[:, 0] * graph.num_items + removed[:, 1]
                kept = ~torch.isin(users * graph.num_items + pos, removed_keys)
                # triples whose scores depend on the parameters: a node within `hops` of them
                depends = _touching(users, pos, neg, reach(graph, region, hops), nu)
                full_t = (users[depends], pos[depends], neg[depends])
                keep = depends & kept
                res_t = (users[keep], pos[keep], neg[keep])
                info["triples"] = int(keep.sum())
                x0 = e0[rows].clone()
                x = x0.clone().requires_grad_(True)
                full_loss = bpr_sum(model, graph, e0.index_copy(0, rows, x), *full_t, wd)
                (grad_full,) = torch.autograd.grad(full_loss, x)
                grad_r, curvature = newton_system(
                    model, graph_r, e0_r, rows, res_t, wd, cfg.curvature
                )
                g = grad_r - grad_full
                solve = conjugate_gradient(
                    lambda v: curvature(v) + cfg.damping * v, g, cfg.cg_max_iter, cfg.cg_tol
                )
                step = -cfg.scale * solve.x
                outcome_e0[rows] = x0 + step
                info.update(
                    {
                        "cg_iterations": solve.iterations,
                        "cg_residual": solve.residual,
                        "cg_converged": solve.converged,
                        "negative_curvature": solve.negative_curvature,
                        "gradient_norm": float(g.norm()),
                        "step_norm": float(step.norm()),
                        "step_max_row_norm": float(step.norm(dim=1).max()),
                    }
                )
                del curvature
            unlearned = copy.deepcopy(model)
            unlearned.embedding = torch.nn.Parameter(outcome_e0.detach())
            unlearned.eval()
            seconds = clock.elapsed()
        return UnlearnOutcome(
            method=self.name, model=unlearned, graph=graph_r, seconds=seconds, details=info
        )
