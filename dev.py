#!/usr/bin/env python3
"""Project entry point that needs only python3: it creates ``.venv`` when missing, then runs a job.

    python3 dev.py demo        the main job (bundled data -> DVC pipeline -> forgetting report)
    python3 dev.py test [ARGS] the test suite (ARGS go to pytest)
    python3 dev.py lint        ruff, and the import contracts (import-linter)
    python3 dev.py setup       only (re)build .venv

The venv is rebuilt when ``requirements.lock`` or ``pyproject.toml`` change (a stamp file
records their hash). Quiet, local-only settings for Prefect, DVC and friends are set here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".unlearnrec-stamp"

QUIET_ENV = {
    "PREFECT_HOME": str(ROOT / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "PYTHONUNBUFFERED": "1",
}


def _say(msg: str) -> None:
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def _stamp() -> str:
    h = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list[str], **kw) -> int:
    env = {**os.environ, **QUIET_ENV}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.call(cmd, cwd=ROOT, env=env, **kw)


def setup(force: bool = False) -> None:
    """Create .venv and install the project (editable) with exact pins, if not done already."""
    if not force and STAMP.exists() and STAMP.read_text() == _stamp():
        return
    if not (BIN / "python").exists():
        _say("creating .venv")
        venv.create(VENV, with_pip=True)
    py = str(BIN / "python")
    _say("installing dependencies (a few minutes on first run)")
    steps = [
        [py, "-m", "pip", "install", "-q", "-U", "pip"],
        [py, "-m", "pip", "install", "-q", "-c", "requirements.lock", "-e", ".[dev]"],
    ]
    for step in steps:
        if _run(step) != 0:
            raise SystemExit(f"[dev] setup failed: {' '.join(step)}")
    STAMP.write_text(_stamp())
    _say("venv ready: .venv/bin/unlearnrec")


def main(argv: list[str]) -> int:
    job, args = (argv[0], argv[1:]) if argv else ("help", [])
    if job in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if job not in ("demo", "test", "lint", "setup"):
        print(f"unknown job {job!r}\n{__doc__}", file=sys.stderr)
        return 2
    setup(force=job == "setup" and "--force" in args)
    if job == "setup":
        return 0
    if job == "demo":
        return _run([str(BIN / "unlearnrec"), "demo", *args])
    if job == "lint":
        return (
            _run([str(BIN / "ruff"), "check", "."])
            or _run([str(BIN / "ruff"), "format", "--check", "."])
            or _run([str(BIN / "lint-imports")])  # the dependency contracts in pyproject.toml
        )
    return _run([str(BIN / "python"), "-m", "pytest", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
