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
