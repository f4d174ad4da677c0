"""The membership audit as a picture: does the model treat the erased pairs like pairs it never saw?

Two panels from the compact evidence a verification record keeps under ``"membership"``
(``unlearnrec.evaluation.membership.evidence_record``: histogram counts and ROC points, never a
pair):

- the attack score (LiRA's offline likelihood-ratio statistic) of the forgotten pairs beside that
  of held-out pairs no model was trained on, under the original, the unlearned and the reference
  (retrained) model: the original sets the forgotten pairs apart; a model that forgot them shows
  the two populations on top of each other, as the retrained one does;
- the attack's ROC on log-log axes (the low-FPR region the literature reads), with chance as
  the diagonal.

``chart`` draws them with Altair for the dashboard; ``render_png`` draws the same with Pillow
(what the stack has: no plotting library, no browser) for the docs, from a verification record
or a ``bench --rmia`` JSON: ``python -m dashboard.evidence BENCH.json OUT.png``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

MODELS = ("original", "unlearned", "reference")
LABELS = {
    "original": "original (trained on them)",
    "unlearned": "unlearned",
    "reference": "retrained without them",
}
POPULATIONS = ("forgotten pairs", "held-out pairs (never trained)")
TPR_FLOOR = 1e-4  # a TPR of 0 drawn at the floor of the log axis
COLORS = {"original": "#d62728", "unlearned": "#1f77b4", "reference": "#2ca02c"}


def membership_evidence(verification: dict[str, Any] | None) -> dict[str, Any] | None:
    """The membership evidence of a verification record, or None when it has none usable."""
    m = (verification or {}).get("membership")
    if not isinstance(m, dict) or not isinstance(m.get("models"), dict):
        return None
    models = {k: v for k, v in m["models"].items() if k in MODELS and _usable(v)}
    return {**m, "models": models} if models else None


def _usable(audit: Any) -> bool:
    try:
        h, roc = audit["histogram"], audit["roc"]
        return (
            len(h["edges"]) == len(h["members"]) + 1 == len(h["nonmembers"]) + 1
            and len(roc["fpr"]) == len(roc["tpr"]) > 0
        )
    except (KeyError, TypeError):
        return False


def from_bench(result: dict[str, Any], method: str = "unlearnrec") -> dict[str, Any]:
    """The evidence of a ``bench --rmia`` result (its original model, ``method``, retrain)."""
    methods = result["methods"]
    return {
        "attack": methods[method]["rmia"].get("attack", "lira"),
        "k": result["rmia_references"]["k"],
        "references": result["rmia_references"],
        "models": {
            "original": result["rmia_original"],
            "unlearned": methods[method]["rmia"],
            "reference": methods["retrain"]["rmia"],
        },
        "source": f"{result['dataset']} {result['request']['spec']}",
    }


def histogram_frame(evidence: dict[str, Any]) -> pd.DataFrame:
    """Long frame: model, population, bin start and end, share of the population in the bin."""
    rows = []
    for name in MODELS:
        audit = evidence["models"].get(name)
        if audit is None:
            continue
        h = audit["histogram"]
        for pop, counts in zip(POPULATIONS, (h["members"], h["nonmembers"]), strict=True):
            total = max(sum(counts), 1)
            for lo, hi, c in zip(h["edges"][:-1], h["edges"][1:], counts, strict=True):
                rows.append(
                    {
                        "model": LABELS[name],
                        "population": pop,
                        "score": lo,
                        "score_end": hi,
                        "share": c / total,
                    }
                )
    return pd.DataFrame(rows)


def roc_frame(evidence: dict[str, Any]) -> pd.DataFrame:
    """Long frame: model, FPR, TPR (floored for the log axis), with the model's figures."""
    rows = []
    for name in MODELS:
        audit = evidence["models"].get(name)
        if audit is None:
            continue
        for f, t in zip(audit["roc"]["fpr"], audit["roc"]["tpr"], strict=True):
            rows.append(
                {
                    "model": LABELS[name],
                    "fpr": f,
                    "tpr": max(t, TPR_FLOOR),
                    "auc": audit.get("auc"),
                    "tpr@1%": audit.get("tpr_at_1pct_fpr"),
                }
            )
    return pd.DataFrame(rows)


