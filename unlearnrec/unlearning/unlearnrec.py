"""UnlearnRec (Chen, Xia, Huang, SIGIR 2025): pre-train an Influence Encoder once per base model,
then unlearn a request with one encoder pass and a short fine-tune.

Objective: L = L_M + λ_u·L_u + λ_p·L_p + λ_c·L_c (L_c only while pre-training), with
- L_M: the backbone's own loss (BPR + SSL term + weight decay) on the residual graph A_r, with Ẽ0;
- L_u: −mean log σ(−ŷ'(u,i)) over removed edges (pushes them down); in the fine-tune, by
  default, mean relu(z'(u,i) − t(u,i))² instead, z' the pair's per-user z-score and t its
  target among held-out pairs (``finetune_unlearn_loss``, docs/method.md);
- L_p: squared L2 gap between in-batch log-softmax score distributions (τ_p) of remaining pairs
  under the new and the original model (keeps the rest of the model where it was);
- L_c: InfoNCE between the IE output over Â_Δ and over an edge-dropped copy (τ_c).

Choices where sources disagree (docs/method.md), all fields of ``UnlearnRecConfig``:
- ``readout="sum"``: H̄ sums layers 0..L (the LightGCN-style readout; "last" takes H^L only).
- ``kappa=1.0``: full withdrawal term (0.1 is the other published value).
- ``scope="touched"``: the correction MLP(ΔE0) is added only on nodes the request touches, so a
  request never moves embeddings of unrelated nodes directly ("all" adds it everywhere, which
  applies the pre-trained H0 offsets of every node).
- ``reset_isolated=True``: a node left with no edge (an erased user, a taken-down item) gets a
  new layer-0 row where retrain puts it (a user a fresh draw from the initial distribution, an
  item a shadow row: ``isolated_items``); its personal embedding is gone.
- Pre-training optimises H0, W_η and the MLP; fine-tuning trains the MLP and E0 (H0, W_η frozen).
- Sequential requests reuse the pre-trained encoder: each request starts from the pre-trained
  MLP, and the IE reads the current model's embeddings Ē over the current graph. Re-running
  ``prepare`` re-pre-trains it (``refresh_every`` requests in ``unlearn_sequence``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearnrec.config import TrainConfig, from_dict, to_dict
from unlearnrec.evaluation.metrics import roc_auc
from unlearnrec.graph.bipartite import Graph, edge_tensor
from unlearnrec.models import GraphRecommender
from unlearnrec.models.shadow import shadow_rows_for
from unlearnrec.training.checkpoint import save_torch
from unlearnrec.training.loop import make_generator, model_loss, sample_negatives, sample_rows
from unlearnrec.unlearning.base import ModelState, Stopwatch, UnlearnOutcome
from unlearnrec.unlearning.encoder import InfluenceEncoder
from unlearnrec.unlearning.idm import InfluenceDependency, drop_edges, influence_dependency
from unlearnrec.unlearning.isolated import negative_push
from unlearnrec.unlearning.requests import DeletionRequest


@dataclass(frozen=True)
class UnlearnRecConfig:
    # Influence Encoder
    readout: str = "sum"  # choice: "sum" of layers 0..L or "last"
    kappa: float = 1.0  # choice: weight of the withdrawal term (1 or 0.1)
    scope: str = "touched"  # choice: "touched" nodes only, or "all" nodes
    idm_norm: str = "request"  # choice: normalise Â_Δ by the "request"'s degrees or the "graph"'s
    w_eta_init: float = 2e-3  # initial per-node withdrawal scale
    negative_slope: float = 0.2  # LeakyReLU of the MLP
    reset_isolated: bool = True  # re-initialise nodes left without edges, as retrain has them
    # choice: where a reset *item* goes. "fresh": its initial draw (chance level). "negative":
    # where retrain's negative sampling puts it, below never-seen items: one of the model's
    # shadow rows (``models/shadow.py``, trained with the model as an item nobody interacted
    # with), or for a model without them a replay of that push over the training's epochs
    # (``isolated.negative_push``, with the two settings below).
    isolated_items: str = "negative"
    isolated_edges: int = 4096  # replay only: residual edges sampled as its users
    isolated_growth: float = 0.25  # replay only: users form as (t/T)^growth during training
    # Loss weights
    lambda_u: float = 0.15  # pre-training's (the fine-tune has finetune_lambda_u)
    lambda_p: float = 0.02
    tau_p: float = 5.0
    lambda_c: float = 1e-3
    tau_c: float = 0.2
    idm_keep: float = 0.95  # share of IDM edges kept in L_c's augmented view
    preserve_batch: int = 1024  # rows of L_p: remaining pairs ("batch") or touched users
    preserve_on: str = "touched"  # choice: L_p over an in-batch softmax of remaining pairs
    # ("batch", the method's definition) or over touched users' scores of all items but the
    # removed ones ("touched": keep the rest of each affected user's ranking where it was)
    preserve_items: int = 4096  # "touched": items sampled per step as softmax columns
    contrast_batch: int = 1024  # touched nodes in L_c's InfoNCE
    # Pre-training on simulated requests (backbone frozen)
    pretrain_requests: int = 30  # simulated requests drawn
    pretrain_steps: int = 5  # optimisation steps on each
    pretrain_min_fraction: float = 0.05  # each request removes a share of training edges
    pretrain_max_fraction: float = 0.2  # drawn uniformly in [min, max]
    pretrain_lr: float = 1e-2
    # choice: L_u of pre-training. "score" (the method's definition) or "zscore" (the fine-tune's
    # objective: each simulated request's pairs pushed to their held-out z-score targets, with
    # finetune_lambda_u)
    pretrain_unlearn_loss: str = "score"
    pretrain_batch_size: int = 8192
    # Unlearning a real request
    finetune_steps: int = 20  # at most this many steps (see finetune_stop)
    finetune_batch_size: int = 8192
    finetune_lr: float = 5e-3
    # choice: when the fine-tune stops. "fixed": after finetune_steps. "calibrated": as soon as
    # the removed pairs' mean per-user z-score (zscore loss) has come down to the mean of their
    # held-out targets, i.e. when the forgotten edges sit where never-trained pairs sit; the
    # criterion needs no retrain, and the strength follows the request, not the dataset.
    finetune_stop: str = "calibrated"
    finetune_min_steps: int = 1  # steps before the stop may fire (and the steps of a request
    # with no pair left for L_u, e.g. erased users only: the rows around them re-fit briefly)
    # choice: L_u of the fine-tune (pre-training always uses "score").
    # "score": −log σ(−ŷ') of each removed edge, the method's definition: it pushes raw scores
    #   down, which a short fine-tune meets by lowering all of a user's scores together, and the
    #   attacker, who reads ranks and per-user z-scores, still sees the edges (docs/benchmarks.md).
    # "zscore": the per-user z-score of each removed edge among (a sample of) all items, pushed
    #   down to its target in the distribution of held-out pairs (``zscore_targets``, from the
    #   validation split). Shift-invariant and bounded: it stops where retrain would leave the edge.
    finetune_unlearn_loss: str = "zscore"
    unlearn_items: int = 4096  # "zscore": items sampled per step for each user's mean and std
    # choice: what first corrects the model for removed edges. "encoder": the Influence
    # Encoder's pass (the method as published), then the fine-tune; "projection": each touched
    # user's row moved by the smallest change of its scores that brings its removed pairs to
    # their z-score targets (``unlearning/projection.py``, closed form, items kept), instead of
    # the encoder's pass; the fine-tune then runs only where targets are still missed or rows
    # were reset. Requests with no removed pair left (erased users or items only) and the score
    # loss keep the encoder's pass. docs/benchmarks.md: full Gowalla random 1% 0.924x -> 0.99x
    edge_correction: str = "projection"
    projection_rounds: int = 2  # fixed-point rounds of the projection (propagation spreads it)
    # λ_u of the fine-tune (None: lambda_u), sized for the z-score loss. "score" with a strong
    # profile (λ_u 0.5 to 1, more steps, a higher lr) suits poisoned or injected edges, whose
    # retrain target lies far below real interactions', without re-pre-training the encoder.
    finetune_lambda_u: float | None = 20.0
    # choice: where the unlearning step works. "graph": every fine-tune step propagates over the
    # whole residual graph (the method as published). "local": the request's neighbourhood only
    # (``unlearning/local.py``): base final embeddings cached per model, the fine-tune on the
    # touched rows and up to ``local_fanout`` sampled neighbours of each, the removed edges and
    # renormalisation propagated inside that subgraph; its cost grows with the request, not the
    # graph (docs/benchmarks.md, 'Scaling').
    finetune_scope: str = "graph"
    # choice: layer-0 rows the fine-tune may move: "all" (the method as published) or "touched"
    # (the request's endpoints; the rest move only through propagation)
    finetune_rows: str = "all"
    local_fanout: int = 32
    # Sequential requests: re-pre-train the encoder on the new base after this many requests
    # (0: never). Offline work, reported apart from the unlearning seconds.
    refresh_every: int = 1
    seed: int = 0


def _preserve_loss(
    final: torch.Tensor,
    orig_final: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    num_users: int,
    tau: float,
) -> torch.Tensor:
    """L_p over B remaining pairs: ‖log_softmax(S_new/τ) − log_softmax(S_orig/τ)‖² per row."""
    u, i = users, items + num_users
    new = torch.log_softmax(final[u] @ final[i].T / tau, dim=1)  # (B, B)
    with torch.no_grad():
        old = torch.log_softmax(orig_final[u] @ orig_final[i].T / tau, dim=1)
    return (new - old).pow(2).sum(dim=1).mean()


def _preserve_touched_loss(
    final: torch.Tensor,
    orig_final: torch.Tensor,
    idm: InfluenceDependency,
    num_users: int,
    config: UnlearnRecConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """L_p over touched users: ‖log_softmax(s_new/τ) − log_softmax(s_orig/τ)‖² per user, where s
    are the user's scores of (a sample of) all items, the removed ones left out."""
    device = final.device
    num_items = final.shape[0] - num_users
    users = torch.nonzero(idm.touched[:num_users]).flatten()
    if len(users) == 0:
        return final.new_zeros(())
    users = users[sample_rows(len(users), config.preserve_batch, generator, device)]
    items = sample_rows(num_items, config.preserve_items, generator, device)
    removed_keys = torch.sort(idm.edges[:, 0] * num_items + idm.edges[:, 1]).values
    keys = users[:, None] * num_items + items[None, :]  # (B, C)
    pos = torch.searchsorted(removed_keys, keys).clamp_(max=len(removed_keys) - 1)
    drop = removed_keys[pos] == keys
    new = final[users] @ final[num_users + items].T / config.tau_p  # (B, C)
    with torch.no_grad():
        old = orig_final[users] @ orig_final[num_users + items].T / config.tau_p
    new = torch.log_softmax(new.masked_fill(drop, -torch.inf), dim=1)
    old = torch.log_softmax(old.masked_fill(drop, -torch.inf), dim=1)
    diff = (new - old).masked_fill(drop, 0.0)
    return diff.pow(2).sum(dim=1).mean()


