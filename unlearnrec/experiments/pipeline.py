"""The DVC pipeline's stages (prepare -> train -> pretrain, ladder -> evaluate) as plain functions.

Each stage reads its inputs, calls the library, and writes its outputs atomically under
``artifacts/``; ``dvc.yaml`` runs them through the CLI. Nothing here writes into ``data/``.

What DVC hashes is deterministic: the same inputs give the same bytes (model and encoder files,
splits, reports, ``metrics.json``), so ``dvc.lock`` and the git-tracked metrics only change when
a result does. Wall-clock seconds differ on every run: they go to ``timings.json`` beside each
stage's outputs, which neither DVC nor git tracks (``dvc metrics show artifacts/*/timings.json``
reads them). Metrics files hold figures only; hashes and names live in the outputs themselves.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnrec import __version__
from unlearnrec.config import Params, from_dict, to_dict
from unlearnrec.data.splits import Splits
from unlearnrec.evaluation.forgetting import ForgettingConfig, forgetting_report
from unlearnrec.experiments.shared import build_request, load_splits, train_base
from unlearnrec.files import atomic_write_text, sha256_file
from unlearnrec.training.checkpoint import fit_epochs_of, load_checkpoint, save_checkpoint
from unlearnrec.training.loop import EpochCallback
from unlearnrec.unlearning import ModelState, Retrain, UnlearnRec
from unlearnrec.unlearning.ladder import retrain_choice
from unlearnrec.unlearning.unlearnrec import load_encoder, save_encoder


def write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


TIMINGS = "timings.json"  # beside a stage's outputs; untracked (see the module's docstring)


def write_timings(folder: str | Path, seconds: dict[str, float]) -> dict[str, float]:
    """Write a stage's ``timings.json``; returns what it wrote (seconds to the millisecond)."""
    rounded = {k: round(float(v), 3) for k, v in seconds.items()}
    write_json(Path(folder) / TIMINGS, rounded)
    return rounded


def write_ladder(path: str | Path, record: dict[str, Any]) -> None:
    """A ladder record (``bench.ladder_for_base``'s) at ``path``, its rungs' wall-clock seconds
    beside it in ``<name>.timings.json``: they differ on every run, so the record (the ``ladder``
    stage's DVC output) only changes when what the ladder found does."""
    from unlearnrec.experiments.bench import ladder_timings

    kept, seconds = ladder_timings(record)
    write_json(path, kept)
    write_json(Path(path).with_suffix(".timings.json"), seconds)


def read_timings(folder: str | Path) -> dict[str, float]:
    """A stage's ``timings.json`` ({} when the stage has not run here)."""
    path = Path(folder) / TIMINGS
    return json.loads(path.read_text()) if path.is_file() else {}


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# -- prepare ------------------------------------------------------------------------------------
def prepare(params: Params, out: Path) -> Splits:
    """Read the dataset, carve the validation split, write ``splits.npz`` and ``stats.json``."""
    data, splits = load_splits(params.data)
    splits.save(out / "splits.npz")
    stats = {**data.stats(), **splits.stats()}
    # figures only: the name and the content hash are in splits.npz (``Splits.load``)
    write_json(
        out / "stats.json", {k: v for k, v in stats.items() if k not in ("name", "data_hash")}
    )
    return splits


# -- train --------------------------------------------------------------------------------------
def train(
    params: Params,
    splits_path: Path,
    out: Path,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train the base model; ``model.pt``, ``metrics.json`` and the ``curve.csv`` plot."""
    splits = Splits.load(splits_path)
    model, graph, result = train_base(
        splits, splits.fit, params.model, params.train, device, on_epoch=on_epoch
    )
    from unlearnrec.evaluation.ranking import evaluate_ranking

    users, items = model.final_embeddings(graph)
    test = evaluate_ranking(
        users, items, splits.test, np.concatenate([splits.fit, splits.valid]), params.train.topk
    )
    metrics = {
        "test": test,
        "valid": result.best_valid,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }
    save_checkpoint(
        out / "model.pt",
        model,
        train_config=to_dict(params.train),
        data_hash=splits.data_hash,
        metrics=metrics,
        extra={"splits_sha256": sha256_file(splits_path)},
        # the package's version, not the commit: a commit that leaves the stage's code alone
        # must not change the model's bytes (dvc.lock records the code it depends on)
        code=__version__,
    )
    write_json(out / "metrics.json", metrics)
    timings = write_timings(
        out, {"seconds": result.seconds, "seconds_to_best": result.seconds_to_best}
    )
    write_csv(
        out / "curve.csv",
        [
            {
                "epoch": r["epoch"],
                "loss": round(r["loss"], 6),
                **{k: round(v, 6) for k, v in r.items() if k.startswith("valid_")},
            }
            for r in result.history
            if any(k.startswith("valid_") for k in r)
        ],
    )
    return {**metrics, **timings}


# -- pretrain -----------------------------------------------------------------------------------
def pretrain(
    params: Params,
    splits_path: Path,
    base_path: Path,
    out: Path,
    device: torch.device,
    on_request: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Pre-train the Influence Encoder of the base model; ``encoder.pt`` + metrics + curve.
    ``on_request``: called with each simulated request's record (a progress bar)."""
    splits = Splits.load(splits_path)
    ckpt = load_checkpoint(base_path, device)
    from unlearnrec.graph.bipartite import Graph

    graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, device)
    method = UnlearnRec.from_params(params.unlearnrec)
    method.on_pretrain = on_request
    state = ModelState(ckpt.model, graph, splits.valid, params.train, fit_epochs_of(ckpt.meta))
    seconds = method.prepare(state)
    save_encoder(out / "encoder.pt", method, sha256_file(base_path))
    last = method.pretrain_history[-1] if method.pretrain_history else {}
    metrics = {"final_loss": last.get("loss"), "requests": len(method.pretrain_history)}
    write_json(out / "metrics.json", metrics)
    timings = write_timings(out, {"seconds": seconds})
    write_csv(
        out / "curve.csv",
        [
            {k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()}
            for r in method.pretrain_history
        ],
    )
    return {**metrics, **timings}


