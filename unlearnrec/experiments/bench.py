"""The unlearning benchmark: one base model, one request, every method, one table.

Kept free of pydantic / SQL / Prefect imports so that it runs on the bare GPU machine.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnrec import config as cfg
from unlearnrec.config import ModelConfig, TrainConfig, from_dict, to_dict
from unlearnrec.data.splits import Splits
from unlearnrec.evaluation.forgetting import (
    ForgettingConfig,
    ForgettingProbe,
    ModelForgetting,
    compare,
)
from unlearnrec.evaluation.membership import (
    MembershipConfig,
    MembershipProbe,
    ReferenceModels,
    compare_to_reference,
)
from unlearnrec.evaluation.ranking import evaluate_ranking
from unlearnrec.experiments.shared import build_request, train_base
from unlearnrec.models import GraphRecommender
from unlearnrec.training.loop import EpochCallback, device_name
from unlearnrec.unlearning import METHODS, ModelState


@dataclass
class BenchSettings:
    request: str = "random:0.01"
    methods: tuple[str, ...] = ("retrain", "unlearnrec")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    seed: int = 0
    # where to keep the models of the run (base checkpoint, encoder, each method's result), for
    # inspecting or re-measuring them later; None keeps nothing
    save_dir: str | None = None
    # run the retrain ladder (unlearning/ladder.py) once per base model and give retrain the
    # fastest configuration that reaches the base model's validation Recall@K within 1%
    retrain_ladder: bool = False
    # K reference models for the membership audit (unlearnrec.evaluation.membership; 0: no
    # audit), trained once per base model on halves of its training pairs
    rmia_references: int = 0


def _peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def expand_methods(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Method names as given, ``all`` standing for every name in ``METHODS`` (retrain first,
    the reference the others are compared with); an unknown name is a ``ValueError``."""
    out: list[str] = []
    for name in names:
        every = ["retrain", *(m for m in METHODS if m != "retrain")]
        for one in every if name == "all" else [name]:
            if one not in METHODS:
                raise ValueError(f"unknown method {one!r}; choose from all, {', '.join(METHODS)}")
            if one not in out:
                out.append(one)
    return tuple(out)


class PeakMemory:
    """Peak memory of one step, in MiB: on CUDA torch's max allocated (reset at entry); on the
    CPU the process's resident set, sampled every ``interval`` s by a background thread
    (psutil), so it includes what was resident before the step (``start_mb``)."""

    def __init__(self, device: torch.device, interval: float = 0.01):
        self.device, self.interval = device, interval
        self.peak_mb: float | None = None
        self.start_mb: float | None = None
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> float | None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is in the lock file
            return None
        return psutil.Process().memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self._rss()
            if rss is not None and (self.peak_mb is None or rss > self.peak_mb):
                self.peak_mb = rss

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            _reset_peak(self.device)
            return self
        self.start_mb = self.peak_mb = self._rss()
        if self.start_mb is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = _peak_mb(self.device)
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = self._rss()
            if rss is not None and self.peak_mb is not None:
                self.peak_mb = max(self.peak_mb, rss)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


@dataclass
class _Prepared:
    """One base model with every method prepared on it (the encoder pre-trained once)."""

    state: ModelState  # the base model and its graph
    base_result: Any
    base_util: dict[str, float]
    base_peak: float | None
    methods: dict[str, tuple[Any, float, PeakMemory]]  # name -> (method, prep s, prep memory)
    references: ReferenceModels | None = None  # the membership audit's, when asked for
    ladder: dict[str, Any] | None = None  # the retrain ladder's rungs and choice, when run


def _save(settings: BenchSettings, name: str, payload: Any) -> None:
    """Keep one model of the run under ``settings.save_dir`` (a checkpoint or a state dict)."""
    if settings.save_dir is None:
        return
    from unlearnrec.training.checkpoint import save_checkpoint, save_torch

    path = Path(settings.save_dir) / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, GraphRecommender):
        save_checkpoint(path, payload, train_config=to_dict(settings.train))
    else:
        save_torch(path, {k: v.detach().cpu() for k, v in payload.items()})


