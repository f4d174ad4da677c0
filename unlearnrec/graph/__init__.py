"""The user-item graph: ``bipartite`` (edges, degrees, the normalised adjacency LightGCN propagates
over, residual graphs without removed edges) and ``propagation`` (incremental propagation of a
change confined to a few rows or edges)."""
