"""The Influence Encoder (IE): maps a deletion request to a correction of the layer-0 embeddings.

For a request with IDM Â_Δ over N nodes, embedding size d, L backbone layers:

    H^l   = Â_Δ H^{l-1}, l = 1..L,  H̄ = Σ_{l=0..L} H^l ("sum"), Σ_{l=1..L} H^l ("hops") or H^L
    E_w^0 = Ē ⊙ W_η,  E_w^l = Â_Δ E_w^{l-1},  Ē_w = E_w^L
    ΔE0   = H̄ − κ·Ē_w
    Ẽ0    = E0 + MLP(ΔE0)   (on the nodes the request touches; see ``UnlearnRecConfig.scope``)

Parameters: H0 (N, d) initialised at 0, W_η (N, 1) initialised at ``w_eta_init``, and a 2-layer
MLP (LeakyReLU) initialised to identity weights and zero biases.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnrec.graph.bipartite import propagate


class IdentityMLP(nn.Module):
    """x -> W2 LeakyReLU(W1 x + b1) + b2, starting at W = I, b = 0."""

    def __init__(self, dim: int, negative_slope: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.act = nn.LeakyReLU(negative_slope)
        for fc in (self.fc1, self.fc2):
            nn.init.eye_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InfluenceEncoder(nn.Module):
    def __init__(
        self,
        num_nodes: int,
        embedding_dim: int,
        num_layers: int,
        *,
        readout: str = "sum",
        kappa: float = 1.0,
        w_eta_init: float = 2e-3,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if readout not in ("sum", "hops", "last"):
            raise ValueError(f"readout must be 'sum', 'hops' or 'last', not {readout!r}")
        self.num_layers = max(num_layers, 1)  # MF has no layers; the IE still needs one hop
        self.readout = readout
        self.kappa = kappa
        self.h0 = nn.Parameter(torch.zeros(num_nodes, embedding_dim))  # (N, d)
        self.w_eta = nn.Parameter(torch.full((num_nodes, 1), w_eta_init))  # (N, 1)
        self.mlp = IdentityMLP(embedding_dim, negative_slope)

    def delta(self, idm: torch.Tensor, final_emb: torch.Tensor) -> torch.Tensor:
        """ΔE0 (N, d) for IDM ``idm`` (N, N) and the current model's final embeddings Ē (N, d)."""
        h = self.h0
        h_sum = h if self.readout == "sum" else torch.zeros_like(h)
        for _ in range(self.num_layers):
            h = propagate(idm, h)
            h_sum = h_sum + h
        h_bar = h if self.readout == "last" else h_sum
        w = final_emb * self.w_eta
        for _ in range(self.num_layers):
            w = propagate(idm, w)
        return h_bar - self.kappa * w
