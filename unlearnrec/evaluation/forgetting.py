"""Verifying forgetting: MI-BF, MI-NG, a membership-inference attack AUC, utility ratios, flags.

The target is the model retrained without the request (the reference): an unlearned model has
forgotten well when it behaves on the forgotten edges as the reference does, not when it pushes
them as low as possible. All scores are σ(ŷ) with ŷ(u, i) = ē_u · ē_i (final embeddings).

- MI-BF = mean σ(ŷ) of E_Δ under the original model / the same under the evaluated model.
- MI-NG = mean σ(ŷ) of negatives / mean σ(ŷ) of E_Δ, both under the evaluated model. Negatives
  are never-interacted pairs, one per forgotten edge for the same user (fixed seed).
- MIA AUC: a logistic-regression attacker on (score, rank percentile, per-user z-score), trained
  on the model's own training edges vs half of the held-out members (test split); its AUC on
  E_Δ vs the other half. ``mia_auc_threshold``: the plain score-threshold attack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from unlearnrec.data.dataset import as_edges, edge_keys, isin_sorted
from unlearnrec.evaluation.metrics import roc_auc
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender


@dataclass(frozen=True)
class ForgettingConfig:
    min_negatives: int = 1000  # at least this many negatives, and at least |E_Δ|
    max_pairs: int = 20000  # cap on forgotten / held-out pairs scored (sampled, fixed seed)
    attack_train_pairs: int = 5000  # per class, for the attacker's training set
    auc_margin: float = 0.05  # |AUC − reference AUC| allowed
    mi_ng_tolerance: float = 0.2  # MI-NG within ±20% of the reference's
    mi_bf_ratio: float = 0.9  # MI-BF at least 0.9× the reference's
    min_utility_ratio: float = 0.97  # Recall@K at least this share of the reference's
    topk: tuple[int, ...] = (20,)
    seed: int = 0


@dataclass
class ModelForgetting:
    """Forgetting and utility figures of one model on one request."""

    mi_bf: float
    mi_ng: float
    mia_auc: float
    mia_auc_threshold: float
    score_forgotten: float  # mean σ(ŷ) over E_Δ
    score_negative: float  # mean σ(ŷ) over the negatives
    utility: dict[str, float] = field(default_factory=dict)


@dataclass
class ForgettingReport:
    """Everything verification needs about one request, as a record the flows can store."""

    request: dict[str, Any]
    unlearned: ModelForgetting
    reference: ModelForgetting
    original_utility: dict[str, float]
    ratios: dict[str, float]
    over_unlearning: bool
    under_unlearning: bool
    passed: bool
    reasons: list[str]
    thresholds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def scores(model: GraphRecommender, graph: Graph, pairs: np.ndarray) -> np.ndarray:
    """σ(ŷ) for (P, 2) pairs under ``model`` on ``graph``."""
    users, items = model.final_embeddings(graph)
    p = torch.as_tensor(as_edges(pairs), device=users.device)
    return torch.sigmoid((users[p[:, 0]] * items[p[:, 1]]).sum(1)).cpu().numpy()


@torch.no_grad()
def attack_features(
    model: GraphRecommender, graph: Graph, pairs: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """(P, 3) features of each pair: raw score, rank percentile among all items, per-user z."""
    users, items = model.final_embeddings(graph)
    pairs = as_edges(pairs)
    out = np.zeros((len(pairs), 3), dtype=np.float64)
    for lo in range(0, len(pairs), batch_size):
        p = torch.as_tensor(pairs[lo : lo + batch_size], device=users.device)
        row = users[p[:, 0]] @ items.T  # (B, I)
        s = row.gather(1, p[:, 1:2])  # (B, 1)
        rank = (row > s).float().mean(1)
        z = (s.squeeze(1) - row.mean(1)) / row.std(1).clamp_min(1e-12)
        out[lo : lo + len(p)] = torch.stack([s.squeeze(1), rank, z], 1).double().cpu().numpy()
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3):
    """A small logistic regression (LBFGS); returns a scoring function for new features."""
    mean, std = x.mean(0), x.std(0) + 1e-12
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt)
        loss = loss + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach(), b.detach()
    return lambda z: (torch.as_tensor((z - mean) / std, dtype=torch.float64) @ w_ + b_).numpy()


def sample_negatives_for(
    pairs: np.ndarray, known: np.ndarray, num_items: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` never-interacted pairs whose users follow those of ``pairs`` (cycled)."""
    users = np.resize(pairs[:, 0], count)
    known_keys = np.sort(edge_keys(known, num_items))
    items = rng.integers(num_items, size=count)
    for _ in range(20):
        bad = isin_sorted(users * num_items + items, known_keys)
        if not bad.any():
            break
        items[bad] = rng.integers(num_items, size=int(bad.sum()))
    keep = ~isin_sorted(users * num_items + items, known_keys)  # users who know every item: drop
    return np.stack([users[keep], items[keep]], 1)


