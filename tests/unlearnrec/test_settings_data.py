"""``Settings.data``: the platform's dataset folder is the one ``dvc repro`` reads
(``params.yaml``'s ``data.path``); settings that would make them differ, or a ``data.path``
naming a ratings file, are refused with a message naming both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnrec.records.settings import DataPathError, get_settings


def _home(tmp_path: Path, data_path: str) -> Path:
    home = tmp_path / "home"
    (home / "data" / "acme").mkdir(parents=True)
    (home / "params.yaml").write_text(f"data:\n  path: {data_path}\n")
    return home


def test_the_configured_folder_is_the_dataset(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARNREC_DATA_DIR", raising=False)
    home = _home(tmp_path, "data/acme")
    assert get_settings(home=home).data == home / "data" / "acme"


def test_a_data_dir_that_differs_from_data_path_is_refused(tmp_path, monkeypatch):
    home = _home(tmp_path, "data/acme")
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("UNLEARNREC_DATA_DIR", str(elsewhere))
    with pytest.raises(DataPathError) as err:
        _ = get_settings(home=home).data
    assert f"UNLEARNREC_DATA_DIR={elsewhere}" in str(err.value)
    assert "data.path data/acme" in str(err.value)


def test_a_data_dir_naming_the_configured_folder_is_accepted(tmp_path, monkeypatch):
    home = _home(tmp_path, "data/acme")
    monkeypatch.setenv("UNLEARNREC_DATA_DIR", str(home / "data" / "acme"))
    assert get_settings(home=home).data.resolve() == (home / "data" / "acme").resolve()
    # without a params file (or its data.path) nothing contradicts the variable
    (home / "params.yaml").write_text("model:\n  name: mf\n")
    monkeypatch.setenv("UNLEARNREC_DATA_DIR", str(tmp_path / "elsewhere"))
    assert get_settings(home=home).data == tmp_path / "elsewhere"


def test_a_data_path_naming_a_ratings_file_points_to_init(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARNREC_DATA_DIR", raising=False)
    home = _home(tmp_path, "exports/ratings.csv")
    (home / "exports").mkdir()
    (home / "exports" / "ratings.csv").write_text("user,item,rating\nu1,a,5\n")
    with pytest.raises(DataPathError, match=r"unlearnrec init --data exports/ratings\.csv"):
        _ = get_settings(home=home).data