def _prepare(
    splits: Splits,
    fit: np.ndarray,
    settings: BenchSettings,
    device: torch.device,
    log: Callable[[str], None],
    on_epoch: EpochCallback | None,
    label: str,
) -> _Prepared:
    log(f"training the base model on {len(fit)} edges")
    base, graph, base_result = train_base(
        splits, fit, settings.model, settings.train, device, on_epoch=on_epoch
    )
    base_peak = _peak_mb(device)
    _save(settings, f"{label}-base", base)
    exclude_base = np.concatenate([graph.edges_numpy(), splits.valid])
    users, items = base.final_embeddings(graph)
    base_util = evaluate_ranking(users, items, splits.test, exclude_base, settings.train.topk)
    state = ModelState(base, graph, splits.valid, settings.train, base_result.best_epoch)
    methods: dict[str, tuple[Any, float, PeakMemory]] = {}
    ladder = None
    if settings.retrain_ladder and "retrain" in settings.methods:
        from unlearnrec.unlearning.ladder import run_ladder

        log("retrain ladder: the fastest configuration reaching the base's validation utility")
        found = run_ladder(base, graph, splits.valid, settings.train, log=log)
        ladder = found.to_dict()
    for name in settings.methods:
        params = settings.method_params.get(name, {})
        if name == "retrain" and ladder is not None:
            params = {**ladder["config"], **params}  # explicit retrain fields still win
        method = METHODS[name](params)
        with PeakMemory(device) as prep_memory:
            prep = method.prepare(state)
        methods[name] = (method, prep, prep_memory)
        if getattr(method, "encoder", None) is not None:
            _save(settings, f"{label}-{name}-encoder", method.encoder.state_dict())
    references = None
    if settings.rmia_references:
        log(f"training {settings.rmia_references} reference models on halves of {len(fit)} edges")
        references = ReferenceModels.train(
            fit,
            splits.valid,
            splits.num_users,
            splits.num_items,
            settings.model,
            settings.train,
            device,
            references=settings.rmia_references,
            seed=settings.seed,
        )
    return _Prepared(state, base_result, base_util, base_peak, methods, references, ladder)