def figures_frame(evidence: dict[str, Any]) -> pd.DataFrame:
    """One row per model: AUC, TPR at 1% and 0.1% FPR, pairs scored."""
    return pd.DataFrame(
        [
            {
                "model": LABELS[name],
                "AUC": round(a["auc"], 3),
                "TPR @ 1% FPR": round(a["tpr_at_1pct_fpr"], 4),
                "TPR @ 0.1% FPR": round(a["tpr_at_0_1pct_fpr"], 4),
                "forgotten pairs": a.get("members"),
                "held-out pairs": a.get("nonmembers"),
            }
            for name in MODELS
            if (a := evidence["models"].get(name)) is not None
        ]
    )


def charts(evidence: dict[str, Any]) -> tuple[alt.FacetChart, alt.LayerChart]:
    """(score histograms faceted by model, ROC on log-log axes)."""
    order = [LABELS[m] for m in MODELS if m in evidence["models"]]
    hist = (
        alt.Chart(histogram_frame(evidence))
        .mark_rect(opacity=0.5)
        .encode(
            x=alt.X("score:Q", title="attack score (likelihood-ratio statistic)"),
            x2="score_end:Q",
            y=alt.Y("share:Q", title="share of pairs", stack=None),
            color=alt.Color(
                "population:N",
                scale=alt.Scale(domain=list(POPULATIONS), range=["#d62728", "#7f7f7f"]),
                legend=alt.Legend(orient="bottom", title=None, labelLimit=0),
            ),
            tooltip=["model", "population", "score", alt.Tooltip("share:Q", format=".3f")],
        )
        .properties(width=210, height=170)
        .facet(column=alt.Column("model:N", sort=order, title=None))
    )
    lo = min(evidence["models"][m]["roc"]["fpr"][0] for m in evidence["models"])
    diag = pd.DataFrame({"fpr": [lo, 1.0], "tpr": [lo, 1.0]})
    axis = alt.Scale(type="log", domain=[min(lo, 1e-3), 1.0])
    curve = (
        alt.Chart(roc_frame(evidence))
        .mark_line(point=False)
        .encode(
            x=alt.X("fpr:Q", scale=axis, title="false-positive rate (log)"),
            y=alt.Y("tpr:Q", scale=alt.Scale(type="log", domain=[TPR_FLOOR, 1.0]), title="TPR"),
            color=alt.Color(
                "model:N",
                scale=alt.Scale(domain=[LABELS[m] for m in MODELS], range=list(COLORS.values())),
                legend=alt.Legend(orient="right", title=None, labelLimit=0),
            ),
            tooltip=["model", "fpr", "tpr", "auc", "tpr@1%"],
        )
    )
    chance = alt.Chart(diag).mark_line(strokeDash=[4, 4], color="#999").encode(x="fpr:Q", y="tpr:Q")
    roc = (chance + curve).properties(width=420, height=300, title="ROC at low FPR (log-log)")
    return hist, roc


