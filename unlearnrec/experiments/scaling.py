"""How the cost of unlearning one fixed request grows with the graph (``unlearnrec bench-scaling``).

For each size (training edges): a synthetic graph with the generator's structure (item groups,
Zipf popularity within a group, Dirichlet user tastes, log-normal activity; users and items scaled
together, 3:2, about 30 interactions per user), a LightGCN at its initial weights and a fresh
Influence Encoder (the cost of the step does not depend on what the weights are; quality is
measured on real data by ``bench``), and two fixed requests: one user with about 100 interactions,
and 100 random edges. Per size and request it records the seconds of UnlearnRec's unlearning step
(a fixed number of fine-tune steps, so the work is comparable across sizes), the process's peak
resident memory during the step, and retrain's seconds per epoch (measured on a few training steps
and scaled to an epoch's, or a whole epoch on small graphs).

The generator's exact sampler (Gumbel top-k over every user x item cell) costs O(users x items);
here interactions are drawn with the same distributions in O(edges) (with replacement, duplicates
dropped), so that 10^7 edges can be generated at all.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from unlearnrec.config import ModelConfig, TrainConfig
from unlearnrec.data import synthetic
from unlearnrec.graph.bipartite import Graph
from unlearnrec.models import build_model
from unlearnrec.training.loop import device_name, make_generator, train_step
from unlearnrec.unlearning.local import unlearn_local
from unlearnrec.unlearning.requests import DeletionRequest
from unlearnrec.unlearning.unlearnrec import UnlearnRecConfig, _new_encoder, unlearn_request

MEAN_INTERACTIONS = 30.0
USERS_PER_ITEM = 1.5  # the generator's default shape: 3000 users, 2000 items


def scaled_graph_edges(
    num_edges: int, *, num_groups: int = 20, seed: int = 0
) -> tuple[np.ndarray, int, int]:
    """About ``num_edges`` distinct (user, item) pairs with the synthetic generator's structure,
    drawn in O(edges); returns (edges, num_users, num_items)."""
    # distinct pairs per user after the activity cap and duplicates, less the 5% held out:
    # about 22.8 at a mean activity of 30 (measured), so the training graph has ~num_edges
    num_users = max(10, round(num_edges / 22.8))
    num_items = max(num_groups, round(num_users / USERS_PER_ITEM))
    rng = np.random.default_rng(seed)
    item_group = synthetic._draw_item_groups(rng, num_items, num_groups)
    mixtures = rng.dirichlet(np.full(num_groups, synthetic.DIRICHLET_ALPHA), size=num_users)
    counts = synthetic._activity(rng, num_users, num_items, MEAN_INTERACTIONS)
    item_prob = synthetic._within_group_popularity(item_group, num_groups)
    # draw 8% extra to make up for duplicates, then keep each user's first counts[u] distinct
    draws = np.ceil(counts * 1.08).astype(np.int64)
    users = np.repeat(np.arange(num_users), draws)
    # the user's group (inverse CDF on the user's mixture), then an item of that group by its
    # Zipf weight; UNIFORM_NOISE of the draws are uniform over all items
    cdf = np.cumsum(mixtures, axis=1)
    cdf[:, -1] = 1.0
    u01 = rng.random(len(users))
    groups = np.empty(len(users), dtype=np.int64)
    for lo in range(0, len(users), 1 << 20):  # chunks bound the (draws, groups) comparison
        sl = slice(lo, lo + (1 << 20))
        groups[sl] = (u01[sl, None] > cdf[users[sl]]).sum(1)
    order = np.lexsort((-item_prob, item_group))  # items by group, most popular first
    group_start = np.searchsorted(item_group[order], np.arange(num_groups))
    within_cdf = np.cumsum(item_prob[order])  # per group it runs from k to k+1
    target = groups + rng.random(len(users))
    pos = np.searchsorted(within_cdf, target, side="right")
    pos = np.clip(pos, group_start[groups], np.append(group_start[1:], num_items)[groups] - 1)
    items = order[pos]
    noise = rng.random(len(users)) < synthetic.UNIFORM_NOISE
    items[noise] = rng.integers(num_items, size=int(noise.sum()))
    keys = users * np.int64(num_items) + items
    _, first = np.unique(keys, return_index=True)
    first.sort()
    users, items = users[first], items[first]
    # at most counts[u] per user (draw order is random, so the first ones are a fair sample)
    rank = np.arange(len(users)) - np.searchsorted(users, users)
    keep = rank < counts[users]
    return np.stack([users[keep], items[keep]], 1), num_users, num_items


class PeakMemory:
    """Peak resident memory (MB) of this process while the block runs, sampled every few ms
    (Linux ``/proc/self/statm``)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self.before = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.before = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.before) / 2**20


