"""The pipeline's plots (``dvc.yaml``'s ``plots:``) rendered to SVG on this machine.

``dvc plots show`` writes a page that loads Vega from a CDN, blank without a network. This asks
DVC for the same plots as filled Vega-Lite specs (``dvc plots show|diff --json``: its own
templates, with the curves of the workspace and of any git revisions named) and renders each with
vl-convert, which bundles Vega: SVG files and an ``index.html`` that embeds them, no script.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DVC_TIMEOUT = 300  # seconds: DVC reads git history for revisions, never longer than this


class PlotsError(RuntimeError):
    """DVC could not give the plots (not a DVC project, an unknown revision, a timeout)."""


def plot_specs(root: Path, revisions: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """DVC's filled Vega-Lite specs by plot target: the workspace's, or with ``revisions`` the
    workspace against each (``dvc plots diff``)."""
    # the dvc installed beside this interpreter (the project's), as the compliance store runs it
    verb = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
    cmd = [sys.executable, "-m", "dvc", *verb, "--json"]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        done = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=DVC_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise PlotsError(f"`{' '.join(cmd[1:])}` took over {DVC_TIMEOUT} s") from exc
    if done.returncode != 0:
        raise PlotsError(f"`dvc {' '.join(cmd[1:])}` failed: {done.stderr.strip()[-500:]}")
    found = json.loads(done.stdout or "{}")
    if found.get("errors"):
        raise PlotsError(f"dvc could not read every plot: {found['errors']}")
    return {
        target: [item for item in items if item.get("type") == "vega"]
        for target, items in (found.get("data") or {}).items()
    }


def _file_name(target: str, index: int, count: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", target.replace("/", "_"))
    return f"{stem}{f'_{index}' if count > 1 else ''}.svg"


def render_plots(root: Path, out: Path, revisions: Sequence[str] = ()) -> list[Path]:
    """Write one SVG per plot and ``index.html`` under ``out``; returns the SVG paths."""
    import vl_convert

    specs = plot_specs(root, revisions)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections = []
    for target, items in specs.items():
        for k, item in enumerate(items):
            path = out / _file_name(target, k, len(items))
            svg = vl_convert.vegalite_to_svg(item["content"])
            path.write_text(svg, encoding="utf-8")
            written.append(path)
            revs = ", ".join(item.get("revisions") or ["workspace"])
            sections.append(f"<h2>{html.escape(target)} <small>({html.escape(revs)})</small></h2>")
            sections.append(f'<img src="{html.escape(path.name)}" alt="{html.escape(target)}">')
    page = (
        "<!doctype html><meta charset='utf-8'><title>unlearnrec pipeline plots</title>"
        "<h1>Pipeline plots</h1>" + "\n".join(sections or ["<p>no plots</p>"]) + "\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    return written