def _measure(
    prepared: _Prepared,
    request: Any,
    splits: Splits,
    settings: BenchSettings,
    device: torch.device,
    log: Callable[[str], None],
    request_label: str,
    audits: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every prepared method on ``request`` and measure forgetting against retrain.

    With reference models, ``audits`` (when given) receives the original model's membership
    audit under ``"original"``."""
    k = settings.train.topk[0]
    model, graph = prepared.state.model, prepared.state.graph
    known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
    probe = ForgettingProbe.build(
        model, graph, request.edges, splits.test, known, settings.forgetting
    )
    membership = None
    if prepared.references is not None:
        membership = MembershipProbe.build(
            prepared.references,
            request.edges,
            splits.test,
            MembershipConfig(references=prepared.references.k, seed=settings.seed),
        )
        if audits is not None:
            audits["original"] = membership.audit(model, graph).to_dict()
    results: dict[str, dict[str, Any]] = {}
    measured: dict[str, ModelForgetting] = {}
    for name, (method, prep, prep_memory) in prepared.methods.items():
        log(f"{name}: unlearning {request.num_edges} edges")
        with PeakMemory(device) as memory:
            outcome = method.unlearn(prepared.state, request)
        peak = _peak_mb(device)
        _save(settings, f"{request_label}-{name}", outcome.model)
        exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
        m = probe.measure(outcome.model, outcome.graph, splits.test, exclude, settings.forgetting)
        measured[name] = m
        row: dict[str, Any] = {
            "seconds": outcome.seconds,
            f"recall@{k}": m.utility[f"recall@{k}"],
            f"ndcg@{k}": m.utility[f"ndcg@{k}"],
            "mi_bf": m.mi_bf,
            "mi_ng": m.mi_ng,
            "mia_auc": m.mia_auc,
            "mia_auc_threshold": m.mia_auc_threshold,
            "score_forgotten": m.score_forgotten,
            "score_negative": m.score_negative,
            "peak_gpu_mb": peak,
            # CUDA: torch's max allocated; CPU: the process's peak resident set during the step
            "peak_mb": memory.peak_mb,
            "peak_mb_kind": memory.kind,
            "rss_before_mb": memory.start_mb,
            "prepare_seconds": prep,
            "prepare_peak_mb": prep_memory.peak_mb,
            "details": outcome.details,
            # the training fields a retrain ran with (the fast configuration, when laddered)
            **({"config": outcome.details["train_config"]} if name == "retrain" else {}),
        }
        if dataclasses.is_dataclass(getattr(method, "config", None)):
            # every field as it ran, defaults included (params.yaml names only a few)
            row["method_config"] = dataclasses.asdict(method.config)
        if prep:
            row["pretrain_seconds"] = prep
            row["pretrain_peak_gpu_mb"] = prep_memory.peak_mb if device.type == "cuda" else None
        if membership is not None:
            # AUC, TPR at 1% / 0.1% FPR, then the ROC points and histograms of the evidence plot
            row["rmia"] = membership.audit(outcome.model, outcome.graph).to_dict()
        results[name] = row
        del outcome
    if "retrain" in measured:
        ref = measured["retrain"]
        for name, row in results.items():
            ratios, over, under, reasons = compare(measured[name], ref, settings.forgetting)
            row["recall_ratio"] = ratios[f"recall@{k}"]
            row["ndcg_ratio"] = ratios[f"ndcg@{k}"]
            row["speedup"] = results["retrain"]["seconds"] / max(row["seconds"], 1e-9)
            row["over_unlearning"], row["under_unlearning"] = over, under
            row["flags"] = reasons
            if "rmia" in row and "rmia" in results["retrain"]:
                ok, why = compare_to_reference(row["rmia"], results["retrain"]["rmia"])
                row["rmia_gap"] = {
                    key: row["rmia"][key] - results["retrain"]["rmia"][key]
                    for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr")
                }
                row["rmia_within_margins"], row["rmia_flags"] = ok, why
    return results


def run_bench(
    splits: Splits,
    settings: BenchSettings,
    device: torch.device,
    *,
    log: Callable[[str], None] = lambda _: None,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train the base, build the request, run each method, measure forgetting; a JSON-ready dict."""
    return next(
        iter_benches(splits, settings, [settings.request], device, log=log, on_epoch=on_epoch)
    )


def iter_benches(
    splits: Splits,
    settings: BenchSettings,
    requests: list[str],
    device: torch.device,
    *,
    log: Callable[[str], None] = lambda _: None,
    on_epoch: EpochCallback | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one bench result per request spec, in order, as soon as each is measured.

    Requests other than ``noise`` share one base model and one preparation of each method (the
    encoder is pre-trained once per base model, as in production); a ``noise`` request trains
    its own base on the graph augmented with the injected edges.
    """
    if not requests:
        raise ValueError("no request to bench")
    # ``all`` expanded; an unknown name fails here, before any training
    settings = dataclasses.replace(settings, methods=expand_methods(settings.methods))
    shared: _Prepared | None = None
    for spec in requests:
        started = time.perf_counter()
        _reset_peak(device)
        noise = spec.partition(":")[0] == "noise"
        if noise:
            log("training a clean model to find least-related pairs")
            clean, clean_graph, _ = train_base(
                splits, splits.fit, settings.model, settings.train, device
            )
            known = np.concatenate([splits.fit, splits.valid, splits.test])
            request = build_request(spec, splits.fit, settings.seed, (clean, clean_graph), known)
            del clean, clean_graph
            fit = np.concatenate([splits.fit, request.edges])
            prepared = _prepare(splits, fit, settings, device, log, on_epoch, spec_label(spec))
        else:
            # the shared base's training and preparation count in the first result only
            if shared is None:
                shared = _prepare(splits, splits.fit, settings, device, log, on_epoch, "shared")
            prepared = shared
            request = build_request(spec, splits.fit, settings.seed)
        log(f"request {spec}: {request.kind}, {request.num_edges} edges")
        audits: dict[str, Any] = {}
        results = _measure(
            prepared, request, splits, settings, device, log, spec_label(spec), audits
        )
        membership: dict[str, Any] = {}
        if prepared.references is not None:
            # the references' training counts apart (once per base model, like the encoder)
            membership = {
                "rmia_reference_seconds": prepared.references.seconds,
                "rmia_references": prepared.references.describe(),
                "rmia_original": audits["original"],
            }
        yield (
            _result(splits, settings, spec, request, prepared, results, device)
            | {
                "wall_seconds": time.perf_counter() - started,
                "shared_base": not noise and len(requests) > 1,
            }
            | membership
        )


def spec_label(spec: str) -> str:
    """A request spec as a file-name part: ``users:60`` -> ``users-60``."""
    return spec.replace(":", "-")


def _result(
    splits: Splits,
    settings: BenchSettings,
    spec: str,
    request: Any,
    prepared: _Prepared,
    results: dict[str, dict[str, Any]],
    device: torch.device,
) -> dict[str, Any]:
    k = settings.train.topk[0]
    base_result = prepared.base_result
    return {
        "dataset": splits.name,
        "device": device_name(device),
        "torch": torch.__version__,
        "request": {"spec": spec, **request.describe()},
        "base": {
            f"recall@{k}": prepared.base_util[f"recall@{k}"],
            f"ndcg@{k}": prepared.base_util[f"ndcg@{k}"],
            "seconds": base_result.seconds_to_best,
            "total_seconds": base_result.seconds,
            "best_epoch": base_result.best_epoch,
            "peak_gpu_mb": prepared.base_peak,
        },
        "config": {
            "model": to_dict(settings.model),
            "train": to_dict(settings.train),
            "method_params": settings.method_params,
            "forgetting": to_dict(settings.forgetting),
        },
        "methods": results,
        **({"retrain_ladder": prepared.ladder} if prepared.ladder is not None else {}),
    }


# params.yaml sections that are not a method's: the pipeline's (config.Params) and its stages'
PIPELINE_SECTIONS = ("data", "model", "train", "forgetting", "evaluate")


def check_set_sections(items: list[str] | None) -> None:
    """Each ``--set SECTION.KEY=VALUE`` names a pipeline section or a method of ``METHODS``: a
    misspelt method section is a ``ValueError`` (a usage error), not a setting nobody reads."""
    known = (*PIPELINE_SECTIONS, *METHODS)
    for item in items or []:
        section = item.partition("=")[0].partition(".")[0]
        if section not in known:
            hint = difflib.get_close_matches(section, known, n=1)
            raise ValueError(
                f"--set {item!r}: unknown section {section!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; sections: {', '.join(known)}"
            )


def method_params_from(raw: dict[str, Any], train: TrainConfig) -> dict[str, dict[str, Any]]:
    """Each method's section of the params mapping (params.yaml with ``--set`` applied), checked
    by building the method: an unknown field or a bad value is a ``ValueError`` naming the
    section, before any training. ``retrain``'s fields are training fields (``train``'s)."""
    out: dict[str, dict[str, Any]] = {}
    for name, factory in METHODS.items():
        section = raw.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ValueError(f"params section {name!r} must be a mapping of fields")
        try:
            if name == "retrain":
                cfg.replace(train, section)
            else:
                factory(dict(section))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params section {name!r}: {exc}") from exc
        out[name] = dict(section)
    return out


def settings_from_params(
    params: Any,
    request: str,
    methods: tuple[str, ...],
    seed: int = 0,
    save_dir: str | None = None,
    rmia_references: int = 0,
    raw: dict[str, Any] | None = None,
) -> BenchSettings:
    """Bench settings from a ``config.Params`` (params.yaml) and the mapping it was parsed from
    (``raw``, ``--set`` applied): every method's params come from the section of its name
    (:func:`method_params_from`); without ``raw``, retrain's and UnlearnRec's from ``params``."""
    if raw is None:
        raw = {"retrain": params.retrain, "unlearnrec": params.unlearnrec}
    return BenchSettings(
        request=request,
        methods=methods,
        model=params.model,
        train=params.train,
        method_params=method_params_from(raw, params.train),
        forgetting=from_dict(ForgettingConfig, params.forgetting),
        seed=seed,
        save_dir=save_dir,
        rmia_references=rmia_references,
    )


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width text table of a bench result."""
    k = next(key for key in result["base"] if key.startswith("recall@")).split("@")[1]
    head = (
        f"{'method':<12}{'seconds':>9}{'speedup':>9}{'recall@' + k:>11}{'ndcg@' + k:>9}"
        f"{'R-ratio':>9}{'MI-BF':>8}{'MI-NG':>8}{'MIA-AUC':>9}{'peakMB':>8}"
    )
    lines = [
        f"dataset {result['dataset']}  device {result['device']}  request "
        f"{result['request']['spec']} ({result['request']['edges']} edges)",
        f"base: recall@{k} {result['base'][f'recall@{k}']:.4f}  ndcg@{k} "
        f"{result['base'][f'ndcg@{k}']:.4f}  trained in {result['base']['seconds']:.1f}s",
        head,
    ]

    def num(v: Any, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for name, row in result["methods"].items():
        lines.append(
            f"{name:<12}{num(row['seconds'], '9.2f')}{num(row.get('speedup'), '9.1f')}"
            f"{num(row[f'recall@{k}'], '11.4f')}{num(row[f'ndcg@{k}'], '9.4f')}"
            f"{num(row.get('recall_ratio'), '9.3f')}{num(row['mi_bf'], '8.3f')}"
            f"{num(row['mi_ng'], '8.3f')}{num(row['mia_auc'], '9.3f')}"
            f"{num(row.get('peak_mb', row.get('peak_gpu_mb')), '8.0f')}"
        )
        if "pretrain_seconds" in row:
            lines.append(
                f"{'':<12}(encoder pre-training: {row['pretrain_seconds']:.2f}s, once "
                "per base model)"
            )
    if "rmia_references" in result:
        refs = result["rmia_references"]
        lines.append(
            f"membership audit (LiRA offline, {refs['k']} reference models trained in "
            f"{result['rmia_reference_seconds']:.1f}s, once per base model): "
            f"{'AUC':>7}{'TPR@1%':>8}{'TPR@0.1%':>10}"
        )
        audits = {"original": result["rmia_original"]} | {
            name: row["rmia"] for name, row in result["methods"].items() if "rmia" in row
        }
        for name, a in audits.items():
            lines.append(
                f"{'':<4}{name:<12}{a['auc']:7.3f}{a['tpr_at_1pct_fpr']:8.3f}"
                f"{a['tpr_at_0_1pct_fpr']:10.3f}"
            )
    return "\n".join(lines)


# -- the retrain ladder of a pipeline base model (``unlearnrec ladder``) -----------------------
def ladder_overrides(chosen: dict[str, Any] | None, base: TrainConfig) -> dict[str, Any]:
    """The training fields of the ladder's choice that differ from the base configuration: what
    params.yaml's ``retrain:`` holds (empty when nothing was chosen: the base configuration)."""
    if chosen is None:
        return {}
    own = to_dict(base)
    return {k: v for k, v in chosen.items() if own.get(k) != v}


def ladder_for_base(
    splits: Splits,
    base_path: str | Path,
    device: torch.device,
    *,
    train: TrainConfig | None = None,
    tolerance: float = 0.01,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the retrain ladder (unlearning/ladder.py) once for the base model in ``base_path``
    on ``splits``: the configuration it ran with (its checkpoint's, else ``train``) against
    larger batches, a full batch and fewer validations. Returns a JSON-ready record: the base
    model's sha256 and data hash, the ladder's rungs and choice, and ``retrain``, the fields to
    override for the platform's and the bench's retrain."""
    from unlearnrec.files import sha256_file
    from unlearnrec.graph.bipartite import Graph
    from unlearnrec.training.checkpoint import load_checkpoint
    from unlearnrec.unlearning.ladder import run_ladder

    ckpt = load_checkpoint(base_path, device)
    own = ckpt.meta.get("train_config") or {}
    base_train = from_dict(TrainConfig, own) if own else (train or TrainConfig())
    graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, device)
    found = run_ladder(ckpt.model, graph, splits.valid, base_train, tolerance=tolerance, log=log)
    chosen = found.overrides if found.chosen is not None else None
    return {
        "base": str(base_path),
        "base_sha256": sha256_file(Path(base_path)),
        "data_hash": splits.data_hash,
        "device": device_name(device),
        "tolerance": tolerance,
        "base_train": to_dict(base_train),
        "ladder": found.to_dict(),
        "retrain": ladder_overrides(chosen, base_train),
    }


def ladder_timings(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """``record`` (:func:`ladder_for_base`'s) without its rungs' wall-clock seconds, and those
    seconds as a flat mapping (``rung<i>_seconds_to_best``, ``rung<i>_seconds``)."""
    kept = copy.deepcopy(record)
    seconds: dict[str, float] = {}
    for i, rung in enumerate(kept["ladder"]["rungs"]):
        for key in ("seconds_to_best", "seconds"):
            seconds[f"rung{i}_{key}"] = round(float(rung.pop(key)), 3)
    return kept, seconds


def write_retrain_params(path: str | Path, overrides: dict[str, Any], note: str) -> None:
    """Set the top-level ``retrain:`` section of the params file at ``path`` to ``overrides``
    (one flow-style line with ``note`` as its comment), leaving every other line as it is (the
    file's comments document the fields). Checked by parsing it back: every other section is
    unchanged and ``retrain`` reads as ``overrides``."""
    import re

    import yaml

    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = (yaml.safe_load(text) or {}) if text else {}
    flow = yaml.safe_dump(dict(overrides), default_flow_style=True, width=10**6).strip()
    line = f"retrain: {flow}  # {note}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, s in enumerate(lines) if re.match(r"retrain:(\s|$)", s)), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(line)
    else:
        end = start + 1
        # the section's own lines: indented (block style) until the next top-level line
        while end < len(lines) and lines[end][:1] in (" ", "\t"):
            end += 1
        lines[start:end] = [line]
    new_text = "".join(lines)
    after = yaml.safe_load(new_text) or {}
    others = {k: v for k, v in before.items() if k != "retrain"}
    if (
        after.get("retrain") != dict(overrides)
        or {k: v for k, v in after.items() if k != "retrain"} != others
    ):
        raise ValueError(f"{path}: could not rewrite its retrain section in place")
    path.write_text(new_text, encoding="utf-8")
