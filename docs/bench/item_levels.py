"""Where does a taken-down item land? Retrain against the two ways UnlearnRec places it.

One base model and one retrain without ``--items`` items (one thread, params.yaml defaults);
prints the mean σ score of the items' former (user, item) pairs under retrain, under the base's
shadow rows (``models/shadow.py``), under the fallback replay (``unlearning/isolated.py``,
``isolated_growth`` 0.25), and retrain's own shadow rows against the same users. The users'
final embeddings are the base model's in every row but retrain's (an item request leaves the
users nearly where they were). Run from the repository root:

    .venv/bin/python docs/bench/item_levels.py ../shared/data/ml-100k/ml-100k.inter
    .venv/bin/python docs/bench/item_levels.py data/synthetic   # unlearnrec data synthesize
    .venv/bin/python docs/bench/item_levels.py ../shared/data/ml-1m-receraser --subsample-users 1000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from unlearnrec.config import load_params
from unlearnrec.experiments.shared import build_request, load_splits, train_base
from unlearnrec.models.shadow import shadow_rows_for
from unlearnrec.unlearning import METHODS
from unlearnrec.unlearning.base import ModelState, fresh_rows
from unlearnrec.unlearning.isolated import negative_push


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--subsample-users", type=int, default=0)
    ap.add_argument("--min-item-degree", type=int, default=1)
    ap.add_argument("--items", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params("params.yaml")
    _, splits = load_splits(params.data, args.data, args.subsample_users, args.min_item_degree)
    cpu = torch.device("cpu")
    base, graph, result = train_base(splits, splits.fit, params.model, params.train, cpu)
    request = build_request(f"items:{args.items}", splits.fit, args.seed)
    state = ModelState(base, graph, splits.valid, params.train, result.best_epoch)
    retrain = METHODS["retrain"]({}).unlearn(state, request)
    nu = splits.num_users
    items = torch.tensor(sorted(request.items))
    users = torch.as_tensor(request.edges[:, 0])
    positions = torch.as_tensor(np.searchsorted(items.numpy(), request.edges[:, 1]))
    c = base.isolated_scale()
    with torch.no_grad():
        final = base.propagate(graph)  # (N, d)
        ret = retrain.model.propagate(retrain.graph)

        def level(user_final: torch.Tensor, rows: torch.Tensor) -> float:
            """mean σ(ē_u · c·row) over the request's pairs; ``rows`` (R, d) in item order."""
            return float(torch.sigmoid((user_final[users] * c * rows[positions]).sum(1)).mean())

        gen = torch.Generator().manual_seed(0)
        residual = retrain.graph.edges
        pick = torch.randint(len(residual), (4096,), generator=gen)
        su, sp = residual[pick, 0], residual[pick, 1] + nu
        batches = -(-len(residual) // params.train.batch_size)
        replay = negative_push(
            fresh_rows(base, len(items), gen, cpu),
            final[su],
            (final[su] * final[sp]).sum(1),
            scale=c,
            num_items=splits.num_items,
            batch_size=params.train.batch_size,
            lr=params.train.lr,
            weight_decay=params.train.weight_decay,
            steps=result.best_epoch * batches,
            growth=0.25,
        )
        retrain_level = level(ret, ret[items + nu] / c)
        rows = {
            "shadow rows (base)": shadow_rows_for(base, items),
            "replay, growth 0.25": replay,
            "fresh draw": fresh_rows(base, len(items), gen, cpu),
        }
    print(
        f"{args.data}: {splits.num_users} users, {splits.num_items} items, "
        f"{len(splits.fit)} training pairs; items {items.tolist()}, {len(users)} pairs; "
        f"base best epoch {result.best_epoch}, retrain {retrain.details.get('best_epoch')}"
    )
    print(f"  retrain: taken-down items {retrain_level:.4f}")
    own = shadow_rows_for(retrain.model, items)
    if own is not None:
        print(f"  retrain: its own shadow rows {level(ret, own):.4f}")
    for name, r in rows.items():
        if r is not None:
            lv = level(final, r)
            print(f"  {name}: {lv:.4f}  (retrain's / this: {retrain_level / lv:.2f})")


if __name__ == "__main__":
    main()
