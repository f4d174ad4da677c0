"""``unlearnrec audit check-erased --json``: a machine-readable verdict (the human output is
exercised by the erasure workflow test)."""

from __future__ import annotations

import argparse
import json

from unlearnrec.cli import compliance as cli_compliance

from .test_model_retention import _platform


def test_json_verdict_of_a_platform_that_erased_nothing(tmp_path, monkeypatch, capsys):
    platform = _platform(tmp_path, monkeypatch)
    parser = argparse.ArgumentParser()
    cli_compliance.add_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["audit", "check-erased", "--json", "--home", str(platform.settings.home)]
    )
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "scanned": 0, "findings": []}
