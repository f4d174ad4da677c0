"""The Gowalla fine-tune sweep of docs/benchmarks.md (H100): one base model, retrain on the
bench's request, the encoder pre-trained once, then UnlearnRec fine-tunes of a grid of settings
on the bench's request (seed 0) and a tuning request (seed 1). One JSON line per measurement.

    PYTHONPATH=. python3 docs/bench/finetune_sweep.py .benchdata/gowalla OUT.jsonl

(.benchdata/gowalla: a copy of ../shared/data/gowalla, for a machine that does not see ../shared.)
The H100 records (docs/bench/h100-gowalla-finetune-sweep.jsonl) came from an earlier ad-hoc
form of this script, with the same steps, its grid split over two GPU calls; the "touched rows"
rows came from a code change tried once and not kept. This form was run as it stands on ML-100K
on the CPU (docs/bench/ml100k-finetune-sweep-cpu.jsonl).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data import read_dataset
from unlearnrec.evaluation.forgetting import ForgettingConfig, ForgettingProbe
from unlearnrec.experiments.shared import build_request, make_splits, train_base
from unlearnrec.unlearning import ModelState, Retrain, UnlearnRec, UnlearnRecConfig

GRID = [
    dict(finetune_lambda_u=0.0),
    dict(),
    dict(finetune_lambda_u=10.0),
    dict(finetune_lambda_u=5.0),
    dict(finetune_lr=0.0025),
    dict(finetune_lr=0.0025, finetune_steps=40),
    dict(finetune_lr=0.001, finetune_steps=40),
    dict(unlearn_items=16384),
    dict(lambda_p=0.1),
    dict(finetune_lambda_u=10.0, finetune_lr=0.0025),
    dict(
        finetune_unlearn_loss="score", finetune_lambda_u=0.15, finetune_lr=0.001, finetune_steps=10
    ),
]


def main(data_path: str, out_path: str) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    records: list[str] = []

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)
        records.append(json.dumps(record))
        Path(out_path).write_text("\n".join(records) + "\n")  # rewritten each time: nothing lost

    splits = make_splits(read_dataset(data_path, seed=0), 0.1, 0)
    train = TrainConfig(batch_size=8192, max_epochs=400, eval_batch_size=8192)
    started = time.time()
    base, graph, _ = train_base(splits, splits.fit, ModelConfig(), train, device)
    emit({"base_seconds": time.time() - started})
    state = ModelState(base, graph, splits.valid, train)
    config = ForgettingConfig()
    known = np.concatenate([graph.edges_numpy(), splits.valid, splits.test])
    requests = {seed: build_request("random:0.01", splits.fit, seed) for seed in (0, 1)}
    probes = {
        seed: ForgettingProbe.build(base, graph, r.edges, splits.test, known, config)
        for seed, r in requests.items()
    }

    def measure(seed: int, outcome) -> dict:
        exclude = np.concatenate([outcome.graph.edges_numpy(), splits.valid])
        m = probes[seed].measure(outcome.model, outcome.graph, splits.test, exclude, config)
        return {
            "auc": round(m.mia_auc, 4),
            "mibf": round(m.mi_bf, 4),
            "ming": round(m.mi_ng, 4),
            "recall": round(m.utility["recall@20"], 4),
        }

    emit({"retrain_seed0": measure(0, Retrain().unlearn(state, requests[0]))})
    defaults = UnlearnRecConfig(pretrain_requests=30, pretrain_steps=5)  # params.yaml's
    method = UnlearnRec(defaults)
    method.prepare(state)
    for change in GRID:
        for seed in (1, 0):
            tuned = UnlearnRec(replace(defaults, **change), encoder=method.encoder)
            outcome = tuned.unlearn(state, requests[seed])
            emit(
                {
                    "kw": change,
                    "seed": seed,
                    "sec": round(outcome.seconds, 3),
                    **measure(seed, outcome),
                }
            )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
