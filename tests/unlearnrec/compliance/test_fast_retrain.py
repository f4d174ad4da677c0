"""The platform's retrains train with params.yaml's ``retrain:`` when it sets fields, else with
the choice of the retrain ladder the pipeline ran for the base model (the fastest equal-utility
configuration, kept in the model folder as ``ladder.json``): the scheduled reference, the fallback
a failed verification promotes, and a ``retrain`` policy's model; each checkpoint records the
configuration it ran with and its best epoch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from unlearnrec.cli import main
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.lifecycle import retrain_reference
from unlearnrec.compliance.modeling import retrain_model
from unlearnrec.compliance.versions import checkout
from unlearnrec.data.splits import Splits
from unlearnrec.experiments.bench import write_retrain_params
from unlearnrec.ledger import ModelVersion, UnlearningRun, session_scope, utcnow
from unlearnrec.records.verification import VerificationReport
from unlearnrec.training.checkpoint import fit_epochs_of, read_checkpoint_meta

from .conftest import make_home
from .test_workflow import VALID, _open_and_fill, _tickets, process_once

ROOT = Path(__file__).resolve().parents[3]
FAST = {"batch_size": 2048, "lr": 0.02}  # the tiny base trains at batch 1024, lr 0.01
FORCED_FAILURE = VerificationReport(mode="provisional", passed=False, reasons=["forced to fail"])


def _meta(platform, version: ModelVersion) -> dict:
    with checkout(platform, "model", version.dvc_md5) as folder:
        return read_checkpoint_meta(folder / "model.pt")


def _assert_trained_with(meta: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        assert meta["train_config"][key] == value
    assert meta["extra"]["retrain_overrides"] == overrides
    assert meta["extra"]["template_train_config"]["batch_size"] == 1024  # the base's own
    assert fit_epochs_of(meta) and meta["metrics"]["best_epoch"] == fit_epochs_of(meta)


def _write_retrain(home: Path, overrides: dict) -> None:
    (home / "params.yaml").write_text(
        f"train:\n  batch_size: 1024\nretrain: {json.dumps(overrides)}\n"
    )


def test_the_scheduled_reference_trains_with_the_configured_retrain(
    tiny_artifacts, tmp_path, monkeypatch
):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    _write_retrain(home, FAST)
    platform = _open_and_fill(home)
    summary = retrain_reference(platform, device="cpu")
    assert summary.overrides == FAST
    with session_scope(platform.engine) as session:
        ref = session.exec(select(ModelVersion).where(ModelVersion.kind == "reference")).one()
    assert ref.metrics["retrain_overrides"] == FAST
    _assert_trained_with(_meta(platform, ref), FAST)


def test_the_fallback_retrain_trains_with_the_configured_retrain(
    tiny_artifacts, tmp_path, monkeypatch
):
    """A verification that fails (forced here) promotes a full retrain: process.py's fallback
    calls ``retrain_model`` without overrides, which reads the platform's params.yaml."""
    import unlearnrec.compliance.modeling as modeling

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    _write_retrain(home, FAST)
    platform = _open_and_fill(home)
    monkeypatch.setattr(
        modeling,
        "verify",
        lambda **_: FORCED_FAILURE,
    )
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        production = session.get(ModelVersion, run.model_after_id)
    assert run.verification["fallback"] == "retrain" and production.kind == "retrain"
    assert {k for k, t in _tickets(platform).items() if t.status == "certified"} == VALID
    _assert_trained_with(_meta(platform, production), FAST)


def test_a_retrain_policy_trains_with_the_configured_retrain(tiny_artifacts, tmp_path, monkeypatch):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, method="retrain", params={})
    _write_retrain(home, FAST)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        production = session.get(ModelVersion, run.model_after_id)
    assert run.method == "retrain" and production.kind == "retrain"
    _assert_trained_with(_meta(platform, production), FAST)


