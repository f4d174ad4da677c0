"""The main job on embedded defaults: bundled synthetic data -> ``dvc repro`` -> forgetting report.

Runs the real tools (DVC with its local remote) as subprocesses from the project's venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATA_DIR = Path("data/synthetic")


def _tool(name: str) -> str:
    """A console script of the running interpreter's environment (the project's .venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _run(args: list[str], root: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(f"$ {' '.join(args)}", file=sys.stderr, flush=True)
    subprocess.run(args, cwd=root, env=env, check=True)


def ensure_data(root: Path) -> None:
    """Regenerate the bundled synthetic data if missing (byte-identical for the seed), and make
    sure DVC's cache holds it (``dvc add`` re-hashes; ``data.dvc`` stays unchanged)."""
    from unlearnrec.data import write_synthetic

    if not (root / DATA_DIR / "train.txt").exists():
        print("generating the bundled synthetic dataset into data/synthetic", file=sys.stderr)
        write_synthetic(root / DATA_DIR, seed=0)
    _run([_tool("dvc"), "add", "--quiet", "data"], root)
    status = subprocess.run(
        ["git", "status", "--porcelain", "data.dvc"], cwd=root, capture_output=True, text=True
    )
    if status.stdout.strip():
        print(
            "warning: data/ differs from the version data.dvc records (see `git diff data.dvc`)",
            file=sys.stderr,
        )


def run_demo(root: Path) -> int:
    root = root.resolve()
    ensure_data(root)
    _run([_tool("dvc"), "repro"], root)
    _run([_tool("dvc"), "push", "--quiet"], root)
    from unlearnrec.pipeline import format_report

    report = json.loads((root / "artifacts/evaluation/report.json").read_text())
    print()
    print(format_report(report))
    print()
    print("Reproduce or inspect: dvc repro | dvc metrics show | dvc plots show")
    return 0
