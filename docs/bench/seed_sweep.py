"""Sweep of the influence and reverse-BPR settings on ML-100K (docs/benchmarks.md, seed methods).

Run from the repository root, one thread::

    OMP_NUM_THREADS=1 python docs/bench/seed_sweep.py "random:0.01;users:10" "[CONFIGS]"

CONFIGS: a Python list of (name, method) pairs, e.g.
``[(f"inf d{d}", InfluenceUnlearning(InfluenceConfig(damping=d))) for d in (0.1, 1.0)]``.
The base model (params.yaml defaults, as ``unlearnrec bench`` trains it) and each request's
retrain are cached under /tmp/inf; one JSON line per configuration goes to
docs/bench/seed-ml100k-sweep.jsonl, with its ratios to retrain (Rr, bfr, ngr) and AUC gap (dauc).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, ".")
from unlearnrec.config import load_params
from unlearnrec.data import read_dataset
from unlearnrec.evaluation.forgetting import ForgettingConfig, ForgettingProbe
from unlearnrec.experiments.shared import build_request, make_splits, train_base
from unlearnrec.unlearning import (  # noqa: F401 (names for the CONFIGS expression)
    InfluenceConfig,
    InfluenceUnlearning,
    ModelState,
    Retrain,
    ReverseBPR,
    ReverseBPRConfig,
)

CACHE = Path("/tmp/inf")
OUT = Path("docs/bench/seed-ml100k-sweep.jsonl")


def main(specs: list[str], configs: list) -> None:
    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    params = load_params("params.yaml")
    data = read_dataset(
        "../shared/data/ml-100k/ml-100k.inter",
        min_rating=params.data.min_rating,
        seed=params.data.seed,
        test_fraction=params.data.test_fraction,
    )
    splits = make_splits(data, params.data.valid_fraction, params.data.seed)
    fc = ForgettingConfig(**params.forgetting)
    if (CACHE / "base.pt").exists():
        model, graph, best_epoch = torch.load(CACHE / "base.pt", weights_only=False)
    else:
        start = time.time()
        model, graph, res = train_base(
            splits, splits.fit, params.model, params.train, torch.device("cpu")
        )
        best_epoch = res.best_epoch
        torch.save((model, graph, best_epoch), CACHE / "base.pt")
        print("base trained", time.time() - start, best_epoch, flush=True)
    state = ModelState(model, graph, splits.valid, params.train, best_epoch)
    for spec in specs:
        request = build_request(spec, splits.fit, 0)
        known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
        probe = ForgettingProbe.build(model, graph, request.edges, splits.test, known, fc)

        def measure(outcome, probe=probe):
            exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
            m = probe.measure(outcome.model, outcome.graph, splits.test, exclude, fc)
            return {
                "R": m.utility["recall@20"],
                "N": m.utility["ndcg@20"],
                "bf": m.mi_bf,
                "ng": m.mi_ng,
                "auc": m.mia_auc,
            }

        cached = CACHE / f"retrain-{spec}.json"
        if cached.exists():
            ref = json.loads(cached.read_text())
        else:
            outcome = Retrain().unlearn(state, request)
            ref = measure(outcome) | {"s": outcome.seconds}
            cached.write_text(json.dumps(ref))
        print(spec, request.num_edges, "retrain", ref, flush=True)
        for name, method in configs:
            outcome = method.unlearn(state, request)
            m = measure(outcome) | {"s": outcome.seconds}
            details = {k: v for k, v in outcome.details.items() if not isinstance(v, dict)}
            rel = {
                "Rr": m["R"] / ref["R"],
                "bfr": m["bf"] / ref["bf"],
                "ngr": m["ng"] / ref["ng"],
                "dauc": m["auc"] - ref["auc"],
            }
            print(" ", name, m | rel, details, flush=True)
            with OUT.open("a") as f:
                f.write(json.dumps({"spec": spec, "name": name, **m, **rel, "details": details}))
                f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1].split(";"), eval(sys.argv[2]))
