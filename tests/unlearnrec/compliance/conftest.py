"""A tiny platform: synthetic data, a small base model and encoder, a test policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from unlearnrec.config import ModelConfig, TrainConfig, to_dict
from unlearnrec.data import generate_synthetic, write_lightgcn
from unlearnrec.experiments.pipeline import save_encoder
from unlearnrec.experiments.shared import make_splits, train_base
from unlearnrec.training.checkpoint import save_checkpoint
from unlearnrec.unlearning import ModelState, UnlearnRec

SMALL_UNLEARN = {
    "pretrain_requests": 4,
    "pretrain_steps": 2,
    "pretrain_batch_size": 2048,
    "finetune_batch_size": 2048,
}

POLICY = """\
id: test-policy
version: 1
deadlines:
  GDPR: {{months: 1, max_extension_days: 61}}
  CCPA: {{days: 45, max_extension_days: 45}}
batching: {{window_minutes: 60, max_tickets: 100}}
unlearning:
  method: {method}
  params: {params}
verification:
  mode: provisional
  thresholds: {{auc_margin: {auc_margin}}}
on_failure: {{action: {on_failure}, max_attempts: 2}}
retention: {{purge_erased_versions: true}}
"""


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory) -> Path:
    """data/, artifacts/ (splits, base model, encoder) of a 300-user synthetic set."""
    root = tmp_path_factory.mktemp("artifacts")
    data = generate_synthetic(
        num_users=300, num_items=200, num_groups=5, mean_interactions=20, seed=1
    )
    write_lightgcn(data, root / "data" / "synthetic")
    splits = make_splits(data, 0.1, 0)
    splits.save(root / "artifacts" / "prepared" / "splits.npz")
    train = TrainConfig(max_epochs=40, batch_size=1024, lr=0.01, eval_every=5, patience=3)
    model, graph, _ = train_base(
        splits, splits.fit, ModelConfig(embedding_dim=16, num_layers=2), train, torch.device("cpu")
    )
    save_checkpoint(
        root / "artifacts" / "base" / "model.pt",
        model,
        train_config=to_dict(train),
        data_hash=splits.data_hash,
    )
    method = UnlearnRec.from_params(SMALL_UNLEARN)
    method.prepare(ModelState(model, graph, splits.valid, train))
    save_encoder(root / "artifacts" / "encoder" / "encoder.pt", method, "")
    return root


# A wide margin keeps the chain and crash tests on the unlearning path whatever the tiny graph's
# noisy final comparison gives; ``test_erased_users_below_chance_*`` runs the sample batch under
# the default margin (0.05) and shows it certified without a fallback.
WORKFLOW_AUC_MARGIN = 0.3


def make_home(
    tiny_artifacts: Path,
    home: Path,
    monkeypatch,
    *,
    on_failure: str = "retrain",
    auc_margin: float = WORKFLOW_AUC_MARGIN,
    method: str = "unlearnrec",
    params: dict | None = None,
):
    """A project root with the tiny artifacts and a policy (its unlearning ``method`` with
    ``params``, by default UnlearnRec with small settings); env points the settings at it."""
    shutil.copytree(tiny_artifacts, home, dirs_exist_ok=True)
    import json

    policy = home / "policies" / "test.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(
        POLICY.format(
            method=method,
            params=json.dumps(SMALL_UNLEARN if params is None else params),
            on_failure=on_failure,
            auc_margin=auc_margin,
        )
    )
    monkeypatch.setenv("UNLEARNREC_HOME", str(home))
    monkeypatch.setenv("UNLEARNREC_POLICY_PATH", str(policy))
    return home
