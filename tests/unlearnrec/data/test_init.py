"""``unlearnrec init --data FILE``: every input format laid out as the platform's dataset with
its own ids; usage errors exit 2 before anything is written; a malformed file exits 1 naming
file and line, nothing written; one tiny end-to-end run to the platform's version 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from unlearnrec.cli import main
from unlearnrec.data import read_lightgcn
from unlearnrec.cli.init_data import InitUsageError, check, lay_out, set_params_data_path
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
USERS = ["u1", "u2", "u3", "u4"]
ITEMS = ["a", "b", "c", "d", "e"]
PAIRS = [(u, i) for k, u in enumerate(USERS) for i in ITEMS[k % 2 :: 1][:3]]
TINY = [
    "--set", "train.max_epochs=2", "--set", "train.eval_every=1", "--set", "model.embedding_dim=8",
    "--set", "model.num_layers=1", "--set", "unlearnrec.pretrain_requests=1",
    "--set", "unlearnrec.pretrain_steps=1", "--device", "cpu",
]  # fmt: skip


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "params.yaml").write_text(
        "# comment kept\ndata:\n  path: data/synthetic  # the input\n  seed: 0\nmodel:\n"
        "  name: lightgcn\n"
    )
    return home


def _csv(folder: Path) -> Path:
    path = folder / "export.csv"
    path.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in PAIRS))
    return path


def _movielens_100k(folder: Path) -> Path:
    path = folder / "ml-100k" / "u.data"
    path.parent.mkdir()
    path.write_text("".join(f"{10 + k}\t{20 + j}\t5\t0\n" for k in range(4) for j in range(3)))
    return path


def _movielens_1m(folder: Path) -> Path:
    path = folder / "ratings.dat"
    path.write_text("".join(f"{10 + k}::{20 + j}::4::0\n" for k in range(4) for j in range(3)))
    return path


def _lightgcn(folder: Path) -> Path:
    path = folder / "lgcn"
    path.mkdir()
    (path / "train.txt").write_text("0 0 1\n1 1 2\n2 0 2\n3 1\n")
    (path / "test.txt").write_text("0 2\n1 0\n")
    return path


@pytest.mark.parametrize(
    ("make", "users", "name"),
    [
        (_csv, USERS, "export"),
        (_movielens_100k, ["10", "11", "12", "13"], "ml-100k"),
        (_movielens_1m, ["10", "11", "12", "13"], "tmp"),  # ratings.dat: its folder's name
        (_lightgcn, ["0", "1", "2", "3"], "lgcn"),
    ],
)
def test_each_format_becomes_the_platform_dataset_with_its_own_ids(tmp_path, make, users, name):
    home = _home(tmp_path)
    source = make(tmp_path)
    settings = get_settings(home=home)
    plan = check(settings, source, name="tmp" if name == "tmp" else None, force=False)
    assert plan.folder == home / "data" / name and plan.relative == f"data/{name}"
    lay_out(plan, {"data": {"test_fraction": 0.25}})
    back = read_lightgcn(plan.folder)
    assert sorted(map(str, back.user_ids)) == users
    assert (plan.folder / "user_list.txt").is_file() and (plan.folder / "item_list.txt").is_file()
    text = (home / "params.yaml").read_text()
    assert f"  path: data/{name}  # the input" in text and text.startswith("# comment kept")
    assert "  seed: 0" in text and "  name: lightgcn" in text
    assert get_settings(home=home).data == plan.folder  # the one setting follows params.yaml


def test_params_without_a_data_path_get_one(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("model:\n  name: mf\n")
    set_params_data_path(params, "data/x")
    assert params.read_text() == "model:\n  name: mf\ndata:\n  path: data/x\n"
    params.write_text("data:\n  seed: 1\nmodel: {}\n")
    set_params_data_path(params, "data/y")
    assert params.read_text() == "data:\n  seed: 1\n  path: data/y\nmodel: {}\n"


def test_data_dir_setting_wins(tmp_path, monkeypatch):
    home = _home(tmp_path)
    monkeypatch.setenv("UNLEARNREC_DATA_DIR", str(tmp_path / "elsewhere"))
    plan = check(get_settings(home=home), _csv(tmp_path), name=None, force=False)
    assert plan.folder == (tmp_path / "elsewhere").resolve()


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # usage errors exit like argparse's
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv"], "does not exist"),
        (["--data", "{tmp}"], "without train.txt"),
        (["--data", "{csv}", "--name", "../up"], "--name"),
        (["--data", "{csv}", "--set", "nodot"], "--set expects"),
        (["--data", "{csv}", "--params", "nope.yaml"], "params file"),
        (["--data", "{csv}", "--min-rating", "x"], "invalid float"),
    ],
)
def test_usage_errors_exit_2_before_any_work(tmp_path, capsys, args, message):
    home = _home(tmp_path)
    csv = _csv(tmp_path)
    args = [a.format(tmp=tmp_path, csv=csv) for a in args]
    before = (home / "params.yaml").read_text()
    assert _run(["init", *args, "--home", str(home)]) == 2
    assert message in capsys.readouterr().err
    assert not (home / "data").exists() and not (home / "var").exists()
    assert (home / "params.yaml").read_text() == before


def test_a_malformed_file_exits_1_naming_file_and_line_and_writes_nothing(tmp_path, capsys):
    home = _home(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\nu1,a,5\nu2,b,lots\n")
    before = (home / "params.yaml").read_text()
    assert _run(["init", "--data", str(bad), "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3" in err and "rating 'lots'" in err and "Traceback" not in err
    assert not (home / "data").exists() and (home / "params.yaml").read_text() == before


def test_an_existing_folder_needs_force(tmp_path):
    home = _home(tmp_path)
    (home / "data" / "export").mkdir(parents=True)
    (home / "data" / "export" / "train.txt").write_text("0 1\n")
    with pytest.raises(InitUsageError, match="--force"):
        check(get_settings(home=home), _csv(tmp_path), name=None, force=False)
    check(get_settings(home=home), _csv(tmp_path), name=None, force=True)


@pytest.mark.slow  # the DVC store, the trainings and the ladder: about a minute on 2 busy cores
def test_init_end_to_end_then_the_platform_knows_the_files_ids(tmp_path, capsys):
    """Tiny: a 4-user CSV, two epochs, one pre-training request; then a second init on the same
    platform is refused (exit 2): a ledger is never reset."""
    from unlearnrec.compliance.versions import current_dataset, read_dataset_version
    from unlearnrec.ledger import make_engine

    home = _home(tmp_path)
    (home / "policies").mkdir()
    (home / "policies" / "gdpr-default.yaml").write_text(
        (ROOT / "policies" / "gdpr-default.yaml").read_text()
    )
    csv = _csv(tmp_path)
    assert _run(["init", "--data", str(csv), "--home", str(home), "--json", *TINY]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["users"] == 4 and result["dataset"] == str(home / "data" / "export")
    assert result["example_user"] == "u1" and result["dvc_tracked"] is False
    for out in ("prepared/splits.npz", "base/model.pt", "encoder/encoder.pt", "ladder/ladder.json"):
        assert (home / "artifacts" / out).is_file()
    ladder = json.loads((home / "artifacts" / "ladder" / "ladder.json").read_text())
    assert result["retrain"] == ladder["retrain"] and len(ladder["ladder"]["rungs"]) == 5

    from unlearnrec.compliance.modeling import configured_retrain
    from unlearnrec.compliance.platform import Platform
    from unlearnrec.compliance.versions import checkout, production_model

    platform = Platform.open(get_settings(home=home))
    with Session(platform.engine) as session:
        files = read_dataset_version(platform, current_dataset(session))
        with checkout(platform, "model", production_model(session).dvc_md5) as folder:
            # the platform's retrains train with the ladder's pick (params set no retrain:)
            assert configured_retrain(home, folder) == (ladder["retrain"], "ladder")
    assert sorted(map(str, files.user_ids)) == USERS
    assert set(map(str, files.item_ids)) == {i for _, i in PAIRS}
    platform.engine.dispose()

    engine = make_engine(f"sqlite:///{home / 'var' / 'ledger.sqlite'}")
    from unlearnrec.ledger import DatasetVersion

    with Session(engine) as session:
        assert len(session.exec(select(DatasetVersion)).all()) == 1
    engine.dispose()
    assert _run(["init", "--data", str(csv), "--home", str(home), "--name", "again"]) == 2
    assert "already holds dataset version" in capsys.readouterr().err
    assert not (home / "data" / "again").exists()


def test_a_ledger_behind_the_code_is_refused_before_any_work(tmp_path, capsys):
    from sqlalchemy import text

    from unlearnrec.ledger import init_db, make_engine

    home = _home(tmp_path)
    engine = make_engine(f"sqlite:///{home / 'var' / 'ledger.sqlite'}")
    init_db(engine)
    with engine.begin() as conn:  # as if recorded by an older release
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    engine.dispose()
    assert _run(["init", "--data", str(_csv(tmp_path)), "--home", str(home)]) == 2
    assert "unlearnrec db upgrade" in capsys.readouterr().err
    assert not (home / "data").exists()
