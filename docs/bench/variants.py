"""UnlearnRec variants on one ML-100K base model and request, against a recorded retrain.

Trains the base model and pre-trains the encoder once (one thread, params.yaml defaults, the
bench's seeds, so the base is the one ``unlearnrec bench`` trains), then unlearns the request with
each variant and prints the bench's figures as ratios to the retrain recorded in a bench JSON of
the same base and request. A variant is ``default``, or comma-separated ``field=value`` overrides
of ``UnlearnRecConfig`` (a ``pretrain_*`` field pre-trains the variant's own encoder), optionally
prefixed by ``nodelta:`` (the encoder's ΔE0 zeroed: the fine-tune alone), ``pass=A:`` (the
encoder's correction scaled by A: 0 is ``nodelta``, 1 the method) or ``nossl:`` (the
backbone's contrastive term left out of the fine-tune).
Run from the repository root:

    .venv/bin/python docs/bench/variants.py sgl random:0.01 \
        docs/bench/cal-ml100k-sgl-random-0.01.json default nodelta: finetune_rows=touched
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

import unlearnrec.unlearning.unlearnrec as method_module
from unlearnrec.config import from_dict, load_params
from unlearnrec.evaluation.forgetting import ForgettingConfig, ForgettingProbe
from unlearnrec.experiments.shared import build_request, load_splits, train_base
from unlearnrec.graph.bipartite import Graph
from unlearnrec.unlearning import Retrain, UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.base import ModelState

DATA = "../shared/data/ml-100k/ml-100k.inter"


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("request")
    ap.add_argument(
        "reference",
        help="bench JSON of the same base and request (its retrain); when missing, the retrain "
        "is trained here and recorded in it",
    )
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--data", default=DATA, help="dataset path (default: ML-100K)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="train.FIELD=VALUE, as the bench's --set (base model and recorded retrain alike)",
    )
    ap.add_argument(
        "--subsample-users", type=int, default=0, help="as the bench's: a fixed sample (seed 0)"
    )
    ap.add_argument("--min-item-degree", type=int, default=1, help="as the bench's")
    ap.add_argument(
        "--cache",
        help="file keeping the trained base and encoder: reused when it exists (same data, "
        "--set and params.yaml, or the figures mean nothing), written otherwise",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params("params.yaml")
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, name=args.model))
    train = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section != "train":
            raise SystemExit(f"--set {item}: only train.FIELD is supported")
        train[name] = _value(value)
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, **train))
    _, splits = load_splits(params.data, args.data, args.subsample_users, args.min_item_degree)
    defaults = from_dict(UnlearnRecConfig, params.unlearnrec)
    prepared = UnlearnRec(defaults)
    if args.cache and Path(args.cache).exists():
        kept = torch.load(args.cache, weights_only=False)
        base, best_epoch, prepared.encoder = kept["base"], kept["best_epoch"], kept["encoder"]
        graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, "cpu")
        state = ModelState(base, graph, splits.valid, params.train, best_epoch)
        prepared.warm_up(state)
    else:
        base, graph, result = train_base(
            splits, splits.fit, params.model, params.train, torch.device("cpu")
        )
        state = ModelState(base, graph, splits.valid, params.train, result.best_epoch)
        prepared.prepare(state)
        if args.cache:
            kept = {"base": base, "best_epoch": result.best_epoch, "encoder": prepared.encoder}
            torch.save(kept, args.cache)
    rows = base.embedding.detach()
    users, items = rows[: base.num_users], rows[base.num_users :]
    print(
        f"base rows: RMS users {float(users.pow(2).mean().sqrt()):.3f} items "
        f"{float(items.pow(2).mean().sqrt()):.3f}; median norm users "
        f"{float(users.norm(dim=1).median()):.3f} items {float(items.norm(dim=1).median()):.3f}"
    )
    fc = from_dict(ForgettingConfig, params.forgetting)
    request = build_request(args.request, splits.fit, 0)
    known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
    probe = ForgettingProbe.build(base, graph, request.edges, splits.test, known, fc)
    if not Path(args.reference).exists():
        # no recorded retrain of this base and request: train it here (the bench's retrain,
        # the base's configuration) and record it, the reference's seconds included
        out = Retrain().unlearn(state, request)
        exclude = np.concatenate([out.graph.edges_numpy(), splits.valid])
        m = probe.measure(out.model, out.graph, splits.test, exclude, fc)
        recorded = {
            "recall@20": m.utility["recall@20"],
            "mi_bf": m.mi_bf,
            "mi_ng": m.mi_ng,
            "mia_auc": m.mia_auc,
            "seconds": out.seconds,
        }
        command = "docs/bench/variants.py " + " ".join(sys.argv[1:])
        Path(args.reference).write_text(
            json.dumps({"command": command, "methods": {"retrain": recorded}}, indent=2) + "\n"
        )
    with open(args.reference) as f:
        ref = json.load(f)["methods"]["retrain"]
    print(
        f"retrain (recorded): recall@20 {ref['recall@20']:.4f} MI-BF {ref['mi_bf']:.3f} "
        f"MI-NG {ref['mi_ng']:.3f} AUC {ref['mia_auc']:.3f}"
    )
    for variant in args.variants:
        prefix, _, rest = variant.rpartition(":") if ":" in variant else ("", "", variant)
        encoder, run_state = prepared.encoder, state
        if "nodelta" in prefix:
            encoder = copy.deepcopy(prepared.encoder)
            with torch.no_grad():
                encoder.h0.zero_()
                encoder.w_eta.zero_()
        if "nossl" in prefix:
            model = copy.deepcopy(base)
            model.config = dataclasses.replace(model.config, ssl_weight=0.0)
            run_state = dataclasses.replace(state, model=model)
        fields = {}
        if rest and rest != "default":
            fields = {k: _value(v) for k, v in (kv.split("=") for kv in rest.split(","))}
        config = dataclasses.replace(defaults, **fields)
        if any(k.startswith("pretrain_") for k in fields):
            # a pre-training setting: this variant pre-trains its own encoder (seconds apart)
            own = UnlearnRec(config)
            seconds = own.prepare(run_state)
            print(f"  ({variant}: encoder pre-trained in {seconds:.1f} s)")
            encoder = own.encoder
        method = UnlearnRec(config, encoder=encoder)
        mask = method_module._correction_mask
        if "pass=" in prefix:
            alpha = float(prefix.split("pass=")[1].split(":")[0])
            method_module._correction_mask = lambda idm, c, n, a=alpha, m=mask: m(idm, c, n) * a
        try:
            out = method.unlearn(run_state, request)
        finally:
            method_module._correction_mask = mask
        exclude = np.concatenate([out.graph.edges_numpy(), splits.valid])
        m = probe.measure(out.model, out.graph, splits.test, exclude, fc)
        recall = m.utility["recall@20"]
        print(
            f"{variant}: recall@20 {recall:.4f} ({recall / ref['recall@20']:.3f}x) "
            f"MI-BF {m.mi_bf:.3f} ({m.mi_bf / ref['mi_bf']:.2f}x) "
            f"MI-NG {m.mi_ng / ref['mi_ng']:.2f}x AUC {m.mia_auc - ref['mia_auc']:+.3f} "
            f"steps {out.details['finetune_steps_run']} seconds {out.seconds:.2f}"
            + (f" speed-up {ref['seconds'] / out.seconds:.0f}x" if "seconds" in ref else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
