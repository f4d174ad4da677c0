"""`bench --set METHOD.FIELD=VALUE` (and a params.yaml section of that name) reaches every
method; a misspelt method section or field is a usage error (exit 2) before any training."""

from __future__ import annotations

import json

import pytest

from unlearnrec.cli import _params, main
from unlearnrec.config import TrainConfig
from unlearnrec.data import generate_synthetic
from unlearnrec.data.readers import write_lightgcn
from unlearnrec.experiments.bench import (
    check_set_sections,
    method_params_from,
    settings_from_params,
)
from unlearnrec.unlearning import METHODS

# one field of each method with a value that is not its default
SETS = {
    "retrain": ("batch_size", 8192, lambda m: m.overrides["batch_size"]),
    "unlearnrec": ("finetune_steps", 7, lambda m: m.config.finetune_steps),
    "influence": ("damping", 0.5, lambda m: m.config.damping),
    "reverse_bpr": ("steps", 3, lambda m: m.config.steps),
    "sisa": ("shards", 3, lambda m: m.config.shards),
    "grapheraser": ("partition_iterations", 4, lambda m: m.config.partition_iterations),
    "receraser": ("attention_size", 8, lambda m: m.config.attention_size),
}


def test_every_registered_method_has_a_field_here():
    assert set(SETS) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_set_reaches_each_method(name):
    field, value, read = SETS[name]
    params, raw = _params(None, [f"{name}.{field}={value}"])
    settings = settings_from_params(params, "random:0.01", (name,), raw=raw)
    assert settings.method_params[name] == {field: value}
    # the method the bench builds from its params runs with the value
    assert read(METHODS[name](settings.method_params[name])) == value


def test_a_params_file_section_reaches_its_method_and_set_wins(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sisa:\n  shards: 4\n  partition_iterations: 2\n")
    params, raw = _params(str(path), ["sisa.shards=6"])
    settings = settings_from_params(params, "random:0.01", ("sisa",), raw=raw)
    assert settings.method_params["sisa"] == {"shards": 6, "partition_iterations": 2}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sisa": {"num_shards": 3}}, "'sisa'.*num_shards"),
        ({"influence": {"dampin": 0.5}}, "'influence'.*dampin"),
        ({"retrain": {"batchsize": 1}}, "'retrain'.*batchsize"),
        ({"receraser": {"partition": "nope"}}, "'receraser'.*partition"),
        ({"reverse_bpr": 3}, "'reverse_bpr' must be a mapping"),
    ],
)
def test_a_bad_method_section_is_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        method_params_from(raw, TrainConfig())


def test_an_unknown_set_section_is_refused_with_a_hint():
    check_set_sections(["train.lr=0.1", "sisa.shards=2", "evaluate.seed=1"])
    with pytest.raises(ValueError, match=r"unknown section 'sisaa'.*did you mean 'sisa'"):
        check_set_sections(["sisaa.shards=2"])


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["sisa.num_shards=5"], "num_shards"),
        (["sisaa.shards=5"], "did you mean 'sisa'"),
        (["influence.bogus=1"], "bogus"),
        (["train.bogus=1"], "bogus"),
    ],
)
def test_bench_refuses_a_misspelt_setting_with_exit_2(tmp_path, capsys, sets, message):
    (tmp_path / "p.yaml").write_text("{}\n")
    argv = ["bench", "--data", str(tmp_path), "--params", str(tmp_path / "p.yaml")]
    for item in sets:
        argv += ["--set", item]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--methods", "all", "--device", "cpu"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]  # nothing written


def test_bench_runs_sisa_with_the_shards_set_on_the_command_line(tmp_path):
    data = generate_synthetic(num_users=80, num_items=60, num_groups=3, mean_interactions=10)
    write_lightgcn(data, tmp_path / "tiny")
    (tmp_path / "params.yaml").write_text(
        "train:\n  max_epochs: 6\n  batch_size: 512\n  eval_every: 2\n  patience: 1\n"
    )
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--data",
            str(tmp_path / "tiny"),
            "--request",
            "random:0.02",
            "--methods",
            "sisa",
            "--json",
            str(out),
            "--device",
            "cpu",
            "--params",
            str(tmp_path / "params.yaml"),
            "--set",
            "model.embedding_dim=8",
            "--set",
            "sisa.shards=3",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["config"]["method_params"]["sisa"] == {"shards": 3}
    row = result["methods"]["sisa"]
    assert row["method_config"]["shards"] == 3
