"""``unlearnrec dashboard`` / ``dashboard-password``, and the dashboard's import weight: no torch,
no ML stack, so it starts fast next to the flows."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dashboard import auth
from dashboard import cli as dashboard_cli
from unlearnrec import cli

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torch_geometric", "scipy", "sklearn", "prefect", "great_expectations", "dvc")


def test_importing_the_dashboard_does_not_import_torch_or_the_ml_stack():
    """The product modules, and the seed and browser check the tests start it with."""
    code = (
        "import sys\n"
        "import dashboard, dashboard.app, dashboard.ui, dashboard.views, dashboard.queries\n"
        "import dashboard.auth, dashboard.cli, dashboard.evidence\n"
        "import tests.dashboard.seed, tests.dashboard.e2e\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
    assert "torch" not in out.stdout


def test_the_shipped_packages_hold_no_test_fixtures():
    """pyproject's package list ships unlearnrec, flows and dashboard only: not ``tests`` (where
    the seed and the browser check live), and no shipped module imports from it."""
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = find_packages(str(ROOT), include=include)
    assert "dashboard" in shipped and "flows" in shipped and "unlearnrec" in shipped
    assert not [p for p in shipped if p == "tests" or p.startswith("tests.")]
    importing_tests = re.compile(r"^\s*(from|import)\s+tests\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("unlearnrec", "flows", "dashboard")
        for path in (ROOT / package).rglob("*.py")
        if importing_tests.search(path.read_text())
    ]
    assert offenders == []
    assert not {"seed.py", "e2e.py"} & {p.name for p in (ROOT / "dashboard").rglob("*.py")}


def test_the_commands_are_registered():
    parser = cli.build_parser()
    args = parser.parse_args(["dashboard"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 8501, dashboard_cli.cmd_dashboard)
    args = parser.parse_args(["dashboard", "--port", "9000", "--host", "0.0.0.0"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)
    with pytest.raises(SystemExit):
        parser.parse_args(["dashboard", "--port", "70000"])
    assert parser.parse_args(["dashboard-password"]).func == dashboard_cli.cmd_dashboard_password


def test_the_server_runs_headless_on_loopback_without_usage_stats():
    cmd = dashboard_cli.streamlit_command(Path("/x/app.py"), host="127.0.0.1", port=8501)
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert cmd[1:5] == ["-m", "streamlit", "run", "/x/app.py"]
    assert flags["--server.headless"] == "true"
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8501"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--client.showErrorDetails"] == "none"


def test_dashboard_execs_streamlit_on_the_app(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(
        dashboard_cli.os, "execve", lambda path, argv, env: seen.update(argv=argv, env=env)
    )
    assert cli.main(["dashboard", "--port", "8600", "--home", str(tmp_path)]) == 0
    app = Path(seen["argv"][4])
    assert app.name == "app.py" and (app.parent / "ui.py").is_file()
    assert seen["argv"][seen["argv"].index("--server.port") + 1] == "8600"
    assert seen["env"]["UNLEARNREC_HOME"] == str(tmp_path.resolve())
    assert seen["env"]["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"


def test_dashboard_password_hashes_a_line_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery staple\n"))
    assert cli.main(["dashboard-password"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert hashed.startswith("scrypt$")
    assert auth.verify_password("correct horse battery staple", hashed)
    assert not auth.verify_password("correct horse battery staple\n", hashed)


def test_dashboard_password_refuses_a_short_one(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["dashboard-password"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "at least 8 characters" in captured.err
