"""SGL-ED (Wu et al., SIGIR 2021): LightGCN plus InfoNCE between two edge-dropped views."""

from __future__ import annotations

import torch

from unlearnrec.graph.bipartite import Graph
from unlearnrec.models.base import GraphRecommender, info_nce
from unlearnrec.models.lightgcn import lightgcn_propagate


class SGL(GraphRecommender):
    name = "sgl"

    def propagate(self, graph: Graph, e0: torch.Tensor | None = None) -> torch.Tensor:
        e0 = self.embedding if e0 is None else e0
        return lightgcn_propagate(graph.adj, e0, self.config.num_layers)

    def make_views(self, graph: Graph, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        # Two sparse adjacencies of random subgraphs, re-drawn every epoch as in SGL-ED.
        keep = 1.0 - self.config.sgl_edge_drop
        return graph.drop_edges(keep, generator), graph.drop_edges(keep, generator)

    def ssl_loss(self, graph, e0, users, items, views, generator):
        adj1, adj2 = views
        z1 = lightgcn_propagate(adj1, e0, self.config.num_layers)
        z2 = lightgcn_propagate(adj2, e0, self.config.num_layers)
        u = torch.unique(users)
        i = torch.unique(items) + self.num_users
        t = self.config.ssl_temperature
        return info_nce(z1[u], z2[u], t) + info_nce(z1[i], z2[i], t)
