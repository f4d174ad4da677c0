"""Measuring models: ``ranking`` (full-ranking Recall/NDCG), ``metrics``, ``forgetting`` (the
forgetting probe: MI-BF, MI-NG, the attack AUC against a retrained reference) and
``membership`` (the LiRA-style membership audit with reference models)."""
