"""A reference-model membership audit: LiRA's offline form, reported as TPR at low FPR.

The question a certificate answers is "does the model treat the erased pairs like pairs it never
saw?". The population attacker of ``forgetting.py`` answers it on average; a per-pair
likelihood-ratio attack calibrated with reference models answers it for each pair, and its
true-positive rate at a low false-positive rate is what the membership-inference literature reports
(Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022: LiRA;
Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024: RMIA).

**Reference models.** K models (default 4) with the base model's architecture and training config,
each trained on about half of the training (fit) pairs, with fixed seeds. Membership is drawn in
complementary halves: for each round r < K/2 a pseudo-random bit b_r(pair) (a hash of the pair and
the seed, so it is defined for *any* pair, trained or not) puts the pair in reference 2r when
b_r = 1 and in reference 2r+1 when b_r = 0. Every fit pair is thus in exactly K/2 references (an
odd K adds one reference with an independent bit). The references are per base model: built once,
reused for every request and every evaluated model; their training seconds are reported apart.

**Statistic.** φ(x) = ŷ(u, i) = ē_u · ē_i, the logit of the pair's score σ(ŷ) (LiRA's
logit-scaled confidence), or with ``statistic="rank"`` the logit of the pair's rank percentile
among all items for the user (scale-free across models).

**Attack (default ``"lira"``: LiRA offline, global variance).** Only OUT references are used (the
evaluated pairs' IN references exist for training pairs but never for held-out ones). For a pair x
its OUT set is the references whose bit says "out": K/2 of them for *every* pair, held-out pairs
included (their "in" references never saw them either, but are left out so that members and
non-members are scored with equally noisy means). μ_out(x) is the mean of φ over that set; σ_out
is one global standard deviation (LiRA's fixed-variance variant, recommended by Carlini et al. for
few references), pooled over the held-out pairs across all K references (all are OUT there). The
score is the one-sided test Λ(x) = (φ_θ(x) − μ_out(x)) / σ_out; larger is "member".

``"rmia"``: RMIA's offline form with γ = 1: Pr(x|θ) / Pr(x) with Pr(x|θ) = σ(φ_θ(x)) and
Pr(x) = ½((1 + a)·mean_out σ(φ_k(x)) + (1 − a)) (the offline approximation of Pr_IN from
Pr_OUT, ``rmia_a``). With γ = 1 RMIA's comparison with population pairs z is a monotone transform
of this ratio, so the ROC is the ratio's.

**Report.** Members: the forgotten pairs (members of the original model). Non-members: held-out
test pairs that no model was ever trained on. AUC, TPR at 1% and 0.1% FPR, the ROC at
log-spaced FPRs, and a histogram of the attack score of both populations (counts in fixed bins):
what the evidence plot needs, and no pair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data.dataset import as_edges
from unlearnrec.evaluation.metrics import roc_auc
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import GraphRecommender, build_model
from unlearnrec.training.loop import train_model

ATTACKS = ("lira", "rmia")
STATISTICS = ("logit", "rank", "z")


@dataclass(frozen=True)
class MembershipConfig:
    references: int = 4  # K reference models; 0 turns the audit off where a caller asks
    statistic: str = "logit"  # "logit" (ŷ) or "rank" (logit of the rank percentile)
    attack: str = "lira"  # "lira" (offline, global variance) or "rmia" (offline, γ = 1)
    rmia_a: float = 0.3  # RMIA's offline Pr_IN ≈ a-scaled Pr_OUT
    max_pairs: int = 20000  # cap on members / non-members scored (sampled, fixed seed)
    roc_points: int = 40  # log-spaced FPRs stored for the ROC plot
    hist_range: tuple[float, float] = (-5.0, 8.0)  # attack-score bins (LiRA: σ units)
    hist_bins: int = 39
    seed: int = 0


# -- membership bits -----------------------------------------------------------------------------
def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64: a fixed pseudo-random function of the key."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def in_mask(pairs: np.ndarray, num_items: int, references: int, seed: int) -> np.ndarray:
    """(P, K) bool: would reference k train on the pair (were it a training pair)?

    Rounds of complementary halves: references 2r and 2r+1 split the pairs by one bit; an odd K's
    last reference takes an independent bit. Defined for any pair, so held-out pairs get the same
    kind of "out" set as training pairs.
    """
    pairs = as_edges(pairs)
    keys = pairs[:, 0].astype(np.uint64) * np.uint64(num_items) + pairs[:, 1].astype(np.uint64)
    out = np.zeros((len(pairs), references), dtype=bool)
    for r in range((references + 1) // 2):
        salt = np.uint64((seed * 1_000_003 + r + 1) & 0xFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            bit = (_mix64(keys * np.uint64(0x9E3779B97F4A7C15) + salt) >> np.uint64(63)) == 1
        out[:, 2 * r] = bit
        if 2 * r + 1 < references:
            out[:, 2 * r + 1] = ~bit
    return out


def state_hash(model: torch.nn.Module) -> str:
    """sha256 of a model's state dict as ``torch.save`` writes it (CPU tensors, sorted keys)."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu().contiguous() for k, v in sorted(model.state_dict().items())}
    torch.save(state, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


# -- reference models ----------------------------------------------------------------------------
@dataclass
class ReferenceModels:
    """K reference models of one base model (same architecture and training config)."""

    models: list[GraphRecommender]
    graphs: list[Graph]
    seed: int
    seconds: float  # training time of all K together
    hashes: list[str]  # sha256 of each reference's state dict
    fit_edges: list[int] = field(default_factory=list)  # pairs each was trained on

    @property
    def k(self) -> int:
        return len(self.models)

    @property
    def num_items(self) -> int:
        return self.models[0].num_items

    def describe(self) -> dict[str, Any]:
        """What a report or a certificate records about the references."""
        return {
            "k": self.k,
            "seed": self.seed,
            "seconds": self.seconds,
            "sha256": list(self.hashes),
            "fit_edges": list(self.fit_edges),
        }

    @classmethod
    def train(
        cls,
        fit: np.ndarray,
        valid: np.ndarray,
        num_users: int,
        num_items: int,
        model_config: ModelConfig,
        train_config: TrainConfig,
        device: torch.device,
        *,
        references: int = 4,
        seed: int = 0,
    ) -> ReferenceModels:
        """Train K references on their halves of ``fit`` (early stopping on ``valid``)."""
        if references < 2:
            raise ValueError("the audit needs at least 2 reference models (a pooled variance)")
        fit = as_edges(fit)
        mask = in_mask(fit, num_items, references, seed)
        models, graphs, hashes, sizes = [], [], [], []
        started = time.perf_counter()
        for k in range(references):
            edges = fit[mask[:, k]]
            graph = Graph.from_edges(edges, num_users, num_items, device)
            config = dataclasses.replace(
                train_config, seed=train_config.seed + 1000 * (seed + 1) + k
            )
            torch.manual_seed(config.seed)
            model = build_model(num_users, num_items, model_config).to(device)
            train_model(model, graph, valid, config)
            model.eval()
            models.append(model)
            graphs.append(graph)
            hashes.append(state_hash(model))
            sizes.append(len(edges))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        return cls(models, graphs, seed, seconds, hashes, sizes)

    def save(self, folder: str | Path) -> None:
        """Weights (one file per reference) and ``references.json``; graphs are rebuilt on load."""
        from unlearnrec.files import atomic_write_bytes
        from unlearnrec.training.checkpoint import save_torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for k, model in enumerate(self.models):
            state = {n: v.detach().cpu() for n, v in model.state_dict().items()}
            save_torch(folder / f"reference-{k}.pt", state)
        atomic_write_bytes(folder / "references.json", json.dumps(self.describe()).encode())

    @classmethod
    def load(
        cls,
        folder: str | Path,
        fit: np.ndarray,
        num_users: int,
        num_items: int,
        model_config: ModelConfig,
        device: torch.device,
    ) -> ReferenceModels | None:
        """The references saved in ``folder`` for training pairs ``fit``; None when there are none
        or a file does not match its recorded hash or pair count."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "references.json").read_text())
        except (OSError, ValueError):
            return None
        fit = as_edges(fit)
        mask = in_mask(fit, num_items, int(meta["k"]), int(meta["seed"]))
        models, graphs = [], []
        for k in range(int(meta["k"])):
            if int(mask[:, k].sum()) != meta["fit_edges"][k]:
                return None
            model = build_model(num_users, num_items, model_config).to(device)
            try:
                state = torch.load(
                    folder / f"reference-{k}.pt", map_location=device, weights_only=True
                )
                model.load_state_dict(state)
            except (OSError, RuntimeError):
                return None
            model.eval()
            if state_hash(model) != meta["sha256"][k]:
                return None
            models.append(model)
            graphs.append(Graph.from_edges(fit[mask[:, k]], num_users, num_items, device))
        return cls(
            models,
            graphs,
            int(meta["seed"]),
            float(meta["seconds"]),
            list(meta["sha256"]),
            list(meta["fit_edges"]),
        )


# -- statistics ----------------------------------------------------------------------------------
@torch.no_grad()
def pair_statistic(
    model: GraphRecommender,
    graph: Graph,
    pairs: np.ndarray,
    statistic: str = "logit",
    batch_size: int = 2048,
) -> np.ndarray:
    """(P,) φ of each pair under ``model``: ŷ (``logit``) or logit of the rank percentile."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose from {STATISTICS}")
    users, items = model.final_embeddings(graph)
    pairs = as_edges(pairs)
    out = np.zeros(len(pairs), dtype=np.float64)
    n_items = items.shape[0]
    for lo in range(0, len(pairs), batch_size):
        p = torch.as_tensor(pairs[lo : lo + batch_size], device=users.device)
        u = users[p[:, 0]]
        s = (u * items[p[:, 1]]).sum(1)
        if statistic == "logit":
            out[lo : lo + len(p)] = s.double().cpu().numpy()
        elif statistic == "z":
            row = u @ items.T
            z = (s - row.mean(1)) / row.std(1).clamp_min(1e-12)
            out[lo : lo + len(p)] = z.double().cpu().numpy()
        else:
            # share of items scored below the pair (0.5 for ties), kept off 0 and 1
            row = u @ items.T
            below = (row < s[:, None]).double().sum(1) + 0.5 * (
                (row == s[:, None]).double().sum(1) - 1
            )
            q = ((below + 0.5) / n_items).clamp(1e-6, 1 - 1e-6)
            out[lo : lo + len(p)] = torch.log(q / (1 - q)).cpu().numpy()
    return out


