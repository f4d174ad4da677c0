"""`bench --retrain-ladder`: retrain runs with the ladder's choice, named in the JSON."""

from __future__ import annotations

import json

from unlearnrec.cli import main


def test_bench_records_the_retrain_configuration_the_ladder_chose(tmp_path, bench_on_tiny):
    bench = bench_on_tiny(
        "train:\n  max_epochs: 12\n  batch_size: 512\n  eval_every: 2\n  patience: 2\n",
        num_users=120,
        num_items=80,
        num_groups=4,
        mean_interactions=12,
    )
    out = tmp_path / "bench.json"
    code = main(
        [
            *bench,
            "--request",
            "random:0.02",
            "--methods",
            "retrain",
            "--retrain-ladder",
            "--json",
            str(out),
            "--set",
            "model.embedding_dim=16",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    ladder = result["retrain_ladder"]
    ran = result["methods"]["retrain"]["config"]
    assert len(ladder["rungs"]) == 5
    if ladder["chosen"] is None:
        assert ran["batch_size"] == 512  # the base configuration
    else:
        chosen = ladder["rungs"][ladder["chosen"]]
        assert chosen["meets"] and chosen["valid"] >= ladder["target"]
        assert ran == chosen["train"] == ladder["config"]
