"""Shadow items: rows trained beside the model as items that nobody interacted with.

Retrain gives an item with no positive left (a taken-down item) no pull at all, but it still
draws it as the sampled negative of other users' positives, step after step, for the whole
training, and each draw pushes the item away from that user. It ends well *below* items the
users never saw, at a level set by the users' whole trajectory: how they formed from small
random rows, turned and grew. A replay after the fact has only the users' final embeddings and
has to model that trajectory (``unlearning/isolated.py``); how far the item goes depends on it,
and differently on every graph.

Shadow rows need no model of it: ``K`` extra rows are trained with the model, each step, with
exactly the gradient a real item with no positive gets (the same batch, the same sampled
negatives' odds, the same BPR and weight-decay terms, the same Adam and learning rate). They are
not part of the graph and never scored. When a request leaves an item without any interaction,
UnlearnRec gives it a shadow row: a draw from where retrain would put it.

One real item with no positive, in a batch of ``B`` triples: the sampler draws uniformly and
re-draws a user's positives (``training.sample_negatives``: ``tries`` draws at most), and an item
with no positive is never re-drawn, so a triple of user u picks it with probability
(1/I)·Σ_{k<tries} r_u^k, r_u = deg(u)/I (I items; heavy users pick it up to 1/(1−r_u) times more
often than 1/I); a drawn triple (u, p) adds

    [σ(c·ē_u·e − ŷ_up) · c·ē_u + wd·e] / B

to the row's gradient (c: the final-embedding scale of a node without edges,
``GraphRecommender.isolated_scale``; ē_u: the user's final embedding; ŷ_up: the positive's
score). Steps without a draw give a zero gradient, and Adam moves the row on its moments, as it
moves the real table's rows.
"""

from __future__ import annotations

import torch


class ShadowTrainer:
    """Adam on the model's shadow rows, stepped with every training step of the model."""

    def __init__(
        self,
        model,
        user_degrees: torch.Tensor,
        *,
        lr: float,
        weight_decay: float,
        seed: int,
        tries: int,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.betas, self.eps = betas, eps
        rows = model.shadow_items
        device = rows.device
        # its own stream: the model's training draws (negatives, views) stay as they were
        self.generator = torch.Generator(device=device).manual_seed(seed + 7919)
        if int(model.shadow_steps) == 0:
            draw = torch.randn(rows.shape, generator=self.generator, device=device)
            rows.copy_(draw * model.init_std)  # the initial draw of any item row
        self.m = torch.zeros_like(rows)
        self.v = torch.zeros_like(rows)
        self.t = 0
        self.scale = model.isolated_scale()
        # (U,) chance that a triple of each user draws a given item with no positive
        r = user_degrees.to(rows.dtype) / model.num_items
        self.draw_chance = (1 - r.pow(tries)) / (1 - r).clamp_min(1e-12) / model.num_items

    @torch.no_grad()
    def step(
        self, users: torch.Tensor, user_final: torch.Tensor, positive_scores: torch.Tensor
    ) -> None:
        """One training step on a batch of B triples: ``users`` (B,) their user ids,
        ``user_final`` (B, d) those users' final embeddings and ``positive_scores`` (B,) their
        positives' scores, both before the step."""
        rows = self.model.shadow_items  # (K, d)
        batch = user_final.shape[0]
        if batch == 0 or rows.shape[0] == 0:
            return
        cu = self.scale * user_final  # (B, d)
        drawn = (
            torch.rand((rows.shape[0], batch), generator=self.generator, device=rows.device)
            < self.draw_chance[users][None, :]
        ).to(rows.dtype)  # (K, B): which triples drew the shadow row as their negative
        w = torch.sigmoid(rows @ cu.T - positive_scores[None, :]) * drawn  # (K, B)
        grad = (w @ cu + self.weight_decay * drawn.sum(1, keepdim=True) * rows) / batch
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        rows.addcdiv_(m_hat, denom, value=-self.lr)
        self.model.shadow_steps += 1


def shadow_rows_for(model, items: torch.Tensor) -> torch.Tensor | None:
    """(R, d) shadow rows for the item indices ``items`` (0-based item ids), or None when the
    model has none trained (an older checkpoint, a backbone whose isolated nodes read out zero).
    Item i gets shadow row i mod K, so the items of one request get distinct rows while K
    allows; the rows are draws of one distribution, which of them an item gets is immaterial."""
    rows = getattr(model, "shadow_items", None)
    if rows is None or rows.shape[0] == 0 or int(model.shadow_steps) == 0:
        return None
    return rows[torch.remainder(items, rows.shape[0])].clone()
