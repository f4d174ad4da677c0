"""The Influence Dependency Matrix against a hand-built one, and the encoder's arithmetic."""

from __future__ import annotations

import math

import torch

from unlearnrec.unlearning.encoder import InfluenceEncoder
from unlearnrec.unlearning.idm import influence_dependency


def test_idm_of_a_small_request_matches_the_hand_built_matrix():
    """Removed edges (0,1), (2,1), (2,0) on 3 users / 2 items: degrees u0=1, u2=2, i0=1, i1=2."""
    idm = influence_dependency([[0, 1], [2, 1], [2, 0]], 3, 2, "cpu")
    n = 5  # nodes: u0 u1 u2 i0 i1
    expected = torch.zeros(n, n)
    for u, i, du, di in [(0, 1, 1, 2), (2, 1, 2, 2), (2, 0, 2, 1)]:
        expected[u, 3 + i] = expected[3 + i, u] = 1 / math.sqrt(du * di)
    assert torch.allclose(idm.matrix.to_dense(), expected, atol=1e-6)
    assert idm.touched.tolist() == [True, False, True, True, True]


def test_encoder_correction_follows_the_formula():
    """ΔE0 = Σ_l Â^l H0 − κ Â^L (Ē ⊙ W_η) with L layers, and the MLP starts as LeakyReLU."""
    torch.manual_seed(0)
    idm = influence_dependency([[0, 1], [2, 1], [2, 0]], 3, 2, "cpu")
    enc = InfluenceEncoder(5, 4, 2, readout="sum", kappa=0.5, w_eta_init=0.1)
    with torch.no_grad():
        enc.h0.normal_()
    e_bar = torch.randn(5, 4)
    a = idm.matrix.to_dense()
    h = enc.h0.detach()
    expected = h + a @ h + a @ a @ h - 0.5 * (a @ a @ (e_bar * 0.1))
    assert torch.allclose(enc.delta(idm.matrix, e_bar), expected, atol=1e-5)
    x = torch.randn(5, 4)
    assert torch.allclose(enc.mlp(x), torch.nn.functional.leaky_relu(x, 0.2), atol=1e-6)
    last = InfluenceEncoder(5, 4, 2, readout="last", kappa=1.0, w_eta_init=0.1)
    with torch.no_grad():
        last.h0.copy_(h)
    expected_last = a @ a @ h - a @ a @ (e_bar * 0.1)
    assert torch.allclose(last.delta(idm.matrix, e_bar), expected_last, atol=1e-5)
