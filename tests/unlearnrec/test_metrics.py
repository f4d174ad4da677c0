"""Ranking metrics and full-ranking evaluation against naive loops."""

from __future__ import annotations

import math

import numpy as np
import torch

from unlearnrec.evaluation.metrics import ndcg_at_k, recall_at_k, roc_auc
from unlearnrec.evaluation.ranking import evaluate_ranking


def naive_recall_ndcg(ranked: list[int], relevant: set[int], k: int) -> tuple[float, float]:
    hits = [1 if item in relevant else 0 for item in ranked[:k]]
    recall = sum(hits) / len(relevant)
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return recall, dcg / idcg


def test_recall_and_ndcg_match_naive_loops():
    """It computes Recall@K and NDCG@K exactly as the textbook loops do."""
    rng = np.random.default_rng(1)
    k, num_items = 5, 30
    rows, rels, ranks = [], [], []
    for _ in range(60):
        ranked = list(rng.permutation(num_items))
        relevant = set(rng.choice(num_items, size=int(rng.integers(1, 9)), replace=False))
        rows.append([item in relevant for item in ranked[:k]])
        rels.append(len(relevant))
        ranks.append((ranked, relevant))
    hits, n_rel = torch.tensor(rows), torch.tensor(rels)
    got_r, got_n = recall_at_k(hits, n_rel), ndcg_at_k(hits, n_rel)
    for b, (ranked, relevant) in enumerate(ranks):
        r, n = naive_recall_ndcg(ranked, relevant, k)
        assert abs(got_r[b].item() - r) < 1e-6
        assert abs(got_n[b].item() - n) < 1e-6


def test_roc_auc_matches_pairwise_count_with_ties():
    """AUC equals the share of (positive, negative) pairs ordered correctly, ties counting half."""
    rng = np.random.default_rng(2)
    pos = rng.integers(0, 10, 40).astype(float)
    neg = rng.integers(0, 8, 30).astype(float)
    naive = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(roc_auc(torch.as_tensor(pos), torch.as_tensor(neg)) - naive) < 1e-12


def test_evaluate_ranking_matches_a_naive_full_ranking():
    """Full ranking masks training items and averages over users with held-out items only."""
    rng = np.random.default_rng(3)
    num_users, num_items, d = 30, 25, 4
    users = torch.as_tensor(rng.normal(size=(num_users, d)), dtype=torch.float)
    items = torch.as_tensor(rng.normal(size=(num_items, d)), dtype=torch.float)
    pairs = {(u, i) for u in range(num_users) for i in range(num_items) if rng.random() < 0.2}
    pairs = sorted(pairs)
    train = np.array(pairs[::2])
    test = np.array([p for p in pairs[1::2] if p[0] % 5 != 0])  # some users have no test items
    got = evaluate_ranking(users, items, test, train, ks=(3, 10), batch_size=7)
    scores = (users @ items.T).numpy()
    for k in (3, 10):
        rs, ns = [], []
        for u in range(num_users):
            rel = {i for uu, i in test if uu == u}
            if not rel:
                continue
            seen = {i for uu, i in train if uu == u}
            ranked = [i for i in np.argsort(-scores[u], kind="stable") if i not in seen]
            r, n = naive_recall_ndcg(ranked, rel, k)
            rs.append(r)
            ns.append(n)
        assert abs(got[f"recall@{k}"] - np.mean(rs)) < 1e-6
        assert abs(got[f"ndcg@{k}"] - np.mean(ns)) < 1e-6
