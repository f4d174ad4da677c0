"""The ``unlearnrec`` command line: the ML commands (data, the DVC stages, unlearn, bench, ladder),
the parser that composes every command group, and ``main``. Thin: parse arguments, call the
library, print.

Heavy imports (torch, the pipeline) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unlearnrec.cli.common import (
    DEFAULT_PARAMS,
    EXIT_FAILED,
    UsageError,
    _device,
    _log,
    _params,
    _progress,
    device_arg,
    quiet_telemetry,
)


# -- commands -----------------------------------------------------------------------------------
def cmd_data_synthesize(args: argparse.Namespace) -> int:
    from unlearnrec.data import write_synthetic

    data = write_synthetic(
        args.out, num_users=args.num_users, num_items=args.num_items, seed=args.seed
    )
    print(json.dumps(data.stats()))
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from unlearnrec.data import read_dataset

    kw = {"min_rating": args.min_rating} if args.min_rating is not None else {}
    data = read_dataset(args.path, **kw)
    print(json.dumps({**data.stats(), "content_hash": data.content_hash()}, indent=2))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from unlearnrec.experiments import pipeline

    params, _ = _params(args.params, args.set)
    splits = pipeline.prepare(params, Path(args.out))
    print(json.dumps(splits.stats(), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from unlearnrec.experiments import pipeline

    params, _ = _params(args.params, args.set)
    on_epoch, bar = _progress(f"train {params.model.name}", params.train.max_epochs)
    with bar:
        metrics = pipeline.train(
            params, Path(args.splits), Path(args.out), _device(args.device), on_epoch=on_epoch
        )
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from unlearnrec.config import from_dict
    from unlearnrec.experiments import pipeline
    from unlearnrec.unlearning import UnlearnRecConfig

    params, _ = _params(args.params, args.set)
    requests = from_dict(UnlearnRecConfig, params.unlearnrec).pretrain_requests
    on_request, bar = _progress("pretrain the encoder", requests, unit="request")
    with bar:
        metrics = pipeline.pretrain(
            params,
            Path(args.splits),
            Path(args.base),
            Path(args.out),
            _device(args.device),
            on_request=on_request,
        )
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from unlearnrec.experiments import pipeline

    params, raw = _params(args.params, args.set)
    evaluate_params = dict(raw.get("evaluate") or {})
    if args.request:
        evaluate_params["request"] = args.request
    report = pipeline.evaluate(
        params,
        evaluate_params,
        Path(args.splits),
        Path(args.base),
        Path(args.encoder),
        Path(args.out),
        _device(args.device),
        log=_log,
        ladder_path=Path(args.ladder),
    )
    print(pipeline.format_report(report))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from unlearnrec.experiments.pipeline import format_report, load_report

    path = Path(args.path)
    if not path.exists():
        raise SystemExit(f"error: {path} not found; run `dvc repro` first")
    report = load_report(path)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from unlearnrec.experiments.plots import PlotsError, render_plots

    try:
        written = render_plots(Path.cwd(), Path(args.out), args.revisions)
    except PlotsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"plots": [str(p) for p in written], "index": f"{args.out}/index.html"}))
    else:
        for path in written:
            print(path)
        print(f"open {args.out}/index.html (no network needed)")
    return 0


def cmd_unlearn(args: argparse.Namespace) -> int:
    import numpy as np

    from unlearnrec.data.splits import Splits
    from unlearnrec.experiments import pipeline
    from unlearnrec.experiments.shared import build_request
    from unlearnrec.graph.bipartite import Graph
    from unlearnrec.training.checkpoint import fit_epochs_of, load_checkpoint, save_checkpoint
    from unlearnrec.unlearning import ModelState
    from unlearnrec.unlearning.requests import explicit_edges

    params, _ = _params(args.params, args.set)
    device = _device(args.device)
    splits = Splits.load(args.splits)
    ckpt = load_checkpoint(args.base, device)
    graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, device)
    if args.edges:
        pairs = np.loadtxt(args.edges, delimiter=",", dtype=np.int64, ndmin=2)
        request = explicit_edges(splits.fit, pairs, splits.num_items)
    else:
        request = build_request(args.request, splits.fit, args.seed)
    method = pipeline.load_encoder(Path(args.encoder), device)
    fit_epochs = fit_epochs_of(ckpt.meta)
    state = ModelState(ckpt.model, graph, splits.valid, params.train, fit_epochs)
    outcome = method.unlearn(state, request)
    out = Path(args.out)
    digest = save_checkpoint(
        out / "model.pt",
        outcome.model,
        train_config=ckpt.meta.get("train_config"),
        data_hash=splits.data_hash,
        metrics={},
        extra={
            "unlearned_from": ckpt.meta.get("code_version"),
            "request": request.describe(),
            "seconds": outcome.seconds,
            "fit_epochs": fit_epochs,
        },
    )
    np.savetxt(out / "removed_edges.csv", request.edges, fmt="%d", delimiter=",")
    print(
        json.dumps(
            {
                "model_sha256": digest,
                "seconds": outcome.seconds,
                "request": request.describe(),
                **outcome.details,
            },
            indent=2,
            default=str,
        )
    )
    return 0


def _json_path(template: str, spec: str, several: bool) -> str:
    """Where one request's result goes: ``{request}`` in the path becomes e.g. ``users-60``."""
    if "{request}" not in template:
        if several:
            raise SystemExit("several --request need {request} in --json, e.g. out-{request}.json")
        return template
    from unlearnrec.experiments.bench import spec_label

    return template.replace("{request}", spec_label(spec))


