"""The command line: help, and a bench run on a tiny LightGCN folder writing the JSON record."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from unlearnrec.cli import main
from unlearnrec.data import generate_synthetic, write_lightgcn


def test_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "unlearnrec.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("train", "pretrain", "unlearn", "bench", "evaluate", "data"):
        assert command in out


def test_the_registered_commands_keep_their_arguments():
    """``flows run`` and ``demo`` (registered by flows) parse as they always have."""
    from flows import cli as flows_cli
    from unlearnrec.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["flows", "run", "process", "--force", "--wait", "2", "--device", "cpu", "--home", "h"]
    )
    assert args.func == flows_cli.cmd_flows_run
    assert (args.flow, args.force, args.wait, args.device, args.home) == (
        "process",
        True,
        2.0,
        "cpu",
        "h",
    )
    args = parser.parse_args(["demo", "--root", "r", "--fresh"])
    assert args.func == flows_cli.cmd_demo and (args.root, args.fresh, args.device) == (
        "r",
        True,
        "auto",
    )
    for command in (["tickets", "list"], ["certificate", "list"], ["audit", "head"]):
        assert callable(parser.parse_args(command).func)


def test_bench_writes_the_documented_json(tmp_path, capsys, bench_on_tiny):
    """`bench` trains a base model, runs each method and writes the documented record."""
    bench = bench_on_tiny(
        "train:\n  max_epochs: 20\n  batch_size: 1024\n",
        num_users=200,
        num_items=150,
        num_groups=4,
        mean_interactions=15,
        seed=3,
    )
    out = tmp_path / "bench.json"
    code = main(
        [
            *bench,
            "--request",
            "random:0.02",
            "--methods",
            "retrain,unlearnrec",
            "--json",
            str(out),
            "--set",
            "unlearnrec.pretrain_requests=3",
            "--set",
            "model.embedding_dim=16",
            "--save-models",
            str(tmp_path / "models"),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "tiny" and result["device"].startswith("cpu")
    assert result["request"]["kind"] == "random" and result["request"]["edges"] > 0
    assert set(result["base"]) >= {"recall@20", "ndcg@20", "seconds"}
    for name in ("retrain", "unlearnrec"):
        row = result["methods"][name]
        assert set(row) >= {
            "seconds",
            "recall@20",
            "ndcg@20",
            "recall_ratio",
            "mi_bf",
            "mi_ng",
            "mia_auc",
        }
    assert result["methods"]["retrain"]["recall_ratio"] == 1.0
    assert result["methods"]["unlearnrec"]["pretrain_seconds"] > 0
    # memory on the CPU too (the process's peak resident set during the step), and every
    # method's offline preparation, zero for those without one
    for name in ("retrain", "unlearnrec"):
        row = result["methods"][name]
        assert row["peak_mb_kind"] == "rss" and row["peak_mb"] >= row["rss_before_mb"] > 0
    assert result["methods"]["retrain"]["prepare_seconds"] == 0.0
    assert result["methods"]["unlearnrec"]["prepare_seconds"] > 0
    # the record holds the method's whole config as it ran, defaults included
    ran = result["methods"]["unlearnrec"]["method_config"]
    assert ran["pretrain_requests"] == 3 and ran["finetune_unlearn_loss"] == "zscore"
    assert "unlearnrec" in capsys.readouterr().out  # the table
    # --save-models keeps the base, the encoder and each method's result, loadable as they ran
    saved = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert saved == [
        "random-0.02-retrain.pt",
        "random-0.02-unlearnrec.pt",
        "shared-base.pt",
        "shared-unlearnrec-encoder.pt",
    ]
    import torch

    from unlearnrec.training.checkpoint import load_checkpoint

    encoder = torch.load(tmp_path / "models" / "shared-unlearnrec-encoder.pt", weights_only=True)
    assert {"h0", "w_eta"} <= set(encoder)
    unlearned = load_checkpoint(tmp_path / "models" / "random-0.02-unlearnrec.pt").model
    base = load_checkpoint(tmp_path / "models" / "shared-base.pt").model
    assert not torch.equal(unlearned.embedding, base.embedding)


def test_bad_request_spec_and_missing_data_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match="params file"):
        main(["bench", "--data", str(tmp_path), "--params", str(tmp_path / "missing.yaml")])
    (tmp_path / "p.yaml").write_text("{}\n")
    assert (
        main(["bench", "--data", str(tmp_path / "nope"), "--params", str(tmp_path / "p.yaml")]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    data = generate_synthetic(num_users=50, num_items=40, num_groups=2, mean_interactions=8)
    write_lightgcn(data, tmp_path / "d")
    assert (
        main(
            [
                "bench",
                "--data",
                str(tmp_path / "d"),
                "--request",
                "random:2",
                "--params",
                str(tmp_path / "p.yaml"),
            ]
        )
        == 2
    )
    assert "FRACTION must be in (0, 1)" in capsys.readouterr().err


def test_several_requests_share_one_base_and_one_encoder(tmp_path, monkeypatch, bench_on_tiny):
    """Non-noise requests reuse the base model and the pre-trained encoder; one JSON each."""
    import unlearnrec.experiments.bench as bench

    calls = []
    real = bench.train_base
    monkeypatch.setattr(bench, "train_base", lambda *a, **k: calls.append(1) or real(*a, **k))
    common = bench_on_tiny(
        "train:\n  max_epochs: 5\n  batch_size: 1024\n",
        num_users=120,
        num_items=90,
        num_groups=3,
        mean_interactions=12,
    )
    common += ["--methods", "unlearnrec"]
    common += ["--set", "unlearnrec.pretrain_requests=2", "--set", "model.embedding_dim=8"]
    two = ["--request", "random:0.02", "--request", "users:3"]
    with pytest.raises(SystemExit, match=r"\{request\}"):
        main([*common, *two, "--json", str(tmp_path / "one.json")])
    assert calls == []  # refused before any training
    assert main([*common, *two, "--json", str(tmp_path / "b-{request}.json")]) == 0
    assert len(calls) == 1
    first = json.loads((tmp_path / "b-random-0.02.json").read_text())
    second = json.loads((tmp_path / "b-users-3.json").read_text())
    assert (first["request"]["kind"], second["request"]["kind"]) == ("random", "users")
    assert first["base"] == second["base"] and first["shared_base"] and second["shared_base"]
    pre = [r["methods"]["unlearnrec"]["pretrain_seconds"] for r in (first, second)]
    assert pre[0] == pre[1] > 0


def test_a_bad_request_spec_is_refused_before_any_work(tmp_path, capsys):
    """The spec is checked before the data is even read (let alone a base model trained)."""
    (tmp_path / "p.yaml").write_text("{}\n")
    args = ["bench", "--data", str(tmp_path / "nope"), "--params", str(tmp_path / "p.yaml")]
    assert main([*args, "--request", "random:0.01", "--request", "bogus:3"]) == 2
    err = capsys.readouterr().err
    assert "bad request spec 'bogus:3'" in err and "does not exist" not in err
    assert main([*args, "--request", "mixed:1,2"]) == 2
    assert "mixed:USERS,EDGES,ITEMS" in capsys.readouterr().err


def test_methods_all_expands_to_every_registered_method_retrain_first():
    from unlearnrec.experiments.bench import expand_methods
    from unlearnrec.unlearning import METHODS

    every = expand_methods(["all"])
    assert every[0] == "retrain" and sorted(every) == sorted(METHODS)
    assert {"influence", "reverse_bpr", "unlearnrec"} <= set(every)
    assert expand_methods(["influence", "all"])[:2] == ("influence", "retrain")  # no duplicate
    assert len(expand_methods(["influence", "all"])) == len(METHODS)


def test_an_unknown_method_is_refused_before_any_work(tmp_path, capsys):
    """The names are checked before the data is read (let alone a base model trained)."""
    (tmp_path / "p.yaml").write_text("{}\n")
    args = ["bench", "--data", str(tmp_path / "nope"), "--params", str(tmp_path / "p.yaml")]
    assert main([*args, "--methods", "retrain,influence,bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'bogus'" in err and "does not exist" not in err
    assert main([*args, "--methods", "all"]) == 2  # valid names: it gets as far as the data
    assert "does not exist" in capsys.readouterr().err
