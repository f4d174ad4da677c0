"""The scaling bench: its graphs have the requested size and structure, its records the fields
docs/bench/scaling.json promises."""

from __future__ import annotations

import json

import numpy as np

from unlearnrec.cli import main
from unlearnrec.experiments.scaling import scaled_graph_edges


def test_scaled_graphs_have_the_size_and_the_generators_shape():
    edges, users, items = scaled_graph_edges(40_000, seed=1)
    keys = edges[:, 0] * items + edges[:, 1]
    assert len(np.unique(keys)) == len(edges)  # distinct pairs
    assert 0.9 * 40_000 / 0.95 < len(edges) < 1.1 * 40_000 / 0.95
    assert 1.3 < users / items < 1.7
    deg = np.bincount(edges[:, 0], minlength=users)
    assert deg.min() >= 1 and deg.max() >= 100  # heavy-tailed activity
    pop = np.sort(np.bincount(edges[:, 1], minlength=items))[::-1]
    assert pop[: items // 100].sum() > 0.05 * len(edges)  # popular items (Zipf in a group)


def test_bench_scaling_writes_records(tmp_path):
    out = tmp_path / "scaling.json"
    png = tmp_path / "scaling.png"
    rc = main(
        [
            "bench-scaling",
            "--edges",
            "3000",
            "--repeat",
            "1",
            "--finetune-steps",
            "2",
            "--scopes",
            "local",
            "--json",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    records = json.loads(out.read_text())
    assert {r["scope"] for r in records} == {"local"}
    assert {r["request"].split(":")[0] for r in records} == {"user", "random"}
    for r in records:
        for key in (
            "edges",
            "request",
            "unlearn_seconds",
            "retrain_epoch_seconds",
            "peak_mb",
            "device",
        ):
            assert key in r
        assert r["unlearn_seconds"] > 0 and r["peak_mb"] > 0
        assert r["finetune_steps"] == 2
    assert png.stat().st_size > 1000