# -- PNG without a plotting library ---------------------------------------------------------------
def render_png(evidence: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """The same two panels drawn with Pillow: the three models' histograms, then the ROC."""
    from PIL import Image, ImageDraw, ImageFont

    present = [m for m in MODELS if m in evidence["models"]]
    pw, ph, pad = 300, 200, 48
    width = pad + len(present) * (pw + pad) + 340 + pad
    height = ph + pad + 72
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.font = ImageFont.load_default(size=12)
    d.text((pad, 10), title or _title(evidence), fill="black")
    top = pad
    red, grey = (214, 39, 40), (127, 127, 127)
    for n, name in enumerate(present):
        _hist_panel(d, pad + n * (pw + pad), top, pw, ph, name, evidence["models"][name])
    # legend of the histograms
    ly = top + ph + 44
    d.line([(pad, ly + 6), (pad + 24, ly + 6)], fill=red, width=3)
    d.text((pad + 30, ly), POPULATIONS[0] + " (members before erasure)", fill="black")
    d.line([(pad + 330, ly + 6), (pad + 354, ly + 6)], fill=grey, width=3)
    d.text((pad + 360, ly), POPULATIONS[1], fill="black")
    # ROC, log-log
    x0 = pad + len(present) * (pw + pad)
    rw = 300
    lo = min(evidence["models"][m]["roc"]["fpr"][0] for m in present)
    lx0, lx1 = math.log10(min(lo, 1e-3)), 0.0
    ly0, ly1 = math.log10(TPR_FLOOR), 0.0
    sx = lambda v: x0 + (math.log10(v) - lx0) / (lx1 - lx0) * rw  # noqa: E731
    sy = lambda v: top + ph - (math.log10(max(v, TPR_FLOOR)) - ly0) / (ly1 - ly0) * ph  # noqa: E731
    d.rectangle([x0, top, x0 + rw, top + ph], outline="black")
    d.text((x0, top - 16), "ROC, log-log (dashed: chance)", fill="black")
    lo_axis = 10**lx0
    _dashed(d, (sx(lo_axis), sy(lo_axis)), (sx(1.0), sy(1.0)), grey)
    for e in range(int(lx0), 1):
        d.line([(sx(10**e), top + ph), (sx(10**e), top + ph + 4)], fill="black")
        d.text((sx(10**e) - 10, top + ph + 6), f"1e{e}" if e else "1", fill="black")
    for e in range(int(ly0), 1):
        d.line([(x0 - 4, sy(10**e)), (x0, sy(10**e))], fill="black")
        d.text((x0 - 34, sy(10**e) - 5), f"1e{e}" if e else "1", fill="black")
    d.line([(sx(0.01), top), (sx(0.01), top + ph)], fill=(220, 220, 220))
    d.text((x0 + rw // 2 - 60, top + ph + 20), "false-positive rate", fill="black")
    for i, name in enumerate(present):
        roc = evidence["models"][name]["roc"]
        rgb = _rgb(COLORS[name])
        d.line(
            [(sx(f), sy(t)) for f, t in zip(roc["fpr"], roc["tpr"], strict=True)], fill=rgb, width=2
        )
        ly = top + ph - 52 + 15 * i
        d.line([(x0 + rw - 190, ly + 7), (x0 + rw - 170, ly + 7)], fill=rgb, width=3)
        d.text((x0 + rw - 165, ly), LABELS[name], fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)
    return path


def _hist_panel(d: Any, x0: int, top: int, pw: int, ph: int, name: str, audit: dict) -> None:
    """One model's histograms: forgotten pairs (red) over held-out pairs (grey), as shares."""
    h = audit["histogram"]
    edges = h["edges"]
    shares = [[c / max(sum(cs), 1) for c in cs] for cs in (h["members"], h["nonmembers"])]
    ymax = max(max(s) for s in shares) or 1.0

    def sx(v: float) -> float:
        return x0 + (v - edges[0]) / (edges[-1] - edges[0]) * pw

    def sy(v: float) -> float:
        return top + ph - v / ymax * (ph - 4)

    d.rectangle([x0, top, x0 + pw, top + ph], outline="black")
    for shade, color in ((shares[1], (127, 127, 127)), (shares[0], (214, 39, 40))):
        pts = []
        for lo, hi, share in zip(edges[:-1], edges[1:], shade, strict=True):
            pts += [(sx(lo), sy(share)), (sx(hi), sy(share))]
        d.line(pts, fill=color, width=2)
    for tick in range(math.ceil(edges[0]), math.floor(edges[-1]) + 1, 2):
        d.line([(sx(tick), top + ph), (sx(tick), top + ph + 4)], fill="black")
        d.text((sx(tick) - 4, top + ph + 6), str(tick), fill="black")
    d.text((x0, top - 16), LABELS[name], fill="black")
    d.text(
        (x0 + 6, top + 6),
        f"AUC {audit['auc']:.3f}\nTPR@1% {audit['tpr_at_1pct_fpr']:.3f}\n"
        f"TPR@0.1% {audit['tpr_at_0_1pct_fpr']:.3f}",
        fill="black",
    )
    d.text((x0 + pw // 2 - 60, top + ph + 20), "attack score (LiRA)", fill="black")


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _dashed(d: Any, a: tuple[float, float], b: tuple[float, float], fill: Any) -> None:
    n = 40
    for k in range(0, n, 2):
        p = (a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n)
        q = (a[0] + (b[0] - a[0]) * (k + 1) / n, a[1] + (b[1] - a[1]) * (k + 1) / n)
        d.line([p, q], fill=fill, width=1)


def _title(evidence: dict[str, Any]) -> str:
    source = evidence.get("source")
    head = f"Membership audit ({evidence.get('attack', 'lira')} offline, K={evidence.get('k')})"
    return f"{head}: {source}" if source else head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench_json", help="a `unlearnrec bench --rmia K` result")
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--method", default="unlearnrec", help="the unlearned model's method")
    args = parser.parse_args(argv)
    result = json.loads(Path(args.bench_json).read_text())
    render_png(from_bench(result, args.method), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