# -- evaluate -----------------------------------------------------------------------------------
def evaluate(
    params: Params,
    evaluate_params: dict[str, Any],
    splits_path: Path,
    base_path: Path,
    encoder_path: Path,
    out: Path,
    device: torch.device,
    log: Callable[[str], None] = lambda _: None,
    ladder_path: Path | None = None,
) -> dict[str, Any]:
    """Unlearn the configured request with UnlearnRec, retrain the reference, and write the
    forgetting report (``report.json``, a DVC metrics file). The reference trains with
    params' ``retrain:`` when it sets any field, else with the choice of the ladder record at
    ``ladder_path`` (the ``ladder`` stage's), else with the base model's configuration."""
    splits = Splits.load(splits_path)
    ckpt = load_checkpoint(base_path, device)
    from unlearnrec.graph.bipartite import Graph

    graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, device)
    state = ModelState(ckpt.model, graph, splits.valid, params.train, fit_epochs_of(ckpt.meta))
    spec = evaluate_params.get("request", "random:0.01")
    request = build_request(spec, splits.fit, int(evaluate_params.get("seed", 0)))
    method = load_encoder(encoder_path, device)
    method.warm_up(state)
    log(f"unlearning {request.num_edges} edges ({spec}) with UnlearnRec")
    outcome = method.unlearn(state, request)
    overrides, source = retrain_choice(params.retrain, ladder_path)
    log(f"retraining the reference on the residual graph ({source}: {overrides or 'no override'})")
    reference = Retrain(overrides=overrides).unlearn(state, request)
    log("measuring forgetting")
    report = forgetting_report(
        original=ckpt.model,
        original_graph=graph,
        unlearned=outcome.model,
        unlearned_graph=outcome.graph,
        reference=reference.model,
        reference_graph=reference.graph,
        request={"spec": spec, **request.describe()},
        request_edges=request.edges,
        test_edges=splits.test,
        valid_edges=splits.valid,
        config=from_dict(ForgettingConfig, params.forgetting),
    )
    result = {**report.to_dict(), "retrain": {"overrides": overrides, "source": source}}
    write_json(out / "report.json", result)
    write_json(out / "metrics.json", headline(result))
    seconds = {
        "unlearnrec": outcome.seconds,
        "retrain": reference.seconds,
        "speedup": reference.seconds / max(outcome.seconds, 1e-9),
    }
    return {**result, "seconds": write_timings(out, seconds)}


def load_report(path: str | Path) -> dict[str, Any]:
    """The evaluate stage's ``report.json`` with the ``seconds`` of the ``timings.json`` beside
    it (none when the stage ran elsewhere, e.g. outputs from ``dvc pull``)."""
    path = Path(path)
    report = json.loads(path.read_text())
    seconds = read_timings(path.parent)
    return {**report, "seconds": seconds} if seconds else report


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The forgetting report's figures for ``dvc metrics`` (the report itself is a plain
    output): the verdict, the ratios to the reference, and both models' membership figures."""
    figures = ("mi_bf", "mi_ng", "mia_auc")
    return {
        "passed": report["passed"],
        "ratios": report["ratios"],
        "unlearned": {k: report["unlearned"][k] for k in figures},
        "reference": {k: report["reference"][k] for k in figures},
    }


def format_report(report: dict[str, Any]) -> str:
    """The forgetting report as text, for the terminal."""
    k = next(key for key in report["original_utility"] if key.startswith("recall@")).split("@")[1]
    u, r = report["unlearned"], report["reference"]
    rows = [
        (
            "Recall@" + k,
            report["original_utility"][f"recall@{k}"],
            u["utility"][f"recall@{k}"],
            r["utility"][f"recall@{k}"],
        ),
        (
            "NDCG@" + k,
            report["original_utility"][f"ndcg@{k}"],
            u["utility"][f"ndcg@{k}"],
            r["utility"][f"ndcg@{k}"],
        ),
        ("MI-BF", 1.0, u["mi_bf"], r["mi_bf"]),
        ("MI-NG", None, u["mi_ng"], r["mi_ng"]),
        ("MIA AUC", None, u["mia_auc"], r["mia_auc"]),
    ]
    req = report["request"]
    lines = [
        f"Forgetting report: request {req['spec']} ({req['edges']} edges)",
        f"{'':<10}{'original':>10}{'unlearned':>11}{'retrain':>10}",
    ]
    for name, o, a, b in rows:
        o_s = f"{o:10.4f}" if o is not None else f"{'-':>10}"
        lines.append(f"{name:<10}{o_s}{a:11.4f}{b:10.4f}")
    s = report.get("seconds") or {}
    if s:  # timings.json beside the report (absent where the stage ran elsewhere)
        lines.append(
            f"seconds: unlearnrec {s['unlearnrec']:.2f}, retrain {s['retrain']:.2f} "
            f"(speed-up {s['speedup']:.1f}x)"
        )
    verdict = "PASS" if report["passed"] else "FAIL"
    lines.append(
        f"verdict: {verdict}" + (f" ({'; '.join(report['reasons'])})" if report["reasons"] else "")
    )
    return "\n".join(lines)
