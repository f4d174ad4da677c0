"""What every backbone shares: layer-0 embeddings, propagation over a graph passed in, losses.

A backbone owns its layer-0 embeddings E0 only. ``propagate(graph, e0)`` maps (N, d) layer-0
embeddings to (N, d) final embeddings over that graph; ``e0`` defaults to the model's own table
and is the hook UnlearnRec uses to run the same backbone with corrected embeddings.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearnrec.config import ModelConfig
from unlearnrec.graph.bipartite import Graph


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between two (B, d) views: row i of ``a`` and of ``b`` are the positive pair."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature  # (B, B)
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


class GraphRecommender(nn.Module):
    """Base class: embeddings + propagation + the backbone's self-supervised term."""

    name: ClassVar[str] = "base"
    default_init_std: ClassVar[float] = 0.1  # N(0, 0.1^2), as in LightGCN's reference code

    def __init__(self, num_users: int, num_items: int, config: ModelConfig):
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.config = config
        # (N, d) layer-0 embeddings E0: users first, then items.
        self.embedding = nn.Parameter(
            torch.randn(num_users + num_items, config.embedding_dim) * self.init_std
        )
        # (K, d) shadow items: rows trained beside the model as items nobody interacted with,
        # where retrain puts a taken-down item (``models/shadow.py``); not part of any graph.
        # Their first draw happens when training starts (shadow_steps == 0 until then).
        self.register_buffer("shadow_items", torch.zeros(config.shadow_items, config.embedding_dim))
        self.register_buffer("shadow_steps", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # checkpoints written before shadow items existed: keep the untrained (empty) ones
        for name in ("shadow_items", "shadow_steps"):
            state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def init_std(self) -> float:
        """Standard deviation of the initial layer-0 rows (config value or backbone default)."""
        std = self.config.init_std
        return self.default_init_std if std is None else std

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    def propagate(self, graph: Graph, e0: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) final embeddings over ``graph``."""
        raise NotImplementedError

    def isolated_scale(self) -> float:
        """c with final = c * e0 for a node without edges (the mean of layers 0..L here: only
        layer 0 is non-zero)."""
        return 1.0 / (self.config.num_layers + 1)

    def make_views(self, graph: Graph, generator: torch.Generator) -> Any:
        """Per-epoch state of the self-supervised term (e.g. SGL's dropped graphs); None if none."""
        return None

    def ssl_loss(
        self,
        graph: Graph,
        e0: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        views: Any,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The backbone's contrastive term on the batch's unique users and items (0 if none)."""
        return e0.new_zeros(())

    def split(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, d) -> ((num_users, d), (num_items, d))."""
        return emb[: self.num_users], emb[self.num_users :]

    @torch.no_grad()
    def final_embeddings(self, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        """Users' and items' final embeddings for inference."""
        return self.split(self.propagate(graph))

    def describe(self) -> dict[str, Any]:
        from unlearnrec.config import to_dict

        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "config": to_dict(self.config),
        }
