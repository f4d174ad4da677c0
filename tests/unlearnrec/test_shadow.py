"""Shadow items: trained beside the model as items with no positive, they land where retrain puts
a taken-down item, without touching the model's own training."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import torch

from unlearnrec.config import ModelConfig
from unlearnrec.evaluation.forgetting import scores
from unlearnrec.experiments.shared import train_base
from unlearnrec.models import build_model
from unlearnrec.models.shadow import shadow_rows_for

from ..conftest import TINY_TRAIN

TINY_MODEL = ModelConfig(embedding_dim=32, num_layers=2)


def test_shadow_rows_do_not_change_the_models_training(tiny_splits):
    """Their own random stream and no gradient into the model: the table trained with shadow rows
    is the table trained without them, bit for bit (one thread: two threads' sparse products
    are not bit-reproducible even between two identical runs)."""
    short = replace(TINY_TRAIN, max_epochs=10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [
            train_base(tiny_splits, tiny_splits.fit, config, short, torch.device("cpu"))[0]
            for config in (TINY_MODEL, replace(TINY_MODEL, shadow_items=0))
        ]
    finally:
        torch.set_num_threads(threads)
    with_rows, plain = runs
    assert int(with_rows.shadow_steps) > 0
    assert torch.equal(plain.embedding, with_rows.embedding)
    assert shadow_rows_for(plain, torch.arange(3)) is None  # none to give


def test_shadow_rows_are_trained_for_the_kept_epochs_and_sit_below_unseen_items(
    tiny_splits, tiny_base
):
    base, graph, result = tiny_base
    batches = -(-len(graph.edges) // TINY_TRAIN.batch_size)
    # the weights kept are the best epoch's, and the shadow rows with them
    assert int(base.shadow_steps) == result.best_epoch * batches
    users, _ = base.final_embeddings(graph)
    # retrain pushes an item nobody interacts with below the items a user never saw (held-out
    # pairs) and far below a fresh row, which sits at chance (0.5)
    heldout = float(scores(base, graph, tiny_splits.test).mean())
    # mean σ of the shadow rows against every user
    level = float(torch.sigmoid((base.isolated_scale() * base.shadow_items) @ users.T).mean())
    assert level < heldout
    assert level < 0.4
    # item i gets row i mod K: distinct rows for the items of one request
    rows = shadow_rows_for(base, torch.tensor([0, 1, 33]))
    assert rows is not None and not torch.equal(rows[0], rows[1])
    assert torch.equal(rows[1], rows[2])  # 33 mod 32


def test_a_checkpoint_from_before_shadow_rows_loads_without_them(tiny_base):
    base, _, _ = tiny_base
    old = {k: v for k, v in base.state_dict().items() if not k.startswith("shadow")}
    buf = io.BytesIO()
    torch.save(old, buf)
    model = build_model(base.num_users, base.num_items, base.config)
    model.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert torch.equal(model.embedding, base.embedding)
    assert int(model.shadow_steps) == 0
    assert shadow_rows_for(model, torch.tensor([0])) is None  # UnlearnRec falls back to its replay


def test_a_backbone_whose_isolated_nodes_read_out_zero_trains_no_shadow_rows(tiny_splits):
    simgcl = replace(TINY_MODEL, name="simgcl")
    short = replace(TINY_TRAIN, max_epochs=2, eval_every=1)
    model, _, _ = train_base(tiny_splits, tiny_splits.fit, simgcl, short, torch.device("cpu"))
    assert int(model.shadow_steps) == 0
    assert np.isclose(model.isolated_scale(), 0.0)
