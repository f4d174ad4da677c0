"""The CLI's conventions: usage errors exit 2 before any work (nothing created under the home);
failures exit 1; every listing and report takes ``--json``; third-party telemetry is off by
default at start, and a caller's own choice is kept."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from unlearnrec.cli import QUIET_DEFAULTS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # usage errors exit like argparse's; a message alone means 1
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


USAGE_ERRORS = [
    (["tickets", "list", "--status", "bogus"], "certified"),  # names the valid values
    (["tickets", "submit", "{home}/missing.json"], "not found"),
    (["tickets", "extend", "DSAR-1", "--days", "0", "--reason", "x"], "positive"),
    (["tickets", "extend", "DSAR-1", "--days", "3", "--reason", " "], "--reason"),
    (["tickets", "extend", "DSAR-1", "--reason", "x"], "--days"),
    (["certificate", "verify", "{home}/missing.json"], "not found"),
    (["audit", "verify", "--head", "nonsense"], "POSITION:"),
    (["db", "current", "--bogus"], "unrecognized"),
    (["train", "--device", "gpu0"], "cuda:N"),
    (["train", "--set", "nodot"], "--set expects"),
    (["prepare", "--params", "{home}/none.yaml"], "params file"),
    (["init", "--data", "{home}/none.csv"], "does not exist"),
    (["flows", "run", "bogus"], "invalid choice"),
    (["flows", "run", "process", "--wait", "-1"], "seconds"),
    (["flows", "run", "process", "--device", "tpu"], "cuda:N"),
    (["demo", "--root", "{home}/none"], "not a folder"),
    (["dashboard", "--port", "0"], "1..65535"),
    (["dashboard", "--home", "{home}/none"], "not a folder"),
    (["bench", "--data", "{home}", "--request", "bogus:1"], "bogus"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS, ids=lambda v: str(v)[:40])
def test_usage_errors_exit_2_before_any_work(home, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(home)
    argv = [a.format(home=home) for a in argv]
    if argv[0] in ("tickets", "certificate", "audit", "db", "init"):
        argv += ["--home", str(home)]
    assert _exit(argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in home.iterdir()) == []  # no ledger, store, data or params


def test_an_unknown_status_names_the_valid_ones(home, capsys):
    assert _exit(["tickets", "list", "--status", "closed", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "'closed' is not a ticket status" in err
    for status in ("received", "rejected", "certified", "escalated"):
        assert status in err


def _subcommands(
    parser: argparse.ArgumentParser, prefix=()
) -> dict[tuple, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[(*prefix, name)] = sub
                found.update(_subcommands(sub, (*prefix, name)))
    return found


LISTINGS_AND_REPORTS = [
    ("tickets", "list"),
    ("tickets", "submit"),
    ("certificate", "list"),
    ("certificate", "verify"),
    ("audit", "verify"),
    ("audit", "head"),
    ("db", "current"),
    ("report",),
    ("init",),
]


def test_every_listing_and_report_takes_json():
    commands = _subcommands(build_parser())
    missing = [
        " ".join(cmd)
        for cmd in LISTINGS_AND_REPORTS
        if "--json" not in commands[cmd]._option_string_actions
    ]
    assert missing == []


def test_json_reports_on_an_empty_platform(home, capsys):
    (home / "policies").mkdir()
    (home / "policies" / "gdpr-default.yaml").write_text(
        (ROOT / "policies" / "gdpr-default.yaml").read_text()
    )
    h = ["--home", str(home)]
    assert _exit(["tickets", "list", "--status", "received", "--json", *h]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert _exit(["certificate", "list", "--json", *h]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert _exit(["audit", "verify", "--json", *h]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []
    assert _exit(["db", "current", "--json", *h]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True
    # a failure (not a usage error) exits 1: an empty trail has no head to export
    assert _exit(["audit", "head", "--json", *h]) == 1


def test_certificate_verify_json_says_invalid_with_exit_1(home, capsys, tmp_path):
    key = tmp_path / "key.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cert = tmp_path / "c.json"
    cert.write_text("{not json")
    argv = ["certificate", "verify", str(cert), "--public-key", str(key), "--json", "--no-ledger"]
    assert _exit(argv) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["problems"]


def test_telemetry_is_off_by_default_and_a_callers_choice_is_kept(home, monkeypatch):
    for key in QUIET_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # the caller's own choice
    assert _exit(["db", "current", "--home", str(home)]) == 0
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DVC_NO_ANALYTICS"] == "1"
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert os.environ["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "0"