def _subsample(pairs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(pairs) <= n:
        return pairs
    return pairs[np.sort(rng.choice(len(pairs), size=n, replace=False))]


@dataclass
class ForgettingProbe:
    """The fixed pairs every model of one request is measured on (same seed, same sets)."""

    forgotten: np.ndarray  # E_Δ (sampled to max_pairs)
    negatives: np.ndarray
    heldout_train: np.ndarray  # held-out members to train the attacker
    heldout_eval: np.ndarray  # held-out members to evaluate it against E_Δ
    original_forgotten_score: float  # mean σ(ŷ) of E_Δ under the original model

    @classmethod
    def build(
        cls,
        original: GraphRecommender,
        original_graph: Graph,
        request_edges: np.ndarray,
        heldout: np.ndarray,
        known: np.ndarray,
        config: ForgettingConfig,
    ) -> ForgettingProbe:
        rng = np.random.default_rng(config.seed)
        forgotten = _subsample(as_edges(request_edges), config.max_pairs, rng)
        n_neg = max(len(forgotten), config.min_negatives)
        negatives = sample_negatives_for(forgotten, known, original.num_items, n_neg, rng)
        heldout = as_edges(heldout)
        perm = rng.permutation(len(heldout))
        half = len(perm) // 2
        ho_train = heldout[np.sort(perm[:half])]
        ho_eval = heldout[np.sort(perm[half:])]
        return cls(
            forgotten=forgotten,
            negatives=negatives,
            heldout_train=_subsample(ho_train, config.attack_train_pairs, rng),
            heldout_eval=_subsample(ho_eval, config.max_pairs, rng),
            original_forgotten_score=float(scores(original, original_graph, forgotten).mean()),
        )

    def measure(
        self,
        model: GraphRecommender,
        graph: Graph,
        test_edges: np.ndarray,
        exclude_edges: np.ndarray,
        config: ForgettingConfig,
    ) -> ModelForgetting:
        """Forgetting figures of ``model`` (trained on ``graph``) on this probe."""
        rng = np.random.default_rng(config.seed + 1)
        s_forgotten = float(scores(model, graph, self.forgotten).mean())
        s_negative = float(scores(model, graph, self.negatives).mean())
        members = _subsample(graph.edges_numpy(), config.attack_train_pairs, rng)
        x_train = np.concatenate(
            [
                attack_features(model, graph, members),
                attack_features(model, graph, self.heldout_train),
            ]
        )
        y_train = np.concatenate([np.ones(len(members)), np.zeros(len(self.heldout_train))])
        attacker = _fit_logistic(x_train, y_train)
        f_forgotten = attack_features(model, graph, self.forgotten)
        f_heldout = attack_features(model, graph, self.heldout_eval)
        auc = roc_auc(torch.as_tensor(attacker(f_forgotten)), torch.as_tensor(attacker(f_heldout)))
        auc_threshold = roc_auc(
            torch.as_tensor(f_forgotten[:, 0]), torch.as_tensor(f_heldout[:, 0])
        )
        users, items = model.final_embeddings(graph)
        utility = evaluate_ranking(users, items, test_edges, exclude_edges, config.topk)
        return ModelForgetting(
            mi_bf=self.original_forgotten_score / s_forgotten,
            mi_ng=s_negative / s_forgotten,
            mia_auc=auc,
            mia_auc_threshold=auc_threshold,
            score_forgotten=s_forgotten,
            score_negative=s_negative,
            utility=utility,
        )


def compare(
    unlearned: ModelForgetting,
    reference: ModelForgetting,
    config: ForgettingConfig,
) -> tuple[dict[str, float], bool, bool, list[str]]:
    """Ratios to the reference, the over-/under-unlearning flags and the reasons behind them."""
    k = config.topk[0]
    ratios = {
        f"recall@{k}": unlearned.utility[f"recall@{k}"]
        / max(reference.utility[f"recall@{k}"], 1e-12),
        f"ndcg@{k}": unlearned.utility[f"ndcg@{k}"] / max(reference.utility[f"ndcg@{k}"], 1e-12),
        "mi_bf": unlearned.mi_bf / reference.mi_bf,
        "mi_ng": unlearned.mi_ng / reference.mi_ng,
        "mia_auc_gap": unlearned.mia_auc - reference.mia_auc,
    }
    over, under, reasons = False, False, []
    if ratios["mia_auc_gap"] < -config.auc_margin:
        over = True
        reasons.append(f"MIA AUC {ratios['mia_auc_gap']:+.3f} below the reference's")
    if ratios["mi_ng"] > 1 + config.mi_ng_tolerance:
        over = True
        reasons.append(
            f"MI-NG {ratios['mi_ng']:.2f}x the reference's: forgotten edges pushed "
            "below what retrain gives them"
        )
    if ratios["mia_auc_gap"] > config.auc_margin:
        under = True
        reasons.append(f"MIA AUC {ratios['mia_auc_gap']:+.3f} above the reference's")
    if ratios["mi_ng"] < 1 - config.mi_ng_tolerance:
        under = True
        reasons.append(f"MI-NG {ratios['mi_ng']:.2f}x the reference's")
    if ratios["mi_bf"] < config.mi_bf_ratio or unlearned.mi_bf <= 1.0:
        under = True
        reasons.append(f"MI-BF {unlearned.mi_bf:.3f} ({ratios['mi_bf']:.2f}x the reference's)")
    if ratios[f"recall@{k}"] < config.min_utility_ratio:
        reasons.append(f"Recall@{k} {ratios[f'recall@{k}']:.3f}x the reference's")
    return ratios, over, under, reasons


def forgetting_report(
    *,
    original: GraphRecommender,
    original_graph: Graph,
    unlearned: GraphRecommender,
    unlearned_graph: Graph,
    reference: GraphRecommender,
    reference_graph: Graph,
    request: dict[str, Any],
    request_edges: np.ndarray,
    test_edges: np.ndarray,
    valid_edges: np.ndarray,
    config: ForgettingConfig | None = None,
) -> ForgettingReport:
    """The one call the flows make: all forgetting figures of an unlearned model vs retrain.

    ``test_edges`` are the held-out members (and the utility split); ``valid_edges`` are masked in
    ranking like training edges. Negatives avoid every known pair (train, valid, test, E_Δ).
    """
    config = config or ForgettingConfig()
    known = np.concatenate(
        [
            original_graph.edges_numpy(),
            as_edges(valid_edges),
            as_edges(test_edges),
            as_edges(request_edges),
        ]
    )
    probe = ForgettingProbe.build(
        original, original_graph, request_edges, test_edges, known, config
    )

    def exclude(graph: Graph) -> np.ndarray:
        return np.concatenate([graph.edges_numpy(), as_edges(valid_edges)])

    u = probe.measure(unlearned, unlearned_graph, test_edges, exclude(unlearned_graph), config)
    r = probe.measure(reference, reference_graph, test_edges, exclude(reference_graph), config)
    users, items = original.final_embeddings(original_graph)
    original_utility = evaluate_ranking(
        users, items, test_edges, exclude(original_graph), config.topk
    )
    ratios, over, under, reasons = compare(u, r, config)
    passed = (
        not over and not under and ratios[f"recall@{config.topk[0]}"] >= (config.min_utility_ratio)
    )
    thresholds = {
        "auc_margin": config.auc_margin,
        "mi_ng_tolerance": config.mi_ng_tolerance,
        "mi_bf_ratio": config.mi_bf_ratio,
        "min_utility_ratio": config.min_utility_ratio,
    }
    return ForgettingReport(
        request=request,
        unlearned=u,
        reference=r,
        original_utility=original_utility,
        ratios=ratios,
        over_unlearning=over,
        under_unlearning=under,
        passed=passed,
        reasons=reasons,
        thresholds=thresholds,
    )
