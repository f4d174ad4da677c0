"""Where retrain puts a node the request leaves without edges, reproduced without retraining.

This replay is the fallback for a model without shadow items (``models/shadow.py``: rows trained
with the model as items nobody interacted with, which need no model of the users' trajectory and
are what UnlearnRec uses first); a checkpoint from before shadow items, or one trained elsewhere.

An erased user has no positive left, so retrain never draws it in a batch: its layer-0 row stays
at its initial draw. A taken-down item is different: retrain still draws it as the sampled
negative of other users' positives, about ``batch_size / num_items`` times per step, for every
step of training. Each such draw pushes its final embedding away from that user's, so retrain
ends with the item scored well *below* never-seen items (σ ≈ 0.08 against ≈ 0.6 for negatives on
ML-100K), not at chance where a fresh draw sits.

``negative_push`` replays that trajectory for the reset item rows alone. An isolated node's
final embedding is ``c * e0`` (``GraphRecommender.isolated_scale``), and its BPR gradient
depends only on the users it is drawn against, so the replay needs the users' final
embeddings and their positives' scores, not a propagation per step. One training step draws the
item k ~ Poisson(λ) times (λ = B / num_items), each draw against a user u with a positive p,
and adds X = σ(c·ē_u·e − ŷ_up) · c·ē_u (+ wd·e) / B to its gradient: a compound Poisson sum,

    E[g] = λ·E[X],    E[g²] = λ·E[X²] + λ²·E[X]²   (per coordinate),

with the expectations over a fixed sample of residual edges (users weigh by their degree, as in
training). Adam's first and second moments are run on exactly these, with the training's
learning rate, so both its sign-like steps and the way sparse, noisy draws slow it down (steps
without a draw, users pulling in different directions) are those of the real run. Training's
``T`` steps are replayed as at most ``max_steps`` coarse steps: the learning rate grows and the
moment decays shrink by the same factor, which keeps the path of a slowly turning gradient (the
item's gradient turns slowly: it always points away from the average user).

The users themselves are not where they end during most of training: their embeddings form from
small random draws. With users frozen at their final embeddings the replay settles at an
equilibrium short of retrain's item (ML-100K: σ 0.106 against retrain's 0.076, and more steps do
not move it); early, weaker users leave Adam's second moment small, so the real item is pushed
further before it settles. ``growth`` models that: the users' embeddings (and so the positives'
scores, squared) are scaled by (t/T)^growth at step t, a fast rise that saturates. 0.25 is a
tuned value (ML-100K and the bundled synthetic set; docs/method.md); 0 freezes them.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def negative_push(
    rows: torch.Tensor,
    user_final: torch.Tensor,
    positive_scores: torch.Tensor,
    *,
    scale: float,
    num_items: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    steps: int,
    max_steps: int = 200,
    growth: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    """(R, d) layer-0 rows after ``steps`` training steps as sampled negatives only.

    ``rows``: (R, d) the items' rows at their fresh initial draw. ``user_final``: (S, d) final
    embeddings of the users of S residual edges sampled uniformly; ``positive_scores``: (S,) the
    scores ŷ_up of those edges. ``scale``: c, final = c·e0 for a node without edges.
    """
    if scale == 0.0 or steps <= 0 or len(rows) == 0 or len(user_final) == 0:
        return rows.clone()
    lam = batch_size / max(num_items, 1)  # expected draws of one item per training step
    sim_steps = min(steps, max_steps)
    factor = steps / sim_steps  # training steps per replayed step
    step_lr = lr * factor
    b1, b2 = betas[0] ** factor, betas[1] ** factor
    e = rows.clone()
    m = torch.zeros_like(e)
    v = torch.zeros_like(e)
    n = user_final.shape[0]
    for t in range(1, sim_steps + 1):
        a = (t / sim_steps) ** growth  # how far the users have formed by this step
        cu = scale * a * user_final  # (S, d)
        cu2 = cu.pow(2)
        s_neg = e @ cu.T  # (R, S) scores of the items for the sampled users
        w = torch.sigmoid(s_neg - a * a * positive_scores[None, :])  # (R, S)
        x_mean = (w @ cu / n + weight_decay * e) / batch_size  # (R, d) E[X]
        x_sq = (w.pow(2) @ cu2 / n) / batch_size**2  # (R, d) E[X²], the draws' spread
        g = lam * x_mean  # E[g]
        g2 = lam * x_sq + g.pow(2)  # E[g²]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).add_(g2, alpha=1 - b2)
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        e -= step_lr * m_hat / (v_hat.sqrt() + eps)
    return e