def fixed_requests(graph: Graph, seed: int = 0, user_edges: int = 100, random_edges: int = 100):
    """{"user:K": the user whose degree K is nearest ``user_edges``, "random:R": R random edges}."""
    edges = graph.edges_numpy()
    deg = np.bincount(edges[:, 0], minlength=graph.num_users)
    user = int(np.argmin(np.abs(deg - user_edges)))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(edges), size=min(random_edges, len(edges)), replace=False)
    return {
        f"user:{int(deg[user])}": DeletionRequest(
            "users", edges[edges[:, 0] == user], users=(user,)
        ),
        f"random:{len(pick)}": DeletionRequest("edges", edges[pick]),
    }


def retrain_epoch_seconds(
    graph: Graph, model_config: ModelConfig, train: TrainConfig, max_steps: int
) -> tuple[float, int, int]:
    """Seconds of one training epoch on ``graph`` (BPR steps with full propagation), measured on
    at most ``max_steps`` steps and scaled to the epoch's step count; returns (seconds, steps
    measured, steps per epoch). Validation is not included."""
    torch.manual_seed(train.seed)
    model = build_model(graph.num_users, graph.num_items, model_config)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    gen = make_generator(train.seed, graph.device)
    per_epoch = -(-len(graph.edges) // train.batch_size)
    steps = min(per_epoch, max_steps)
    perm = torch.randperm(len(graph.edges), generator=gen)
    start = time.perf_counter()
    for s in range(steps):
        idx = perm[s * train.batch_size : (s + 1) * train.batch_size]
        users, pos = graph.edges[idx, 0], graph.edges[idx, 1]
        train_step(
            model,
            graph,
            opt,
            users,
            pos,
            weight_decay=train.weight_decay,
            views=None,
            generator=gen,
        )
    seconds = time.perf_counter() - start
    return seconds * per_epoch / steps, steps, per_epoch


def bench_size(
    num_edges: int,
    *,
    scopes: tuple[str, ...] = ("local", "graph"),
    finetune_steps: int = 5,
    retrain_steps: int = 5,
    repeat: int = 3,
    graph_scope_max_edges: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Records of one graph size: per request and scope, the unlearning step's seconds (median
    of ``repeat``, after one warm-up) and peak memory; retrain's epoch seconds."""
    device = torch.device("cpu")
    start = time.perf_counter()
    edges, num_users, num_items = scaled_graph_edges(num_edges, seed=seed)
    # 5% of each graph's pairs are held out: the non-members the z-score targets read
    rng = np.random.default_rng(seed + 1)
    held = rng.random(len(edges)) < 0.05
    graph = Graph.from_edges(edges[~held], num_users, num_items, device)
    heldout = edges[held]
    del edges
    build_seconds = time.perf_counter() - start
    log(f"{len(graph.edges)} edges, {num_users} users, {num_items} items ({build_seconds:.1f}s)")
    model_config = ModelConfig(name="lightgcn", embedding_dim=64, num_layers=3)
    train = TrainConfig()
    torch.manual_seed(seed)
    model = build_model(num_users, num_items, model_config)
    model.eval()
    base = UnlearnRecConfig(finetune_stop="fixed", finetune_steps=finetune_steps)
    encoder = _new_encoder(model, base).eval()
    epoch_seconds, measured, per_epoch = None, 0, -(-len(graph.edges) // train.batch_size)
    if retrain_steps > 0:  # 0: not measured here (run_scaling keeps an earlier measurement)
        epoch_seconds, measured, per_epoch = retrain_epoch_seconds(
            graph, model_config, train, retrain_steps
        )
        log(f"retrain: {epoch_seconds:.2f}s per epoch ({measured} of {per_epoch} steps measured)")
    records = []
    for label, request in fixed_requests(graph, seed).items():
        for scope in scopes:
            if (
                scope == "graph"
                and graph_scope_max_edges is not None
                and len(graph.edges) > graph_scope_max_edges
            ):
                continue
            step = unlearn_local if scope == "local" else unlearn_request

            def run(step=step, request=request):
                return step(model, graph, request, encoder, base, train, heldout, fit_epochs=100)

            run()  # warm-up; for "local" it also builds the per-model cache (offline)
            times, model_times, peaks, extras, outcome = [], [], [], [], None
            for _ in range(repeat):
                del outcome
                gc.collect()
                with PeakMemory() as mem:
                    outcome = run()
                times.append(outcome.seconds)
                model_times.append(outcome.details.get("model_seconds") or outcome.seconds)
                peaks.append(mem.peak_mb)
                extras.append(mem.extra_mb)
            d = outcome.details
            rec = {
                "edges": len(graph.edges),
                "users": num_users,
                "items": num_items,
                "request": label,
                "request_edges": request.num_edges,
                "scope": scope,
                "unlearn_seconds": float(np.median(times)),
                "unlearn_seconds_all": [round(t, 4) for t in times],
                # the new model alone (the local step also reports building the residual graph)
                "model_seconds": float(np.median(model_times)),
                "residual_graph_seconds": d.get("residual_graph_seconds"),
                "finetune_steps": d["finetune_steps_run"],
                "subgraph_nodes": d.get("subgraph_nodes"),
                "base_cache_seconds": d.get("base_cache_seconds"),
                "retrain_epoch_seconds": epoch_seconds,
                "retrain_steps_measured": measured,
                "retrain_steps_per_epoch": per_epoch,
                "peak_mb": max(peaks),
                "peak_extra_mb": max(extras),
                "device": device_name(device),
            }
            log(
                f"{label} {scope}: {rec['unlearn_seconds']:.3f}s "
                f"(model {rec['model_seconds']:.3f}s), peak {rec['peak_mb']:.0f} MB "
                f"(+{rec['peak_extra_mb']:.0f})"
            )
            records.append(rec)
            del outcome
    return records


def plot(records: list[dict[str, Any]], path: str) -> None:
    """Unlearning seconds (per request and scope) and retrain's epoch seconds against edges, on
    log-log axes, as a PNG (drawn with Pillow: matplotlib is not a dependency)."""
    from PIL import Image, ImageDraw

    series: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        kind = r["request"].split(":")[0]
        series.setdefault(f"unlearn {kind} ({r['scope']})", []).append(
            (r["edges"], r["unlearn_seconds"])
        )
    series["retrain, one epoch"] = sorted(
        {(r["edges"], r["retrain_epoch_seconds"]) for r in records}
    )
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y > 0]
    x0, x1 = np.floor(np.log10(min(xs))), np.ceil(np.log10(max(xs)))
    y0, y1 = np.floor(np.log10(min(ys))), np.ceil(np.log10(max(ys)))
    width, height, left, right, top, bottom = 820, 520, 80, 250, 40, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def at(x: float, y: float) -> tuple[float, float]:
        fx = (np.log10(x) - x0) / max(x1 - x0, 1)
        fy = (np.log10(max(y, 10**y0)) - y0) / max(y1 - y0, 1)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    for e in range(int(x0), int(x1) + 1):
        px, _ = at(10.0**e, 10**y0)
        draw.line([(px, top), (px, height - bottom)], fill=(225, 225, 225))
        draw.text((px - 12, height - bottom + 6), f"1e{e}", fill="black")
    for e in range(int(y0), int(y1) + 1):
        _, py = at(10**x0, 10.0**e)
        draw.line([(left, py), (width - right, py)], fill=(225, 225, 225))
        draw.text((left - 40, py - 6), f"1e{e}s", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text(
        (left, 12), "Unlearning one fixed request vs graph size (CPU, one thread)", fill="black"
    )
    draw.text((left + 180, height - 24), "training edges (log)", fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    for n, (name, pts) in enumerate(sorted(series.items())):
        colour = (0, 0, 0) if name.startswith("retrain") else colours[n % len(colours)]
        pts = sorted(pts)
        xy = [at(x, y) for x, y in pts]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in xy:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = top + 10 + 18 * n
        draw.line(
            [(width - right + 12, ly + 6), (width - right + 32, ly + 6)], fill=colour, width=2
        )
        draw.text((width - right + 38, ly), name, fill="black")
    img.save(path)


def run_scaling(
    sizes: list[int],
    *,
    json_path: str | None = None,
    plot_path: str | None = None,
    log: Callable[[str], None] = lambda _: None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Bench every size in turn; records are appended to ``json_path`` (a JSON list, replacing
    earlier records of the same size, request kind and scope) as soon as a size is done."""
    import json
    from pathlib import Path

    out: list[dict[str, Any]] = []
    for size in sizes:
        records = bench_size(size, log=log, **kw)
        out.extend(records)
        if json_path:
            path = Path(json_path)
            old = json.loads(path.read_text()) if path.exists() else []
            fresh = {(r["edges"], r["request"].split(":")[0], r["scope"]) for r in records}
            for r in records:
                if r["retrain_epoch_seconds"] is None:  # keep this size's earlier measurement
                    earlier = [
                        o for o in old if o["edges"] == r["edges"] and o["retrain_steps_measured"]
                    ]
                    if earlier:
                        for key in ("retrain_epoch_seconds", "retrain_steps_measured"):
                            r[key] = earlier[-1][key]
            old = [
                r for r in old if (r["edges"], r["request"].split(":")[0], r["scope"]) not in fresh
            ]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(old + records, indent=1) + "\n")
            if plot_path:
                plot(old + records, plot_path)
        gc.collect()
    return out