def _user_zscores(
    final: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    num_users: int,
    columns: torch.Tensor,
) -> torch.Tensor:
    """(P,) z-score of each pair's score among the user's scores of the ``columns`` items."""
    row = final[users] @ final[num_users + columns].T  # (P, C)
    s = (final[users] * final[num_users + items]).sum(1)  # (P,)
    return (s - row.mean(1)) / row.std(1).clamp_min(1e-6)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``np.interp`` for increasing ``xp`` (clamped at both ends)."""
    idx = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    w = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


@torch.no_grad()
def zscore_targets(
    final: torch.Tensor,
    num_users: int,
    removed: torch.Tensor,
    members: torch.Tensor,
    heldout: np.ndarray | torch.Tensor,
    generator: torch.Generator,
    sample: int = 8192,
    levels: int = 101,
) -> torch.Tensor:
    """(E_Δ,) the z-score each removed pair goes down to: its z under ``final`` (N, d) mapped
    through the quantiles of members' z onto those of held-out pairs' z (a pair at the members'
    q-th quantile goes to the held-out pairs' q-th quantile). Retrain turns forgotten edges into
    non-members as a whole distribution; a shift of each pair keeps its place within it."""
    device = final.device
    heldout = edge_tensor(heldout, device)
    if len(heldout) == 0:
        raise ValueError("finetune_unlearn_loss='zscore' needs held-out pairs")
    columns = torch.arange(final.shape[0] - num_users, device=device)

    def z_of(pairs: torch.Tensor) -> torch.Tensor:
        parts = [
            _user_zscores(final, p[:, 0], p[:, 1], num_users, columns) for p in pairs.split(4096)
        ]
        return torch.cat(parts) if parts else final.new_zeros(0)

    def pick(pairs: torch.Tensor) -> torch.Tensor:
        return pairs[sample_rows(len(pairs), sample, generator, device)]

    q = torch.linspace(0.0, 1.0, levels, device=device)
    q_members = torch.quantile(z_of(pick(members)), q)
    q_heldout = torch.quantile(z_of(pick(heldout)), q)
    # ties in the member quantiles would make the map ill-defined: spread them minimally
    q_members = q_members + torch.arange(levels, device=device) * 1e-6
    return _interp(_interp(z_of(removed), q_members, q), q, q_heldout)


def _unlearn_loss(
    final: torch.Tensor,
    removed: torch.Tensor,
    num_users: int,
    config: UnlearnRecConfig,
    targets: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float | None]:
    """L_u over a batch of removed (u, i) pairs (``UnlearnRecConfig.finetune_unlearn_loss``):
    the score loss, or with ``targets`` (B,) the z-score each pair goes down to, the z loss.
    Also returns P(z > t) − 0.5 over the batch, the two-sample AUC of the pairs' z-scores
    against their targets (None for the score loss): at or below 0 the pairs, as a whole, sit no
    higher than never-trained pairs sit."""
    u, i = removed[:, 0], removed[:, 1]
    if targets is None:  # pre-training, or finetune_unlearn_loss="score"
        return F.softplus((final[u] * final[i + num_users]).sum(1)).mean(), None  # −log σ(−ŷ')
    num_items = final.shape[0] - num_users
    columns = sample_rows(num_items, config.unlearn_items, generator, final.device)
    z = _user_zscores(final, u, i, num_users, columns)
    gap = roc_auc(z, targets) - 0.5
    return F.relu(z - targets).pow(2).mean(), gap  # down to the target, never pushed up


def _objective(
    model: GraphRecommender,
    graph_r: Graph,
    e0_tilde: torch.Tensor,
    removed: torch.Tensor,
    orig_final: torch.Tensor,
    config: UnlearnRecConfig,
    weight_decay: float,
    batch_size: int,
    generator: torch.Generator,
    views: Any,
    idm: InfluenceDependency,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_M + λ_u·L_u + λ_p·L_p on one batch. ``removed``: (E_Δ, 2) edges that L_u pushes down."""
    device = e0_tilde.device
    final = model.propagate(graph_r, e0_tilde)  # (N, d)
    idx = sample_rows(len(graph_r.edges), batch_size, generator, device)
    users, pos = graph_r.edges[idx, 0], graph_r.edges[idx, 1]
    neg = sample_negatives(graph_r, users, generator)
    total, parts = model_loss(
        model,
        graph_r,
        e0_tilde,
        users,
        pos,
        neg,
        weight_decay=weight_decay,
        views=views,
        generator=generator,
        final=final,
    )
    if config.lambda_u and len(removed):
        pick = sample_rows(len(removed), batch_size, generator, device)
        t = targets[pick] if targets is not None else None
        l_u, gap = _unlearn_loss(final, removed[pick], model.num_users, config, t, generator)
        total = total + config.lambda_u * l_u
        parts["unlearn"] = float(l_u.detach())
        if gap is not None:
            parts["z_gap"] = gap
    if config.lambda_p and config.preserve_on == "touched":
        l_p = _preserve_touched_loss(final, orig_final, idm, model.num_users, config, generator)
        total = total + config.lambda_p * l_p
        parts["preserve"] = float(l_p.detach())
    elif config.lambda_p:
        b = min(config.preserve_batch, len(users))
        l_p = _preserve_loss(final, orig_final, users[:b], pos[:b], model.num_users, config.tau_p)
        total = total + config.lambda_p * l_p
        parts["preserve"] = float(l_p.detach())
    return total, parts


def _contrast_loss(
    encoder: InfluenceEncoder,
    idm: InfluenceDependency,
    view: InfluenceDependency,
    orig_final: torch.Tensor,
    config: UnlearnRecConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """L_c: InfoNCE between ΔE0 over Â_Δ and over its edge-dropped copy, on touched nodes.

    Only nodes touched in both views take part (a node whose removed edges were all dropped
    has a zero vector in the second view, where normalisation has no gradient to give).
    """
    nodes = torch.nonzero(idm.touched & view.touched).flatten()
    if len(nodes) < 2:
        return orig_final.new_zeros(())
    nodes = nodes[sample_rows(len(nodes), config.contrast_batch, generator, nodes.device)]
    nodes = torch.unique(nodes)
    a = encoder.delta(idm.matrix, orig_final)[nodes]
    b = encoder.delta(view.matrix, orig_final)[nodes]
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / config.tau_c
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def _idm_degrees(graph: Graph, config: UnlearnRecConfig) -> torch.Tensor | None:
    """The degrees Â_Δ is normalised by: None (the request's own) or the training graph's."""
    if config.idm_norm == "request":
        return None
    if config.idm_norm != "graph":
        raise ValueError(f"idm_norm must be 'request' or 'graph', not {config.idm_norm!r}")
    return graph.degrees()


def _correction_mask(
    idm: InfluenceDependency, config: UnlearnRecConfig, num_users: int
) -> torch.Tensor:
    """(N, 1) float mask of the rows that receive MLP(ΔE0)."""
    if config.scope == "all":
        return torch.ones_like(idm.touched, dtype=torch.float).unsqueeze(1)
    if config.scope == "users":
        m = idm.touched.clone()
        m[num_users:] = False
        return m.float().unsqueeze(1)
    if config.scope != "touched":
        raise ValueError(f"scope must be 'touched' or 'all', not {config.scope!r}")
    return idm.touched.float().unsqueeze(1)


def _push_isolated_items(
    e0: torch.Tensor,
    isolated: torch.Tensor,
    model: GraphRecommender,
    graph_r: Graph,
    orig_final: torch.Tensor,
    config: UnlearnRecConfig,
    train_config: TrainConfig,
    fit_epochs: int | None,
    generator: torch.Generator,
) -> str:
    """Move the reset item rows of ``e0`` (in place) to where retrain's negative sampling puts
    them (``isolated_items="negative"``, module ``isolated``); returns what was done."""
    if config.isolated_items not in ("fresh", "negative"):
        raise ValueError(
            f"isolated_items must be 'fresh' or 'negative', not {config.isolated_items!r}"
        )
    nu = model.num_users
    items = torch.nonzero(isolated[nu:]).flatten() + nu
    if config.isolated_items == "fresh" or len(items) == 0 or len(graph_r.edges) == 0:
        return "fresh"
    shadow = shadow_rows_for(model, items - nu)
    if shadow is not None:
        # rows trained with the model as items nobody interacted with: where retrain puts them
        e0[items] = shadow.to(e0.dtype)
        return "shadow rows"
    if not fit_epochs:
        # a model whose training length was not recorded: the items keep their fresh draw
        # (chance level), and verification against retrain will say how far that is
        return "fresh (training length unknown)"
    pick = sample_rows(len(graph_r.edges), config.isolated_edges, generator, e0.device)
    users, pos = graph_r.edges[pick, 0], graph_r.edges[pick, 1] + nu
    positive_scores = (orig_final[users] * orig_final[pos]).sum(1)  # (S,)
    batches = -(-len(graph_r.edges) // train_config.batch_size)
    e0[items] = negative_push(
        e0[items],
        orig_final[users],
        positive_scores,
        scale=model.isolated_scale(),
        num_items=model.num_items,
        batch_size=train_config.batch_size,
        lr=train_config.lr,
        weight_decay=train_config.weight_decay,
        steps=fit_epochs * batches,
        growth=config.isolated_growth,
    )
    return f"negative push over {fit_epochs} epochs"


@dataclass
class UnlearnRec:
    """The method behind the ``UnlearningMethod`` protocol. ``prepare`` pre-trains the encoder."""

    config: UnlearnRecConfig = field(default_factory=UnlearnRecConfig)
    encoder: InfluenceEncoder | None = None
    name: str = "unlearnrec"
    pretrain_history: list[dict[str, float]] = field(default_factory=list)
    # called with each simulated request's record as pre-training goes (a progress bar)
    on_pretrain: Callable[[dict[str, float]], None] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def from_params(cls, values: dict[str, Any] | None) -> UnlearnRec:
        return cls(config=from_dict(UnlearnRecConfig, values))

    # -- pre-training ---------------------------------------------------------------------------
    def prepare(self, state: ModelState) -> float:
        """Pre-train the encoder on ``state``'s model and graph; returns the seconds it took."""
        with Stopwatch(state.graph.device) as clock:
            self.encoder, self.pretrain_history = pretrain_encoder(
                state.model,
                state.graph,
                self.config,
                state.train_config,
                state.valid_edges,
                on_request=self.on_pretrain,
            )
            seconds = clock.elapsed()
        self.warm_up(state)
        return seconds

    def warm_up(self, state: ModelState) -> None:
        """Run the unlearning path once on a one-edge request and discard the result, so that
        later timings are those of a running service, not of the first call's lazy
        initialisations (allocator, autograd threads, optimiser state)."""
        if self.encoder is None:
            raise RuntimeError("warm_up needs an encoder")
        warm = DeletionRequest("edges", state.graph.edges_numpy()[:1])
        unlearn_request(
            state.model,
            state.graph,
            warm,
            self.encoder,
            replace(self.config, finetune_steps=1),
            state.train_config,
            state.valid_edges,
            state.fit_epochs,
        )

    # -- the preparation kept beside a production model (``KeepsPreparation``) ------------------
    def save_preparation(self, folder: Path) -> list[Path]:
        path = Path(folder) / ENCODER_FILE
        save_encoder(path, self, "")
        return [path]

    def load_preparation(self, folder: Path, state: ModelState) -> bool:
        path = Path(folder) / ENCODER_FILE
        if not path.exists():
            return False
        # pre-trained on this model: the file's encoder, this method's (the policy's) config
        self.encoder = load_encoder(path, state.graph.device).encoder
        self.warm_up(state)
        return True

    def refreshes_after_unlearn(self) -> bool:
        return bool(self.config.refresh_every)

    # -- unlearning -----------------------------------------------------------------------------
    def unlearn(self, state: ModelState, request: DeletionRequest) -> UnlearnOutcome:
        if self.encoder is None:
            raise RuntimeError("UnlearnRec.unlearn needs a pre-trained encoder: call prepare()")
        return unlearn_request(
            state.model,
            state.graph,
            request,
            self.encoder,
            self.config,
            state.train_config,
            state.valid_edges,
            state.fit_epochs,
        )

    def unlearn_sequence(
        self, state: ModelState, requests: list[DeletionRequest]
    ) -> list[UnlearnOutcome]:
        """Forget a stream of requests, each on the result of the previous one.

        The encoder reads the current model and graph; every ``refresh_every`` requests it is
        re-pre-trained on the new base (its seconds in ``details["refresh_seconds"]``), since an
        encoder pre-trained on the first base drifts from later ones and utility erodes.
        """
        outcomes: list[UnlearnOutcome] = []
        for n, request in enumerate(requests, start=1):
            outcome = self.unlearn(state, request)
            state = outcome.as_state(state)
            every = self.config.refresh_every
            if every and n % every == 0 and n < len(requests):
                outcome.details["refresh_seconds"] = self.prepare(state)
            outcomes.append(outcome)
        return outcomes


def _new_encoder(model: GraphRecommender, config: UnlearnRecConfig) -> InfluenceEncoder:
    return InfluenceEncoder(
        model.num_nodes,
        model.config.embedding_dim,
        model.config.num_layers,
        readout=config.readout,
        kappa=config.kappa,
        w_eta_init=config.w_eta_init,
        negative_slope=config.negative_slope,
    )


def pretrain_encoder(
    model: GraphRecommender,
    graph: Graph,
    config: UnlearnRecConfig,
    train_config: TrainConfig,
    heldout: np.ndarray | torch.Tensor | None = None,
    on_request: Callable[[dict[str, float]], None] | None = None,
) -> tuple[InfluenceEncoder, list[dict[str, float]]]:
    """Pre-train an Influence Encoder on simulated random requests; the backbone stays frozen.
    ``on_request`` gets each request's record (its loss parts) when its steps are done.

    ``heldout``: (H, 2) the model's validation pairs, needed by ``pretrain_unlearn_loss="zscore"``
    (each simulated request's pairs pushed to their held-out z-score targets, as in the
    fine-tune)."""
    zscore = config.pretrain_unlearn_loss == "zscore"
    if not zscore and config.pretrain_unlearn_loss != "score":
        raise ValueError(
            "pretrain_unlearn_loss must be 'score' or 'zscore', "
            f"not {config.pretrain_unlearn_loss!r}"
        )
    if zscore and heldout is None:
        raise ValueError("pretrain_unlearn_loss='zscore' needs the model's held-out pairs")
    if zscore and config.finetune_lambda_u is not None:
        config = replace(config, lambda_u=config.finetune_lambda_u)
    device = graph.device
    gen = make_generator(config.seed, device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    encoder = _new_encoder(model, config).to(device)
    opt = torch.optim.Adam(encoder.parameters(), lr=config.pretrain_lr)
    e0 = model.embedding.detach()
    with torch.no_grad():
        orig_final = model.propagate(graph)
    history: list[dict[str, float]] = []
    for r in range(config.pretrain_requests):
        fraction = rng.uniform(config.pretrain_min_fraction, config.pretrain_max_fraction)
        n_removed = max(1, int(fraction * len(graph.edges)))
        pick = torch.randperm(len(graph.edges), generator=gen, device=device)[:n_removed]
        removed = graph.edges[pick]
        idm = influence_dependency(
            removed, graph.num_users, graph.num_items, device, _idm_degrees(graph, config)
        )
        graph_r = graph.without(removed)
        view = drop_edges(
            idm,
            config.idm_keep,
            gen,
            graph.num_users,
            graph.num_items,
            _idm_degrees(graph, config),
        )
        mask = _correction_mask(idm, config, graph.num_users)
        views = model.make_views(graph_r, gen)
        targets = (
            zscore_targets(orig_final, graph.num_users, removed, graph_r.edges, heldout, gen)
            if zscore
            else None
        )
        for _ in range(config.pretrain_steps):
            delta = encoder.delta(idm.matrix, orig_final)
            e0_tilde = e0 + mask * encoder.mlp(delta)
            loss, parts = _objective(
                model,
                graph_r,
                e0_tilde,
                removed,
                orig_final,
                config,
                train_config.weight_decay,
                config.pretrain_batch_size,
                gen,
                views,
                idm,
                targets,
            )
            if config.lambda_c:
                l_c = _contrast_loss(encoder, idm, view, orig_final, config, gen)
                loss = loss + config.lambda_c * l_c
                parts["contrast"] = float(l_c.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        history.append(
            {"request": r, "fraction": float(fraction), "loss": float(loss.detach()), **parts}
        )
        if on_request is not None:
            on_request(history[-1])
    encoder.eval()
    return encoder, history


def unlearn_request(
    model: GraphRecommender,
    graph: Graph,
    request: DeletionRequest,
    encoder: InfluenceEncoder,
    config: UnlearnRecConfig,
    train_config: TrainConfig,
    heldout: np.ndarray | torch.Tensor | None = None,
    fit_epochs: int | None = None,
) -> UnlearnOutcome:
    """Forget ``request`` from ``model`` (trained on ``graph``): IE pass + brief fine-tune.

    ``heldout``: (H, 2) pairs the model was not trained on (its validation split), needed by
    ``finetune_unlearn_loss="zscore"`` as the level a forgotten pair goes down to.
    ``fit_epochs``: epochs the model's training took (``ModelState.fit_epochs``); taken-down
    items get that many epochs of retrain's negative push (``isolated_items="negative"``).
    Returns a new model (the input is left untouched) whose layer-0 table is Ẽ0, run on A_r.
    """
    if config.finetune_scope == "local":
        from unlearnrec.unlearning.local import unlearn_local

        return unlearn_local(
            model, graph, request, encoder, config, train_config, heldout, fit_epochs
        )
    if config.finetune_scope != "graph":
        raise ValueError(
            f"finetune_scope must be 'graph' or 'local', not {config.finetune_scope!r}"
        )
    device = graph.device
    gen = make_generator(config.seed, device)
    with Stopwatch(device) as clock:
        idm = influence_dependency(
            request.edges, graph.num_users, graph.num_items, device, _idm_degrees(graph, config)
        )
        graph_r = graph.without(request.edges)
        with torch.no_grad():
            orig_final = model.propagate(graph)  # Ē of the model being corrected, (N, d)
        mask = _correction_mask(idm, config, graph.num_users)
        e0 = model.embedding.detach().clone()
        isolated = torch.zeros_like(idm.touched)
        isolated_items = "none"
        if config.reset_isolated:
            isolated = idm.touched & (graph_r.degrees() == 0)
            n_iso = int(isolated.sum())
            if n_iso:
                e0[isolated] = (
                    torch.randn(n_iso, e0.shape[1], generator=gen, device=device) * model.init_std
                )
                mask = mask * (~isolated).float().unsqueeze(1)
                isolated_items = _push_isolated_items(
                    e0, isolated, model, graph_r, orig_final, config, train_config, fit_epochs, gen
                )
        # L_u only on edges whose endpoints both keep their rows: a reset row holds nothing of
        # the removed edges any more, and pushing it further would over-unlearn.
        keep = ~(isolated[idm.edges[:, 0]] | isolated[idm.edges[:, 1] + graph.num_users])
        removed = idm.edges[keep]
        # L_p keeps the rankings of touched users, but not of erased ones: pulling a reset row
        # back towards its old ranking would re-learn what the request erased.
        preserved = replace(idm, touched=idm.touched & ~isolated)
        targets = None
        if config.finetune_unlearn_loss not in ("score", "zscore"):
            raise ValueError(
                f"finetune_unlearn_loss must be 'score' or 'zscore', "
                f"not {config.finetune_unlearn_loss!r}"
            )
        if config.finetune_unlearn_loss == "zscore" and len(removed):
            if heldout is None:
                raise ValueError("finetune_unlearn_loss='zscore' needs the model's held-out pairs")
            targets = zscore_targets(
                orig_final, graph.num_users, removed, graph_r.edges, heldout, gen
            )
        reset_rows = e0[isolated].clone() if bool(isolated.any()) else None
        projected: dict[str, float] = {}
        if config.edge_correction not in ("encoder", "projection"):
            raise ValueError(
                f"edge_correction must be 'encoder' or 'projection', not {config.edge_correction!r}"
            )
        if config.edge_correction == "projection" and targets is not None:
            # removed pairs left to forget (a request of erased users or items only has none:
            # their rows are reset, and the encoder's pass corrects the rows around them)
            from unlearnrec.unlearning.projection import project_users

            node_edges = idm.edges[~keep]
            if len(node_edges):
                # a mixed batch: its node part (erased users, taken-down items, whose rows were
                # reset above) gets the encoder's pass exactly as a request of that part alone
                # would; the projection then sees the corrected rows
                idm_nodes = influence_dependency(
                    node_edges,
                    graph.num_users,
                    graph.num_items,
                    device,
                    _idm_degrees(graph, config),
                )
                with torch.no_grad():
                    node_delta = encoder.delta(idm_nodes.matrix, orig_final)  # (N, d)
                    node_mask = _correction_mask(idm_nodes, config, graph.num_users)
                    node_mask = node_mask * (~isolated).float().unsqueeze(1)
                    e0 = e0 + node_mask * encoder.mlp(node_delta)
            e0, projected = project_users(
                model, graph_r, e0, removed, targets, rounds=config.projection_rounds
            )
            delta = None  # the projection replaces the pass on removed edges
        else:
            with torch.no_grad():
                delta = encoder.delta(idm.matrix, orig_final)  # ΔE0, (N, d); H0, W_η frozen
        encode_seconds = clock.elapsed()  # to the corrected table, before any fine-tune step

        e0 = torch.nn.Parameter(e0)
        if config.finetune_rows == "touched":
            # rows the request does not touch keep their trained values: on a converged model
            # their minibatch gradients are noise, which Adam's first steps turn into moves of
            # about lr per coordinate
            keep_rows = idm.touched.float().unsqueeze(1)  # (N, 1)
            e0.register_hook(lambda g: g * keep_rows)
        elif config.finetune_rows != "all":
            raise ValueError(
                f"finetune_rows must be 'all' or 'touched', not {config.finetune_rows!r}"
            )
        mlp = copy.deepcopy(encoder.mlp).requires_grad_(True)
        if config.finetune_lambda_u is not None:
            config = replace(config, lambda_u=config.finetune_lambda_u)
        opt = torch.optim.Adam([e0, *mlp.parameters()], lr=config.finetune_lr)

        def corrected(rows: torch.Tensor) -> torch.Tensor:
            """Ẽ0: the rows plus the encoder's correction (MLP fine-tuned) where it applies."""
            return rows if delta is None else rows + mask * mlp(delta)

        views = model.make_views(graph_r, gen)
        if config.finetune_stop not in ("fixed", "calibrated"):
            raise ValueError(
                f"finetune_stop must be 'fixed' or 'calibrated', not {config.finetune_stop!r}"
            )
        parts: dict[str, float] = {}
        gaps: list[float] = []  # P(z > t) − 0.5 over L_u's batch, step by step
        steps = 0
        max_steps = config.finetune_steps
        calibrated = (
            config.finetune_stop == "calibrated" and config.finetune_unlearn_loss == "zscore"
        )
        if calibrated and targets is None:
            # nothing left for L_u to calibrate on (erased users and items only, whose rows were
            # reset): the rows around them re-fit for the minimum number of steps
            max_steps = min(max_steps, config.finetune_min_steps)
        if projected and projected["projection_pairs_above"] == 0 and reset_rows is None:
            max_steps = 0  # every removed pair sits at its target and nothing was reset
        for _ in range(max_steps):
            e0_tilde = corrected(e0)
            loss, parts = _objective(
                model,
                graph_r,
                e0_tilde,
                removed,
                orig_final,
                config,
                train_config.weight_decay,
                config.finetune_batch_size,
                gen,
                views,
                preserved,
                targets,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if reset_rows is not None:
                # reset rows stay where retrain has them: a consistent small gradient (weight
                # decay) would move them by about lr per Adam step
                with torch.no_grad():
                    e0[isolated] = reset_rows
            steps += 1
            if "z_gap" in parts:
                gaps.append(round(parts["z_gap"], 4))
            if calibrated and steps >= config.finetune_min_steps and parts.get("z_gap", 1.0) <= 0.0:
                break
        with torch.no_grad():
            e0_final = corrected(e0)
        unlearned = copy.deepcopy(model)
        unlearned.embedding = torch.nn.Parameter(e0_final.detach())
        unlearned.eval()
        seconds = clock.elapsed()
    return UnlearnOutcome(
        method="unlearnrec",
        model=unlearned,
        graph=graph_r,
        seconds=seconds,
        details={
            "encode_seconds": encode_seconds,
            "finetune_seconds": seconds - encode_seconds,
            "reset_nodes": int(isolated.sum()),
            "finetune_steps_run": steps,
            "z_gaps": gaps,
            "isolated_items": isolated_items,
            "touched_nodes": int(idm.touched.sum()),
            "last_losses": parts,
            **projected,
        },
    )


# -- the encoder file ---------------------------------------------------------------------------
ENCODER_FORMAT = "unlearnrec.encoder/1"
ENCODER_FILE = "encoder.pt"


def save_encoder(path: str | Path, method: UnlearnRec, base_sha256: str) -> str:
    """Write ``method``'s pre-trained encoder and config atomically; returns the file's sha256.
    ``base_sha256`` names the base model it was pre-trained on ("" when not recorded)."""
    if method.encoder is None:
        raise RuntimeError("save_encoder needs a pre-trained encoder")
    return save_torch(
        path,
        {
            "format": ENCODER_FORMAT,
            "config": to_dict(method.config),
            "shape": list(method.encoder.h0.shape),
            "num_layers": method.encoder.num_layers,
            "state_dict": {k: v.detach().cpu() for k, v in method.encoder.state_dict().items()},
            "base_sha256": base_sha256,
        },
    )


def load_encoder(path: str | Path, device: torch.device) -> UnlearnRec:
    """The method as ``save_encoder`` left it (its config, its encoder in eval mode on
    ``device``)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{path}: not an unlearnrec encoder (format {payload.get('format')!r})")
    config = from_dict(UnlearnRecConfig, payload["config"])
    n, d = payload["shape"]
    encoder = InfluenceEncoder(
        n,
        d,
        payload["num_layers"],
        readout=config.readout,
        kappa=config.kappa,
        w_eta_init=config.w_eta_init,
        negative_slope=config.negative_slope,
    )
    encoder.load_state_dict(payload["state_dict"])
    return UnlearnRec(config=config, encoder=encoder.to(device).eval())