def lira_offline(target: np.ndarray, ref: np.ndarray, out: np.ndarray, sigma: float) -> np.ndarray:
    """LiRA's offline one-sided score with a global σ: (φ_θ(x) − mean_out φ_k(x)) / σ.

    ``target``: (P,) φ under the evaluated model; ``ref``: (P, K) φ under each reference;
    ``out``: (P, K) bool, the references used as OUT for each pair (each row at least one).
    """
    mu = (ref * out).sum(1) / out.sum(1)
    return (target - mu) / sigma


def rmia_offline(target: np.ndarray, ref: np.ndarray, out: np.ndarray, a: float) -> np.ndarray:
    """RMIA's offline ratio Pr(x|θ) / Pr(x) with Pr(x) = ½((1 + a)·Pr_OUT(x) + (1 − a))."""
    p_out = ((1 / (1 + np.exp(-ref))) * out).sum(1) / out.sum(1)
    p_x = 0.5 * ((1 + a) * p_out + (1 - a))
    return (1 / (1 + np.exp(-target))) / p_x


def pooled_sigma(ref: np.ndarray) -> float:
    """Global σ of φ across references, pooled over pairs that every reference left out."""
    if ref.shape[1] < 2:
        raise ValueError("a global variance needs at least two references")
    return float(np.sqrt(ref.var(1, ddof=1).mean()))


