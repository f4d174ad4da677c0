"""Backbones behind one interface (``GraphRecommender``), found by name in ``MODELS``."""

from __future__ import annotations

from unlearnrec.config import ModelConfig
from unlearnrec.models.base import GraphRecommender
from unlearnrec.models.lightgcn import MF, LightGCN
from unlearnrec.models.sgl import SGL
from unlearnrec.models.simgcl import SimGCL

MODELS: dict[str, type[GraphRecommender]] = {
    "lightgcn": LightGCN,
    "sgl": SGL,
    "simgcl": SimGCL,
    "mf": MF,
}


def build_model(num_users: int, num_items: int, config: ModelConfig) -> GraphRecommender:
    """A freshly initialised backbone (seed torch before calling for reproducible weights)."""
    try:
        cls = MODELS[config.name]
    except KeyError:
        raise ValueError(f"unknown model {config.name!r}; choose from {sorted(MODELS)}") from None
    return cls(num_users, num_items, config)


__all__ = ["MF", "MODELS", "SGL", "GraphRecommender", "LightGCN", "SimGCL", "build_model"]
