"""The exact tier: a policy running a partition method (SISA here) keeps a sharded production
model; each batch retrains only the shards that held erased pairs, and its certificates say
``exact``, proved from the shard manifests."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlmodel import select

from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.modeling import exactness, load_model_folder
from unlearnrec.compliance.stages import removed_pairs
from unlearnrec.compliance.versions import checkout, current_dataset, read_dataset_version
from unlearnrec.data.dataset import contains_edges
from unlearnrec.files import atomic_write_text
from unlearnrec.ledger import Certificate, ModelVersion, UnlearningRun, session_scope, utcnow
from unlearnrec.records import certificates as certs
from unlearnrec.unlearning import ShardedRecommender

from .conftest import make_home
from .test_workflow import VALID, _open_and_fill, _tickets, process_once

SISA = {"shards": 4, "shard_train": {"max_epochs": 10, "eval_every": 5, "patience": 1}}


def _production(platform, run):
    with session_scope(platform.engine) as session:
        before, after, removed = removed_pairs(platform, run, session)
        version = session.get(ModelVersion, run.model_after_id)
    return version, before, after, removed


def test_an_exact_policy_certifies_shard_retrains_proved_from_the_manifests(
    tiny_artifacts, tmp_path, monkeypatch
):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, method="sisa", params=SISA)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
    assert run.method == "sisa" and "fallback" not in run.verification
    report = run.verification
    assert report["passed"] and report["tier"] == "exact" and report["mode"] == "final"
    # the first batch under the policy trains every shard (the base model was not sharded)
    assert report["exact"]["shards_retrained"] == [0, 1, 2, 3]
    assert report["exact"]["removed_pairs_in_shards"] == 0
    assert report["exact"]["shards_cover_remaining_once"]
    assert {k for k, t in _tickets(platform).items() if t.status == "certified"} == VALID

    version, before, after, removed = _production(platform, run)
    with checkout(platform, "model", version.dvc_md5) as folder:
        model = load_model_folder(folder, platform_device()).model
    # the claim, checked here from the manifests themselves: no shard holds an erased pair, and
    # the shards hold exactly the remaining training pairs
    assert isinstance(model, ShardedRecommender)
    every = np.concatenate(model.manifest)
    assert len(removed) and not contains_edges(every, removed, before.num_items).any()
    assert len(every) == len(after.fit) and contains_edges(every, after.fit, after.num_items).all()
    with session_scope(platform.engine) as session:
        rows = list(session.exec(select(Certificate)))
    assert rows
    for row in rows:
        cert = certs.read_certificate(Path(row.path), strict=True)
        assert row.status == "final" and cert["tier"] == "exact"
        assert cert["verification"]["exact"]["shard_hashes"] == model.shard_hashes()
        assert cert["verification"]["exact"]["aggregation_hash"] == model.aggregation_hash()

    # a second batch: one erased interaction retrains only the shard that held it
    with session_scope(platform.engine) as session:
        files = read_dataset_version(platform, current_dataset(session))
    user, item = (int(x) for x in files.fit[0])
    shard = int(model.shard_of(files.fit[:1])[0])
    received = (utcnow() - timedelta(days=1)).isoformat(timespec="seconds")
    ticket = {
        "external_id": "DSAR-3001",
        "kind": "erase_interactions",
        "subject": str(files.user_ids[user]),
        "items": [str(files.item_ids[item])],
        "legal_basis": "GDPR-17(1)(b)",
        "received_at": received,
    }
    inbox = platform.settings.inbox / "second.json"
    atomic_write_text(inbox, json.dumps({"tickets": [ticket]}))
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        second = session.exec(select(UnlearningRun).order_by(UnlearningRun.id)).all()[-1]
    assert second.id != run.id and second.verification["tier"] == "exact"
    assert second.verification["exact"]["shards_retrained"] == [shard]
    assert _tickets(platform)["DSAR-3001"].status == "certified"


def test_exactness_refuses_a_shard_that_still_holds_an_erased_pair():
    """The proof is not a formality: a manifest with an erased pair left in fails it."""
    import torch

    from unlearnrec.config import ModelConfig
    from unlearnrec.models import build_model
    from unlearnrec.unlearning.sharded import ShardedConfig, build_aggregation

    edges = np.array([[0, 0], [0, 1], [1, 1], [2, 0], [2, 2], [3, 1]], dtype=np.int64)
    config = ModelConfig(embedding_dim=4, num_layers=1)
    subs = [build_model(4, 3, config) for _ in range(2)]
    sharded_config = ShardedConfig(shards=2)
    agg = build_aggregation(sharded_config, 4)
    removed = edges[:1]
    kept = edges[1:]
    good = ShardedRecommender(4, 3, config, subs, [kept[:2], kept[2:]], agg, sharded_config)
    leaky = ShardedRecommender(4, 3, config, subs, [edges[:3], edges[3:]], agg, sharded_config)
    twice = ShardedRecommender(4, 3, config, subs, [kept[:3], kept[2:]], agg, sharded_config)
    base = build_model(4, 3, config)
    torch.manual_seed(0)
    assert exactness(good, base, kept, removed)["passed"]
    bad = exactness(leaky, base, kept, removed)
    assert not bad["passed"] and bad["removed_pairs_in_shards"] == 1
    assert not exactness(twice, base, kept, removed)["passed"]
    assert exactness(base, base, kept, removed) is None  # not sharded: no exact claim


def platform_device():
    import torch

    return torch.device("cpu")
