"""What the membership audit's reference models cost on the bundled synthetic set (the demo's
data), with params.yaml's model and training config: K references trained on halves of the
training pairs, as a final verification under a policy that requires the audit trains them once
per production model.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python docs/bench/rmia_reference_cost.py \\
        --json docs/bench/rmia-references-synthetic.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from unlearnrec.config import load_params
from unlearnrec.evaluation.membership import ReferenceModels
from unlearnrec.experiments.shared import load_splits, train_base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params("params.yaml")
    _, splits = load_splits(params.data)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    _, _, base = train_base(splits, splits.fit, params.model, params.train, cpu)
    base_seconds = time.perf_counter() - started
    refs = ReferenceModels.train(
        splits.fit,
        splits.valid,
        splits.num_users,
        splits.num_items,
        params.model,
        params.train,
        cpu,
        references=args.references,
    )
    record = {
        "data": params.data.path,
        "fit_edges": len(splits.fit),
        "k": refs.k,
        "reference_seconds": refs.seconds,
        "reference_fit_edges": refs.fit_edges,
        "base_seconds": base_seconds,
        "base_seconds_to_best": base.seconds_to_best,
        "device": f"cpu:{platform.machine()} x{torch.get_num_threads()}",
        "load_average": os.getloadavg(),
    }
    with open(args.json, "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