# -- ROC at low FPR ------------------------------------------------------------------------------
def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> float:
    """The largest TPR of a threshold rule "member iff score > t" whose FPR is at most ``fpr``.

    With n non-members, at most ⌊fpr·n⌋ of them may score above t: t is the (⌊fpr·n⌋ + 1)-th
    largest non-member score (ties at t count as negatives on both sides).
    """
    neg = np.sort(np.asarray(nonmembers, dtype=np.float64))[::-1]
    allowed = int(np.floor(fpr * len(neg) + 1e-9))
    if allowed >= len(neg):
        return 1.0
    return float(np.mean(np.asarray(members) > neg[allowed]))


def roc_points(members: np.ndarray, nonmembers: np.ndarray, n: int = 40) -> dict[str, list[float]]:
    """TPR at log-spaced FPRs from 1/|non-members| (at most 1e-4) to 1, for a log-axis plot."""
    lo = max(1.0 / len(nonmembers), 1e-4)
    fprs = np.unique(np.concatenate([np.geomspace(lo, 1.0, n), [0.001, 0.01, 0.1]]))
    fprs = fprs[fprs >= lo]
    return {
        "fpr": [round(float(f), 6) for f in fprs],
        "tpr": [round(tpr_at_fpr(members, nonmembers, float(f)), 6) for f in fprs],
    }


