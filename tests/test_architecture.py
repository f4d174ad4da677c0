"""Dependency direction: the core never imports Prefect, Streamlit or Great Expectations, nor
the flows or the dashboard (import-linter's contracts in pyproject.toml), and the benchmark path
runs without pydantic / SQL (it must run on the bare GPU machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN_IN_CORE = ("prefect", "streamlit", "great_expectations")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_core_and_bench_import_no_orchestration_or_ui_packages():
    loaded = _loaded_after(
        "import unlearnrec.cli, unlearnrec.experiments.bench, unlearnrec.experiments.pipeline"
    )
    for name in (*FORBIDDEN_IN_CORE, "sqlmodel", "sqlalchemy", "pydantic"):
        assert name not in loaded, f"{name} imported by the core"


def test_cli_help_does_not_import_torch():
    loaded = _loaded_after("import unlearnrec.cli as c; c.build_parser()")
    assert "torch" not in loaded


def test_the_ledger_and_records_do_not_import_torch():
    """The dashboard reads the ledger and certificates; importing them must stay light."""
    loaded = _loaded_after(
        "import unlearnrec.ledger, unlearnrec.records.certificates, unlearnrec.records.policy, "
        "unlearnrec.records.intake, unlearnrec.records.settings, unlearnrec.records.verification"
    )
    assert "torch" not in loaded


def test_the_verification_record_loads_neither_torch_nor_pydantic():
    """The bench (on the bare GPU machine) may type its figures with it: a plain module."""
    loaded = _loaded_after("import unlearnrec.records.verification")
    assert not {"torch", "pydantic", "sqlmodel", "sqlalchemy"} & loaded


def test_no_core_module_imports_prefect_streamlit_or_gx():
    """Only flows/ imports Prefect and Great Expectations; only dashboard/ imports Streamlit."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent / "unlearnrec"
    pattern = re.compile(r"^\s*(from|import)\s+(prefect|streamlit|great_expectations)\b", re.M)
    offenders = [
        str(p.relative_to(root.parent)) for p in root.rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_the_import_contracts_hold():
    """The dependency rule (docs/architecture.md): the core never imports flows or dashboard
    (lazily or not), neither of those two imports the other, the dashboard enters the core only
    through the records, the records and the ML library know nothing above them, and the workflow
    and drivers never import the CLI: import-linter checks every contract of pyproject.toml on
    the import graph."""
    pytest.importorskip("importlinter")
    import tomllib

    root = Path(__file__).resolve().parent.parent
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert len(contracts["contracts"]) >= 7
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "pyproject.toml"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(contracts['contracts'])} kept, 0 broken" in out.stdout


def test_the_cli_offers_the_flows_and_dashboard_commands_through_entry_points():
    """``unlearnrec`` composes the command groups that flows and dashboard register, without
    the core importing either package: only the entry points' modules load."""
    loaded = _loaded_after("import unlearnrec.cli as c; c.build_parser()")
    assert {"flows", "dashboard"} <= loaded
    assert "prefect" not in loaded and "streamlit" not in loaded