def cmd_bench(args: argparse.Namespace) -> int:
    from unlearnrec.experiments.bench import (
        check_set_sections,
        expand_methods,
        format_table,
        iter_benches,
        settings_from_params,
    )
    from unlearnrec.experiments.pipeline import write_json
    from unlearnrec.experiments.shared import load_splits
    from unlearnrec.unlearning.requests import parse_spec

    requests = args.request or ["random:0.01"]
    several = len(requests) > 1
    for spec in requests:  # fail before hours of training, not after
        try:
            parse_spec(spec)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2  # a usage error, before any training
    try:
        methods = expand_methods([m.strip() for m in args.methods.split(",") if m.strip()])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _json_path(args.json, requests[0], several)
    if not Path(args.data).exists():
        print(f"error: --data {args.data} does not exist", file=sys.stderr)
        return 2
    try:
        # every method's params from its section (--set sisa.shards=5): a misspelt section or
        # field is a usage error before any training, not a setting silently ignored
        check_set_sections(args.set)
        params, raw = _params(args.params, args.set)
        settings = settings_from_params(
            params,
            requests[0],
            methods,
            seed=args.seed,
            save_dir=args.save_models,
            rmia_references=args.rmia,
            raw=raw,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _, splits = load_splits(params.data, args.data, args.subsample_users, args.min_item_degree)
    settings.retrain_ladder = args.retrain_ladder
    on_epoch, bar = _progress("base model", params.train.max_epochs)
    command = " ".join(["unlearnrec", *sys.argv[1:]])
    with bar:
        results = iter_benches(
            splits, settings, requests, _device(args.device), log=_log, on_epoch=on_epoch
        )
        # each result is written as soon as it is measured: a long run that dies later
        # keeps what it has finished
        for spec, result in zip(requests, results, strict=True):
            result["command"] = command
            print(format_table(result))
            if args.json:
                write_json(_json_path(args.json, spec, several), result)
    return 0


def cmd_ladder(args: argparse.Namespace) -> int:
    from unlearnrec.data.splits import Splits
    from unlearnrec.experiments.bench import ladder_for_base, write_retrain_params
    from unlearnrec.experiments.pipeline import write_ladder

    for name, path in (("--splits", args.splits), ("--base", args.base)):
        if not Path(path).exists():
            raise UsageError(f"{name} {path} does not exist")
    if args.write_params and not Path(args.params).exists():
        raise UsageError(f"--write-params: params file {args.params} not found")
    if not 0 <= args.tolerance < 1:
        raise UsageError(f"--tolerance must be in [0, 1), got {args.tolerance}")
    params, _ = _params(args.params)
    record = ladder_for_base(
        Splits.load(args.splits),
        args.base,
        _device(args.device),
        train=params.train,
        tolerance=args.tolerance,
        log=_log,
    )
    record["command"] = " ".join(["unlearnrec", *sys.argv[1:]])
    ladder = record["ladder"]
    if ladder["chosen"] is None:
        _log("no rung reached the base model's validation utility: retrain keeps its own config")
    if args.json:
        write_ladder(args.json, record)
    if args.write_params:
        note = (
            f"ladder pick for base {record['base_sha256'][:12]} ({ladder['key']} "
            f"{ladder['base_valid']:.4f}, target {ladder['target']:.4f})"
        )
        write_retrain_params(args.params, record["retrain"], note)
        _log(f"wrote retrain: {record['retrain']} to {args.params}")
    print(json.dumps({"retrain": record["retrain"], "chosen": ladder["chosen"]}, indent=2))
    return 0


def cmd_bench_scaling(args: argparse.Namespace) -> int:
    from unlearnrec.experiments.scaling import run_scaling

    run_scaling(
        [int(float(x)) for x in args.edges.split(",")],
        json_path=args.json,
        plot_path=args.plot,
        scopes=tuple(s.strip() for s in args.scopes.split(",") if s.strip()),
        graph_scope_max_edges=args.graph_scope_max_edges,
        finetune_steps=args.finetune_steps,
        retrain_steps=args.retrain_steps,
        repeat=args.repeat,
        log=_log,
    )
    return 0


# -- parser -------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml (default: %(default)s)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override one parameter, e.g. --set train.batch_size=8192",
    )
    if device:
        p.add_argument(
            "--device",
            type=device_arg,
            default="auto",
            help="auto (CUDA when present), cpu, cuda:0",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearnrec",
        description="Certified forgetting for graph recommenders (UnlearnRec, SIGIR 2025).",
    )
    from unlearnrec import __version__

    parser.add_argument("--version", action="version", version=f"unlearnrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="generate or inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    syn = dsub.add_parser("synthesize", help="write the deterministic synthetic dataset")
    syn.add_argument("--out", default="data/synthetic")
    syn.add_argument("--num-users", type=int, default=3000)
    syn.add_argument("--num-items", type=int, default=2000)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=cmd_data_synthesize)
    st = dsub.add_parser("stats", help="read a dataset and print its sizes and content hash")
    st.add_argument("path", help="LightGCN folder or MovieLens ratings file")
    st.add_argument("--min-rating", type=float, default=None)
    st.set_defaults(func=cmd_data_stats)

    p = sub.add_parser("prepare", help="pipeline stage: read data, make the validation split")
    _common(p, device=False)
    p.add_argument("--out", default="artifacts/prepared")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="pipeline stage: train the base model")
    _common(p)
    p.add_argument("--splits", default="artifacts/prepared/splits.npz")
    p.add_argument("--out", default="artifacts/base")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="pipeline stage: pre-train the Influence Encoder")
    _common(p)
    p.add_argument("--splits", default="artifacts/prepared/splits.npz")
    p.add_argument("--base", default="artifacts/base/model.pt")
    p.add_argument("--out", default="artifacts/encoder")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("unlearn", help="forget a request with UnlearnRec and save the new model")
    _common(p)
    p.add_argument("--splits", default="artifacts/prepared/splits.npz")
    p.add_argument("--base", default="artifacts/base/model.pt")
    p.add_argument("--encoder", default="artifacts/encoder/encoder.pt")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--request", help="random:F, users:N, items:N")
    group.add_argument("--edges", help="CSV of internal user,item pairs to forget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="artifacts/unlearned")
    p.set_defaults(func=cmd_unlearn)

    p = sub.add_parser("evaluate", help="pipeline stage: unlearn, retrain, forgetting report")
    _common(p)
    p.add_argument("--splits", default="artifacts/prepared/splits.npz")
    p.add_argument("--base", default="artifacts/base/model.pt")
    p.add_argument("--encoder", default="artifacts/encoder/encoder.pt")
    p.add_argument("--request", default=None, help="override params' evaluate.request")
    p.add_argument(
        "--ladder",
        default="artifacts/ladder/ladder.json",
        help="the retrain ladder's record: the reference trains with its choice when params' "
        "retrain: sets nothing and the file exists (default: %(default)s)",
    )
    p.add_argument("--out", default="artifacts/evaluation")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "plots",
        help="render the pipeline's plots to SVG offline (dvc plots show needs a CDN)",
    )
    p.add_argument(
        "revisions",
        nargs="*",
        help="git revisions to compare the workspace with (dvc plots diff), e.g. HEAD~1",
    )
    p.add_argument("--out", default="artifacts/plots", help="folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="the files written, as JSON")
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("report", help="print the pipeline's forgetting report")
    p.add_argument("--path", default="artifacts/evaluation/report.json")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="benchmark unlearning methods on one request")
    _common(p)
    p.add_argument("--data", required=True, help="LightGCN folder or MovieLens ratings file")
    p.add_argument(
        "--request",
        action="append",
        default=None,
        help="random:FRACTION, users:COUNT, items:COUNT, noise:FRACTION or "
        "mixed:USERS,EDGES,ITEMS (default random:0.01); repeat it to bench several requests "
        "on one base model and encoder",
    )
    p.add_argument(
        "--subsample-users",
        type=int,
        default=None,
        metavar="N",
        help="bench on a fixed sample of N users (seed 0) and their interactions: a large "
        "graph on a small machine",
    )
    p.add_argument(
        "--min-item-degree",
        type=int,
        default=1,
        metavar="K",
        help="with --subsample-users: keep only items with K training pairs in the sample",
    )
    p.add_argument(
        "--methods",
        default="retrain,unlearnrec",
        help="comma-separated method names (retrain, unlearnrec, influence, reverse_bpr, ...), "
        "or all: every registered method, retrain first",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the request")
    p.add_argument(
        "--retrain-ladder",
        action="store_true",
        help="retrain with the fastest configuration reaching the base model's validation "
        "Recall@20 within 1%% (a ladder of batch sizes and learning rates, run once)",
    )
    p.add_argument(
        "--json",
        default=None,
        help="write the result as JSON here; {request} in the path becomes the request "
        "(required with several --request)",
    )
    p.add_argument(
        "--rmia",
        type=int,
        default=0,
        metavar="K",
        help="membership audit with K reference models (LiRA offline; trained once per base "
        "model on halves of its pairs): AUC and TPR at 1%%/0.1%% FPR per method (0: off)",
    )
    p.add_argument(
        "--save-models",
        default=None,
        metavar="DIR",
        help="keep the run's models here: the base checkpoint, the pre-trained encoder and "
        "each method's result per request",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "ladder",
        help="find the fastest retrain configuration reaching the base model's validation "
        "utility; --write-params makes it params.yaml's retrain (the platform's reference)",
    )
    # no --set: the ladder runs the base checkpoint's own training configuration
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml (default: %(default)s)")
    p.add_argument(
        "--device", type=device_arg, default="auto", help="auto (CUDA when present), cpu, cuda:0"
    )
    p.add_argument("--splits", default="artifacts/prepared/splits.npz")
    p.add_argument("--base", default="artifacts/base/model.pt")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="a rung qualifies at (1 - TOLERANCE) x the base's validation Recall@K "
        "(default: %(default)s)",
    )
    p.add_argument("--json", default=None, help="write the rungs and the choice here")
    p.add_argument(
        "--write-params",
        action="store_true",
        help="set the params file's retrain: section to the choice (the fields that differ "
        "from the base configuration; empty when no rung qualifies)",
    )
    p.set_defaults(func=cmd_ladder)

    p = sub.add_parser(
        "bench-scaling",
        help="seconds and memory of unlearning one request on synthetic graphs of growing size",
    )
    p.add_argument("--edges", default="1e5,1e6", help="comma-separated training-edge counts")
    p.add_argument("--scopes", default="local,graph", help="UnlearnRec finetune_scope values")
    p.add_argument(
        "--graph-scope-max-edges",
        type=int,
        default=None,
        help="skip the whole-graph scope above this many edges",
    )
    p.add_argument("--finetune-steps", type=int, default=5, help="fixed fine-tune steps")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per request (median)")
    p.add_argument(
        "--retrain-steps",
        type=int,
        default=5,
        help="training steps timed for retrain's epoch (0: keep the JSON's earlier figure)",
    )
    p.add_argument("--json", default=None, help="append the records to this JSON list")
    p.add_argument("--plot", default=None, help="write a PNG plot of all records in --json")
    p.set_defaults(func=cmd_bench_scaling)

    from unlearnrec.cli.compliance import add_commands

    add_commands(sub)
    add_registered_commands(sub)
    return parser


COMMANDS_GROUP = "unlearnrec.commands"


def add_registered_commands(sub: argparse._SubParsersAction) -> None:
    """The command groups other packages register (``flows``: ``flows run`` and ``demo``;
    ``dashboard``: ``dashboard`` and ``dashboard-password``), as ``unlearnrec.commands`` entry
    points naming an ``add_commands(sub)`` function: the core offers them without importing
    those packages itself."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(sub)


def _configure_logging() -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("great_expectations", "httpx", "prefect.server", "alembic", "dvc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    quiet_telemetry()
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise
    except (ValueError, OSError, RuntimeError) as exc:
        # Expected failures (bad input, missing files, unreachable or outdated ledger, DVC
        # errors) end with one clear line and status 1; UNLEARNREC_DEBUG=1 shows the traceback.
        import os

        if os.environ.get("UNLEARNREC_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
