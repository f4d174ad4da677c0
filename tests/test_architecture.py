"""Dependency direction: the core never imports Prefect, Streamlit or Great Expectations, and
the benchmark path runs without pydantic / SQL (it must run on the bare GPU machine)."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN_IN_CORE = ("prefect", "streamlit", "great_expectations")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_core_and_bench_import_no_orchestration_or_ui_packages():
    loaded = _loaded_after("import unlearnrec.cli, unlearnrec.bench, unlearnrec.pipeline")
    for name in (*FORBIDDEN_IN_CORE, "sqlmodel", "sqlalchemy", "pydantic"):
        assert name not in loaded, f"{name} imported by the core"


def test_cli_help_does_not_import_torch():
    loaded = _loaded_after("import unlearnrec.cli as c; c.build_parser()")
    assert "torch" not in loaded


def test_the_ledger_and_records_do_not_import_torch():
    """The dashboard reads the ledger and certificates; importing them must stay light."""
    loaded = _loaded_after(
        "import unlearnrec.ledger, unlearnrec.certificates, unlearnrec.policy, "
        "unlearnrec.intake, unlearnrec.settings"
    )
    assert "torch" not in loaded


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
