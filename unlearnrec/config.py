"""Hyper-parameters as small frozen dataclasses, one per kind, parsed from ``params.yaml``.

Every field has a default that works on the bundled synthetic data; ``params.yaml`` overrides them.
Unknown keys are an error (a typo in a config must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/synthetic"  # LightGCN folder or MovieLens ratings file
    min_rating: float | None = None  # MovieLens: keep ratings >= this as positives (None: all)
    test_fraction: float = 0.2  # used only when the input has no test split
    valid_fraction: float = 0.1  # share of each user's training items held out for early stopping
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lightgcn"  # lightgcn | sgl | simgcl | mf
    embedding_dim: int = 64
    num_layers: int = 3  # propagation layers (ignored by mf)
    # layer-0 embeddings ~ N(0, init_std^2); None: the backbone's own default (0.1 as in
    # LightGCN for lightgcn/sgl/mf; 0.01 for simgcl, whose uniform-noise views drown the
    # collaborative signal when the rows start large: docs/benchmarks.md, 'Other backbones')
    init_std: float | None = None
    # weight of the SGL / SimGCL contrastive term. 0.02, not the papers' 0.1-0.5 (tuned on
    # sparse Yelp/Amazon): on MovieLens 0.1 costs SGL 18% of Recall@20 and stalls SimGCL
    # (docs/benchmarks.md, 'Other backbones'); raise it for sparse graphs.
    ssl_weight: float = 0.02
    ssl_temperature: float = 0.2  # InfoNCE temperature of that term
    sgl_edge_drop: float = 0.1  # SGL-ED: share of edges dropped in each view
    simgcl_eps: float = 0.1  # SimGCL: norm of the uniform noise added per layer
    # rows trained beside the model as items with no positive (models/shadow.py): where a
    # taken-down item goes when it is unlearned, as retrain would put it. 0: none.
    shadow_items: int = 32


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 400
    batch_size: int = 4096
    lr: float = 5e-3
    weight_decay: float = 1e-4  # L2 on the layer-0 rows of a batch, as in LightGCN
    eval_every: int = 5  # epochs between validation evaluations
    patience: int = 6  # validations without improvement before stopping
    min_delta: float = 1e-4  # smaller Recall@K gains do not count as improvement
    topk: tuple[int, ...] = (20,)  # the first K drives early stopping
    eval_batch_size: int = 2048  # users per full-ranking batch
    seed: int = 0


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Retrain reference: the base model's config, with these train fields overridden (e.g. a
    # larger batch that reaches the same utility sooner). Empty: exactly the base config.
    retrain: dict[str, Any] = field(default_factory=dict)
    unlearnrec: dict[str, Any] = field(default_factory=dict)  # see unlearning.unlearnrec
    forgetting: dict[str, Any] = field(default_factory=dict)  # see forgetting.ForgettingConfig


def from_dict(cls: type[T], values: dict[str, Any] | None) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys and coercing tuples."""
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; allowed: {sorted(names)}")
    for key, value in list(values.items()):
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def replace(config: T, overrides: dict[str, Any] | None) -> T:
    """``config`` with ``overrides`` applied, rejecting unknown keys."""
    merged = {**to_dict(config), **(overrides or {})}
    return from_dict(type(config), merged)


def params_from_dict(raw: dict[str, Any]) -> Params:
    """A ``Params`` from the parsed YAML mapping; sections for other tools are ignored."""
    return Params(
        data=from_dict(DataConfig, raw.get("data")),
        model=from_dict(ModelConfig, raw.get("model")),
        train=from_dict(TrainConfig, raw.get("train")),
        retrain=dict(raw.get("retrain") or {}),
        unlearnrec=dict(raw.get("unlearnrec") or {}),
        forgetting=dict(raw.get("forgetting") or {}),
    )


def load_params(path: str | Path | None = None) -> Params:
    """Read ``params.yaml`` (or return defaults when ``path`` is None)."""
    if path is None:
        return Params()
    import yaml

    return params_from_dict(yaml.safe_load(Path(path).read_text()) or {})