@pytest.mark.parametrize("path", ["retrain policy", "fallback"])
def test_a_flow_given_a_home_trains_with_that_homes_retrain(
    tiny_artifacts, tmp_path, monkeypatch, path
):
    """A processing pass with an explicit ``home`` reads that home's ``retrain:``, not the
    working directory's nor ``UNLEARNREC_HOME``'s (a decoy whose unknown field would fail the
    retrain before any training): a ``retrain`` policy's model, and the fallback retrain a
    failed verification (forced here) promotes."""
    import unlearnrec.compliance.modeling as modeling
    from flows.process_deletions import ProcessParams, plan, run_batch, validate_tickets

    policy = {"method": "retrain", "params": {}} if path == "retrain policy" else {}
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, **policy)
    _write_retrain(home, FAST)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    if path == "fallback":
        monkeypatch.setattr(
            modeling,
            "verify",
            lambda **_: FORCED_FAILURE,
        )
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    _write_retrain(decoy, {"no_such_field": 1})
    monkeypatch.setenv("UNLEARNREC_HOME", str(decoy))
    monkeypatch.chdir(decoy)
    params = ProcessParams(home=str(home), force=True, device="cpu")
    validate_tickets.fn(params)
    for batch in plan.fn(params):
        run_batch.fn(params, batch)
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        production = session.get(ModelVersion, run.model_after_id)
    assert run.status == "succeeded", run.error
    assert production.kind == "retrain"
    if path == "fallback":
        assert run.verification["fallback"] == "retrain"
    _assert_trained_with(_meta(platform, production), FAST)


def _write_ladder(home: Path, chosen: dict) -> None:
    """What the pipeline's ``ladder`` stage leaves (only the fields the platform reads)."""
    (home / "artifacts" / "ladder").mkdir(parents=True, exist_ok=True)
    (home / "artifacts" / "ladder" / "ladder.json").write_text(
        json.dumps({"retrain": chosen, "ladder": {"chosen": 1}})
    )


def test_without_a_retrain_section_the_platform_trains_with_its_base_models_ladder(
    tiny_artifacts, tmp_path, monkeypatch
):
    """Nobody writes ``retrain:`` by hand: bootstrap keeps the ladder's record with the base
    model, every model made from it carries the record on, and the scheduled reference and the
    fallback retrain train with its choice; a ``retrain:`` that sets fields still wins."""
    import unlearnrec.compliance.modeling as modeling

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    _write_retrain(home, {})
    _write_ladder(home, FAST)
    platform = _open_and_fill(home)
    summary = retrain_reference(platform, device="cpu")
    assert (summary.overrides, summary.source) == (FAST, "ladder")
    with session_scope(platform.engine) as session:
        ref = session.exec(select(ModelVersion).where(ModelVersion.kind == "reference")).one()
    assert ref.metrics["retrain_source"] == "ladder"
    _assert_trained_with(_meta(platform, ref), FAST)

    monkeypatch.setattr(modeling, "verify", lambda **_: FORCED_FAILURE)
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        production = session.get(ModelVersion, run.model_after_id)
    assert run.verification["fallback"] == "retrain"
    _assert_trained_with(_meta(platform, production), FAST)
    with checkout(platform, "model", production.dvc_md5) as folder:
        assert modeling.ladder_overrides(folder) == FAST  # carried on to the next model
        other = {"batch_size": 4096, "lr": 0.03}
        _write_retrain(home, other)
        assert modeling.configured_retrain(home, folder) == (other, "params.yaml")
        _write_retrain(home, {})
        assert modeling.configured_retrain(home, folder) == (FAST, "ladder")
        assert modeling.configured_retrain(home, tmp_path) == ({}, "base")


def test_a_ladder_record_that_is_not_one_is_refused_naming_the_file(tmp_path):
    from unlearnrec.compliance.modeling import LADDER_FILE, ladder_overrides

    for text in ("{not json", '{"retrain": [1, 2]}', "[]"):
        (tmp_path / LADDER_FILE).write_text(text)
        with pytest.raises(ValueError, match=LADDER_FILE):
            ladder_overrides(tmp_path)


def _files(splits: Splits) -> Splits:
    users = [str(u) for u in range(splits.num_users)]
    items = [str(i) for i in range(splits.num_items)]
    return splits.with_ids(users, items)


