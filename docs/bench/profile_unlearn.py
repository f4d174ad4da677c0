"""Where UnlearnRec's unlearning step spends its time (docs/benchmarks.md, 'Profile').

Trains the base model on a dataset, pre-trains the encoder, then unlearns each request
``--repeat`` times with timers wrapped around the step's parts (no change to the method):
residual graph, IDM, full propagations (inside and outside the fine-tune), encoder pass, z-score
targets, the fine-tune's objective (forward), and the rest of each step (backward + Adam).

    OMP_NUM_THREADS=1 .venv/bin/python docs/bench/profile_unlearn.py \
        --data ../shared/data/ml-100k/ml-100k.inter --request random:0.01 --request users:10 \
        --json docs/bench/profile-ml100k.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

import torch

from unlearnrec.config import load_params, to_dict
from unlearnrec.data import read_dataset
from unlearnrec.experiments.shared import build_request, make_splits, train_base
from unlearnrec.graph import bipartite as graph_mod
from unlearnrec.training.loop import device_name
from unlearnrec.unlearning import ModelState, UnlearnRec
from unlearnrec.unlearning import unlearnrec as ur

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(name: str, fn):
    def wrapper(*args, **kw):
        start = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            TIMES[name] += time.perf_counter() - start
            CALLS[name] += 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--request", action="append", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="unlearnrec.FIELD=VALUE")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    params = load_params("params.yaml")
    device = torch.device("cpu")
    data = read_dataset(args.data, min_rating=params.data.min_rating, seed=params.data.seed)
    splits = make_splits(data, params.data.valid_fraction, params.data.seed)
    start = time.perf_counter()
    model, graph, result = train_base(splits, splits.fit, params.model, params.train, device)
    train_seconds = time.perf_counter() - start
    state = ModelState(model, graph, splits.valid, params.train, result.best_epoch)
    method = UnlearnRec.from_params(params.unlearnrec)
    for item in args.set:
        key, _, value = item.partition("=")
        field = key.removeprefix("unlearnrec.")
        method.config = replace(
            method.config, **{field: type(getattr(method.config, field))(value)}
        )
    prep = method.prepare(state)

    # timers around the parts of the step (module-level names that unlearn_request calls)
    ur.influence_dependency = timed("idm", ur.influence_dependency)
    ur.zscore_targets = timed("zscore_targets", ur.zscore_targets)
    ur._objective = timed("objective_forward", ur._objective)
    ur._push_isolated_items = timed("isolated_items", ur._push_isolated_items)
    graph_mod.Graph.without = timed("residual_graph", graph_mod.Graph.without)
    model.propagate = timed("full_propagation", model.propagate)
    method.encoder.delta = timed("encoder_pass", method.encoder.delta)

    records: list[dict[str, Any]] = []
    for spec in args.request or ["random:0.01"]:
        request = build_request(spec, splits.fit, 0)
        for rep in range(args.repeat):
            TIMES.clear()
            CALLS.clear()
            outcome = method.unlearn(state, request)
            d = outcome.details
            parts = dict(TIMES)
            fine = d["finetune_seconds"] - parts.get("zscore_targets", 0.0)
            parts["backward_and_step"] = fine - parts.get("objective_forward", 0.0)
            parts["other"] = outcome.seconds - sum(
                v
                for k, v in parts.items()
                if k not in ("full_propagation",)  # counted inside the others
            )
            rec = {
                "request": spec,
                "edges": request.num_edges,
                "repeat": rep,
                "seconds": outcome.seconds,
                "encode_seconds": d["encode_seconds"],
                "finetune_seconds": d["finetune_seconds"],
                "steps": d["finetune_steps_run"],
                "parts": {k: round(v, 4) for k, v in sorted(parts.items())},
                "calls": dict(CALLS),
            }
            print(json.dumps(rec))
            records.append(rec)
    out = {
        "dataset": splits.name,
        "device": device_name(device),
        "torch": torch.__version__,
        "edges": len(graph.edges),
        "base_train_seconds": train_seconds,
        "pretrain_seconds": prep,
        "unlearnrec": to_dict(method.config),
        "records": records,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