@dataclass
class MembershipAudit:
    """The audit of one model on one request."""

    attack: str
    statistic: str
    references: int
    members: int
    nonmembers: int
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float
    roc: dict[str, list[float]]
    histogram: dict[str, list[float]]  # bin edges, member counts, non-member counts
    rank_histogram: dict[str, list[float]]  # the same of the pairs' rank percentiles

    def summary(self) -> dict[str, float]:
        return {
            "auc": self.auc,
            "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
            "tpr_at_0_1pct_fpr": self.tpr_at_0_1pct_fpr,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _histogram(pos: np.ndarray, neg: np.ndarray, lo: float, hi: float, bins: int) -> dict:
    edges = np.linspace(lo, hi, bins + 1)
    clip = lambda v: np.clip(v, lo, hi)  # noqa: E731 - the tails land in the end bins
    return {
        "edges": [round(float(e), 4) for e in edges],
        "members": np.histogram(clip(pos), edges)[0].tolist(),
        "nonmembers": np.histogram(clip(neg), edges)[0].tolist(),
    }


@dataclass
class MembershipProbe:
    """The fixed pairs of one request and their statistics under the references (computed once,
    reused for every evaluated model)."""

    members: np.ndarray  # (P, 2) forgotten pairs (sampled)
    nonmembers: np.ndarray  # (Q, 2) held-out pairs (sampled)
    ref_members: np.ndarray  # (P, K)
    ref_nonmembers: np.ndarray  # (Q, K)
    out_members: np.ndarray  # (P, K) bool
    out_nonmembers: np.ndarray  # (Q, K) bool
    sigma: float
    config: MembershipConfig
    references: ReferenceModels

    @classmethod
    def build(
        cls,
        references: ReferenceModels,
        members: np.ndarray,
        nonmembers: np.ndarray,
        config: MembershipConfig | None = None,
    ) -> MembershipProbe:
        config = config or MembershipConfig()
        if config.attack not in ATTACKS:
            raise ValueError(f"unknown attack {config.attack!r}; choose from {ATTACKS}")
        rng = np.random.default_rng(config.seed)

        def sample(pairs: np.ndarray) -> np.ndarray:
            pairs = as_edges(pairs)
            if len(pairs) > config.max_pairs:
                pairs = pairs[np.sort(rng.choice(len(pairs), config.max_pairs, replace=False))]
            return pairs

        members, nonmembers = sample(members), sample(nonmembers)
        if len(members) == 0 or len(nonmembers) == 0:
            raise ValueError("the audit needs members and non-members")

        def stats(pairs: np.ndarray) -> np.ndarray:
            return np.stack(
                [
                    pair_statistic(m, g, pairs, config.statistic)
                    for m, g in zip(references.models, references.graphs, strict=True)
                ],
                1,
            )

        k, n_items = references.k, references.num_items
        out_m = ~in_mask(members, n_items, k, references.seed)
        out_n = ~in_mask(nonmembers, n_items, k, references.seed)
        ref_n = stats(nonmembers)
        return cls(
            members=members,
            nonmembers=nonmembers,
            ref_members=stats(members),
            ref_nonmembers=ref_n,
            out_members=out_m,
            out_nonmembers=out_n,
            sigma=max(pooled_sigma(ref_n), 1e-12),
            config=config,
            references=references,
        )

    def _score(self, target: np.ndarray, ref: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.config.attack == "lira":
            return lira_offline(target, ref, out, self.sigma)
        return rmia_offline(target, ref, out, self.config.rmia_a)

    def audit(self, model: GraphRecommender, graph: Graph) -> MembershipAudit:
        """The attack on ``model`` (trained on ``graph``): forgotten pairs vs held-out pairs."""
        c = self.config
        t_m = pair_statistic(model, graph, self.members, c.statistic)
        t_n = pair_statistic(model, graph, self.nonmembers, c.statistic)
        pos = self._score(t_m, self.ref_members, self.out_members)
        neg = self._score(t_n, self.ref_nonmembers, self.out_nonmembers)
        lo, hi = c.hist_range if c.attack == "lira" else (0.0, 4.0)
        if c.statistic == "rank":
            r_m, r_n = 1 / (1 + np.exp(-t_m)), 1 / (1 + np.exp(-t_n))
        else:
            r_m = 1 / (1 + np.exp(-pair_statistic(model, graph, self.members, "rank")))
            r_n = 1 / (1 + np.exp(-pair_statistic(model, graph, self.nonmembers, "rank")))
        return MembershipAudit(
            attack=c.attack,
            statistic=c.statistic,
            references=self.references.k,
            members=len(pos),
            nonmembers=len(neg),
            auc=roc_auc(torch.as_tensor(pos), torch.as_tensor(neg)),
            tpr_at_1pct_fpr=tpr_at_fpr(pos, neg, 0.01),
            tpr_at_0_1pct_fpr=tpr_at_fpr(pos, neg, 0.001),
            roc=roc_points(pos, neg, c.roc_points),
            histogram=_histogram(pos, neg, lo, hi, c.hist_bins),
            rank_histogram=_histogram(r_m, r_n, 0.0, 1.0, 20),
        )


# -- one cache of references per base model ------------------------------------------------------
_CACHE: dict[tuple[str, int, int], ReferenceModels] = {}


def references_for(
    base_hash: str,
    build: Callable[[], ReferenceModels],
    *,
    references: int = 4,
    seed: int = 0,
    load: Callable[[], ReferenceModels | None] | None = None,
    save: Callable[[ReferenceModels], None] | None = None,
) -> tuple[ReferenceModels, bool]:
    """The references of one base model: from memory, else ``load()`` (a disk cache), else
    ``build()`` (then ``save``); keyed by the base model's hash, K and the seed.
    Returns (references, reused)."""
    key = (base_hash, references, seed)
    if key in _CACHE:
        return _CACHE[key], True
    refs = load() if load is not None else None
    reused = refs is not None
    if refs is None:
        refs = build()
        if save is not None:
            save(refs)
    _CACHE.clear()  # one base model's references at a time: a new base supersedes them
    _CACHE[key] = refs
    return refs, reused


def compare_to_reference(
    audit: dict[str, float],
    reference: dict[str, float],
    *,
    tpr_margin: float = 0.01,
    auc_margin: float = 0.03,
) -> tuple[bool, list[str]]:
    """Does ``audit`` sit within the margins of the retrained model's? (passed, reasons)."""
    reasons = []
    d_tpr = audit["tpr_at_1pct_fpr"] - reference["tpr_at_1pct_fpr"]
    d_auc = audit["auc"] - reference["auc"]
    if abs(d_tpr) > tpr_margin:
        reasons.append(f"membership audit TPR@1%FPR {d_tpr:+.3f} from the reference's")
    if abs(d_auc) > auc_margin:
        reasons.append(f"membership audit AUC {d_auc:+.3f} from the reference's")
    return not reasons, reasons


def evidence_record(
    audits: dict[str, MembershipAudit | dict[str, Any]],
    references: ReferenceModels,
    *,
    tpr_margin: float = 0.01,
    auc_margin: float = 0.03,
) -> dict[str, Any]:
    """What a verification record (and so a certificate) keeps of the audit: the figures of each
    model (``original``, ``unlearned``, ``reference``) with their ROC points and histogram counts,
    K and the references' hashes, the margins and the verdict against the reference (when there
    is one). No pair and no id: counts and rates only."""
    models = {
        k: a.to_dict() if isinstance(a, MembershipAudit) else dict(a) for k, a in audits.items()
    }
    record: dict[str, Any] = {
        "attack": next(iter(models.values()))["attack"] if models else "lira",
        "k": references.k,
        "references": references.describe(),
        "thresholds": {"tpr_margin": tpr_margin, "auc_margin": auc_margin},
        "models": models,
    }
    if "unlearned" in models and "reference" in models:
        ok, reasons = compare_to_reference(
            models["unlearned"],
            models["reference"],
            tpr_margin=tpr_margin,
            auc_margin=auc_margin,
        )
        record.update(passed=ok, reasons=reasons)
    return record


def audit_against_reference(
    *,
    original: GraphRecommender,
    original_graph: Graph,
    unlearned: GraphRecommender,
    unlearned_graph: Graph,
    reference: GraphRecommender,
    reference_graph: Graph,
    members: np.ndarray,
    nonmembers: np.ndarray,
    valid: np.ndarray,
    train_config: TrainConfig,
    references: int = 4,
    seed: int = 0,
    tpr_margin: float = 0.01,
    auc_margin: float = 0.03,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The audit a final verification runs: the original, unlearned and retrained models on the
    erased training pairs (``members``) vs held-out pairs, with the original model's references
    (trained on halves of ``original_graph``'s pairs; cached per base model, in memory and under
    ``cache_dir/<sha256 of the base>``). The evidence record, with ``passed`` and ``reasons``
    against the retrained model's figures."""
    device = original_graph.device
    base = state_hash(original)
    fit = original_graph.edges_numpy()
    folder = Path(cache_dir) / f"{base[:32]}-k{references}-s{seed}" if cache_dir else None
    config = original.config

    def build() -> ReferenceModels:
        return ReferenceModels.train(
            fit,
            valid,
            original.num_users,
            original.num_items,
            config,
            train_config,
            device,
            references=references,
            seed=seed,
        )

    refs, reused = references_for(
        base,
        build,
        references=references,
        seed=seed,
        load=(
            (
                lambda: ReferenceModels.load(
                    folder, fit, original.num_users, original.num_items, config, device
                )
            )
            if folder
            else None
        ),
        save=(lambda r: r.save(folder)) if folder else None,
    )
    probe = MembershipProbe.build(
        refs, members, nonmembers, MembershipConfig(references=refs.k, seed=seed)
    )
    record = evidence_record(
        {
            "original": probe.audit(original, original_graph),
            "unlearned": probe.audit(unlearned, unlearned_graph),
            "reference": probe.audit(reference, reference_graph),
        },
        refs,
        tpr_margin=tpr_margin,
        auc_margin=auc_margin,
    )
    record.update(base_sha256=base, references_reused=reused)
    return record