def test_the_ladder_command_writes_the_retrain_the_platform_then_uses(
    tiny_artifacts, tmp_path, monkeypatch, capsys
):
    home = tmp_path / "home"
    shutil.copytree(tiny_artifacts, home)
    monkeypatch.setenv("UNLEARNREC_HOME", str(home))
    params = home / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    art = home / "artifacts"
    code = main(
        [
            "ladder",
            "--splits",
            str(art / "prepared" / "splits.npz"),
            "--base",
            str(art / "base" / "model.pt"),
            "--params",
            str(params),
            "--write-params",
            "--json",
            str(tmp_path / "ladder.json"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "ladder.json").read_text())
    ladder = record["ladder"]
    assert len(ladder["rungs"]) == 5
    assert record["base_train"]["batch_size"] == 1024  # the checkpoint's own configuration
    if ladder["chosen"] is not None:
        chosen = ladder["rungs"][ladder["chosen"]]
        assert chosen["meets"] and chosen["valid"] >= ladder["target"]
        # params.yaml holds the fields of the choice that differ from the base's
        assert {**record["base_train"], **record["retrain"]} == chosen["train"]
    else:
        assert record["retrain"] == {}
    assert json.loads(capsys.readouterr().out)["retrain"] == record["retrain"]
    written = yaml.safe_load(params.read_text())
    original = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert written["retrain"] == record["retrain"]
    assert {k: v for k, v in written.items() if k != "retrain"} == {
        k: v for k, v in original.items() if k != "retrain"
    }
    # the platform's retrain (no overrides given) reads them from the home's params.yaml
    ref, _ = retrain_model(
        _files(Splits.load(art / "prepared" / "splits.npz")),
        art / "base",
        tmp_path / "ref",
        device="cpu",
    )
    meta = read_checkpoint_meta(ref / "model.pt")
    assert meta["extra"]["retrain_overrides"] == record["retrain"]
    assert meta["train_config"] == {**record["base_train"], **record["retrain"]}


def test_write_retrain_params_keeps_every_other_line(tmp_path):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    params.write_text(text)
    write_retrain_params(params, FAST, "a note")
    new = params.read_text()
    line = next(s for s in new.splitlines() if s.startswith("retrain:"))
    assert line == "retrain: {batch_size: 2048, lr: 0.02}  # a note"
    # every other line, comments included, as it was
    assert [s for s in new.splitlines() if s != line] == [
        s for s in text.splitlines() if not s.startswith("retrain:")
    ]
    # a block-style section is replaced whole; a file without one gets it appended
    params.write_text("train:\n  lr: 0.1\nretrain:\n  batch_size: 4\n  lr: 0.2\nmodel: {}\n")
    write_retrain_params(params, {}, "base")
    assert yaml.safe_load(params.read_text()) == {"train": {"lr": 0.1}, "retrain": {}, "model": {}}
    params.write_text("train:\n  lr: 0.1")
    write_retrain_params(params, {"lr": 0.3}, "x")
    assert yaml.safe_load(params.read_text()) == {"train": {"lr": 0.1}, "retrain": {"lr": 0.3}}


def test_ladder_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("retrain: {}\n")
    for argv, message in (
        (["--splits", str(tmp_path / "none.npz")], "--splits"),
        (["--splits", str(params), "--base", str(tmp_path / "none.pt")], "--base"),
        (["--splits", str(params), "--base", str(params), "--tolerance", "1.5"], "--tolerance"),
    ):
        try:
            code = main(["ladder", "--params", str(params), *argv])
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        assert message in capsys.readouterr().err
    assert params.read_text() == "retrain: {}\n"


def test_the_evaluate_stage_trains_its_reference_with_the_ladders_pick(
    tiny_artifacts, tmp_path, monkeypatch
):
    """``dvc repro``'s evaluate stage: the reference trains with the ladder stage's choice
    when params set no ``retrain:``, with params' fields when they do, and says which."""
    import torch

    import unlearnrec.experiments.pipeline as pipeline
    from unlearnrec.config import params_from_dict
    from unlearnrec.unlearning import retrain as retrain_module

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    _write_ladder(home, FAST)
    art = home / "artifacts"
    seen: list[dict] = []
    real = retrain_module.Retrain.__init__

    def spy(self, overrides=None, **kwargs):
        seen.append(dict(overrides or {}))
        real(self, overrides=overrides, **kwargs)

    monkeypatch.setattr(retrain_module.Retrain, "__init__", spy)
    raw = {"train": {"batch_size": 1024, "max_epochs": 10}, "unlearnrec": {"finetune_steps": 2}}
    for retrain, expected, source in (
        ({}, FAST, "ladder"),
        ({"lr": 0.03}, {"lr": 0.03}, "params.yaml"),
    ):
        report = pipeline.evaluate(
            params_from_dict({**raw, "retrain": retrain}),
            {"request": "random:0.01"},
            art / "prepared" / "splits.npz",
            art / "base" / "model.pt",
            art / "encoder" / "encoder.pt",
            tmp_path / f"eval-{source}",
            torch.device("cpu"),
            ladder_path=art / "ladder" / "ladder.json",
        )
        assert report["retrain"] == {"overrides": expected, "source": source}
        assert seen[-1] == expected
