"""Which part of a mixed batch does the membership attack read? Per-part attack AUC.

Splits a request's forgotten pairs (the probe's sample) into the erased users' pairs, the
taken-down items' pairs and the other removed pairs, and prints, for the base model, each
UnlearnRec variant and a retrain (trained here, on one thread), the attack AUC of each part
against the held-out pairs (the certificate's attack: a logistic regression on score, rank and
per-user z fitted on the model's members against held-out pairs, as
``ForgettingProbe.measure``), with the part's mean z-score and rank percentile. The base model
and encoder come from a ``variants.py --cache`` file of the same data and settings. Run from the
repository root:

    .venv/bin/python docs/bench/attack_parts.py mixed:2,20,1 .benchdata/ml1m1000-lgn.cache \
        default reset_users=fresh --data ../shared/data/ml-1m-receraser --subsample-users 1000
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from variants import _value  # docs/bench/variants.py, beside this script

from unlearnrec.config import from_dict, load_params
from unlearnrec.evaluation.forgetting import (
    ForgettingConfig,
    ForgettingProbe,
    _fit_logistic,
    _subsample,
    attack_features,
)
from unlearnrec.evaluation.metrics import roc_auc
from unlearnrec.experiments.shared import build_request, load_splits
from unlearnrec.graph.bipartite import Graph
from unlearnrec.unlearning import Retrain, UnlearnRec, UnlearnRecConfig
from unlearnrec.unlearning.base import ModelState


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("request")
    ap.add_argument("cache", help="a variants.py --cache file of the same data and settings")
    ap.add_argument("variants", nargs="*", default=["default"])
    ap.add_argument("--data", default="../shared/data/ml-100k/ml-100k.inter")
    ap.add_argument("--subsample-users", type=int, default=0)
    ap.add_argument("--min-item-degree", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params("params.yaml")
    _, splits = load_splits(params.data, args.data, args.subsample_users, args.min_item_degree)
    defaults = from_dict(UnlearnRecConfig, params.unlearnrec)
    kept = torch.load(args.cache, weights_only=False)
    base = kept["base"]
    graph = Graph.from_edges(splits.fit, splits.num_users, splits.num_items, "cpu")
    state = ModelState(base, graph, splits.valid, params.train, kept["best_epoch"])
    fc = from_dict(ForgettingConfig, params.forgetting)
    request = build_request(args.request, splits.fit, 0)
    known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
    probe = ForgettingProbe.build(base, graph, request.edges, splits.test, known, fc)
    pairs = probe.forgotten
    users = np.isin(pairs[:, 0], request.users)
    items = np.isin(pairs[:, 1], request.items) & ~users
    parts = {"erased users": users, "taken-down items": items, "other": ~(users | items)}
    print({name: int(m.sum()) for name, m in parts.items()})

    def report(name: str, model, g: Graph) -> None:
        rng = np.random.default_rng(fc.seed + 1)  # the probe's own draw of members
        members = _subsample(g.edges_numpy(), fc.attack_train_pairs, rng)
        x = np.concatenate(
            [attack_features(model, g, members), attack_features(model, g, probe.heldout_train)]
        )
        y = np.concatenate([np.ones(len(members)), np.zeros(len(probe.heldout_train))])
        attacker = _fit_logistic(x, y)
        f_pairs = attack_features(model, g, pairs)  # (P, 3): score, rank, z
        f_held = attack_features(model, g, probe.heldout_eval)
        held = torch.as_tensor(attacker(f_held))
        scored = attacker(f_pairs)
        line = [f"{name}: all {float(roc_auc(torch.as_tensor(scored), held)):.3f}"]
        for part, m in parts.items():
            if m.any():
                auc = float(roc_auc(torch.as_tensor(scored[m]), held))
                line.append(
                    f"{part} {auc:.3f} (z {f_pairs[m, 2].mean():+.2f} rank "
                    f"{f_pairs[m, 1].mean():.2f})"
                )
        line.append(f"held-out z {f_held[:, 2].mean():+.2f} rank {f_held[:, 1].mean():.2f}")
        print("  ".join(line), flush=True)

    report("base", base, graph)
    for variant in args.variants:
        fields = {}
        if variant != "default":
            fields = {k: _value(v) for k, v in (kv.split("=") for kv in variant.split(","))}
        method = UnlearnRec(dataclasses.replace(defaults, **fields), encoder=kept["encoder"])
        out = method.unlearn(state, request)
        report(variant, out.model, out.graph)
    out = Retrain().unlearn(state, request)
    report("retrain", out.model, out.graph)


if __name__ == "__main__":
    main()
